"""An offer's documents: its parties may download them; nobody else learns they exist."""

from __future__ import annotations

import pytest

from tests.api.conftest import assert_problem
from tests.api.offers_common import make_listing, offered
from tests.conftest import make_settings
from tests.factories import make_user
from tests.services.backends import backend_overrides, pdf
from tests.services.uploads_api import download, uploaded


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(database, tmp_path, redis_prefix=redis_prefix, **backend_overrides("local"))


def test_the_parties_of_an_offer_download_its_documents(client, jobs, auth_headers, admin):
    owner, agent, buyer = make_user(role="seller"), make_user(role="agent"), make_user()
    listing = make_listing(owner, agent=agent)
    letter = uploaded(
        client, jobs, auth_headers(buyer), pdf(b"pre-approval"), purpose="document", filename="preapproval.pdf"
    )
    assert letter["status"] == "clean"
    stranger, other_owner = make_user(), make_user(role="seller")
    make_listing(other_owner, address="9 Other Road")
    # Before the offer, only its uploader (and admins) may see it.
    assert_problem(client.simulate_get(f"/v1/uploads/{letter['id']}/download", headers=auth_headers(owner)), 404)

    offered(client, auth_headers(buyer), listing, documents=[letter["id"]])
    for party in (owner, agent, buyer, admin):
        assert download(client, letter["id"], auth_headers(party)) == (302, pdf(b"pre-approval"))
    for outsider in (stranger, other_owner):
        assert_problem(client.simulate_get(f"/v1/uploads/{letter['id']}/download", headers=auth_headers(outsider)), 404)
