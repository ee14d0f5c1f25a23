"""RabbitMQ transport through pika.

Topology, declared idempotently by every publisher and subscriber (<ns> is
ERP_AMQP_NAMESPACE, "erp" by default, so test runs never touch a real deployment):
- `<ns>.events`, a durable topic exchange; the routing key is the event type;
- per consuming service `<ns>.<service>`, a durable quorum queue bound by event type;
- retry queues `<ns>.<service>.retry.<ms>ms` (quorum, message TTL) whose expired
  messages dead-letter back into the service queue: that is the backoff;
- `<ns>.<service>.dlq`, a quorum queue where messages that kept failing wait to be
  inspected and replayed.
Publishing uses AMQP transactions (a batch per tx.commit) and mandatory=True, so an
uncommitted or unroutable message is reported instead of vanishing.
"""
from __future__ import annotations

import logging

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError

from mesh.events.transport import Ack, DeadLetter, Delivery, Message, Outcome, PublishFailed, Retry, retry_delays

log = logging.getLogger("mesh.events.amqp")

ATTEMPTS_HEADER = "x-erp-attempts"
ERROR_HEADER = "x-erp-error"
ORIGIN_HEADER = "x-erp-queue"


def exchange_name(namespace: str) -> str:
    return f"{namespace}.events"


def queue_name(namespace: str, service: str) -> str:
    return f"{namespace}.{service}"


def _connect(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.heartbeat = 30
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": "erp-mesh"}
    return pika.BlockingConnection(params)


def _declare_exchange(ch: BlockingChannel, namespace: str) -> None:
    ch.exchange_declare(exchange_name(namespace), exchange_type="topic", durable=True)


def _quorum(**extra) -> dict:
    return {"x-queue-type": "quorum", **extra}


class AmqpPublisher:
    """Publishes batches in an AMQP transaction: RabbitMQ takes responsibility for (and makes
    durable) every message of a batch at tx.commit, and returns the mandatory ones no queue
    is bound to before it answers the commit. One round trip per batch, not one per message
    as with publisher confirms."""

    def __init__(self, url: str, namespace: str) -> None:
        self.exchange = exchange_name(namespace)
        self.connection = _connect(url)
        self.channel = self.connection.channel()
        _declare_exchange(self.channel, namespace)
        self.channel.tx_select()
        self._returned: set[str] = set()
        self.channel.add_on_return_callback(lambda _ch, _method, props, _body: self._returned.add(props.message_id))

    def publish_many(self, messages: list[Message]) -> set[str]:
        self._returned = set()
        try:
            for m in messages:
                props = pika.BasicProperties(
                    content_type="application/x-protobuf",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=m.event_id,
                    type=m.event_type,
                )
                self.channel.basic_publish(self.exchange, m.event_type, m.body, props, mandatory=True)
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
                 max_attempts: int, prefetch: int = 32) -> None:
        self.queue = queue_name(namespace, service)
        self.delays = retry_delays(base_ms, max_attempts)
        self.connection = _connect(url)
        self.channel = self.connection.channel()
        declare_service_queues(self.channel, namespace, service, event_types, self.delays)
        self.channel.confirm_delivery()
        self.channel.basic_qos(prefetch_count=prefetch)
        self._messages = self.channel.consume(self.queue, inactivity_timeout=0.5)
        self._prefetch = prefetch
        self._unacked: set[int] = set()  # delivery tags received and not settled yet

    def receive(self, timeout: float) -> list[Delivery]:
        batch: list[Delivery] = []
        method, props, body = next(self._messages)
        while method is not None:
            headers = props.headers or {}
            batch.append(Delivery(body=body, attempts=int(headers.get(ATTEMPTS_HEADER, 0)), tag=(method, props)))
            self._unacked.add(method.delivery_tag)
            if len(batch) >= self._prefetch or not self.channel.get_waiting_message_count():
                break
            method, props, body = next(self._messages)
        return batch

    def settle(self, outcomes: list[tuple[Delivery, Outcome]]) -> None:
        tags = {delivery.tag[0].delivery_tag for delivery, _ in outcomes}
        if tags and tags == self._unacked and all(isinstance(outcome, Ack) for _, outcome in outcomes):
            # Every unacked delivery of this channel acked at once: one frame, not one per message.
            self.channel.basic_ack(max(tags), multiple=True)
            self._unacked.clear()
            return
        self._unacked -= tags
        for delivery, outcome in outcomes:
            method, props = delivery.tag
            if isinstance(outcome, Retry):
                index = min(delivery.attempts, len(self.delays) - 1)
                self._republish(retry_queue(self.queue, self.delays[index]), delivery, props,
                                {ATTEMPTS_HEADER: delivery.attempts + int(outcome.counted), ERROR_HEADER: outcome.error[:500]})
            elif isinstance(outcome, DeadLetter):
                self._republish(self.queue + ".dlq", delivery, props,
                                {ATTEMPTS_HEADER: delivery.attempts + 1, ERROR_HEADER: outcome.reason[:500],
                                 ORIGIN_HEADER: self.queue})
            # The copy is confirmed before the original is acked: a crash in between
            # duplicates the message, and the consumer's inbox absorbs the duplicate.
            self.channel.basic_ack(method.delivery_tag)

    def _republish(self, routing_key: str, delivery: Delivery, props, headers: dict) -> None:
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


def declare_service_queues(ch: BlockingChannel, namespace: str, service: str, event_types: list[str],
                           delays: list[float]) -> None:
    queue = queue_name(namespace, service)
    _declare_exchange(ch, namespace)
    ch.queue_declare(queue, durable=True, arguments=_quorum())
    for event_type in event_types:
        ch.queue_bind(queue, exchange_name(namespace), routing_key=event_type)
    for delay in delays:
        ch.queue_declare(retry_queue(queue, delay), durable=True, arguments=_quorum(**{
            "x-message-ttl": int(delay * 1000),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue,
            # at-least-once dead-lettering: a retry is never lost on the way back.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }))
    ch.queue_declare(queue + ".dlq", durable=True, arguments=_quorum())


def delete_namespace(url: str, namespace: str, services, retries, queues=()) -> None:
    """Undoes declare_service_queues for a namespace that is done with (a test or benchmark run):
    each service's queue, dead-letter queue and retry queues of every (base_ms, max_attempts) in
    `retries`, then `queues` and the exchange. Queues left behind pile up: a few hundred quorum
    queues have wedged this project's brokers."""
    conn = _connect(url)
    try:
        ch = conn.channel()
        delays = sorted({d for base_ms, attempts in retries for d in retry_delays(base_ms, attempts)})
        for service in services:
            queue = queue_name(namespace, service)
            for name in [queue, queue + ".dlq", *(retry_queue(queue, d) for d in delays)]:
                ch.queue_delete(name)
        for name in queues:
            ch.queue_delete(name)
        ch.exchange_delete(exchange_name(namespace))
    finally:
        conn.close()


class AmqpTransport:
    def __init__(self, url: str, base_ms: int, max_attempts: int, namespace: str = "erp") -> None:
        self.url = url
        self.namespace = namespace
        self.base_ms = base_ms
        self.max_attempts = max_attempts

    def publisher(self) -> AmqpPublisher:
        return AmqpPublisher(self.url, self.namespace)

    def subscribe(self, queue: str, event_types: list[str]) -> AmqpSubscription:
        return AmqpSubscription(self.url, self.namespace, queue, event_types, self.base_ms, self.max_attempts)

    def dead_letters(self, queue: str, limit: int = 100) -> list[dict]:
        """Peeks at dead letters (they are requeued, not consumed)."""
        conn = _connect(self.url)
        try:
            ch = conn.channel()
            found, tags = [], []
            for _ in range(limit):
                method, props, body = ch.basic_get(queue_name(self.namespace, queue) + ".dlq", auto_ack=False)
                if method is None:
                    break
                tags.append(method.delivery_tag)
                headers = props.headers or {}
                found.append({"event_id": props.message_id, "event_type": props.type,
                              "attempts": headers.get(ATTEMPTS_HEADER), "error": headers.get(ERROR_HEADER),
                              "body": body})
            for tag in tags:
                ch.basic_nack(tag, requeue=True)
            return found
        finally:
            conn.close()

    def replay_dead_letters(self, queue: str) -> int:
        """Moves every dead letter back to the service queue with its attempts reset."""
        conn = _connect(self.url)
        moved = 0
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            while True:
                method, props, body = ch.basic_get(queue_name(self.namespace, queue) + ".dlq", auto_ack=False)
                if method is None:
                    return moved
                headers = dict(props.headers or {})
                headers[ATTEMPTS_HEADER] = 0
                copy = pika.BasicProperties(content_type=props.content_type, message_id=props.message_id,
                                            type=props.type, delivery_mode=pika.DeliveryMode.Persistent,
                                            headers=headers)
                ch.basic_publish("", queue_name(self.namespace, queue), body, copy, mandatory=True)
                ch.basic_ack(method.delivery_tag)
                moved += 1
        finally:
            conn.close()
