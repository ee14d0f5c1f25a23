"""The chart, statically: lint, schema, Kubernetes validation, policy checks, and what it promises.

Runs the real helm (v4) on the value combinations in helm/erp/ci/ (plus the defaults), validates every
rendered manifest with kubernetes-validate --strict against the oldest Kubernetes the chart supports
(Chart.yaml kubeVersion) and the newest that kubernetes-validate knows, validates the custom resources
with the strict subset schemas in crd_schemas.py, and runs checkov on everything.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.chart import crd_schemas
from tests.chart.conftest import (
    CHART,
    COMBINATIONS,
    K8S,
    HelmError,
    documents,
    helm_template,
    pod_specs,
    render,
)

KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # Chart.yaml kubeVersion floor, and the newest known here
# checkov checks the chart skips, each with its reason in an annotation next to the resource.
ALLOWED_CHECKOV_SKIPS = {"CKV_K8S_43", "CKV_K8S_35", "CKV_K8S_15"}
# Probes mean nothing on a Pod that runs once to completion (helm test's connection test): skipped on Pods only.
POD_CHECKOV_SKIPS = {"CKV_K8S_8", "CKV_K8S_9"}


def test_chart_declares_the_kubernetes_versions_we_validate_against():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={KUBERNETES_VERSIONS[0]}-0"


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_helm_lint_strict(helm, combination):
    cmd = [str(helm), "lint", "--strict", str(CHART)]
    for path in COMBINATIONS[combination]:
        cmd += ["-f", str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout, out.stdout


def _kubernetes_validate(files: list[Path]) -> None:
    exe = Path(sys.executable).with_name("kubernetes-validate")
    assert exe.exists(), "kubernetes-validate is missing: it comes with the dev extra (make install)"
    custom = []
    for version in KUBERNETES_VERSIONS:
        out = subprocess.run([str(exe), "--strict", "--quiet", "-k", version, *map(str, files)],
                             capture_output=True, text=True, timeout=300)
        lines = (out.stdout + out.stderr).strip().splitlines()
        errors = [line for line in lines if not line.startswith("WARN")]
        assert out.returncode == 0 and not errors, f"Kubernetes {version}:\n" + "\n".join(lines)
        for line in lines:
            found = re.search(r"Couldn't find schema for kind (\S+) with api version (\S+)", line)
            assert found, f"unexpected warning from kubernetes-validate: {line}"
            custom.append((found.group(2), found.group(1)))
    unknown = set(custom) - set(crd_schemas.SCHEMAS)
    assert not unknown, f"custom resources without a schema in crd_schemas.py: {sorted(unknown)}"


def _validate_custom_resources(docs: list[dict]) -> int:
    count = 0
    for doc in docs:
        schema = crd_schemas.SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if schema is None:
            continue
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
        count += 1
    return count


def test_rendered_manifests_are_valid_kubernetes(renderings, tmp_path):
    files = []
    for name, text in renderings.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        files.append(path)
    _kubernetes_validate(files)
    customs = _validate_custom_resources([d for text in renderings.values() for d in documents(text)])
    assert customs >= 6  # PeerAuthentication, AuthorizationPolicy, DestinationRule, ServiceMonitor...


def test_platform_manifests_are_valid_kubernetes():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == [p.name for p in manifests]
    _kubernetes_validate(manifests)
    docs = [d for p in manifests for d in documents(p.read_text())]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    clusters = [d for d in docs if d["kind"] == "Cluster"]
    assert len(clusters) == len(values["services"]), "one CloudNativePG Cluster per service of the chart"
    assert _validate_custom_resources(docs) == len(clusters) + 1  # the CloudNativePG clusters, one RabbitmqCluster
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("RabbitmqCluster", "erp-rabbitmq") in kinds
    rabbit = next(d for d in docs if d["kind"] == "RabbitmqCluster")
    assert rabbit["spec"]["replicas"] == 3
    assert "default_queue_type = quorum" in rabbit["spec"]["rabbitmq"]["additionalConfig"]
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_platform_manifests_match_the_chart_defaults():
    """The Secrets, Services and labels the chart's defaults point at are the ones k8s/ creates."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    docs = [d for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml" for d in documents(p.read_text())]
    clusters = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Cluster"}
    for name, svc in values["services"].items():
        if not svc["enabled"]:
            continue
        pg = svc["postgresql"]
        cluster_name = pg["host"].removesuffix("-rw")
        assert cluster_name in clusters, f"services.{name}: no CloudNativePG Cluster {cluster_name} in k8s/"
        assert pg["existingSecret"] == f"{cluster_name}-app"
        assert clusters[cluster_name]["spec"]["bootstrap"]["initdb"]["database"] == pg["database"]
        assert pg["networkPeers"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": cluster_name}}}]
    rabbit = next(d for d in docs if d["kind"] == "RabbitmqCluster")["metadata"]["name"]
    assert values["amqp"]["host"] == rabbit and values["amqp"]["existingSecret"] == f"{rabbit}-default-user"
    redis_service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == values["redis"]["host"])
    assert redis_service["spec"]["ports"][0]["port"] == values["redis"]["port"]
    redis = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == values["redis"]["host"])
    assert redis["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == \
        values["redis"]["existingSecret"]
    # Secrets nothing in k8s/ generates (Redis's password, the webhook key): k8s/README.md creates each one.
    readme = (K8S / "README.md").read_text()
    for name, svc in values["services"].items():
        for setting, ref in (svc.get("secretEnv") or {}).items():
            assert re.search(rf"create secret generic {re.escape(ref['secretName'])} .*--from-literal={re.escape(ref['key'])}=",
                             readme), f"services.{name}.secretEnv.{setting}: k8s/README.md never creates that Secret/key"


def test_checkov_finds_nothing_unexplained(checkov, renderings, tmp_path):
    scan = tmp_path / "scan"
    scan.mkdir()
    for name, text in renderings.items():
        (scan / f"chart-{name}.yaml").write_text(text)
    for path in K8S.glob("*.yaml"):
        if path.name != "kustomization.yaml":
            (scan / f"k8s-{path.name}").write_text(path.read_text())
    out = subprocess.run([str(checkov), "-d", str(scan), "--framework", "kubernetes", "--skip-download",
                          "-o", "json", "--compact"], capture_output=True, text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"})
    assert out.stdout.strip().startswith(("{", "[")), out.stdout[-2000:] + out.stderr[-3000:]
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    results = reports[0]["results"]
    assert reports[0]["summary"]["parsing_errors"] == 0
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']}, {c['file_path']})" for c in results["failed_checks"]]
    assert not failed, "checkov failures:\n" + "\n".join(failed)
    for check in results["skipped_checks"]:
        assert check["check_id"] in ALLOWED_CHECKOV_SKIPS or (
            check["check_id"] in POD_CHECKOV_SKIPS and check["resource"].startswith("Pod.")), \
            f"unexpected skip {check['check_id']} on {check['resource']}"
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason) > 20, f"skip without a reason: {check['check_id']} on {check['resource']}"
    checked = {c["resource"].split(".")[0] for c in results["passed_checks"]}
    assert {"Deployment", "Job"} <= checked
    assert len(results["passed_checks"]) > 500


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("serviceDefaults.autoscaling.enabeld", "false", "'enabeld' not allowed"),
    ("services.inventory.replicaz", "3", "'replicaz' not allowed"),
    ("metrics.servicemonitor.enabled", "true", "'servicemonitor' not allowed"),
    ("istio.outlierDetection.consecutive5XXErrors", "5", "'consecutive5XXErrors' not allowed"),
    ("postgresql.password", '"hunter2"', "'password' not allowed"),  # no place for a plaintext secret
    ("services.inventory.port", '"50051"', "want integer"),
    ("config.logFormat", '"xml"', "value must be one of"),
    ("image.digest", '"latest"', "does not match pattern"),
    ("services.orders.calls", '{"inventory": ["get_stock"]}', "does not match pattern"),
    ("services.notification.secretEnv.ERP_WEBHOOK_SECRET", '"hunter2"', "want object"),  # a reference, never a value
    ("services.notification.egress", '[{"ports": [{"port": 443}]}]', "missing property 'to'"),  # "anywhere" is explicit
    ("services.notification.egress", '[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]', "missing property 'ports'"),
])
def test_schema_rejects_misspelled_and_wrong_typed_values(helm, flag, value, expected):
    with pytest.raises(HelmError) as failure:
        helm_template(helm, set_json={flag: value})
    assert "values don't meet the specifications of the schema" in str(failure.value)
    assert expected in str(failure.value)


@pytest.mark.parametrize(("set_json", "expected"), [
    ({"services.crm.enabled": "false", "services.orders.calls": '{"crm": ["*"]}'},
     'calls "crm", which is not an enabled service'),
    ({"config.env": '{"ERP_AMQP_URL": "amqp://guest:guest@rabbit/"}'}, "sets ERP_AMQP_URL, which the chart sets"),
    ({"services.orders.env": '{"ERP_ORDERS_DATABASE_URL": "x"}'}, "sets ERP_ORDERS_DATABASE_URL"),
    ({"services.inventory.postgresql.existingSecret": '""'}, "existingSecret (or postgresql.existingSecret) is required"),
    ({"amqp.existingSecret": '""'}, "amqp.existingSecret is required"),
    ({"services.inventory.postgresql.networkPeers": "[]"}, "could not reach its database"),
    ({"loadtest.enabled": "true", "services.crm.enabled": "false"}, 'loadtest.calls names "crm"'),
    ({"services.notification.env": '{"ERP_WEBHOOK_SECRET": "hunter2"}'}, "sets ERP_WEBHOOK_SECRET as a plain value"),
    ({"config.env": '{"ERP_SMTP_PASSWORD": "hunter2"}'}, "sets ERP_SMTP_PASSWORD as a plain value"),
    ({"services.notification.secretEnv.ERP_WEBHOOK_SECRET": "null"},
     "services.notification.secretEnv.ERP_WEBHOOK_SECRET is required"),
    ({"services.crm.secretEnv.ERP_WEBHOOK_SIGNING_KEY": "null"},
     "services.crm.secretEnv.ERP_WEBHOOK_SIGNING_KEY is required"),
    ({"services.notification.secretEnv.ERP_WEBHOOK_SIGNING_KEY": "null"},
     "services.notification.secretEnv.ERP_WEBHOOK_SIGNING_KEY is required"),
    ({"services.crm.secretEnv": '{"ERP_AMQP_URL": {"secretName": "mine", "key": "url"}}'},
     "sets ERP_AMQP_URL, which the chart sets"),
    ({"services.finance.secretEnv": '{"ERP_FINANCE_TAX_RATE": {"secretName": "tax", "key": "rate"}}'},
     "ERP_FINANCE_TAX_RATE is set both as a plain value (env) and from a Secret"),
])
def test_templates_refuse_settings_that_cannot_work(helm, set_json, expected):
    with pytest.raises(HelmError) as failure:
        helm_template(helm, set_json=set_json)
    assert expected in str(failure.value)


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_pods_meet_the_restricted_pod_security_standard(renderings, combination):
    docs = documents(renderings[combination])
    specs = list(pod_specs(docs))
    assert specs
    for where, spec in specs:
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["enableServiceLinks"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert ctx["runAsUser"] >= 10000, where
            assert "limits" in container["resources"] and "requests" in container["resources"], where
    for doc in docs:
        if doc["kind"] == "ServiceAccount":
            assert doc["automountServiceAccountToken"] is False


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_no_secret_is_rendered_as_plain_text(renderings, combination):
    """Credentials reach the pods only as secretKeyRef env vars, referenced in URLs as $(VAR)."""
    for where, spec in pod_specs(documents(renderings[combination])):
        for container in spec["containers"]:
            defined: list[str] = []
            for env in container.get("env", []):
                value = env.get("value", "")
                userinfo = re.search(r"://([^@/]*)@", value)
                if userinfo:
                    for part in userinfo.group(1).split(":"):
                        assert part == "" or re.fullmatch(r"\$\([A-Z0-9_]+\)", part), \
                            f"{where}: {env['name']} has credentials in plain text"
                for ref in re.findall(r"\$\(([A-Z0-9_]+)\)", value):
                    assert ref in defined, f"{where}: {env['name']} uses $({ref}) before it is defined"
                if "valueFrom" in env:  # a Secret, or the pod's own name (otel: k8s.pod.name=$(POD_NAME))
                    assert set(env["valueFrom"]) == {"secretKeyRef"} or \
                        env["valueFrom"] == {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}, where
                assert not re.search(r"(?i)password|secret|token", env["name"]) or "valueFrom" in env, \
                    f"{where}: {env['name']} looks like a secret but is a plain value"
                defined.append(env["name"])
    assert "kind: Secret" not in renderings[combination]
    for doc in documents(renderings[combination]):
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "erp-notification":
            env = {e["name"]: e for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert set(env["ERP_WEBHOOK_SECRET"]["valueFrom"]) == {"secretKeyRef"}


def test_every_pod_is_behind_default_deny_and_opens_only_what_it_needs(renderings):
    docs = documents(renderings["all-features"])
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = next(p for p in policies if p["metadata"]["name"] == "erp-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny["spec"] \
        and "egress" not in deny["spec"]

    def selects(policy, labels):
        return all(labels.get(k) == v for k, v in policy["spec"]["podSelector"]["matchLabels"].items())

    for where, _ in pod_specs(docs):
        kind, name = where.split("/")
        doc = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
        labels = (doc if kind == "Pod" else doc["spec"]["template"])["metadata"]["labels"]
        assert selects(deny, labels), f"{where} is not covered by the default deny"
        own = [p for p in policies if p is not deny and selects(p, labels)]
        assert len(own) == 1, f"{where}: expected one allow policy, got {[p['metadata']['name'] for p in own]}"
        egress_ports = {port["port"] for rule in own[0]["spec"]["egress"] for port in rule["ports"]}
        assert 53 in egress_ports, f"{where} cannot resolve names"
        if name == "erp-gateway":  # no database, no events: Redis (rate limits), istiod, the services, the issuer
            assert {6380, 15012, 50051, 50052, 50053, 50054, 50056, 443} <= egress_ports
            assert not {5432, 5671} & egress_ports, "the gateway reaches no database and no broker"
        elif kind == "Deployment":
            assert {5432, 6380, 5671, 15012} <= egress_ports, where  # PostgreSQL, Redis, RabbitMQ (TLS), istiod
    orders = next(p for p in policies if p["metadata"]["name"] == "erp-orders")
    inventory = next(p for p in policies if p["metadata"]["name"] == "erp-inventory")
    # orders calls inventory: egress from orders, ingress to inventory, on inventory's gRPC port only.
    assert any(port["port"] == 50051 for rule in orders["spec"]["egress"] for port in rule["ports"])
    grpc_in = next(r for r in inventory["spec"]["ingress"] if r["ports"] == [{"protocol": "TCP", "port": 50051}])
    callers = [peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") for peer in grpc_in["from"]]
    assert {"orders", "loadtest", "gateway"} <= set(callers)
    # nobody calls orders inside the release except the API gateway and the load test (and the ingress
    # gateway namespace)
    grpc_in = next(r for r in orders["spec"]["ingress"] if r["ports"] == [{"protocol": "TCP", "port": 50052}])
    assert {"gateway", "loadtest", None} == {p.get("podSelector", {}).get("matchLabels", {})
                                             .get("app.kubernetes.io/component") for p in grpc_in["from"]}


PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"}


def _egress_ports(policy: dict) -> set[int]:
    return {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}


def test_services_talk_over_events_and_only_notification_leaves_the_cluster(renderings):
    """The services talk over RabbitMQ events; the one gRPC call inside the release is procurement
    asking inventory about SKUs. Notification alone reaches outside: webhooks on 443 anywhere but
    the private ranges."""
    docs = documents(renderings["defaults"])
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    base = {53, 5432, 6379, 5672}  # DNS, its database, Redis, RabbitMQ
    grpc_ports = {s["port"] for s in yaml.safe_load((CHART / "values.yaml").read_text())["services"].values()}
    for name in ("inventory", "orders", "crm", "finance"):
        assert _egress_ports(policies[f"erp-{name}"]) == base, name
    assert _egress_ports(policies["erp-procurement"]) == base | {50051}, "procurement asks inventory"
    for name in ("inventory", "orders", "crm", "finance", "procurement", "notification"):
        grpc_in = [r for r in policies[f"erp-{name}"]["spec"]["ingress"] if {p["port"] for p in r["ports"]} & grpc_ports]
        callers = sorted(peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                         for r in grpc_in for peer in r["from"])
        expected = ["gateway", "procurement"] if name == "inventory" else ["gateway"]
        assert callers == expected, f"{name}: only the API gateway (and, for inventory, procurement) calls it"
    notification = policies["erp-notification"]
    assert _egress_ports(notification) == base | {443}
    extra = [r for r in notification["spec"]["egress"] if r["ports"] == [{"protocol": "TCP", "port": 443}]]
    assert len(extra) == 1 and len(extra[0]["to"]) == 1
    block = extra[0]["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0" and PRIVATE_RANGES <= set(block["except"]), \
        "webhooks (customer-chosen URLs) must not reach the cluster, the VPC or the metadata endpoint"
    # the migration Job reaches every enabled service's database and RabbitMQ (to declare the topology), nothing else
    migrations = policies["erp-migrations"]
    assert _egress_ports(migrations) == {53, 5432, 5672}
    peers = [p["podSelector"]["matchLabels"]["cnpg.io/cluster"] for r in migrations["spec"]["egress"]
             for p in r["to"] if "podSelector" in p and "cnpg.io/cluster" in p["podSelector"]["matchLabels"]]
    assert sorted(peers) == sorted(f"erp-{n}-db" for n in ("inventory", "orders", "crm", "finance", "procurement",
                                                            "notification"))
    # all-features narrows notification's egress to known receivers plus the SMTP relay: the list replaces the default
    narrowed = next(d for d in documents(renderings["all-features"])
                    if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "erp-notification")
    cidrs = {p["ipBlock"]["cidr"] for r in narrowed["spec"]["egress"] for p in r["to"] if "ipBlock" in p}
    assert cidrs == {"203.0.113.0/24", "198.51.100.16/28"}
    assert {25, 443, 8443} <= _egress_ports(narrowed)


def test_istio_allows_each_method_only_to_its_callers(renderings):
    docs = documents(renderings["all-features"])
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "AuthorizationPolicy"}
    inventory = policies["erp-inventory"]["spec"]
    assert inventory["action"] == "ALLOW"
    by_caller = {tuple(r["from"][0]["source"].get("principals", r["from"][0]["source"].get("namespaces", [])))
                 : r["to"][0]["operation"]["paths"] for r in inventory["rules"] if "from" in r}
    assert by_caller[("cluster.local/ns/erp/sa/erp-orders",)][:2] == [
        "/erp.inventory.v1.InventoryService/GetStock", "/erp.inventory.v1.InventoryService/BatchGetStock"]
    assert "/erp.inventory.v1.InventoryService/*" in by_caller[("cluster.local/ns/erp/sa/erp-loadtest",)]
    assert not any("AdjustStock" in p or "*" in p for p in by_caller[("cluster.local/ns/integrations/sa/stock-sync",)])
    metrics_rule = next(r for r in inventory["rules"] if "from" not in r)
    assert metrics_rule["to"][0]["operation"] == {"ports": ["9464"], "methods": ["GET"], "paths": ["/metrics"]}
    # The event-driven services: no other service of the release is granted anything (they talk over
    # RabbitMQ), each outside caller exactly its methods, the load test everything.
    health = ["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"]
    expected = {
        "crm": ("erp.crm.v1.CustomerService", 50053, {
            ("istio-ingress",): ["CreateCustomer", "GetCustomer", "ListCustomers"],
            ("cluster.local/ns/backoffice/sa/credit-desk",): ["UpdateCustomerStatus", "SetCreditLimit"]}),
        "finance": ("erp.finance.v1.FinanceService", 50054, {
            ("cluster.local/ns/backoffice/sa/accounting",):
                ["GetTrialBalance", "GetReceivablesAging", "ListJournalEntries", "ListInvoices"],
            ("cluster.local/ns/payments/sa/psp-callbacks",): ["RecordPayment"]}),
        "notification": ("erp.notification.v1.NotificationService", 50056, {
            ("cluster.local/ns/backoffice/sa/support-desk",): ["ListDeliveries"]}),
    }
    for name, (grpc_service, port, callers) in expected.items():
        rules = [r for r in policies[f"erp-{name}"]["spec"]["rules"] if "from" in r]
        got = {tuple(r["from"][0]["source"].get("principals", r["from"][0]["source"].get("namespaces", [])))
               : r["to"][0]["operation"] for r in rules}
        assert not [who for who in got if any("/ns/erp/sa/" in w and not w.endswith("/erp-loadtest") for w in who)], \
            f"{name}: a service of the release is granted calls, but the services talk only over events"
        assert got.pop(("cluster.local/ns/erp/sa/erp-loadtest",))["paths"] == [f"/{grpc_service}/*", *health]
        assert {who: op["paths"] for who, op in got.items()} == \
            {who: [f"/{grpc_service}/{m}" for m in methods] + health for who, methods in callers.items()}, name
        assert all(op["ports"] == [str(port)] for op in got.values()), name
    peer = next(d for d in docs if d["kind"] == "PeerAuthentication")["spec"]
    assert peer["mtls"]["mode"] == "STRICT" and peer["portLevelMtls"] == {9464: {"mode": "PERMISSIVE"}}
    rule = next(d for d in docs if d["kind"] == "DestinationRule")["spec"]["trafficPolicy"]
    assert rule["connectionPool"]["http"]["http2MaxRequests"] > 0 and rule["outlierDetection"]["consecutive5xxErrors"] > 0
    # Sidecars: on the services and the load test, off on the migration Job (it would never complete).
    for where, _spec in pod_specs(docs):
        kind, name = where.split("/")
        doc = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
        inject = (doc if kind == "Pod" else doc["spec"]["template"])["metadata"]["labels"].get("sidecar.istio.io/inject")
        assert inject == ("false" if name == "erp-migrations" else "true"), where


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_deployments_autoscale_survive_disruptions_and_drain(renderings, combination):
    docs = documents(renderings[combination])
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert deployments
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        hpa = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler" and d["metadata"]["name"] == name]
        pdb = [d for d in docs if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == name]
        if combination == "minimal":
            assert not hpa and not pdb and deployment["spec"]["replicas"] == 1
        else:
            assert hpa and "replicas" not in deployment["spec"], "the HPA owns replicas"
            assert pdb and pdb[0]["spec"]["maxUnavailable"] == 1
            assert deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"] == \
                "kubernetes.io/hostname"
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        grace = int(env["ERP_SHUTDOWN_GRACE_SECONDS"])
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert grace == values["config"]["shutdownGraceSeconds"]
        assert pod["terminationGracePeriodSeconds"] > pre_stop + grace, "kubelet would kill the pod mid-drain"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == int(env["ERP_GRPC_PORT"]), probe
        assert container["ports"][0] == {"name": "grpc", "containerPort": int(env["ERP_GRPC_PORT"]), "protocol": "TCP"}


def test_migrations_run_as_a_hook_before_the_pods(renderings):
    docs = documents(renderings["defaults"])
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "erp-migrations")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    hook_objects = [d for d in docs if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "pre-install,pre-upgrade"]
    assert {d["kind"] for d in hook_objects} == {"Job", "ServiceAccount", "NetworkPolicy"}
    assert all(int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
               for d in hook_objects if d is not job), "its ServiceAccount and NetworkPolicy must exist first"
    services = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] != "erp-gateway"]  # no database
    for deployment in services:
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["ERP_MIGRATE_ON_START"] == "false"
    # It migrates exactly the enabled services, each with its own database URL.
    container = job["spec"]["template"]["spec"]["containers"][0]
    services = sorted(d["metadata"]["name"].removeprefix("erp-") for d in services)
    assert container["args"] == services == ["crm", "finance", "inventory", "notification", "orders", "procurement"]
    urls = {e["name"] for e in container["env"] if e["name"].endswith("_DATABASE_URL")}
    assert urls == {f"ERP_{name.upper()}_DATABASE_URL" for name in services}
    minimal = documents(renderings["minimal"])
    assert not [d for d in minimal if d["kind"] == "Job"]
    env = {e["name"]: e.get("value") for d in minimal if d["kind"] == "Deployment"
           for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ERP_MIGRATE_ON_START"] == "true", "without the Job the services must migrate themselves"


def test_every_consumer_and_the_migrations_job_declare_queues_with_one_consumers_setting(helm):
    """ERP_AMQP_CONSUMERS is a queue argument: a service or the Job declaring it otherwise would fail
    its start (TopologyMismatch), so it is one chart value, not a per-service env."""
    for value in ("single", "competing"):
        docs = documents(helm_template(helm, set_json={"config.amqpConsumers": f'"{value}"'}))
        pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")
                and d["metadata"]["name"] not in ("erp-gateway",) and "loadtest" not in d["metadata"]["name"]]
        assert len(pods) == 7  # six services and the migrations Job
        assert {e.get("value") for p in pods for e in p["containers"][0]["env"]
                if e["name"] == "ERP_AMQP_CONSUMERS"} == {value}
        assert all(any(e["name"] == "ERP_AMQP_CONSUMERS" for e in p["containers"][0]["env"]) for p in pods)
    with pytest.raises(HelmError, match="value must be one of"):
        helm_template(helm, set_json={"config.amqpConsumers": '"all"'})
    with pytest.raises(HelmError, match="sets ERP_AMQP_CONSUMERS, which the chart sets"):
        helm_template(helm, set_json={"services.crm.env": '{"ERP_AMQP_CONSUMERS": "competing"}'})


def test_loadtest_job_runs_locust_headless_with_csv(renderings):
    docs = documents(renderings["all-features"])
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "erp-loadtest")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = job["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][0]
    assert 'locust -f "loadtests/$LOCUST_FILE" --headless' in script and "--csv" in script
    assert "--host 'dns:///erp-orders.erp.svc:50052'" in script and "'--tags' 'checkout'" in script
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LOCUST_FILE"] == "order_flow.py"
    assert env["ERP_TARGET"] == "erp-gateway.erp.svc:50050"  # through the gateway (tests/chart/test_loadtest_chart.py)
    assert not [d for d in documents(renderings["defaults"]) if d["metadata"]["name"] == "erp-loadtest"]


def test_targets_use_headless_services_for_client_side_balancing(helm):
    docs = render(helm, set_json={"services.orders.calls": '{"inventory": ["GetStock"]}'})
    orders = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "erp-orders")
    env = {e["name"]: e.get("value") for e in orders["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ERP_INVENTORY_TARGET"] == "dns:///erp-inventory-headless.erp.svc:50051"
    headless = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "erp-inventory-headless")
    assert headless["spec"]["clusterIP"] == "None"
    inventory = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "erp-inventory")
    names = {e["name"] for e in inventory["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not any(n.endswith("_TARGET") for n in names), "inventory calls no one: it gets no targets"


def test_dockerfile_is_hadolint_clean_and_runs_as_non_root(hadolint):
    dockerfile = CHART.parents[1] / "Dockerfile"
    out = subprocess.run([str(hadolint), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    text = dockerfile.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+$", text, re.M), "base image pinned to a release"
    assert re.findall(r"^USER (.+)$", text, re.M) == ["10001:10001", "10001:10001"]
    assert "-c requirements.lock" in text
    # the user the chart runs as is the one the image creates
    assert "--uid 10001" in text and "runAsUser: 10001" in (CHART / "values.yaml").read_text()
    ignore = (CHART.parents[1] / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*" or "*" in ignore, ".dockerignore starts from an allow-list"
