"""Brute-force protection on login: per-account and per-address locks that reveal nothing."""
from __future__ import annotations

import pytest

from tests.api.conftest import assert_problem
from tests.conftest import make_settings
from tests.factories import PASSWORD

ACCOUNT_THRESHOLD = 3
IP_THRESHOLD = 6


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(database, tmp_path, redis_prefix=redis_prefix, rate_limit_auth="1000/minute",
                         login_lockout_threshold=ACCOUNT_THRESHOLD, login_ip_lockout_threshold=IP_THRESHOLD)


def _login(client, email, password, ip="203.0.113.7"):
    return client.simulate_post("/v1/auth/login", json={"email": email, "password": password}, remote_addr=ip)


def _without_request_id(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "request_id"}


def test_the_account_locks_after_n_failures_even_for_the_right_password(client, user):
    for _ in range(ACCOUNT_THRESHOLD - 1):
        assert_problem(_login(client, user.email, "wrong password!"), 401)
    assert _login(client, user.email, PASSWORD).status_code == 200  # a success resets the count

    for _ in range(ACCOUNT_THRESHOLD):
        assert_problem(_login(client, user.email, "wrong password!"), 401)
    locked = _login(client, user.email, PASSWORD)
    body = assert_problem(locked, 429)
    retry_after = int(locked.headers["retry-after"])
    assert 0 < retry_after <= 60
    assert body["retry_after"] == retry_after
    # The lock is on the account, whatever address the next try comes from.
    assert_problem(_login(client, user.email.upper(), PASSWORD, ip="198.51.100.1"), 429)


def test_further_failures_lengthen_the_lock(client, user, services):
    for _ in range(ACCOUNT_THRESHOLD + 2):
        services.lockout.failed(user.email, "198.51.100.9")
    retry_after = int(_login(client, user.email, PASSWORD).headers["retry-after"])
    assert 200 < retry_after <= 240  # 60 s doubled twice


def test_unknown_email_and_wrong_password_answer_the_same(client, user):
    wrong = _login(client, user.email, "not the password")
    unknown = _login(client, "no-account@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert _without_request_id(wrong.json) == _without_request_id(unknown.json)
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]

    # And they lock the same way.
    for _ in range(ACCOUNT_THRESHOLD - 1):
        _login(client, user.email, "not the password")
        _login(client, "no-account@example.com", "not the password")
    locked_known = _login(client, user.email, "not the password")
    locked_unknown = _login(client, "no-account@example.com", "not the password")
    assert locked_known.status_code == locked_unknown.status_code == 429
    assert _without_request_id(locked_known.json) == _without_request_id(locked_unknown.json)


def test_one_address_trying_many_accounts_is_locked_out(client, user):
    for n in range(IP_THRESHOLD):
        assert_problem(_login(client, f"victim{n}@example.com", "guess 123456"), 401)
    assert_problem(_login(client, user.email, PASSWORD), 429)  # even a valid login from that address
    # Another address is not affected.
    assert _login(client, user.email, PASSWORD, ip="192.0.2.55").status_code == 200
