"""The ``hearth`` command.

    hearth db upgrade [TARGET] | downgrade [TARGET] | status | new NAME
    hearth users create-admin --email E --full-name N [--password-stdin]
    hearth demo seed --listings N [--seed S]
    hearth run
    hearth backup DIR|s3://bucket/prefix [--with-objects] [--keep N] | verify SOURCE
    hearth restore SOURCE [--force]
    hearth health web|relay|worker|beat|flower|metrics
    hearth keys generate
    hearth payments sandbox-event PAYMENT_INTENT --outcome succeeded|failed|canceled [--api URL]
    hearth import supabase --source-db URL [--mapping FILE] [--dry-run] [--only T] [--since last] ...

With ``DATABASE_URL`` / ``REDIS_URL`` unset outside production, commands use the
servers of the ``hearth run`` running on the same ``var/`` (it records them in
``var/stack.json``), or else the embedded PostgreSQL / Redis under ``var/``
(started for the command and stopped after it). Expected failures (bad
settings, unreachable database, invalid input) print one message on stderr and
exit 1; a traceback always means a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import re
import sys

from ops import backup_cli, health
from ops.redaction import redact
from settings import Settings, SettingsError

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class CommandError(Exception):
    """An expected failure: the message is shown to the user as is."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help(sys.stderr)
        return 2
    from peewee import InterfaceError, OperationalError

    from ops.devservices import ServiceError

    try:
        _configure_logging()
        return args.handler(args) or 0
    except SettingsError as exc:
        return _fail(str(exc))
    except (CommandError, ServiceError) as exc:
        return _fail(str(exc))
    except (OperationalError, InterfaceError) as exc:
        return _fail(f"database error: {_first_line(exc)}")
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hearth", description="Run and administer Hearth.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    db_parser = commands.add_parser("db", help="schema migrations")
    db_commands = db_parser.add_subparsers(title="db commands", metavar="ACTION")
    db_commands.required = True
    up = db_commands.add_parser("upgrade", help="apply pending migrations (up to TARGET)")
    up.add_argument("target", nargs="?", help="stop after this migration, e.g. 0002_jobs")
    up.set_defaults(handler=db_upgrade)
    down = db_commands.add_parser("downgrade", help="revert the newest migration, or back through TARGET")
    down.add_argument("target", nargs="?", help="revert every applied migration back through this one")
    down.set_defaults(handler=db_downgrade)
    db_commands.add_parser("status", help="list migrations and when they were applied").set_defaults(handler=db_status)
    new = db_commands.add_parser("new", help="write a numbered skeleton migration")
    new.add_argument("name", help="what the migration does, e.g. 'listing photos'")
    new.set_defaults(handler=db_new)

    users_parser = commands.add_parser("users", help="user accounts")
    users_commands = users_parser.add_subparsers(title="users commands", metavar="ACTION")
    users_commands.required = True
    admin = users_commands.add_parser("create-admin", help="create an administrator (email verified)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--full-name", required=True)
    admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input instead of prompting"
    )
    admin.set_defaults(handler=users_create_admin)

    demo_parser = commands.add_parser("demo", help="demo data")
    demo_commands = demo_parser.add_subparsers(title="demo commands", metavar="ACTION")
    demo_commands.required = True
    seed = demo_commands.add_parser("seed", help="create realistic demo listings (the same rows for the same seed)")
    seed.add_argument("--listings", type=int, required=True, metavar="N", help="how many listings")
    seed.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    seed.set_defaults(handler=demo_seed)

    metrics = commands.add_parser("metrics", help="serve /metrics for every Hearth process of this host")
    metrics.set_defaults(handler=serve_metrics)

    run = commands.add_parser("run", help="start every process of the Procfile for development")
    run.set_defaults(handler=run_all)

    keys_parser = commands.add_parser("keys", help="signing keys")
    keys_commands = keys_parser.add_subparsers(title="keys commands", metavar="ACTION")
    keys_commands.required = True
    generate = keys_commands.add_parser("generate", help="print a new Ed25519 private key (PEM) for JWT_PRIVATE_KEYS")
    generate.add_argument(
        "--es256",
        action="store_true",
        help="a P-256 key instead: it signs the Supabase-compatible API's tokens (add it to JWT_PRIVATE_KEYS)",
    )
    generate.set_defaults(handler=keys_generate)

    payments_parser = commands.add_parser("payments", help="the payments provider")
    payments_commands = payments_parser.add_subparsers(title="payments commands", metavar="ACTION")
    payments_commands.required = True
    sandbox_event = payments_commands.add_parser(
        "sandbox-event", help="finish a sandbox deposit: POST its signed webhook to the running API"
    )
    sandbox_event.add_argument("payment_intent", help="the deposit's PaymentIntent id (pi_sandbox_...)")
    sandbox_event.add_argument("--outcome", required=True, choices=("succeeded", "failed", "canceled"))
    sandbox_event.add_argument("--api", help="the API's base URL (default: http://WEB_BIND)")
    sandbox_event.set_defaults(handler=payments_sandbox_event)
    backup_cli.add_commands(commands)
    health.add_commands(commands)

    from ops.import_command import add_parser as add_import_parser

    add_import_parser(commands, database=_database)
    return parser


# --------------------------------------------------------------------------- db


@contextlib.contextmanager
def _database(settings: Settings):
    """Bind the model database proxy to the configured (or embedded) database for one command."""
    from models.db import init_database
    from ops.devservices import ensure_database

    url = ensure_database(settings)
    database = init_database(dataclasses.replace(settings, database_url=url, database_max_connections=2))
    try:
        database.connect()
    except _connection_errors() as exc:
        raise CommandError(f"cannot reach the database at {redact(url)}: {_first_line(exc)}") from None
    try:
        yield database
    finally:
        if not database.is_closed():
            database.close()
        database.close_all()


def _connection_errors() -> tuple[type[Exception], ...]:
    from peewee import InterfaceError, OperationalError

    return (OperationalError, InterfaceError)


def _migration_error():
    from playhouse.migrations import MigrationError

    return MigrationError


def _migrate(step: str, target, done: str, nothing: str) -> int:
    """Run ``migrate.upgrade`` or ``migrate.downgrade`` and print what it did."""
    from models import migrate

    with _database(Settings.from_env()) as database:
        try:
            names = getattr(migrate, step)(database, target)
        except _migration_error() as exc:
            raise CommandError(str(exc)) from None
    for name in names:
        print(f"{done} {name}")
    if not names:
        print(nothing)
    return 0


def db_upgrade(args) -> int:
    return _migrate("upgrade", args.target, "applied ", "the database is up to date")


def db_downgrade(args) -> int:
    return _migrate("downgrade", args.target, "reverted", "no migration is applied; nothing to revert")


def db_status(args) -> int:
    from models import migrate

    with _database(Settings.from_env()) as database:
        rows = migrate.status(database)
    for name, applied_at in rows:
        when = applied_at.strftime("%Y-%m-%d %H:%M:%S") if applied_at else "pending"
        print(f"{when:<19}  {name}")
    pending = sum(1 for _, applied_at in rows if applied_at is None)
    print(f"{len(rows) - pending} applied, {pending} pending")
    return 0


def db_new(args) -> int:
    from models import migrate
    from models.db import make_database

    # Writing the file needs no connection; the database object only satisfies the runner.
    settings = Settings.from_env()
    path = migrate.new(make_database(settings.database_url or "postgresql:///hearth"), args.name)
    print(path)
    return 0


# --------------------------------------------------------------------------- users


def users_create_admin(args) -> int:
    from peewee import IntegrityError

    from models import migrate
    from models.accounts import User
    from models.audit import AuditEntry
    from models.base import utcnow
    from models.db import db
    from models.passwords import hash_password, policy_problem

    email = User.normalize_email(args.email)
    full_name = args.full_name.strip()
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise CommandError(f"not an email address: {args.email!r}")
    if not 1 <= len(full_name) <= 200:
        raise CommandError("--full-name must be 1 to 200 characters")

    with _database(Settings.from_env()) as database:
        pending = [name for name, applied_at in migrate.status(database) if applied_at is None]
        if pending:
            raise CommandError(
                f"the database schema is not up to date ({len(pending)} pending migrations); "
                "run `hearth db upgrade` first"
            )
        if User.select().where(User.email == email).exists():
            raise CommandError(f"a user with email {email} already exists")
        password = _read_password(args.password_stdin)
        problem = policy_problem(password, email=email, full_name=full_name)
        if problem:
            raise CommandError(f"password {problem}")
        try:
            with db.atomic():
                now = utcnow()
                user = User.create(
                    email=email,
                    full_name=full_name,
                    role="admin",
                    password_hash=hash_password(password),
                    email_verified_at=now,
                    created_at=now,
                    updated_at=now,
                )
                AuditEntry.record(
                    actor_id=None,
                    action="user.create_admin",
                    target_type="user",
                    target_id=user.id,
                    after={"email": email, "role": "admin", "via": "cli"},
                )
        except IntegrityError:
            raise CommandError(f"a user with email {email} already exists") from None
    print(f"created admin {email} (id {user.id})")
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        text = sys.stdin.read()
        return text[:-1] if text.endswith("\n") else text
    if not sys.stdin.isatty():
        raise CommandError("no terminal to prompt for a password; pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != first:
        raise CommandError("the passwords do not match")
    return first


# --------------------------------------------------------------------------- demo


def demo_seed(args) -> int:
    from models import migrate
    from ops import demo
    from ops.devservices import ensure_database, ensure_redis

    if args.listings < 0:
        raise CommandError("--listings cannot be negative")
    settings = Settings.from_env()
    # The rebuild job goes to the broker the stack's workers consume (the running
    # `hearth run`'s, or the embedded Redis it will use), not to a default address.
    settings = dataclasses.replace(settings, redis_url=ensure_redis(settings))
    with _database(settings) as database:
        if any(applied_at is None for _, applied_at in migrate.status(database)):
            raise CommandError("the database schema is not up to date; run `hearth db upgrade` first")
        try:
            demo.seed_command(ensure_database(settings), settings, args.listings, args.seed)
        except demo.SeedError as exc:
            raise CommandError(str(exc)) from None
    return 0


# --------------------------------------------------------------------------- run, keys


def run_all(args) -> int:
    from ops import supervisor

    try:
        return supervisor.run(Settings.from_env())
    except supervisor.ProcfileError as exc:
        raise CommandError(str(exc)) from None
    except _migration_error() as exc:
        raise CommandError(f"migrations failed: {exc}") from None


def serve_metrics(args) -> int:
    from ops import metrics_server

    metrics_server.serve(Settings.from_env())
    return 0


def keys_generate(args) -> int:
    from services.tokens import generate_es256_pem, generate_private_pem

    # The same format the API reads from JWT_PRIVATE_KEYS (PKCS#8 PEM, unencrypted).
    sys.stdout.write(generate_es256_pem() if getattr(args, "es256", False) else generate_private_pem())
    return 0


def payments_sandbox_event(args) -> int:
    from ops.devservices import ensure_redis
    from ops.sandbox_payments import SandboxEventError, api_url, send_sandbox_event

    settings = Settings.from_env()
    try:
        url = api_url(settings, args.api)
        status, body = send_sandbox_event(settings, ensure_redis(settings), args.payment_intent, args.outcome, url)
    except SandboxEventError as exc:
        raise CommandError(str(exc)) from None
    print(f"{status} {body}")
    return 0 if status < 300 else 1


# --------------------------------------------------------------------------- helpers


def _configure_logging() -> None:
    """Log lines of a command, process kind ``cli``, in LOG_FORMAT; left alone when embedded (tests).

    Warnings and errors only (everything with HEARTH_DEBUG): what a command has to say it prints.
    """
    import logging

    from services.logging import configure_logging

    if not logging.getLogger().handlers:
        settings = Settings.from_env()
        configure_logging(settings, "cli")
        if not settings.debug:
            logging.getLogger().setLevel(logging.WARNING)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(message: str) -> int:
    print(f"hearth: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
