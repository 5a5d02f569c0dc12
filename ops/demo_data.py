"""The demo listings themselves: realistic, deterministic rows in ten real US cities, as COPY text.

``generate_chunk(seed, chunk, ...)`` makes rows ``chunk * CHUNK`` onwards; row ``i``
depends only on ``(seed, i)``. ``ops/demo.py`` writes them (``hearth demo seed``).

Prices are log-normal around each city's price per square foot (sale) or rent
per square foot (lease); bedrooms and bathrooms follow the living area; the
coordinates fall inside each city's box around its real centre.
"""

from __future__ import annotations

import datetime
import itertools
import math
import random
import uuid

from ops.demo_cities import CITIES, LAT_HALF_BOX, LON_HALF_BOX
from ops.demo_text import CLOSERS, FEATURES, FIRST_NAMES, HOOKS, LAND_OPENERS, LAST_NAMES, NOUNS, OPENERS

CHUNK = 10_000  # rows per RNG stream; fixed, so the rows never depend on batching
# Listings are dated back from this instant (not from "now"), so a seed always gives the same rows.
EPOCH = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
DEMO_PASSWORD = "hearth demo password"  # noqa: S105 (printed by the seed command: demo accounts only)
DEMO_EMAIL_DOMAIN = "demo.hearth.example.com"
SELLERS, AGENTS = 40, 15
_NAMESPACE = uuid.UUID("6f1f3b1e-8c1a-4d53-9c9e-2f1d8b4a7c10")


# (type, share, sub types, median living area in sq ft or None, sigma)
TYPES = (
    ("Residential", 68, ("SingleFamilyResidence",) * 13 + ("Condominium",) * 4 + ("Townhouse",) * 3, 1850, 0.35),
    (
        "ResidentialLease",
        14,
        ("Apartment",) * 6 + ("SingleFamilyResidence", "SingleFamilyResidence", "Condominium", "Townhouse"),
        950,
        0.35,
    ),
    ("ResidentialIncome", 6, ("Duplex", "Duplex", "Triplex", "Quadruplex", "MultiFamily"), 3400, 0.35),
    ("Land", 6, ("UnimprovedLand",), None, 0.0),
    ("CommercialSale", 4, ("Office", "Retail", "Industrial", "MixedUse", "Warehouse"), 8000, 0.8),
    ("CommercialLease", 2, ("Office", "Retail", "Industrial", "Warehouse"), 3000, 0.7),
)
# Final status and the path of statuses that led to it.
STATUS_PATHS = (
    (55, ("Active",)),
    (5, ("ComingSoon",)),
    (5, ("Active", "ActiveUnderContract")),
    (8, ("Active", "Pending")),
    (15, ("Active", "Pending", "Closed")),
    (4, ("Active", "Withdrawn")),
    (4, ("Active", "Expired")),
    (1, ("Active", "Canceled")),
    (1, ("Incomplete", "Canceled")),
    (2, ("Incomplete",)),
)
COLUMNS = (
    "id",
    "owner_id",
    "list_agent_id",
    "version",
    "standard_status",
    "property_type",
    "property_sub_type",
    "currency",
    "list_price",
    "original_list_price",
    "previous_list_price",
    "close_price",
    "bedrooms_total",
    "bathrooms_full",
    "bathrooms_half",
    "living_area",
    "living_area_units",
    "lot_size_square_feet",
    "year_built",
    "street_number",
    "street_name",
    "unit_number",
    "unparsed_address",
    "city",
    "state_or_province",
    "postal_code",
    "country",
    "latitude",
    "longitude",
    "features",
    "association_fee",
    "association_fee_frequency",
    "tax_annual_amount",
    "tax_year",
    "public_remarks",
    "virtual_tour_url_unbranded",
    "listing_contract_date",
    "on_market_timestamp",
    "close_date",
    "created_at",
    "modification_timestamp",
)
HISTORY_COLUMNS = ("property_id", "at", "actor_id", "field", "old_value", "new_value")
# Every number the generator writes stays inside these (inclusive) bounds, which lie inside the
# properties table's CHECKs and the API's field limits (a test holds them to both). The log-normal
# tails of a multi-million-row seed otherwise reach values the schema refuses (a 300,000 sq ft
# building with 120 full baths).
BOUNDS: dict[str, tuple[int, int]] = {
    "list_price": (100, 10**12),
    "original_list_price": (100, 10**12),
    "previous_list_price": (100, 10**12),
    "close_price": (100, 10**12),
    "bedrooms_total": (0, 12),
    "bathrooms_full": (1, 60),
    "bathrooms_half": (0, 1),
    "living_area": (300, 2_000_000),
    "lot_size_square_feet": (500, 500_000_000),
    "year_built": (1890, EPOCH.year),
    "association_fee": (0, 10_000_000),
    "tax_annual_amount": (0, 10**11),
    "tax_year": (EPOCH.year - 1, EPOCH.year - 1),
}
NULL = "\\N"


def _cumulative(weights):
    total, out = 0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


_CITY_CUM = _cumulative(city.weight for city in CITIES)
_TYPE_CUM = _cumulative(row[1] for row in TYPES)
_STATUS_CUM = _cumulative(row[0] for row in STATUS_PATHS)


def demo_users() -> tuple[list[tuple], list[tuple]]:
    """The demo sellers and agents: ``(id, email, full_name, role)``; the same for every seed."""
    people = []
    for role, count in (("seller", SELLERS), ("agent", AGENTS)):
        for k in range(count):
            email = f"{role}{k + 1:02d}@{DEMO_EMAIL_DOMAIN}"
            first = FIRST_NAMES[(k * 7 + len(role)) % len(FIRST_NAMES)]
            last = LAST_NAMES[(k * 3 + len(role)) % len(LAST_NAMES)]
            name = f"{first} {last}"
            people.append((uuid.uuid5(_NAMESPACE, email), email, name, role))
    return [p for p in people if p[3] == "seller"], [p for p in people if p[3] == "agent"]


def _uuid(rng: random.Random) -> str:
    bits = rng.getrandbits(128)
    bits = (bits & ~(0xF << 76) | (4 << 76)) & ~(0x3 << 62) | (0x2 << 62)  # version 4, RFC 4122 variant
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _pick(rng: random.Random, cumulative: list[int]) -> int:
    target = rng.random() * cumulative[-1]
    for index, bound in enumerate(cumulative):
        if target < bound:
            return index
    return len(cumulative) - 1


def _bounded(column: str, value: int) -> int:
    low, high = BOUNDS[column]
    return min(high, max(low, value))


def _s(value) -> str:
    return NULL if value is None else str(value)


def generate_chunk(
    seed: int, chunk: int, count: int, sellers: list[str], agents: list[str], rng: random.Random | None = None
):
    """Rows ``chunk * CHUNK`` … ``+ count`` as COPY text: ``(listing lines, history lines)``.

    ``rng`` replaces the seeded generator (a test drives the distributions' tails with it).
    """
    rng = rng or random.Random(f"hearth-demo:{seed}:{chunk}")
    rand, gauss, lognorm, choice = rng.random, rng.gauss, rng.lognormvariate, rng.choice
    listings, history = [], []
    for _ in range(count):
        pid = _uuid(rng)
        city = CITIES[_pick(rng, _CITY_CUM)]
        ptype, _, sub_types, median_area, sigma = TYPES[_pick(rng, _TYPE_CUM)]
        sub = choice(sub_types)
        path = STATUS_PATHS[_pick(rng, _STATUS_CUM)][1]
        status = path[-1]
        owner = choice(sellers)
        agent = choice(agents) if rand() < 0.75 else None

        beds = full = half = area = year = hoa = hoa_freq = tax = tax_year = unit = None
        lot = None
        if median_area is None:  # land: priced by the lot
            lot = _bounded("lot_size_square_feet", int(lognorm(math.log(21_780), 0.9)) + 1000)
            price = lot * city.price_per_sqft * 0.04 * lognorm(0, 0.35)
        else:
            if sub in ("Condominium", "Apartment"):
                median_area *= 0.6
                unit = str(rng.randint(1, 30) * 100 + rng.randint(1, 20))
            area = _bounded("living_area", int(lognorm(math.log(median_area), sigma)))
            if ptype.startswith("Commercial"):
                full = _bounded("bathrooms_full", int(area / 2500))
            else:
                beds = _bounded(
                    "bedrooms_total",
                    min(
                        12 if ptype == "ResidentialIncome" else 7,
                        max(0 if sub == "Apartment" else 1, round(area / 550 + gauss(0, 0.6))),
                    ),
                )
                full = _bounded("bathrooms_full", min(8, max(1, round(beds * 0.6 + gauss(0.3, 0.4)))))
                half = 1 if rand() < (0.45 if sub == "SingleFamilyResidence" else 0.15) else 0
                if sub in ("SingleFamilyResidence", "Duplex", "Triplex", "Quadruplex", "MultiFamily"):
                    lot = _bounded("lot_size_square_feet", int(lognorm(math.log(6500), 0.5)))
            year = _bounded("year_built", 1890 + int(136 * rng.betavariate(3.2, 1.6)))
            if ptype.endswith("Lease"):
                price = area * city.rent_per_sqft * (0.9 if ptype == "CommercialLease" else 1.0) * lognorm(0, 0.18)
            else:
                factor = {"ResidentialIncome": 0.85, "CommercialSale": 0.8}.get(ptype, 1.0)
                price = area * city.price_per_sqft * factor * lognorm(0, 0.22)
            if sub in ("Condominium", "Townhouse") or (ptype == "Residential" and rand() < 0.25):
                monthly = 80 if sub == "SingleFamilyResidence" else 320  # dollars a month, median
                hoa, hoa_freq = _bounded("association_fee", int(lognorm(math.log(monthly), 0.4)) * 100), "Monthly"
        lease = ptype.endswith("Lease")
        unit_cents = 500 if lease else 100_000  # rents end in $5, prices in $1,000
        original = _bounded("original_list_price", max(int(price * 100 / unit_cents + 0.5), 1) * unit_cents)
        current, previous = original, None
        if status != "Incomplete" and rand() < 0.22:  # a price reduction (rarely an increase)
            step = (0.97 if rand() < 0.9 else 1.03) * lognorm(0, 0.01)
            current = _bounded("list_price", max(int(original * step / unit_cents + 0.5), 1) * unit_cents)
            previous = original if current != original else None
        if not lease:
            tax = _bounded("tax_annual_amount", int(current * city.tax_rate * lognorm(0, 0.1)))
            tax_year = EPOCH.year - 1

        number = str(rng.randint(100, 9899))
        street = choice(city.streets)
        postal = choice(city.zips)
        address = f"{number} {street}{' Unit ' + unit if unit else ''}, {city.name}, {city.state} {postal}"
        while True:
            lat = gauss(city.lat, LAT_HALF_BOX / 3)
            lon = gauss(city.lon, LON_HALF_BOX / 3)
            if abs(lat - city.lat) < LAT_HALF_BOX and abs(lon - city.lon) < LON_HALF_BOX:
                break
        features = rng.sample(FEATURES, rng.randint(2, 10)) if median_area is not None else []
        noun = NOUNS[sub]
        size = f"{beds}-bedroom " if beds else ""
        opener = choice(OPENERS if median_area is not None else LAND_OPENERS)
        remarks = (
            f"{opener} {size}{noun} {choice(HOOKS)} in {city.name}. "
            + (f"Features {features[0].lower()} and {features[1].lower()}. " if features else "")
            + choice(CLOSERS)
        )
        tour = f"https://tours.example.com/{pid[:8]}" if rand() < 0.2 and median_area is not None else None

        created = EPOCH - datetime.timedelta(seconds=int(rand() * 730 * 86400))
        at = created
        events = [(created, "standard_status", None, path[0]), (created, "list_price", None, str(original))]
        on_market = created if path[0] == "Active" else None
        if previous is not None:
            at = at + datetime.timedelta(seconds=int(rand() * 30 * 86400) + 3600)
            events.append((at, "list_price", str(previous), str(current)))
        for old, new in itertools.pairwise(path):
            at = at + datetime.timedelta(seconds=int(rand() * 45 * 86400) + 3600)
            events.append((at, "standard_status", old, new))
        close_price = close_date = None
        if status == "Closed":
            close_price = _bounded(
                "close_price", max(int(current * (0.95 + rand() * 0.08) / unit_cents + 0.5), 1) * unit_cents
            )
            close_date = at.date().isoformat()
        actor = agent or owner
        for when, field, old, new in events:
            history.append(f"{pid}\t{when.isoformat()}\t{actor}\t{field}\t{_s(old)}\t{new}\n")

        row = (
            pid,
            owner,
            _s(agent),
            str(1 + len(events) - 2),
            status,
            ptype,
            sub,
            "USD",
            str(current),
            str(original),
            _s(previous),
            _s(close_price),
            _s(beds),
            _s(full),
            _s(half),
            _s(area),
            "SquareFeet",
            _s(lot),
            _s(year),
            number,
            street,
            _s(unit),
            address,
            city.name,
            city.state,
            postal,
            "US",
            f"{lat:.6f}",
            f"{lon:.6f}",
            "{" + ",".join(f'"{f}"' for f in features) + "}",
            _s(hoa),
            _s(hoa_freq),
            _s(tax),
            _s(tax_year),
            remarks,
            _s(tour),
            created.date().isoformat(),
            on_market.isoformat() if on_market else NULL,
            _s(close_date),
            created.isoformat(),
            at.isoformat(),
        )
        listings.append("\t".join(row) + "\n")
    return listings, history
