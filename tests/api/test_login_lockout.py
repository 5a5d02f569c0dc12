"""Brute-force protection on login: locks that reveal nothing and that nobody can turn against the owner."""

from __future__ import annotations

import pytest

from tests.api.conftest import assert_problem
from tests.conftest import make_settings
from tests.factories import PASSWORD

ACCOUNT_THRESHOLD = 3  # failures of one account from one address
IP_THRESHOLD = 6
ACCOUNT_ADDRESSES = 4
OWNER_IP = "192.0.2.10"


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(
        database,
        tmp_path,
        redis_prefix=redis_prefix,
        rate_limit_auth="1000/minute",
        login_lockout_threshold=ACCOUNT_THRESHOLD,
        login_ip_lockout_threshold=IP_THRESHOLD,
        login_account_lock_addresses=ACCOUNT_ADDRESSES,
    )


def _login(client, email, password, ip="203.0.113.7"):
    return client.simulate_post("/v1/auth/login", json={"email": email, "password": password}, remote_addr=ip)


def _without_request_id(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "request_id"}


def test_the_account_locks_from_that_address_after_n_failures_even_for_the_right_password(client, user):
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
    # The lock is on the account from that address: the same address is refused whatever the case.
    assert_problem(_login(client, user.email.upper(), PASSWORD), 429)


def test_an_attackers_failures_do_not_lock_the_owner_out_from_another_address(client, user):
    for _ in range(ACCOUNT_THRESHOLD * 4):
        _login(client, user.email, "guess 123456", ip="203.0.113.66")
    assert_problem(_login(client, user.email, PASSWORD, ip="203.0.113.66"), 429)  # the attacker is locked
    assert _login(client, user.email, PASSWORD, ip=OWNER_IP).status_code == 200  # the owner is not


def test_the_addresses_of_one_ipv6_network_count_as_one(client, user, jobs):
    # A host holds a whole /64: taking a new address for every try must not reset the count, nor
    # make one host look like the many places that lock an account everywhere.
    for n in range(ACCOUNT_THRESHOLD + ACCOUNT_ADDRESSES):
        _login(client, user.email, "guess 123456", ip=f"2001:db8:1:2::{n + 1:x}")
    assert_problem(_login(client, user.email, PASSWORD, ip="2001:db8:1:2:ffff::1"), 429)
    assert _login(client, user.email, PASSWORD, ip="2001:db8:1:3::1").status_code == 200  # the next /64
    assert _login(client, user.email, PASSWORD, ip=OWNER_IP).status_code == 200
    assert jobs.submitted == []  # no account-wide lock, no unlock mail


def test_further_failures_lengthen_the_lock(client, user, services):
    for _ in range(ACCOUNT_THRESHOLD + 2):
        services.lockout.failed(user.email, "198.51.100.9")
    retry_after = int(_login(client, user.email, PASSWORD, ip="198.51.100.9").headers["retry-after"])
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


def _fail_from_many_addresses(client, email, count=ACCOUNT_ADDRESSES):
    return [_login(client, email, "guess 123456", ip=f"198.51.100.{n + 1}") for n in range(count)]


def test_failures_from_many_addresses_lock_the_account_everywhere_and_mail_one_unlock_link(client, user, jobs, outbox):
    answers = _fail_from_many_addresses(client, user.email, ACCOUNT_ADDRESSES - 1)
    assert all(answer.status_code == 401 for answer in answers)
    assert _login(client, user.email, PASSWORD, ip=OWNER_IP).status_code == 200  # below the threshold
    assert jobs.submitted == []

    _fail_from_many_addresses(client, user.email, ACCOUNT_ADDRESSES + 3)
    locked = _login(client, user.email, PASSWORD, ip=OWNER_IP)
    assert_problem(locked, 429)
    assert 0 < int(locked.headers["retry-after"]) <= 3600
    assert jobs.run_pending() == 1  # one link, however many failures followed
    [mail] = outbox.messages()
    assert mail["To"] == user.email and "locked" in mail["Subject"]


def test_the_unlock_link_lets_the_owner_in_once_and_not_twice(client, user, jobs, outbox):
    _fail_from_many_addresses(client, user.email)
    jobs.run_pending()
    token = outbox.token_for(user.email)

    unlock = client.simulate_post("/v1/auth/unlock", json={"token": token}, remote_addr=OWNER_IP)
    assert unlock.status_code == 204, unlock.text
    # The attackers are still locked out; only the address that used the link gets in.
    assert_problem(_login(client, user.email, PASSWORD, ip="198.51.100.1"), 429)
    assert_problem(_login(client, user.email, PASSWORD, ip="192.0.2.99"), 429)
    assert _login(client, user.email, PASSWORD, ip=OWNER_IP).status_code == 200
    # Not twice: the link is used up, and so is what it granted.
    assert_problem(_login(client, user.email, PASSWORD, ip=OWNER_IP), 429)
    again = client.simulate_post("/v1/auth/unlock", json={"token": token}, remote_addr=OWNER_IP)
    assert assert_problem(again, 400)["type"].endswith("/invalid-token")
    assert_problem(_login(client, user.email, PASSWORD, ip=OWNER_IP), 429)


def test_the_unlock_link_expires_and_does_not_skip_the_password(client, user, jobs, outbox):
    import datetime

    from models.accounts import AccountToken
    from models.base import utcnow

    _fail_from_many_addresses(client, user.email)
    jobs.run_pending()
    token = outbox.token_for(user.email)
    assert_problem(client.simulate_post("/v1/auth/unlock", json={"token": "x" * 43}, remote_addr=OWNER_IP), 400)
    row = AccountToken.get(AccountToken.purpose == "account_unlock")
    assert 3500 < (row.expires_at - utcnow()).total_seconds() <= 3600
    assert bytes(row.token_hash) != token.encode()  # stored hashed
    assert client.simulate_post("/v1/auth/unlock", json={"token": token}, remote_addr=OWNER_IP).status_code == 204
    assert_problem(_login(client, user.email, "not the password", ip=OWNER_IP), 401)

    AccountToken.update(expires_at=utcnow() - datetime.timedelta(seconds=1), used_at=None).where(
        AccountToken.token_hash == row.token_hash
    ).execute()
    assert_problem(client.simulate_post("/v1/auth/unlock", json={"token": token}, remote_addr="192.0.2.77"), 400)


def test_an_unknown_email_locks_and_queues_the_same_way(client, user, jobs, outbox):
    _fail_from_many_addresses(client, "nobody@example.com")
    _fail_from_many_addresses(client, user.email)
    assert len(jobs.submitted) == 2
    assert_problem(_login(client, "nobody@example.com", "x", ip=OWNER_IP), 429)
    jobs.run_pending()
    assert [mail["To"] for mail in outbox.messages()] == [user.email]
