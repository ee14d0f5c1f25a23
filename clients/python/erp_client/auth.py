"""Bearer tokens for calls through the gateway: a static token, a token file, or OAuth2 client
credentials against a token URL, refreshed before they expire.

    source = token_from_env()          # ERP_TOKEN / ERP_TOKEN_FILE / ERP_TOKEN_URL + ERP_CLIENT_ID + ...
    source = ClientCredentials("https://auth.example.com/oauth2/token", "erp-loadtest", secret,
                               scopes=["inventory.read"], audience="erp-api")
    source.token()                     # the current access token, fetched or refreshed when due

The token endpoint is called with the standard library only (urllib), so the client package needs
nothing beyond grpcio and protobuf.
"""
from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

# Refresh when less than this share of the token's lifetime is left, and at the latest REFRESH_MARGIN_SECONDS
# before it expires (whichever comes first for long-lived tokens: a one-hour token is refreshed at 54 min).
REFRESH_SHARE = 0.1
REFRESH_MARGIN_SECONDS = 60.0
# How long a token without `expires_in` is used before it is fetched again.
DEFAULT_LIFETIME_SECONDS = 300.0


class TokenError(RuntimeError):
    """No token could be had: the token endpoint refused or failed, or a token file is missing or empty."""


class TokenSource(Protocol):
    def token(self) -> str:
        """The access token to send now."""


class StaticToken:
    """A token given once (a flag, ERP_TOKEN): sent as it is until the process ends."""

    def __init__(self, token: str) -> None:
        token = token.strip()
        if not token:
            raise TokenError("the access token is empty")
        self._token = token

    def token(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticToken(...)"


class TokenFile:
    """A token in a file (ERP_TOKEN_FILE: a mounted Secret, a projected service account token), read
    again whenever the file changes, so a token rotated on disk is picked up without a restart."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def token(self) -> str:
        try:
            stat = self.path.stat()
            with self._lock:
                stamp = (stat.st_mtime_ns, stat.st_size)
                if stamp != self._stamp:
                    self._token, self._stamp = self.path.read_text().strip(), stamp
                token = self._token
        except OSError as exc:
            raise TokenError(f"cannot read the token file {self.path}: {exc.strerror or exc}") from exc
        if not token:
            raise TokenError(f"the token file {self.path} is empty")
        return token


class ClientCredentials:
    """OAuth2 client credentials grant (RFC 6749 section 4.4) against `token_url`.

    The token is fetched on first use and again when less than REFRESH_SHARE of its lifetime or
    REFRESH_MARGIN_SECONDS remain (the smaller, so a short-lived token is not fetched on every call).
    One lock guards it: of many threads finding it due, one fetches and the others use its result. While
    the old token is still valid a failed refresh is not fatal: the old token is sent and the next call
    tries again; once it has expired, the failure is raised (TokenError) and the call fails.

    `client_auth`: "basic" sends the client id and secret as HTTP Basic (what RFC 6749 requires every
    server to support), "post" in the form body (client_secret_post, for servers that want that).
    """

    def __init__(self, token_url: str, client_id: str, client_secret: str, *, scopes: Iterable[str] = (),
                 audience: str = "", client_auth: str = "basic", timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not token_url or not client_id:
            raise TokenError("client credentials need a token URL and a client id")
        if client_auth not in ("basic", "post"):
            raise ValueError(f"client_auth must be basic or post, got {client_auth!r}")
        self.token_url, self.client_id, self._secret = token_url, client_id, client_secret
        self.scopes, self.audience, self.client_auth = tuple(scopes), audience, client_auth
        self.timeout, self._clock = timeout, clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at = 0.0  # monotonic
        self._refresh_at = 0.0
        self.fetches = 0

    def __repr__(self) -> str:
        return f"ClientCredentials({self.token_url!r}, {self.client_id!r}, scopes={self.scopes!r})"

    def token(self) -> str:
        now = self._clock()
        if self._token and now < self._refresh_at:
            return self._token
        with self._lock:
            now = self._clock()
            if self._token and now < self._refresh_at:  # another thread refreshed it meanwhile
                return self._token
            try:
                self._fetch()
            except TokenError:
                if self._token and now < self._expires_at:
                    return self._token  # still valid: keep sending it, the next call tries again
                raise
            return self._token

    def _fetch(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        if self.audience:
            form["audience"] = self.audience
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        if self.client_auth == "basic":
            pair = f"{urllib.parse.quote(self.client_id, safe='')}:{urllib.parse.quote(self._secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form.update(client_id=self.client_id, client_secret=self._secret)
        request = urllib.request.Request(self.token_url, data=urllib.parse.urlencode(form).encode(),
                                         headers=headers, method="POST")
        started = self._clock()
        self.fetches += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (the configured URL)
                body = json.loads(response.read().decode())
        except urllib.error.HTTPError as exc:
            raise TokenError(f"token endpoint {self.token_url} answered {exc.code}: {_oauth_error(exc)}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TokenError(f"token endpoint {self.token_url} failed: {getattr(exc, 'reason', exc)}") from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise TokenError(f"token endpoint {self.token_url} answered without an access_token")
        try:
            lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME_SECONDS)
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME_SECONDS
        # Lifetime counted from before the request went out: the token was issued after that.
        self._token = token
        self._expires_at = started + lifetime
        self._refresh_at = started + lifetime - min(REFRESH_MARGIN_SECONDS, REFRESH_SHARE * lifetime)


def _oauth_error(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read().decode())
        return ": ".join(str(body[k]) for k in ("error", "error_description") if body.get(k)) or exc.reason
    except (ValueError, OSError, AttributeError, TypeError):
        return str(exc.reason)


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise TokenError(f"cannot read the client secret file {path}: {exc.strerror or exc}") from exc


def token_source(*, token: str | None = None, token_file: str | None = None, token_url: str | None = None,
                 client_id: str | None = None, client_secret: str | None = None,
                 client_secret_file: str | None = None, scopes: Iterable[str] | str | None = None,
                 audience: str | None = None, client_auth: str | None = None) -> TokenSource | None:
    """The token source the arguments describe, or None (no token). One kind only: a static token, a
    token file, or client credentials (a token URL with a client id and a secret or secret file)."""
    kinds = [name for name, value in (("token", token), ("token file", token_file), ("token URL", token_url))
             if value]
    if len(kinds) > 1:
        raise TokenError(f"give one of a token, a token file or a token URL, not {' and '.join(kinds)}")
    if token:
        return StaticToken(token)
    if token_file:
        return TokenFile(token_file)
    if token_url:
        if client_secret_file:
            client_secret = _read_secret(client_secret_file)
        if not client_id or not client_secret:
            raise TokenError("a token URL needs a client id and a client secret (or a client secret file)")
        if isinstance(scopes, str):
            scopes = scopes.replace(",", " ").split()
        return ClientCredentials(token_url, client_id, client_secret, scopes=scopes or (),
                                 audience=audience or "", client_auth=client_auth or "basic")
    return None


ENV = {"token": "ERP_TOKEN", "token_file": "ERP_TOKEN_FILE", "token_url": "ERP_TOKEN_URL",
       "client_id": "ERP_CLIENT_ID", "client_secret": "ERP_CLIENT_SECRET",
       "client_secret_file": "ERP_CLIENT_SECRET_FILE", "scopes": "ERP_TOKEN_SCOPES",
       "audience": "ERP_TOKEN_AUDIENCE", "client_auth": "ERP_TOKEN_CLIENT_AUTH"}


def token_from_env(env: Mapping[str, str] | None = None, **overrides) -> TokenSource | None:
    """token_source() from the environment (ENV names each variable); `overrides` that are not None
    (flags) replace the environment. A token kind given in overrides replaces the environment's kind."""
    env = os.environ if env is None else env
    values = {key: (env.get(name) or "").strip() or None for key, name in ENV.items()}
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.keys() & {"token", "token_file", "token_url"}:
        values.update(token=None, token_file=None, token_url=None)
    values.update(given)
    return token_source(**values)
