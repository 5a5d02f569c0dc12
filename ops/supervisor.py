"""``hearth run``: every process of the Procfile in one terminal, for development.

Resolves PostgreSQL, Redis and clamd (embedded ones when ``DATABASE_URL`` /
``REDIS_URL`` / ``CLAMD_URL`` are unset), records them under ``<var_dir>`` for the
``hearth`` commands run beside the stack (``ops/stack_record.py``),
applies the migrations, then runs each Procfile line except ``release`` with
``/bin/sh`` from the repository root, the resolved URLs in its environment and
its output prefixed with its name. A child that exits on its own is started
again after a delay that doubles with each quick death (1 s up to 30 s), and
the output says so. Ctrl-C or SIGTERM stops the children (SIGTERM, then SIGKILL
after a grace period) and then the embedded servers.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

from ops.redaction import redact
from services.metrics import reset_directory
from settings import DEVELOPMENT_FLOWER_PASSWORD, ROOT, Settings

PROCFILE = ROOT / "Procfile"
# Longer than gunicorn's graceful_timeout and a Celery warm shutdown.
GRACE_SECONDS = 15.0
READY_TIMEOUT = 60.0
# A child that dies is started again after RESTART_DELAY seconds, doubled for each
# death in a row up to RESTART_DELAY_MAX; one that ran STABLE_AFTER seconds starts afresh.
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 60.0
# Process name → the setting holding the address it listens on.
LISTENERS = {"web": "web_bind", "relay": "relay_bind", "flower": "flower_bind", "metrics": "metrics_bind"}
COLOURS = ("36", "33", "32", "35", "34", "31", "96", "93")


class ProcfileError(ValueError):
    """The Procfile is missing or has a line that is not ``name: command``."""


def read_procfile(path: pathlib.Path = PROCFILE) -> dict[str, str]:
    """``{name: command}`` in file order; ``#`` comments and blank lines are skipped."""
    processes: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProcfileError(f"cannot read {path}: {exc.strerror}") from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip().isidentifier() or not command.strip():
            raise ProcfileError(f"{path}:{number}: expected 'name: command'")
        processes[name.strip()] = command.strip()
    return processes


@dataclasses.dataclass
class Child:
    name: str
    command: str
    colour: str
    process: subprocess.Popen
    reader: threading.Thread
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    deaths: int = 0  # in a row, each within STABLE_AFTER of its start
    restart_at: float | None = None  # set while a dead child waits for its restart


class Supervisor:
    """Starts, watches and stops the child processes; one instance per ``hearth run``."""

    def __init__(
        self,
        processes: dict[str, str],
        env: dict[str, str],
        *,
        cwd: pathlib.Path = ROOT,
        out=None,
        grace: float = GRACE_SECONDS,
    ):
        self.processes = processes
        self.env = env
        self.cwd = cwd
        self.out = out or sys.stdout
        self.grace = grace
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self._write_lock = threading.Lock()
        self._width = max([len(n) for n in processes] + [len("hearth")])
        self._colour = self.out.isatty()

    # ----------------------------------------------------------------- output

    def say(self, name: str, text: str, colour: str = "1") -> None:
        stamp = time.strftime("%H:%M:%S")
        label = f"{stamp} {name:<{self._width}} |"
        if self._colour:
            label = f"\033[{colour}m{label}\033[0m"
        with self._write_lock:
            self.out.write(f"{label} {text}\n")
            self.out.flush()

    def _pump(self, name: str, stream, colour: str) -> None:
        for raw in iter(stream.readline, b""):
            self.say(name, raw.decode(errors="replace").rstrip("\r\n"), colour)
        stream.close()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        for index, (name, command) in enumerate(self.processes.items()):
            self.children.append(self._spawn(name, command, COLOURS[index % len(COLOURS)]))

    def _spawn(self, name: str, command: str, colour: str) -> Child:
        # Own session: a terminal Ctrl-C reaches the supervisor only, which then
        # stops the children in order; the whole group can be killed at the end.
        process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        reader = threading.Thread(
            target=self._pump, args=(name, process.stdout, colour), name=f"output-{name}", daemon=True
        )
        reader.start()
        self.say("hearth", f"started {name} (pid {process.pid}): {command}")
        return Child(name, command, colour, process, reader)

    def tend(self) -> None:
        """Schedule the restart of each child that died, and restart those whose delay is over."""
        now = time.monotonic()
        for index, child in enumerate(self.children):
            code = child.process.poll()
            if code is None:
                continue
            if child.restart_at is None:
                # What the dead child left in its process group (a worker's pool
                # processes after a kill -9 of their parent) goes with it.
                _signal(child.process.pid, signal.SIGKILL, group=True)
                deaths = 1 if now - child.started_at >= STABLE_AFTER else child.deaths + 1
                delay = min(RESTART_DELAY_MAX, RESTART_DELAY * 2 ** (deaths - 1))
                child.deaths, child.restart_at = deaths, now + delay
                self.say(
                    "hearth",
                    f"{child.name} exited with code {code}; restarting it in {delay:.0f} s"
                    + (f" ({deaths} exits in a row)" if deaths > 1 else ""),
                )
            elif now >= child.restart_at:
                child.reader.join(timeout=2)
                fresh = self._spawn(child.name, child.command, child.colour)
                fresh.deaths = child.deaths
                self.children[index] = fresh

    def wait_until_listening(self, addresses: dict[str, tuple[str, int]], timeout: float) -> bool:
        """Wait for every address to accept connections (restarting children that die); False if stopped."""
        from ops.devservices import reachable

        deadline = time.monotonic() + timeout
        waiting = dict(addresses)
        while waiting and time.monotonic() < deadline:
            if self.stop_requested.is_set():
                return False
            self.tend()
            for name, (host, port) in list(waiting.items()):
                if reachable(host, port, timeout=0.2):
                    del waiting[name]
            time.sleep(0.2)
        if waiting:
            self.say("hearth", f"still not listening after {timeout:.0f} s: {', '.join(sorted(waiting))}")
        return not waiting

    def watch(self) -> None:
        """Keep the children running (restarting any that dies) until a stop is requested."""
        while not self.stop_requested.wait(0.2):
            self.tend()

    def stop(self) -> None:
        """SIGTERM each running child, SIGKILL what is left after the grace period."""
        running = [c for c in self.children if c.process.poll() is None]
        if running:
            self.say("hearth", f"stopping {', '.join(c.name for c in running)}")
        for child in running:
            _signal(child.process.pid, signal.SIGTERM, group=False)
        deadline = time.monotonic() + self.grace
        self.stop_requested.clear()  # a second Ctrl-C from here on means "kill now"
        while any(c.process.poll() is None for c in running):
            if time.monotonic() > deadline or self.stop_requested.is_set():
                for child in running:
                    if child.process.poll() is None:
                        self.say("hearth", f"killing {child.name}")
                        _signal(child.process.pid, signal.SIGKILL, group=True)
                break
            time.sleep(0.1)
        for child in self.children:
            child.process.wait()
            # Whatever a child left behind in its process group (an orphaned
            # pool process, say) goes with it.
            _signal(child.process.pid, signal.SIGKILL, group=True)
            child.reader.join(timeout=2)


def _signal(pid: int, signum: int, *, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def child_environment(settings: Settings, urls: dict[str, str]) -> dict[str, str]:
    """The children's environment: ours, plus the resolved service URLs and everything the Procfile reads."""
    env = dict(os.environ)
    venv_bin = str(pathlib.Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env.update(
        {name: url for name, url in urls.items() if url},
        HEARTH_VAR_DIR=str(pathlib.Path(settings.var_dir).resolve()),
        WEB_BIND=settings.web_bind,
        RELAY_BIND=settings.relay_bind,
        FLOWER_BIND=settings.flower_bind,
        METRICS_BIND=settings.metrics_bind,
        # Every child writes its samples here; the metrics process serves them (emptied at each start).
        PROMETHEUS_MULTIPROC_DIR=str(metrics_directory(settings)),
        # Readable lines for people unless LOG_FORMAT says otherwise.
        LOG_FORMAT=os.environ.get("LOG_FORMAT", "console"),
        # The children write into a pipe to this process: colours when this one writes to a terminal.
        LOG_COLORS=os.environ.get("LOG_COLORS", "always" if sys.stdout.isatty() else "never"),
        # Flower reads FLOWER_BASIC_AUTH itself; in argv it would show in `ps`.
        FLOWER_BASIC_AUTH=f"{settings.flower_user}:{settings.flower_password}",
        PYTHONUNBUFFERED="1",
    )
    return env


def metrics_directory(settings: Settings) -> pathlib.Path:
    """Where the children write their metrics: ``PROMETHEUS_MULTIPROC_DIR``, else ``<var_dir>/metrics``."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return pathlib.Path(given) if given else (pathlib.Path(settings.var_dir) / "metrics").resolve()


def _address(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - shows a wildcard bind as loopback; binds nothing
        host = "127.0.0.1"
    return host, int(port)


def banner(settings: Settings, names, urls: dict[str, str], embedded: set[str]) -> list[str]:
    lines = ["Hearth is running:"]
    if "web" in names:
        host, port = _address(settings.web_bind)
        lines += [f"  API       http://{host}:{port}", f"  API docs  http://{host}:{port}/docs"]
    if "relay" in names:
        host, port = _address(settings.relay_bind)
        lines.append(f"  Relay     ws://{host}:{port}/v1/realtime")
    if "flower" in names:
        host, port = _address(settings.flower_bind)
        password = (
            f"password {DEVELOPMENT_FLOWER_PASSWORD} (development default)"
            if settings.flower_password == DEVELOPMENT_FLOWER_PASSWORD
            else "password from FLOWER_PASSWORD"
        )
        lines.append(f"  Flower    http://{host}:{port}  (user {settings.flower_user}, {password})")
    if "metrics" in names:
        host, port = _address(settings.metrics_bind)
        lines.append(f"  Metrics   http://{host}:{port}/metrics")
    lines.append(f"  Postgres  {redact(urls['DATABASE_URL'])}" + ("  (embedded)" if "postgres" in embedded else ""))
    lines.append(f"  Redis     {redact(urls['REDIS_URL'])}" + ("  (embedded)" if "redis" in embedded else ""))
    if urls.get("CLAMD_URL"):
        lines.append(
            f"  clamd     {urls['CLAMD_URL']}" + ("  (development, test signature only)" if "clamd" in embedded else "")
        )
    else:
        lines.append("  clamd     NOT RUNNING: uploads stay pending_scan until a scanner answers (CLAMD_URL)")
    lines.append("Press Ctrl-C to stop.")
    return lines


def run(settings: Settings, *, procfile: pathlib.Path = PROCFILE, out=None) -> int:
    """Run the Procfile until Ctrl-C / SIGTERM (returns 0), restarting any child that dies."""
    from models import migrate
    from models.db import make_database
    from ops import devservices, stack_record

    processes = {name: cmd for name, cmd in read_procfile(procfile).items() if name != "release"}
    supervisor = Supervisor(processes, {}, out=out)
    previous = {
        sig: signal.signal(sig, lambda *_: supervisor.stop_requested.set())
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        urls = {"DATABASE_URL": devservices.ensure_database(settings), "REDIS_URL": devservices.ensure_redis(settings)}
        try:
            urls["CLAMD_URL"] = devservices.ensure_clamd(settings, log=lambda text: supervisor.say("hearth", text))
        except devservices.ServiceError as exc:
            supervisor.say("hearth", f"WARNING: {exc}; uploads stay pending_scan until a scanner answers")
        embedded = {
            name
            for name, url in (
                ("postgres", settings.database_url),
                ("redis", settings.redis_url),
                ("clamd", settings.clamd_url),
            )
            if not url
        }
        database = make_database(urls["DATABASE_URL"], max_connections=1)
        try:
            applied = migrate.upgrade(database)
        finally:
            database.close_all()
        supervisor.say("hearth", "migrations: " + (", ".join(applied) if applied else "up to date"))
        pathlib.Path(settings.var_dir).mkdir(parents=True, exist_ok=True)
        if supervisor.stop_requested.is_set():
            return 0

        stack_record.record_stack(settings, urls)
        supervisor.env = child_environment(settings, urls)
        # The previous run's samples would be summed with this run's: each run starts from none.
        reset_directory(pathlib.Path(supervisor.env["PROMETHEUS_MULTIPROC_DIR"]))
        supervisor.start()
        listeners = {name: _address(getattr(settings, LISTENERS[name])) for name in processes if name in LISTENERS}
        if supervisor.wait_until_listening(listeners, READY_TIMEOUT):
            for line in banner(settings, processes, urls, embedded):
                supervisor.say("hearth", line)
        supervisor.watch()
        return 0
    finally:
        supervisor.stop()
        stack_record.forget_stack(settings)
        devservices.stop_all()
        if supervisor.children:
            supervisor.say("hearth", "stopped")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
