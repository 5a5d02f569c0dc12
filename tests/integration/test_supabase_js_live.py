"""The real ``@supabase/supabase-js`` client (pinned in tests/supabase_js) against gunicorn and a worker.

``npm ci`` installs the pinned client into tests/supabase_js/node_modules once
(again only when package-lock.json changes); tests/supabase_js/flow.mjs then
signs up, confirms, signs in, refreshes, verifies the token's claims, signs
out, recovers a password, signs in an imported bcrypt user, and goes through
two-factor login with ``mfa.*`` (enroll, a TOTP code computed in node,
challenge, verify, the assurance levels, an aal1 sign-in that /v1 refuses,
challengeAndVerify, unenroll). Any failed step fails this test with the
script's output.
"""

from __future__ import annotations

import hashlib
import pathlib
import shutil
import subprocess

import bcrypt
import pytest

from models.accounts import User
from models.base import utcnow
from models.identities import UserIdentity
from settings import DEVELOPMENT_SUPABASE_ANON_KEY
from tests.integration.processes import environment, start_gunicorn, start_worker

CLIENT_DIR = pathlib.Path(__file__).resolve().parents[1] / "supabase_js"
IMPORTED_PASSWORD = "an imported old passphrase"


def _npm_ci() -> None:
    """Install the locked client unless node_modules already matches package-lock.json."""
    lock = (CLIENT_DIR / "package-lock.json").read_bytes()
    marker = CLIENT_DIR / "node_modules" / ".hearth-lock-sha256"
    digest = hashlib.sha256(lock).hexdigest()
    if marker.exists() and marker.read_text() == digest:
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is required for the supabase-js test (Node 20 and npm are part of the toolchain)")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci failed:\n{done.stdout}\n{done.stderr}")
    marker.write_text(digest)


def _imported_user(email: str) -> None:
    """A user as the Supabase import writes one: a bcrypt $2a$ hash and its identities."""
    stored = bcrypt.hashpw(IMPORTED_PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode().replace("$2b$", "$2a$")
    person = User.create(
        email=email, password_hash=stored, full_name="Imported Person", role="buyer", email_verified_at=utcnow()
    )
    UserIdentity.create(
        user=person.id, provider="email", provider_id=str(person.id), identity_data={"sub": str(person.id)}, email=email
    )
    UserIdentity.create(user=person.id, provider="google", provider_id="1234567890", identity_data={}, email=email)


def test_supabase_js_auth_calls_work_against_hearth(live_env, live_db, logs, procs):
    _npm_ci()
    _imported_user("imported@example.com")
    web, base = start_gunicorn(live_env, logs)
    procs.append(web)
    procs.append(start_worker(live_env, logs, queues="notify"))
    env = environment(live_env)
    env.update(
        HEARTH_URL=base,
        ANON_KEY=DEVELOPMENT_SUPABASE_ANON_KEY,
        OUTBOX_DIR=str(pathlib.Path(live_env["HEARTH_VAR_DIR"]) / "outbox"),
        IMPORTED_EMAIL="imported@example.com",
        IMPORTED_PASSWORD=IMPORTED_PASSWORD,
    )
    node = shutil.which("node") or "node"
    done = subprocess.run(
        [node, "flow.mjs"], cwd=CLIENT_DIR, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        server = "\n".join(proc.output()[-4000:] for proc in procs)
        pytest.fail(f"supabase-js flow failed:\n{done.stdout}\n{done.stderr}\n--- server ---\n{server}")
    assert "all steps passed" in done.stdout
