"""Strict schemas for the custom resources the chart and k8s/ write, for kinds kubernetes-validate has
no schema for (it validates built-in kinds only and merely warns about these).

They cover the SUBSET of each CRD's fields this project uses (names from the upstream CRDs: Istio
security/networking v1, prometheus-operator monitoring.coreos.com/v1, CloudNativePG postgresql.cnpg.io/v1,
RabbitMQ cluster operator rabbitmq.com/v1beta1, Gateway API gateway.networking.k8s.io/v1), each object with additionalProperties: false, so a
misspelled field fails here instead of being dropped (or refused) by the API server. A field the CRD has
but this subset lacks fails too: add it here, checked against the CRD, when the chart starts using it.
"""
from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def obj(props: Schema, required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        schema["required"] = list(required)
    return schema


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
STRMAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
STRLIST: Schema = {"type": "array", "items": STR}
DURATION: Schema = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"}
ANY_OBJECT: Schema = {"type": "object"}  # a built-in type (PodSpec, ResourceRequirements...)


def resource(api_version: str, kind: str, spec: Schema) -> Schema:
    return obj({
        "apiVersion": {"const": api_version},
        "kind": {"const": kind},
        "metadata": obj({"name": STR, "namespace": STR, "labels": STRMAP, "annotations": STRMAP}, ("name",)),
        "spec": spec,
    }, ("apiVersion", "kind", "metadata", "spec"))


WORKLOAD_SELECTOR = obj({"matchLabels": STRMAP}, ("matchLabels",))
MTLS = obj({"mode": {"enum": ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]}}, ("mode",))

PEER_AUTHENTICATION = resource("security.istio.io/v1", "PeerAuthentication", obj({
    "selector": WORKLOAD_SELECTOR,
    "mtls": MTLS,
    "portLevelMtls": {"type": "object", "propertyNames": {"pattern": "^[0-9]+$"}, "additionalProperties": MTLS},
}))

AUTHORIZATION_POLICY = resource("security.istio.io/v1", "AuthorizationPolicy", obj({
    "selector": WORKLOAD_SELECTOR,
    "action": {"enum": ["ALLOW", "DENY", "AUDIT", "CUSTOM"]},
    "rules": {"type": "array", "items": obj({
        "from": {"type": "array", "items": obj({"source": obj({
            "principals": STRLIST, "notPrincipals": STRLIST, "namespaces": STRLIST, "notNamespaces": STRLIST,
            "ipBlocks": STRLIST, "requestPrincipals": STRLIST})}, ("source",))},
        "to": {"type": "array", "items": obj({"operation": obj({
            "ports": STRLIST, "notPorts": STRLIST, "paths": STRLIST, "notPaths": STRLIST,
            "methods": STRLIST, "notMethods": STRLIST, "hosts": STRLIST})}, ("operation",))},
    })},
}))

DESTINATION_RULE = resource("networking.istio.io/v1", "DestinationRule", obj({
    "host": STR,
    "trafficPolicy": obj({
        "tls": obj({"mode": {"enum": ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]}}),
        "loadBalancer": obj({"simple": {"enum": ["UNSPECIFIED", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN",
                                                 "LEAST_REQUEST", "LEAST_CONN"]}}),
        "connectionPool": obj({
            "tcp": obj({"maxConnections": INT, "connectTimeout": DURATION, "maxConnectionDuration": DURATION,
                        "idleTimeout": DURATION}),
            "http": obj({"http1MaxPendingRequests": INT, "http2MaxRequests": INT, "maxRequestsPerConnection": INT,
                         "maxRetries": INT, "idleTimeout": DURATION, "maxConcurrentStreams": INT}),
        }),
        "outlierDetection": obj({
            "consecutive5xxErrors": INT, "consecutiveGatewayErrors": INT, "consecutiveLocalOriginFailures": INT,
            "splitExternalLocalOriginErrors": BOOL, "interval": DURATION, "baseEjectionTime": DURATION,
            "maxEjectionPercent": INT, "minHealthPercent": INT}),
    }),
}, ("host",)))

SERVICE_MONITOR = resource("monitoring.coreos.com/v1", "ServiceMonitor", obj({
    "selector": obj({"matchLabels": STRMAP, "matchExpressions": {"type": "array", "items": obj({
        "key": STR, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]}, "values": STRLIST},
        ("key", "operator"))}}),
    "namespaceSelector": obj({"matchNames": STRLIST, "any": BOOL}),
    "endpoints": {"type": "array", "minItems": 1, "items": obj({
        "port": STR, "targetPort": {"type": ["string", "integer"]}, "path": STR, "scheme": {"enum": ["http", "https"]},
        "interval": DURATION, "scrapeTimeout": DURATION, "honorLabels": BOOL})},
}, ("selector", "endpoints")))

# Its rules are checked for real by promtool (tests/chart/test_monitoring.py); this is the object's shape.
PROMETHEUS_RULE = resource("monitoring.coreos.com/v1", "PrometheusRule", obj({
    "groups": {"type": "array", "minItems": 1, "items": obj({
        "name": {"type": "string", "minLength": 1},
        "interval": DURATION,
        "limit": INT,
        "rules": {"type": "array", "minItems": 1, "items": {**obj({
            "alert": STR, "record": STR, "expr": {"type": ["string", "integer"]}, "for": DURATION,
            "keep_firing_for": DURATION, "labels": STRMAP, "annotations": STRMAP}, ("expr",)),
            "oneOf": [{"required": ["alert"]}, {"required": ["record"]}]}},
    }, ("name", "rules"))},
}, ("groups",)))

CNPG_CLUSTER = resource("postgresql.cnpg.io/v1", "Cluster", obj({
    "instances": {"type": "integer", "minimum": 1},
    "imageName": STR,
    "primaryUpdateStrategy": {"enum": ["unsupervised", "supervised"]},
    "enableSuperuserAccess": BOOL,
    "bootstrap": obj({"initdb": obj({"database": STR, "owner": STR, "secret": obj({"name": STR})})}),
    "postgresql": obj({"parameters": STRMAP}),
    "storage": obj({"size": STR, "storageClass": STR}),
    "resources": ANY_OBJECT,
    "affinity": obj({"enablePodAntiAffinity": BOOL, "topologyKey": STR, "podAntiAffinityType": STR}),
    "monitoring": obj({"enablePodMonitor": BOOL}),
}, ("instances", "storage")))

RABBITMQ_CLUSTER = resource("rabbitmq.com/v1beta1", "RabbitmqCluster", obj({
    "replicas": {"type": "integer", "minimum": 1},
    "image": STR,
    "persistence": obj({"storage": STR, "storageClassName": STR}),
    "resources": ANY_OBJECT,
    "rabbitmq": obj({"additionalConfig": STR, "additionalPlugins": STRLIST, "advancedConfig": STR}),
    "override": obj({"statefulSet": obj({"spec": obj({"template": obj({"spec": ANY_OBJECT})})})}),
    "affinity": ANY_OBJECT,
    "tolerations": {"type": "array"},
}, ("replicas",)))

# Gateway API (gateway.networking.k8s.io/v1, standard channel, v1.1+ for GRPCRoute): the route fields the
# chart writes, with the CRDs' own limits (hostname pattern, 16 hostnames, 32 parentRefs, 16 rules).
HOSTNAME: Schema = {"type": "string", "minLength": 1, "maxLength": 253,
                    "pattern": r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}
K8S_NAME: Schema = {"type": "string", "minLength": 1, "maxLength": 253}
PORT: Schema = {"type": "integer", "minimum": 1, "maximum": 65535}
PARENT_REF = obj({"group": STR, "kind": STR, "namespace": {"type": "string", "maxLength": 63}, "name": K8S_NAME,
                  "sectionName": {"type": "string", "maxLength": 253}, "port": PORT}, ("name",))
# A Service backend needs its port (the CRD's CEL rule: "Must have port for Service reference").
BACKEND_REF = obj({"group": {"const": ""}, "kind": {"const": "Service"}, "name": K8S_NAME,
                   "namespace": {"type": "string", "maxLength": 63}, "port": PORT,
                   "weight": {"type": "integer", "minimum": 0, "maximum": 1000000}}, ("name", "port"))
HEADER_MATCH = obj({"type": {"enum": ["Exact", "RegularExpression"]}, "name": STR, "value": STR}, ("name", "value"))
ROUTE_COMMON: Schema = {
    "parentRefs": {"type": "array", "minItems": 1, "maxItems": 32, "items": PARENT_REF},
    "hostnames": {"type": "array", "maxItems": 16, "items": HOSTNAME},
}

HTTP_ROUTE = resource("gateway.networking.k8s.io/v1", "HTTPRoute", obj({
    **ROUTE_COMMON,
    "rules": {"type": "array", "minItems": 1, "maxItems": 16, "items": obj({
        "name": STR,
        "matches": {"type": "array", "maxItems": 64, "items": obj({
            "path": obj({"type": {"enum": ["Exact", "PathPrefix", "RegularExpression"]},
                         "value": {"type": "string", "maxLength": 1024, "pattern": "^/"}}),
            "headers": {"type": "array", "maxItems": 16, "items": HEADER_MATCH},
            "method": {"enum": ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]},
        })},
        "backendRefs": {"type": "array", "maxItems": 16, "items": BACKEND_REF},
        "timeouts": obj({"request": DURATION, "backendRequest": DURATION}),
    })},
}, ("parentRefs",)))

GRPC_ROUTE = resource("gateway.networking.k8s.io/v1", "GRPCRoute", obj({
    **ROUTE_COMMON,
    "rules": {"type": "array", "minItems": 1, "maxItems": 16, "items": obj({
        "name": STR,
        "matches": {"type": "array", "maxItems": 64, "items": obj({
            "method": obj({"type": {"enum": ["Exact", "RegularExpression"]}, "service": STR, "method": STR}),
            "headers": {"type": "array", "maxItems": 16, "items": HEADER_MATCH},
        })},
        "backendRefs": {"type": "array", "maxItems": 16, "items": BACKEND_REF},
    })},
}, ("parentRefs",)))

GATEWAY = resource("gateway.networking.k8s.io/v1", "Gateway", obj({
    "gatewayClassName": {"type": "string", "minLength": 1, "maxLength": 253},
    "listeners": {"type": "array", "minItems": 1, "maxItems": 64, "items": obj({
        "name": {"type": "string", "minLength": 1, "maxLength": 253, "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "hostname": HOSTNAME,
        "port": PORT,
        "protocol": {"enum": ["HTTP", "HTTPS", "TLS", "TCP", "UDP"]},
        "tls": obj({"mode": {"enum": ["Terminate", "Passthrough"]},
                    "certificateRefs": {"type": "array", "maxItems": 64, "items": obj({
                        "group": {"const": ""}, "kind": {"const": "Secret"}, "name": K8S_NAME,
                        "namespace": {"type": "string", "maxLength": 63}}, ("name",))}}),
        "allowedRoutes": obj({
            "namespaces": obj({"from": {"enum": ["All", "Same", "Selector"]}}),
            "kinds": {"type": "array", "maxItems": 8, "items": obj({"group": STR, "kind": STR}, ("kind",))}}),
    }, ("name", "port", "protocol"))},
}, ("gatewayClassName", "listeners")))

SCHEMAS: dict[tuple[str, str], Schema] = {
    ("gateway.networking.k8s.io/v1", "Gateway"): GATEWAY,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): HTTP_ROUTE,
    ("gateway.networking.k8s.io/v1", "GRPCRoute"): GRPC_ROUTE,
    ("security.istio.io/v1", "PeerAuthentication"): PEER_AUTHENTICATION,
    ("security.istio.io/v1", "AuthorizationPolicy"): AUTHORIZATION_POLICY,
    ("networking.istio.io/v1", "DestinationRule"): DESTINATION_RULE,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("postgresql.cnpg.io/v1", "Cluster"): CNPG_CLUSTER,
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): RABBITMQ_CLUSTER,
}
