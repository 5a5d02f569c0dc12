"""``python -m bench uploads``: upload → clean latency, scan throughput beside raw clamd, API memory on 1 GB.

One private Hearth (``bench.stack``: database, Redis prefix, user), a clamd of
its own with the test signature database (``ops.clamd``), the API under the
project's gunicorn settings, and one Celery worker on the ``scans`` queue
(prefork, concurrency 1) with a broker database of its own (BENCH_BROKER_DB,
default 12; it must be empty). Files are kept on local disk.

* ``clean 1MB`` / ``clean 20MB``: a JPEG of about that size (random pixels, so
  it does not compress) is POSTed to ``/v1/uploads`` and its row is polled
  until ``clean``: upload, scan, previews, the move out of quarantine.
  BENCH_UPLOAD_TURNS (5) uploads each, one at a time; p50/p99 in ms, and the
  rate column is how many such uploads one client finishes per second.
* ``clamd raw`` / ``hearth scan`` / ``served sha256``: MiB/s over the same
  bytes (a 64 MiB document, 5 turns taken in rotation, median). Raw: the bytes
  from memory straight into an INSTREAM socket in 1 MiB chunks, the ceiling.
  Hearth: what the scan task does, reading the stored object from storage and
  streaming it through ``ClamdScanner`` while hashing it. Served sha256: the
  second read that checks the object at its final key has the scanned hash.
  Target: hearth scan >= 0.8 x clamd raw.
* ``api 1GB``: a 1 GiB document streamed to ``/v1/uploads`` (caps raised for
  this run); the gunicorn workers' peak RSS is reset (``/proc/PID/clear_refs``)
  before and read (``VmHWM``) after. Target: growth < 50 MB. The rate column
  is MB/s through the API to disk.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import secrets
import socket
import statistics
import struct
import time
from urllib.parse import urlparse

import httpx

from bench import Row, Run, Target, benchmark, servers, stack
from bench.jobs import Worker, percentile

MIB = 1024 * 1024
BIG = 1024 * MIB
SCAN_BYTES = 64 * MIB
MEMORY_TARGET_MB = 50
_LAST_LINE = "upload rows: the rate column of `clean` rows is uploads/s for one client; of `scan` rows MB/s"


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _jpeg(target_bytes: int) -> bytes:
    """A JPEG of about ``target_bytes``: random pixels at high quality barely compress."""
    from PIL import Image

    def encode(side: int) -> bytes:
        out = io.BytesIO()
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG", quality=90)
        return out.getvalue()

    first = encode(512)
    side = int(512 * (target_bytes / len(first)) ** 0.5)  # bytes grow with the pixel count
    return encode(side)


def _document(size: int) -> bytes:
    return b"%PDF-1.4\n%" + os.urandom(size - 10)


def _rss_kb(pid: int, field: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak(pid: int) -> None:
    # "5" resets the peak resident set size (VmHWM) to the current one (Linux >= 4.0).
    pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")


def _raw_instream(socket_path: str, data: bytes) -> float:
    """Seconds to scan ``data`` from memory through a bare INSTREAM connection (1 MiB chunks)."""
    view = memoryview(data)
    started = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(socket_path)
        sock.sendall(b"zINSTREAM\0")
        for offset in range(0, len(data), MIB):
            chunk = view[offset : offset + MIB]
            sock.sendall(struct.pack("!L", len(chunk)))
            sock.sendall(chunk)
        sock.sendall(struct.pack("!L", 0))
        answer = b""
        while not answer.endswith(b"\0"):
            part = sock.recv(4096)
            if not part:
                break
            answer += part
    elapsed = time.perf_counter() - started
    if not answer.startswith(b"stream: OK"):
        raise RuntimeError(f"raw INSTREAM answered {answer!r}")
    return elapsed


@benchmark(
    "uploads",
    "upload → clean latency (1 MB, 20 MB), scan MB/s beside raw clamd, API memory on a 1 GB upload",
    targets=(Target("hearth scan", "clamd raw", 0.8),),
)
def uploads(run: Run) -> list[Row]:
    from ops.clamd import start_clamd

    turns = int(_setting("BENCH_UPLOAD_TURNS", "5"))
    broker_db = int(_setting("BENCH_BROKER_DB", "12"))
    with stack.workspace(run, "uploads", broker_db) as (hearth, directory, _):
        clamd = start_clamd(directory / "clamd", log=run.log)
        try:
            return _measure(run, hearth, directory, clamd, broker_db, turns)
        finally:
            clamd.stop()


def _measure(run: Run, hearth, directory: pathlib.Path, clamd, broker_db: int, turns: int) -> list[Row]:
    env = {
        **hearth.env,
        "CLAMD_URL": clamd.url,
        "BROKER_URL": f"{stack.REDIS_URL.rsplit('/', 1)[0]}/{broker_db}",
        # Caps raised so one API process can be watched taking a 1 GiB body.
        "UPLOAD_DIRECT_MAX_BYTES": str(2 * BIG),
        "UPLOAD_DOCUMENT_MAX_BYTES": str(2 * BIG),
        "UPLOAD_PHOTO_MAX_BYTES": str(32 * MIB),
    }
    run.settings["uploads"] = (
        f"gunicorn {' '.join(servers.project_settings().args)}; celery worker -Q scans "
        f"--pool=prefork -c 1; clamd 1.x with the test signature; local-disk storage; "
        f"{turns} uploads per size"
    )
    gunicorn = servers.Gunicorn(
        "api.wsgi:app", servers.project_settings(), env, directory / "gunicorn.log", ready_path="/healthz"
    )
    with gunicorn:
        base = gunicorn.base_url
        token = stack.post_json(f"{base}/v1/auth/login", stack.login_body())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            memory = _memory_row(run, client, gunicorn)
            worker_env = servers.environment(env)
            with _scan_worker(worker_env, directory / "worker.log") as worker:
                latency = [_latency_row(run, client, hearth, worker, size, turns) for size in (1, 20)]
            scan = _scan_rows(run, env, clamd, turns)
    run.note(_LAST_LINE)
    return [*latency, *scan, memory]


@contextlib.contextmanager
def _scan_worker(env: dict, log_path: pathlib.Path):
    import subprocess
    import sys

    argv = [
        str(pathlib.Path(sys.executable).parent / "celery"),
        "-A",
        "tasks",
        "worker",
        "--pool=prefork",
        "--concurrency=1",
        "-Q",
        "scans",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"bench-scans-{os.getpid()}@%h",
        "-l",
        "warning",
    ]
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv, cwd=servers.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = Worker(env, log_path)
    worker.popen = popen
    try:
        yield worker
    finally:
        worker.stop()


def _status(hearth, upload_id: str) -> str | None:
    from models.db import db
    from models.uploads import Upload

    with db.connection_context():
        row = Upload.select(Upload.status).where(Upload.id == upload_id).first()
    return row.status if row else None


def _latency_row(run: Run, client: httpx.Client, hearth, worker, megabytes: int, turns: int) -> Row:
    from models.db import db, make_database

    db.initialize(make_database(hearth.database_url, max_connections=2))
    photo = _jpeg(megabytes * 1000 * 1000)
    # One unmeasured upload warms the worker (imports, connections, Pillow's codecs).
    samples = []
    for turn in range(turns + 1):
        started = time.perf_counter()
        resp = client.post(
            "/v1/uploads", params={"purpose": "listing_photo", "filename": f"bench-{turn}.jpg"}, content=photo
        )
        if resp.status_code != 202:
            raise RuntimeError(f"upload answered {resp.status_code}: {resp.text[:300]}")
        upload_id = resp.json()["id"]
        deadline = time.monotonic() + 120
        while (status := _status(hearth, upload_id)) in ("pending_scan", "scanning"):
            if not worker.alive():
                raise RuntimeError(f"the scan worker stopped:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"upload {upload_id} still {status} after 120 s:\n{worker.tail()}")
            time.sleep(0.005)
        if status != "clean":
            raise RuntimeError(f"upload {upload_id} ended {status}")
        if turn:
            samples.append((time.perf_counter() - started) * 1000)
    size_mb = len(photo) / 1e6
    run.log(
        f"  clean {megabytes}MB ({size_mb:.1f} MB JPEG): p50 {statistics.median(samples):.0f} ms "
        f"over {len(samples)} uploads"
    )
    return Row(
        f"clean {megabytes}MB",
        1000 / statistics.mean(samples),
        statistics.median(samples),
        percentile(samples, 99),
        requests=len(samples),
        detail={
            "file_bytes": len(photo),
            "latencies_ms": [round(s, 1) for s in samples],
            "spread_requests_per_s": (1000 / max(samples), 1000 / min(samples)),
        },
    )


def _scan_rows(run: Run, env: dict, clamd, turns: int) -> list[Row]:
    from services.scanner import ClamdScanner
    from services.storage import LocalDiskStorage, sha256_of
    from tasks.uploads import _Tee

    data = _document(SCAN_BYTES)
    storage = LocalDiskStorage(
        pathlib.Path(env["HEARTH_VAR_DIR"]) / "bench-scan", public_url="http://x", secret=secrets.token_hex(16)
    )
    storage.put("quarantine/bench", data)
    scanner = ClamdScanner(clamd.url, timeout=60)
    socket_path = urlparse(clamd.url).path
    raw, ours, verify = [], [], []

    def hearth() -> float:
        started = time.perf_counter()
        with storage.open("quarantine/bench") as stream:
            tee = _Tee(stream, None)
            result = scanner.scan(tee)
        if result.verdict != "clean" or result.scanned_bytes != SCAN_BYTES or not tee.digest.hexdigest():
            raise RuntimeError(f"scan gave {result}")
        return SCAN_BYTES / MIB / (time.perf_counter() - started)

    def served_check() -> float:
        started = time.perf_counter()
        sha256_of(storage, "quarantine/bench")
        return SCAN_BYTES / MIB / (time.perf_counter() - started)

    _raw_instream(socket_path, data)  # warm-up: clamd's first stream allocates its buffers
    for _ in range(turns):  # in turns, so a change in the machine's load touches every row
        raw.append(SCAN_BYTES / MIB / _raw_instream(socket_path, data))
        ours.append(hearth())
        verify.append(served_check())
    storage.delete("quarantine/bench")
    run.log(
        f"  scan: clamd raw {statistics.median(raw):.0f} MiB/s, hearth {statistics.median(ours):.0f} MiB/s; "
        f"re-hashing the object to be served {statistics.median(verify):.0f} MiB/s"
    )
    run.note(
        "uploads: `hearth scan` streams the stored object to clamd while hashing it (every scan does); "
        "`served sha256` is the check that the object at its final key has the scanned hash, a second "
        "read of the file before it is marked clean"
    )
    spread = lambda values: (min(values), max(values))  # noqa: E731
    return [
        Row(
            "clamd raw",
            statistics.median(raw),
            0,
            0,
            requests=turns,
            detail={"unit": "MiB/s", "bytes": SCAN_BYTES, "spread_requests_per_s": spread(raw)},
        ),
        Row(
            "hearth scan",
            statistics.median(ours),
            0,
            0,
            baseline="clamd raw",
            requests=turns,
            detail={"unit": "MiB/s", "bytes": SCAN_BYTES, "spread_requests_per_s": spread(ours)},
        ),
        Row(
            "served sha256",
            statistics.median(verify),
            0,
            0,
            baseline="clamd raw",
            requests=turns,
            detail={"unit": "MiB/s", "bytes": SCAN_BYTES, "spread_requests_per_s": spread(verify)},
        ),
    ]


def _memory_row(run: Run, client: httpx.Client, gunicorn) -> Row:
    workers = gunicorn.workers()
    client.post("/v1/uploads", params={"purpose": "document"}, content=_document(MIB))  # warm both paths up
    before = {pid: _rss_kb(pid, "VmRSS") for pid in workers}
    for pid in workers:
        _reset_peak(pid)
    block = b"%PDF-1.4\n%" + os.urandom(MIB - 10)
    filler = os.urandom(MIB)

    def body():
        yield block
        for _ in range(BIG // MIB - 1):
            yield filler

    started = time.perf_counter()
    resp = client.post(
        "/v1/uploads",
        params={"purpose": "document", "filename": "big.pdf"},
        content=body(),
        headers={"Content-Length": str(BIG)},
    )
    elapsed = time.perf_counter() - started
    if resp.status_code != 202:
        raise RuntimeError(f"the 1 GiB upload answered {resp.status_code}: {resp.text[:300]}")
    growth = {pid: (_rss_kb(pid, "VmHWM") - before[pid]) / 1024 for pid in workers}
    peak_mb = max(growth.values())
    client.delete(f"/v1/uploads/{resp.json()['id']}")  # its scan job will find nothing to do
    run.log(f"  api 1GB: {BIG / MIB / elapsed:.0f} MiB/s, peak RSS growth {peak_mb:.1f} MB")
    verdict = "met" if peak_mb < MEMORY_TARGET_MB else "MISSED"
    run.note(
        f"uploads: peak RSS growth of the API while it took a 1 GiB upload: {peak_mb:.1f} MB "
        f"(target < {MEMORY_TARGET_MB} MB: {verdict}); per worker: "
        + ", ".join(f"{pid}: {mb:+.1f} MB" for pid, mb in growth.items())
    )
    return Row(
        "api 1GB",
        BIG / MIB / elapsed,
        elapsed * 1000,
        elapsed * 1000,
        requests=1,
        detail={
            "unit": "MiB/s",
            "peak_rss_growth_mb": round(peak_mb, 1),
            "rss_before_kb": before,
            "target_mb": MEMORY_TARGET_MB,
        },
    )
