"""RabbitMQ transport through pika.

Topology (<ns> is ERP_AMQP_NAMESPACE, "erp" by default, so test runs never touch a real
deployment), declared idempotently for every consuming service by mesh.events.topology before
anything is published (and again by each subscriber):
- `<ns>.events`, a durable topic exchange; the routing key is the event type;
- per consuming service `<ns>.<service>`, a durable quorum queue bound by event type, with an
  explicit delivery limit (ERP_AMQP_DELIVERY_LIMIT) and at-least-once dead-lettering to its
  `.dlq`: a message redelivered that often (its consumers keep dying under it) moves there
  instead of being dropped, as RabbitMQ 4 would do past its default limit of 20;
- retry queues `<ns>.<service>.retry.<ms>ms` (quorum, message TTL) whose expired
  messages dead-letter back into the service queue: that is the backoff;
- `<ns>.<service>.dlq`, a quorum queue that receives what the broker dead-letters; the
  dead-letters tool moves it into the service's dead_letters table (mesh.events.dead_letters),
  where dead letters are kept, listed and replayed.
Publishing uses AMQP transactions (a batch per tx.commit) and mandatory=True, so an
uncommitted or unroutable message is reported instead of vanishing.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, cast

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError, ChannelClosedByBroker
from pika.spec import Basic, BasicProperties

from mesh.events.transport import (
    Ack,
    Delivery,
    Letter,
    Message,
    Outcome,
    PublishFailed,
    Retry,
    TopologyMismatch,
    retry_delays,
)

if TYPE_CHECKING:
    from mesh.settings import Settings

log = logging.getLogger("mesh.events.amqp")

ATTEMPTS_HEADER = "x-erp-attempts"
ERROR_HEADER = "x-erp-error"
# A queue's x-arguments (x-queue-type, x-delivery-limit, ...), as queue.declare takes them.
QueueArguments = dict[str, object]


def _tag(method: Basic.Deliver | Basic.GetOk) -> int:
    # a delivered message always has its tag; pika's frame classes only default every field to None
    return cast(int, method.delivery_tag)


def _attempts(value: object) -> int:
    # x-erp-attempts is the int this module puts in the headers
    return int(cast(int, value))


def exchange_name(namespace: str) -> str:
    return f"{namespace}.events"


def queue_name(namespace: str, service: str) -> str:
    return f"{namespace}.{service}"


def dead_letter_queue(queue: str) -> str:
    return queue + ".dlq"


# The dead-letter queue's own delivery limit: far beyond the redeliveries it ever sees (only a
# drain that dies mid-way returns a message to it). Not -1: RabbitMQ 4 reads -1 as "no limit",
# but 3.x (3.10.8 here) drops a message at its first return.
DLQ_DELIVERY_LIMIT = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class AmqpOptions:
    """Connection timeouts and the service queues' delivery limit and consumers (README's settings table)."""

    heartbeat_seconds: int = 30
    blocked_connection_timeout_seconds: float = 30.0
    socket_timeout_seconds: float = 5.0
    delivery_limit: int = 20
    # One process at a time consumes a service queue (RabbitMQ's single active consumer), the
    # others wait to take over; False: every process consumes (competing consumers).
    single_active_consumer: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> AmqpOptions:
        return cls(settings.amqp_heartbeat_seconds, settings.amqp_blocked_connection_timeout_seconds,
                   settings.amqp_socket_timeout_seconds, settings.amqp_delivery_limit,
                   settings.amqp_consumers == "single")


def _connect(url: str, options: AmqpOptions) -> BlockingConnection:
    params = pika.URLParameters(url)
    params.heartbeat = options.heartbeat_seconds
    params.blocked_connection_timeout = options.blocked_connection_timeout_seconds
    params.connection_attempts = 1
    params.socket_timeout = options.socket_timeout_seconds
    params.client_properties = {"connection_name": "erp-mesh"}
    return pika.BlockingConnection(params)


def _declare_exchange(ch: BlockingChannel, namespace: str) -> None:
    ch.exchange_declare(exchange_name(namespace), exchange_type="topic", durable=True)


def _quorum(**extra: object) -> QueueArguments:
    return {"x-queue-type": "quorum", **extra}


class AmqpPublisher:
    """Publishes batches in an AMQP transaction: RabbitMQ takes responsibility for (and makes
    durable) every message of a batch at tx.commit, and returns the mandatory ones no queue
    is bound to before it answers the commit. One round trip per batch, not one per message
    as with publisher confirms."""

    def __init__(self, url: str, namespace: str, options: AmqpOptions) -> None:
        self.exchange = exchange_name(namespace)
        self.connection = _connect(url, options)
        self.channel = self.connection.channel()
        _declare_exchange(self.channel, namespace)
        self.channel.tx_select()
        self._returned: set[str] = set()
        # every message published here carries its event id as message_id
        self.channel.add_on_return_callback(
            lambda _ch, _method, props, _body: self._returned.add(cast(str, props.message_id)))

    def publish_many(self, messages: list[Message]) -> set[str]:
        self._returned = set()
        try:
            # BlockingChannel.basic_publish writes each message out on its own (a send and a poll,
            # dear system calls on a VM: 5-8% of a service's CPU in the orders row); the channel
            # underneath only queues the frames, and tx_commit sends them all in one write. A
            # private attribute of pika's, pinned <2; test_a_batch_goes_out_in_one_write_* checks it.
            publish = self.channel._impl.basic_publish  # type: ignore[attr-defined]
            for m in messages:
                props = pika.BasicProperties(
                    content_type="application/x-protobuf",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=m.event_id,
                    type=m.event_type,
                )
                publish(exchange=self.exchange, routing_key=m.event_type, body=m.body, properties=props,
                        mandatory=True)
            self.channel.tx_commit()
            self.connection.process_data_events(time_limit=0)  # dispatches the returns received before commit-ok
        except AMQPError as exc:
            raise PublishFailed(f"publish failed: {exc.__class__.__name__}") from exc
        return set(self._returned)

    def close(self) -> None:
        try:
            self.connection.close()
        except AMQPError:
            pass


class AmqpSubscription:
    def __init__(self, url: str, namespace: str, service: str, event_types: list[str], base_ms: int,
                 max_attempts: int, options: AmqpOptions, prefetch: int = 32) -> None:
        self.queue = queue_name(namespace, service)
        self.delays = retry_delays(base_ms, max_attempts)
        self.connection = _connect(url, options)
        declare_service_queues(self.connection, namespace, service, event_types, self.delays, options)
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        self.channel.basic_qos(prefetch_count=prefetch)
        self._messages = self.channel.consume(self.queue, inactivity_timeout=0.5)
        self._prefetch = prefetch
        self._unacked: set[int] = set()  # delivery tags received and not settled yet

    def receive(self, timeout: float) -> list[Delivery]:
        batch: list[Delivery] = []
        received = next(self._messages)  # (method, properties, body), or (None, None, None) after the timeout
        while received[0] is not None:
            method, props, body = received
            headers = props.headers or {}
            batch.append(Delivery(body=body, attempts=_attempts(headers.get(ATTEMPTS_HEADER, 0)), tag=(method, props)))
            self._unacked.add(_tag(method))
            if len(batch) >= self._prefetch or not self.channel.get_waiting_message_count():
                break
            received = next(self._messages)
        return batch

    @staticmethod
    def _handle(delivery: Delivery) -> tuple[Basic.Deliver, BasicProperties]:
        # the tag receive() gave each of this subscription's deliveries
        return cast("tuple[Basic.Deliver, BasicProperties]", delivery.tag)

    def settle(self, outcomes: list[tuple[Delivery, Outcome]]) -> None:
        tags = {_tag(self._handle(delivery)[0]) for delivery, _ in outcomes}
        if tags and tags == self._unacked and all(isinstance(outcome, Ack) for _, outcome in outcomes):
            # Every unacked delivery of this channel acked at once: one frame, not one per message.
            self.channel.basic_ack(max(tags), multiple=True)
            self._unacked.clear()
            return
        self._unacked -= tags
        for delivery, outcome in outcomes:
            method, props = self._handle(delivery)
            if isinstance(outcome, Retry):
                index = min(delivery.attempts, len(self.delays) - 1)
                self._republish(retry_queue(self.queue, self.delays[index]), delivery, props,
                                {ATTEMPTS_HEADER: delivery.attempts + int(outcome.counted), ERROR_HEADER: outcome.error[:500]})
            # A retry's copy is confirmed before the original is acked: a crash in between
            # duplicates the message, and the consumer's inbox absorbs the duplicate. A dead
            # letter is in the service's dead_letters table already (Consumer): it only leaves.
            self.channel.basic_ack(_tag(method))

    def _republish(self, routing_key: str, delivery: Delivery, props: BasicProperties,
                   headers: dict[str, str | int]) -> None:
        merged = dict(props.headers or {})
        merged.update(headers)
        copy = pika.BasicProperties(
            content_type=props.content_type, delivery_mode=pika.DeliveryMode.Persistent,
            message_id=props.message_id, type=props.type, headers=merged,
        )
        self.channel.basic_publish("", routing_key, delivery.body, copy, mandatory=True)

    def close(self) -> None:
        try:
            self.channel.cancel()
            self.connection.close()
        except AMQPError:
            pass


def retry_queue(queue: str, delay_seconds: float) -> str:
    return f"{queue}.retry.{int(delay_seconds * 1000)}ms"


def service_queue_arguments(queue: str, options: AmqpOptions) -> QueueArguments:
    """A service queue's: past the delivery limit a message is dead-lettered to the queue's .dlq,
    at least once (kept in this queue until the .dlq confirms it), never dropped. With a single
    active consumer, the broker delivers to one of the queue's consumers at a time and to the
    next when its channel closes: the whole flow goes to one process, in full batches, instead
    of being split into smaller ones whose per-batch statements cost more per event."""
    single = {"x-single-active-consumer": True} if options.single_active_consumer else {}
    return _quorum(**single, **{
        "x-delivery-limit": options.delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(queue),
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",  # at-least-once dead-lettering works only with it
    })


def retry_queue_arguments(queue: str, delay: float) -> QueueArguments:
    return _quorum(**{
        "x-message-ttl": int(delay * 1000),
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        # at-least-once dead-lettering: a retry is never lost on the way back.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    })


DLQ_ARGUMENTS = _quorum(**{"x-delivery-limit": DLQ_DELIVERY_LIMIT})


def service_queues(namespace: str, service: str, delays: list[float], options: AmqpOptions) -> dict[str, QueueArguments]:
    """Every queue of a consuming service, by name, with its arguments: the dead-letter queue
    first (the service queue dead-letters into it), the service queue last."""
    queue = queue_name(namespace, service)
    return {dead_letter_queue(queue): DLQ_ARGUMENTS,
            **{retry_queue(queue, delay): retry_queue_arguments(queue, delay) for delay in delays},
            queue: service_queue_arguments(queue, options)}


def declare_queue(connection: BlockingConnection, name: str, arguments: QueueArguments) -> None:
    """Declares a durable queue, on a channel of its own (a refusal closes the channel).
    TopologyMismatch when the queue exists with other arguments."""
    ch = connection.channel()
    try:
        ch.queue_declare(name, durable=True, arguments=arguments)
    except ChannelClosedByBroker as exc:
        if exc.reply_code == 406:  # PRECONDITION_FAILED: "inequivalent arg ..."
            raise TopologyMismatch(name, exc.reply_text) from exc
        raise
    ch.close()


def declare_service_queues(connection: BlockingConnection, namespace: str, service: str, event_types: list[str],
                           delays: list[float], options: AmqpOptions) -> None:
    """Declares a consuming service's queues and binds its queue to its event types; idempotent."""
    for name, arguments in service_queues(namespace, service, delays, options).items():
        declare_queue(connection, name, arguments)
    ch = connection.channel()
    _declare_exchange(ch, namespace)
    for event_type in event_types:
        ch.queue_bind(queue_name(namespace, service), exchange_name(namespace), routing_key=event_type)
    ch.close()


def delete_namespace(url: str, namespace: str, services: Iterable[str], retries: Iterable[tuple[int, int]],
                     queues: Iterable[str] = ()) -> None:
    """Undoes declare_service_queues for a namespace that is done with (a test or benchmark run):
    each service's queue, dead-letter queue and retry queues of every (base_ms, max_attempts) in
    `retries`, then `queues` and the exchange. Queues left behind pile up: a few hundred quorum
    queues have wedged this project's brokers."""
    conn = _connect(url, AmqpOptions())
    try:
        ch = conn.channel()
        delays = sorted({d for base_ms, attempts in retries for d in retry_delays(base_ms, attempts)})
        for service in services:
            queue = queue_name(namespace, service)
            dlq = dead_letter_queue(queue)
            for name in [queue, dlq, moving_queue(queue), moving_queue(dlq), *(retry_queue(queue, d) for d in delays)]:
                ch.queue_delete(name)
        for name in queues:
            ch.queue_delete(name)
        ch.exchange_delete(exchange_name(namespace))
    finally:
        conn.close()


class QueueInUse(Exception):
    """A queue to declare again still has consumers (an older version of its service runs)."""


def queue_counts(connection: BlockingConnection, name: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of a queue; None when it does not exist."""
    ch = connection.channel()
    try:
        ok = ch.queue_declare(name, passive=True)
    except ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return None
        raise
    ch.close()
    return ok.method.message_count, ok.method.consumer_count


def move_messages(connection: BlockingConnection, source: str, target: str) -> int:
    """Moves the ready messages of `source` into `target`, each confirmed by `target` before it is
    acked in `source` (a crash in between duplicates it; the consumers' inboxes absorb that).
    Consumed, not fetched: quorum queues with a single active consumer refuse basic.get."""
    ch = connection.channel()
    ch.confirm_delivery()
    ch.basic_qos(prefetch_count=100)
    moved = 0
    for method, props, body in ch.consume(source, inactivity_timeout=0.5):
        if method is None:
            break
        ch.basic_publish("", target, cast(bytes, body), props, mandatory=True)  # a delivery has its body
        ch.basic_ack(_tag(method))
        moved += 1
    ch.close()
    return moved


def _drain_into(connection: BlockingConnection, source: str, target: str, feeders: list[str],
                timeout: float) -> int:
    """Moves `source`'s messages into `target` until it and every queue that feeds it (its retry
    queues, whose expired messages dead-letter into it) are empty; how many it moved."""
    moved, deadline = 0, time.monotonic() + timeout
    while True:
        moved += move_messages(connection, source, target)
        waiting = sum((queue_counts(connection, name) or (0, 0))[0] for name in [source, *feeders])
        if not waiting:
            return moved
        if time.monotonic() > deadline:
            raise RuntimeError(f"{source} kept receiving messages ({waiting} waiting); stop every service "
                               "and run this again")
        time.sleep(0.5)


def _delete_empty(connection: BlockingConnection, name: str) -> None:
    """Deletes a queue found empty. Quorum queues refuse queue.delete with if-empty (RabbitMQ
    answers 540 NOT_IMPLEMENTED and closes the connection), so emptiness is checked just before:
    nothing routes into the queue any more (its bindings are gone, its feeders are empty)."""
    ch = connection.channel()
    deleted = ch.queue_delete(name).method.message_count
    ch.close()
    if deleted:
        log.error("%s: %d messages arrived while it was being deleted and are lost", name, deleted)


def redeclare(connection: BlockingConnection, exchange: str, name: str, arguments: QueueArguments,
              event_types: list[str], feeders: list[str], settle_seconds: float = 1.0,
              timeout: float = 120.0) -> int:
    """Declares queue `name` again with `arguments` (RabbitMQ cannot change a queue's arguments
    in place), keeping its messages: a holding queue bound like it takes the publishes meanwhile
    and its messages, then gives them back. Needs no consumer on the queue (QueueInUse);
    `feeders` are the queues that dead-letter into it. Returns how many messages it moved."""
    counts = queue_counts(connection, name)
    if counts and counts[1]:
        raise QueueInUse(f"{name} has {counts[1]} consumers (an older version of its service is running): "
                         "stop them (scale the service to 0), then run this again; events published "
                         "meanwhile wait in its queue")
    hold = moving_queue(name)
    declare_queue(connection, hold, _quorum())
    ch = connection.channel()
    for event_type in event_types:
        ch.queue_bind(hold, exchange, routing_key=event_type)
        ch.queue_unbind(name, exchange, routing_key=event_type)
    time.sleep(settle_seconds)  # publishes routed before the unbinding reach the queue
    moved = _drain_into(connection, name, hold, feeders, timeout)
    _delete_empty(connection, name)
    declare_queue(connection, name, arguments)
    for event_type in event_types:
        ch.queue_bind(name, exchange, routing_key=event_type)
        ch.queue_unbind(hold, exchange, routing_key=event_type)
    ch.close()
    time.sleep(settle_seconds)
    _drain_into(connection, hold, name, [], timeout)
    _delete_empty(connection, hold)
    return moved


def _letter(props: BasicProperties, body: bytes) -> Letter:
    """A message of a .dlq as a dead letter: dead-lettered by the broker (x-death says why) or,
    from an older version, by its consumer (x-erp-error says why)."""
    headers: Mapping[str, object] = props.headers or {}  # pika decodes AMQP's text to str
    deaths = cast(list[Mapping[str, object]], headers.get("x-death") or [])  # RabbitMQ's: a list of tables
    if deaths:
        death = deaths[0]
        error = (f"RabbitMQ dead-lettered it from {death.get('queue')} ({death.get('reason')}): "
                 f"redelivered past the queue's delivery limit; last handling error: {headers.get(ERROR_HEADER)}")
        source = "broker"
    else:
        error, source = str(headers.get(ERROR_HEADER) or "dead-lettered"), "consumer"
    return Letter(event_id=props.message_id, event_type=props.type, body=body,
                  attempts=_attempts(headers.get(ATTEMPTS_HEADER) or 0), error=error[:2000], source=source)


def moving_queue(queue: str) -> str:
    """Where a queue's messages wait while the queue is declared again (services.tools.migrate)."""
    return queue + ".moving"


class AmqpTransport:
    def __init__(self, url: str, base_ms: int, max_attempts: int, namespace: str = "erp",
                 options: AmqpOptions = AmqpOptions()) -> None:
        self.url = url
        self.namespace = namespace
        self.base_ms = base_ms
        self.max_attempts = max_attempts
        self.options = options

    @classmethod
    def from_settings(cls, settings: Settings) -> AmqpTransport:
        return cls(settings.amqp_url, settings.event_retry_base_ms, settings.event_max_attempts,
                   settings.amqp_namespace, AmqpOptions.from_settings(settings))

    def connect(self) -> BlockingConnection:
        return _connect(self.url, self.options)

    def publisher(self) -> AmqpPublisher:
        return AmqpPublisher(self.url, self.namespace, self.options)

    def subscribe(self, queue: str, event_types: list[str]) -> AmqpSubscription:
        return AmqpSubscription(self.url, self.namespace, queue, event_types, self.base_ms, self.max_attempts,
                                self.options)

    def queues_of(self, service: str) -> dict[str, QueueArguments]:
        return service_queues(self.namespace, service, retry_delays(self.base_ms, self.max_attempts), self.options)

    def retry_queues_of(self, service: str) -> list[str]:
        queue = queue_name(self.namespace, service)
        return [retry_queue(queue, delay) for delay in retry_delays(self.base_ms, self.max_attempts)]

    def declare_consumers(self, consumers: dict[str, list[str]]) -> None:
        """Declares every consuming service's queues and bindings (mesh.events.topology)."""
        conn = self.connect()
        try:
            for service, event_types in consumers.items():
                declare_service_queues(conn, self.namespace, service, event_types,
                                       retry_delays(self.base_ms, self.max_attempts), self.options)
        finally:
            conn.close()

    def upgrade_consumers(self, consumers: dict[str, list[str]]) -> list[str]:
        """declare_consumers, declaring again (redeclare()) each queue RabbitMQ refuses because it
        has an older version's arguments; one line per queue changed."""
        done = []
        conn = self.connect()
        try:
            _declare_exchange(conn.channel(), self.namespace)
            for service, event_types in consumers.items():
                for name, arguments in self.queues_of(service).items():
                    try:
                        declare_queue(conn, name, arguments)
                    except TopologyMismatch:
                        queue = queue_name(self.namespace, service)
                        types = event_types if name == queue else []
                        feeders = self.retry_queues_of(service) if name == queue else []
                        moved = redeclare(conn, exchange_name(self.namespace), name, arguments, types, feeders)
                        done.append(f"{name}: declared again with this version's arguments "
                                    f"({moved} messages kept, moved through {moving_queue(name)})")
            self.declare_consumers(consumers)
        finally:
            conn.close()
        return done

    def requeue(self, queue: str, messages: list[Message]) -> None:
        """Puts messages straight into one service's queue, attempts reset; returns once RabbitMQ
        has confirmed each. PublishFailed when it has not (the queue is missing, the broker down)."""
        try:
            conn = self.connect()
        except AMQPError as exc:
            raise PublishFailed(f"cannot connect to RabbitMQ: {exc.__class__.__name__}") from exc
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            for m in messages:
                props = pika.BasicProperties(content_type="application/x-protobuf", message_id=m.event_id or None,
                                             type=m.event_type or None, delivery_mode=pika.DeliveryMode.Persistent,
                                             headers={ATTEMPTS_HEADER: 0})
                ch.basic_publish("", queue_name(self.namespace, queue), m.body, props, mandatory=True)
        except AMQPError as exc:
            raise PublishFailed(f"{queue_name(self.namespace, queue)} did not take the messages: "
                                f"{exc.__class__.__name__} {exc}") from exc
        finally:
            try:
                conn.close()
            except AMQPError:
                pass

    def drain_dead_letters(self, queue: str, sink: Callable[[list[Letter]], None], batch: int = 100) -> int:
        """Moves what waits in the service's .dlq into `sink` (the dead_letters table): a batch is
        acked only once sink() has returned (committed), so a crash in between leaves it in the
        queue, to be moved again (the table keeps one row per event)."""
        conn = self.connect()
        moved = 0
        try:
            ch = conn.channel()
            while True:
                letters, last_tag = [], 0
                for _ in range(batch):
                    got = ch.basic_get(dead_letter_queue(queue_name(self.namespace, queue)))
                    if got[0] is None:
                        break
                    method, props, body = got
                    letters.append(_letter(props, body))
                    last_tag = _tag(method)
                if not letters:
                    return moved
                sink(letters)
                ch.basic_ack(last_tag, multiple=True)
                moved += len(letters)
        finally:
            try:
                conn.close()
            except AMQPError:
                pass
