"""Independent deploys and overridable security (issue 17): each service and the gateway can run an image of
its own, a change to one service's values rolls only that service's pods, and the pod and container security
contexts can be overridden (OpenShift's own user ids included) but not beyond the restricted profile.
"""
from __future__ import annotations

import json

import pytest
import yaml

from tests.chart.conftest import CHART, HelmError, documents, helm_template, pod_specs, render

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SERVICES = sorted(name for name, svc in VALUES["services"].items() if svc["enabled"])
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32


def _deployments(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"].removeprefix("erp-"): d for d in docs if d["kind"] == "Deployment"}


def _image(deployment: dict) -> str:
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def _templates(helm, set_json: dict[str, str]) -> dict[str, str]:
    """Each Deployment's pod template, serialized (what Kubernetes hashes into the ReplicaSet's name)."""
    return {name: json.dumps(d["spec"]["template"], sort_keys=True)
            for name, d in _deployments(render(helm, set_json=set_json)).items()}


@pytest.mark.parametrize(("own", "expected"), [
    ({"tag": "0.2.0"}, "erp-mesh:0.2.0"),
    ({"digest": DIGEST}, f"erp-mesh@{DIGEST}"),
    ({"repository": "registry.example.com/erp-orders"}, "registry.example.com/erp-orders:0.1.0"),
    ({"repository": "registry.example.com/erp-orders", "tag": "0.2.0", "digest": DIGEST},
     f"registry.example.com/erp-orders@{DIGEST}"),
])
def test_a_service_gets_an_image_of_its_own(helm, own, expected):
    docs = render(helm, set_json={"services.orders.image": json.dumps(own)})
    deployments = _deployments(docs)
    assert _image(deployments["orders"]) == expected
    for name, deployment in deployments.items():
        if name != "orders":
            assert _image(deployment) == "erp-mesh:0.1.0", f"{name} keeps the shared image"


def test_a_shared_digest_is_not_carried_to_another_tag_or_repository(helm):
    shared = {"image.digest": json.dumps(OTHER_DIGEST)}
    deployments = _deployments(render(helm, set_json={**shared, "services.crm.image": '{"tag": "0.2.0"}',
                                                      "services.finance.image": '{"repository": "mirror/erp"}',
                                                      "gateway.image": json.dumps({"digest": DIGEST})}))
    assert _image(deployments["crm"]) == "erp-mesh:0.2.0"
    assert _image(deployments["finance"]) == "mirror/erp:0.1.0"
    assert _image(deployments["gateway"]) == f"erp-mesh@{DIGEST}"
    assert _image(deployments["orders"]) == f"erp-mesh@{OTHER_DIGEST}"
    # pinned by digest: no checkov skip; by tag: the skip with its reason
    assert "checkov.io/skip1" not in deployments["gateway"]["metadata"]["annotations"]
    assert "CKV_K8S_43" in deployments["crm"]["metadata"]["annotations"]["checkov.io/skip1"]


def test_the_gateway_gets_an_image_of_its_own(helm):
    deployments = _deployments(render(helm, set_json={"gateway.image": '{"repository": "edge/gw", "tag": "2.0.0", '
                                                                       '"pullPolicy": "Always"}'}))
    container = deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "edge/gw:2.0.0" and container["imagePullPolicy"] == "Always"
    assert all(_image(d) == "erp-mesh:0.1.0" for n, d in deployments.items() if n != "gateway")


def test_migrations_of_a_service_run_from_its_own_image(helm):
    docs = render(helm, set_json={"services.orders.image": json.dumps({"tag": "0.2.0"})})
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "erp-migrations")
    spec = job["spec"]["template"]["spec"]
    first, last = spec["initContainers"], spec["containers"]
    assert [(c["image"], c["args"]) for c in first + last] == [
        ("erp-mesh:0.1.0", [s for s in SERVICES if s != "orders"]), ("erp-mesh:0.2.0", ["orders"])], \
        "the shared image's services first, then each image of its own, one after the other"
    urls = {c["name"]: {e["name"] for e in c["env"] if e["name"].endswith("_DATABASE_URL")} for c in first + last}
    assert urls["migrate"] == {"ERP_ORDERS_DATABASE_URL"}
    assert all(c["securityContext"]["allowPrivilegeEscalation"] is False for c in first + last)


@pytest.mark.parametrize(("changed", "set_json"), [
    ("orders", {"services.orders.image": '{"tag": "0.2.0"}'}),
    ("orders", {"services.orders.image": json.dumps({"digest": DIGEST})}),
    ("orders", {"services.orders.env": '{"ERP_ORDER_PENDING_MAX_DRIVES": "5"}'}),
    ("orders", {"services.orders.resources": '{"requests": {"cpu": "200m", "memory": "256Mi"}, '
                                             '"limits": {"cpu": "2", "memory": "1Gi"}}'}),
    ("orders", {"services.orders.podAnnotations": '{"team": "sales"}'}),
    ("orders", {"services.orders.containerSecurityContext": '{"runAsUser": 20000}'}),
    ("finance", {"services.finance.env": '{"ERP_FINANCE_TAX_RATE": "0.19"}'}),
    ("notification", {"services.notification.secretEnv.ERP_WEBHOOK_SECRET":
                      '{"secretName": "other", "key": "webhook-secret"}'}),
    ("inventory", {"services.inventory.postgresql.host": '"inventory-db.example.com"'}),
    ("gateway", {"gateway.image": '{"tag": "0.2.0"}'}),
    ("gateway", {"gateway.rateLimits": '"read=100/200,write=10/20,report=1/5"'}),
    ("gateway", {"gateway.env": '{"ERP_GATEWAY_HEALTH_TIMEOUT_SECONDS": "2"}'}),
    ("gateway", {"gateway.podAnnotations": '{"team": "edge"}'}),
])
def test_a_change_to_one_service_rolls_only_that_service(helm, changed, set_json):
    """Render twice, one service's value changed: every other Deployment's pod template is byte for byte the
    same (so Kubernetes keeps its ReplicaSet and pods), and the changed one's differs."""
    before = _templates(helm, {})
    after = _templates(helm, set_json)
    assert set(before) == set(after) == {*SERVICES, "gateway"}
    rolled = sorted(name for name in before if before[name] != after[name])
    assert rolled == [changed]


def test_what_every_service_uses_rolls_every_service(helm):
    """The other side of it: a shared value a service actually uses (its log level) rolls all of them."""
    before = _templates(helm, {})
    after = _templates(helm, {"config.logLevel": '"DEBUG"'})
    assert all(before[name] != after[name] for name in before)


def test_default_security_contexts_are_restricted_and_from_values(renderings):
    """The defaults come from values.yaml (podSecurityContext, containerSecurityContext) and meet the
    restricted Pod Security Standard (test_chart.py checks every pod of every combination, checkov too)."""
    assert VALUES["podSecurityContext"]["runAsNonRoot"] is True
    assert VALUES["containerSecurityContext"]["allowPrivilegeEscalation"] is False
    for where, spec in pod_specs(documents(renderings["defaults"])):
        assert spec["securityContext"] == VALUES["podSecurityContext"], where
        for container in spec["containers"] + spec.get("initContainers", []):
            assert container["securityContext"] == VALUES["containerSecurityContext"], where


def test_security_contexts_are_overridable_globally_and_per_service(helm):
    docs = render(helm, set_json={
        "podSecurityContext.fsGroupChangePolicy": '"OnRootMismatch"',
        "services.crm.podSecurityContext": '{"runAsUser": 20000, "runAsGroup": 20000, "fsGroup": 20000}',
        "services.crm.containerSecurityContext": '{"runAsUser": 20000, "runAsGroup": 20000}',
        "gateway.containerSecurityContext": '{"seccompProfile": {"type": "Localhost", '
                                            '"localhostProfile": "profiles/erp.json"}}',
    })
    deployments = _deployments(docs)
    crm = deployments["crm"]["spec"]["template"]["spec"]
    assert crm["securityContext"] == {**VALUES["podSecurityContext"], "fsGroupChangePolicy": "OnRootMismatch",
                                      "runAsUser": 20000, "runAsGroup": 20000, "fsGroup": 20000}
    assert crm["containers"][0]["securityContext"] == {**VALUES["containerSecurityContext"],
                                                       "runAsUser": 20000, "runAsGroup": 20000}
    orders = deployments["orders"]["spec"]["template"]["spec"]
    assert orders["securityContext"]["runAsUser"] == 10001
    assert orders["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    gateway = deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert gateway["seccompProfile"] == {"type": "Localhost", "localhostProfile": "profiles/erp.json"}
    assert gateway["capabilities"] == {"drop": ["ALL"]}


def test_openshift_assigns_the_user_ids(helm, tmp_path):
    """runAsUser, runAsGroup and fsGroup can be left out (null) everywhere or per service, so OpenShift's
    restricted-v2 SCC assigns the namespace's ids; what stays still meets the restricted profile."""
    openshift = tmp_path / "openshift.yaml"
    openshift.write_text(yaml.safe_dump({
        "podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None},
        "containerSecurityContext": {"runAsUser": None, "runAsGroup": None},
    }))
    docs = render(helm, [openshift])
    specs = list(pod_specs(docs))
    assert len(specs) >= len(SERVICES) + 2  # the services, the gateway, migrations, the connection test
    for where, spec in specs:
        assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(spec["securityContext"]), where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert not {"runAsUser", "runAsGroup"} & set(ctx), where
            assert ctx["runAsNonRoot"] is True and ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
    # one service only, with null in its own override
    docs = render(helm, set_json={"services.orders.podSecurityContext": '{"runAsUser": null, "fsGroup": null}',
                                  "services.orders.containerSecurityContext": '{"runAsUser": null}'})
    deployments = _deployments(docs)
    orders = deployments["orders"]["spec"]["template"]["spec"]
    assert "runAsUser" not in orders["securityContext"] and "fsGroup" not in orders["securityContext"]
    assert "runAsUser" not in orders["containers"][0]["securityContext"]
    assert deployments["crm"]["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("containerSecurityContext.allowPrivilegeEscalation", "true", "allowPrivilegeEscalation"),
    ("services.orders.containerSecurityContext", '{"privileged": true}', "privileged"),
    ("gateway.containerSecurityContext", '{"capabilities": {"drop": ["NET_RAW"]}}', "capabilities"),
    ("containerSecurityContext.capabilities", '{"drop": ["ALL"], "add": ["SYS_ADMIN"]}', "capabilities/add/0"),
    ("podSecurityContext.runAsNonRoot", "false", "runAsNonRoot"),
    ("podSecurityContext.runAsUser", "0", "runAsUser"),
    ("services.crm.podSecurityContext", '{"seccompProfile": {"type": "Unconfined"}}', "seccompProfile/type"),
    ("services.crm.podSecurityContext", '{"runAsUsr": 1000}', "'runAsUsr' not allowed"),
    ("services.crm.image", '{"digest": "latest"}', "does not match pattern"),
    ("gateway.image", '{"repo": "x"}', "'repo' not allowed"),
])
def test_schema_keeps_overrides_within_the_restricted_profile(helm, flag, value, expected):
    with pytest.raises(HelmError) as failure:
        helm_template(helm, set_json={flag: value})
    assert "values don't meet the specifications of the schema" in str(failure.value)
    assert expected in str(failure.value)
