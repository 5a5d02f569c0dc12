"""What the ledger refuses, each with a stable ``code`` (after TigerBeetle's result codes).

A refused operation writes nothing: not its own rows, and in a linked batch
nothing of the batch. ``index`` is the position in a linked batch of the
transfer that failed (``None`` outside a batch).
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every refusal; ``code`` is stable and safe to show or store."""

    code = "ledger_error"

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class TransferExists(LedgerError):
    """The id is taken by a transfer (or account) with different content."""

    code = "exists_with_different_content"


class ExceedsCredits(LedgerError):
    """The debit would take an account flagged ``debits_must_not_exceed_credits`` below zero."""

    code = "exceeds_credits"


class ExceedsDebits(LedgerError):
    """The credit would take an account flagged ``credits_must_not_exceed_debits`` below zero."""

    code = "exceeds_debits"


class AccountNotFound(LedgerError):
    code = "account_not_found"


class CurrencyMismatch(LedgerError):
    code = "currency_mismatch"


class SameAccount(LedgerError):
    code = "accounts_must_be_different"


class PendingNotFound(LedgerError):
    """No pending transfer has that id (or the transfer it names is not a pending one)."""

    code = "pending_transfer_not_found"


class PendingAlreadyResolved(LedgerError):
    """The pending transfer was already posted or voided (by another transfer id)."""

    code = "pending_transfer_already_resolved"


class PendingExpired(LedgerError):
    """The pending transfer's timeout has passed: it can only be voided."""

    code = "pending_transfer_expired"


class InvalidAmount(LedgerError):
    """Not a positive whole number of minor units, or more than the pending transfer holds."""

    code = "invalid_amount"


class InvalidAccount(LedgerError):
    """An account definition the ledger cannot hold (unknown flag, both flags, a bad currency or code)."""

    code = "invalid_account"


class AccountExists(LedgerError):
    """An account with that code exists with another kind, currency or flags."""

    code = "account_exists_with_different_content"


class InvalidTransfer(LedgerError):
    """A transfer the ledger cannot hold: a bad id, currency, kind, memo, timeout or user data."""

    code = "invalid_transfer"
