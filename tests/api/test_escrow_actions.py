"""What the parties and admins do to an escrow: who may (403), when (409), what it starts (the settlement
job, once), and what the history and the audit log keep."""

from __future__ import annotations

import pytest

from models.accounts import User
from models.audit import AuditEntry
from models.escrow_actions import SETTLE_KIND
from models.escrows import Escrow
from models.jobs import Job
from models.offers import Offer
from models.properties import Property
from tests.api.conftest import assert_problem
from tests.escrow_deals import EARNEST, fund, make_deal


@pytest.fixture
def deal():
    return make_deal()


def post(client, headers, deal, action: str, body=None):
    return client.simulate_post(f"/v1/escrows/{deal.escrow.id}/{action}", headers=headers, json=body)


def settle_jobs(deal) -> list[Job]:
    return list(Job.select().where((Job.kind == SETTLE_KIND) & (Job.input["escrow_id"] == str(deal.escrow.id))))


def submitted_settlements(jobs, deal) -> list[str]:
    """The settlement jobs handed to the queue (notifications' delivery jobs go there too)."""
    ids = {str(job.id) for job in settle_jobs(deal)}
    return [job_id for job_id in jobs.submitted if job_id in ids]


def history(deal) -> list[tuple]:
    from models.escrows import history_of

    return [(e.action, e.to_status, str(e.actor_id) if e.actor_id else None) for e in history_of(deal.escrow.id)]


# --- contingencies -----------------------------------------------------------------------------


def test_the_buyer_removes_contingencies_one_by_one_and_the_last_makes_the_deposit_hard(client, auth_headers, deal):
    resp = post(client, auth_headers(deal.buyer_agent), deal, "contingencies/inspection/remove")
    assert resp.status_code == 200, resp.text
    assert {c["kind"]: c["status"] for c in resp.json["contingencies"]} == {
        "inspection": "removed",
        "financing": "open",
    }
    assert resp.json["hard_at"] is None
    resp = post(client, auth_headers(deal.buyer), deal, "contingencies/financing/remove")
    assert resp.status_code == 200, resp.text
    assert resp.json["hard_at"] is not None
    removed = {c["kind"]: c["closed_by"] for c in resp.json["contingencies"]}
    assert removed == {"inspection": str(deal.buyer_agent.id), "financing": str(deal.buyer.id)}
    assert [e["action"] for e in resp.json["history"]][-3:] == [
        "contingency_removed",
        "contingency_removed",
        "deposit_hard",
    ]
    again = post(client, auth_headers(deal.buyer), deal, "contingencies/financing/remove")
    assert_problem(again, 409)
    audited = AuditEntry.select().where(
        (AuditEntry.action == "escrow.contingency_removed") & (AuditEntry.target_id == str(deal.escrow.id))
    )
    assert audited.count() == 2


@pytest.mark.parametrize("who", ["seller", "list_agent"])
def test_the_listing_side_may_not_remove_a_contingency(client, auth_headers, deal, who):
    resp = post(client, auth_headers(getattr(deal, who)), deal, "contingencies/inspection/remove")
    assert_problem(resp, 403)
    assert deal.reload().hard_at is None


def test_a_contingency_the_escrow_does_not_have_is_404(client, auth_headers, deal):
    assert_problem(post(client, auth_headers(deal.buyer), deal, "contingencies/appraisal/remove"), 404)
    assert_problem(post(client, auth_headers(deal.buyer), deal, "contingencies/roof/remove"), 404)


def test_admins_see_escrows_but_do_not_act_as_a_party(client, auth_headers, deal, admin):
    fund(deal)
    assert_problem(post(client, auth_headers(admin), deal, "contingencies/inspection/remove"), 403)
    assert_problem(post(client, auth_headers(admin), deal, "instructions", {"action": "release"}), 403)
    assert_problem(post(client, auth_headers(admin), deal, "disputes", {"reason": "curious"}), 403)
    assert deal.reload().status == "funded"


# --- cancel --------------------------------------------------------------------------------------


def test_cancelling_before_the_deposit_ends_the_escrow_and_revives_the_backups(client, auth_headers):
    deal = make_deal(backup_buyers=1)
    resp = post(client, auth_headers(deal.buyer), deal, "cancel", {"reason": "found another house"})
    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "cancelled"
    assert "location" not in resp.headers
    assert resp.json["history"][-1]["reason"] == "found another house"
    assert resp.json["history"][-1]["actor_id"] == str(deal.buyer.id)
    assert Property.get_by_id(deal.listing.id).standard_status == "Active"
    assert [Offer.get_by_id(b.id).status for b in deal.backups] == ["submitted"]
    assert settle_jobs(deal) == []


def test_cancelling_a_funded_escrow_with_an_open_contingency_refunds_in_full(client, auth_headers, deal, jobs):
    fund(deal)
    resp = post(client, auth_headers(deal.buyer), deal, "cancel")
    assert resp.status_code == 202, resp.text
    [job] = settle_jobs(deal)
    assert resp.headers["location"] == f"/v1/jobs/{job.id}"
    assert submitted_settlements(jobs, deal) == [str(job.id)]
    assert resp.json["settlement"] == "refund" and resp.json["status"] == "funded"
    # The buyer who started it follows the job; the other side does not own it.
    assert client.simulate_get(f"/v1/jobs/{job.id}", headers=auth_headers(deal.buyer)).status_code == 200
    assert_problem(client.simulate_get(f"/v1/jobs/{job.id}", headers=auth_headers(deal.seller)), 404)


def test_a_hard_deposit_cannot_be_cancelled(client, auth_headers, deal):
    fund(deal)
    for kind in ("inspection", "financing"):
        assert post(client, auth_headers(deal.buyer), deal, f"contingencies/{kind}/remove").status_code == 200
    body = assert_problem(post(client, auth_headers(deal.buyer), deal, "cancel"), 409)
    assert "hard" in body["detail"]
    assert settle_jobs(deal) == [] and deal.reload().settlement is None


@pytest.mark.parametrize("who", ["seller", "list_agent"])
def test_only_the_buyers_side_cancels(client, auth_headers, deal, who):
    assert_problem(post(client, auth_headers(getattr(deal, who)), deal, "cancel"), 403)
    assert deal.reload().status == "awaiting_deposit"


def test_a_cancelled_escrow_cannot_be_cancelled_again(client, auth_headers, deal):
    assert post(client, auth_headers(deal.buyer), deal, "cancel").status_code == 200
    assert_problem(post(client, auth_headers(deal.buyer), deal, "cancel"), 409)


# --- instructions -------------------------------------------------------------------------------


def test_both_sides_instruct_a_release_and_the_settlement_starts_once(client, auth_headers, deal, jobs, services):
    fund(deal)
    first = post(client, auth_headers(deal.list_agent), deal, "instructions", {"action": "release"})
    assert first.status_code == 200, first.text
    assert first.json["settlement"] is None
    assert [(i["action"], i["side"]) for i in first.json["instructions"]] == [("release", "listing")]
    # The same side again (another of its people): nothing new.
    repeat = post(client, auth_headers(deal.seller), deal, "instructions", {"action": "release"})
    assert repeat.status_code == 200 and len(repeat.json["instructions"]) == 1
    assert settle_jobs(deal) == []
    told = [e["type"] for e in services.events.history(f"user:{deal.buyer.id}") if e["type"] == "escrow.instructed"]
    assert told == ["escrow.instructed"]
    audited = AuditEntry.select().where(
        (AuditEntry.action == "escrow.instructed") & (AuditEntry.target_id == str(deal.escrow.id))
    )
    assert audited.count() == 1

    second = post(client, auth_headers(deal.buyer), deal, "instructions", {"action": "release"})
    assert second.status_code == 202, second.text
    [job] = settle_jobs(deal)
    assert second.headers["location"] == f"/v1/jobs/{job.id}"
    assert str(job.owner_id) == str(deal.buyer.id)
    assert second.json["settlement"] == "release"
    assert submitted_settlements(jobs, deal) == [str(job.id)]

    # Once the settlement started nothing more is taken, and no second job appears.
    again = post(client, auth_headers(deal.buyer_agent), deal, "instructions", {"action": "release"})
    assert_problem(again, 409)
    assert_problem(post(client, auth_headers(deal.seller), deal, "disputes", {"reason": "too late"}), 409)
    assert_problem(post(client, auth_headers(deal.buyer), deal, "cancel"), 409)
    assert_problem(post(client, auth_headers(deal.buyer), deal, "contingencies/inspection/remove"), 409)
    assert len(settle_jobs(deal)) == 1 and submitted_settlements(jobs, deal) == [str(job.id)]
    actions = [a for a, _, _ in history(deal)]
    assert actions.count("release_instructed") == 2


def test_different_instructions_start_nothing(client, auth_headers, deal):
    fund(deal)
    assert post(client, auth_headers(deal.seller), deal, "instructions", {"action": "release"}).status_code == 200
    resp = post(client, auth_headers(deal.buyer), deal, "instructions", {"action": "refund"})
    assert resp.status_code == 200, resp.text
    assert resp.json["settlement"] is None and settle_jobs(deal) == []


def test_a_side_that_changes_its_mind_replaces_its_instruction(client, auth_headers, deal):
    fund(deal)
    assert post(client, auth_headers(deal.seller), deal, "instructions", {"action": "release"}).status_code == 200
    changed = post(client, auth_headers(deal.seller), deal, "instructions", {"action": "refund"})
    assert changed.status_code == 200, changed.text
    assert [(i["action"], i["side"]) for i in changed.json["instructions"]] == [("refund", "listing")]
    assert "refund_instructed" in [a for a, _, _ in history(deal)]
    # The buyer's own release now meets no release from the other side; a refund does.
    assert post(client, auth_headers(deal.buyer), deal, "instructions", {"action": "release"}).status_code == 200
    assert settle_jobs(deal) == []
    refund = post(client, auth_headers(deal.buyer), deal, "instructions", {"action": "refund"})
    assert refund.status_code == 202 and refund.json["settlement"] == "refund"


def test_instructions_need_a_funded_escrow(client, auth_headers, deal):
    assert_problem(post(client, auth_headers(deal.seller), deal, "instructions", {"action": "release"}), 409)
    assert deal.reload().status == "awaiting_deposit"


def test_instructions_are_release_or_refund(client, auth_headers, deal):
    fund(deal)
    resp = post(client, auth_headers(deal.seller), deal, "instructions", {"action": "keep"})
    assert_problem(resp, 422, field="body.action")
    assert_problem(post(client, auth_headers(deal.seller), deal, "instructions", {}), 422, field="body.action")


# --- disputes and resolutions -----------------------------------------------------------------


def test_either_party_disputes_once_and_an_admin_splits_what_is_held(client, auth_headers, deal, admin, jobs):
    fund(deal)
    resp = post(client, auth_headers(deal.seller), deal, "disputes", {"reason": "  the buyer walked away  "})
    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "disputed"
    assert resp.json["history"][-1]["reason"] == "the buyer walked away"
    assert_problem(post(client, auth_headers(deal.buyer), deal, "disputes", {"reason": "no, I did not"}), 409)

    url = f"/v1/admin/escrows/{deal.escrow.id}/resolution"
    short = {"buyer_amount": 4_000_00, "seller_amount": 5_000_00, "reason": "half each"}
    assert_problem(client.simulate_post(url, headers=auth_headers(admin), json=short), 422, field="body.buyer_amount")
    assert deal.reload().settlement is None
    negative = {"buyer_amount": -1, "seller_amount": EARNEST + 1, "reason": "x"}
    assert_problem(client.simulate_post(url, headers=auth_headers(admin), json=negative), 422)
    assert_problem(client.simulate_post(url, headers=auth_headers(admin), json=dict(short, reason=" ")), 422)

    split = {"buyer_amount": 6_000_00, "seller_amount": 4_000_00, "reason": "inspection found damage"}
    done = client.simulate_post(url, headers=auth_headers(admin), json=split)
    assert done.status_code == 202, done.text
    [job] = settle_jobs(deal)
    assert done.headers["location"] == f"/v1/jobs/{job.id}" and str(job.owner_id) == str(admin.id)
    assert submitted_settlements(jobs, deal) == [str(job.id)]
    assert done.json["settlement"] == "split"
    assert done.json["split"] == {"buyer": 6_000_00, "seller": 4_000_00}
    event = done.json["history"][-1]
    assert (event["action"], event["actor_id"], event["reason"]) == (
        "resolution",
        str(admin.id),
        "inspection found damage",
    )
    audited = AuditEntry.get((AuditEntry.action == "escrow.resolution") & (AuditEntry.target_id == str(deal.escrow.id)))
    assert audited.after["buyer"] == 6_000_00 and audited.after["reason"] == "inspection found damage"
    assert_problem(client.simulate_post(url, headers=auth_headers(admin), json=split), 409)
    assert len(settle_jobs(deal)) == 1


def test_only_a_disputed_escrow_is_resolved(client, auth_headers, deal, admin):
    fund(deal)
    url = f"/v1/admin/escrows/{deal.escrow.id}/resolution"
    body = {"buyer_amount": EARNEST, "seller_amount": 0, "reason": "no dispute"}
    assert_problem(client.simulate_post(url, headers=auth_headers(admin), json=body), 409)
    assert_problem(
        client.simulate_post(f"/v1/admin/escrows/{deal.offer.id}/resolution", headers=auth_headers(admin), json=body),
        404,
    )


def test_an_unfunded_escrow_cannot_be_disputed(client, auth_headers, deal):
    assert_problem(post(client, auth_headers(deal.buyer), deal, "disputes", {"reason": "no deposit yet"}), 409)
    assert_problem(post(client, auth_headers(deal.buyer), deal, "disputes", {}), 422, field="body.reason")
    assert Escrow.get_by_id(deal.escrow.id).status == "awaiting_deposit"


def test_a_listing_under_escrow_keeps_its_status_until_the_escrow_ends(client, auth_headers):
    deal = make_deal()
    listing = Property.get_by_id(deal.escrow.property_id)
    assert listing.standard_status == "ActiveUnderContract"
    owner = auth_headers(User.get_by_id(listing.owner_id))
    etag = {"If-Match": f'"v{listing.version}"'}
    patched = client.simulate_patch(
        f"/v1/properties/{listing.id}", json={"standard_status": "Active"}, headers={**owner, **etag}
    )
    assert patched.status_code == 409 and patched.json["escrow_id"] == str(deal.escrow.id), patched.text
    withdrawn = client.simulate_delete(f"/v1/properties/{listing.id}", headers=owner)
    assert withdrawn.status_code == 409, withdrawn.text
    assert Property.get_by_id(listing.id).standard_status == "ActiveUnderContract"
    # Other fields can still change.
    priced = client.simulate_patch(
        f"/v1/properties/{listing.id}", json={"public_remarks": "Under contract"}, headers={**owner, **etag}
    )
    assert priced.status_code == 200, priced.text
