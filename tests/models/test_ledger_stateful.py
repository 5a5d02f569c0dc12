"""Any sequence of ledger calls keeps the books right: a hypothesis state machine against a model in Python.

Each example runs in a savepoint of the test's transaction, rolled back at its
end, so every example starts from an empty ledger.
"""

from __future__ import annotations

import dataclasses
import uuid

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from models import ledger
from models.db import db
from models.ledger import TransferSpec

HELD = ledger.DEBITS_MUST_NOT_EXCEED_CREDITS
OWED = ledger.CREDITS_MUST_NOT_EXCEED_DEBITS


class _EndOfExample(Exception):
    """Leaves an example's savepoint by rolling it back."""


@dataclasses.dataclass
class ModelAccount:
    flags: frozenset
    dp: int = 0
    cp: int = 0
    dpe: int = 0
    cpe: int = 0


class Books:
    """The ledger's rules in plain Python: what each call should do to the balances, or which error it raises."""

    def __init__(self):
        self.accounts: dict[str, ModelAccount] = {}
        self.pending: dict[uuid.UUID, TransferSpec] = {}
        self.resolved: dict[uuid.UUID, str] = {}

    def copy(self) -> Books:
        other = Books()
        other.accounts = {code: dataclasses.replace(a) for code, a in self.accounts.items()}
        other.pending, other.resolved = dict(self.pending), dict(self.resolved)
        return other

    def apply(self, spec: TransferSpec):
        """The error class ``spec`` must raise, or None after applying it."""
        if spec.debit == spec.credit:
            return ledger.SameAccount
        if spec.debit not in self.accounts or spec.credit not in self.accounts:
            return ledger.AccountNotFound
        debit, credit = self.accounts[spec.debit], self.accounts[spec.credit]
        if HELD in debit.flags and debit.dp + debit.dpe + spec.amount > debit.cp:
            return ledger.ExceedsCredits
        if OWED in credit.flags and credit.cp + credit.cpe + spec.amount > credit.dp:
            return ledger.ExceedsDebits
        if spec.pending:
            debit.dpe += spec.amount
            credit.cpe += spec.amount
            self.pending[spec.id] = spec
        else:
            debit.dp += spec.amount
            credit.cp += spec.amount
        return None

    def resolve(self, pending_id: uuid.UUID, posted: int) -> None:
        spec = self.pending[pending_id]
        debit, credit = self.accounts[spec.debit], self.accounts[spec.credit]
        debit.dpe -= spec.amount
        credit.cpe -= spec.amount
        debit.dp += posted
        credit.cp += posted


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.block = db.atomic()
        self.block.__enter__()
        self.books = Books()
        self.done: list[TransferSpec] = []  # written transfers, to replay
        self.resolutions: list[tuple[uuid.UUID, uuid.UUID, str, int]] = []

    def teardown(self):
        self.block.__exit__(_EndOfExample, _EndOfExample(), None)

    def _codes(self, data, label):
        return data.draw(st.sampled_from([*sorted(self.books.accounts), "missing"]), label=label)

    def _spec(self, data, pending: bool) -> TransferSpec:
        return TransferSpec(
            uuid.uuid4(),
            self._codes(data, "debit"),
            self._codes(data, "credit"),
            data.draw(st.integers(1, 400), label="amount"),
            kind=data.draw(st.sampled_from(["deposit", "release", "fee"]), label="kind"),
            pending=pending,
        )

    @rule(flags=st.sampled_from([(), (), (HELD,), (HELD,), (OWED,)]))
    def open_account(self, flags):
        code = f"acct:{len(self.books.accounts)}"
        ledger.open_account(code, kind="test", flags=flags)
        self.books.accounts[code] = ModelAccount(frozenset(flags))

    @precondition(lambda self: self.books.accounts)
    @rule(data=st.data(), pending=st.booleans())
    def transfer(self, data, pending):
        spec = self._spec(data, pending)
        expected = self.books.apply(spec)
        if expected is None:
            assert ledger.transfer(spec).replayed is False
            self.done.append(spec)
        else:
            with pytest.raises(expected):
                ledger.transfer(spec)

    @precondition(lambda self: self.done)
    @rule(data=st.data(), change=st.sampled_from([None, "amount", "memo", "credit"]))
    def replay(self, data, change):
        spec = data.draw(st.sampled_from(self.done), label="previous")
        if change is None:
            assert ledger.transfer(spec).replayed is True
            return
        changed = {
            "amount": {"amount": spec.amount + 1},
            "memo": {"memo": "changed"},
            "credit": {"credit": spec.debit, "debit": spec.credit},
        }[change]
        with pytest.raises(ledger.TransferExists):
            ledger.transfer(dataclasses.replace(spec, **changed))

    @precondition(lambda self: self.books.pending)
    @rule(data=st.data(), post=st.booleans(), part=st.booleans())
    def resolve(self, data, post, part):
        pending_id = data.draw(st.sampled_from(list(self.books.pending)), label="pending")
        spec = self.books.pending[pending_id]
        amount = data.draw(st.integers(1, spec.amount), label="part") if post and part else None
        new_id = uuid.uuid4()

        def resolve():
            if post:
                return ledger.post_pending(new_id, pending_id, amount=amount)
            return ledger.void_pending(new_id, pending_id)

        if pending_id in self.books.resolved:
            with pytest.raises(ledger.PendingAlreadyResolved):
                resolve()
            return
        done = resolve()
        assert done.replayed is False
        self.books.resolve(pending_id, done.amount if post else 0)
        self.books.resolved[pending_id] = done.state
        self.resolutions.append((new_id, pending_id, done.state, done.amount))

    @precondition(lambda self: self.resolutions)
    @rule(data=st.data())
    def replay_resolution(self, data):
        new_id, pending_id, state, amount = data.draw(st.sampled_from(self.resolutions), label="resolution")
        if state == "post_pending":
            again = ledger.post_pending(new_id, pending_id, amount=amount)
        else:
            again = ledger.void_pending(new_id, pending_id)
        assert again.replayed is True and again.amount == amount

    @precondition(lambda self: len(self.books.accounts) >= 2)
    @rule(data=st.data(), size=st.integers(1, 3))
    def linked_batch(self, data, size):
        specs = [self._spec(data, data.draw(st.booleans(), label="pending")) for _ in range(size)]
        trial = self.books.copy()
        # A spec no ledger could accept is refused before any of the batch is tried.
        same = [index for index, spec in enumerate(specs) if spec.debit == spec.credit]
        failure = (same[0], ledger.SameAccount) if same else None
        for index, spec in enumerate(specs if failure is None else ()):
            expected = trial.apply(spec)
            if expected is not None:
                failure = (index, expected)
                break
        if failure is None:
            posted = ledger.transfer_linked(specs)
            assert [t.replayed for t in posted] == [False] * size
            self.books = trial
            self.done += specs
        else:
            with pytest.raises(failure[1]) as refused:
                ledger.transfer_linked(specs)
            assert refused.value.index == failure[0]

    @invariant()
    def balances_match_the_model(self):
        for code, model in self.books.accounts.items():
            found = ledger.balance(code)
            columns = (found.debits_posted, found.credits_posted, found.debits_pending, found.credits_pending)
            assert columns == (model.dp, model.cp, model.dpe, model.cpe), code
            if found.available is not None:
                assert found.available >= 0, code

    @invariant()
    def the_books_balance(self):
        assert ledger.check_invariants() == []


LedgerMachine.TestCase.settings = settings(
    max_examples=75,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.usefixtures("database")
def test_ledger_state_machine():
    LedgerMachine.TestCase().runTest()
