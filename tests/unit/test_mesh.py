"""The shared runtime's pure parts: money, retry backoff, the error model, event
envelopes and settings."""
from __future__ import annotations

import json
import os
import re
import threading
from decimal import Decimal
from unittest import mock

import grpc
import psycopg
import pytest
import redis
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2
from sqlalchemy import exc as sa_exc

from erp.events.v1 import envelope_pb2
from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from mesh import bulk, call_context, faults, locks, money, settings
from mesh.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Violations,
    to_status,
)
from mesh.events import envelope
from mesh.events.consumer import Consumer, EventHandlers
from mesh.events.envelope import UndecodableEvent
from mesh.events.transport import Ack, DeadLetter, Delivery, Retry, retry_delays

# ---------------------------------------------------------------- money


@pytest.mark.parametrize("text", ["1e5", "1E5", "NaN", "Infinity", "1.23456", "", "--1", "+1", "1.", ".5",
                                  " 1", "1 ", "1,5", "0x10", "123456789012345", "1.2.3", "-", None])
def test_parse_amount_refuses(text):
    assert money.parse_amount(text) is None


@pytest.mark.parametrize(("text", "value"), [
    ("-3", Decimal(-3)), ("0.0001", Decimal("0.0001")), ("12.50", Decimal("12.50")), ("0", Decimal(0)),
    ("99999999999999.9999", Decimal("99999999999999.9999")), ("-0.5", Decimal("-0.5")),
])
def test_parse_amount_accepts(text, value):
    parsed = money.parse_amount(text)
    assert isinstance(parsed, Decimal)
    assert parsed == value


@pytest.mark.parametrize("text", ["12.50\n", "\u0661\u0662", "\uff11\uff12"])
def test_parse_amount_refuses_a_trailing_newline_and_non_ascii_digits(text):
    """'$' matches before a final newline and \\d matches any Unicode digit; Decimal() accepts both."""
    assert money.parse_amount(text) is None


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("0.30"), "0.30"), (Decimal("0.3"), "0.30"), (Decimal(5), "5.00"), (Decimal("12.5"), "12.50"),
    (Decimal("0.0125"), "0.0125"), (Decimal("-3"), "-3.00"), (Decimal("1E+3"), "1000.00"),
    (Decimal("0.1") * 3, "0.30"), (Decimal("99999999999999.9999"), "99999999999999.9999"),
    (Decimal("2.5000"), "2.50"), (Decimal("349.0050"), "349.005"), (Decimal("0E-4"), "0.00"),
    (Decimal("-0.0100"), "-0.01"),
])
def test_format_amount(value, text):
    assert money.format_amount(value) == text


def test_format_then_parse_is_the_same_number():
    for text in ["0.01", "-7.25", "0.0003", "123.4"]:
        value = money.parse_amount(text)
        assert money.parse_amount(money.format_amount(value)) == value


@pytest.mark.parametrize(("code", "ok"), [("EUR", True), ("USD", True), ("eur", False), ("EU", False),
                                          ("EURO", False), ("", False), (None, False)])
def test_valid_currency(code, ok):
    assert money.valid_currency(code) is ok


# ---------------------------------------------------------------- retry backoff


@pytest.mark.parametrize(("base_ms", "attempts", "delays"), [
    (200, 5, [0.2, 0.8, 3.2, 12.8]),
    (100, 2, [0.1]),
    (100, 1, []),
    (100, 0, []),
    (100, -3, []),
])
def test_retry_delays(base_ms, attempts, delays):
    assert retry_delays(base_ms, attempts) == pytest.approx(delays)


# ---------------------------------------------------------------- the error model


def test_violations_raise_invalid_argument_with_every_field():
    v = Violations()
    assert v.check(True, "ok", "never listed")
    assert not v.check(False, "lines[0].quantity", "must be 1-10")
    v.add("currency_code", "must be an ISO 4217 code")
    with pytest.raises(InvalidArgument) as exc:
        v.raise_if_any()
    assert exc.value.violations == [FieldViolation("lines[0].quantity", "must be 1-10"),
                                    FieldViolation("currency_code", "must be an ISO 4217 code")]
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "lines[0].quantity: must be 1-10" in exc.value.message


def test_no_violations_raise_nothing():
    Violations().raise_if_any()


def test_invalid_argument_details_are_a_bad_request():
    err = InvalidArgument([FieldViolation("sku", "too long"), FieldViolation("reason", "empty")])
    [detail] = err.details()
    bad = error_details_pb2.BadRequest()
    assert detail.Unpack(bad)
    assert [(f.field, f.description) for f in bad.field_violations] == [("sku", "too long"), ("reason", "empty")]


def test_resource_exhausted_carries_retry_info():
    [detail] = ResourceExhausted("slow down", retry_after_seconds=1.5).details()
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info)
    assert (info.retry_delay.seconds, info.retry_delay.nanos) == (1, 500_000_000)
    assert ResourceExhausted("slow down").details() == []


@pytest.mark.parametrize(("error", "code"), [
    (NotFound("x"), grpc.StatusCode.NOT_FOUND), (AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
    (FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
    (ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
])
def test_each_error_has_its_status_code(error, code):
    assert error.code == code
    assert error.details() == []


def test_to_status_builds_a_rich_status():
    err = InvalidArgument([FieldViolation("sku", "bad")])
    status = to_status(err.code, err.message, err.details())
    assert status.code == code_pb2.INVALID_ARGUMENT == 3
    assert status.message == "invalid request: sku: bad"
    assert status.details[0].Is(error_details_pb2.BadRequest.DESCRIPTOR)
    assert to_status(grpc.StatusCode.NOT_FOUND, "gone").code == code_pb2.NOT_FOUND


# ---------------------------------------------------------------- event envelopes


def stock_reserved() -> inv_ev.StockReserved:
    return inv_ev.StockReserved(order_id="o1", lines=[inv_ev.ReservedLine(line_no=1, sku="S", quantity=2)])


def test_an_envelope_round_trips_with_the_calls_ids():
    with call_context.scope(correlation="corr-1", causation="cause-1"):
        env = envelope.build(source="inventory", aggregate_type="reservation", aggregate_id="o1",
                             aggregate_version=3, payload=stock_reserved())
    event = envelope.decode(env.SerializeToString())
    assert event.payload == stock_reserved()
    assert isinstance(event.payload, inv_ev.StockReserved)
    e = event.envelope
    assert (e.event_type, e.source, e.aggregate_type, e.aggregate_id, e.aggregate_version) == (
        "erp.events.v1.StockReserved", "inventory", "reservation", "o1", 3)
    assert (e.correlation_id, e.causation_id) == ("corr-1", "cause-1")
    assert e.event_id and e.event_id not in ("corr-1", "cause-1")
    assert e.occurred_at.seconds > 0


def test_an_envelope_outside_a_call_is_its_own_cause():
    env = envelope.build(source="orders", aggregate_type="order", aggregate_id="o1", aggregate_version=1,
                         payload=orders_ev.OrderConfirmed(order_id="o1"))
    assert env.correlation_id == env.causation_id == env.event_id


def test_event_ids_are_unique():
    ids = {envelope.build(source="s", aggregate_type="a", aggregate_id="1", aggregate_version=1,
                          payload=stock_reserved()).event_id for _ in range(50)}
    assert len(ids) == 50


def valid_envelope() -> envelope_pb2.EventEnvelope:
    return envelope.build(source="inventory", aggregate_type="reservation", aggregate_id="o1",
                          aggregate_version=1, payload=stock_reserved())


@pytest.mark.parametrize("body", [b"\x0a\xff", b"\xff\xff\xff\xff", b"\x52\x05ab"])
def test_decode_refuses_garbage(body):
    with pytest.raises(UndecodableEvent):
        envelope.decode(body)


@pytest.mark.parametrize("field", ["event_id", "event_type"])
def test_decode_refuses_an_envelope_without_id_or_type(field):
    env = valid_envelope()
    env.ClearField(field)
    with pytest.raises(UndecodableEvent):
        envelope.decode(env.SerializeToString())


def test_decode_refuses_a_payload_of_another_type():
    env = valid_envelope()
    env.event_type = "erp.events.v1.StockReservationFailed"
    with pytest.raises(UndecodableEvent, match="does not match"):
        envelope.decode(env.SerializeToString())


def test_decode_refuses_an_unknown_event_type():
    env = valid_envelope()
    env.event_type = "erp.events.v1.NoSuchEvent"
    env.payload.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/erp.events.v1.NoSuchEvent", value=b""))
    with pytest.raises(UndecodableEvent, match="unknown event type"):
        envelope.decode(env.SerializeToString())


def corrupt_payload() -> bytes:
    env = valid_envelope()
    env.payload.value = b"\x0a\xff"  # field 1 claims 255 bytes that are not there
    return env.SerializeToString()


def test_decode_refuses_a_payload_that_does_not_parse():
    """Any.Unpack raises protobuf's DecodeError; decode must turn it into UndecodableEvent."""
    with pytest.raises(UndecodableEvent):
        envelope.decode(corrupt_payload())


# ---------------------------------------------------------------- the consumer's retry policy


class StubUnitOfWork:
    """Just enough of a unit of work for Consumer._apply: the inbox insert says 'first time' for every event."""

    class _Result:
        def __init__(self, parameters: dict[str, str] | None) -> None:
            self.parameters = parameters

        def scalars(self):  # the inbox insert's: its rows came as mesh.bulk.rows()
            return [row["event_id"] for row in json.loads(self.parameters[bulk.ROWS])]

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.connection = self

    def execute(self, statement, parameters=None):
        self.log.append("inbox" if parameters and bulk.ROWS in parameters else "set")
        return self._Result(parameters)

    run = execute  # UnitOfWork.run: a hot statement on the driver's cursor

    def lock_all(self, refs, then_lock_timeout=None) -> None:
        self.log.extend(f"lock {kind}:{ident}" for kind, ident in refs)
        if then_lock_timeout is not None:
            self.log.append(f"lock_timeout {then_lock_timeout}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def commit(self):
        self.log.append("commit")


def consumer_with(handler, log: list[str], max_attempts: int = 3) -> Consumer:
    handlers = EventHandlers(consumer="test")
    handlers.on(inv_ev.StockReserved, lock=locks.by("order", "order_id"))(handler)
    return Consumer(handlers, lambda: StubUnitOfWork(log), max_attempts=max_attempts, retry_base_ms=100)


def test_consumer_acks_after_committing_the_handlers_effect():
    log: list[str] = []
    seen = []
    consumer = consumer_with(lambda uow, payload, event: seen.append(payload.order_id), log)
    assert consumer.handle(Delivery(valid_envelope().SerializeToString(), 0, None)) == Ack()
    assert seen == ["o1"]
    # the aggregate is locked before anything else; the handler's lock wait is set with it
    assert log == ["lock order:o1", "lock_timeout 5s", "inbox", "commit"]


def test_consumer_retries_with_backoff_then_dead_letters():
    def failing(uow, payload, event):
        raise RuntimeError("boom")

    consumer = consumer_with(failing, [], max_attempts=3)
    body = valid_envelope().SerializeToString()
    first, second = (consumer.handle(Delivery(body, n, None)) for n in (0, 1))
    assert isinstance(first, Retry) and first.delay_seconds == pytest.approx(0.1)
    assert isinstance(second, Retry) and second.delay_seconds == pytest.approx(0.4)
    assert "boom" in first.error
    assert isinstance(consumer.handle(Delivery(body, 2, None)), DeadLetter)


def test_consumer_dead_letters_garbage_and_unhandled_types_at_once():
    consumer = consumer_with(lambda *a: None, [])
    assert isinstance(consumer.handle(Delivery(b"\xff\xff", 0, None)), DeadLetter)
    other = envelope.build(source="s", aggregate_type="a", aggregate_id="1", aggregate_version=1,
                           payload=orders_ev.OrderConfirmed(order_id="o1"))
    assert isinstance(consumer.handle(Delivery(other.SerializeToString(), 0, None)), DeadLetter)


def test_consumer_dead_letters_a_payload_that_does_not_parse():
    """Were the error to escape handle(), the batch would never be settled and the message
    would come back forever instead of going to the dead-letter queue."""
    consumer = consumer_with(lambda *a: None, [])
    assert isinstance(consumer.handle(Delivery(corrupt_payload(), 0, None)), DeadLetter)


# ---------------------------------------------------------------- settings


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("ERP_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_settings_defaults(clean_env):
    s = settings.load("orders", 50052)
    assert (s.grpc_port, s.event_transport, s.event_max_attempts) == (50052, "postgres", 5)
    assert settings.load("orders").grpc_port == 0  # no default port: any free one
    assert s.schema == "orders"
    with pytest.raises(ValueError, match="ERP_INVENTORY_TARGET is not set: the host:port where inventory answers"):
        s.target("inventory")


def test_settings_read_the_environment(clean_env):
    clean_env.setenv("ERP_GRPC_PORT", " 6000 ")
    clean_env.setenv("ERP_DATABASE_URL", "postgresql://shared")
    clean_env.setenv("ERP_ORDERS_DATABASE_URL", "postgresql://orders")
    clean_env.setenv("ERP_AMQP_URL", "amqp://x")
    clean_env.setenv("ERP_MIGRATE_ON_START", "off")
    clean_env.setenv("ERP_INVENTORY_TARGET", "inventory:443")
    clean_env.setenv("ERP_PROCUREMENT_TARGET", " ")
    s = settings.load("orders")
    assert s.grpc_port == 6000
    assert s.database_url == "postgresql://orders"
    assert s.event_transport == "amqp"
    assert s.migrate_on_start is False
    assert s.targets == {"inventory": "inventory:443"}  # a blank one is no target
    assert settings.load("inventory").database_url == "postgresql://shared"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("ERP_GRPC_PORT", "50o51", "ERP_GRPC_PORT must be a whole number"),
    ("ERP_EVENT_MAX_ATTEMPTS", "3.5", "ERP_EVENT_MAX_ATTEMPTS must be a whole number"),
    ("ERP_CACHE_TTL_SECONDS", "five", "ERP_CACHE_TTL_SECONDS must be a number"),
    ("ERP_MIGRATE_ON_START", "maybe", "ERP_MIGRATE_ON_START must be true or false"),
    ("ERP_EVENT_TRANSPORT", "kafka", "ERP_EVENT_TRANSPORT must be one of amqp, postgres"),
    ("ERP_EVENT_TRANSPORT", "amqp", "needs ERP_AMQP_URL"),
])
def test_settings_refuse_a_bad_value_by_name(clean_env, name, value, message):
    clean_env.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        settings.load("orders")


def test_new_ids_are_version_4_uuids_whoever_reseeds_random_and_a_forked_child_draws_others():
    import random
    import uuid

    state = random.getstate()
    try:
        random.seed(7)
        ids = [call_context.new_id() for _ in range(10_000)]
        random.seed(7)  # whoever reseeds the random module's generator (Hypothesis does) changes nothing here
        ids += [call_context.new_id() for _ in range(10_000)]
    finally:
        random.setstate(state)
    assert len(set(ids)) == len(ids)
    for text in ids[:100]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child writes its next ids; the parent draws its own next ones
        os.write(write, " ".join(call_context.new_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        from_child = pipe.read().split()
    assert len(from_child) == 3 and not set(from_child) & {call_context.new_id() for _ in range(3)}


def test_the_acting_person_is_the_verified_caller_when_there_is_one():
    from mesh import call_context
    from mesh.errors import InvalidArgument

    assert call_context.acting_person("alice", "approver") == "alice", "no verified caller: the request's claim"
    with call_context.scope(caller="bob"):
        assert call_context.acting_person("", "approver") == "bob"
        assert call_context.acting_person("bob", "approver") == "bob"
        with pytest.raises(InvalidArgument) as caught:
            call_context.acting_person("alice", "approver")
        assert caught.value.violations[0].field == "approver"


def test_registration_wraps_unary_handlers_and_passes_streams():
    from mesh.interceptors import ServerCalls

    registered = {}

    class Server:
        def add_registered_method_handlers(self, service, handlers):
            registered.update({f"/{service}/{name}": h for name, h in handlers.items()})

        def add_generic_rpc_handlers(self, handlers):
            registered["generic"] = handlers[0]

    def unary(request, ctx):
        return request

    def stream(request, ctx):
        yield request

    handlers = {"Get": grpc.unary_unary_rpc_method_handler(unary),
                "Watch": grpc.unary_stream_rpc_method_handler(stream)}
    wrapping = ServerCalls().wrapping(Server())
    wrapping.add_registered_method_handlers("erp.Test", handlers)
    wrapping.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("erp.Test", handlers),))

    assert registered["/erp.Test/Get"].unary_unary is not unary
    assert registered["/erp.Test/Watch"] is handlers["Watch"]

    class Details:
        method, invocation_metadata = "/erp.Test/Get", ()

    by_generic = registered["generic"].service(Details())
    assert by_generic.unary_unary is not unary and registered["generic"].service(Details()) is by_generic
    Details.method = "/erp.Test/Watch"
    assert registered["generic"].service(Details()) is handlers["Watch"]
    Details.method = "/erp.Test/Nope"
    assert registered["generic"].service(Details()) is None  # grpc answers UNIMPLEMENTED


# ---------------------------------------------------------------- infrastructure failures are not attempts


def _sa_error(orig: Exception) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, orig)


@pytest.mark.parametrize("error", [
    _sa_error(psycopg.OperationalError("server closed the connection unexpectedly")),  # no SQLSTATE: gone
    _sa_error(psycopg.errors.AdminShutdown()),  # 57P01, a restart or failover
    _sa_error(psycopg.errors.ConnectionFailure()),  # class 08
    _sa_error(psycopg.errors.DeadlockDetected()),
    _sa_error(psycopg.errors.LockNotAvailable()),  # lock_timeout: contention
    sa_exc.TimeoutError("QueuePool limit reached"),
    redis.ConnectionError("Connection refused"),
    ConnectionResetError(),
])
def test_the_infrastructure_failing_is_recognised(error):
    assert faults.is_infrastructure(error)


@pytest.mark.parametrize("error", [
    ValueError("malformed amount"),
    _sa_error(psycopg.errors.QueryCanceled()),  # statement_timeout: the handler's own statement
    sa_exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation()),
    NotFound("no order o1"),
])
def test_a_handlers_own_failure_is_not_the_infrastructures(error):
    assert not faults.is_infrastructure(error)


def test_an_infrastructure_failure_is_retried_uncounted_even_on_the_last_attempt():
    def lost_database(uow, payload, event):
        raise _sa_error(psycopg.errors.AdminShutdown())

    consumer = consumer_with(lost_database, [], max_attempts=3)
    outcome = consumer.handle(Delivery(valid_envelope().SerializeToString(), 2, None))
    assert isinstance(outcome, Retry) and not outcome.counted
    assert "AdminShutdown" in outcome.error


def test_the_consumer_takes_nothing_more_until_its_dependencies_answer():
    answers = iter([False, False, True])
    asked = []

    def ready() -> bool:
        asked.append(1)
        return next(answers)

    consumer = Consumer(EventHandlers(consumer="test"), lambda: None, 3, 100, ready=ready)
    stop = threading.Event()
    with mock.patch.object(stop, "wait") as waited:  # no real sleeping in a unit test
        consumer.wait_until_ready(stop)
    assert len(asked) == 3
    assert [c.args[0] for c in waited.call_args_list] == [1.0, 2.0]  # backs off while it waits


def test_deadletters_refuses_a_service_that_has_no_queue(capsys):
    from services.tools import deadletters

    with pytest.raises(SystemExit) as exit_:
        deadletters.main(["list", "inventroy"])
    assert exit_.value.code == 2
    assert "invalid choice: 'inventroy'" in capsys.readouterr().err


def test_text_log_lines_carry_the_calls_ids_before_any_traceback():
    import logging

    from mesh import call_context, logs

    formatter = logs.TextFormatter("orders")
    record = logging.LogRecord("services.orders", logging.WARNING, __file__, 1, "slow: %s", ("db",), None)
    assert formatter.format(record).endswith("WARNING services.orders: slow: db")  # no ids, no brackets
    with call_context.scope(request="req-1", correlation="corr-1"):
        assert formatter.format(record).endswith("slow: db [request_id=req-1 correlation_id=corr-1]")
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
        first, _, rest = formatter.format(failed).partition("\n")
        assert first.endswith("failed [request_id=req-1 correlation_id=corr-1]") and "ValueError: boom" in rest


def test_variables_read_each_kind_with_its_default_and_name_the_variable_when_bad():
    from mesh.settings import Variables

    v = Variables({"ERP_A": " 7 ", "ERP_B": "0.05", "ERP_C": "yes", "ERP_D": "", "ERP_E": "nan", "ERP_F": "CLOSED"})
    assert (v.integer("ERP_A", 1), v.decimal("ERP_B", "0"), v.flag("ERP_C", False), v.integer("ERP_D", 3)) == \
        (7, Decimal("0.05"), True, 3)
    assert v.choice("ERP_F", "open", ("open", "closed")) == "closed"
    for read, message in [(lambda: v.integer("ERP_A", 1, most=5), "ERP_A must be at most 5, got 7"),
                          (lambda: v.decimal("ERP_B", "0", least=Decimal("0.1")), "ERP_B must be at least 0.1"),
                          (lambda: v.number("ERP_E", 1.0), "ERP_E must be a finite number"),
                          (lambda: v.decimal("ERP_E", "0"), "ERP_E must be a finite number"),
                          (lambda: v.flag("ERP_F", True), "ERP_F must be true or false"),
                          (lambda: v.integer("ERP_B", 1), "ERP_B must be a whole number, got '0.05'")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            read()
