"""The double-entry ledger (after TigerBeetle's model): accounts, transfers, two-phase, linked batches.

Every function works inside the caller's transaction (``db.atomic()`` nests as
a savepoint), so a caller posts in the same transaction as its own rows.
Amounts are integer minor units. See docs/ledger.md.

Concurrency: the accounts a transfer touches are locked (``SELECT ... FOR
UPDATE``, in id order) before their flags are checked and their balances
moved. Measured against SERIALIZABLE transactions with retries
(``python -m bench money``), row locks were faster under contention and are
the only choice that works inside a caller's transaction, which cannot be
retried from here; see docs/ledger.md for the figures.
"""

from models.ledger.accounts import (
    CREDITS_MUST_NOT_EXCEED_DEBITS,
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    Account,
    AccountSpec,
    Balance,
    balance,
    get_account,
    open_account,
    open_accounts,
)
from models.ledger.errors import (
    AccountExists,
    AccountNotFound,
    CurrencyMismatch,
    ExceedsCredits,
    ExceedsDebits,
    InvalidAccount,
    InvalidAmount,
    InvalidTransfer,
    LedgerError,
    PendingAlreadyResolved,
    PendingExpired,
    PendingNotFound,
    SameAccount,
    TransferExists,
)
from models.ledger.postings import Transfer
from models.ledger.reports import check_invariants, entries_for_escrow
from models.ledger.transfers import TransferSpec, transfer, transfer_linked
from models.ledger.two_phase import expire_pending, expiry_id, post_pending, void_pending

__all__ = [
    "CREDITS_MUST_NOT_EXCEED_DEBITS",
    "DEBITS_MUST_NOT_EXCEED_CREDITS",
    "Account",
    "AccountExists",
    "AccountNotFound",
    "AccountSpec",
    "Balance",
    "CurrencyMismatch",
    "ExceedsCredits",
    "ExceedsDebits",
    "InvalidAccount",
    "InvalidAmount",
    "InvalidTransfer",
    "LedgerError",
    "PendingAlreadyResolved",
    "PendingExpired",
    "PendingNotFound",
    "SameAccount",
    "Transfer",
    "TransferExists",
    "TransferSpec",
    "balance",
    "check_invariants",
    "entries_for_escrow",
    "expire_pending",
    "expiry_id",
    "get_account",
    "open_account",
    "open_accounts",
    "post_pending",
    "transfer",
    "transfer_linked",
    "void_pending",
]
