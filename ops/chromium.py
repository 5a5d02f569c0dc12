"""Headless Chromium for the browser tests (a real cross-origin ``fetch()`` and websocket).

``ensure_installed()`` returns the path of Debian's ``chromium``, installing the
package first with ``apt-get`` when it is missing (as root; the project's
machines are Debian), the way ``ops/clamd.py`` installs clamd. ``element_text()``
loads a page and waits, over the DevTools protocol, until its scripts have
written their result into an element.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from ops.debian import InstallError, apt_install

# The flags a sandbox-less, offline test machine needs: no GPU, no QUIC, no
# background traffic to Google, no first-run UI.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
)


class ChromiumError(Exception):
    """Chromium could not be installed or run; the message says why."""


def chromium_binary() -> str | None:
    return next((found for found in map(shutil.which, ("chromium", "chromium-browser")) if found), None)


def ensure_installed(log=print) -> str:
    """The path of ``chromium``, installing Debian's ``chromium`` package first when it is missing."""
    found = chromium_binary()
    if found:
        return found
    log("chromium not found: installing it with apt-get (once per machine)")
    try:
        apt_install("chromium", recommends=False)
    except InstallError as exc:
        raise ChromiumError(str(exc)) from None
    found = chromium_binary()
    if not found:
        raise ChromiumError("the chromium package was installed but chromium is still not on PATH")
    return found


def element_text(binary: str, url: str, element_id: str, *, pending: str = "", timeout: float = 60.0) -> str:
    """Open ``url``; once the element ``element_id`` holds text other than ``pending``, return it.

    Chromium runs headless with a throwaway profile and a DevTools port of its
    own; the page is polled with ``Runtime.evaluate``, so fetches and websockets
    the page starts take the real time they take.
    """
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(prefix="hearth-chromium-", ignore_cleanup_errors=True) as profile:
        argv = [
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            url,
        ]
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        try:
            page = _page_socket(process, os.path.join(profile, "DevToolsActivePort"), deadline)
            expression = f"(document.getElementById({json.dumps(element_id)}) || {{}}).textContent || ''"
            with connect(page, open_timeout=10, max_size=None) as devtools:
                for number in itertools.count(1):
                    devtools.send(
                        json.dumps(
                            {
                                "id": number,
                                "method": "Runtime.evaluate",
                                "params": {"expression": expression, "returnByValue": True},
                            }
                        )
                    )
                    answer = _answer(devtools, number, deadline)
                    text = answer.get("result", {}).get("result", {}).get("value", "")
                    if text and text != pending:
                        return text
                    if time.monotonic() > deadline:
                        raise ChromiumError(f"#{element_id} still holds {text!r} after {timeout:.0f} s at {url}")
                    time.sleep(0.1)
        finally:
            # Its renderer and zygote processes share its session: they go with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            process.stderr.close()
    raise AssertionError("unreachable")


def _page_socket(process: subprocess.Popen, port_file: str, deadline: float) -> str:
    """The DevTools websocket of the first page, once Chromium has opened it."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChromiumError(
                f"chromium exited with {process.returncode}: {process.stderr.read().decode(errors='replace')[-2000:]}"
            )
        try:
            with open(port_file) as written:
                port = int(written.readline().strip())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as listing:
                pages = [t for t in json.load(listing) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise ChromiumError("chromium opened no page in time")


def _answer(devtools, number: int, deadline: float) -> dict:
    while True:
        message = json.loads(devtools.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("id") == number:
            return message


if __name__ == "__main__":
    print(ensure_installed())
