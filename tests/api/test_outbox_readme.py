"""The README's commands that read a token out of the development outbox, run as written."""

from __future__ import annotations

import pathlib
import re
import subprocess

from settings import ROOT

README = pathlib.Path(ROOT) / "README.md"


def _readme_token_commands(address: str) -> str:
    text = README.read_text()
    lines = [line for line in text.splitlines() if line.startswith(("MAIL=$(", "TOKEN=$(grep"))]
    assert len(lines) == 2, lines
    return "\n".join(lines).replace("ada@example.com", address) + '\nprintf %s "$TOKEN"\n'


def _readme_token(settings, address: str) -> str:
    # The README runs from the checkout, where the outbox is var/outbox.
    workdir = settings.var_dir.parent / "checkout"
    workdir.mkdir(exist_ok=True)
    link = workdir / "var"
    if not link.exists():
        link.symlink_to(settings.var_dir)
    done = subprocess.run(
        ["bash", "-c", _readme_token_commands(address)],
        cwd=workdir,
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _register(client, email: str):
    resp = client.simulate_post(
        "/v1/auth/register",
        json={"email": email, "password": "analytical engine 1843", "full_name": "Someone", "role": "buyer"},
    )
    assert resp.status_code < 300, resp.text


def test_the_readme_finds_each_users_own_newest_token(client, jobs, settings, outbox):
    # Many first users, so that the second one's mail is not the alphabetically last file by luck.
    for n in range(8):
        _register(client, f"first{n}@example.com")
        jobs.run_pending()
        first_token = _readme_token(settings, f"first{n}@example.com")
        assert first_token == outbox.token_for(f"first{n}@example.com")
        assert client.simulate_post("/v1/auth/verify-email", json={"token": first_token}).status_code == 204

    _register(client, "second@example.com")
    jobs.run_pending()
    token = _readme_token(settings, "second@example.com")
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", token), token
    assert client.simulate_post("/v1/auth/verify-email", json={"token": token}).status_code == 204
    # The mail just sent is the lexically last file: "ls | tail -1" is the newest mail.
    newest = sorted(settings.outbox_dir.glob("*.eml"))[-1]
    assert "To: second@example.com" in newest.read_text()
