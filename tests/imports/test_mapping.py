"""The mapping file: its transforms are exact, and every mistake in it is named with its TOML path."""

from __future__ import annotations

import datetime
import decimal
import pathlib
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.imports.mapping import MappingError, parse_mapping
from models.imports.mapping_rules import RowSkipped, object_key
from models.imports.transforms import BadValue, cast, enum_value, json_path, money_cents, storage_reference

EXAMPLE = (pathlib.Path(__file__).parents[2] / "ops" / "import" / "example-mapping.toml").read_text()


# --- money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        (decimal.Decimal("1250000.50"), 125000050),
        (decimal.Decimal("0.1"), 10),
        (decimal.Decimal("12.500"), 1250),  # trailing zeros are still exact cents
        ("349999.99", 34999999),
        (" 42 ", 4200),
        ("-3.5", -350),
        (".75", 75),
        (7, 700),
        (19.99, 1999),
        (None, None),
    ],
)
def test_money_becomes_exact_integer_cents(value, cents):
    assert money_cents(value) == cents


@pytest.mark.parametrize(
    "value",
    [
        "12.345",
        "$100",
        "1,000.00",
        "1e3",
        "ten",
        "",
        "NaN",
        decimal.Decimal("NaN"),
        decimal.Decimal("0.001"),
        0.1 + 0.2,
    ],
)
def test_money_that_is_not_exact_cents_is_refused(value):
    with pytest.raises(BadValue):
        money_cents(value)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_money_written_as_text_round_trips(cents):
    sign = "-" if cents < 0 else ""
    text = f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"
    assert money_cents(text) == cents
    assert money_cents(decimal.Decimal(text)) == cents


# --- casts, enums, JSON paths ----------------------------------------------------------------------


def test_casts_accept_what_postgres_and_json_give_and_refuse_garbage():
    assert cast("int", "42") == 42 and cast("int", decimal.Decimal("3")) == 3 and cast("int", 5.0) == 5
    assert cast("float", "2.5") == 2.5
    assert cast("bool", "t") is True and cast("bool", "no") is False and cast("bool", 1) is True
    assert cast("text", 12) == "12" and cast("text", {"a": "ü"}) == '{"a": "ü"}'
    assert cast("date", "2025-03-01") == datetime.date(2025, 3, 1)
    assert cast("timestamp", "2025-03-01T10:00:00Z") == datetime.datetime(2025, 3, 1, 10, tzinfo=datetime.UTC)
    assert cast("timestamp", "2025-03-01T10:00:00").tzinfo == datetime.UTC  # naive is UTC
    assert cast("uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11") == uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert cast("int", None) is None
    for kind, value in [
        ("int", "4.5"),
        ("int", 4.5),
        ("int", True),
        ("float", "inf"),
        ("bool", "maybe"),
        ("date", "01/03/2025"),
        ("timestamp", "yesterday"),
        ("uuid", "42"),
    ]:
        with pytest.raises(BadValue):
            cast(kind, value)


def test_enum_maps_listed_values_only():
    values = {"for_sale": "Active", "sold": "Closed"}
    assert enum_value(values, "for_sale") == "Active" and enum_value(values, None) is None
    with pytest.raises(BadValue, match="auction"):
        enum_value(values, "auction")


def test_json_paths_read_objects_lists_and_json_text():
    value = {"size": {"sqft": 1850}, "rooms": [{"name": "Küche 🍳"}], "empty": None}
    assert json_path("size.sqft", value) == 1850
    assert json_path("rooms.0.name", value) == "Küche 🍳"
    assert json_path("rooms.5.name", value) is None and json_path("nope.deeper", value) is None
    assert json_path("a", '{"a": [1, 2]}') == [1, 2]
    with pytest.raises(BadValue):
        json_path("a", "{not json")


# --- Storage references ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reference"),
    [
        (
            "https://abc.supabase.co/storage/v1/object/public/listing-photos/u1/front.jpg",
            ("listing-photos", "u1/front.jpg"),
        ),
        ("https://abc.supabase.co/storage/v1/object/sign/docs/a/b.pdf?token=eyJ.x.y", ("docs", "a/b.pdf")),
        ("https://abc.supabase.co/storage/v1/object/authenticated/docs/a.pdf", ("docs", "a.pdf")),
        ("https://files.example.com/storage/v1/render/image/public/avatars/me.png?width=64", ("avatars", "me.png")),
        ("/storage/v1/object/public/avatars/%D1%84%D0%BE%D1%82%D0%BE%202.png", ("avatars", "фото 2.png")),
        ("https://abc.supabase.co/storage/v1/object/avatars/me.png", ("avatars", "me.png")),
        ("avatars/u1/me.png", ("avatars", "u1/me.png")),
        ("https://example.com/photo.jpg", None),
        ("https://abc.supabase.co/rest/v1/listings", None),
        ("mailto:someone@example.com", None),
        ("just-a-name.png", None),
        ("avatars/../secrets/x", None),
        ("", None),
    ],
)
def test_storage_references_are_recognised_and_other_urls_are_not(value, reference):
    assert storage_reference(value) == reference


# --- the mapping file ------------------------------------------------------------------------------


def test_the_example_mapping_is_valid_and_its_steps_run_in_reference_order():
    steps = [step.name for step in parse_mapping(EXAMPLE).steps()]
    assert steps[:2] == ["storage.buckets", "storage.objects"]
    assert steps.index("public.profiles") < steps.index("public.listings") < steps.index("public.favorites")
    assert steps.index("public.conversations") < steps.index("public.messages")


def problems_of(text: str) -> list[str]:
    with pytest.raises(MappingError) as caught:
        parse_mapping(text)
    return [str(problem) for problem in caught.value.problems]


def test_every_mistake_is_named_with_its_toml_path():
    text = """
version = 1
[buckets]
avatars = "selfie"
[tables."public.listings"]
target = "properties"
colour = "red"
[tables."public.listings".columns]
owner_id = { field = "owner", ref = "public.nowhere" }
price = { field = "list_price", transform = "dollars" }
city = { field = "town" }
status = { field = "standard_status", transform = "enum" }
photos = "photos"
[tables."public.pets"]
target = "pets"
[tables."nonsense"]
target = "favorites"
"""
    problems = problems_of(text)
    expected = [
        "buckets.avatars: unknown purpose",
        'tables."public.listings".colour: unknown setting',
        'tables."public.listings".columns.owner_id.ref: public.nowhere is neither auth.users nor a table',
        "tables.\"public.listings\".columns.price.transform: unknown transform 'dollars'",
        "tables.\"public.listings\".columns.city.field: properties has no field 'town'",
        'tables."public.listings".columns.status.values: an enum needs values',
        'tables."public.listings".columns.photos.transform: photos holds files',
        'tables."public.listings": properties needs field city',
        "tables.\"public.pets\".target: unknown target 'pets'",
        'tables."nonsense": a source table is named schema.table',
    ]
    for start in expected:
        assert any(problem.startswith(start) for problem in problems), (start, problems)


def test_references_must_lead_to_the_right_kind_of_table():
    text = """
[tables."public.favorites"]
target = "favorites"
key = ["user_id", "listing_id"]
[tables."public.favorites".columns]
user_id = { field = "user", ref = "public.favorites" }
listing_id = { field = "property", transform = "uuid" }
"""
    problems = problems_of(text)
    assert any("columns.user_id.ref: must refer to a table imported as auth.users or profiles" in p for p in problems)
    assert any('columns.listing_id.ref: property is a reference: give ref = "<source table>"' in p for p in problems)


def test_broken_toml_is_one_problem_not_a_crash():
    assert problems_of("[tables.\n")[0].startswith("not valid TOML")


def test_a_column_neither_mapped_nor_ignored_is_listed_by_name():
    step = next(step for step in parse_mapping(EXAMPLE).steps() if step.name == "public.messages")
    columns = ["id", "conversation_id", "sender_id", "content", "attachment_url", "created_at", "read_at"]
    assert step.check_columns(columns) == []
    problems = step.check_columns([*columns, "is_edited", "reactions"])
    assert problems == ['tables."public.messages": columns neither mapped nor ignored: is_edited, reactions']
    missing = step.check_columns([c for c in columns if c != "content"])
    assert missing == ['tables."public.messages": columns named in the mapping that the source lacks: content']


def test_a_row_maps_through_the_import_map_or_is_skipped_with_its_reason():
    table = parse_mapping(EXAMPLE).tables["public.listings"]
    known = {("public.profiles", "owner-1"): "hearth-user-1"}
    known[("storage.objects", object_key("listing-photos", "owner-1/a.png"))] = "upload-a"

    def resolve(source_table, source_key):
        return known.get((source_table, source_key))

    row = {
        "id": "L1",
        "owner_id": "owner-1",
        "description": "Maison 🏡",
        "price": decimal.Decimal("500000.00"),
        "sold_price": None,
        "sold_on": None,
        "status": "coming_soon",
        "kind": None,
        "beds": 2,
        "baths": 1,
        "street": "Rue de Rivoli",
        "city": "Paris",
        "state": None,
        "zip": 75001,
        "lat": None,
        "lng": None,
        "details": {"sqft": 900, "amenities": ["balcon"]},
        "hoa_fee": "250",
        "photos": ["listing-photos/owner-1/a.png", "listing-photos/owner-1/gone.png"],
        "created_at": "2024-05-01T12:00:00+02:00",
    }
    mapped = table.map_row(row, resolve)
    fields = mapped.fields
    assert fields["owner"] == "hearth-user-1" and fields["list_price"] == 50000000
    assert fields["standard_status"] == "ComingSoon" and fields["property_type"] == "Residential"  # the default
    assert fields["postal_code"] == "75001" and fields["association_fee"] == 25000
    assert fields["currency"] == "USD" and fields["association_fee_frequency"] == "Monthly"  # constants
    assert fields["living_area"] == 900 and fields["year_built"] is None and fields["features"] == ["balcon"]
    assert fields["photos"] == ["upload-a"]
    assert mapped.notes == [("missing-file", "column photos: listing-photos/owner-1/gone.png did not come across")]
    assert fields["created_at"] == datetime.datetime(2024, 5, 1, 10, tzinfo=datetime.UTC)

    with pytest.raises(RowSkipped) as ghost:
        table.map_row({**row, "owner_id": "ghost"}, resolve)
    assert (ghost.value.reason, ghost.value.detail) == (
        "missing-reference",
        "column owner_id: public.profiles ghost did not come across",
    )
    with pytest.raises(RowSkipped) as money:
        table.map_row({**row, "price": "1.999"}, resolve)
    assert money.value.reason == "invalid-value" and money.value.detail.startswith("column price:")
    with pytest.raises(RowSkipped) as required:
        table.map_row({**row, "city": None}, resolve)
    assert required.value.reason == "missing-value"
