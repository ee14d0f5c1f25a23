"""The chart's Locust Job (helm test) calls the release through its gateway with a token from a Secret:
a bearer token mounted as ERP_TOKEN_FILE, or OAuth2 client credentials with the client secret mounted;
loadtest.throughGateway=false calls each service straight, as before."""
from __future__ import annotations

import pytest

from tests.chart.conftest import HelmError, render

ON = {"loadtest.enabled": True, "networkPolicy.enabled": True}


def job_of(docs: list[dict]) -> tuple[dict, dict, dict]:
    """(container, env by name, volumes by name) of the loadtest Job."""
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "erp-loadtest")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    return container, {e["name"]: e.get("value") for e in container["env"]}, {v["name"]: v for v in pod["volumes"]}


def egress_of(docs: list[dict]) -> list[dict]:
    return next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "erp-loadtest")[
        "spec"]["egress"]


def test_through_the_gateway_with_a_token_from_a_secret(helm):
    docs = render(helm, sets={**ON, "loadtest.auth.tokenSecret.name": "erp-loadtest-token",
                              "loadtest.auth.tokenSecret.key": "access-token"})
    container, env, volumes = job_of(docs)
    assert env["ERP_TARGET"] == "erp-gateway.erp.svc:50050"
    assert not [name for name in env if name.endswith("_TARGET") and name != "ERP_TARGET"], \
        "a service's own target would bypass the gateway"
    assert env["ERP_TOKEN_FILE"] == "/var/run/secrets/erp-loadtest/token"
    assert "ERP_TOKEN" not in env, "the token is never a plain env value"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "credentials")
    assert mount["mountPath"] == "/var/run/secrets/erp-loadtest" and mount["readOnly"] is True
    assert volumes["credentials"]["secret"]["secretName"] == "erp-loadtest-token"
    assert volumes["credentials"]["secret"]["items"] == [{"key": "access-token", "path": "token"}]
    peers = [rule["to"][0].get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
             for rule in egress_of(docs)]
    assert "gateway" in peers and not {"inventory", "orders", "crm"} & set(peers)


def test_through_the_gateway_with_client_credentials(helm):
    egress = '[{"to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}], "ports": [{"protocol": "TCP", "port": 443}]}]'
    docs = render(helm, sets={**ON, "loadtest.auth.clientCredentials.tokenUrl": "https://auth.example.com/token",
                              "loadtest.auth.clientCredentials.clientId": "erp-loadtest",
                              "loadtest.auth.clientCredentials.scopes": "inventory.read orders.read orders.write",
                              "loadtest.auth.clientCredentials.audience": "erp-api",
                              "loadtest.auth.clientCredentials.secretName": "erp-loadtest-client"},
                  set_json={"loadtest.auth.tokenEgress": egress})
    _, env, volumes = job_of(docs)
    assert env["ERP_TOKEN_URL"] == "https://auth.example.com/token" and env["ERP_CLIENT_ID"] == "erp-loadtest"
    assert env["ERP_TOKEN_SCOPES"] == "inventory.read orders.read orders.write" and env["ERP_TOKEN_AUDIENCE"] == "erp-api"
    assert env["ERP_CLIENT_SECRET_FILE"] == "/var/run/secrets/erp-loadtest/client-secret"
    assert "ERP_TOKEN_FILE" not in env and "ERP_CLIENT_SECRET" not in env
    assert volumes["credentials"]["secret"] == {"secretName": "erp-loadtest-client", "defaultMode": 0o440,
                                                "items": [{"key": "client-secret", "path": "client-secret"}]}
    assert {"ipBlock": {"cidr": "203.0.113.10/32"}} in [rule["to"][0] for rule in egress_of(docs)]


def test_without_a_token_the_job_says_so_instead_of_failing_every_call(helm):
    container, env, volumes = job_of(render(helm, sets=ON))
    script = container["args"][0]
    assert 'if [ -z "${ERP_TOKEN_FILE:-}${ERP_TOKEN_URL:-}" ]' in script and "loadtest.auth" in script
    assert "credentials" not in volumes and "ERP_TARGET" in env


def test_straight_to_the_services_when_asked(helm):
    container, env, volumes = job_of(render(helm, sets={**ON, "loadtest.throughGateway": False}))
    assert "ERP_TARGET" not in env and env["ERP_INVENTORY_TARGET"].startswith("dns:///erp-inventory")
    assert "ERP_TOKEN_FILE" not in container["args"][0] and "credentials" not in volumes


@pytest.mark.parametrize("sets, expected", [
    ({"loadtest.auth.tokenSecret.name": "t", "loadtest.auth.clientCredentials.tokenUrl": "https://a/token",
      "loadtest.auth.clientCredentials.clientId": "c", "loadtest.auth.clientCredentials.secretName": "s"},
     "not both"),
    ({"loadtest.auth.clientCredentials.tokenUrl": "https://a/token"}, "needs clientId and secretName"),
    ({"gateway.enabled": False}, "loadtest.throughGateway needs gateway.enabled"),
    ({"loadtest.auth.clientCredentials.tokenUrl": "ftp://a/token"}, "tokenUrl"),
    ({"loadtest.auth.tokenSecret.nmae": "t"}, "nmae"),
])
def test_settings_that_cannot_work_are_refused(helm, sets, expected):
    with pytest.raises(HelmError, match=expected):
        render(helm, sets={**ON, **sets})


def gateway_admits_loadtest(docs: list[dict]) -> list[int]:
    """The ports the gateway's NetworkPolicy opens to the loadtest Job's pods."""
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "erp-gateway")
    return [port["port"] for rule in policy["spec"]["ingress"] for peer in rule["from"]
            if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "loadtest"
            for port in rule["ports"]]


def test_the_gateway_lets_the_job_in_only_when_it_goes_through_the_gateway(helm):
    token = {"loadtest.auth.tokenSecret.name": "erp-loadtest-token"}
    assert gateway_admits_loadtest(render(helm, sets={**ON, **token})) == [50050]
    assert gateway_admits_loadtest(render(helm, sets={**ON, "loadtest.throughGateway": False})) == []
    assert gateway_admits_loadtest(render(helm, sets={"networkPolicy.enabled": True})) == []
