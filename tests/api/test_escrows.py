"""Reading escrows: who sees one (the parties and admins; anyone else 404), what it shows, the lists,
the client secret (the buyer's side only, never in an event), and the admins' payments to act on."""

from __future__ import annotations

import uuid

import pytest

from models.jobs import Job
from models.ledger import DEBITS_MUST_NOT_EXCEED_CREDITS, TransferSpec, open_account, transfer
from models.payments import Payment
from tests.api.conftest import assert_problem
from tests.escrow_deals import EARNEST, deposit_payment, fund, make_deal
from tests.factories import make_user

# Every escrow endpoint, with a body each would accept from a party.
ENDPOINTS = [
    ("GET", "/v1/escrows/{id}", None),
    ("POST", "/v1/escrows/{id}/contingencies/inspection/remove", None),
    ("POST", "/v1/escrows/{id}/cancel", {"reason": "changed my mind"}),
    ("POST", "/v1/escrows/{id}/instructions", {"action": "release"}),
    ("POST", "/v1/escrows/{id}/disputes", {"reason": "the roof leaks"}),
]


def call(client, headers, method: str, path: str, body):
    if method == "GET":
        return client.simulate_get(path, headers=headers)
    return client.simulate_post(path, headers=headers, json=body)


@pytest.fixture
def deal():
    return make_deal()


def test_each_party_reads_the_escrow_with_its_deadlines_and_history(client, auth_headers, deal):
    for person, side in zip(deal.people(), ("buyer", "buyer", "listing", "listing"), strict=True):
        resp = client.simulate_get(f"/v1/escrows/{deal.escrow.id}", headers=auth_headers(person))
        assert resp.status_code == 200, resp.text
        view = resp.json
        assert view["my_side"] == side
    assert view["status"] == "awaiting_deposit"
    assert view["amount"] == EARNEST and view["held"] == 0 and view["currency"] == "USD"
    assert view["offer_id"] == str(deal.offer.id)
    assert view["parties"] == {
        "buyer_id": str(deal.buyer.id),
        "buyer_agent_id": str(deal.buyer_agent.id),
        "seller_id": str(deal.seller.id),
        "list_agent_id": str(deal.list_agent.id),
    }
    assert view["deposit_due_at"] == deal.escrow.deposit_due_at.isoformat()
    assert [(c["kind"], c["status"]) for c in view["contingencies"]] == [("financing", "open"), ("inspection", "open")]
    assert all(c["ends_at"] for c in view["contingencies"])
    assert view["hard_at"] is None and view["settlement"] is None
    assert [(e["action"], e["to"], e["actor_id"]) for e in view["history"]] == [
        ("opened", "awaiting_deposit", str(deal.seller.id))
    ]
    assert view["payments"] == [] and view["ledger_entries"] == []


def test_an_admin_reads_any_escrow(client, auth_headers, deal, admin):
    resp = client.simulate_get(f"/v1/escrows/{deal.escrow.id}", headers=auth_headers(admin))
    assert resp.status_code == 200, resp.text
    assert resp.json["my_side"] is None


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_someone_outside_the_deal_gets_404_from_every_endpoint(client, auth_headers, deal, method, path, body):
    fund(deal)
    outsider = make_user(role="agent")
    before = deal.reload()
    resp = call(client, auth_headers(outsider), method, path.format(id=deal.escrow.id), body)
    assert_problem(resp, 404)
    # The same answer as for an escrow that does not exist at all.
    missing = call(client, auth_headers(outsider), method, path.format(id=uuid.uuid4()), body)
    assert_problem(missing, 404)
    assert resp.json["detail"] == missing.json["detail"]
    after = deal.reload()
    assert (after.status, after.version, after.settlement) == (before.status, before.version, before.settlement)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/admin/escrows", None),
        ("POST", "/v1/admin/escrows/{id}/resolution", {"buyer_amount": 1, "seller_amount": 1, "reason": "x"}),
        ("GET", "/v1/admin/payments?status=failed", None),
    ],
)
def test_admin_endpoints_refuse_the_parties(client, auth_headers, deal, method, path, body):
    resp = call(client, auth_headers(deal.seller), method, path.format(id=deal.escrow.id), body)
    assert_problem(resp, 403)


def test_the_client_secret_is_for_the_buyers_side_only(client, auth_headers, deal, admin):
    deposit_payment(deal, secret="pi_test_1_secret_xyz")
    for person in (deal.buyer, deal.buyer_agent):
        payments = client.simulate_get(f"/v1/escrows/{deal.escrow.id}", headers=auth_headers(person)).json["payments"]
        assert payments[0]["client_secret"] == "pi_test_1_secret_xyz"
        assert payments[0]["kind"] == "deposit" and payments[0]["amount"] == EARNEST
    for person in (deal.seller, deal.list_agent, admin):
        resp = client.simulate_get(f"/v1/escrows/{deal.escrow.id}", headers=auth_headers(person))
        assert resp.status_code == 200
        assert "pi_test_1_secret_xyz" not in resp.text
        assert resp.json["payments"][0]["provider_ref"] == f"pi_{deal.escrow.id.hex}"


def test_escrow_events_reach_every_party_without_the_client_secret(client, auth_headers, deal, services):
    fund(deal)
    deposit_payment(deal, secret="pi_test_1_secret_ev", status="succeeded")
    resp = client.simulate_post(
        f"/v1/escrows/{deal.escrow.id}/disputes", headers=auth_headers(deal.buyer), json={"reason": "roof"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json["payments"][0]["client_secret"] == "pi_test_1_secret_ev"  # the buyer's own answer
    for person in deal.people():
        events = [e for e in services.events.history(f"user:{person.id}") if e["type"].startswith("escrow.")]
        assert [e["type"] for e in events] == ["escrow.disputed"], person
        assert events[0]["data"]["status"] == "disputed"
        assert events[0]["data"]["my_side"] is None
        assert "client_secret" not in events[0]["data"]["payments"][0]
        assert "pi_test_1_secret_ev" not in str(events)


def test_my_escrows_lists_those_i_am_a_party_of_on_any_side(client, auth_headers, deal):
    other = make_deal()
    for person in deal.people():
        resp = client.simulate_get("/v1/escrows", headers=auth_headers(person))
        assert resp.status_code == 200, resp.text
        assert [item["id"] for item in resp.json["items"]] == [str(deal.escrow.id)]
    assert client.simulate_get("/v1/escrows", headers=auth_headers(make_user())).json["items"] == []
    funded = client.simulate_get("/v1/escrows?status=funded", headers=auth_headers(other.buyer))
    assert funded.json["items"] == []


def test_lists_page_with_cursors(client, auth_headers, admin):
    deals = [make_deal() for _ in range(3)]
    seen, cursor = [], None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        resp = client.simulate_get(f"/v1/admin/escrows?{query}", headers=auth_headers(admin))
        assert resp.status_code == 200, resp.text
        seen += [item["id"] for item in resp.json["items"]]
        cursor = resp.json["next_cursor"]
        if cursor is None:
            break
    assert set(seen) >= {str(d.escrow.id) for d in deals}
    assert len(seen) == len(set(seen))
    assert_problem(client.simulate_get("/v1/escrows?cursor=forged", headers=auth_headers(admin)), 422)
    assert_problem(client.simulate_get("/v1/admin/escrows?status=lost", headers=auth_headers(admin)), 422)


def test_admins_filter_escrows_by_status(client, auth_headers, admin, deal):
    disputed = make_deal()
    fund(disputed)
    client.simulate_post(
        f"/v1/escrows/{disputed.escrow.id}/disputes", headers=auth_headers(disputed.seller), json={"reason": "late"}
    )
    resp = client.simulate_get("/v1/admin/escrows?status=disputed", headers=auth_headers(admin))
    ids = [item["id"] for item in resp.json["items"]]
    assert str(disputed.escrow.id) in ids and str(deal.escrow.id) not in ids


def test_admins_see_failed_payments_to_act_on_without_secrets(client, auth_headers, admin, deal):
    failed = deposit_payment(deal, secret="pi_secret_failed", status="failed")
    Payment.update(failure_code="card_declined", failure_message="Your card was declined.").where(
        Payment.id == failed.id
    ).execute()
    other = make_deal()
    deposit_payment(other, status="succeeded")
    resp = client.simulate_get("/v1/admin/payments?status=failed", headers=auth_headers(admin))
    assert resp.status_code == 200, resp.text
    [item] = [item for item in resp.json["items"] if item["escrow_id"] in (str(deal.escrow.id), str(other.escrow.id))]
    assert item["id"] == str(failed.id) and item["failure_code"] == "card_declined"
    assert "pi_secret_failed" not in resp.text
    assert_problem(client.simulate_get("/v1/admin/payments?status=lost", headers=auth_headers(admin)), 422)


def test_no_job_is_owned_by_a_reader(client, auth_headers, deal):
    # Reading changes nothing: no job, no history entry.
    before = Job.select().count()
    client.simulate_get(f"/v1/escrows/{deal.escrow.id}", headers=auth_headers(deal.buyer))
    assert Job.select().count() == before


def test_the_ledger_entries_that_back_the_escrow_are_shown(client, auth_headers, deal):
    escrow = fund(deal)
    open_account("provider:clearing:USD", kind="provider_clearing", currency="USD")
    open_account(escrow.account_code, kind="escrow", currency="USD", flags=(DEBITS_MUST_NOT_EXCEED_CREDITS,))
    transfer_id = uuid.uuid4()
    transfer(
        TransferSpec(
            id=transfer_id,
            debit="provider:clearing:USD",
            credit=escrow.account_code,
            amount=EARNEST,
            kind="deposit",
            escrow_id=escrow.id,
        )
    )
    entries = client.simulate_get(f"/v1/escrows/{escrow.id}", headers=auth_headers(deal.seller)).json["ledger_entries"]
    assert [(e["id"], e["debit"], e["credit"], e["amount"], e["state"]) for e in entries] == [
        (str(transfer_id), "provider:clearing:USD", f"escrow:{escrow.id}", EARNEST, "posted")
    ]
    other = make_deal()
    assert (
        client.simulate_get(f"/v1/escrows/{other.escrow.id}", headers=auth_headers(other.buyer)).json["ledger_entries"]
        == []
    )
