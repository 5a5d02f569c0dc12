"""The money flow ``make run`` offers, on real processes: gunicorn, a Celery worker on the ``money`` queue,
the sandbox provider in Redis, and ``hearth payments sandbox-event`` completing the deposit over HTTP."""

from __future__ import annotations

import datetime
import subprocess
import sys

import httpx
import pytest

from models.base import utcnow
from models.properties import Property
from tests.factories import PASSWORD, make_user
from tests.integration.processes import ROOT, environment, start_gunicorn, start_worker, wait_for

pytestmark = pytest.mark.integration
EARNEST = 15_000_00


def _login(http: httpx.Client, user) -> dict:
    resp = http.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def _offer_body() -> dict:
    now = utcnow()
    return {
        "price": 480_000_00,
        "earnest_money": EARNEST,
        "financing": "cash",
        "closing_date": (now + datetime.timedelta(days=30)).date().isoformat(),
        "expires_at": (now + datetime.timedelta(days=3)).isoformat(),
        "message": "Cash, quick close.",
    }


def _escrow(http: httpx.Client, headers: dict, escrow_id: str) -> dict:
    resp = http.get(f"/v1/escrows/{escrow_id}", headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _until(http, headers, escrow_id, ready, procs, what: str, timeout: float = 30) -> dict:
    """Poll the escrow until ``ready(escrow)``; the processes' output when it does not come."""
    seen: dict = {}

    def check() -> bool:
        seen.update(_escrow(http, headers, escrow_id))
        return bool(ready(seen))

    try:
        wait_for(check, timeout=timeout, interval=0.2, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: {seen}\n" + "\n".join(p.output()[-3000:] for p in procs)) from None
    return dict(seen)


def _deposit(escrow: dict) -> dict | None:
    return next((p for p in escrow["payments"] if p["kind"] == "deposit"), None)


def test_an_offer_is_accepted_funded_released_and_paid_out_by_real_processes(live_env, live_db, logs, procs):
    env = {**live_env, "PAYMENTS_PROVIDER": "sandbox"}
    seller, buyer = make_user(role="seller"), make_user(role="buyer")
    listing = Property.create(
        owner=seller.id,
        standard_status="Active",
        property_type="Residential",
        list_price=495_000_00,
        original_list_price=495_000_00,
        city="Springfield",
        unparsed_address="3 Live Oak Court",
    )
    web, base = start_gunicorn(env, logs)
    procs.append(web)
    procs.append(start_worker(env, logs, queues="money,notify", name="money"))

    with httpx.Client(base_url=base, timeout=10) as http:
        seller_headers, buyer_headers = _login(http, seller), _login(http, buyer)

        # The offer, with an Idempotency-Key: the repeat is answered from the stored response.
        keyed = {**buyer_headers, "Idempotency-Key": "live-offer-1"}
        body = _offer_body()
        made = http.post(f"/v1/properties/{listing.id}/offers", headers=keyed, json=body)
        assert made.status_code == 201, made.text
        again = http.post(f"/v1/properties/{listing.id}/offers", headers=keyed, json=body)
        assert (again.status_code, again.json()) == (201, made.json())
        assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in made.headers
        offer_id = made.json()["id"]

        accepted = http.post(f"/v1/offers/{offer_id}/accept", headers=seller_headers, json={})
        assert accepted.status_code == 200, accepted.text
        [summary] = http.get("/v1/escrows", headers=buyer_headers).json()["items"]
        escrow_id = summary["id"]
        assert summary["status"] == "awaiting_deposit" and summary["amount"] == EARNEST

        # The worker asks the sandbox for the deposit's PaymentIntent; its client secret is the buyer's to see.
        escrow = _until(
            http,
            buyer_headers,
            escrow_id,
            lambda e: (_deposit(e) or {}).get("client_secret"),
            procs,
            "the deposit's client secret",
        )
        deposit = _deposit(escrow)
        assert "_secret_" in deposit["client_secret"] and deposit["amount"] == EARNEST
        assert "client_secret" not in _deposit(_escrow(http, seller_headers, escrow_id))

        # The buyer pays; the CLI delivers the sandbox's signed webhook to the running API.
        command = ["payments", "sandbox-event", deposit["provider_ref"], "--outcome", "succeeded", "--api", base]
        cli = subprocess.run(
            [sys.executable, "-m", "ops.cli", *command],
            check=False,
            cwd=ROOT,
            env=environment(env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert cli.stdout.startswith("200 ") and '"duplicate":false' in cli.stdout.replace(" ", ""), cli.stdout
        _until(http, buyer_headers, escrow_id, lambda e: e["status"] == "funded", procs, "the escrow to be funded")

        # Both sides instruct the release; the second starts the settlement job.
        first = http.post(f"/v1/escrows/{escrow_id}/instructions", headers=buyer_headers, json={"action": "release"})
        assert first.status_code == 200, first.text
        second = http.post(f"/v1/escrows/{escrow_id}/instructions", headers=seller_headers, json={"action": "release"})
        assert second.status_code == 202, second.text
        assert second.headers["location"].startswith("/v1/jobs/")

        done = _until(
            http,
            seller_headers,
            escrow_id,
            lambda e: (
                e["status"] == "released"
                and any(p["kind"] == "payout" and p["status"] == "succeeded" for p in e["payments"])
            ),
            procs,
            "the release and its payout",
        )
        job = http.get(second.headers["location"], headers=seller_headers).json()
        assert job["status"] == "succeeded", job

    assert done["held"] == 0
    [payout] = [p for p in done["payments"] if p["kind"] == "payout"]
    assert (payout["amount"], payout["recipient_id"]) == (EARNEST, str(seller.id))
    # The ledger behind it: the deposit held, released to the seller, and one payout posted.
    entries = sorted((e["kind"], e["state"], e["amount"]) for e in done["ledger_entries"])
    assert entries == [
        ("deposit", "posted", EARNEST),
        ("provider_payment", "pending", EARNEST),
        ("provider_payment", "post_pending", EARNEST),
        ("release_to_seller", "posted", EARNEST),
    ], done["ledger_entries"]
