"""ErpClient and `erp` reach a deployment: through the gateway, with internal auth on at the service (as
the chart runs it), with a bearer token from OAuth2 client credentials against a real HTTP token endpoint
(real JWTs from the harness's issuer, which the gateway verifies against its JWKS), from a token file, or
none; and over TLS with the token as call credentials."""
from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import urllib.parse
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from erp_client import ErpClient, cli
from erp_client.auth import ClientCredentials, TokenError, TokenFile
from erp_client.client import Line
from tests.integration.conftest import running_mesh
from tests.integration.gateway_harness import SECRET, Harness

SCOPES = ["orders.read", "orders.write"]
CLIENT_ID, CLIENT_SECRET = "erp-loadtest", "s3cret:with/odd=chars"


class TokenEndpoint:
    """POST /token: the client credentials grant, answering a JWT from the issuer that lives
    `expires_in` seconds; records each fetch (time, form)."""

    def __init__(self, issuer, expires_in: int, delay: float = 0.0) -> None:
        self.issuer, self.expires_in, self.delay = issuer, expires_in, delay
        self.fetches: list[tuple[float, dict]] = []
        self.tokens: list[tuple[str, float]] = []  # (token, expires at, monotonic)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                endpoint.fetches.append((time.monotonic(), form))
                time.sleep(endpoint.delay)
                basic = base64.b64decode(self.headers.get("Authorization", "Basic ").split(" ", 1)[1]).decode()
                who, _, secret = basic.partition(":")
                if (urllib.parse.unquote(who), urllib.parse.unquote(secret)) != (CLIENT_ID, CLIENT_SECRET):
                    return self.answer(401, {"error": "invalid_client", "error_description": "unknown client"})
                if form.get("grant_type") != "client_credentials":
                    return self.answer(400, {"error": "unsupported_grant_type"})
                now = int(time.time())
                token = endpoint.issuer.token(form.get("scope", "").split(), exp=now + endpoint.expires_in,
                                              client_id=CLIENT_ID, sub=CLIENT_ID)
                endpoint.tokens.append((token, time.monotonic() + endpoint.expires_in))
                return self.answer(200, {"access_token": token, "token_type": "Bearer",
                                         "expires_in": endpoint.expires_in})

            def answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def deployment(embedded_pg, embedded_redis, tmp_path_factory):
    """The orders service with internal auth on (it refuses calls around the gateway), the gateway in
    front of it; yields the gateway harness."""
    from tests import support

    tmp = tmp_path_factory.mktemp("client-auth")
    with support.fresh_database(embedded_pg) as url:
        engines = support.Engines(url, embedded_redis, "postgres", namespace="erptest-client-auth")
        with running_mesh(engines, tmp, services=("orders",), internal_auth=True,
                          internal_token_secret=SECRET) as (_client, started):
            gateway = Harness(embedded_redis, tmp, {"orders": f"127.0.0.1:{started['orders'].port}"})
            try:
                yield gateway
            finally:
                gateway.close()


def place(erp: ErpClient):
    return erp.place_order("CUST-1", [Line("CHAIR-OAK", 2, "89.90", "MAIN")], currency_code="EUR")


def test_client_credentials_through_the_gateway_refreshed_before_expiry(deployment):
    endpoint = TokenEndpoint(deployment.issuer, expires_in=3)
    try:
        source = ClientCredentials(endpoint.url, CLIENT_ID, CLIENT_SECRET, scopes=SCOPES, audience="erp-api")
        with ErpClient(target=deployment.grpc_target, token=source) as erp:
            order = place(erp)
            assert erp.get_order(order.order_id).order_id == order.order_id
            assert len(endpoint.fetches) == 1, "one token for both calls"
            form = endpoint.fetches[0][1]
            assert form == {"grant_type": "client_credentials", "scope": "orders.read orders.write",
                            "audience": "erp-api"}
            first_expiry = endpoint.tokens[0][1]
            # 10% of the lifetime before expiry it is due: the next call fetches a new one, before the
            # first has expired, and succeeds with it
            time.sleep(2.8)
            assert erp.get_order(order.order_id).order_id == order.order_id
            assert len(endpoint.fetches) == 2
            assert endpoint.fetches[1][0] < first_expiry
            # many threads finding it due at once: one fetch (slowed down, so they all wait on it)
            endpoint.delay = 0.3
            time.sleep(2.8)
            barrier = threading.Barrier(8)

            def call(_):
                barrier.wait()
                return erp.get_order(order.order_id).order_id

            with futures.ThreadPoolExecutor(8) as pool:
                assert set(pool.map(call, range(8))) == {order.order_id}
            assert len(endpoint.fetches) == 3
    finally:
        endpoint.close()


def test_a_static_token_from_a_file_is_read_again_when_it_changes(deployment, tmp_path):
    path = tmp_path / "token"
    path.write_text(deployment.issuer.token(["orders.read"]) + "\n")
    with ErpClient.from_env({"ERP_TARGET": deployment.grpc_target, "ERP_TOKEN_FILE": str(path)}) as erp:
        assert isinstance(erp.token, TokenFile)
        with pytest.raises(grpc.RpcError) as refused:
            place(erp)  # orders.write missing
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        path.write_text(deployment.issuer.token(SCOPES))  # rotated on disk, e.g. a Secret updated
        order = place(erp)
        assert erp.get_order(order.order_id).status == order.status


def test_without_a_token_the_gateway_answers_unauthenticated_and_says_why(deployment, capsys):
    with ErpClient(target=deployment.grpc_target) as erp:
        with pytest.raises(grpc.RpcError) as refused:
            erp.get_order("00000000-0000-0000-0000-000000000000")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "missing access token" in refused.value.details()
    assert cli.main(["order", "get", "00000000-0000-0000-0000-000000000000", "--target",
                     deployment.grpc_target]) == cli.FAILED
    assert "UNAUTHENTICATED: missing access token" in capsys.readouterr().err


def test_erp_through_the_gateway_with_client_credentials_from_the_environment(deployment, tmp_path, monkeypatch,
                                                                              capsys):
    endpoint = TokenEndpoint(deployment.issuer, expires_in=300)
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET)
    for name, value in {"ERP_TARGET": deployment.grpc_target, "ERP_TOKEN_URL": endpoint.url,
                        "ERP_CLIENT_ID": CLIENT_ID, "ERP_CLIENT_SECRET_FILE": str(secret),
                        "ERP_TOKEN_SCOPES": "orders.read,orders.write"}.items():
        monkeypatch.setenv(name, value)
    try:
        assert cli.main(["order", "place", "--customer", "CUST-1", "--line", "CHAIR-OAK:1:89.90@MAIN",
                         "--output", "json"]) == cli.OK
        placed = json.loads(capsys.readouterr().out)
        assert placed["status"] == "ORDER_STATUS_PENDING"
        assert cli.main(["order", "get", placed["order_id"], "-o", "json"]) == cli.OK
        assert json.loads(capsys.readouterr().out)["order_id"] == placed["order_id"]
        monkeypatch.setenv("ERP_CLIENT_SECRET", "wrong")
        monkeypatch.delenv("ERP_CLIENT_SECRET_FILE")
        assert cli.main(["order", "get", placed["order_id"]]) == cli.FAILED
        assert "answered 401: invalid_client: unknown client" in capsys.readouterr().err
    finally:
        endpoint.close()


def test_a_refused_token_request_is_a_token_error_with_the_servers_reason(deployment):
    endpoint = TokenEndpoint(deployment.issuer, expires_in=300)
    try:
        with pytest.raises(TokenError, match="invalid_client"):
            ClientCredentials(endpoint.url, CLIENT_ID, "wrong").token()
    finally:
        endpoint.close()


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    (tmp_path / "ca.pem").write_bytes(cert_pem)
    return cert_pem, key_pem, str(tmp_path / "ca.pem")


def test_over_tls_the_token_goes_as_call_credentials(tmp_path):
    cert, key, ca_file = self_signed(tmp_path)
    seen = []

    class Handler(grpc.GenericRpcHandler):
        def service(self, details):
            def answer(_request, ctx):
                seen.append(dict(ctx.invocation_metadata()).get("authorization"))
                return b""

            return grpc.unary_unary_rpc_method_handler(answer)

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((Handler(),))
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    server.start()
    try:
        with ErpClient(target=f"localhost:{port}", ca_file=ca_file, token="tls-token") as erp:
            erp.get_stock("CHAIR-OAK", "MAIN")
        with ErpClient.from_env({"ERP_TARGET": f"localhost:{port}", "ERP_TLS": "1", "ERP_TLS_CA_FILE": ca_file,
                                 "ERP_TOKEN": "env-token"}) as erp:
            erp.get_stock("CHAIR-OAK", "MAIN")
        assert seen == ["Bearer tls-token", "Bearer env-token"]
    finally:
        server.stop(0)
