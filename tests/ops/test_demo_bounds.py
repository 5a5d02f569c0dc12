"""Every demo row, however large the seed, is one the properties table and the API accept.

The bounds come from the table's own CHECKs (read from the migrations, not copied here) and from
the API's listing schema; a row that breaks one would stop ``hearth demo seed`` part-way through a
multi-million-row seed (COPY refuses the whole chunk).
"""

from __future__ import annotations

import math
import pathlib
import random
import re
import uuid

import msgspec
import pytest

from api.schemas.properties import PropertyCreate
from models.listing_rules import consistency_errors
from ops import demo_data

MIGRATIONS = pathlib.Path(__file__).resolve().parents[2] / "models" / "migrations"
SELLERS = [str(uuid.UUID(int=1))]
AGENTS = [str(uuid.UUID(int=2))]
NUMERIC = {
    "list_price",
    "original_list_price",
    "previous_list_price",
    "close_price",
    "bedrooms_total",
    "bathrooms_full",
    "bathrooms_half",
    "living_area",
    "lot_size_square_feet",
    "year_built",
    "association_fee",
    "tax_annual_amount",
    "tax_year",
    "latitude",
    "longitude",
}


def _table_checks() -> tuple[dict[str, tuple[float, float]], dict[str, set[str]]]:
    """``(ranges, allowed values)`` of the properties table's CHECKs, as its migrations create them."""
    text = (MIGRATIONS / "0004_properties.py").read_text()
    block = text[text.index("CREATE TABLE properties (") : text.index("CREATE INDEX properties_owner_idx")]
    ranges: dict[str, tuple[float, float]] = {}
    for column, low, high in re.findall(r"CHECK \((\w+) BETWEEN (-?\d+) AND (-?\d+)\)", block):
        ranges[column] = (float(low), float(high))
    for column in re.findall(r"CHECK \((\w+) >= 0\)", block):
        ranges[column] = (0.0, math.inf)
    allowed = {
        column: set(re.findall(r"'([^']*)'", values))
        for column, values in re.findall(r"CHECK \((\w+) IN \(([^)]*)\)\)", block, flags=re.DOTALL)
    }
    # A later migration that adds a CHECK to properties must be read here as well.
    for later in sorted(MIGRATIONS.glob("0*.py")):
        if later.name > "0004" and re.search(r"ALTER TABLE properties[^;]*CHECK", later.read_text()):
            pytest.fail(f"{later.name} adds a CHECK on properties: teach _table_checks to read it")
    return ranges, allowed


RANGES, ALLOWED = _table_checks()
API_FIELDS = set(PropertyCreate.__struct_fields__)


def test_the_checks_are_read_and_the_generators_bounds_lie_inside_them():
    # The parse found the CHECKs it must (a rewrite of the migration's text would otherwise pass silently).
    assert {"bathrooms_full", "living_area", "year_built", "list_price", "latitude"} <= set(RANGES)
    assert {"standard_status", "property_type", "association_fee_frequency"} <= set(ALLOWED)
    for column, (low, high) in demo_data.BOUNDS.items():
        if column in RANGES:
            assert RANGES[column][0] <= low <= high <= RANGES[column][1], column


def _violations(line: str) -> list[str]:
    row = dict(zip(demo_data.COLUMNS, line.rstrip("\n").split("\t"), strict=True))
    values = {k: None if v == demo_data.NULL else v for k, v in row.items()}
    problems = []
    for column, value in values.items():
        if value is None:
            continue
        if column in RANGES:
            low, high = RANGES[column]
            if not low <= float(value) <= high:
                problems.append(f"{column}={value} outside the CHECK {low}..{high}")
        if column in ALLOWED and value not in ALLOWED[column]:
            problems.append(f"{column}={value!r} not one the CHECK allows")
        if column in demo_data.BOUNDS:
            low, high = demo_data.BOUNDS[column]
            if not low <= int(value) <= high:
                problems.append(f"{column}={value} outside the generator's bounds")
    # The API's own limits: what PATCH or a re-import would accept for the same listing.
    body = {k: v for k, v in values.items() if k in API_FIELDS and v is not None}
    for column in NUMERIC & body.keys():
        body[column] = float(body[column]) if column in ("latitude", "longitude") else int(body[column])
    body["features"] = [f.strip('"') for f in values["features"].strip("{}").split(",") if f]
    try:
        msgspec.convert(body, PropertyCreate)
    except msgspec.ValidationError as error:
        problems.append(f"API schema: {error}")
    problems += [f"{field}: {message}" for field, message in consistency_errors(values)]
    return problems


class _Tails(random.Random):
    """Draws from the far tails (±7 sigma, the ends of a beta) a third of the time; otherwise as seeded."""

    def lognormvariate(self, mu, sigma):
        if self.random() < 1 / 3:
            return math.exp(mu + self.choice((-7, 7)) * sigma)
        return super().lognormvariate(mu, sigma)

    def gauss(self, mu=0.0, sigma=1.0):
        if self.random() < 1 / 3:
            return mu + self.choice((-7, 7)) * sigma
        return super().gauss(mu, sigma)

    def betavariate(self, alpha, beta):
        if self.random() < 1 / 3:
            return self.choice((0.0, 0.999999))
        return super().betavariate(alpha, beta)


def test_a_large_sample_stays_inside_every_bound():
    """200,000 seeded rows: more than the seed that used to fail at row ~3,900 of a chunk ever reached."""
    bad = []
    for chunk in range(200_000 // demo_data.CHUNK):
        listings, _ = demo_data.generate_chunk(17, chunk, demo_data.CHUNK, SELLERS, AGENTS)
        bad += [(chunk, problems) for line in listings if (problems := _violations(line))]
    assert not bad, bad[:5]


def test_the_distributions_tails_stay_inside_every_bound():
    """Rows drawn from ±7 sigma: what a seed of hundreds of millions of rows would eventually reach."""
    listings, _ = demo_data.generate_chunk(0, 0, 20_000, SELLERS, AGENTS, rng=_Tails("tails"))
    bad = [problems for line in listings if (problems := _violations(line))]
    assert not bad, bad[:5]
    areas = [int(row.split("\t")[15]) for row in listings if row.split("\t")[15] != demo_data.NULL]
    # The tails were reached: the clamp, not luck, kept the rows inside.
    assert max(areas) == demo_data.BOUNDS["living_area"][1]
