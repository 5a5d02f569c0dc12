"""Transfers: money moved from a debit account to a credit account, once per caller-chosen id.

``transfer(spec)`` posts one transfer, ``transfer_linked(specs)`` several that
succeed or fail together. Both work inside the caller's transaction (a
savepoint when one is open), so a caller can post in the same transaction as
its own rows.

Idempotency: the spec's ``id`` is the key. Repeating a spec that was already
written returns the stored transfer with ``replayed=True`` and changes
nothing; the same id with any other content raises ``TransferExists``. A
refused transfer writes nothing.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from models.base import utcnow
from models.db import db
from models.ledger.accounts import CURRENCY, AccountSpec
from models.ledger.errors import (
    AccountNotFound,
    CurrencyMismatch,
    InvalidAmount,
    InvalidTransfer,
    LedgerError,
    SameAccount,
    TransferExists,
)
from models.ledger.one_statement import lock_check_write
from models.ledger.postings import (
    Leg,
    LockedAccount,
    Transfer,
    apply_legs,
    check_legs,
    load,
    lock_accounts,
    open_and_lock,
    transaction,
    write,
    write_batch,
)

MAX_AMOUNT = 2**63 - 1
MAX_KIND = 64
MAX_MEMO = 2000
MAX_TIMEOUT_SECONDS = 366 * 24 * 3600


@dataclass(frozen=True)
class TransferSpec:
    """A transfer to post: ``amount`` minor units from account ``debit`` to account ``credit`` (codes).

    ``pending=True`` reserves the amount (pending balances) until ``post_pending``
    or ``void_pending`` resolves it, or ``timeout_seconds`` pass and
    ``expire_pending`` voids it.
    """

    id: uuid.UUID
    debit: str
    credit: str
    amount: int
    currency: str = "USD"
    kind: str = "transfer"
    escrow_id: uuid.UUID | None = None
    memo: str | None = None
    user_data: dict | None = None
    pending: bool = False
    timeout_seconds: int | None = None


def validate(spec: TransferSpec) -> None:
    """Refuse what no state of the ledger could accept (raises a ``LedgerError``)."""
    if not isinstance(spec.id, uuid.UUID):
        raise InvalidTransfer("a transfer id is a UUID")
    if isinstance(spec.amount, bool) or not isinstance(spec.amount, int) or not 0 < spec.amount <= MAX_AMOUNT:
        raise InvalidAmount(f"an amount is a positive whole number of minor units, not {spec.amount!r}")
    if spec.debit == spec.credit:
        raise SameAccount(f"a transfer from {spec.debit!r} to itself")
    if not isinstance(spec.currency, str) or not CURRENCY.fullmatch(spec.currency):
        raise InvalidTransfer(f"a currency is three capital letters, not {spec.currency!r}")
    if not isinstance(spec.kind, str) or not 1 <= len(spec.kind) <= MAX_KIND:
        raise InvalidTransfer(f"a transfer kind is 1 to {MAX_KIND} characters")
    if spec.memo is not None and (not isinstance(spec.memo, str) or len(spec.memo) > MAX_MEMO):
        raise InvalidTransfer(f"a memo is at most {MAX_MEMO} characters")
    if spec.escrow_id is not None and not isinstance(spec.escrow_id, uuid.UUID):
        raise InvalidTransfer("an escrow id is a UUID")
    if spec.user_data is not None and not isinstance(spec.user_data, dict):
        raise InvalidTransfer("user data is a JSON object")
    if spec.timeout_seconds is not None:
        if not spec.pending:
            raise InvalidTransfer("only a pending transfer has a timeout")
        seconds = spec.timeout_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 < seconds <= MAX_TIMEOUT_SECONDS:
            raise InvalidTransfer(f"a timeout is 1 to {MAX_TIMEOUT_SECONDS} whole seconds")


def _stored(spec: TransferSpec, now: datetime.datetime, linked_group: uuid.UUID | None) -> Transfer:
    timeout_at = None if spec.timeout_seconds is None else now + datetime.timedelta(seconds=spec.timeout_seconds)
    return Transfer(
        id=spec.id,
        debit=spec.debit,
        credit=spec.credit,
        amount=spec.amount,
        currency=spec.currency,
        kind=spec.kind,
        state="pending" if spec.pending else "posted",
        pending_id=None,
        timeout_at=timeout_at,
        escrow_id=spec.escrow_id,
        memo=spec.memo,
        user_data=spec.user_data,
        linked_group=linked_group,
        created_at=now,
    )


def _same_content(spec: TransferSpec, existing: Transfer) -> bool:
    timeout = None
    if existing.timeout_at is not None:
        timeout = (existing.timeout_at - existing.created_at).total_seconds()
    return (
        existing.state == ("pending" if spec.pending else "posted")
        and (existing.debit, existing.credit, existing.amount, existing.currency, existing.kind)
        == (spec.debit, spec.credit, spec.amount, spec.currency, spec.kind)
        and (existing.escrow_id, existing.memo, existing.user_data) == (spec.escrow_id, spec.memo, spec.user_data)
        and timeout == spec.timeout_seconds
    )


def _replay(spec: TransferSpec, existing: Transfer) -> Transfer:
    if not _same_content(spec, existing):
        raise TransferExists(f"transfer {spec.id} exists with different content")
    return existing.as_replayed()


def _legs(spec: TransferSpec, debit: LockedAccount, credit: LockedAccount) -> tuple[Leg, Leg]:
    if spec.pending:
        return Leg(debit, debits_pending=spec.amount), Leg(credit, credits_pending=spec.amount)
    return Leg(debit, debits_posted=spec.amount), Leg(credit, credits_posted=spec.amount)


def _checked(spec: TransferSpec, accounts: dict[str, LockedAccount]) -> tuple[LockedAccount, LockedAccount, tuple]:
    """The debit and credit accounts and the legs of ``spec``, or the ``LedgerError`` that refuses it."""
    debit, credit = accounts.get(spec.debit), accounts.get(spec.credit)
    if debit is None or credit is None:
        missing = spec.debit if debit is None else spec.credit
        raise AccountNotFound(f"no ledger account {missing!r}")
    if debit.currency != spec.currency or credit.currency != spec.currency:
        raise CurrencyMismatch(f"a {spec.currency} transfer between {debit.currency} and {credit.currency} accounts")
    legs = _legs(spec, debit, credit)
    check_legs(legs)
    return debit, credit, legs


def post_spec(
    spec: TransferSpec,
    accounts: dict[str, LockedAccount],
    now: datetime.datetime,
    linked_group: uuid.UUID | None = None,
) -> Transfer:
    """Write ``spec`` against accounts this transaction holds (``lock_accounts``), or replay it."""
    try:
        debit, credit, legs = _checked(spec, accounts)
    except LedgerError:
        # A replay of a transfer already written is no error, even if it could not be written now.
        existing = load(spec.id)
        if existing is not None:
            return _replay(spec, existing)
        raise
    stored = _stored(spec, now, linked_group)
    if not write(stored, debit, credit, legs):
        existing = load(spec.id)
        if existing is None:  # pragma: no cover - the insert conflicted on the id, so the row exists
            raise LedgerError(f"transfer {spec.id} was neither written nor found")
        return _replay(spec, existing)
    apply_legs(legs)
    return stored


def _post_new(spec: TransferSpec, now: datetime.datetime) -> Transfer:
    """``spec`` locked, checked and written in one statement (``lock_check_write``), or replayed, or refused."""
    stored = _stored(spec, now, None)
    written, accounts = lock_check_write(stored)
    if written:
        return stored
    # Nothing written: the id was taken (a replay, or other content), or the checks refused it, which the
    # same checks in Python name from the accounts as the statement locked them.
    existing = load(spec.id)
    if existing is not None:
        return _replay(spec, existing)
    _checked(spec, accounts)
    raise LedgerError(f"transfer {spec.id} was neither written nor refused")  # pragma: no cover - checks disagree


def _locked(codes: set[str], opening: Sequence[AccountSpec]) -> dict[str, LockedAccount]:
    return open_and_lock(opening, codes) if opening else lock_accounts(codes)


def transfer(
    spec: TransferSpec, *, now: datetime.datetime | None = None, opening: Sequence[AccountSpec] = ()
) -> Transfer:
    """Post ``spec``: both legs and the flag checks, all or nothing, in the caller's transaction.

    Raises ``TransferExists``, ``AccountNotFound``, ``CurrencyMismatch``,
    ``SameAccount``, ``InvalidAmount``, ``InvalidTransfer``, ``ExceedsCredits``
    or ``ExceedsDebits``; nothing is written then. ``opening``: accounts to open
    first if new (``open_accounts``), in the round trip that locks the accounts.
    """
    validate(spec)
    if not opening:  # one statement: atomic on its own, or a part of the caller's transaction
        return _post_new(spec, now or utcnow())
    with transaction():
        accounts = _locked({spec.debit, spec.credit}, opening)
        return post_spec(spec, accounts, now or utcnow())


def transfer_linked(
    specs: Sequence[TransferSpec],
    *,
    now: datetime.datetime | None = None,
    savepoint: bool = True,
    opening: Sequence[AccountSpec] = (),
) -> list[Transfer]:
    """Post every spec or none: the first refusal raises (its ``index`` says which) and undoes the batch.

    The transfers share a ``linked_group`` id. Each one of a repeated batch is a
    replay; ids repeated inside one batch must carry the same content.

    ``savepoint=False`` (two round trips fewer) inside a caller's transaction that
    rolls back as a whole when this raises: the batch is undone with it, not before.
    ``opening`` as for ``transfer``. A batch of new transfers that pass their checks
    is written in one statement; one with a refusal or a replay, one at a time.
    """
    specs = list(specs)
    if not specs:
        return []
    for index, spec in enumerate(specs):
        try:
            validate(spec)
        except LedgerError as exc:
            exc.index = index
            raise
    group, when = uuid.uuid4(), now or utcnow()
    # One transfer writes nothing when it is refused: like ``transfer``, it needs no savepoint of its own.
    nested = len(specs) > 1 and (savepoint or not db.in_transaction())
    with db.atomic() if nested else transaction():
        # Every account of the batch at once, in id order: no deadlock between two batches.
        accounts = _locked({code for spec in specs for code in (spec.debit, spec.credit)}, opening)
        at_once = _post_at_once(specs, accounts, when, group)
        if at_once is not None:
            return at_once
        posted = []
        for index, spec in enumerate(specs):
            try:
                posted.append(post_spec(spec, accounts, when, group))
            except LedgerError as exc:
                exc.index = index
                raise
        return posted


def _post_at_once(
    specs: list[TransferSpec], accounts: dict[str, LockedAccount], now: datetime.datetime, group: uuid.UUID
) -> list[Transfer] | None:
    """A batch of new transfers that all pass their checks, written in one statement; else None, nothing written.

    The checks run in order on copies of the locked balances, as ``post_spec`` runs them on
    the balances themselves; anything else (a refusal, a replay, an id twice) is left to
    ``post_spec``, one transfer at a time, which raises or replays exactly as it always has.
    """
    if len({spec.id for spec in specs}) < len(specs):
        return None
    trial = {code: replace(account) for code, account in accounts.items()}
    batch = []
    for spec in specs:
        debit, credit = trial.get(spec.debit), trial.get(spec.credit)
        if debit is None or credit is None or {debit.currency, credit.currency} != {spec.currency}:
            return None
        legs = _legs(spec, debit, credit)
        try:
            check_legs(legs)
        except LedgerError:
            return None
        apply_legs(legs)
        batch.append((_stored(spec, now, group), debit, credit, legs))
    written = write_batch(batch)
    if not written:
        return None  # one of them exists: a replay (or a conflict) for post_spec to tell
    posted = []
    for spec, (stored, *_rest) in zip(specs, batch, strict=True):
        if stored.id in written:
            posted.append(stored)
            continue
        # Another transaction wrote this id since the batch's check (it held none of these accounts).
        existing = load(spec.id)
        if existing is None:  # pragma: no cover - the insert conflicted on the id, so the row exists
            raise LedgerError(f"transfer {spec.id} was neither written nor found")
        posted.append(_replay(spec, existing))
    return posted
