"""supabase-js's MFA calls on /auth/v1/factors*, and what an aal1 session of a two-factor account may do."""

from __future__ import annotations

import datetime

from models.accounts import AuthSession
from models.audit import AuditEntry
from models.base import utcnow
from models.jobs import Job
from models.mfa import MfaChallenge, MfaFactor
from tests.api.conftest import assert_problem, bearer
from tests.api.mfa_clock import Clock, claims, clock, code, services  # noqa: F401 - fixtures
from tests.api.test_supabase_auth import V2024, assert_gotrue, auth, sign_in
from tests.factories import enroll_totp, make_user


def signed_in(client, user) -> dict:
    resp = sign_in(client, user.email)
    assert resp.status_code == 200, resp.text
    return resp.json


def enroll(client, session, **body) -> dict:
    resp = client.simulate_post(
        "/auth/v1/factors", json={"factor_type": "totp", "friendly_name": "Phone", **body}, headers=auth(session)
    )
    assert resp.status_code == 200, resp.text
    return resp.json


def challenge(client, session, factor_id) -> dict:
    resp = client.simulate_post(
        f"/auth/v1/factors/{factor_id}/challenge", json={"factorId": factor_id}, headers=auth(session)
    )
    assert resp.status_code == 200, resp.text
    return resp.json


def verify(client, session, factor_id, challenge_id, totp_code):
    return client.simulate_post(
        f"/auth/v1/factors/{factor_id}/verify",
        json={"challenge_id": challenge_id, "code": totp_code},
        headers=auth(session),
    )


def only_factor(user) -> MfaFactor:
    return MfaFactor.get(MfaFactor.user == user.id)


def notices(user) -> list[str]:
    rows = Job.select().where((Job.kind == "accounts.send_mfa_notice") & (Job.owner == user.id))
    return [row.input["change"] for row in rows.order_by(Job.created_at)]


def test_enroll_challenge_verify_raises_the_session_to_aal2(client, user, clock):
    other = signed_in(client, user)  # another password-only session of the same account
    session = signed_in(client, user)
    enrolled = enroll(client, session, issuer="Acme Homes")
    assert set(enrolled) == {"id", "type", "friendly_name", "totp"}
    assert (enrolled["type"], enrolled["friendly_name"]) == ("totp", "Phone")
    totp = enrolled["totp"]
    assert totp["qr_code"].lstrip().startswith("<svg")  # supabase-js makes it a data: URI
    assert totp["uri"].startswith("otpauth://totp/Acme%20Homes:") and "issuer=Acme+Homes" in totp["uri"]
    listed = client.simulate_get("/auth/v1/user", headers=auth(session)).json["factors"]
    assert [(f["id"], f["status"], f["factor_type"], f["friendly_name"]) for f in listed] == [
        (enrolled["id"], "unverified", "totp", "Phone")
    ]
    assert "secret" not in listed[0]

    started = challenge(client, session, enrolled["id"])
    assert set(started) == {"id", "type", "expires_at"} and started["type"] == "totp"
    assert 0 < started["expires_at"] - utcnow().timestamp() <= 300

    done = verify(client, session, enrolled["id"], started["id"], code(totp["secret"], clock))
    assert done.status_code == 200, done.text
    raised = done.json
    assert raised["token_type"] == "bearer" and raised["refresh_token"] != session["refresh_token"]
    assert claims(raised)["aal"] == "aal2" and "mfa_pending" not in claims(raised)
    assert [entry["method"] for entry in claims(raised)["amr"]] == ["password", "totp"]
    assert raised["user"]["factors"][0]["status"] == "verified"
    assert notices(user) == ["enabled"]
    # As when /v1 activates a factor: the account's other password-only sessions end.
    assert_gotrue(client.simulate_get("/auth/v1/user", headers=auth(other)), 403, "session_not_found")
    # The raised session works everywhere, and its refresh stays aal2.
    assert client.simulate_get("/v1/me", headers=bearer(raised)).status_code == 200
    refreshed = client.simulate_post(
        "/auth/v1/token",
        params={"grant_type": "refresh_token"},
        json={"refresh_token": raised["refresh_token"]},
        headers=V2024,
    )
    assert refreshed.status_code == 200, refreshed.text
    assert claims(refreshed.json)["aal"] == "aal2"


def test_a_password_sign_in_of_a_two_factor_account_is_aal1_and_opens_only_the_second_step(
    client, user, settings, clock
):
    secret = enroll_totp(user, settings.secret_key)
    session = signed_in(client, user)
    assert claims(session)["aal"] == "aal1" and claims(session)["mfa_pending"] is True
    assert session["user"]["factors"][0]["status"] == "verified"
    # What supabase-js needs before its second step works: the user (its factors) ...
    assert client.simulate_get("/auth/v1/user", headers=auth(session)).status_code == 200
    # ... and nothing else, on /v1 or on /auth/v1.
    for path in ("/v1/me", "/v1/offers", "/v1/auth/mfa", "/v1/me/notifications"):
        body = assert_problem(client.simulate_get(path, headers=bearer(session)), 403)
        assert body["type"].endswith("/mfa-required"), path
    assert_gotrue(
        client.simulate_put("/auth/v1/user", json={"data": {"x": 1}}, headers=auth(session)), 403, "insufficient_aal"
    )
    assert_gotrue(
        client.simulate_post("/auth/v1/factors", json={"factor_type": "totp"}, headers=auth(session)),
        403,
        "insufficient_aal",
    )
    factor_id = str(only_factor(user).id)
    assert_gotrue(
        client.simulate_delete(f"/auth/v1/factors/{factor_id}", headers=auth(session)), 403, "insufficient_aal"
    )
    # A refresh keeps the session where it was, on either API.
    again = client.simulate_post(
        "/auth/v1/token",
        params={"grant_type": "refresh_token"},
        json={"refresh_token": session["refresh_token"]},
        headers=V2024,
    ).json
    assert claims(again)["aal"] == "aal1" and claims(again)["mfa_pending"] is True
    v1 = client.simulate_post("/v1/auth/refresh", json={"refresh_token": again["refresh_token"]})
    assert v1.status_code == 200, v1.text
    assert_problem(client.simulate_get("/v1/me", headers=bearer(v1.json)), 403)

    started = challenge(client, again, factor_id)
    raised = verify(client, again, factor_id, started["id"], code(secret, clock))
    assert raised.status_code == 200, raised.text
    assert claims(raised.json)["aal"] == "aal2" and "mfa_pending" not in claims(raised.json)
    assert client.simulate_get("/v1/me", headers=bearer(raised.json)).status_code == 200
    assert notices(user) == []  # a step-up of a factor already on is no change to announce


def test_an_admin_signed_in_at_aal1_reaches_no_admin_route_until_verified(client, admin, settings, clock):
    secret = enroll_totp(admin, settings.secret_key)
    session = signed_in(client, admin)
    body = assert_problem(client.simulate_get("/v1/admin/users", headers=bearer(session)), 403)
    assert body["type"].endswith("/mfa-required")
    factor_id = str(only_factor(admin).id)
    started = challenge(client, session, factor_id)
    raised = verify(client, session, factor_id, started["id"], code(secret, clock)).json
    assert client.simulate_get("/v1/admin/users", headers=bearer(raised)).status_code == 200


def test_logout_and_the_v1_step_up_are_open_to_an_aal1_session(client, user, settings, clock):
    secret = enroll_totp(user, settings.secret_key)
    session = signed_in(client, user)
    step = client.simulate_post("/v1/auth/mfa/challenge", json={}, headers=bearer(session))
    assert step.status_code == 201, step.text
    done = client.simulate_post(
        "/v1/auth/mfa/verify",
        json={"challenge_id": step.json["challenge_id"], "code": code(secret, clock)},
        headers=bearer(session),
    )
    assert done.status_code == 200, done.text
    assert client.simulate_get("/v1/me", headers=bearer(done.json)).status_code == 200
    other = signed_in(client, user)
    assert client.simulate_post("/auth/v1/logout", params={"scope": "local"}, headers=auth(other)).status_code == 204
    assert AuthSession.get_by_id(claims(other)["session_id"]).revoked_at is not None


def test_wrong_and_replayed_codes_are_refused_and_counted(client, user, settings, clock):
    secret = enroll_totp(user, settings.secret_key)
    session = signed_in(client, user)
    factor_id = str(only_factor(user).id)
    started = challenge(client, session, factor_id)
    wrong = "000000" if code(secret, clock) != "000000" else "111111"
    assert_gotrue(verify(client, session, factor_id, started["id"], wrong), 422, "mfa_verification_failed")
    assert MfaChallenge.get_by_id(started["id"]).attempts == 1
    good = code(secret, clock)
    assert verify(client, session, factor_id, started["id"], good).status_code == 200
    # The challenge is used up, and the same code is good once even with a fresh challenge.
    assert_gotrue(verify(client, session, factor_id, started["id"], good), 422, "mfa_challenge_expired")
    fresh = challenge(client, session, factor_id)
    assert_gotrue(verify(client, session, factor_id, fresh["id"], good), 422, "mfa_verification_failed")


def test_a_challenge_is_good_only_for_its_factor_session_and_time(client, user, settings, clock):
    secret = enroll_totp(user, settings.secret_key)
    factor_id = str(only_factor(user).id)
    mine, theirs = signed_in(client, user), signed_in(client, user)
    started = challenge(client, mine, factor_id)
    assert_gotrue(verify(client, theirs, factor_id, started["id"], code(secret, clock)), 422, "mfa_factor_not_found")
    MfaChallenge.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(
        MfaChallenge.id == started["id"]
    ).execute()
    assert_gotrue(verify(client, mine, factor_id, started["id"], code(secret, clock)), 422, "mfa_challenge_expired")
    assert_gotrue(verify(client, mine, factor_id, "not-a-uuid", code(secret, clock)), 400, "validation_failed")
    assert_gotrue(verify(client, mine, factor_id, started["id"], ""), 400, "validation_failed")


def test_another_users_factor_is_not_found(client, user, settings):
    stranger = make_user()
    enroll_totp(stranger, settings.secret_key)
    theirs = str(only_factor(stranger).id)
    session = signed_in(client, user)
    for resp in (
        client.simulate_post(f"/auth/v1/factors/{theirs}/challenge", json={}, headers=auth(session)),
        client.simulate_delete(f"/auth/v1/factors/{theirs}", headers=auth(session)),
    ):
        assert_gotrue(resp, 404, "mfa_factor_not_found")
    assert_gotrue(
        client.simulate_post("/auth/v1/factors/nope/challenge", json={}, headers=auth(session)),
        404,
        "validation_failed",
    )
    assert MfaFactor.get_by_id(theirs).status == "verified"


def test_enroll_refuses_what_it_does_not_offer(client, user):
    session = signed_in(client, user)
    post = lambda body: client.simulate_post("/auth/v1/factors", json=body, headers=auth(session))  # noqa: E731
    assert_gotrue(post({"factor_type": "phone", "phone": "+15550100"}), 422, "mfa_phone_enroll_not_enabled")
    assert_gotrue(post({"factor_type": "webauthn"}), 422, "mfa_webauthn_enroll_not_enabled")
    assert_gotrue(post({}), 400, "validation_failed")
    assert_gotrue(post({"factor_type": "totp", "friendly_name": "x" * 101}), 400, "validation_failed")
    enroll(client, session)
    assert_gotrue(post({"factor_type": "totp", "friendly_name": "Phone"}), 422, "mfa_factor_name_conflict")
    assert client.simulate_post("/auth/v1/factors", json={"factor_type": "totp"}).status_code == 401


def test_unenroll_needs_a_recent_second_factor_for_a_verified_factor(client, user, clock):
    session = signed_in(client, user)
    spare = enroll(client, session, friendly_name="Spare")
    gone = client.simulate_delete(f"/auth/v1/factors/{spare['id']}", headers=auth(session))
    assert gone.status_code == 200 and gone.json == {"id": spare["id"]}  # unverified: no second factor needed

    enrolled = enroll(client, session)
    started = challenge(client, session, enrolled["id"])
    raised = verify(client, session, enrolled["id"], started["id"], code(enrolled["totp"]["secret"], clock)).json
    row = AuthSession.get_by_id(claims(raised)["session_id"])
    stale = [{**entry, "timestamp": entry["timestamp"] - 3600} for entry in row.amr]
    AuthSession.update(amr=stale).where(AuthSession.id == row.id).execute()
    assert_gotrue(
        client.simulate_delete(f"/auth/v1/factors/{enrolled['id']}", headers=auth(raised)), 422, "insufficient_aal"
    )
    clock.now += 30
    again = challenge(client, raised, enrolled["id"])
    fresh = verify(client, raised, enrolled["id"], again["id"], code(enrolled["totp"]["secret"], clock)).json
    gone = client.simulate_delete(f"/auth/v1/factors/{enrolled['id']}", headers=auth(fresh))
    assert gone.status_code == 200, gone.text
    assert MfaFactor.get_or_none(MfaFactor.id == enrolled["id"]) is None
    assert AuthSession.get_by_id(row.id).aal == "aal1"  # two-factor login is off again
    assert notices(user) == ["enabled", "disabled"]
    assert "factors" not in client.simulate_get("/auth/v1/user", headers=auth(fresh)).json
    actions = [e.action for e in AuditEntry.select().where(AuditEntry.target_id == str(user.id))]
    assert {"user.mfa_enroll", "user.mfa_challenge", "user.mfa_activate", "user.mfa_remove"} <= set(actions)


def test_wrong_codes_count_toward_the_login_lockout(client, user, settings, clock):
    secret = enroll_totp(user, settings.secret_key)
    factor_id = str(only_factor(user).id)
    session = signed_in(client, user)
    wrong = "000000" if code(secret, clock) != "000000" else "111111"
    for _ in range(settings.login_lockout_threshold):
        started = challenge(client, session, factor_id)
        assert_gotrue(verify(client, session, factor_id, started["id"], wrong), 422, "mfa_verification_failed")
    started = challenge(client, session, factor_id)
    locked = verify(client, session, factor_id, started["id"], code(secret, clock))
    body = assert_gotrue(locked, 429, "over_request_rate_limit")
    assert int(locked.headers["retry-after"]) >= 1, body
    # The password step is locked for this account and address too: one count for both.
    assert_gotrue(sign_in(client, user.email), 429, "over_request_rate_limit")


def test_an_aal1_session_cannot_get_past_its_second_step_with_an_unverified_factor(client, user, settings):
    enroll_totp(user, settings.secret_key)
    half = MfaFactor.create(user=user.id, friendly_name="Half", secret_sealed=b"x" * 40)  # enrolled, never verified
    session = signed_in(client, user)
    assert_gotrue(
        client.simulate_post(f"/auth/v1/factors/{half.id}/challenge", json={}, headers=auth(session)),
        403,
        "insufficient_aal",
    )
    assert_gotrue(
        client.simulate_post(
            f"/auth/v1/factors/{half.id}/verify",
            json={"challenge_id": str(half.id), "code": "123456"},
            headers=auth(session),
        ),
        403,
        "insufficient_aal",
    )


def test_a_recovery_session_of_a_two_factor_account_needs_the_code_before_a_new_password(
    client, jobs, outbox, user, settings, clock
):
    secret = enroll_totp(user, settings.secret_key)
    client.simulate_post("/auth/v1/recover", json={"email": user.email}, headers=V2024)
    jobs.run_pending()
    recovered = client.simulate_post(
        "/auth/v1/verify",
        json={"type": "recovery", "token": outbox.token_for(user.email), "email": user.email},
        headers=V2024,
    ).json
    assert claims(recovered)["mfa_pending"] is True  # the mailbox alone is one factor, not two
    new_password = {"password": "another long passphrase here"}
    assert_gotrue(
        client.simulate_put("/auth/v1/user", json=new_password, headers=auth(recovered)), 403, "insufficient_aal"
    )
    factor_id = str(only_factor(user).id)
    started = challenge(client, recovered, factor_id)
    raised = verify(client, recovered, factor_id, started["id"], code(secret, clock)).json
    changed = client.simulate_put("/auth/v1/user", json=new_password, headers=auth(raised))
    assert changed.status_code == 200, changed.text
