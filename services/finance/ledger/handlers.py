"""Finance's shared use cases (the trial balance, the journal's entries) and the steps
every use case of receivables and payables takes the same way."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from mesh import money, paging
from mesh.errors import AlreadyExists, NotFound, Violations
from services.finance.ledger import periods
from services.finance.ledger.domain import MAX_ID, FinanceConfig, JournalEntry, TrialBalance

if TYPE_CHECKING:
    from services.finance.adapters import FinanceUnitOfWork

Answer = TypeVar("Answer")
Locked = TypeVar("Locked")
Found = TypeVar("Found")
Earlier = TypeVar("Earlier")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def once_per_request(first_answer: Callable[[], Answer | None], lock: Callable[[], Locked],
                     answer: Callable[[Locked], Answer]) -> Answer:
    """A request idempotent by its request id, in one transaction: the answer an earlier
    request with the same id got (first_answer: None when there was none, AlreadyExists when
    that id was used for something else) is looked up before the lock, so a repeat takes
    none, and again once lock() holds the aggregate's row, since a twin request may have
    committed while this one waited for it; only then is the request answered, under the lock."""
    earlier = first_answer()
    if earlier is not None:
        return earlier
    locked = lock()
    earlier = first_answer()  # a twin request committed while we waited for the lock
    if earlier is not None:
        return earlier
    return answer(locked)


def recorded_for(request_id: str, earlier: Earlier | None, same_request: Callable[[Earlier], bool], what: str
                 ) -> Earlier | None:
    """What an earlier request with this request_id recorded (None: there was none);
    AlreadyExists when that request was another one (same_request says it was not)."""
    if earlier is None:
        return None
    if not same_request(earlier):
        raise AlreadyExists(f"request_id {request_id} was used for another {what}")
    return earlier


def read_one(uow: FinanceUnitOfWork, field: str, key: str, read: Callable[[str], Found | None], what: str) -> Found:
    """A read by id, in a transaction of its own: INVALID_ARGUMENT naming the field for a
    malformed id, NOT_FOUND naming what is missing."""
    validate_id(field, key, required=True)
    with uow:
        found = read(key)
    if found is None:
        raise NotFound(f"no {what} {key}")
    return found


def validate_id(field: str, value: str, required: bool) -> None:
    v = Violations()
    v.check(bool(value or not required) and len(value) <= MAX_ID, field,
            f"must be {'1' if required else '0'}-{MAX_ID} characters")
    v.raise_if_any()


def report_currency(currency_code: str, config: FinanceConfig) -> str:
    """A report's currency: the request's, or the configured one when it names none."""
    v = Violations()
    v.check(not currency_code or money.valid_currency(currency_code), "currency_code",
            "must be an ISO 4217 code such as EUR, or empty for the default")
    v.raise_if_any()
    return currency_code or config.currency


def list_journal_entries(uow: FinanceUnitOfWork, reference: str, page_size: int, page_token: str
                         ) -> tuple[list[JournalEntry], str]:
    validate_id("reference", reference, required=False)
    size = paging.page_size(page_size)
    filters = {"reference": reference}
    token_key = paging.decode(page_token, filters, (int,))
    after = int(token_key[0]) if token_key is not None else None
    with uow:
        found = uow.journal.list(reference=reference, after=after, limit=size + 1)
    return found[:size], paging.next_token(found, size, lambda e: [e.entry_id], filters)


def trial_balance(uow: FinanceUnitOfWork, currency_code: str, config: FinanceConfig, period: str = ""
                  ) -> tuple[str, TrialBalance]:
    """Over every entry, or those posted up to the end of an accounting period ("2026-11")."""
    currency = report_currency(currency_code, config)
    if period:
        v = Violations()
        periods.check_period(v, "period", period)
        v.raise_if_any()
    with uow:
        lines = (uow.journal.trial_balance(currency, periods.period_end(period)) if period
                 else uow.journal.trial_balance(currency))
    return currency, TrialBalance(tuple(lines))
