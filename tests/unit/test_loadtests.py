"""The load test verdict (loadtests/run.py): thresholds checked against synthetic Locust stats rows. No I/O."""
from __future__ import annotations

from loadtests.run import _seconds, evaluate, table


def row(name, type_="grpc", requests=1000, failures=0, p50="2", p95="5", p99="8", rps="900.5"):
    return {"Type": type_, "Name": name, "Request Count": str(requests), "Failure Count": str(failures),
            "50%": p50, "95%": p95, "99%": p99, "Requests/s": rps}


def by_metric(verdicts):
    return {(v.row, v.metric): v.ok for v in verdicts}


def test_all_thresholds_met_pass():
    verdicts = evaluate("s", [row("GetStock")], [
        {"name": "GetStock", "p50_ms": 3, "p95_ms": 6, "p99_ms": 10, "max_failure_ratio": 0, "min_rps": 600}])
    assert all(v.ok for v in verdicts)
    assert {v.metric for v in verdicts} == {"p50_ms", "p95_ms", "p99_ms", "max_failure_ratio", "min_rps", "min_requests"}


def test_each_missed_threshold_fails_on_its_own():
    rows = [row("GetStock", p99="12", rps="450.0", failures=2)]
    verdicts = by_metric(evaluate("s", rows, [
        {"name": "GetStock", "p50_ms": 3, "p99_ms": 10, "max_failure_ratio": 0, "min_rps": 600}]))
    assert verdicts[("GetStock", "p50_ms")] is True
    assert verdicts[("GetStock", "p99_ms")] is False
    assert verdicts[("GetStock", "max_failure_ratio")] is False
    assert verdicts[("GetStock", "min_rps")] is False


def test_failure_ratio_is_failures_over_requests():
    rows = [row("Aggregated", type_="", requests=2000, failures=1)]
    assert evaluate("s", rows, [{"name": "Aggregated", "max_failure_ratio": 0.001}])[0].ok
    assert not evaluate("s", rows, [{"name": "Aggregated", "max_failure_ratio": 0.0001}])[0].ok


def test_type_distinguishes_rows_of_the_same_name():
    rows = [row("order processed", type_="saga", p99="1500"), row("order processed", type_="grpc", p99="5")]
    assert not evaluate("s", rows, [{"type": "saga", "name": "order processed", "p99_ms": 1000}])[0].ok
    assert evaluate("s", rows, [{"type": "grpc", "name": "order processed", "p99_ms": 1000}])[0].ok


def test_missing_row_fails_unless_allowed():
    assert not evaluate("s", [], [{"name": "GetStock", "p99_ms": 10}])[0].ok
    assert evaluate("s", [], [{"type": "check", "name": "fresh", "max_failure_ratio": 0, "min_requests": 0}])[0].ok


def test_row_without_requests_has_no_percentiles_and_fails():
    rows = [row("GetStock", requests=0, p50="N/A", p95="N/A", p99="N/A", rps="0")]
    verdicts = by_metric(evaluate("s", rows, [{"name": "GetStock", "p99_ms": 10, "max_failure_ratio": 0}]))
    assert verdicts[("GetStock", "p99_ms")] is False
    assert verdicts[("GetStock", "min_requests")] is False
    assert verdicts[("GetStock", "max_failure_ratio")] is True


def test_failed_check_row_fails_the_run():
    rows = [row("no oversell", type_="check", requests=1, failures=1, p50="0", p95="0", p99="0", rps="0")]
    assert not evaluate("s", rows, [{"type": "check", "name": "no oversell", "max_failure_ratio": 0}])[0].ok


def test_table_and_run_time_parsing():
    text = table(evaluate("lookup", [row("GetStock", p99="12")], [{"name": "GetStock", "p99_ms": 10}]))
    assert "FAIL" in text and "GetStock" in text and "12" in text
    assert _seconds("30s") == 30 and _seconds("2m") == 120 and _seconds("1h30m") == 5400 and _seconds("45") == 45


# The Locust users send the token. Locust patches the standard library with gevent when imported, so the
# users run in a child process of their own; the gRPC server that records what reaches it and the token
# endpoint run here.
USERS_SCRIPT = """
import json
from locust.env import Environment
from loadtests.inventory_lookup import InventoryLookupUser

env = Environment(user_classes=[InventoryLookupUser])
events = []
env.events.request.add_listener(lambda **kw: events.append([kw["name"], repr(kw["exception"])]))
users = [InventoryLookupUser(env), InventoryLookupUser(env)]
for user in users:
    user.on_start()
    user.get_stock()
    user.on_stop()
print(json.dumps(events))
"""


def run_users(env: dict[str, str]) -> list:
    import importlib.util
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    if importlib.util.find_spec("locust") is None:  # not imported here: it would patch this process with gevent
        from tests import support

        message = "Locust is the `load` extra (make test and make loadtest install it)"
        if support.REQUIRE_EXTERNAL:
            pytest.fail(message + "; CI runs make test, which installs it", pytrace=False)
        pytest.skip(message)
    root = Path(__file__).resolve().parents[2]
    base = {k: v for k, v in os.environ.items() if not k.startswith("ERP_")}
    done = subprocess.run([sys.executable, "-c", USERS_SCRIPT], env={**base, **env}, cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


class Recorder:
    """A real gRPC server answering every method with an empty message, recording (method, authorization)."""

    def __init__(self) -> None:
        from concurrent import futures

        import grpc

        self.seen: list[tuple[str, str | None]] = []
        recorder = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                def answer(_request, ctx):
                    recorder.seen.append((details.method, dict(ctx.invocation_metadata()).get("authorization")))
                    return b""

                return grpc.unary_unary_rpc_method_handler(answer)

        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        self.server.add_generic_rpc_handlers((Handler(),))
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()


def test_locust_users_send_a_static_token_from_a_file_to_the_gateway_target(tmp_path):
    recorder = Recorder()
    try:
        (tmp_path / "token").write_text("load-token\n")
        events = run_users({"ERP_TARGET": recorder.target, "ERP_TOKEN_FILE": str(tmp_path / "token")})
    finally:
        recorder.server.stop(0)
    assert events == [["GetStock", "None"], ["GetStock", "None"]]
    assert recorder.seen == [("/erp.inventory.v1.InventoryService/GetStock", "Bearer load-token")] * 2


def test_locust_users_share_one_client_credentials_token(tmp_path):
    import json
    import threading
    import urllib.parse
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    forms = []

    class Token(BaseHTTPRequestHandler):
        def log_message(self, *_args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            forms.append(dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode())))
            body = json.dumps({"access_token": "cc-token", "token_type": "Bearer", "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    tokens = ThreadingHTTPServer(("127.0.0.1", 0), Token)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    recorder = Recorder()
    (tmp_path / "secret").write_text("s3cret")
    try:
        events = run_users({"ERP_TARGET": recorder.target,
                            "ERP_TOKEN_URL": f"http://127.0.0.1:{tokens.server_address[1]}/token",
                            "ERP_CLIENT_ID": "erp-loadtest", "ERP_CLIENT_SECRET_FILE": str(tmp_path / "secret"),
                            "ERP_TOKEN_SCOPES": "inventory.read inventory.write"})
    finally:
        recorder.server.stop(0)
        tokens.shutdown()
        tokens.server_close()
    assert events == [["GetStock", "None"], ["GetStock", "None"]]
    assert [auth for _, auth in recorder.seen] == ["Bearer cc-token"] * 2
    assert forms == [{"grant_type": "client_credentials", "scope": "inventory.read inventory.write"}], \
        "one fetch for the process, not one per user"


def test_a_locust_user_without_a_token_source_sends_none():
    recorder = Recorder()
    try:
        events = run_users({"ERP_TARGET": recorder.target})
    finally:
        recorder.server.stop(0)
    assert [auth for _, auth in recorder.seen] == [None, None] and len(events) == 2
