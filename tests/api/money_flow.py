"""A whole deal through the HTTP API and the real money tasks, for the tests that scan what it leaves behind.

``drive_deal`` walks what a frontend and the provider do: offers (one rejected,
one countered and accepted, one left as a backup and withdrawn), the deposit
collected by its job, completed in the sandbox and reported by a signed webhook
(delivered twice: once as the provider would, once through the admin sandbox
endpoint), a contingency removed, release instructed by both sides and settled
by its job. It returns what a party fetched over REST or the provider signed:
the deposit's client secret and the webhook's ``Stripe-Signature``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.api.offers_common import act, offered, terms
from tests.factories import make_user

WEBHOOK = "/v1/webhooks/stripe"
SANDBOX_EVENTS = "/v1/admin/payments/sandbox/events"


@dataclass
class DealSecrets:
    escrow_id: str
    client_secret: str
    signature: str
    escrow: dict


def _sandbox_completes(services):
    return lambda intent: services.payments.sandbox_event(intent, "succeeded")


def _ok(resp, status: int = 200) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json


def drive_deal(
    client, jobs, services, auth_headers, *, seller_headers, buyer_headers, admin_headers, listing, complete=None
):
    """The deal on ``listing`` from the first offer to the seller's payout; see the module's docstring.

    ``complete(payment_intent) -> (body, Stripe-Signature)`` is the provider finishing the deposit: the
    sandbox's by default (then delivered again through the admin sandbox endpoint), else the webhook is
    delivered twice.
    """
    # A second buyer: one offer rejected, another left live and made a backup by the acceptance, then withdrawn.
    other = auth_headers(make_user(full_name="Olive Other"))
    rejected = offered(client, other, listing, price=395_000_00)
    _ok(act(client, seller_headers, rejected["id"], "reject", {"reason": "Too low for us."}))
    backup = offered(client, other, listing, price=399_000_00)

    # The buyer offers (with an Idempotency-Key, repeated), the seller counters, the buyer accepts the counter.
    keyed = {**buyer_headers, "Idempotency-Key": "first-offer"}
    body = terms(contingencies=[{"kind": "inspection", "days": 10}])
    path = f"/v1/properties/{listing.id}/offers"
    first = _ok(client.simulate_post(path, headers=keyed, json=body), 201)
    replayed = client.simulate_post(path, headers=keyed, json=body)
    assert replayed.headers.get("Idempotent-Replayed") == "true" and _ok(replayed, 201) == first
    counter = _ok(act(client, seller_headers, first["id"], "counter", {"price": 415_000_00}), 201)
    _ok(act(client, buyer_headers, counter["id"], "accept"))
    _ok(act(client, other, backup["id"], "withdraw", {"reason": "We found another house."}))
    jobs.run_pending()  # escrows.collect_deposit (and the notifications' fan-out)

    [summary] = _ok(client.simulate_get("/v1/escrows", headers=buyer_headers))["items"]
    escrow_id = summary["id"]
    escrow = _ok(client.simulate_get(f"/v1/escrows/{escrow_id}", headers=buyer_headers))
    [deposit] = escrow["payments"]
    client_secret = deposit["client_secret"]
    assert client_secret and "_secret_" in client_secret, deposit

    # The buyer's frontend completes the PaymentIntent; the provider tells us by a signed webhook.
    body, signature = (complete or _sandbox_completes(services))(deposit["provider_ref"])
    signed = {"Content-Type": "application/json", "Stripe-Signature": signature}
    assert _ok(client.simulate_post(WEBHOOK, body=body, headers=signed)) == {"received": True, "duplicate": False}
    if complete is None:
        outcome = {"payment_intent": deposit["provider_ref"], "outcome": "succeeded"}
        again = client.simulate_post(SANDBOX_EVENTS, headers=admin_headers, json=outcome)
    else:
        again = client.simulate_post(WEBHOOK, body=body, headers=signed)
    assert _ok(again) == {"received": True, "duplicate": True}
    jobs.run_pending()  # payments.apply_event
    assert _ok(client.simulate_get(f"/v1/escrows/{escrow_id}", headers=seller_headers))["status"] == "funded"

    _ok(client.simulate_post(f"/v1/escrows/{escrow_id}/contingencies/inspection/remove", headers=buyer_headers))
    for headers, status in ((buyer_headers, 200), (seller_headers, 202)):
        release = {"action": "release"}
        _ok(client.simulate_post(f"/v1/escrows/{escrow_id}/instructions", headers=headers, json=release), status)
    jobs.run_pending()  # escrows.settle
    escrow = _ok(client.simulate_get(f"/v1/escrows/{escrow_id}", headers=buyer_headers))
    assert escrow["status"] == "released", escrow["status"]
    payout = [p for p in escrow["payments"] if p["kind"] == "payout"]
    assert [p["status"] for p in payout] == ["succeeded"], escrow["payments"]
    return DealSecrets(escrow_id, client_secret, signature, escrow)
