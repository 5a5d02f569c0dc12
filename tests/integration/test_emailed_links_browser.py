"""Emailed links in a real browser: headless Chromium opens the verification and unsubscribe pages and clicks.

This is the proof that the page's script runs under its own Content-Security-Policy
and that opening the page changes nothing until the click.
"""

from __future__ import annotations

import email
import json
import pathlib
import shutil
import subprocess
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from services.unsubscribe import unsubscribe_token
from settings import Settings
from tests.integration.processes import start_gunicorn, start_worker, wait_for

PASSWORD = "a live and long passphrase"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium")


class Browser:
    """Just enough of the Chrome DevTools Protocol to load a page, click and read it."""

    def __init__(self, profile: pathlib.Path):
        from websockets.sync.client import connect

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        active = profile / "DevToolsActivePort"
        wait_for(
            lambda: active.exists() and len(active.read_text().splitlines()) == 2,
            timeout=30,
            what="Chromium's DevTools port",
        )
        port = active.read_text().splitlines()[0]
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        target = next(page for page in pages if page["type"] == "page")
        self.ws = connect(target["webSocketDebuggerUrl"], max_size=None, legacy=True)
        self.next_id = 0
        self.console: list[str] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=20))
            if message.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded"):
                self.console.append(json.dumps(message["params"])[:300])
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.evaluate("document.readyState") == "complete", timeout=20, what="the page to load")

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def browser(tmp_path):
    opened = Browser(tmp_path / "chromium")
    yield opened
    opened.close()


def _emailed_link(outbox: pathlib.Path) -> str:
    [mail] = wait_for(lambda: list(outbox.glob("*.eml")), timeout=20, what="the verification email")
    message = email.message_from_bytes(mail.read_bytes())
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    return next(line for line in text.splitlines() if line.startswith("http"))


def test_the_verification_and_unsubscribe_pages_work_in_a_browser_on_the_click(live_env, tmp_path, browser):
    logs = tmp_path / "logs"
    logs.mkdir()
    web, base = start_gunicorn(live_env, logs, threads=4)
    worker = start_worker(live_env, logs, queues="notify")
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            assert (
                http.post(
                    "/v1/auth/register",
                    json={"email": "web@example.com", "password": PASSWORD, "full_name": "Web Person"},
                ).status_code
                == 202
            )
            link = urlsplit(_emailed_link(pathlib.Path(live_env["HEARTH_VAR_DIR"]) / "outbox"))
            assert link.path == "/verify-email"
            credentials = {"email": "web@example.com", "password": PASSWORD}

            browser.open(f"{base}{link.path}?{link.query}")  # PUBLIC_URL is hearth.test; the server is here
            assert browser.evaluate("document.querySelector('h1').textContent") == "Confirm your email address"
            # Opening changed nothing: the address is still unverified, so logging in is still refused.
            assert http.post("/v1/auth/login", json=credentials).status_code == 401

            browser.evaluate("document.querySelector('#action button').click()")
            wait_for(
                lambda: "confirmed" in (browser.evaluate("document.getElementById('status').textContent") or ""),
                timeout=20,
                what="the page to report success",
            )
            login = http.post("/v1/auth/login", json=credentials).json()
            me = {"Authorization": f"Bearer {login['access_token']}"}
            assert http.get("/v1/me", headers=me).json()["email_verified"] is True

            # The unsubscribe page first says what its link is about (a GET), then turns email off on the click.
            user_id = http.get("/v1/me", headers=me).json()["id"]
            token = unsubscribe_token(Settings.from_env(live_env).secret_key, user_id, "*")
            browser.open(f"{base}/unsubscribe?{urlencode({'token': token})}")
            wait_for(
                lambda: browser.evaluate("document.getElementById('preview').textContent"),
                timeout=20,
                what="the page to say what the link is about",
            )
            assert browser.evaluate("document.getElementById('preview').textContent") == (
                "Emails about everything Hearth notifies you of to w***@example.com."
            )
            preferences = http.get("/v1/me/notification-preferences", headers=me).json()
            assert any(channels["email"] for channels in preferences["types"].values())
            browser.evaluate("document.querySelector('#action button').click()")
            wait_for(
                lambda: "Done" in (browser.evaluate("document.getElementById('status').textContent") or ""),
                timeout=20,
                what="the page to report the unsubscribe",
            )
            preferences = http.get("/v1/me/notification-preferences", headers=me).json()
            assert not any(channels["email"] for channels in preferences["types"].values())
            assert not [line for line in browser.console if "Content Security Policy" in line], browser.console
    except AssertionError as exc:
        raise AssertionError("\n".join([str(exc), web.output(), worker.output(), *browser.console])) from None
    finally:
        worker.stop()
        web.stop()
