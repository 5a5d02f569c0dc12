"""A full search rebuild on committed data: chunks loaded and indexes built in two sessions at once."""

from __future__ import annotations

import time

from models.db import db
from models.properties import Property
from models.search.index import LIVE_TABLE, read_state
from models.search.rebuild import SearchRebuild
from tests.search_listings import make_listing, make_owner, update_listing

LISTED = ("ComingSoon", "Active", "ActiveUnderContract", "Pending", "Closed")


def _index() -> set:
    rows = db.execute_sql(f"SELECT id, version, list_price FROM {LIVE_TABLE}").fetchall()  # noqa: S608 - a constant table name
    return {(str(row[0]), row[1], row[2]) for row in rows}


def _listings() -> set:
    return {(str(p.id), p.version, p.list_price) for p in Property.select().where(Property.standard_status.in_(LISTED))}


def test_a_rebuild_in_two_sessions_copies_every_listing_once_and_keeps_edits_made_meanwhile(live_db):
    with live_db.connection_context():
        owner = make_owner()
        listings = [make_listing(owner, list_price=(i + 1) * 1_000_000) for i in range(60)]
        make_listing(owner, standard_status="Withdrawn")
        generation = read_state()["generation"]
        logged: list[str] = []
        rebuild = SearchRebuild(pages_per_chunk=1, sessions=2, log=logged.append)
        table = rebuild.start()
        pages = rebuild.heap_pages()
        reported: list[tuple[int, int]] = []

        def while_loading(done, total):  # between two of this session's chunks
            if not reported:
                with db.atomic():
                    update_listing(listings[0], list_price=100)  # marked dirty, as the listings API does
                time.sleep(0.5)  # the other session takes chunks meanwhile, however busy the machine
            reported.append((done, total))

        inserted = rebuild.load(progress=while_loading)
        built: list[tuple[int, int]] = []
        rebuild.build_indexes(progress=lambda done, total: built.append((done, total)))
        rebuild.catch_up()
        result = rebuild.swap()

        assert pages > 2 and reported and reported[-1][0] <= reported[-1][1] == pages
        assert len(reported) < pages, reported  # progress comes from this session's chunks: the other copied some
        assert 60 <= inserted <= 61  # the listing edited mid-load: once or twice
        assert result["generation"] == generation + 1 and result["rows"] == 60
        assert _index() == _listings()
        assert next(row for row in _index() if row[0] == str(listings[0].id))[2] == 100
        indexes = db.execute_sql("SELECT count(*) FROM pg_indexes WHERE tablename = %s", (LIVE_TABLE,)).fetchone()[0]
        assert indexes == 12 and built[-1] == (12, 12)
        built_names = {line.split(f"{table}_", 1)[1].split(" ")[0] for line in logged if "CREATE INDEX" in line}
        assert len(built_names) == 11 and {"tsv", "tsv_a", "tsv_ab", "features"} <= built_names
