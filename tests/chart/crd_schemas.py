"""Strict schemas for the custom resources the chart and k8s/ write, for kinds kubernetes-validate has
no schema for (it validates built-in kinds only and merely warns about these).

They cover the SUBSET of each CRD's fields this project uses (names from the upstream CRDs: Istio
security/networking v1, prometheus-operator monitoring.coreos.com/v1, CloudNativePG postgresql.cnpg.io/v1,
RabbitMQ cluster operator rabbitmq.com/v1beta1), each object with additionalProperties: false, so a
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

SCHEMAS: dict[tuple[str, str], Schema] = {
    ("security.istio.io/v1", "PeerAuthentication"): PEER_AUTHENTICATION,
    ("security.istio.io/v1", "AuthorizationPolicy"): AUTHORIZATION_POLICY,
    ("networking.istio.io/v1", "DestinationRule"): DESTINATION_RULE,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("postgresql.cnpg.io/v1", "Cluster"): CNPG_CLUSTER,
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): RABBITMQ_CLUSTER,
}
