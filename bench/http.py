"""HTTP throughput of the API against a bare Falcon app under the same gunicorn settings.

``http``: hello (baseline), ``GET /v1/me`` with a valid token, ``POST /v1/auth/login``.
``http-workers``: the same three loads under gunicorn's sync and gthread workers.

Both servers stay up for the whole comparison and the loads take turns
(hello, me, login, hello, me, login, ...), so a change in what else the
machine is doing hits every row alike instead of one row only.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass

from bench import Row, Run, Target, benchmark, servers, stack, wrk

HELLO_APP = "bench.hello_app:app"
HEARTH_APP = "api.wsgi:app"
# Above this share of the machine's CPU used by processes outside the benchmark, a row is flagged.
BUSY_SHARE = 0.15


@benchmark(
    "http",
    "hello vs GET /v1/me vs POST /v1/auth/login, gunicorn as the project runs it",
    targets=(Target("me", "hello", 0.5),),
)
def http(run: Run) -> list[Row]:
    with _workspace(run) as work:
        rows = _three_loads(run, work, servers.project_settings())
    run.note(_argon2_note())
    return rows


@benchmark(
    "http-workers",
    "the three loads of `http` under gunicorn sync -w 2 and gthread -w 2 --threads 4",
    targets=(Target("me[sync]", "hello[sync]", 0.5), Target("me[gthread]", "hello[gthread]", 0.5)),
    default=False,
)
def http_workers(run: Run) -> list[Row]:
    rows: list[Row] = []
    with _workspace(run) as work:
        # --threads 1: gunicorn silently runs gthread when a sync worker is given more than one thread.
        for settings in (
            servers.variant("sync", "--workers", "2", "--worker-class", "sync", "--threads", "1"),
            servers.variant("gthread", "--workers", "2", "--worker-class", "gthread", "--threads", "4"),
        ):
            rows += _three_loads(run, work, settings, suffix=f"[{settings.label}]")
    run.note(_argon2_note())
    return rows


class _Workspace:
    def __init__(self, run: Run, directory: pathlib.Path):
        self.run = run
        self.dir = directory
        self.wrk = wrk.ensure_installed(run.log)
        self.stack = stack.HearthStack(directory / "var", log=run.log)
        run.settings.setdefault("wrk", wrk.version(self.wrk))
        run.settings.setdefault(
            "load",
            f"wrk -t{run.threads} -c{run.connections} -d{run.duration}, "
            f"{run.repeats} turn(s) each after a {run.warmup} warm-up, median",
        )


@contextlib.contextmanager
def _workspace(run: Run):
    directory = pathlib.Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    ok = False
    try:
        work = _Workspace(run, directory)
        with work.stack:
            overrides = ", ".join(f"{k}={v}" for k, v in work.stack.overrides.items())
            run.note(f"raised for the API under test (so nothing is throttled): {overrides}")
            run.settings["database"] = work.stack.db_name
            run.settings["redis_prefix"] = work.stack.redis_prefix
            yield work
        ok = True
    finally:
        if not ok and any(directory.glob("*.log")):
            run.log(f"server logs kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


@dataclass
class _Subject:
    """One row of the table: what to send to which server, and what it measured."""

    name: str
    server: servers.Gunicorn
    load: wrk.Load
    baseline: str | None
    samples: list  # (wrk.Result, _Cpu) per turn


def _three_loads(run: Run, work: _Workspace, settings: servers.GunicornSettings, suffix: str = "") -> list[Row]:
    run.note(f"gunicorn {settings.describe()}")
    run.settings.setdefault("gunicorn", {})[settings.label] = settings.describe()
    hello_name, me_name, login_name = (f"{name}{suffix}" for name in ("hello", "me", "login"))
    with (
        servers.Gunicorn(HELLO_APP, settings, {}, work.dir / f"hello{suffix}.log") as hello,
        servers.Gunicorn(
            HEARTH_APP, settings, work.stack.env, work.dir / f"hearth{suffix}.log", ready_path="/healthz"
        ) as api,
    ):
        used = sorted({str(hello.worker_class()), str(api.worker_class())})
        run.note(f"gunicorn {settings.label}: the log says 'Using worker: {' / '.join(used)}'")
        body = stack.login_body()
        token = stack.post_json(api.base_url + "/v1/auth/login", body)["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        profile = stack.get_json(api.base_url + "/v1/me", auth)  # also fills the profile cache
        if profile.get("email") != stack.EMAIL:
            raise RuntimeError(f"GET /v1/me answered {profile!r}")
        subjects = [
            _Subject(hello_name, hello, wrk.Load("/"), None, []),
            _Subject(me_name, api, wrk.Load("/v1/me", headers=auth), hello_name, []),
            _Subject(
                login_name,
                api,
                wrk.Load("/v1/auth/login", method="POST", body=body, headers={"Content-Type": "application/json"}),
                hello_name,
                [],
            ),
        ]
        options = {"threads": run.threads, "connections": run.connections}
        if run.warmup not in ("0s", "0m", "0h"):
            for subject in subjects:
                wrk.run(work.wrk, subject.server.base_url, subject.load, duration=run.warmup, **options)
        for turn in range(run.repeats):
            for subject in subjects:
                result, cpu = _turn(work, subject, run.duration, options)
                subject.samples.append((result, cpu))
                run.log(
                    f"  turn {turn + 1}/{run.repeats} {subject.name:<16} {result.requests_per_s:9.1f} req/s  "
                    f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:8.2f} ms  failed {result.error_count}  "
                    f"CPU used elsewhere {cpu.other_share:.0%}"
                )
    return [_row(run, subject) for subject in subjects]


def _argon2_note() -> str:
    """Login is bound by one argon2id verification per request: say what that costs here."""
    from models.passwords import hash_password, verify_password

    stored = hash_password(stack.PASSWORD)  # "$argon2id$v=19$m=19456,t=2,p=1$salt$hash"
    params = dict(part.split("=") for part in stored.split("$")[3].split(","))
    started = time.process_time()
    for _ in range(5):
        verify_password(stored, stack.PASSWORD)
    each = (time.process_time() - started) / 5
    cores = os.cpu_count() or 1
    return (
        f"login is CPU-bound by design: one argon2id verification per request "
        f"({int(params['m']) // 1024} MiB, t={params['t']}) costs {each * 1000:.0f} ms of CPU here, "
        f"so {cores} cores allow at most ~{cores / each:.0f} logins/s before HTTP, database and wrk take "
        f"their share; it is expected to be far below hello"
    )


@dataclass(frozen=True)
class _Cpu:
    """Where the machine's CPU went during one turn (seconds, all cores together)."""

    worker_boots: int  # workers gunicorn started during the turn, replacing recycled ones
    server: float
    wrk: float
    redis: float
    machine_busy: float
    capacity: float  # wall time x cores

    @property
    def other_share(self) -> float:
        """The share of the machine used by none of the above: other work on the machine, the kernel."""
        other = self.machine_busy - self.server - self.wrk - self.redis
        return max(0.0, other) / self.capacity if self.capacity else 0.0


def _turn(work: _Workspace, subject: _Subject, duration: str, options: dict) -> tuple[wrk.Result, _Cpu]:
    server0, redis0 = subject.server.cpu_seconds(), stack.redis_cpu_seconds(work.stack.redis)
    busy0, wall0, boots0 = servers.machine_cpu_seconds(), time.monotonic(), subject.server.worker_boots()
    result = wrk.run(work.wrk, subject.server.base_url, subject.load, duration=duration, **options)
    cpu = _Cpu(
        worker_boots=subject.server.worker_boots() - boots0,
        server=subject.server.cpu_seconds() - server0,
        wrk=result.cpu_s,
        redis=stack.redis_cpu_seconds(work.stack.redis) - redis0,
        machine_busy=servers.machine_cpu_seconds() - busy0,
        capacity=(time.monotonic() - wall0) * (os.cpu_count() or 1),
    )
    return result, cpu


def _row(run: Run, subject: _Subject) -> Row:
    """The median turn by throughput, with every turn's figures kept in ``detail``."""
    ordered = sorted(subject.samples, key=lambda sample: sample[0].requests_per_s)
    result, cpu = ordered[len(ordered) // 2]
    errors = sum(sample.error_count for sample, _ in subject.samples)
    rates = [sample.requests_per_s for sample, _ in subject.samples]
    others = [turn_cpu.other_share for _, turn_cpu in subject.samples]
    if errors:
        run.note(
            f"{subject.name}: {errors} requests failed (see failures_by_kind in the JSON); its figures are not valid"
        )
    boots = [turn_cpu.worker_boots for _, turn_cpu in subject.samples]
    if any(boots):
        run.note(
            f"{subject.name}: gunicorn replaced workers {sum(boots)} times during its turns (max_requests); "
            "their boot CPU is part of its figures"
        )
    if max(others) > BUSY_SHARE:
        run.note(
            f"{subject.name}: up to {max(others):.0%} of the machine's CPU went to processes other than "
            "the server, wrk and Redis during its turns; its figures are lower than on a quiet machine"
        )

    def per_request(seconds: float) -> float | None:
        return round(seconds / result.requests * 1e6, 1) if result.requests else None

    return Row(
        name=subject.name,
        requests_per_s=result.requests_per_s,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        baseline=subject.baseline,
        requests=result.requests,
        errors=errors,
        cpu_us_per_request=per_request(cpu.server),
        detail={
            "method": subject.load.method,
            "path": subject.load.path,
            "p90_ms": result.p90_ms,
            "max_ms": result.max_ms,
            "mean_ms": result.mean_ms,
            "duration_s": result.duration_s,
            "failures_by_kind": result.errors,
            "turns_requests_per_s": [round(rate, 1) for rate in rates],
            "turns_p99_ms": [round(sample.p99_ms, 2) for sample, _ in subject.samples],
            "spread_requests_per_s": [round(min(rates), 1), round(max(rates), 1)],
            "stdev_requests_per_s": round(statistics.pstdev(rates), 1) if len(rates) > 1 else 0.0,
            "server_cpu_s": round(cpu.server, 3),
            "wrk_cpu_us_per_request": per_request(cpu.wrk),
            "redis_cpu_us_per_request": per_request(cpu.redis),
            "turns_other_cpu_share": [round(share, 3) for share in others],
            "turns_worker_boots": boots,
            "gunicorn_workers": len(subject.server.workers()),
        },
    )
