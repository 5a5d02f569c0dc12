"""``/docs``: a reference page that works offline and that its own Content-Security-Policy allows."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess

import pytest

INLINE = re.compile(r"<(script|style)(\s[^>]*)?>(.*?)</\1\s*>", re.S | re.I)
URL_ATTRIBUTE = re.compile(r"""\s(?:src|href|action|srcset|poster|data)\s*=\s*["']?([^"'\s>]*)""", re.I)

# Just enough DOM to run the page's script against a document and list what it rendered.
NODE_DOM = r"""
const fs = require("fs");
const [script, spec] = [fs.readFileSync(process.argv[1], "utf8"), JSON.parse(fs.readFileSync(process.argv[2], "utf8"))];
const ids = {};
class N { constructor() { this.children = []; }
  append(...cs) { for (const c of cs) this.children.push(typeof c === "string" ? new T(c) : c); }
  replaceChildren(...cs) { this.children = []; this.append(...cs); }
  get textContent() { return this.children.map(c => c.textContent).join(""); }
  set textContent(v) { this.children = [new T(String(v))]; } }
class T extends N { constructor(t) { super(); this.t = t; } get textContent() { return this.t; } }
class E extends N { constructor(tag) { super(); this.tagName = tag.toUpperCase(); this.dataset = {};
    this.className = ""; this.classList = { toggle() {}, add() {}, remove() {} }; }
  setAttribute(k, v) { if (/^(on|style)/i.test(k)) throw new Error("attribute blocked by the CSP: " + k);
    if (k === "id") ids[v] = this; }
  addEventListener() {} scrollIntoView() {} }
for (const id of ["title", "version", "filter", "token", "toggle", "nav", "main"]) ids[id] = new E("div");
Object.assign(global, { Node: N, CSS: { escape: s => s }, window: { addEventListener() {} },
  location: { origin: "http://localhost", hash: "" },
  document: { createElement: t => new E(t), getElementById: id => ids[id],
              querySelectorAll: () => [], querySelector: () => null },
  fetch: async () => ({ ok: true, json: async () => spec }) });
eval(script);
setTimeout(() => console.log(JSON.stringify({ ids: Object.keys(ids), text: ids.main.textContent })), 50);
"""


@pytest.fixture
def page(client):
    resp = client.simulate_get("/docs")
    assert resp.status_code == 200
    return resp


def test_docs_is_an_html_page_that_reads_the_document(page):
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "public, max-age=60"
    assert "<!doctype html>" in page.text.lower()
    assert '"/v1/openapi.json"' in page.text


def test_docs_loads_nothing_from_other_hosts(page):
    html = page.text
    assert "http://" not in html and "https://" not in html
    for url in URL_ATTRIBUTE.findall(INLINE.sub("", html)):
        assert url.startswith(("#", "data:")) or (url.startswith("/") and not url.startswith("//")), url
    css = "".join(body for kind, _, body in INLINE.findall(html) if kind == "style")
    assert "@import" not in css
    for url in re.findall(r"url\(\s*['\"]?([^'\")]*)", css):
        assert url.startswith("data:"), url


def test_the_pages_policy_allows_exactly_its_inline_code(page):
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    blocks = INLINE.findall(page.text)
    assert {kind for kind, _, _ in blocks} == {"script", "style"}
    for kind, attributes, body in blocks:
        assert "src" not in (attributes or ""), "no external scripts"
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy[f"{kind}-src"].split(), f"inline {kind} not allowed by the CSP"
    markup = INLINE.sub("", page.text)
    assert not re.search(r"<[a-z][^>]*\s(on[a-z]+|style)\s*=", markup, re.I), "the CSP blocks inline attributes"


def test_other_responses_keep_the_strict_policy(client):
    resp = client.simulate_get("/v1/openapi.json")
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "script-src" not in resp.headers["Content-Security-Policy"]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the page's script")
def test_the_page_renders_every_operation(page, client, tmp_path):
    spec = client.simulate_get("/v1/openapi.json").json
    (script,) = [body for kind, _, body in INLINE.findall(page.text) if kind == "script"]
    (tmp_path / "docs.js").write_text(script)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(
        ["node", "-e", NODE_DOM, str(tmp_path / "docs.js"), str(tmp_path / "spec.json")],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)
    assert "Could not load" not in rendered["text"]
    for item in spec["paths"].values():
        for op in item.values():
            assert f"op-{op['operationId']}" in rendered["ids"]
    assert "curl -X POST 'http://localhost/v1/auth/login'" in rendered["text"]
    assert '"email":"ada@example.com"' in rendered["text"]
    assert "schema-Problem" in rendered["ids"]
    # Docstrings quote code as ``this``: shown as code, with no backtick left over.
    assert "listing search: GET /v1/properties and saved searches share them" in rendered["text"]
    stray = re.findall(r".{30}`.{30}", rendered["text"])
    assert not stray, stray
