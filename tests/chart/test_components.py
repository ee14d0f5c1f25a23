"""The gateway is one more component of the generic templates, not a copy of them.

deployment.yaml, service.yaml, serviceaccount.yaml, networkpolicy.yaml, pdb.yaml, hpa.yaml and
servicemonitor.yaml range over erp.components (_helpers.tpl): the enabled services, then the gateway, whose
differences are data there (its REST port, the name its probes ask for, the env of its own settings, who
may call it and what it reaches). These tests keep it that way: every component's object of those kinds
comes from the one template of its kind, and the gateway's pods get the same security, probes and
rollout settings as every service's.
"""
from __future__ import annotations

import re

import pytest
import yaml

from tests.chart.conftest import COMBINATIONS, render

# The one template of each kind that renders that kind's object of every component.
TEMPLATES = {
    "Deployment": "deployment.yaml",
    "Service": "service.yaml",
    "ServiceAccount": "serviceaccount.yaml",
    "NetworkPolicy": "networkpolicy.yaml",
    "PodDisruptionBudget": "pdb.yaml",
    "HorizontalPodAutoscaler": "hpa.yaml",
    "ServiceMonitor": "servicemonitor.yaml",
}
COMPONENT = "app.kubernetes.io/component"
# Env the chart gives every component alike (ERP_GRPC_PORT is each one's own port).
SHARED_ENV = ("ERP_GRPC_HOST", "ERP_METRICS_PORT", "ERP_SHUTDOWN_GRACE_SECONDS", "ERP_LOG_LEVEL", "ERP_LOG_FORMAT",
              "ERP_REDIS_URL", "ERP_INTERNAL_AUTH", "ERP_INTERNAL_TOKEN_SECRET", "OTEL_EXPORTER_OTLP_ENDPOINT",
              "OTEL_TRACES_SAMPLER", "ERP_GRPC_MAX_WORKERS")


def _sourced(text: str) -> list[tuple[str, dict]]:
    """(template file, object) of each rendered document: helm writes `# Source: <chart>/templates/<file>`."""
    out = []
    for chunk in re.split(r"^---\s*$", text, flags=re.M):
        doc = yaml.safe_load(chunk)
        if doc:
            source = re.search(r"^# Source: [^/]+/templates/(\S+)$", chunk, re.M)
            out.append((source.group(1) if source else "", doc))
    return out


def _deployments(text: str) -> dict[str, dict]:
    return {doc["metadata"]["labels"][COMPONENT]: doc for _, doc in _sourced(text) if doc["kind"] == "Deployment"}


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_each_kind_of_every_component_comes_from_one_template(renderings, combination):
    """A component (service or gateway) never gets an object of these kinds from a template of its own."""
    sourced = _sourced(renderings[combination])
    components = set(_deployments(renderings[combination]))
    for kind, template in TEMPLATES.items():
        rendered = {doc["metadata"]["labels"][COMPONENT]: source for source, doc in sourced
                    if doc["kind"] == kind and doc["metadata"]["labels"].get(COMPONENT) in components}
        strays = {name: source for name, source in rendered.items() if source != template}
        assert not strays, f"{kind} of {strays} not rendered by {template}"
        if rendered:  # a kind some component gets, every component gets
            assert set(rendered) == components, f"{kind}: only {sorted(rendered)} of {sorted(components)}"


def _shared(deployment: dict) -> dict:
    """What a component's Deployment has in common with every other: all but its name, labels, image,
    command, ports, env, the probes' target and its resources."""
    spec = deployment["spec"]
    pod = dict(spec["template"]["spec"])
    container = dict(pod.pop("containers")[0])
    for key in ("name", "image", "command", "ports", "env", "resources"):
        container.pop(key)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        container[probe] = {k: v for k, v in container[probe].items() if k != "grpc"}
    pod.pop("serviceAccountName")
    pod["topologySpreadConstraints"] = [{k: v for k, v in c.items() if k != "labelSelector"}
                                        for c in pod.get("topologySpreadConstraints", [])]
    return {
        "deployment": {k: v for k, v in spec.items() if k not in ("selector", "template")},
        "annotations": spec["template"]["metadata"].get("annotations"),
        "pod": pod,
        "container": container,
    }


@pytest.mark.parametrize("combination", [c for c in COMBINATIONS if c != "minimal"])  # minimal: no gateway
def test_the_gateway_s_pods_are_set_up_like_every_service_s(renderings, combination):
    deployments = _deployments(renderings[combination])
    gateway = deployments.pop("gateway")
    assert deployments, "no service to compare the gateway with"
    expected = _shared(gateway)
    if combination == "all-features":  # gateway.podSecurityContext there adds one key of the gateway's own
        assert expected["pod"]["securityContext"].pop("fsGroupChangePolicy") == "OnRootMismatch"
    for name, deployment in deployments.items():
        assert _shared(deployment) == expected, f"{name} and the gateway differ beyond their own data"
    for name, deployment in {**deployments, "gateway": gateway}.items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        port = int(env["ERP_GRPC_PORT"]["value"])
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["ports"][0] == {"name": "grpc", "containerPort": port, "protocol": "TCP"}
        assert container["startupProbe"]["grpc"] == container["readinessProbe"]["grpc"]
        assert container["startupProbe"]["grpc"]["port"] == port and container["startupProbe"]["grpc"]["service"]
        assert container["livenessProbe"]["grpc"] == {"port": port, "service": ""}
        for constraint in pod["topologySpreadConstraints"]:
            assert constraint["labelSelector"]["matchLabels"][COMPONENT] == name
        gateway_env = {e["name"]: e for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
        for key in SHARED_ENV:
            assert env.get(key) == gateway_env.get(key), f"{name}: {key} differs from the gateway's"


def test_the_gateway_keeps_what_is_its_own(renderings):
    """Its differences, as data: the REST port on its pod and Service, no headless Service (nobody inside the
    release balances over it), no database, no events, its own settings, every service as a target."""
    sourced = [doc for _, doc in _sourced(renderings["defaults"])]
    services = sorted(_deployments(renderings["defaults"]))
    services.remove("gateway")
    gateway = _deployments(renderings["defaults"])["gateway"]
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert [p["name"] for p in container["ports"]] == ["grpc", "http", "metrics"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ERP_GATEWAY_HTTP_PORT"] == "8080" and env["ERP_GATEWAY_ISSUER"]
    assert not {"ERP_MIGRATE_ON_START", "ERP_AMQP_URL"} & set(env)
    assert not [name for name in env if name.endswith("_DATABASE_URL")]
    assert sorted(name.removeprefix("ERP_").removesuffix("_TARGET").lower() for name in env
                  if name.endswith("_TARGET")) == services
    own_services = [d for d in sourced if d["kind"] == "Service" and d["metadata"]["labels"][COMPONENT] == "gateway"]
    assert [s["metadata"]["name"] for s in own_services] == ["erp-gateway"]
    assert [p["name"] for p in own_services[0]["spec"]["ports"]] == ["grpc", "http", "http-metrics"]


def test_a_service_with_only_outside_callers_and_no_peers_admits_no_one_on_grpc(helm, tmp_path):
    # With the gateway off, crm's only caller here is an Istio-only one (principals, no networkPeers):
    # its NetworkPolicy must have no gRPC rule at all, never one with an empty `from` (any source).
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "networkPolicy": {"enabled": True}, "gateway": {"enabled": False},
        "services": {"crm": {"callers": [{"name": "ui", "methods": ["*"],
                                          "principals": ["cluster.local/ns/ui/sa/ui"]}]}}}))
    docs = render(helm, [values])
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "erp-crm")
    grpc_rules = [rule for rule in policy["spec"].get("ingress") or []
                  if any(port["port"] == 50053 for port in rule.get("ports", []))]
    assert grpc_rules == [] or all(rule.get("from") for rule in grpc_rules), grpc_rules
