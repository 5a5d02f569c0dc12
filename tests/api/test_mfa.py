"""Two-factor login on /v1: enroll, activate, the login challenge, codes good once, recovery codes, lockout."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlparse

from models.audit import AuditEntry
from models.jobs import Job
from models.mfa import MfaFactor
from services.totp import TotpCodes
from tests.api.conftest import assert_problem, bearer
from tests.api.mfa_clock import Clock, claims, clock, code, services  # noqa: F401 - fixtures
from tests.factories import PASSWORD, enroll_totp, make_user


def password_login(client, user):
    return client.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})


def verify(client, challenge_id: str, headers=None, **body):
    return client.simulate_post("/v1/auth/mfa/verify", json={"challenge_id": challenge_id, **body}, headers=headers)


def enroll_and_activate(client, headers, clock) -> tuple[str, dict]:
    """Enroll and activate an app for the signed-in user; returns its secret and the activation's answer."""
    enrolled = client.simulate_post("/v1/auth/mfa/totp", headers=headers, json={"friendly_name": "Phone"})
    assert enrolled.status_code == 201, enrolled.text
    secret = enrolled.json["secret"]
    activated = client.simulate_post(
        f"/v1/auth/mfa/{enrolled.json['id']}/activate", headers=headers, json={"code": code(secret, clock)}
    )
    assert activated.status_code == 200, activated.text
    return secret, activated.json


def mfa_notices(user) -> list[str]:
    rows = (
        Job.select().where((Job.kind == "accounts.send_mfa_notice") & (Job.owner == user.id)).order_by(Job.created_at)
    )
    return [row.input["change"] for row in rows]


def test_enroll_activate_then_login_needs_a_code_and_gives_aal2_tokens(client, user, login, clock):
    first = login(user)
    assert (claims(first)["aal"], [m["method"] for m in claims(first)["amr"]]) == ("aal1", ["password"])
    enrolled = client.simulate_post("/v1/auth/mfa/totp", headers=bearer(first), json={"friendly_name": "Phone"})
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json
    assert body["status"] == "unverified" and body["friendly_name"] == "Phone"
    uri = urlparse(body["uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert uri.path == f"/Hearth:{user.email}"
    assert parse_qs(uri.query)["issuer"] == ["Hearth"] and parse_qs(uri.query)["secret"] == [body["secret"]]
    assert body["qr_code"].startswith("<svg") and body["qr_code"].rstrip().endswith("</svg>")

    # Not active yet: logging in still needs only the password.
    assert "access_token" in password_login(client, user).json
    listed = client.simulate_get("/v1/auth/mfa", headers=bearer(first))
    assert [f["status"] for f in listed.json["factors"]] == ["unverified"]
    assert body["secret"] not in listed.text

    activated = client.simulate_post(
        f"/v1/auth/mfa/{body['id']}/activate", headers=bearer(first), json={"code": code(body["secret"], clock)}
    )
    assert activated.status_code == 200, activated.text
    codes = activated.json["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert activated.json["factor"]["status"] == "verified"
    assert claims(activated.json["tokens"])["aal"] == "aal2"
    assert claims(activated.json["tokens"])["sid"] == claims(first)["sid"]  # this session, raised
    assert mfa_notices(user) == ["enabled"]

    challenge = password_login(client, user)
    assert challenge.status_code == 200
    assert challenge.json["mfa_required"] is True and "access_token" not in challenge.json
    assert challenge.json["factors"] == [{"id": body["id"], "factor_type": "totp", "friendly_name": "Phone"}]
    assert challenge.json["expires_in"] == 300
    clock.next_step()
    pair = verify(client, challenge.json["challenge_id"], code=code(body["secret"], clock))
    assert pair.status_code == 200, pair.text
    assert claims(pair.json)["aal"] == "aal2"
    assert [m["method"] for m in claims(pair.json)["amr"]] == ["password", "totp"]
    assert client.simulate_get("/v1/auth/mfa", headers=bearer(pair.json)).json["aal"] == "aal2"

    # A refresh keeps the level the login reached.
    refreshed = client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair.json["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert claims(refreshed.json)["aal"] == "aal2"
    # A challenge is completed once.
    assert_problem(verify(client, challenge.json["challenge_id"], code=code(body["secret"], clock, 1)), 400)


def test_activation_ends_the_accounts_other_password_only_sessions(client, user, login, clock):
    other, mine = login(user), login(user)
    enroll_and_activate(client, bearer(mine), clock)
    assert_problem(client.simulate_get("/v1/me", headers=bearer(other)), 401)


def test_a_code_is_accepted_once_and_older_codes_never(client, user, login, clock):
    secret, _ = enroll_and_activate(client, bearer(login(user)), clock)  # the current step's code is spent
    challenge = password_login(client, user).json["challenge_id"]
    body = assert_problem(verify(client, challenge, code=code(secret, clock)), 422, field="body.code")
    assert "used" in body["errors"][0]["message"]
    assert_problem(verify(client, challenge, code=code(secret, clock, -1)), 422, field="body.code")
    # The next step's code (drift allowance) works once...
    assert verify(client, challenge, code=code(secret, clock, 1)).status_code == 200
    # ...and then neither it nor the current one, which is older, works again.
    again = password_login(client, user).json["challenge_id"]
    assert_problem(verify(client, again, code=code(secret, clock, 1)), 422)
    assert_problem(verify(client, again, code=code(secret, clock)), 422)
    clock.next_step()
    clock.next_step()
    assert verify(client, again, code=code(secret, clock)).status_code == 200


def test_a_recovery_code_works_once_and_is_mailed(client, user, login, clock, jobs, outbox):
    _, activated = enroll_and_activate(client, bearer(login(user)), clock)
    recovery = activated["recovery_codes"][3]
    challenge = password_login(client, user).json["challenge_id"]
    pair = verify(client, challenge, recovery_code=recovery.upper().replace("-", " "))
    assert pair.status_code == 200, pair.text
    assert [m["method"] for m in claims(pair.json)["amr"]] == ["password", "recovery"]
    listed = client.simulate_get("/v1/auth/mfa", headers=bearer(pair.json)).json
    assert listed["recovery_codes_left"] == 9
    again = password_login(client, user).json["challenge_id"]
    assert_problem(verify(client, again, recovery_code=recovery), 422, field="body.recovery_code")
    assert mfa_notices(user) == ["enabled", "recovery_code_used"]
    jobs.run_pending()
    subjects = [m["Subject"] for m in outbox.messages() if m["To"] == user.email]
    assert "Hearth: A recovery code was used" in subjects
    # Both, or neither, of code and recovery_code is a validation error.
    assert_problem(verify(client, again), 422)


def test_new_recovery_codes_need_a_code_and_void_the_old_ones(client, user, login, clock):
    secret, activated = enroll_and_activate(client, bearer(login(user)), clock)
    pair, old = activated["tokens"], activated["recovery_codes"]
    url = "/v1/auth/mfa/recovery-codes"
    assert_problem(client.simulate_post(url, headers=bearer(pair), json={"code": "000000"}), 422, field="body.code")
    clock.next_step()
    fresh = client.simulate_post(url, headers=bearer(pair), json={"code": code(secret, clock)})
    assert fresh.status_code == 200, fresh.text
    assert len(fresh.json["recovery_codes"]) == 10 and not set(fresh.json["recovery_codes"]) & set(old)
    challenge = password_login(client, user).json["challenge_id"]
    assert_problem(verify(client, challenge, recovery_code=old[0]), 422)
    assert verify(client, challenge, recovery_code=fresh.json["recovery_codes"][0]).status_code == 200
    assert mfa_notices(user) == ["enabled", "recovery_codes", "recovery_code_used"]


def test_wrong_codes_kill_the_challenge_and_count_toward_the_login_lockout(client, user, login, clock, settings):
    secret, _ = enroll_and_activate(client, bearer(login(user)), clock)
    challenge = password_login(client, user).json["challenge_id"]
    right = code(secret, clock, 1)
    wrong = "999999" if right != "999999" else "111111"
    second = password_login(client, user).json["challenge_id"]
    for _ in range(settings.login_lockout_threshold - 1):
        assert_problem(verify(client, challenge, code=wrong), 422)
    # The failure that reaches the threshold, on another challenge, locks the account for this
    # address: the right code on a live challenge waits, and so does the right password.
    assert_problem(verify(client, second, code=wrong), 422)
    locked = verify(client, second, code=right)
    assert_problem(locked, 429)
    assert int(locked.headers["Retry-After"]) > 0
    assert_problem(password_login(client, user), 429)


def test_a_challenge_allows_five_wrong_codes(client, user, login, clock, services):
    secret, _ = enroll_and_activate(client, bearer(login(user)), clock)
    challenge = password_login(client, user).json["challenge_id"]
    for _ in range(5):
        assert_problem(verify(client, challenge, code="000001"), 422)
    services.redis.flushdb()  # the address lock aside: the challenge itself is spent
    assert_problem(verify(client, challenge, code=code(secret, clock, 1)), 400)


def test_removing_a_factor_needs_the_password_and_a_code(client, user, login, clock, settings):
    secret, activated = enroll_and_activate(client, bearer(login(user)), clock)
    pair = activated["tokens"]
    factor_id = activated["factor"]["id"]
    url = f"/v1/auth/mfa/{factor_id}"
    clock.next_step()
    good = code(secret, clock)
    wrong_password = client.simulate_delete(url, headers=bearer(pair), json={"password": "not it at all", "code": good})
    assert_problem(wrong_password, 422, field="body.password")
    wrong_code = client.simulate_delete(url, headers=bearer(pair), json={"password": PASSWORD, "code": "123450"})
    assert_problem(wrong_code, 422, field="body.code")
    no_code = client.simulate_delete(url, headers=bearer(pair), json={"password": PASSWORD})
    assert_problem(no_code, 422, field="body.code")
    removed = client.simulate_delete(url, headers=bearer(pair), json={"password": PASSWORD, "code": good})
    assert removed.status_code == 204, removed.text
    assert mfa_notices(user) == ["enabled", "disabled"]
    # Two-factor login is off: the password alone logs in, and the raised session is aal1 again.
    assert "access_token" in password_login(client, user).json
    refreshed = client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert claims(refreshed.json)["aal"] == "aal1"
    assert client.simulate_get("/v1/auth/mfa", headers=bearer(refreshed.json)).json == {
        "factors": [],
        "recovery_codes_left": 0,
        "aal": "aal1",
    }


def test_another_users_factor_is_neither_reachable_nor_accepted(client, user, login, clock, settings):
    secret, activated = enroll_and_activate(client, bearer(login(user)), clock)
    other = make_user()
    other_secret = enroll_totp(other, settings.secret_key)
    challenge = password_login(client, other).json["challenge_id"]
    assert_problem(verify(client, challenge, code=code(secret, clock, 1)), 422)  # the first user's code
    assert verify(client, challenge, code=code(other_secret, clock)).status_code == 200
    # The other user cannot activate, remove or even see the first user's factor.
    theirs = bearer(
        verify(client, password_login(client, other).json["challenge_id"], code=code(other_secret, clock, 1)).json
    )
    factor_id = activated["factor"]["id"]
    assert_problem(
        client.simulate_post(f"/v1/auth/mfa/{factor_id}/activate", headers=theirs, json={"code": "123456"}), 404
    )
    gone = client.simulate_delete(
        f"/v1/auth/mfa/{factor_id}", headers=theirs, json={"password": PASSWORD, "code": code(other_secret, clock, 1)}
    )
    assert_problem(gone, 404)
    assert factor_id not in client.simulate_get("/v1/auth/mfa", headers=theirs).text


def test_step_up_raises_a_password_only_session_to_aal2(client, user, login, clock, settings):
    pair = login(user)
    secret = enroll_totp(user, settings.secret_key)  # a factor added since this session began
    assert client.simulate_get("/v1/auth/mfa", headers=bearer(pair)).json["aal"] == "aal1"
    started = client.simulate_post("/v1/auth/mfa/challenge", headers=bearer(pair), json={})
    assert started.status_code == 201, started.text
    challenge = started.json["challenge_id"]
    # A step-up belongs to its session: not completed without it, nor by another session.
    assert_problem(verify(client, challenge, code=code(secret, clock)), 400)
    other = make_user()
    assert_problem(verify(client, challenge, headers=bearer(login(other)), code=code(secret, clock)), 400)
    raised = verify(client, challenge, headers=bearer(pair), code=code(secret, clock))
    assert raised.status_code == 200, raised.text
    assert (claims(raised.json)["aal"], claims(raised.json)["sid"]) == ("aal2", claims(pair)["sid"])
    # The session's earlier refresh token was replaced, without ending the session.
    old = client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_problem(old, 401)
    new = client.simulate_post("/v1/auth/refresh", json={"refresh_token": raised.json["refresh_token"]})
    assert claims(new.json)["aal"] == "aal2"
    # No factor, no step-up.
    assert_problem(client.simulate_post("/v1/auth/mfa/challenge", headers=bearer(login(other)), json={}), 409)


def test_a_second_factor_needs_an_aal2_session_to_add(client, user, login, clock, settings):
    pair = login(user)
    enroll_totp(user, settings.secret_key)
    body = assert_problem(client.simulate_post("/v1/auth/mfa/totp", headers=bearer(pair), json={}), 403)
    assert body["type"].endswith("/mfa-required")


def test_secrets_and_codes_never_reach_responses_audit_jobs_or_logs(client, user, login, clock, caplog):
    caplog.set_level(logging.DEBUG)
    secret, activated = enroll_and_activate(client, bearer(login(user)), clock)
    challenge = password_login(client, user).json["challenge_id"]
    assert verify(client, challenge, recovery_code=activated["recovery_codes"][0]).status_code == 200
    listed = client.simulate_get("/v1/auth/mfa", headers=bearer(activated["tokens"]))
    secrets_ = [secret, *[c.replace("-", "") for c in activated["recovery_codes"]], *activated["recovery_codes"]]
    audit = json.dumps(
        [[row.before, row.after] for row in AuditEntry.select().where(AuditEntry.target_id == str(user.id))]
    )
    job_inputs = json.dumps([row.input for row in Job.select().where(Job.owner == user.id)])
    logged = "\n".join(record.getMessage() + json.dumps(record.__dict__, default=str) for record in caplog.records)
    for value in secrets_:
        assert value not in listed.text
        assert value not in audit
        assert value not in job_inputs
        assert value not in logged
    actions = {row.action for row in AuditEntry.select().where(AuditEntry.target_id == str(user.id))}
    assert {"user.mfa_enroll", "user.mfa_activate", "user.mfa_recovery_code_used"} <= actions


def test_a_secret_sealed_under_another_key_refuses_codes_but_recovery_codes_work(client, user, login, clock):
    secret, activated = enroll_and_activate(client, bearer(login(user)), clock)
    factor_id = activated["factor"]["id"]
    MfaFactor.update(secret_sealed=TotpCodes(b"o" * 32).seal(secret, factor_id)).execute()  # SECRET_KEY changed
    challenge = password_login(client, user).json["challenge_id"]
    assert_problem(verify(client, challenge, code=code(secret, clock, 1)), 422)
    assert verify(client, challenge, recovery_code=activated["recovery_codes"][0]).status_code == 200
