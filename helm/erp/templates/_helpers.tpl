{{/* Names, labels, images. */}}

{{- define "erp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "erp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component (a service, "migrations", "loadtest"): (list $ "inventory"). */}}
{{- define "erp.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "erp.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "erp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (list $ "inventory"). */}}
{{- define "erp.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "erp.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Every pod of the release carries these two: the default-deny NetworkPolicy selects them. */}}
{{- define "erp.releaseSelector" -}}
app.kubernetes.io/name: {{ include "erp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* All labels of one component: (list $ "inventory"). */}}
{{- define "erp.labels" -}}
{{- $root := index . 0 -}}
{{ include "erp.selectorLabels" . }}
app.kubernetes.io/part-of: erp
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ include "erp.chart" $root }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* repository@digest, or repository:tag (tag defaults to appVersion): (list $ .Values.image). */}}
{{- define "erp.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The image of one component (a service, "gateway"): its own `image` (services.<name>.image, gateway.image)
over the shared one, as JSON {repository, tag, digest, pullPolicy}: (list $ "orders"). Its own digest wins;
else its own tag; a repository of its own alone takes the shared tag (the shared digest names an image of
the shared repository, so it is not carried over to another repository).
*/}}
{{- define "erp.componentImage" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $shared := $root.Values.image -}}
{{- $own := dict -}}
{{- if eq $name "gateway" -}}
{{- $own = default dict $root.Values.gateway.image -}}
{{- else -}}
{{- $own = default dict (get (default dict (get $root.Values.services $name)) "image") -}}
{{- end -}}
{{- $image := dict "repository" (default $shared.repository $own.repository) "pullPolicy" (default $shared.pullPolicy $own.pullPolicy) "tag" $shared.tag "digest" $shared.digest -}}
{{- if $own.digest -}}
{{- $_ := set $image "digest" $own.digest -}}
{{- $_ := set $image "tag" (default "" $own.tag) -}}
{{- else if $own.tag -}}
{{- $_ := set $image "tag" $own.tag -}}
{{- $_ := set $image "digest" "" -}}
{{- else if $own.repository -}}
{{- $_ := set $image "digest" "" -}}
{{- end -}}
{{- toJson $image -}}
{{- end -}}

{{/* checkov skips every image gets when it is pinned by tag only: (list $image). */}}
{{- define "erp.imageCheckovSkips" -}}
{{- if not (index . 0).digest -}}
checkov.io/skip1: CKV_K8S_43=Pinned by tag here; set image.digest (or loadtest.image.digest) to pull by digest.
{{- end -}}
{{- end -}}

{{/*
Deep merge of two maps, `over` winning, as JSON: (list $base $over). Written out because sprig's
merge/mergeOverwrite drop false and 0 (an override of enabled: true with enabled: false would be lost).
Lists are replaced, not appended.
*/}}
{{- define "erp.merge" -}}
{{- $out := deepCopy (index . 0) -}}
{{- range $key, $value := (index . 1) -}}
{{- $current := get $out $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- $_ := set $out $key (fromJson (include "erp.merge" (list $current $value))) -}}
{{- else -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* One service's settings: serviceDefaults merged with services.<name>, as JSON: (list $ "inventory"). */}}
{{- define "erp.serviceConfig" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $svc := get $root.Values.services $name -}}
{{- $merged := fromJson (include "erp.merge" (list $root.Values.serviceDefaults $svc)) -}}
{{- $pg := fromJson (include "erp.merge" (list $root.Values.postgresql (default dict $svc.postgresql))) -}}
{{- $_ := set $merged "postgresql" $pg -}}
{{- $_ := set $merged "name" $name -}}
{{- $_ := set $merged "calls" (default dict $merged.calls) -}}
{{- $_ := set $merged "callers" (default list $merged.callers) -}}
{{- $_ := set $merged "env" (default dict $merged.env) -}}
{{- $_ := set $merged "secretEnv" (default dict $merged.secretEnv) -}}
{{- $_ := set $merged "egress" (default list $merged.egress) -}}
{{- include "erp.checkCalls" (list $root $merged.calls (printf "services.%s" $name)) -}}
{{- toJson $merged -}}
{{- end -}}

{{/* Names of the enabled services, sorted, as JSON list. */}}
{{- define "erp.enabledServices" -}}
{{- $names := list -}}
{{- range $name := keys .Values.services | sortAlpha -}}
{{- if (get $.Values.services $name).enabled -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/*
Every component that runs as a Deployment, as a JSON list: the enabled services (sorted), then the gateway
when it is enabled. deployment.yaml, service.yaml, serviceaccount.yaml, networkpolicy.yaml, pdb.yaml, hpa.yaml
and servicemonitor.yaml range over it, so the gateway and the services share one template of each kind, and
what tells them apart is data, here. Each entry is the component's settings (serviceDefaults merged with
services.<name>, or with gateway) plus:
  name         the component: its objects are <fullname>-<name>, its command `python -m services.<name>`
  values       where its settings live in values.yaml (services.<name>, gateway), for messages
  grpcService  what the startup and readiness probes ask grpc.health.v1 for
  extraPorts   ports besides grpc and metrics, [{name, port, appProtocol}]: the gateway's REST edge
  headless     a headless Service too, for the round_robin of callers inside the release (ERP_<SERVICE>_TARGET)
  database     a database of its own: its URL, the egress to it, ERP_MIGRATE_ON_START
  events       RabbitMQ (every service; the gateway only calls). Every component uses Redis.
  settingsEnv  env from settings of its own values block (the gateway's tokens, rate limits, HTTP port)
  targets      the services it calls: ERP_<SERVICE>_TARGET and gRPC egress (a service's calls; the gateway all)
  ingress      NetworkPolicy ingress rules besides the metrics one, [{pods, peers, ports}]: from the pods of
               these components of the release and these NetworkPolicyPeers, to these ports
  egress       its extra egress rules (services.<name>.egress, gateway.jwksEgress)
*/}}
{{- define "erp.components" -}}
{{- $root := . -}}
{{- $components := list -}}
{{- range $name := fromJsonArray (include "erp.enabledServices" $root) -}}
{{- $c := fromJson (include "erp.serviceConfig" (list $root $name)) -}}
{{- $_ := set $c "values" (printf "services.%s" $name) -}}
{{- $_ := set $c "extraPorts" list -}}
{{- $_ := set $c "headless" true -}}
{{- $_ := set $c "database" true -}}
{{- $_ := set $c "events" true -}}
{{- $_ := set $c "settingsEnv" list -}}
{{- $_ := set $c "targets" (keys $c.calls | sortAlpha) -}}
{{- $_ := set $c "ingress" (fromJsonArray (include "erp.serviceIngress" (list $root $c))) -}}
{{- $components = append $components $c -}}
{{- end -}}
{{- if $root.Values.gateway.enabled -}}
{{- $components = append $components (fromJson (include "erp.gatewayComponent" $root)) -}}
{{- end -}}
{{- toJson $components -}}
{{- end -}}

{{/* NetworkPolicy ingress of a service besides metrics, as a JSON list of rules (see erp.components): its
gRPC port, from the services of the release that list it in `calls`, the gateway, the load test
(loadtest.calls) and its callers outside the release (callers[].networkPeers): (list $ $config). */}}
{{- define "erp.serviceIngress" -}}
{{- $root := index . 0 -}}
{{- $cfg := index . 1 -}}
{{- $pods := list -}}
{{- range $other := fromJsonArray (include "erp.enabledServices" $root) -}}
{{- if hasKey (default dict (get $root.Values.services $other).calls) $cfg.name -}}
{{- $pods = append $pods $other -}}
{{- end -}}
{{- end -}}
{{- if $root.Values.gateway.enabled -}}
{{- $pods = append $pods "gateway" -}}
{{- end -}}
{{- if and $root.Values.loadtest.enabled (hasKey $root.Values.loadtest.calls $cfg.name) -}}
{{- $pods = append $pods "loadtest" -}}
{{- end -}}
{{- $peers := list -}}
{{- range $caller := $cfg.callers -}}
{{- $peers = concat $peers (default list $caller.networkPeers) -}}
{{- end -}}
{{- $rules := list -}}
{{- if or $pods $peers -}}{{- /* no rule rather than an empty from, which would admit any source */ -}}
{{- $rules = append $rules (dict "pods" $pods "peers" $peers "ports" (list (int $cfg.port))) -}}
{{- end -}}
{{- toJson $rules -}}
{{- end -}}

{{/*
The gateway as a component (see erp.components): serviceDefaults merged with gateway, as JSON. No database,
no events; it calls every enabled service; its edge (gRPC and REST) is open to gateway.ingressPeers, helm
test's connection test and, with loadtest.throughGateway, the Locust Job (gRPC).
*/}}
{{- define "erp.gatewayComponent" -}}
{{- $root := . -}}
{{- $gw := $root.Values.gateway -}}
{{- $c := fromJson (include "erp.merge" (list $root.Values.serviceDefaults (omit $gw "ingressPeers" "jwksEgress"))) -}}
{{- $edge := list (int $c.port) (int $c.httpPort) -}}
{{- $ingress := list (dict "pods" list "peers" (default list $gw.ingressPeers) "ports" $edge) -}}
{{- if $root.Values.connectionTest.enabled -}}
{{- $ingress = append $ingress (dict "pods" (list "connection-test") "peers" list "ports" $edge) -}}
{{- end -}}
{{- if and $root.Values.loadtest.enabled $root.Values.loadtest.throughGateway -}}
{{- $ingress = append $ingress (dict "pods" (list "loadtest") "peers" list "ports" (list (int $c.port))) -}}
{{- end -}}
{{- $_ := set $c "name" "gateway" -}}
{{- $_ := set $c "values" "gateway" -}}
{{- $_ := set $c "grpcService" "erp.gateway" -}}
{{- $_ := set $c "extraPorts" (list (dict "name" "http" "port" (int $c.httpPort) "appProtocol" "http")) -}}
{{- $_ := set $c "headless" false -}}
{{- $_ := set $c "database" false -}}
{{- $_ := set $c "events" false -}}
{{- $_ := set $c "settingsEnv" (fromYamlArray (include "erp.gatewayEnv" (list $root $c))) -}}
{{- $_ := set $c "targets" (fromJsonArray (include "erp.enabledServices" $root)) -}}
{{- $_ := set $c "ingress" $ingress -}}
{{- $_ := set $c "egress" (default list $gw.jwksEgress) -}}
{{- $_ := set $c "env" (default dict $c.env) -}}
{{- $_ := set $c "secretEnv" dict -}}
{{- toJson $c -}}
{{- end -}}

{{/* The gateway's settings of its own (gateway.*, and config.amqpNamespace as the prefix of its Redis keys)
as env: (list $ $config). */}}
{{- define "erp.gatewayEnv" -}}
{{- $root := index . 0 -}}
{{- $cfg := index . 1 -}}
- name: ERP_CACHE_PREFIX
  value: {{ $root.Values.config.amqpNamespace | quote }}
- name: ERP_GATEWAY_HTTP_PORT
  value: {{ $cfg.httpPort | int | quote }}
- name: ERP_GATEWAY_ISSUER
  value: {{ required "gateway.issuer is required" $cfg.issuer | quote }}
- name: ERP_GATEWAY_AUDIENCE
  value: {{ required "gateway.audience is required" $cfg.audience | quote }}
- name: ERP_GATEWAY_JWKS_URL
  value: {{ required "gateway.jwksUrl is required" $cfg.jwksUrl | quote }}
- name: ERP_GATEWAY_ALGORITHMS
  value: {{ $cfg.algorithms | quote }}
- name: ERP_GATEWAY_RATE_LIMITS
  value: {{ $cfg.rateLimits | quote }}
- name: ERP_GATEWAY_RATE_LIMIT_WHEN_REDIS_DOWN
  value: {{ $cfg.rateLimitWhenRedisDown | quote }}
- name: ERP_GATEWAY_MAX_DEADLINE_SECONDS
  value: {{ $cfg.maxDeadlineSeconds | toString | quote }}
- name: ERP_GATEWAY_MAX_BODY_BYTES
  value: {{ $cfg.maxBodyBytes | int | quote }}
{{- end -}}

{{/* The address other pods use for a service: (list $ "inventory").
Without Istio: the headless Service, so the client's round_robin balances calls over every ready pod
(a ClusterIP would pin each client to one pod, since gRPC keeps one long-lived HTTP/2 connection).
With Istio: the ClusterIP Service; the sidecar balances per request and applies the DestinationRule. */}}
{{- define "erp.target" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $svc := get $root.Values.services $name -}}
{{- $host := include "erp.componentName" (list $root $name) -}}
{{- if not $root.Values.istio.enabled -}}
{{- $host = printf "%s-headless" $host -}}
{{- end -}}
{{- printf "dns:///%s.%s.svc:%d" $host $root.Release.Namespace (int $svc.port) -}}
{{- end -}}

{{/* Fails unless every service named in a `calls` map is enabled and has methods: (list $ $calls $who). */}}
{{- define "erp.checkCalls" -}}
{{- $root := index . 0 -}}
{{- range $callee, $methods := (index . 1) -}}
{{- $target := get $root.Values.services $callee -}}
{{- if not (and $target $target.enabled) -}}
{{- fail (printf "%s calls %q, which is not an enabled service of this release" (index $ 2) $callee) -}}
{{- end -}}
{{- if not $methods -}}
{{- fail (printf "%s calls %q with no methods: list them, or [\"*\"] for all" (index $ 2) $callee) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The container env of the database settings of one service: (list $ $config), $config from erp.serviceConfig.
Either the whole URL from a Secret key, or username and password from a Secret, built into the URL with
Kubernetes dependent env var expansion $(VAR) (the referenced vars come first).
*/}}
{{- define "erp.databaseEnv" -}}
{{- $cfg := index . 1 -}}
{{- $pg := $cfg.postgresql -}}
{{- $upper := upper $cfg.name -}}
{{- if not $pg.existingSecret -}}
{{- fail (printf "services.%s.postgresql.existingSecret (or postgresql.existingSecret) is required: credentials come only from Secrets" $cfg.name) -}}
{{- end -}}
{{- if and (index . 0).Values.networkPolicy.enabled (not $pg.networkPeers) -}}
{{- fail (printf "services.%s.postgresql.networkPeers is empty: with networkPolicy.enabled the service could not reach its database" $cfg.name) -}}
{{- end -}}
{{- if $pg.urlKey }}
- name: ERP_{{ $upper }}_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $pg.existingSecret }}
      key: {{ $pg.urlKey }}
{{- else }}
{{- if or (not $pg.host) (not $pg.database) -}}
{{- fail (printf "services.%s.postgresql needs host and database (or urlKey)" $cfg.name) -}}
{{- end }}
- name: PG_{{ $upper }}_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $pg.existingSecret }}
      key: {{ $pg.usernameKey }}
- name: PG_{{ $upper }}_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $pg.existingSecret }}
      key: {{ $pg.passwordKey }}
- name: ERP_{{ $upper }}_DATABASE_URL
  value: {{ printf "postgresql://$(PG_%s_USERNAME):$(PG_%s_PASSWORD)@%s:%d/%s?sslmode=%s" $upper $upper $pg.host (int $pg.port) $pg.database $pg.sslmode | quote }}
{{- end }}
{{- end -}}

{{/* Redis env (ERP_REDIS_URL) of a service or the gateway: (list $). */}}
{{- define "erp.redisEnv" -}}
{{- $root := index . 0 -}}
{{- $redis := $root.Values.redis -}}
{{- if $redis.urlKey }}
- name: ERP_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "redis.existingSecret is required with redis.urlKey" $redis.existingSecret }}
      key: {{ $redis.urlKey }}
{{- else }}
{{- $scheme := ternary "rediss" "redis" $redis.tls }}
{{- if $redis.existingSecret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $redis.existingSecret }}
      key: {{ $redis.passwordKey }}
- name: ERP_REDIS_URL
  value: {{ printf "%s://:$(REDIS_PASSWORD)@%s:%d/%d" $scheme (required "redis.host is required" $redis.host) (int $redis.port) (int $redis.db) | quote }}
{{- else }}
- name: ERP_REDIS_URL
  value: {{ printf "%s://%s:%d/%d" $scheme (required "redis.host is required" $redis.host) (int $redis.port) (int $redis.db) | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Redis and RabbitMQ env of a service: (list $). */}}
{{- define "erp.brokerEnv" -}}
{{- $root := index . 0 -}}
{{- $redis := $root.Values.redis -}}
{{- $amqp := $root.Values.amqp -}}
{{- if and $root.Values.networkPolicy.enabled (or (not $redis.networkPeers) (not $amqp.networkPeers)) -}}
{{- fail "redis.networkPeers and amqp.networkPeers are needed with networkPolicy.enabled (egress is denied by default)" -}}
{{- end -}}
{{- include "erp.redisEnv" (list $root) }}
{{- include "erp.amqpEnv" (list $root) }}
{{- end -}}

{{/* RabbitMQ env (the services and the migrations Job, which declares the topology): (list $). */}}
{{- define "erp.amqpEnv" -}}
{{- $root := index . 0 -}}
{{- $amqp := $root.Values.amqp -}}
{{- if not $amqp.existingSecret -}}
{{- fail "amqp.existingSecret is required: RabbitMQ credentials come only from a Secret" -}}
{{- end }}
{{- if $amqp.urlKey }}
- name: ERP_AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ $amqp.existingSecret }}
      key: {{ $amqp.urlKey }}
{{- else }}
- name: AMQP_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $amqp.existingSecret }}
      key: {{ $amqp.usernameKey }}
- name: AMQP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $amqp.existingSecret }}
      key: {{ $amqp.passwordKey }}
- name: ERP_AMQP_URL
  value: {{ printf "%s://$(AMQP_USERNAME):$(AMQP_PASSWORD)@%s:%d/%s" (ternary "amqps" "amqp" $amqp.tls) (required "amqp.host is required" $amqp.host) (int $amqp.port) (urlquery $amqp.vhost) | quote }}
{{- end }}
- name: ERP_AMQP_NAMESPACE
  value: {{ $root.Values.config.amqpNamespace | quote }}
- name: ERP_AMQP_CONSUMERS
  value: {{ $root.Values.config.amqpConsumers | quote }}
{{- end -}}

{{/* Settings the chart owns; config.env / services.<name>.env may not set them. The OTEL_* ones (and
POD_NAME, which OTEL_RESOURCE_ATTRIBUTES refers to) come from the otel section, even while it is off: the
collector's address and headers go through otel.endpoint (its NetworkPolicy egress) and otel.headersSecret. */}}
{{- define "erp.reservedEnv" -}}
ERP_GRPC_HOST ERP_GRPC_PORT ERP_METRICS_PORT ERP_MIGRATE_ON_START ERP_SHUTDOWN_GRACE_SECONDS ERP_LOG_LEVEL ERP_LOG_FORMAT ERP_DATABASE_URL ERP_REDIS_URL ERP_AMQP_URL ERP_AMQP_NAMESPACE ERP_AMQP_CONSUMERS ERP_EVENT_TRANSPORT ERP_DATA_DIR ERP_INTERNAL_AUTH ERP_INTERNAL_TOKEN_SECRET OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_EXPORTER_OTLP_HEADERS OTEL_EXPORTER_OTLP_TRACES_HEADERS OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG POD_NAME
{{- end -}}

{{/* Fails when an env name is one the chart sets itself: (list $ $name $where). */}}
{{- define "erp.checkReservedEnv" -}}
{{- $reserved := splitList " " (include "erp.reservedEnv" (index . 0)) -}}
{{- $key := index . 1 -}}
{{- if or (has $key $reserved) (regexMatch "^ERP_[A-Z0-9]+_(DATABASE_URL|TARGET)$" $key) -}}
{{- $how := ternary " (set it with the otel section: endpoint, sampler, samplerArg, environment, resourceAttributes, headersSecret)" "" (or (hasPrefix "OTEL_" $key) (eq $key "POD_NAME")) -}}
{{- fail (printf "%s sets %s, which the chart sets itself%s" (index . 2) $key $how) -}}
{{- end -}}
{{- end -}}

{{/* Plain extra env, checked against the reserved names; a name that looks like a credential is refused
(it belongs in services.<name>.secretEnv): (list $ $envMap $where). */}}
{{- define "erp.extraEnv" -}}
{{- $env := index . 1 -}}
{{- range $key := keys $env | sortAlpha }}
{{- include "erp.checkReservedEnv" (list (index $ 0) $key (index $ 2)) -}}
{{- if regexMatch "(?i)(PASSWORD|SECRET|TOKEN|CREDENTIAL)" $key -}}
{{- fail (printf "%s sets %s as a plain value: put it in a Secret and reference it with services.<name>.secretEnv" (index $ 2) $key) -}}
{{- end }}
- name: {{ $key }}
  value: {{ get $env $key | toString | quote }}
{{- end }}
{{- end -}}

{{/* Settings a service must get from a Secret; the chart refuses to render it without them. */}}
{{- define "erp.requiredSecretEnv" -}}
{{- toJson (dict "notification" (list "ERP_WEBHOOK_SECRET" "ERP_WEBHOOK_SIGNING_KEY") "crm" (list "ERP_WEBHOOK_SIGNING_KEY")) -}}
{{- end -}}

{{/* A service's settings from Secrets (services.<name>.secretEnv), as secretKeyRef env: (list $ $config $plainEnv). */}}
{{- define "erp.secretEnv" -}}
{{- $cfg := index . 1 -}}
{{- $plain := index . 2 -}}
{{- $where := printf "services.%s.secretEnv" $cfg.name -}}
{{- range $key := default list (get (fromJson (include "erp.requiredSecretEnv" .)) $cfg.name) -}}
{{- if not (hasKey $cfg.secretEnv $key) -}}
{{- fail (printf "%s.%s is required: {secretName: ..., key: ...} of an existing Secret (never a plain value)" $where $key) -}}
{{- end -}}
{{- end -}}
{{- range $key := keys $cfg.secretEnv | sortAlpha }}
{{- include "erp.checkReservedEnv" (list (index $ 0) $key $where) -}}
{{- if hasKey $plain $key -}}
{{- fail (printf "%s is set both as a plain value (env) and from a Secret (%s)" $key $where) -}}
{{- end }}
{{- $ref := get $cfg.secretEnv $key }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secretName }}
      key: {{ $ref.key }}
{{- end }}
{{- end -}}

{{/* The internal-token check of every service and the gateway's key (internalAuth): (list $). */}}
{{- define "erp.internalAuthEnv" -}}
{{- $auth := (index . 0).Values.internalAuth -}}
- name: ERP_INTERNAL_AUTH
  value: {{ ternary "true" "false" $auth.enabled | quote }}
{{- if $auth.enabled }}
- name: ERP_INTERNAL_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ required "internalAuth.existingSecret is required with internalAuth.enabled" $auth.existingSecret }}
      key: {{ $auth.key }}
{{- end }}
{{- end -}}

{{/* A value of OTEL_RESOURCE_ATTRIBUTES, percent-encoded where the SDKs' parser (pairs split on ",", values
percent-decoded, surrounding blanks trimmed) or Kubernetes' $(VAR) expansion would change it. */}}
{{- define "erp.otelAttributeValue" -}}
{{- toString . | replace "%" "%25" | replace "," "%2C" | replace " " "%20" | replace "$" "%24" -}}
{{- end -}}

{{/* The NetworkPolicy port to the collector: otel.port, else the endpoint's, else its scheme's default. */}}
{{- define "erp.otelPort" -}}
{{- $otel := .Values.otel -}}
{{- if $otel.port -}}
{{- int $otel.port -}}
{{- else -}}
{{- $url := urlParse $otel.endpoint -}}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" -}}
{{- if $port -}}
{{- int $port -}}
{{- else -}}
{{- ternary 443 80 (eq $url.scheme "https") -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
OpenTelemetry env of a service or the gateway, when otel.endpoint is set: (list $ "inventory"). The SDK reads
these standard variables itself (mesh/tracing.py turns tracing on when the endpoint is set).
OTEL_SERVICE_NAME is erp-<component>, the name the code defaults to; POD_NAME (downward API) comes before
OTEL_RESOURCE_ATTRIBUTES, which refers to it as $(POD_NAME).
*/}}
{{- define "erp.otelEnv" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $otel := $root.Values.otel -}}
{{- if $otel.endpoint -}}
{{- if hasSuffix "/v1/traces" (trimSuffix "/" $otel.endpoint) -}}
{{- fail (printf "otel.endpoint is the collector's base URL (e.g. http://otel-collector.observability:4318): the SDK appends /v1/traces itself, got %s" $otel.endpoint) -}}
{{- end -}}
{{- if and $root.Values.networkPolicy.enabled (not $otel.networkPeers) -}}
{{- fail "otel.networkPeers is needed with otel.endpoint and networkPolicy.enabled: egress is denied by default, so the spans could not reach the collector" -}}
{{- end -}}
{{- $attributes := $otel.resourceAttributes | default dict -}}
{{- range $key, $reason := dict "service.name" "it is OTEL_SERVICE_NAME, erp-<service>" "k8s.namespace.name" "the chart sets it" "k8s.pod.name" "the chart sets it" "deployment.environment.name" "set otel.environment" -}}
{{- if hasKey $attributes $key -}}
{{- fail (printf "otel.resourceAttributes sets %s: %s" $key $reason) -}}
{{- end -}}
{{- end -}}
{{- $pairs := list (printf "k8s.namespace.name=%s" (include "erp.otelAttributeValue" $root.Release.Namespace)) "k8s.pod.name=$(POD_NAME)" -}}
{{- if not (hasKey $attributes "service.version") -}}
{{- $pairs = append $pairs (printf "service.version=%s" (include "erp.otelAttributeValue" (default $root.Chart.AppVersion (fromJson (include "erp.componentImage" (list $root $component))).tag))) -}}
{{- end -}}
{{- with $otel.environment -}}
{{- $pairs = append $pairs (printf "deployment.environment.name=%s" (include "erp.otelAttributeValue" .)) -}}
{{- end -}}
{{- range $key := keys $attributes | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%s" $key (include "erp.otelAttributeValue" (get $attributes $key))) -}}
{{- end }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      apiVersion: v1
      fieldPath: metadata.name
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $otel.endpoint | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "erp-%s" $component | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $pairs | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $otel.sampler | quote }}
{{- if not (eq (toString $otel.samplerArg) "") }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ toString $otel.samplerArg | quote }}
{{- end }}
{{- with $otel.headersSecret }}
{{- if .name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rule to the collector, when traces go to one (otel.endpoint). */}}
{{- define "erp.otelEgress" -}}
{{- $otel := .Values.otel -}}
{{- if and $otel.endpoint $otel.networkPeers }}
- to:
    {{- toYaml $otel.networkPeers | nindent 4 }}
  ports:
    - protocol: TCP
      port: {{ include "erp.otelPort" . }}
{{- end }}
{{- end -}}

{{/*
Pod and container security contexts: podSecurityContext / containerSecurityContext of values.yaml (the
"restricted" Pod Security Standard; values.schema.json keeps overrides within it), a component's own
merged over them. A key set to null in the component's is dropped (OpenShift: runAsUser: null and
runAsGroup: null let its SCC assign the namespace's ids; set to null globally, Helm drops it itself).
Argument: $ (the global one) or (list $ $override).
*/}}
{{- define "erp.podSecurityContext" -}}
{{- include "erp.securityContext" (list . "podSecurityContext") -}}
{{- end -}}

{{- define "erp.containerSecurityContext" -}}
{{- include "erp.securityContext" (list . "containerSecurityContext") -}}
{{- end -}}

{{- define "erp.securityContext" -}}
{{- $arg := index . 0 -}}
{{- $key := index . 1 -}}
{{- $root := $arg -}}
{{- $override := dict -}}
{{- if kindIs "slice" $arg -}}
{{- $root = index $arg 0 -}}
{{- $override = default dict (index $arg 1) -}}
{{- end -}}
{{- $merged := fromJson (include "erp.merge" (list (default dict (get $root.Values $key)) $override)) -}}
{{- toYaml (fromJson (include "erp.dropNulls" $merged)) -}}
{{- end -}}

{{/* A map without its null values (recursively), as JSON. */}}
{{- define "erp.dropNulls" -}}
{{- $out := dict -}}
{{- range $k, $v := . -}}
{{- if kindIs "map" $v -}}
{{- $_ := set $out $k (fromJson (include "erp.dropNulls" $v)) -}}
{{- else if not (kindIs "invalid" $v) -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* NetworkPolicy egress rule for DNS. */}}
{{- define "erp.dnsEgress" -}}
- to:
    {{- toYaml .Values.networkPolicy.dnsPeers | nindent 4 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end -}}

{{/* NetworkPolicy egress rule to istiod (sidecars), when Istio is on. */}}
{{- define "erp.istiodEgress" -}}
{{- if .Values.istio.enabled }}
- to:
    {{- toYaml .Values.networkPolicy.istiodPeers | nindent 4 }}
  ports:
    - protocol: TCP
      port: 15012
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rule to one gRPC service of the release: (list $ "inventory"). */}}
{{- define "erp.grpcEgress" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "erp.selectorLabels" (list $root $name) | nindent 10 }}
  ports:
    - protocol: TCP
      port: {{ int (get $root.Values.services $name).port }}
{{- end -}}

{{/* Istio request paths of gRPC methods: (list "/erp.orders.v1.OrderService/" $methods); "*" is all of them.
The health service comes with any grant, so callers can check before they call. */}}
{{- define "erp.grpcPaths" -}}
{{- $prefix := index . 0 -}}
{{- range $method := index . 1 }}
{{- if eq $method "*" }}
- {{ printf "%s*" $prefix | quote }}
{{- else }}
- {{ printf "%s%s" $prefix $method | quote }}
{{- end }}
{{- end }}
- "/grpc.health.v1.Health/Check"
- "/grpc.health.v1.Health/Watch"
{{- end -}}
