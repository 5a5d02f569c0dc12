"""The ``settlement`` part of ``python -m bench money``: escrow releases through real jobs on a real worker.

BENCH_SETTLEMENTS (200) funded escrows, each with both sides' instruction to
release, get their ``escrows.settle`` jobs; a fresh worker (``bench.jobs``'
command line: ``celery -A bench.noop_tasks worker --pool=prefork
--concurrency=2``, queues ``money,default``) drains them with the sandbox
provider: the ledger step (escrow → seller payable, the escrow ends, the
listing closes, the parties are told) and the payout step (payment row,
pending transfer, sandbox payout, posting). Beside it, in the same run and on
the same worker command line, as many job-tracked no-ops (``bench_job_noop``).
Rates are (N - 1) / (last finish - first finish) of the jobs' rows; latencies
are each job's started → finished.

Target: releases at least 0.5 of the no-ops. The broker is a Redis database of
its own (BENCH_BROKER_DB, default 13; it must be empty).
"""

from __future__ import annotations

import datetime
import os
import re
import time
import uuid

from bench import Row, Run, servers, stack

SETTLE = "settlement: escrow releases (jobs, sandbox payouts)"
NOOP = "settlement: job-tracked no-ops, same worker"
RAW_ACCOUNTS = re.compile(r"'(escrow|user):\d+(:payable)?'")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values) or [float("nan")]
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _funded_release(index: int, password_hash: str):
    """A funded escrow both sides instructed to release; its (queued, unsubmitted) settle job."""
    from models.accounts import User
    from models.base import utcnow
    from models.db import db
    from models.escrow_actions import instruct
    from models.escrow_ledger import post_deposit
    from models.escrows import Escrow, lock, record
    from models.offer_acceptance import accept
    from models.offer_rules import OfferTerms
    from models.offers import lock_listing, lock_offer, make_offer
    from models.payments import Payment
    from models.properties import Property

    now = utcnow()
    with db.atomic():
        seller, buyer = (
            User.create(
                id=uuid.uuid4(),
                email=f"{role}{index}-{uuid.uuid4().hex[:6]}@bench.test",
                password_hash=password_hash,
                full_name=f"Bench {role} {index}",
                role=role,
                email_verified_at=now,
            )
            for role in ("seller", "buyer")
        )
        listing = Property.create(
            id=uuid.uuid4(),
            owner=seller.id,
            standard_status="Active",
            property_type="Residential",
            list_price=30_000_000,
            original_list_price=30_000_000,
            bedrooms_total=3,
            bathrooms_full=2,
            street_number=str(index),
            street_name="Bench Street",
            unparsed_address=f"{index} Bench Street, Austin",
            city="Austin",
            state_or_province="TX",
            postal_code="78701",
            on_market_timestamp=now,
        )
        terms = OfferTerms(
            price=30_000_000,
            earnest_money=750_000,
            financing="cash",
            closing_date=(now + datetime.timedelta(days=30)).date(),
            expires_at=now + datetime.timedelta(days=2),
        )
        offer = make_offer(
            lock_listing(listing.id), author_id=buyer.id, buyer_id=buyer.id, buyer_agent_id=None, terms=terms
        )
        offer, locked = lock_offer(offer.id)
        escrow = accept(offer, locked, actor_id=seller.id, deposit_business_days=3).escrow
        # Funded as the deposit's webhook job funds it (that job is not what this part measures).
        payment = Payment.create(
            escrow=escrow.id,
            kind="deposit",
            amount=escrow.amount,
            status="succeeded",
            provider="sandbox",
            provider_ref=f"pi_bench_{uuid.uuid4().hex}",
            idempotency_key=f"bench:{uuid.uuid4().hex}",
        )
        post_deposit(escrow, payment.id, escrow.amount)
        Escrow.update(held=escrow.amount).where(Escrow.id == escrow.id).execute()
        escrow = lock(escrow.id)
        record(escrow, "funded", to_status="funded")
        instruct(escrow, "release", actor_id=buyer.id, now=now)
        return instruct(escrow, "release", actor_id=seller.id, now=now)


def _noop_job(owner_id, tag: str):
    from models.jobs import Job

    return Job.create(kind="bench_job_noop", queue="default", owner=owner_id, input={"tag": tag})


def _drain(jobs: list, submit, env: dict, log_path, what: str) -> tuple[float, list[float], int]:
    """Submit ``jobs``, start a fresh worker, wait until all finished; (rate, latencies ms, failed)."""
    from bench.jobs import Worker
    from models.db import db
    from models.jobs import Job

    for job in jobs:
        submit(job)
    ids = [job.id for job in jobs]
    proc = Worker(env, log_path, queues="money,default").start()
    try:
        deadline = time.monotonic() + 600
        while True:
            with db.connection_context():
                done = Job.select().where(Job.id.in_(ids) & Job.status.in_(("succeeded", "failed"))).count()
            if done == len(ids):
                break
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{what}: {done} of {len(ids)} finished; worker log:\n{proc.tail()}")
            time.sleep(0.25)
    finally:
        proc.stop()
    with db.connection_context():
        rows = list(Job.select().where(Job.id.in_(ids)))
    finished = sorted(row.finished_at for row in rows)
    rate = (len(rows) - 1) / max(1e-9, (finished[-1] - finished[0]).total_seconds())
    latencies = [(row.finished_at - row.started_at).total_seconds() * 1000 for row in rows]
    return rate, latencies, sum(row.status != "succeeded" for row in rows)


def settlement(run: Run, hearth: stack.HearthStack) -> list[Row]:
    import redis as redis_lib
    from celery import Celery

    import celeryconfig
    from models import ledger
    from models.accounts import User
    from models.db import db, make_database
    from services.jobqueue import CeleryJobQueue
    from settings import Settings
    from tasks.runtime import init_runtime

    count = int(os.environ.get("BENCH_SETTLEMENTS", "200"))
    broker_db = int(os.environ.get("BENCH_BROKER_DB", "13"))
    broker_url = stack.broker_url(broker_db)
    broker = redis_lib.Redis.from_url(broker_url)
    if broker.dbsize():
        raise RuntimeError(f"Redis database {broker_db} is not empty; set BENCH_BROKER_DB to an unused one")
    env = servers.environment({**hearth.env, "BROKER_URL": broker_url, "BENCH_COUNTER_URL": stack.REDIS_URL})
    sender = Celery("hearth-bench", broker=broker_url)
    sender.config_from_object(celeryconfig)
    queue = CeleryJobQueue(sender)
    database = make_database(hearth.database_url, max_connections=4)
    db.initialize(database)
    init_runtime(Settings.from_env(hearth.env), init_db=False, jobs=queue)
    run.settings["settlement"] = (
        f"{count} escrow releases, then {count} job-tracked no-ops, each drained by a fresh "
        "celery -A bench.noop_tasks worker --pool=prefork --concurrency=2 -Q money,default; sandbox payments"
    )
    log_path = hearth.var_dir / "settlement-worker.log"
    try:
        with db.connection_context():
            owner = User.get(User.email == stack.EMAIL)
            started = time.perf_counter()
            releases = [_funded_release(i, owner.password_hash) for i in range(count)]
            run.log(f"settlement: {count} funded escrows in {time.perf_counter() - started:.1f} s")
            noops = [_noop_job(owner.id, f"settle-noop-{uuid.uuid4().hex[:6]}") for _ in range(count)]
        release_rate, release_ms, release_failed = _drain(releases, queue.submit, env, log_path, "releases")
        run.log(f"settlement: releases drained at {release_rate:.1f}/s")
        noop_rate, noop_ms, noop_failed = _drain(noops, queue.submit, env, log_path, "no-ops")
        run.log(f"settlement: no-ops drained at {noop_rate:.1f}/s")
        with db.connection_context():
            # The ledger part's raw INSERTs (accounts escrow:<n>, user:<n>:payable) moved no balances: not ours.
            problems = [p for p in ledger.check_invariants() if not RAW_ACCOUNTS.search(p) and "over all" not in p]
        return [
            Row(
                NOOP,
                noop_rate,
                _percentile(noop_ms, 50),
                _percentile(noop_ms, 99),
                requests=count,
                errors=noop_failed,
            ),
            Row(
                SETTLE,
                release_rate,
                _percentile(release_ms, 50),
                _percentile(release_ms, 99),
                baseline=NOOP,
                requests=count,
                errors=release_failed,
                detail={"ledger_problems": problems[:5]},
            ),
        ]
    finally:
        broker.flushdb()
        broker.close()
        sender.close()
        database.close_all()
