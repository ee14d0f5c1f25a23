"""The chart's `otel` section: traces to an OpenTelemetry collector (README "Traces").

Off by default; with otel.endpoint every service and the gateway get the SDK's standard OTEL_* variables,
their NetworkPolicies an egress rule to the collector, and the code, given exactly the rendered env, builds
the exporter, sampler and resource the values asked for.
"""
from __future__ import annotations

import json
import os

import pytest
import yaml

from tests.chart import podrun
from tests.chart.conftest import CHART, COMBINATIONS, HelmError, documents, helm_template, pod_specs, render

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
ALL_FEATURES = yaml.safe_load((CHART / "ci" / "all-features-values.yaml").read_text())
PEERS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}]
CHART_SETS = {"POD_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
              "OTEL_TRACES_SAMPLER"}


def _deployments(docs: list[dict]) -> dict[str, dict]:
    """Component (inventory..., gateway) -> its Deployment's container."""
    return {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]:
            d["spec"]["template"]["spec"]["containers"][0] for d in docs if d["kind"] == "Deployment"}


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _policies(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}


def _collector_rules(policy: dict, peers: list[dict]) -> list[dict]:
    return [r for r in policy["spec"].get("egress", []) if r.get("to") == peers]


def _own_tag(component: str) -> str:
    """The tag of a component's own image in all-features (services.<name>.image): its service.version."""
    return ALL_FEATURES.get("services", {}).get(component, {}).get("image", {}).get("tag", "")


def _otel(**values) -> dict[str, str]:
    return {f"otel.{key}": json.dumps(value) for key, value in values.items()}


@pytest.mark.parametrize("combination", ["defaults", "minimal", "mesh"])
def test_traces_are_off_by_default(renderings, combination):
    assert VALUES["otel"]["endpoint"] == ""
    docs = documents(renderings[combination])
    for where, spec in pod_specs(docs):
        for container in spec["containers"]:
            names = set(_env(container))
            assert not {n for n in names if n.startswith("OTEL_")} and "POD_NAME" not in names, where
    for name, policy in _policies(docs).items():
        ports = {p["port"] for r in policy["spec"].get("egress", []) for p in r["ports"]}
        assert 4318 not in ports, name


def test_every_service_and_the_gateway_export_to_the_collector(renderings):
    """all-features: its otel section reaches every service and the gateway, named as the code names them."""
    docs = documents(renderings["all-features"])
    otel = ALL_FEATURES["otel"]
    containers = _deployments(docs)
    enabled = {n for n, s in VALUES["services"].items() if s["enabled"]}
    assert set(containers) == enabled | {"gateway"}
    for component, container in containers.items():
        env = _env(container)
        assert CHART_SETS | {"OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_HEADERS"} <= set(env), component
        names = list(env)
        assert names.index("POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES"), "$(POD_NAME) must be defined first"
        assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == otel["endpoint"]
        assert env["OTEL_SERVICE_NAME"]["value"] == f"erp-{component}", "the name mesh/tracing.py defaults to"
        assert env["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.25"
        attributes = dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"]["value"].split(","))
        assert attributes == {"k8s.namespace.name": "erp", "k8s.pod.name": "$(POD_NAME)",
                              "service.version": _own_tag(component) or ALL_FEATURES["image"]["tag"],
                              "deployment.environment.name": "production",
                              "k8s.cluster.name": "prod-eu-1", "service.namespace": "erp"}, component
    # The migration Job and the load test are not traced.
    for doc in docs:
        if doc["kind"] == "Job":
            names = set(_env(doc["spec"]["template"]["spec"]["containers"][0]))
            assert not {n for n in names if n.startswith("OTEL_")}, doc["metadata"]["name"]


def test_the_collector_s_api_key_comes_only_from_the_secret(helm, renderings):
    text = renderings["all-features"]
    secret = ALL_FEATURES["otel"]["headersSecret"]
    for component, container in _deployments(documents(text)).items():
        headers = _env(container)["OTEL_EXPORTER_OTLP_HEADERS"]
        assert headers == {"name": "OTEL_EXPORTER_OTLP_HEADERS",
                           "valueFrom": {"secretKeyRef": {"name": secret["name"], "key": secret["key"]}}}, component
    # without headersSecret.name: no headers at all
    docs = render(helm, set_json=_otel(endpoint="http://otel-collector.observability:4318", networkPeers=PEERS))
    for component, container in _deployments(docs).items():
        assert set(_env(container)) & (CHART_SETS | {"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_TRACES_SAMPLER_ARG"}) == \
            CHART_SETS, component
        assert _env(container)["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_always_on"


def test_networkpolicies_open_egress_to_the_collector(renderings):
    docs = documents(renderings["all-features"])
    peers = ALL_FEATURES["otel"]["networkPeers"]
    policies = _policies(docs)
    for component in _deployments(docs):
        rules = _collector_rules(policies[f"erp-{component}"], peers)
        assert [r["ports"] for r in rules] == [[{"protocol": "TCP", "port": 4318}]], component
    for job in ("erp-migrations", "erp-loadtest"):
        assert not _collector_rules(policies[job], peers), f"{job} is not traced: no egress to the collector"


@pytest.mark.parametrize(("values", "port"), [
    ({"endpoint": "http://otel-collector.observability:4318"}, 4318),
    ({"endpoint": "https://otlp.example.com"}, 443),
    ({"endpoint": "http://otel-collector.observability/"}, 80),
    ({"endpoint": "https://otlp.example.com:8443/otlp"}, 8443),
    # a Service that maps its port to another targetPort: NetworkPolicy sees the pod's port
    ({"endpoint": "http://otel-collector.observability", "port": 4318}, 4318),
])
def test_the_egress_port_is_the_endpoint_s_unless_given(helm, values, port):
    docs = render(helm, set_json=_otel(networkPeers=PEERS, **values))
    policies = _policies(docs)
    for component in _deployments(docs):
        assert [r["ports"] for r in _collector_rules(policies[f"erp-{component}"], PEERS)] == \
            [[{"protocol": "TCP", "port": port}]], component


def test_without_networkpolicies_no_peers_are_needed(helm):
    docs = render(helm, set_json={**_otel(endpoint="http://otel-collector.observability:4318"),
                                  "networkPolicy.enabled": "false"})
    assert not _policies(docs)
    assert all("OTEL_EXPORTER_OTLP_ENDPOINT" in _env(c) for c in _deployments(docs).values())


class _Secrets(dict):
    """Every Secret key the Deployments refer to: the given ones, the others a test value."""

    def __contains__(self, key) -> bool:
        return True

    def __missing__(self, key) -> str:
        return "chart-test-value"


def test_the_code_builds_what_the_values_ask_for(helm, monkeypatch):
    """Every Deployment's rendered env, given to mesh.tracing.configure as the kubelet would: the SDK's
    exporter, sampler and resource are the ones the values describe, odd attribute values included."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.util.re import parse_env_headers

    from mesh import tracing

    odd = "eu west, 50% $(HOME) a=b"
    docs = render(helm, [CHART / "ci" / "all-features-values.yaml"],
                  set_json={"image.tag": '"1.4.2+build.7"', "otel.resourceAttributes": json.dumps(
                      {**ALL_FEATURES["otel"]["resourceAttributes"], "team.note": odd})})
    secret = ALL_FEATURES["otel"]["headersSecret"]
    installed = []
    monkeypatch.setattr(tracing.trace, "set_tracer_provider", installed.append)
    monkeypatch.setattr(tracing, "enable", lambda service="": None)
    for component, container in _deployments(docs).items():
        env = podrun.resolve_env(container, _Secrets({(secret["name"], secret["key"]): "api-key=s3cr3t"}),
                                 pod_name=f"erp-{component}-7d9f-abcde")
        otel_env = {k: v for k, v in env.items() if k.startswith("OTEL_")}
        for name in [n for n in os.environ if n.startswith("OTEL_")]:
            monkeypatch.delenv(name)
        for name, value in otel_env.items():
            monkeypatch.setenv(name, value)
        assert tracing.configure(component, otel_env)
        provider = installed.pop()
        try:
            attributes = dict(provider.resource.attributes)
            assert {k: attributes.get(k) for k in ("service.name", "k8s.namespace.name", "k8s.pod.name",
                                                   "service.version", "deployment.environment.name",
                                                   "k8s.cluster.name", "team.note")} == {
                "service.name": f"erp-{component}", "k8s.namespace.name": "erp",
                "k8s.pod.name": f"erp-{component}-7d9f-abcde", "service.version": _own_tag(component) or "1.4.2+build.7",
                "deployment.environment.name": "production", "k8s.cluster.name": "prod-eu-1", "team.note": odd,
            }, component
            sampler = provider.sampler
            assert isinstance(sampler, ParentBased) and isinstance(sampler._root, TraceIdRatioBased)
            assert sampler._root.rate == 0.25
            exporters = [p.span_exporter for p in provider._active_span_processor._span_processors]
            assert [e._endpoint for e in exporters] == [f"{ALL_FEATURES['otel']['endpoint']}/v1/traces"]
            assert parse_env_headers(os.environ["OTEL_EXPORTER_OTLP_HEADERS"], liberal=True) == {"api-key": "s3cr3t"}
        finally:
            provider.shutdown()


@pytest.mark.parametrize(("values", "expected"), [
    ({"endpoint": "otel-collector:4318"}, "/otel/endpoint"),  # no scheme
    ({"endpoint": "grpc://otel-collector:4317"}, "/otel/endpoint"),  # OTLP/HTTP only
    ({"endpoint": "https://user:key@otlp.example.com"}, "/otel/endpoint"),  # credentials go in headersSecret
    ({"sampler": "ratio"}, "value must be one of 'always_on', 'always_off', 'traceidratio'"),
    ({"sampler": "parentbased_always_on", "samplerArg": "0.1"}, "value must be one of 'traceidratio'"),
    ({"sampler": "traceidratio", "samplerArg": "ten percent"}, "/otel/samplerArg"),
    ({"sampler": "traceidratio", "samplerArg": 2}, "/otel/samplerArg"),
    ({"headersSecret": {"name": "otel", "key": "headers", "value": "api-key=x"}}, "'value' not allowed"),
    ({"enpoint": "http://otel-collector:4318"}, "'enpoint' not allowed"),
    ({"resourceAttributes": {"k8s.cluster.name": 1}}, "want string"),
])
def test_schema_refuses_bad_otel_values(helm, values, expected):
    with pytest.raises(HelmError) as failure:
        helm_template(helm, set_json=_otel(**values))
    assert "values don't meet the specifications of the schema" in str(failure.value)
    assert expected in str(failure.value)


@pytest.mark.parametrize(("set_json", "expected"), [
    (_otel(endpoint="http://otel-collector:4318"), "otel.networkPeers is needed"),
    (_otel(endpoint="http://otel-collector:4318/v1/traces", networkPeers=PEERS), "the SDK appends /v1/traces"),
    (_otel(endpoint="http://otel-collector:4318", networkPeers=PEERS, resourceAttributes={"service.name": "erp"}),
     "otel.resourceAttributes sets service.name"),
    (_otel(endpoint="http://otel-collector:4318", networkPeers=PEERS, resourceAttributes={"k8s.pod.name": "x"}),
     "otel.resourceAttributes sets k8s.pod.name"),
    ({"config.env": '{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://elsewhere:4318"}'},
     "sets OTEL_EXPORTER_OTLP_ENDPOINT, which the chart sets itself (set it with the otel section"),
    ({"gateway.env": '{"OTEL_SERVICE_NAME": "edge"}'}, "sets OTEL_SERVICE_NAME, which the chart sets itself"),
    ({"services.crm.secretEnv": '{"OTEL_EXPORTER_OTLP_HEADERS": {"secretName": "otel", "key": "headers"}}'},
     "sets OTEL_EXPORTER_OTLP_HEADERS, which the chart sets itself"),
])
def test_templates_refuse_otel_settings_that_cannot_work(helm, set_json, expected):
    with pytest.raises(HelmError) as failure:
        helm_template(helm, set_json=set_json)
    assert expected in str(failure.value)


def test_the_combinations_cover_otel():
    """kubernetes-validate and checkov (test_chart.py) see the otel env and egress through all-features."""
    assert ALL_FEATURES["otel"]["endpoint"] and ALL_FEATURES["otel"]["headersSecret"]["name"]
    assert CHART / "ci" / "all-features-values.yaml" in COMBINATIONS["all-features"]
