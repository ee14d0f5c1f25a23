"""The webhook master keys, and each customer's webhook secret derived from one of them.

A customer's secret is never stored and never sent between services: it is
HMAC-SHA256(master key, ["erp-webhook-secret", customer_id, secret_id] as JSON), where secret_id is a
random id made when the secret is (its webhook URL set, or its secret rotated). crm returns it
once to the caller that made it and keeps only the ids; notification derives the same secret
from the ids it learns in CustomerUpdated. The databases and the broker hold ids, the
Kubernetes Secret holds the key (see README, "Webhook signatures": the threat model).

Shared by crm (which makes the secrets) and notification (which signs with them): the one
derivation both must agree on, kept here rather than copied into each service.

Settings:
  ERP_WEBHOOK_SIGNING_KEY (dev default, logged as a warning): the master key new secrets are
    derived from, at least 32 characters
  ERP_WEBHOOK_SIGNING_KEYS_RETIRED (empty): earlier master keys, comma-separated, that
    secrets made before a master key rotation are still derived from
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mesh.settings import Settings

DEV_SIGNING_KEY = "dev-webhook-signing-key-not-for-production-use"
MIN_KEY_CHARS = 32
SECRET_PREFIX = "whsec_"

log = logging.getLogger(__name__)


def key_id(key: str) -> str:
    """A public name of a master key (it tells which key a secret comes from, and nothing of it)."""
    return hmac.new(key.encode(), b"erp-webhook-key-id", hashlib.sha256).hexdigest()[:16]


def derive(key: str, customer_id: str, secret_id: str) -> str:
    """The customer's webhook secret named by secret_id, under this master key."""
    # JSON: each part is quoted, so no two (customer_id, secret_id) pairs give the same message.
    message = json.dumps(["erp-webhook-secret", customer_id, secret_id]).encode()
    mac = hmac.new(key.encode(), message, hashlib.sha256).digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")


@dataclasses.dataclass(frozen=True)
class SigningKeys:
    current: str
    retired: tuple[str, ...] = ()

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    @property
    def is_dev_default(self) -> bool:
        return self.current == DEV_SIGNING_KEY

    def by_id(self, wanted: str) -> str | None:
        for key in (self.current, *self.retired):
            if key_id(key) == wanted:
                return key
        return None

    def secret(self, customer_id: str, secret_id: str, wanted_key_id: str) -> str | None:
        """The secret, or None when no configured master key has that id."""
        key = self.by_id(wanted_key_id)
        return None if key is None else derive(key, customer_id, secret_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKeys:
        current = settings.variables.text("ERP_WEBHOOK_SIGNING_KEY", "") or DEV_SIGNING_KEY
        retired = tuple(k.strip() for k in settings.variables.text("ERP_WEBHOOK_SIGNING_KEYS_RETIRED", "").split(",")
                        if k.strip())
        for name, key in (("ERP_WEBHOOK_SIGNING_KEY", current), *(("ERP_WEBHOOK_SIGNING_KEYS_RETIRED", k)
                                                                    for k in retired)):
            if len(key) < MIN_KEY_CHARS:
                raise ValueError(f"{name} must be at least {MIN_KEY_CHARS} characters (for example the output "
                                 "of `openssl rand -base64 48`)")
        return cls(current, retired)

    def warn_if_dev_default(self) -> None:
        if self.is_dev_default:
            log.warning("ERP_WEBHOOK_SIGNING_KEY is not set: customers' webhook secrets are derived from the "
                        "public development key (anyone can forge their webhooks)")
