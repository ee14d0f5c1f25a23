"""A way in from outside (issue 17): the Ingress and the Gateway API routes to the gateway's two edges, TLS
by Secret or cert-manager, what NOTES.txt tells, and helm test's connection test through the gateway.

Everything here is off by default and checked by values.schema.json; the all-features combination turns
both ways in on, so test_chart.py's kubernetes-validate (the routes against crd_schemas.py's Gateway API
subset) and checkov runs cover them too.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.chart.conftest import CHART, COMBINATIONS, HelmError, documents, helm_template, render

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
GATEWAY_PORTS = {"grpc": VALUES["gateway"]["port"], "http": VALUES["gateway"]["httpPort"]}
NGINX_PEERS = '[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]'
INGRESS = {"ingress.enabled": "true", "ingress.rest.host": '"api.erp.example.com"',
           "ingress.grpc.host": '"grpc.erp.example.com"'}
GATEWAY_API = {"gatewayApi.enabled": "true",
               "gatewayApi.parentRefs": '[{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]',
               "gatewayApi.rest.hostnames": '["api.erp.example.com"]',
               "gatewayApi.grpc.hostnames": '["grpc.erp.example.com"]'}


def _kinds(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _notes(helm, set_json: dict[str, str] | None = None) -> str:
    cmd = [str(helm), "install", "erp", str(CHART), "--namespace", "erp", "--dry-run=client"]
    for key, value in (set_json or {}).items():
        cmd += ["--set-json", f"{key}={value}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize("combination", [c for c in COMBINATIONS if c != "all-features"])
def test_no_way_in_by_default(renderings, combination):
    assert VALUES["ingress"]["enabled"] is False and VALUES["gatewayApi"]["enabled"] is False
    docs = documents(renderings[combination])
    assert not [d for d in docs if d["kind"] in ("Ingress", "HTTPRoute", "GRPCRoute")]


def test_ingress_is_a_real_option(helm):
    """Two Ingresses: REST over HTTP/1.1 to the http port, gRPC on its own host to the grpc port with the
    controller's gRPC annotation (ingress-nginx's by default); TLS from an existing Secret covering both."""
    docs = render(helm, set_json={**INGRESS, "ingress.className": '"nginx"', "ingress.tls.secretName": '"erp-api-tls"',
                                  "ingress.annotations": '{"nginx.ingress.kubernetes.io/proxy-read-timeout": "60"}'})
    ingresses = _kinds(docs, "Ingress")
    assert set(ingresses) == {"erp-gateway-rest", "erp-gateway-grpc"}
    for edge, host, port in (("rest", "api.erp.example.com", "http"), ("grpc", "grpc.erp.example.com", "grpc")):
        spec = ingresses[f"erp-gateway-{edge}"]["spec"]
        assert spec["ingressClassName"] == "nginx"
        assert spec["tls"] == [{"hosts": [host], "secretName": "erp-api-tls"}]
        (rule,) = spec["rules"]
        assert rule["host"] == host
        (path,) = rule["http"]["paths"]
        assert path["path"] == "/" and path["pathType"] == "Prefix"
        assert path["backend"] == {"service": {"name": "erp-gateway", "port": {"name": port}}}
        annotations = ingresses[f"erp-gateway-{edge}"]["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "60"
        assert ("nginx.ingress.kubernetes.io/backend-protocol" in annotations) == (edge == "grpc"), \
            "the gRPC annotation applies to the gRPC Ingress alone"
        assert not any(k.startswith("cert-manager.io/") for k in annotations)
    # the ports the Ingresses name exist on the gateway's Service
    service = _kinds(docs, "Service")["erp-gateway"]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}.items() >= GATEWAY_PORTS.items()


@pytest.mark.parametrize(("issuer", "annotation"), [("clusterIssuer", "cert-manager.io/cluster-issuer"),
                                                     ("issuer", "cert-manager.io/issuer")])
def test_ingress_tls_from_cert_manager_gets_one_secret_per_ingress(helm, issuer, annotation):
    docs = render(helm, set_json={**INGRESS, f"ingress.tls.{issuer}": '"letsencrypt"'})
    ingresses = _kinds(docs, "Ingress")
    secrets = set()
    for name, ingress in ingresses.items():
        assert ingress["metadata"]["annotations"][annotation] == "letsencrypt", name
        (tls,) = ingress["spec"]["tls"]
        secrets.add(tls["secretName"])
    assert secrets == {"erp-gateway-tls-rest", "erp-gateway-tls-grpc"}, \
        "cert-manager makes a Certificate per Ingress and Secret: two Ingresses must not share one"
    named = render(helm, set_json={**INGRESS, f"ingress.tls.{issuer}": '"letsencrypt"', "ingress.tls.secretName": '"api"'})
    assert {i["spec"]["tls"][0]["secretName"] for i in _kinds(named, "Ingress").values()} == {"api-rest", "api-grpc"}


def test_ingress_without_tls_or_grpc(helm):
    docs = render(helm, set_json={**INGRESS, "ingress.grpc.enabled": "false",
                                  "ingress.grpc.annotations": '{}', "ingress.rest.path": '"/erp"'})
    (ingress,) = _kinds(docs, "Ingress").values()
    assert "tls" not in ingress["spec"] and "annotations" not in ingress["metadata"]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/erp"


def test_gateway_api_routes_attach_to_the_given_gateway(helm):
    docs = render(helm, set_json={**GATEWAY_API, "gatewayApi.labels": '{"exposed": "public"}'})
    http = _kinds(docs, "HTTPRoute")["erp-gateway"]
    grpc = _kinds(docs, "GRPCRoute")["erp-gateway"]
    parent = [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]
    for route in (http, grpc):
        assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
        assert route["spec"]["parentRefs"] == parent
        assert route["metadata"]["labels"]["exposed"] == "public"
    assert http["spec"]["hostnames"] == ["api.erp.example.com"]
    assert http["spec"]["rules"] == [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                      "backendRefs": [{"name": "erp-gateway", "port": GATEWAY_PORTS["http"]}]}]
    assert grpc["spec"]["hostnames"] == ["grpc.erp.example.com"]
    assert grpc["spec"]["rules"] == [{"backendRefs": [{"name": "erp-gateway", "port": GATEWAY_PORTS["grpc"]}]}]
    only_rest = render(helm, set_json={**GATEWAY_API, "gatewayApi.grpc.enabled": "false",
                                       "gatewayApi.rest.hostnames": "[]"})
    assert not _kinds(only_rest, "GRPCRoute") and "hostnames" not in _kinds(only_rest, "HTTPRoute")["erp-gateway"]["spec"]


def test_the_chart_can_bring_a_gateway_of_its_own(helm):
    """gatewayApi.gateway.create: a Gateway with one listener per host name, TLS from cert-manager (one Secret
    for every listener: cert-manager's Gateway support makes one Certificate of all the listeners naming it) or
    from an existing Secret, HTTP without either; the routes attach to it."""
    sets = {"gatewayApi.enabled": "true", "gatewayApi.gateway.create": "true",
            "gatewayApi.gateway.className": '"eg"', "gatewayApi.gateway.tls.clusterIssuer": '"letsencrypt"',
            "gatewayApi.rest.hostnames": '["api.erp.example.com", "*.api.example.com"]',
            "gatewayApi.grpc.hostnames": '["grpc.erp.example.com"]'}
    docs = render(helm, set_json=sets)
    gateway = _kinds(docs, "Gateway")["erp-edge"]
    assert gateway["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    deny = _kinds(docs, "NetworkPolicy")["erp-default-deny"]["spec"]["podSelector"]["matchLabels"]
    assert not deny.items() <= gateway["metadata"]["labels"].items(), \
        "data planes that copy the Gateway's labels (Istio) must not fall under the release's default deny"
    assert gateway["spec"]["gatewayClassName"] == "eg"
    listeners = {(lst["hostname"], lst["allowedRoutes"]["kinds"][0]["kind"]): lst for lst in gateway["spec"]["listeners"]}
    assert set(listeners) == {("api.erp.example.com", "HTTPRoute"), ("*.api.example.com", "HTTPRoute"),
                              ("grpc.erp.example.com", "GRPCRoute")}
    for listener in listeners.values():
        assert listener["protocol"] == "HTTPS" and listener["port"] == 443
        assert listener["tls"] == {"mode": "Terminate", "certificateRefs": [{"name": "erp-edge-tls"}]}
        assert listener["allowedRoutes"]["namespaces"] == {"from": "Same"}
    for kind in ("HTTPRoute", "GRPCRoute"):
        assert _kinds(docs, kind)["erp-gateway"]["spec"]["parentRefs"] == [{"name": "erp-edge", "namespace": "erp"}]
    plain = render(helm, set_json={**sets, "gatewayApi.gateway.tls.clusterIssuer": '""', "gatewayApi.gateway.port": "80"})
    gateway = _kinds(plain, "Gateway")["erp-edge"]
    assert "annotations" not in gateway["metadata"]
    assert all(lst["protocol"] == "HTTP" and lst["port"] == 80 and "tls" not in lst for lst in gateway["spec"]["listeners"])
    existing = render(helm, set_json={**sets, "gatewayApi.gateway.tls.clusterIssuer": '""',
                                      "gatewayApi.gateway.tls.secretName": '"wildcard-tls"'})
    assert {lst["tls"]["certificateRefs"][0]["name"] for lst in _kinds(existing, "Gateway")["erp-edge"]["spec"]["listeners"]} \
        == {"wildcard-tls"}
    assert not _kinds(render(helm, set_json=GATEWAY_API), "Gateway"), "a shared Gateway is not the chart's to make"


def test_all_features_turns_both_ways_in_on(renderings):
    docs = documents(renderings["all-features"])
    assert set(_kinds(docs, "Ingress")) == {"erp-gateway-rest", "erp-gateway-grpc"}
    assert set(_kinds(docs, "HTTPRoute")) == set(_kinds(docs, "GRPCRoute")) == {"erp-gateway"}
    assert set(_kinds(docs, "Gateway")) == {"erp-edge"}
    assert [p["name"] for p in _kinds(docs, "HTTPRoute")["erp-gateway"]["spec"]["parentRefs"]] == ["erp-edge", "public"]
    # the NetworkPolicy lets the controllers in, on both edge ports
    policy = _kinds(docs, "NetworkPolicy")["erp-gateway"]
    namespaces = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                  for r in policy["spec"]["ingress"] for p in r["from"] if "namespaceSelector" in p
                  and {q["port"] for q in r["ports"]} == set(GATEWAY_PORTS.values())}
    assert {"ingress-nginx", "gateway-system"} <= namespaces


@pytest.mark.parametrize(("set_json", "expected"), [
    ({"ingress.enabled": "true"}, "ingress.rest.host is required"),
    ({"ingress.enabled": "true", "ingress.rest.host": '"api.example.com"'}, "ingress.grpc.host is required"),
    ({**INGRESS, "ingress.grpc.host": '"api.erp.example.com"'}, "must differ from ingress.rest.host"),
    ({**INGRESS, "ingress.tls.clusterIssuer": '"a"', "ingress.tls.issuer": '"b"'}, "clusterIssuer or issuer, not both"),
    ({**INGRESS, "gateway.ingressPeers": "[]"}, "gateway.ingressPeers is empty"),
    ({**INGRESS, "gateway.enabled": "false"}, "set gateway.enabled too"),
    ({"gatewayApi.enabled": "true"}, "gatewayApi.parentRefs is required"),
    ({**GATEWAY_API, "gatewayApi.gateway.create": "true"}, "gatewayApi.gateway.className is required"),
    ({"gatewayApi.enabled": "true", "gatewayApi.gateway.create": "true", "gatewayApi.grpc.enabled": "false",
      "gatewayApi.gateway.className": '"eg"'}, "gatewayApi.gateway.create needs host names"),
    ({**GATEWAY_API, "gatewayApi.gateway.create": "true", "gatewayApi.gateway.className": '"eg"',
      "gatewayApi.gateway.tls": '{"clusterIssuer": "a", "issuer": "b"}'}, "clusterIssuer or issuer, not both"),
    ({**GATEWAY_API, "gatewayApi.grpc.hostnames": "[]"}, "both required with the GRPCRoute"),
    ({**GATEWAY_API, "gatewayApi.grpc.hostnames": '["api.erp.example.com"]'}, "is in both rest.hostnames and grpc"),
])
def test_templates_refuse_a_way_in_that_cannot_work(helm, set_json, expected):
    with pytest.raises(HelmError) as failure:
        helm_template(helm, set_json=set_json)
    assert expected in str(failure.value)


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("ingress.enabeld", "true", "'enabeld' not allowed"),
    ("ingress.rest.host", '"https://api.example.com/"', "api.example.com"),  # a host name, not a URL
    ("ingress.tls.secretName", '"Not_A_Name"', "does not match pattern"),
    ("gatewayApi.parentRefs", '[{"namespace": "gw"}]', "missing property 'name'"),
    ("gatewayApi.grpc.hostnames", '["grpc.example.com:443"]', "does not match pattern"),
    ("ingress.rest.path", '"api"', "does not match pattern"),
])
def test_schema_checks_the_way_in(helm, flag, value, expected):
    with pytest.raises(HelmError) as failure:
        helm_template(helm, set_json={flag: value})
    assert "values don't meet the specifications of the schema" in str(failure.value)
    assert expected in str(failure.value)


def test_notes_tell_how_to_reach_the_gateway(helm):
    """Without a way in: port-forward to the gateway; with one: its hosts; both: /openapi.json and how a
    token is had (issuer, audience, JWKS from the values)."""
    notes = _notes(helm)
    assert "kubectl -n erp port-forward svc/erp-gateway 8080:http 50050:grpc" in notes
    assert "http://127.0.0.1:8080/openapi.json" in notes and "grpcurl -plaintext 127.0.0.1:50050" in notes
    for service in ("erp.orders.v1.OrderService", "erp.inventory.v1.InventoryService"):
        assert f'{{"service":"{service}"}}' in notes
    for key in ("issuer", "audience", "jwksUrl"):
        assert VALUES["gateway"][key] in notes, key
    assert "Authorization: Bearer" in notes and "helm test erp -n erp --logs" in notes
    exposed = _notes(helm, {**INGRESS, "ingress.tls.clusterIssuer": '"letsencrypt"',
                            "gateway.issuer": '"https://login.example.org/"'})
    assert "https://api.erp.example.com/openapi.json" in exposed and "grpc.erp.example.com:443" in exposed
    assert "port-forward" not in exposed and "iss = https://login.example.org/" in exposed
    assert "admits only gateway.ingressPeers" in exposed and "istio-ingress" in exposed
    plain = _notes(helm, INGRESS)
    assert "http://api.erp.example.com/openapi.json" in plain and "grpc.erp.example.com:80 (plaintext" in plain
    routes = _notes(helm, GATEWAY_API)
    assert "https://api.erp.example.com/openapi.json" in routes and "Gateway gateway-system/public" in routes


def test_connection_test_checks_health_through_the_gateway(renderings, helm):
    docs = documents(renderings["defaults"])
    pod = _kinds(docs, "Pod")["erp-connection-test"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    gateway = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "erp-gateway")
    assert container["image"] == gateway["spec"]["template"]["spec"]["containers"][0]["image"], \
        "the gateway's image: python with grpcio and grpc_health"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GATEWAY_GRPC"] == f"erp-gateway.erp.svc:{GATEWAY_PORTS['grpc']}"
    assert env["GATEWAY_REST"] == f"http://erp-gateway.erp.svc:{GATEWAY_PORTS['http']}"
    assert env["ERP_SERVICES"].split() == [VALUES["services"][name]["grpcService"]
                                           for name in sorted(VALUES["services"]) if VALUES["services"][name]["enabled"]]
    script = container["args"][0]
    assert "grpc_health.v1" in script and "/openapi.json" in script
    compile(script, "connection-test", "exec")  # the script is valid Python
    # the NetworkPolicies let it reach the gateway, and nothing else
    policies = _kinds(docs, "NetworkPolicy")
    egress_ports = {p["port"] for r in policies["erp-connection-test"]["spec"]["egress"] for p in r["ports"]}
    assert egress_ports == {53, *GATEWAY_PORTS.values()}
    admitted = [r for r in policies["erp-gateway"]["spec"]["ingress"]
                if any(p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
                       == "connection-test" for p in r["from"])]
    assert admitted and {p["port"] for p in admitted[0]["ports"]} == set(GATEWAY_PORTS.values())
    off = render(helm, set_json={"connectionTest.enabled": "false"})
    assert not [d for d in off if d["metadata"]["name"] == "erp-connection-test"]
    # with Istio the test pod gets a sidecar (STRICT mTLS at the gateway) and lets it go at the end
    mesh = documents(renderings["all-features"])
    pod = _kinds(mesh, "Pod")["erp-connection-test"]
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert "quitquitquit" in pod["spec"]["containers"][0]["args"][0]


def test_connection_test_script_runs_against_a_health_server(renderings, tmp_path):
    """The rendered script, run as the Pod runs it, against a local gRPC health server and HTTP server."""

    pod = _kinds(documents(renderings["defaults"]), "Pod")["erp-connection-test"]
    container = pod["spec"]["containers"][0]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    class OpenApi(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the base class's name
            body = json.dumps({"openapi": "3.1.0", "paths": {"/v1/orders": {}}}).encode()
            self.send_response(200 if self.path == "/openapi.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), OpenApi)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    env = {e["name"]: e["value"] for e in container["env"]}
    env.update(GATEWAY_GRPC=f"127.0.0.1:{port}", GATEWAY_REST=f"http://127.0.0.1:{http.server_port}",
               WAIT_SECONDS="0", HOME=str(tmp_path), PATH="/usr/bin:/bin")
    names = ["", "erp.gateway", *env["ERP_SERVICES"].split()]
    try:
        for name in names:
            servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        ok = subprocess.run([sys.executable, "-c", container["args"][0]], env=env, capture_output=True, text=True,
                            timeout=60)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "health erp.orders.v1.OrderService: SERVING" in ok.stdout and "OpenAPI 3.1.0" in ok.stdout
        servicer.set("erp.orders.v1.OrderService", health_pb2.HealthCheckResponse.NOT_SERVING)
        down = subprocess.run([sys.executable, "-c", container["args"][0]], env=env, capture_output=True, text=True,
                              timeout=60)
        assert down.returncode == 1 and "erp.orders.v1.OrderService: NOT_SERVING" in down.stdout
    finally:
        server.stop(0)
        http.shutdown()
