"""Wiring: the notification service as the mesh runs it, with its dispatcher thread.

Settings (read with Settings.get, listed in README's configuration table):
  ERP_NOTIFICATION_MAX_ATTEMPTS (6): attempts per delivery before it is FAILED
  ERP_NOTIFICATION_RETRY_BASE_SECONDS (1): wait after the first failed attempt; doubles each time
  ERP_NOTIFICATION_POLL_SECONDS (1): how often the dispatcher looks for deliveries other replicas queued
  ERP_NOTIFICATION_SEND_CONCURRENCY (8, at most 64): deliveries a dispatcher sends at the same time
    (one thread and SMTP session each); 1: one after another
  ERP_NOTIFICATION_CUSTOMER_WAIT_SECONDS (86400): how long an event about a customer not known yet
    waits for the customer's CustomerUpdated before it is given up (no such customer)
  ERP_SMTP_URL (empty): smtp://host:port of the mail server; empty: email deliveries fail
  ERP_SMTP_FROM (erp@localhost): sender address of the emails
  ERP_WEBHOOK_SECRET (dev-webhook-secret): HMAC-SHA256 key of the signatures of webhooks that have no
    secret of their own (suppliers', and customers' set before per-customer secrets until rotated)
  ERP_WEBHOOK_SIGNING_KEY, ERP_WEBHOOK_SIGNING_KEYS_RETIRED: the master keys customers' own webhook
    secrets are derived from (mesh/webhook_keys.py); the same as crm's
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from concurrent import futures
from pathlib import Path

from erp.notification.v1 import notification_pb2, notification_pb2_grpc
from mesh.events.consumer import EventHandlers
from mesh.service import Runtime, ServiceSpec
from mesh.settings import Settings
from mesh.webhook_keys import SigningKeys
from services import PORTS, topology
from services.notification import adapters, events, handlers
from services.notification.adapters import NotificationUnitOfWork
from services.notification.domain import RetryPolicy
from services.notification.grpc_api import NotificationServicer

NAME = "notification"
DEFAULT_WEBHOOK_SECRET = "dev-webhook-secret"
SEND_CONCURRENCY = 8
MAX_SEND_CONCURRENCY = 64
log = logging.getLogger("services.notification.dispatcher")


@dataclasses.dataclass(frozen=True)
class Config:
    policy: RetryPolicy
    poll_seconds: float
    customer_wait: dt.timedelta
    smtp_url: str
    smtp_from: str
    webhook_secret: str
    signing_keys: SigningKeys
    send_concurrency: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> Config:
        v = settings.variables
        config = cls(
            policy=RetryPolicy(v.integer("ERP_NOTIFICATION_MAX_ATTEMPTS", 6, least=1),
                               v.number("ERP_NOTIFICATION_RETRY_BASE_SECONDS", 1.0, least=0.0)),
            poll_seconds=max(0.05, v.number("ERP_NOTIFICATION_POLL_SECONDS", 1.0)),
            customer_wait=dt.timedelta(seconds=v.number("ERP_NOTIFICATION_CUSTOMER_WAIT_SECONDS", 86400.0,
                                                        least=0.001)),
            smtp_url=v.text("ERP_SMTP_URL"),
            smtp_from=v.text("ERP_SMTP_FROM", "erp@localhost"),
            webhook_secret=v.text("ERP_WEBHOOK_SECRET", DEFAULT_WEBHOOK_SECRET),
            signing_keys=SigningKeys.from_settings(settings),
            send_concurrency=v.integer("ERP_NOTIFICATION_SEND_CONCURRENCY", SEND_CONCURRENCY, least=1,
                                       most=MAX_SEND_CONCURRENCY),
        )
        if config.smtp_url:
            adapters.parse_smtp_url(config.smtp_url)  # a malformed URL stops the start-up
        return config

    @property
    def give_up_every(self) -> float:
        """Seconds between looks for held notifications to give up: a tenth of the wait (so
        one is given up at most 10% late), at most a minute, at least the poll interval."""
        return max(self.poll_seconds, min(60.0, self.customer_wait.total_seconds() / 10))


class Dispatcher:
    """Sends due deliveries until stopped: woken when the consumer commits new ones, and
    every poll interval (or sooner, when a retry falls due) for the rest. Now and then it
    also gives up the notifications that waited too long for their customer."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.config: Config | None = None

    def configure(self, settings: Settings) -> Config:
        if self.config is None:
            self.config = Config.from_settings(settings)
            if self.config.webhook_secret == DEFAULT_WEBHOOK_SECRET:
                log.warning("ERP_WEBHOOK_SECRET is not set: webhooks without a secret of their own (suppliers', "
                            "customers' set before per-customer secrets) are signed with the public default secret")
            self.config.signing_keys.warn_if_dev_default()
            if not self.config.smtp_url:
                log.warning("ERP_SMTP_URL is not set: email deliveries will fail")
        return self.config

    def run(self, runtime: Runtime[NotificationUnitOfWork], stop: threading.Event) -> None:
        config = self.configure(runtime.settings)
        email_sender = adapters.EmailSender(config.smtp_url, config.smtp_from)
        senders = adapters.Senders(email_sender, adapters.WebhookSender(config.webhook_secret,
                                                                           keys=config.signing_keys))
        # Sends at the same time, each on a thread (and an SMTP session) of its own: one at a time,
        # a send's round trips to the mail server (or a webhook's answer) capped what a dispatcher
        # sends per second, whatever the CPU had left.
        pool = None if config.send_concurrency == 1 else futures.ThreadPoolExecutor(
            config.send_concurrency, thread_name_prefix="notification-send")
        try:
            self._dispatch(runtime, config, senders, stop, pool)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            email_sender.close()

    def _dispatch(self, runtime: Runtime[NotificationUnitOfWork], config: Config, senders,
                  stop: threading.Event, pool: futures.Executor | None) -> None:
        give_up_at = 0.0
        while not stop.is_set():
            self.wake.clear()
            try:
                if time.monotonic() >= give_up_at:
                    handlers.give_up_waiting(runtime.uow(), config.customer_wait)
                    give_up_at = time.monotonic() + config.give_up_every
                while not stop.is_set():
                    if not handlers.dispatch_due(runtime.uow(), senders, config.policy, pool=pool):
                        break
                due = handlers.seconds_until_due(runtime.uow(), senders)
                # A due row that another replica holds is skipped: look again shortly. A channel
                # paused after its relay was found down is looked at again when the pause ends.
                waits = [config.poll_seconds, *senders.paused().values()]
                timeout = min(waits if due is None else [*waits, max(due, 0.02)])
            except Exception:  # noqa: BLE001 - database trouble: back off, keep the thread alive
                log.exception("dispatcher error; retrying")
                timeout = 1.0
            _wait(self.wake, stop, timeout)


def _wait(wake: threading.Event, stop: threading.Event, timeout: float) -> None:
    """Waits for a wake-up or the timeout, returning soon after stop is set."""
    end = time.monotonic() + timeout
    while not stop.is_set():
        remaining = end - time.monotonic()
        if remaining <= 0 or wake.wait(min(remaining, 0.2)):
            return


def add_servicers(server, runtime: Runtime[NotificationUnitOfWork]) -> None:
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(NotificationServicer(runtime), server)


def spec() -> ServiceSpec[NotificationUnitOfWork]:
    dispatcher = Dispatcher()

    def build_handlers(runtime: Runtime[NotificationUnitOfWork]) -> EventHandlers:
        dispatcher.configure(runtime.settings)  # bad settings fail the start-up, not a thread
        return events.build(dispatcher.wake.set)

    return ServiceSpec(
        name=NAME,
        port=PORTS[NAME],
        migrations_dir=Path(__file__).parent / "migrations",
        grpc_services=(notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,),
        add_servicers=add_servicers,
        consumers=topology.consumers,
        uow_class=NotificationUnitOfWork,
        build_handlers=build_handlers,
        background=dispatcher.run,
    )
