"""Idempotency keys that mean one request (DESIGN decision 13), for every mutating RPC.

A mutating RPC is one whose request message has a `request_id` field (decision 1); the
list comes from the descriptors, so a new one is covered by being declared. Every call of
one goes through `Idempotency.guarded`, installed at registration (mesh/service.py), inside
the per-call work of mesh/interceptors.py (so its refusals are mapped like any domain
error). Nothing else pays for it: GetStock and every other read are not wrapped.

The key: the request's `request_id`, unique per service (one table, `idempotency_keys`,
in the service's own schema). That is the scope the handlers' own tables already give a
request id (orders.request_id, the stock ledger's request_id... are unique per service,
whoever calls), so a narrower scope (per caller, per method) would only let a second caller
in for the handler to answer with the first caller's result.

The fingerprint: SHA-256 of the method's full name, the verified caller (mesh.call_context
subject: empty without ERP_INTERNAL_AUTH) and the whole request message, serialized
deterministically, with unknown fields dropped (the server reads none of them) and every
money amount written one way ("50", "50.0" and "50.00" are one amount to the handlers, so
to the key too). So the same key reused by another method, another caller or with any
field different is refused, never answered with another request's result.

One call, step by step:
1. claim: INSERT (key, method, fingerprint) ON CONFLICT DO NOTHING, autocommitted before the
   handler runs. Any effect under a key is therefore made by a request with the stored
   fingerprint: a later mismatch is refused even when the first call crashed half-way.
2. a key already there: another fingerprint -> ALREADY_EXISTS (KeyReused, naming the
   key); a stored response -> that response, the first call's result.
3. otherwise lock the key's row (SELECT ... FOR UPDATE, in slices of at most a second,
   until the call's deadline) and look again: whoever holds the lock while the response is
   empty runs the handler. Twins of a call in progress wait for it and answer with its
   stored response; they never run the handler beside it, so they never lose a unique race
   (no INTERNAL). The handler keeps its own transaction (mesh/uow.py) and stays
   idempotent by request id on its own: should the process die between the handler's commit
   and the response's, the lock goes with its connection and the next call with the same
   body runs the handler again, which finds the first effect and answers with it.
4. the handler answered: its response is stored on the locked row (first result kept).
   It refused (a DomainError: nothing was committed) -> the claim is deleted, so the key
   can be used again, with any body (as payment APIs do for refused requests). Anything
   else (a lost database, a bug: the effect may or may not have committed) -> the claim
   stays, with no response: the same body may retry, another body is refused.

A method whose handler is one unit of work (marked `@in_one_transaction` on its servicer)
runs that unit of work inside the key's own transaction instead, one commit for both:
1. BEGIN; claim: INSERT ... ON CONFLICT DO NOTHING, not committed. A twin's claim waits on
   this uncommitted row (in slices of the lock wait, until its deadline, as above) and then
   finds the answer stored with it, or, when this call rolled back, claims the key itself.
2. the handler's unit of work joins the transaction (mesh/uow.py SharedTransaction); its
   commit() writes its rows and leaves the COMMIT to the guard.
3. the answer is stored on the row; COMMIT: the key, the effect and the answer are kept
   together or not at all. A refused or failed call rolls back, and leaves the key free.
   A handler that answers without committing (a repeat found in its own tables) keeps nothing
   it did; its answer is stored in a statement of its own.
Three statements and one transaction fewer per call than steps 1-4 above, and no window
where an effect is committed with its answer not yet stored. A key claimed the other way and
left without an answer (a call from before, which died) is taken the other way (step 3).

A method whose handler writes everything it keeps in one statement (orders' PlaceOrder: an
order, its lines, its first step and its event) is marked `@in_one_statement`, and its first try
sends the key with that write:
1. the handler's unit of work joins a shared transaction in one statement, on a connection in
   autocommit: its repository hands its write over (mesh/uow.py write_claimed) instead of sending
   it, and its commit() hands over its events.
   The unit of work sends nothing itself (its connection refuses to), so nothing commits alone.
2. with the handler's answer, the guard sends the write behind the key, its answer and the
   events, one statement (with_claim): the key goes in first, and the rows select from its row.
   One round trip where the way above takes five (BEGIN, claim, write, answer, COMMIT), and the
   same outcome: key, effect and answer kept together or not at all. The claim's lock wait (a
   slice) bounds every wait of that statement, the handler's rows' too.
3. any conflict (the key there already, committed or held past the lock wait; the handler's own
   unique keys, as a twin's order or one placed under a pruned key) fails the whole statement:
   nothing was written, and the call runs again the way above, from its start. A twin's claim
   waits on this statement's key as on an uncommitted claim. The handler ran before the key was
   looked at, so a refusal (a DomainError) is checked against the key: a key already there sends
   the call the way above too, where the first request's answer, or KeyReused, comes before any
   check of this one's body.

Retention: keys are kept `ERP_IDEMPOTENCY_RETENTION_HOURS` (168, 7 days) after their first
use; the service's pruner (mesh/retention.py) deletes older ones in small batches. After that
a key is forgotten here; the handlers' own request-id checks still keep it from making a
second effect.
"""
from __future__ import annotations

import contextlib
import decimal
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, TypeVar, cast, overload

import grpc
import sqlalchemy as sa
from google.protobuf import any_pb2, descriptor, descriptor_pool, message, message_factory
from google.rpc import error_details_pb2
from psycopg import errors as pg_errors
from sqlalchemy.dialects.postgresql import BYTEA

from mesh import bulk, call_context, sql, uow
from mesh.errors import Aborted, AlreadyExists, DomainError
from mesh.interceptors import HandlerRegistry, MethodHandler, WrappingServer

if TYPE_CHECKING:
    from erp.common.v1 import money_pb2
    from mesh.events.tables import SchemaOps

log = logging.getLogger("mesh.idempotency")

KEY_FIELD = "request_id"
MAX_KEY = 64  # longer (or empty) keys are left to the handler, which refuses them
# How long a twin waits for the call in progress with its key when its own call has no deadline.
WAIT_SECONDS = 30.0
_LOCK_SLICE_SECONDS = 1.0


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("fingerprint", BYTEA, nullable=False),
        sa.Column("response", BYTEA),  # empty until the first call's handler answered
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


metadata = sa.MetaData()
keys = sa.Table("idempotency_keys", metadata, *_columns())


def create_table(op: SchemaOps) -> None:
    """Called from a migration of every service that has mutating RPCs."""
    op.create_table("idempotency_keys", *_columns())
    op.create_index("idempotency_keys_by_age", "idempotency_keys", ["created_at"])


def drop_table(op: SchemaOps) -> None:
    op.drop_table("idempotency_keys")


class KeyReused(AlreadyExists):
    """The key was first used for another request. ALREADY_EXISTS, not INVALID_ARGUMENT (the
    request itself is valid) nor FAILED_PRECONDITION (no state of the system will ever make
    this key right for this request): the thing the caller tries to create, a request under
    this key, exists already; a new key is the fix. An ErrorInfo detail (reason
    IDEMPOTENCY_KEY_REUSED) tells it apart from other ALREADY_EXISTS answers."""

    reason = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self, key: str) -> None:
        super().__init__(f"request_id {key} was already used for a different request; "
                         "use a new request_id for a new request")
        self.key = key

    def details(self) -> list[any_pb2.Any]:
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain="erp",
                                                metadata={"request_id": self.key}))
        return [packed]


# ---------------------------------------------------------------- which methods


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def method_descriptor(method: str) -> descriptor.MethodDescriptor | None:
    """The descriptor of "/pkg.Service/Method", or None when the default pool does not know it."""
    service, name = _split(method)
    try:
        return descriptor_pool.Default().FindServiceByName(service).methods_by_name.get(name)
    except KeyError:
        return None


def is_mutating(method_desc: descriptor.MethodDescriptor | None) -> TypeGuard[descriptor.MethodDescriptor]:
    return method_desc is not None and KEY_FIELD in method_desc.input_type.fields_by_name


def mutating_methods(service_names: Iterable[str]) -> list[str]:
    """"/pkg.Service/Method" of every mutating RPC of the named services, from the descriptors."""
    found = []
    for service in service_names:
        for m in descriptor_pool.Default().FindServiceByName(service).methods:
            if is_mutating(m):
                found.append(f"/{service}/{m.name}")
    return found


MONEY = "erp.common.v1.Money"


def _canonical_amount(amount: str) -> str:
    try:
        value = decimal.Decimal(amount)
    except decimal.InvalidOperation:
        return amount  # not a number: the handler refuses it
    return format(value.normalize(), "f") if value.is_finite() else amount


def _canonicalize(msg: message.Message) -> None:
    """Money amounts as the handlers read them: "10", "10.0" and "10.00" are one amount."""
    if msg.DESCRIPTOR.full_name == MONEY:
        # a Money by its descriptor (its class may be a dynamic one of the same type, not money_pb2's)
        money = cast("money_pb2.Money", msg)
        money.amount = _canonical_amount(money.amount)
        return
    for field, value in msg.ListFields():
        if field.message_type is None or (field.message_type.GetOptions().map_entry):
            continue
        for item in (value if field.is_repeated else (value,)):
            _canonicalize(item)


def fingerprint(method: str, request: message.Message, caller: str) -> bytes:
    canonical = type(request)()
    canonical.CopyFrom(request)
    canonical.DiscardUnknownFields()
    _canonicalize(canonical)
    digest = hashlib.sha256()
    for part in (method.encode(), caller.encode(), canonical.SerializeToString(deterministic=True)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


# ---------------------------------------------------------------- the guard

# The key's own commits do not wait for the WAL flush (synchronous_commit off, its transaction
# only): a claim is on disk before the effect it guards, because the handler's commit, a normal
# one, flushes the WAL up to and past it; a stored response lost in a crash leaves the claim
# without one, and the same request then runs the idempotent handler again.
# The claim is one statement in autocommit, its setting in a subquery of its own: one round trip,
# where BEGIN, SET, INSERT, COMMIT were four.
_CLAIM = sa.text(
    "INSERT INTO idempotency_keys (request_id, method, fingerprint)"
    " SELECT :request_id, :method, :fingerprint"
    " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush"
    " ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
).bindparams(sa.bindparam("fingerprint", type_=BYTEA))
_READ = sa.select(keys.c.fingerprint, keys.c.response).where(keys.c.request_id == sa.bindparam("key"))
# The key's row, locked, with the lock's wait (a slice) and no WAL flush set in the same round trip:
# the settings' subquery (OFFSET 0: not flattened into the join) is evaluated before the row is
# locked, which happens last, on the joined row.
_LOCK = sa.text(
    "SELECT k.fingerprint, k.response FROM"
    " (SELECT set_config('synchronous_commit', 'off', true),"
    "  set_config('lock_timeout', :timeout, true) OFFSET 0) AS settings,"
    " idempotency_keys AS k WHERE k.request_id = :key FOR UPDATE OF k")
# The claim of a call in one transaction with its handler: not committed, so a twin's claim waits
# on it (a slice at most: the lock wait set first); once claimed, the lock wait goes back to the
# session's own (:then) for the handler, set after the insert, so it does not bound the claim's wait.
_CLAIM_IN_TRANSACTION = sa.text(
    "WITH claimed AS ("
    " INSERT INTO idempotency_keys (request_id, method, fingerprint)"
    " SELECT :request_id, :method, :fingerprint FROM (SELECT set_config('lock_timeout', :timeout, true)) AS wait"
    " ON CONFLICT (request_id) DO NOTHING RETURNING request_id)"
    " SELECT set_config('lock_timeout', :then, true) FROM claimed"
).bindparams(sa.bindparam("fingerprint", type_=BYTEA))
# The sessions' own lock wait (their connect options'), read once: pg_settings lists every setting
# on each read (a millisecond of the server's CPU), too much for every call.
_SESSION_LOCK_WAIT = sa.text("SELECT reset_val FROM pg_settings WHERE name = 'lock_timeout'")
# A key and its answer at once (autocommitted, no flush): a call in one transaction whose handler
# answered without committing anything.
_CLAIM_ANSWERED = sa.text(
    "INSERT INTO idempotency_keys (request_id, method, fingerprint, response)"
    " SELECT :request_id, :method, :fingerprint, :response"
    " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush"
    " ON CONFLICT (request_id) DO NOTHING"
).bindparams(sa.bindparam("fingerprint", type_=BYTEA), sa.bindparam("response", type_=BYTEA))
_STORE_SQL = "UPDATE idempotency_keys SET response = :response WHERE request_id = :key"
_STORE = sa.text(_STORE_SQL).bindparams(sa.bindparam("response", type_=BYTEA))
# The answer and the events of the call's shared transaction, in one statement (mesh.uow.with_events).
_STORE_WITH_EVENTS = uow.with_events(_STORE_SQL).bindparams(sa.bindparam("response", type_=BYTEA))
_FREE = keys.delete().where(keys.c.request_id == sa.bindparam("key"), keys.c.response.is_(None))


_ONE_TRANSACTION = "_erp_in_one_transaction"
_ONE_STATEMENT = "_erp_in_one_statement"
_GONE = object()  # the key's row went away while this call looked: claim it again

Handler = TypeVar("Handler", bound=Callable[..., Any])


def in_one_transaction(servicer_method: Handler) -> Handler:
    """Marks a mutating RPC whose handler is one unit of work, entered once, that commits or
    raises (or answers without writing): the guard runs it inside the key's transaction."""
    setattr(servicer_method, _ONE_TRANSACTION, True)
    return servicer_method


def in_one_statement(servicer_method: Handler) -> Handler:
    """Marks a mutating RPC whose handler is one unit of work that writes all it keeps in one
    statement, through its unit of work's claimed_writer when it has one: its first try sends
    the key, the answer and the events with that statement (the module's doc). Otherwise, and on
    any conflict, it runs as @in_one_transaction."""
    setattr(servicer_method, _ONE_STATEMENT, True)
    return in_one_transaction(servicer_method)


# A call's key and answer, the first write of a one-statement call (in_one_statement): a plain INSERT,
# so a key already there fails the statement, and everything in it with it; its lock wait, for a twin
# still holding the key, set before it. The handler's rows select from `claimed`: they go in after it.
_CLAIM_FIRST = ("claimed AS (INSERT INTO idempotency_keys (request_id, method, fingerprint, response)"
                " SELECT :claim_key, :claim_method, :claim_fingerprint, :claim_response"
                " FROM (SELECT set_config('lock_timeout', :claim_timeout, true)) AS wait RETURNING request_id)")


def with_claim(statement: sa.TextClause) -> sa.TextClause:
    """`statement` (WITH ...: a repository's write whose first row selects FROM claimed, as
    mesh.bulk.insert_with_rows(after="claimed") does) behind the call's key and answer and beside
    its events: what a repository hands over with mesh.uow.UnitOfWork.write_claimed."""
    if not statement.text.startswith("WITH "):
        raise ValueError("with_claim needs a statement of CTEs (WITH ...)")
    return sa.text(f"WITH {_CLAIM_FIRST}, claimed_events AS ({uow.OUTBOX_INSERT_CLAIMED.text}),"
                   f" {statement.text.removeprefix('WITH ')}")


class Idempotency:
    def __init__(self, engine: sa.Engine, wait_seconds: float = WAIT_SECONDS) -> None:
        self.engine = engine
        self.wait_seconds = wait_seconds
        self._session_lock_wait: str | None = None  # read on the first claim in a transaction

    # -- registration

    def wrapping(self, server: HandlerRegistry) -> HandlerRegistry:
        """`server` (a grpc.Server or mesh.interceptors' wrapping one) for add_*Servicer_to_server:
        the mutating methods it registers come guarded; the others pass untouched."""
        return WrappingServer(server, self)

    @overload
    def wrapped(self, method: str, handler: MethodHandler) -> MethodHandler: ...
    @overload
    def wrapped(self, method: str, handler: MethodHandler | None) -> MethodHandler | None: ...

    def wrapped(self, method: str, handler: MethodHandler | None) -> MethodHandler | None:
        if handler is None or handler.unary_unary is None:
            return handler
        desc = method_descriptor(method)
        if not is_mutating(desc):
            return handler
        response_class = message_factory.GetMessageClass(desc.output_type)
        inner = handler.unary_unary
        shared = getattr(inner, _ONE_TRANSACTION, False)
        at_once = getattr(inner, _ONE_STATEMENT, False)

        def behavior(request: message.Message, ctx: grpc.ServicerContext) -> message.Message:
            return self.guarded(method, request, lambda: inner(request, ctx), response_class, shared, at_once)

        return grpc.unary_unary_rpc_method_handler(
            behavior, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    # -- one call

    def guarded(self, method: str, request: message.Message, run: Callable[[], message.Message],
                response_class: type[message.Message], shared: bool = False,
                at_once: bool = False) -> message.Message:
        """run()'s answer for the first request with this key; the stored answer for the same
        request again; KeyReused for another request with this key. shared: run() is one unit
        of work, run in the key's transaction. at_once: run() writes in one statement with the
        key, first (in_one_statement)."""
        key = getattr(request, KEY_FIELD, "")
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY:
            return run()  # the handler's validation refuses it; nothing to remember
        fp = fingerprint(method, request, call_context.subject.get())
        remaining = call_context.time_remaining()
        until = time.monotonic() + (self.wait_seconds if remaining is None else remaining)
        if at_once:
            written = self._run_in_one_statement(key, method, fp, run, until)
            if written is not None:
                return written
            # nothing written: the key is there or busy, or the handler's own keys: the way below
        with self.engine.connect() as conn:  # one connection for the claim and the lock
            while True:
                if shared:
                    answer = self._run_shared(conn, key, method, fp, run, response_class, until)
                    if answer is _GONE:
                        continue
                    if answer is not None:
                        return cast("message.Message", answer)
                    # claimed the other way and left without an answer: taken that way below
                found = self._claim_or_read(conn, key, method, fp)
                if found is not None:
                    if found.fingerprint != fp:
                        raise KeyReused(key)
                    if found.response is not None:
                        return response_class.FromString(found.response)
                outcome = self._run_locked(conn, key, fp, run, response_class, until)
                if outcome[0]:  # (done, response)
                    return outcome[1]
                # The first request with this key was refused and freed it: claim it again.

    def _run_in_one_statement(self, key: str, method: str, fp: bytes, run: Callable[[], message.Message],
                              until: float) -> message.Message | None:
        """run()'s answer, written with its effect, events and key in one statement; None when
        that statement wrote nothing, when run() answered without handing over its write, or
        when it refused a request whose key is there (the key's own answer decides: the first
        request's, or KeyReused for another, before any check of this body)."""
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")  # the statement is the transaction
            transaction = uow.SharedTransaction(self.engine, conn, one_statement=True)
            try:
                with uow.sharing(transaction):
                    response = run()
            except DomainError:
                if conn.execute(_READ, {"key": key}).first() is not None:
                    return None
                raise  # a refused request with a free key: nothing was written, the key stays free
            if not transaction.ready or transaction.deferred is None:
                return None
            statement, params = transaction.deferred
            lock_wait = next(self._lock_slices(key, until))  # bounds the whole statement's lock waits
            try:
                sql.run(conn, statement, {
                    **params, "claim_key": key, "claim_method": method, "claim_fingerprint": fp,
                    "claim_response": response.SerializeToString(), "claim_timeout": lock_wait,
                    **bulk.rows(transaction.events, uow.CLAIMED_EVENTS)})
            except (sa.exc.IntegrityError, sa.exc.OperationalError) as err:
                if isinstance(err.orig, pg_errors.UniqueViolation | pg_errors.LockNotAvailable):
                    return None
                raise
        transaction.committed()
        return response

    def _run_shared(self, conn: sa.Connection, key: str, method: str, fp: bytes,
                    run: Callable[[], message.Message], response_class: type[message.Message],
                    until: float) -> object:
        """run()'s answer, or a stored one; _GONE; None for a key claimed outside a shared
        transaction whose call left no answer."""
        row = self._claim_in_transaction(conn, key, method, fp, until)
        if row is not None:
            if row is _GONE:
                return _GONE
            found = cast("sa.Row[Any, Any]", row)
            if found.fingerprint != fp:
                raise KeyReused(key)
            return None if found.response is None else response_class.FromString(found.response)
        transaction = uow.SharedTransaction(self.engine, conn)
        try:
            with uow.sharing(transaction):
                response = run()
        except BaseException:
            with contextlib.suppress(Exception):  # a lost connection: its transaction is gone anyway
                conn.rollback()  # nothing is kept, the key neither: it can be used again
            raise
        answer = {"request_id": key, "method": method, "fingerprint": fp, "response": response.SerializeToString()}
        if transaction.joined and not transaction.ready:  # answered from what was there
            conn.rollback()
            conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                conn.execute(_CLAIM_ANSWERED, answer)
            finally:
                conn.rollback()
                conn.execution_options(isolation_level=conn.default_isolation_level)
            return response
        stored = {"key": key, "response": answer["response"]}
        if transaction.events:
            sql.run(conn, _STORE_WITH_EVENTS, {**stored, **bulk.rows(transaction.events)})
        else:
            sql.run(conn, _STORE, stored)
        conn.commit()
        transaction.committed()
        return response

    def _claim_in_transaction(self, conn: sa.Connection, key: str, method: str, fp: bytes,
                              until: float) -> sa.Row[Any, Any] | object | None:
        """None when this call claimed the key (its transaction left open); else, the transaction
        ended, the key's row as a twin committed it, or _GONE."""
        for timeout in self._lock_slices(key, until):
            conn.begin()
            if self._session_lock_wait is None:
                self._session_lock_wait = str(conn.execute(_SESSION_LOCK_WAIT).scalar_one())
            try:
                claimed = sql.run(conn, _CLAIM_IN_TRANSACTION, {
                    "request_id": key, "method": method, "fingerprint": fp, "timeout": timeout,
                    "then": self._session_lock_wait}).first()
            except sa.exc.OperationalError as err:
                if not isinstance(err.orig, pg_errors.LockNotAvailable):
                    raise
                conn.rollback()
                continue
            if claimed is not None:
                return None
            row = conn.execute(_READ, {"key": key}).first()
            conn.rollback()
            return _GONE if row is None else row
        raise AssertionError("unreachable: _lock_slices ends by raising")

    @staticmethod
    def _lock_slices(key: str, until: float) -> Iterator[str]:
        """The lock wait ('250ms') of each try, a second at most, until `until`; then Aborted."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                raise Aborted(f"request_id {key} is still being processed by another call; retry it")
            yield f"{max(1, int(min(left, _LOCK_SLICE_SECONDS) * 1000))}ms"

    @staticmethod
    def _claim_or_read(conn: sa.Connection, key: str, method: str, fp: bytes) -> sa.Row[Any, Any] | None:
        """None when this call claimed the key; else the key's row (fingerprint, response)."""
        conn.execution_options(isolation_level="AUTOCOMMIT")  # no round trip: a driver setting
        try:
            claimed = conn.execute(_CLAIM, {"request_id": key, "method": method, "fingerprint": fp}).first()
            return None if claimed else conn.execute(_READ, {"key": key}).first()
        finally:
            conn.rollback()  # ends SQLAlchemy's transaction marker; nothing is sent in autocommit
            conn.execution_options(isolation_level=conn.default_isolation_level)

    def _run_locked(self, conn: sa.Connection, key: str, fp: bytes, run: Callable[[], message.Message],
                    response_class: type[message.Message],
                    until: float) -> tuple[Literal[True], message.Message] | tuple[Literal[False], None]:
        """(True, response) once answered; (False, None) when the key's row is gone."""
        row = self._lock(conn, key, until)
        if row is None:
            conn.rollback()
            return False, None
        if row.fingerprint != fp:
            raise KeyReused(key)
        if row.response is not None:  # a twin answered while this call waited
            conn.rollback()
            return True, response_class.FromString(row.response)
        try:
            response = run()
        except DomainError:
            conn.execute(_FREE, {"key": key})  # refused: nothing was done under the key
            conn.commit()
            raise
        # Anything else propagates; closing the connection rolls back and keeps the claim
        # (fingerprint, no response).
        conn.execute(_STORE, {"key": key, "response": response.SerializeToString()})
        conn.commit()
        return True, response

    def _lock(self, conn: sa.Connection, key: str, until: float) -> sa.Row[Any, Any] | None:
        """The key's row, locked; waits in slices of at most a second (lock_timeout), until
        `until`. A call holds at most two pooled connections (this one and its handler's), and
        calls in progress are at most ERP_GRPC_MAX_WORKERS, so waiting twins cannot starve the
        call they wait for while that is at most ERP_DB_POOL_SIZE (4 and 10 by default)."""
        for timeout in self._lock_slices(key, until):
            conn.begin()
            try:
                return conn.execute(_LOCK, {"key": key, "timeout": timeout}).first()
            except sa.exc.OperationalError as err:
                if not isinstance(err.orig, pg_errors.LockNotAvailable):
                    raise
                conn.rollback()
        raise AssertionError("unreachable: _lock_slices ends by raising")
