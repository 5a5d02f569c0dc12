"""A page on another origin calls the API and opens the relay from headless Chromium.

The page is served on ``localhost:<port>``; the API (gunicorn) and the relay
(uvicorn) listen on ``127.0.0.1`` at other ports: every call is cross-origin,
preflight included (JSON body, ``Authorization``). The page writes what it got
into the DOM, read over the DevTools protocol.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ops.chromium import ChromiumError, element_text, ensure_installed
from tests.factories import PASSWORD, make_user
from tests.integration.processes import start_gunicorn
from tests.relay.live import start_relay

pytestmark = pytest.mark.integration

PAGE = """<!doctype html>
<html><body><pre id="out">running</pre>
<script>
const API = %(api)s, RELAY = %(relay)s, EMAIL = %(email)s, PASSWORD = %(password)s;
const out = {};
function opened(token) {
  return new Promise((resolve) => {
    const ws = new WebSocket(RELAY);
    ws.onopen = () => ws.send(JSON.stringify({type: "auth", token: token || "none"}));
    ws.onmessage = (m) => { resolve(JSON.parse(m.data).type); ws.close(); };
    ws.onerror = () => resolve("error");
    ws.onclose = (e) => resolve("closed " + e.code);
  });
}
(async () => {
  try {
    const login = await fetch(API + "/v1/auth/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                                       body: JSON.stringify({email: EMAIL, password: PASSWORD})});
    const tokens = await login.json();
    out.login = login.status;
    out.request_id_visible = !!login.headers.get("X-Request-ID");
    const me = await fetch(API + "/v1/me", {headers: {"Authorization": "Bearer " + tokens.access_token}});
    out.me = (await me.json()).email;
    out.relay = await opened(tokens.access_token);
  } catch (e) {
    out.error = String(e);
    out.relay = await opened(null);
  }
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script></body></html>
"""


@pytest.fixture(scope="module")
def chromium():
    if os.environ.get("TEST_CHROMIUM"):
        return os.environ["TEST_CHROMIUM"]
    if os.environ.get("TEST_CHROMIUM_UNAVAILABLE"):
        pytest.skip(f"chromium cannot be installed here: {os.environ['TEST_CHROMIUM_UNAVAILABLE']}")
    try:  # a bare pytest run: install it as `make test` would
        return ensure_installed()
    except ChromiumError as exc:
        pytest.skip(f"chromium cannot be installed here: {exc}")


@pytest.fixture
def page_servers():
    """``serve(html, ports)``: a page on 127.0.0.1 at the first free port of ``ports`` (0: any).

    Returns its port and a dict whose ``"html"`` is what it serves (settable later).
    """
    servers = []

    def serve(page: str, ports=(0,)) -> tuple[int, dict]:
        content = {"html": page}

        class Page(BaseHTTPRequestHandler):
            def do_GET(self):
                data = content["html"].encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        for port in ports:
            try:
                server = ThreadingHTTPServer(("127.0.0.1", port), Page)
                break
            except OSError:
                continue
        else:
            pytest.fail(f"none of the ports {ports} is free for the page")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1], content

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def _page(api: str, relay: str, email: str) -> str:
    return PAGE % {
        name: json.dumps(value)
        for name, value in (("api", api), ("relay", relay), ("email", email), ("password", PASSWORD))
    }


def _result(chromium, url: str) -> dict:
    return json.loads(element_text(chromium, url, "out", pending="running"))


def test_a_dev_server_page_calls_the_api_and_the_relay_in_development(
    chromium, page_servers, live_env, live_db, logs, procs
):
    user = make_user()
    # Development, CORS_ORIGINS unset: the usual local dev servers are allowed.
    env = {**live_env, "HEARTH_ENV": "development"}
    web, api = start_gunicorn(env, logs)
    procs.append(web)
    relay, relay_url = start_relay(env, logs)
    procs.append(relay)
    page = _page(api, relay_url, user.email)

    port, _ = page_servers(page, ports=(5173, 3000, 8080, 4200))
    result = _result(chromium, f"http://localhost:{port}/")
    assert result == {"login": 200, "request_id_visible": True, "me": user.email, "relay": "ready"}

    # A page on any other origin gets no CORS headers, so the browser refuses it the answers,
    # and the relay refuses its handshake.
    elsewhere, _ = page_servers(page)
    refused = _result(chromium, f"http://localhost:{elsewhere}/")
    assert refused.keys() == {"error", "relay"}
    assert "Failed to fetch" in refused["error"]
    assert refused["relay"] in ("error", "closed 1006")


def test_an_explicit_list_allows_exactly_its_origins(chromium, page_servers, live_env, live_db, logs, procs):
    user = make_user()
    port, content = page_servers("")
    env = {**live_env, "CORS_ORIGINS": f"http://localhost:{port}"}  # HEARTH_ENV=test: no defaults
    web, api = start_gunicorn(env, logs)
    procs.append(web)
    relay, relay_url = start_relay(env, logs)
    procs.append(relay)
    content["html"] = _page(api, relay_url, user.email)

    result = _result(chromium, f"http://localhost:{port}/")
    assert result == {"login": 200, "request_id_visible": True, "me": user.email, "relay": "ready"}
    # The same page by address is another origin, not on the list.
    refused = _result(chromium, f"http://127.0.0.1:{port}/")
    assert refused.keys() == {"error", "relay"} and refused["relay"] in ("error", "closed 1006")
