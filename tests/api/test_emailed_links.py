"""Every link Hearth emails works when followed as a person would: open the page, click, done.

The page is fetched first (as a mail scanner would: nothing may change), then the
request its script makes on a click is sent as the page declares it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from models.accounts import User
from models.jobs import Job
from models.notifications import Preferences, notify
from tasks.accounts import send_password_reset
from tasks.runtime import init_runtime
from tests.api.conftest import assert_problem
from tests.conftest import make_settings
from tests.factories import PASSWORD, make_user
from tests.outbox import Outbox

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(
        database, tmp_path, redis_prefix=redis_prefix, rate_limit_auth="1000/minute", login_account_lock_addresses=3
    )


def _emailed_link(message, path: str) -> str:
    """The link to ``path`` in the message's HTML part, as a mail client would open it."""
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    links = [html.unescape(href) for href in re.findall(r'href="([^"]+)"', part.get_payload(decode=True).decode())]
    [link] = [link for link in links if urlsplit(link).path == path]
    return link


def _open_page(client, link: str) -> dict:
    """GET the page as a browser would; checks what makes it safe; returns what its form posts."""
    url = urlsplit(link)
    assert f"{url.scheme}://{url.netloc}" == "http://hearth.test"  # PUBLIC_URL: Hearth's own pages
    resp = client.simulate_get(url.path, query_string=url.query)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert resp.headers["cache-control"] == "no-store"
    token = parse_qs(url.query)["token"][0]
    assert token not in resp.text  # the token is never written into the page
    csp = resp.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    [script] = re.findall(r"<script>(.*?)</script>", resp.text, re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp  # exactly this script runs, nothing injected
    assert "innerHTML" not in script and "document.write" not in script
    form = re.search(r'<form id="action" method="post" data-endpoint="([^"]+)" data-fields="([^"]*)"', resp.text)
    preview = re.search(r'data-preview="([^"]*)" data-labels="([^"]*)"', resp.text)
    return {
        "endpoint": html.unescape(form.group(1)),
        "fields": form.group(2).split(),
        "token": token,
        "preview": html.unescape(preview.group(1)),
        "labels": json.loads(html.unescape(preview.group(2))),
    }


def _click(client, page: dict, ip: str = "127.0.0.1", **values):
    """The request the page's script sends on a click: JSON ``{token, *fields}`` to its endpoint."""
    body = {"token": page["token"], **{name: values[name] for name in page["fields"]}}
    return client.simulate_post(page["endpoint"], json=body, remote_addr=ip)


def test_the_verification_link_verifies_on_the_click_not_on_the_visit(client, jobs, outbox):
    resp = client.simulate_post(
        "/v1/auth/register", json={"email": "vera@example.com", "password": NEW_PASSWORD, "full_name": "Vera"}
    )
    assert resp.status_code == 202
    jobs.run_pending()
    [mail] = outbox.messages()
    page = _open_page(client, _emailed_link(mail, "/verify-email"))
    _open_page(client, _emailed_link(mail, "/verify-email"))  # a scanner, a preview, then the person
    assert User.get(User.email == "vera@example.com").email_verified_at is None
    assert _click(client, page).status_code == 204
    assert User.get(User.email == "vera@example.com").email_verified_at is not None


def test_the_reset_link_sets_the_password_typed_on_the_page(client, jobs, outbox, user):
    client.simulate_post("/v1/auth/password/forgot", json={"email": user.email})
    jobs.run_pending()
    [mail] = outbox.messages()
    page = _open_page(client, _emailed_link(mail, "/reset-password"))
    assert page["fields"] == ["password"]
    assert _click(client, page, password=NEW_PASSWORD).status_code == 204
    login = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": NEW_PASSWORD})
    assert login.status_code == 200
    assert_problem(_click(client, page, password=NEW_PASSWORD), 400)  # used


def test_the_unsubscribe_link_turns_that_email_off(client, jobs, outbox):
    jane = make_user()
    jobs.submit(notify(jane.id, "message.received", title="A new message", body="Is it still available?"))
    jobs.run_pending()
    [mail] = outbox.messages()
    page = _open_page(client, _emailed_link(mail, "/unsubscribe"))
    # On load the page asks what the link is about, and says it in words.
    shown = client.simulate_get(page["preview"], params={"token": page["token"]})
    assert shown.status_code == 200 and shown.json["type"] == "message.received"
    assert page["labels"][shown.json["type"]] == "new messages"
    assert Preferences.of(jane.id).channels("message.received")["email"] is True
    resp = _click(client, page)
    assert resp.status_code == 200 and resp.json["unsubscribed"] is True
    assert Preferences.of(jane.id).channels("message.received")["email"] is False


def test_the_unlock_link_lets_the_owner_in_from_the_device_that_clicked(client, jobs, outbox, user):
    for n in range(3):
        client.simulate_post(
            "/v1/auth/login", json={"email": user.email, "password": "guess"}, remote_addr=f"198.51.100.{n + 1}"
        )
    jobs.run_pending()
    [mail] = outbox.messages()
    page = _open_page(client, _emailed_link(mail, "/unlock-account"))
    login = {"email": user.email, "password": PASSWORD}
    assert_problem(client.simulate_post("/v1/auth/login", json=login, remote_addr="192.0.2.1"), 429)
    assert _click(client, page, ip="192.0.2.1").status_code == 204
    assert client.simulate_post("/v1/auth/login", json=login, remote_addr="192.0.2.1").status_code == 200


def test_a_page_without_a_token_changes_nothing_and_says_so(client):
    resp = client.simulate_get("/verify-email")
    assert resp.status_code == 200 and "open it again from the email" in resp.text


def test_frontend_url_sends_emailed_links_to_the_web_app(database, tmp_path, redis_prefix, redis):
    settings = make_settings(database, tmp_path, redis_prefix=redis_prefix, frontend_url="https://app.example.com/")
    init_runtime(settings, redis=redis, init_db=False)
    user = make_user()
    job = Job.create(kind="accounts.send_password_reset", queue="notify", input={"email": user.email})
    send_password_reset(str(job.id))
    [mail] = Outbox(settings.outbox_dir).messages()
    link = urlsplit(_emailed_link(mail, "/reset-password"))
    assert (link.scheme, link.netloc) == ("https", "app.example.com")
