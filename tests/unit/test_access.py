"""Every RPC carries its access rule, and the rules are coherent."""
from __future__ import annotations

from google.api import annotations_pb2

from mesh import access
from services.gateway.ratelimit import RATE_CLASSES


def test_every_rpc_has_an_access_option():
    missing = access.without_rule()
    assert not missing, (
        "these RPCs have no (erp.options.v1.access) option; give each one, e.g.\n"
        '    option (erp.options.v1.access) = {scopes: ["procurement.write"] rate_class: "write"};\n'
        "then run `make protos` and `make gateway-generate`:\n  " + "\n  ".join(missing))


def test_rules_are_coherent():
    assert access.table()
    for rule in access.table().values():
        assert rule.rate_class in RATE_CLASSES, f"{rule.method}: unknown rate class {rule.rate_class!r}"
        assert not (rule.public and rule.internal_only), f"{rule.method}: public and internal-only at once"
        assert rule.public or rule.scopes or rule.internal_only, f"{rule.method}: neither public nor scoped"
        assert all(s and " " not in s for s in rule.scopes), f"{rule.method}: empty or spaced scope"


def test_every_edge_rpc_has_an_http_rule():
    no_route = [access.grpc_path(m) for m in access.methods()
                if not m.GetOptions().HasExtension(annotations_pb2.http)
                and not (access.rule_of(m) and access.rule_of(m).internal_only)]
    assert not no_route, "RPCs reachable through the gateway without a google.api.http rule:\n  " + "\n  ".join(no_route)


def test_a_scope_is_granted_whole_never_by_prefix():
    rule = access.Rule("/x.v1.S/M", frozenset({"orders.read"}))
    assert rule.grants({"orders.read", "other"})
    assert not rule.grants({"orders"})
    assert not rule.grants({"orders.rea"})
    assert not rule.grants({"orders.read.all"})
    assert not rule.grants(set())
    assert access.Rule("/x.v1.S/P", frozenset(), public=True).grants(set())
