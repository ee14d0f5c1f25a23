"""The gateway's Istio AuthorizationPolicy is generated from the protos' access options, is current,
and admits the gateway to every RPC reachable from outside, and to nothing else."""
from __future__ import annotations

import yaml

from mesh import access
from services.gateway import policy
from tests.chart.conftest import CHART, documents

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def test_the_generated_policy_is_current():
    assert policy.PATH.read_text() == policy.render(), \
        f"{policy.PATH.relative_to(CHART.parents[1])} is stale: run `make gateway-generate` and commit it"


def test_every_rpc_reachable_from_outside_has_a_gateway_policy(renderings):
    docs = documents(renderings["mesh"])  # Istio on, every service enabled
    granted = {}
    for doc in docs:
        if doc["kind"] == "AuthorizationPolicy" and doc["metadata"]["name"].endswith("-from-gateway"):
            (rule,) = doc["spec"]["rules"]
            assert rule["from"][0]["source"]["principals"] == ["cluster.local/ns/erp/sa/erp-gateway"]
            granted.update({path: doc["metadata"]["name"] for path in rule["to"][0]["operation"]["paths"]})
    missing, extra = [], dict(granted)
    for rule in access.table().values():
        if rule.internal_only:
            assert rule.method not in granted, f"{rule.method} is internal-only but the gateway is admitted"
            continue
        domain = rule.method.lstrip("/").split(".")[1]
        if domain not in VALUES["services"]:
            missing.append(f"{rule.method} (no services.{domain} in values.yaml)")
        elif extra.pop(rule.method, None) is None:
            missing.append(rule.method)
    assert not missing, "RPCs with no gateway AuthorizationPolicy (run `make gateway-generate`):\n  " + "\n  ".join(missing)
    assert not extra, f"the gateway is admitted to methods that do not exist: {sorted(extra)}"
