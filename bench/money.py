"""``python -m bench money``: the money stack, part by part (BENCH_MONEY_PARTS, default every part).

``ledger``: posting transfers through ``models.ledger.transfer()`` (lock both
accounts, check the flags, insert the row, move both legs' balances), each
transfer its own committed transaction, from BENCH_LEDGER_THREADS (4) threads
on their own connections, BENCH_LEDGER_TRANSFERS (500) per thread per turn:

* ``ledger: raw INSERT``: the same rows INSERTed straight into ``ledger_transfers``
  (same indexes, foreign keys and trigger), one per transaction: the baseline;
* ``ledger: transfer() row locks``: the ledger as it is (``SELECT ... FOR UPDATE``
  on both accounts in id order), each thread on accounts of its own;
* ``ledger: transfer() serializable``: the same statements without the row locks in
  SERIALIZABLE transactions, retried on serialization failures (``retries`` in the JSON);
* ``... hot account``: both again with every thread debiting one shared account (an
  escrow's holding account, the provider's clearing account), where they must queue.

Target: transfer() with row locks at least 0.5 of raw INSERTs.

``settlement`` (bench/money_settlement.py): escrow releases through jobs on a
real worker with the sandbox provider, beside job-tracked no-ops; target 0.5.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable

from bench import Row, Run, Target, benchmark, stack
from bench.money_settlement import NOOP, SETTLE, settlement

RAW = "ledger: raw INSERT"
LOCKS = "ledger: transfer() row locks"
SERIAL = "ledger: transfer() serializable"
LOCKS_HOT = "ledger: transfer() row locks, hot account"
SERIAL_HOT = "ledger: transfer() serializable, hot account"


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# --- ledger ---------------------------------------------------------------------------------------


def _open_accounts(threads: int) -> None:
    from models import ledger

    held = (ledger.DEBITS_MUST_NOT_EXCEED_CREDITS,)
    ledger.open_account("provider:clearing:USD", kind="clearing")
    ledger.open_account("escrow:hot", kind="escrow", flags=held)
    ledger.transfer(ledger.TransferSpec(uuid.uuid4(), "provider:clearing:USD", "escrow:hot", 10**15))
    for i in range(threads):
        ledger.open_account(f"escrow:{i}", kind="escrow", flags=held)
        ledger.open_account(f"user:{i}:payable", kind="payable")
        ledger.transfer(ledger.TransferSpec(uuid.uuid4(), "provider:clearing:USD", f"escrow:{i}", 10**15))


def _raw_insert(thread: int) -> Callable[[], int]:
    from models.base import utcnow
    from models.db import db

    debit, credit = (
        row[0]
        for row in db.execute_sql(
            "SELECT id FROM ledger_accounts WHERE code = ANY(%s) ORDER BY code",
            ([f"escrow:{thread}", f"user:{thread}:payable"],),
        ).fetchall()
    )

    def post() -> int:
        with db.atomic():
            db.execute_sql(
                "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, currency, kind,"
                " state, created_at) VALUES (%s, %s, %s, %s, 'USD', 'release', 'posted', %s)",
                (uuid.uuid4(), debit, credit, 100, utcnow()),
            )
        return 0

    return post


def _ledger_transfer(thread: int, *, serializable: bool, hot: bool) -> Callable[[], int]:
    import psycopg2.errors
    import psycopg2.extensions

    from models import ledger
    from models.base import utcnow
    from models.db import db
    from models.ledger.postings import lock_accounts
    from models.ledger.transfers import post_spec, validate

    debit = "escrow:hot" if hot else f"escrow:{thread}"
    credit = f"user:{thread}:payable"

    def spec():
        return ledger.TransferSpec(uuid.uuid4(), debit, credit, 100, kind="release")

    if not serializable:

        def post() -> int:
            ledger.transfer(spec())  # its own transaction: none is open
            return 0

        return post

    level = psycopg2.extensions.ISOLATION_LEVEL_SERIALIZABLE

    def post_serializable() -> int:
        chosen, retries = spec(), 0
        validate(chosen)
        while True:
            try:
                with db.atomic(level):
                    post_spec(chosen, lock_accounts((debit, credit), lock=False), utcnow())
                return retries
            except (psycopg2.errors.SerializationFailure, psycopg2.errors.DeadlockDetected):
                retries += 1
            except Exception as exc:  # peewee wraps the driver's error; its cause says which
                if not isinstance(
                    exc.__cause__ or exc.__context__,
                    (psycopg2.errors.SerializationFailure, psycopg2.errors.DeadlockDetected),
                ):
                    raise
                retries += 1

    return post_serializable


def _measure(name: str, make: Callable[[int], Callable[[], int]], threads: int, per_thread: int) -> dict:
    """Every thread posts ``per_thread`` times on its own connection; returns rate, latencies, retries."""
    from models.db import db

    barrier = threading.Barrier(threads + 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    retries = [0] * threads
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with db.connection_context():
                post = make(index)
                barrier.wait()
                for _ in range(per_thread):
                    started = time.perf_counter()
                    retries[index] += post()
                    latencies[index].append((time.perf_counter() - started) * 1000)
        except BaseException as exc:  # noqa: BLE001 - reported as the row's errors
            errors.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=work, args=(i,), name=f"{name}-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a worker failed: reported below
        barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{name}: {errors[0]!r}") from errors[0]
    values = [v for per in latencies for v in per]
    return {"rate": len(values) / elapsed, "latencies": values, "retries": sum(retries)}


def _ledger(run: Run, hearth: stack.HearthStack) -> list[Row]:
    from models import ledger
    from models.db import db, make_database

    threads = _int("BENCH_LEDGER_THREADS", 4)
    per_thread = _int("BENCH_LEDGER_TRANSFERS", 500)
    database = make_database(hearth.database_url, max_connections=threads + 2)
    db.initialize(database)
    run.settings["ledger"] = (
        f"{threads} threads, each on its own connection; {per_thread} transfers per thread per turn, "
        f"each its own transaction; {run.repeats} turns, median"
    )
    try:
        with db.connection_context():
            _open_accounts(threads)
        cases = {
            RAW: _raw_insert,
            LOCKS: lambda i: _ledger_transfer(i, serializable=False, hot=False),
            SERIAL: lambda i: _ledger_transfer(i, serializable=True, hot=False),
            LOCKS_HOT: lambda i: _ledger_transfer(i, serializable=False, hot=True),
            SERIAL_HOT: lambda i: _ledger_transfer(i, serializable=True, hot=True),
        }
        turns: dict[str, list[dict]] = {name: [] for name in cases}
        for turn in range(run.repeats):
            for name, make in cases.items():  # taking turns, so a slow moment of the machine hits every case
                turns[name].append(_measure(name, make, threads, per_thread))
                run.log(f"turn {turn + 1}: {name}: {turns[name][-1]['rate']:.0f}/s")
        with db.connection_context():
            problems = [p for p in ledger.check_invariants() if "raw" not in p]
        rows = []
        for name, results in turns.items():
            rates = [r["rate"] for r in results]
            middle = sorted(results, key=lambda r: r["rate"])[len(results) // 2]
            rows.append(
                Row(
                    name,
                    statistics.median(rates),
                    percentile(middle["latencies"], 50),
                    percentile(middle["latencies"], 99),
                    baseline=None if name == RAW else RAW,
                    requests=sum(len(r["latencies"]) for r in results),
                    detail={
                        "spread_requests_per_s": (min(rates), max(rates)),
                        "retries": sum(r["retries"] for r in results),
                    },
                )
            )
        # The raw rows moved no balances, so only the accounts they touched may disagree with their transfers.
        raw_accounts = {f"'escrow:{i}'" for i in range(threads)} | {f"'user:{i}:payable'" for i in range(threads)}
        unexplained = [p for p in problems if not any(code in p for code in raw_accounts) and "over all" not in p]
        if unexplained:
            raise RuntimeError(f"the ledger's invariants broke during the run: {unexplained}")
        return rows
    finally:
        database.close_all()


# Each part of the money benchmark: ``fn(run, hearth) -> rows``, on one private Hearth (``bench.stack``).
# ``settlement``: escrow releases through jobs, beside job-tracked no-ops (bench/money_settlement.py).
PARTS: dict[str, Callable[[Run, stack.HearthStack], list[Row]]] = {
    "ledger": _ledger,
    "settlement": settlement,
}


@benchmark(
    "money",
    "ledger transfers (row locks vs serializable) beside raw INSERTs of the same rows; escrow releases "
    "through jobs beside job-tracked no-ops",
    targets=(Target(LOCKS, RAW, 0.5), Target(SETTLE, NOOP, 0.5)),
)
def money(run: Run) -> list[Row]:
    chosen = [p for p in os.environ.get("BENCH_MONEY_PARTS", ",".join(PARTS)).split(",") if p]
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown BENCH_MONEY_PARTS {unknown}; known: {', '.join(PARTS)}")
    rows: list[Row] = []
    with stack.workspace(run, "money") as (hearth, _directory, _broker):
        for part in chosen:
            run.log(f"money: {part}")
            rows += PARTS[part](run, hearth)
    return rows
