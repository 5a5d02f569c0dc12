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
from dataclasses import dataclass

CHUNK = 10_000  # rows per RNG stream; fixed, so the rows never depend on batching
# Listings are dated back from this instant (not from "now"), so a seed always gives the same rows.
EPOCH = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
DEMO_PASSWORD = "hearth demo password"  # noqa: S105 (printed by the seed command: demo accounts only)
DEMO_EMAIL_DOMAIN = "demo.hearth.example.com"
SELLERS, AGENTS = 40, 15
_NAMESPACE = uuid.UUID("6f1f3b1e-8c1a-4d53-9c9e-2f1d8b4a7c10")


@dataclass(frozen=True)
class City:
    name: str
    state: str
    lat: float
    lon: float
    weight: int  # share of the listings
    price_per_sqft: int  # dollars, sale
    rent_per_sqft: float  # dollars a month, lease
    tax_rate: float  # annual property tax as a share of the price
    zips: tuple[str, ...]
    streets: tuple[str, ...]


LAT_HALF_BOX, LON_HALF_BOX = 0.15, 0.20  # each city's box: centre ± these degrees


def _words(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


CITIES = (
    City(
        "Austin",
        "TX",
        30.2672,
        -97.7431,
        10,
        330,
        1.55,
        0.018,
        _words("78701,78702,78703,78704,78705,78721,78723,78731,78741,78745,78746,78748,78749,78751,78757"),
        _words(
            "Congress Avenue,South Lamar Boulevard,Guadalupe Street,Burnet Road,East Cesar Chavez Street,"
            "Barton Springs Road,Riverside Drive,Manor Road,Airport Boulevard,South 1st Street,Enfield Road,"
            "Exposition Boulevard,William Cannon Drive,Slaughter Lane,Duval Street,Red River Street"
        ),
    ),
    City(
        "Denver",
        "CO",
        39.7392,
        -104.9903,
        9,
        360,
        1.75,
        0.0055,
        _words("80202,80203,80204,80205,80206,80207,80209,80210,80211,80212,80218,80219,80220,80223,80224"),
        _words(
            "Colfax Avenue,Broadway,Speer Boulevard,Federal Boulevard,Colorado Boulevard,Larimer Street,"
            "Blake Street,Downing Street,York Street,Alameda Avenue,Evans Avenue,Tennyson Street,"
            "Sheridan Boulevard,Monaco Parkway,Quebec Street"
        ),
    ),
    City(
        "Seattle",
        "WA",
        47.6062,
        -122.3321,
        9,
        560,
        2.55,
        0.009,
        _words("98101,98102,98103,98105,98107,98109,98112,98115,98116,98117,98118,98122,98125,98126,98144"),
        _words(
            "Pike Street,Pine Street,Aurora Avenue North,Rainier Avenue South,Eastlake Avenue East,"
            "Fremont Avenue North,Greenwood Avenue North,California Avenue Southwest,Madison Street,"
            "Jackson Street,Market Street,Roosevelt Way Northeast,Beacon Avenue South,Queen Anne Avenue North"
        ),
    ),
    City(
        "Miami",
        "FL",
        25.7617,
        -80.1918,
        10,
        480,
        2.6,
        0.010,
        _words("33125,33127,33128,33129,33130,33131,33132,33133,33135,33137,33138,33142,33145,33146,33155"),
        _words(
            "Biscayne Boulevard,Brickell Avenue,Southwest 8th Street,Coral Way,Flagler Street,"
            "Northwest 7th Avenue,South Bayshore Drive,Grand Avenue,Main Highway,Northeast 2nd Avenue,"
            "Bird Road,Douglas Road,Le Jeune Road,Tigertail Avenue"
        ),
    ),
    City(
        "Chicago",
        "IL",
        41.8781,
        -87.6298,
        14,
        260,
        1.9,
        0.020,
        _words("60601,60605,60607,60608,60610,60611,60613,60614,60618,60622,60625,60640,60647,60657,60660"),
        _words(
            "Michigan Avenue,State Street,Clark Street,Halsted Street,Ashland Avenue,Western Avenue,"
            "Milwaukee Avenue,Division Street,North Avenue,Fullerton Avenue,Belmont Avenue,Lincoln Avenue,"
            "Damen Avenue,Armitage Avenue,Sheridan Road"
        ),
    ),
    City(
        "Boston",
        "MA",
        42.3601,
        -71.0589,
        9,
        620,
        3.1,
        0.011,
        _words("02108,02109,02110,02111,02113,02114,02115,02116,02118,02119,02124,02127,02130,02131,02135"),
        _words(
            "Beacon Street,Commonwealth Avenue,Boylston Street,Newbury Street,Tremont Street,"
            "Washington Street,Massachusetts Avenue,Huntington Avenue,Cambridge Street,Hanover Street,"
            "Dorchester Avenue,Centre Street,Blue Hill Avenue,Columbus Avenue,Marlborough Street"
        ),
    ),
    City(
        "Phoenix",
        "AZ",
        33.4484,
        -112.0740,
        12,
        290,
        1.45,
        0.006,
        _words("85003,85004,85006,85008,85012,85013,85014,85016,85018,85020,85021,85022,85028,85032,85044"),
        _words(
            "Camelback Road,Central Avenue,Indian School Road,McDowell Road,Thomas Road,7th Street,"
            "16th Street,24th Street,32nd Street,Bethany Home Road,Glendale Avenue,Northern Avenue,"
            "Cactus Road,Shea Boulevard,Baseline Road"
        ),
    ),
    City(
        "Portland",
        "OR",
        45.5152,
        -122.6784,
        8,
        340,
        1.8,
        0.010,
        _words("97201,97202,97203,97205,97206,97209,97210,97211,97212,97213,97214,97215,97217,97219,97239"),
        _words(
            "Burnside Street,Hawthorne Boulevard,Belmont Street,Division Street,Alberta Street,"
            "Mississippi Avenue,Sandy Boulevard,Broadway,Macadam Avenue,Powell Boulevard,Foster Road,"
            "Fremont Street,Killingsworth Street,Interstate Avenue,Northwest 23rd Avenue"
        ),
    ),
    City(
        "Nashville",
        "TN",
        36.1627,
        -86.7816,
        8,
        320,
        1.7,
        0.0065,
        _words("37203,37204,37205,37206,37207,37208,37209,37210,37211,37212,37214,37215,37216,37218,37220"),
        _words(
            "West End Avenue,Charlotte Avenue,Gallatin Pike,Nolensville Pike,Belmont Boulevard,"
            "12th Avenue South,Hillsboro Pike,Demonbreun Street,Church Street,Woodland Street,Shelby Avenue,"
            "Granny White Pike,Lebanon Pike,Murfreesboro Pike"
        ),
    ),
    City(
        "San Diego",
        "CA",
        32.7157,
        -117.1611,
        11,
        690,
        2.9,
        0.0115,
        _words("92101,92102,92103,92104,92105,92106,92107,92108,92109,92110,92111,92115,92116,92117,92122"),
        _words(
            "Market Street,University Avenue,El Cajon Boulevard,Adams Avenue,Park Boulevard,Garnet Avenue,"
            "Sunset Cliffs Boulevard,Rosecrans Street,India Street,Kettner Boulevard,Mission Boulevard,"
            "Genesee Avenue,Balboa Avenue,Clairemont Drive"
        ),
    ),
)

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
FEATURES = _words(
    "Central Air,Hardwood Floors,Fireplace,Walk-In Closet,Granite Counters,Stainless Appliances,Open Floor Plan,"
    "Vaulted Ceilings,Attached Garage,Two-Car Garage,Covered Parking,EV Charger,Solar Panels,Pool,Hot Tub,"
    "Fenced Yard,Deck,Patio,Balcony,Rooftop Terrace,Mountain View,Water View,City View,Updated Kitchen,"
    "Kitchen Island,Breakfast Nook,Laundry Room,In-Unit Laundry,Basement,Finished Basement,Home Office,"
    "Guest Suite,Smart Thermostat,Security System,Sprinkler System,Gated Community,Fitness Center,Doorman,"
    "Elevator,Pet Friendly,Dog Park,Bike Storage,Storage Unit,Skylights,Tankless Water Heater,Energy Star Windows,"
    "Wine Cellar,Workshop,Garden,Fruit Trees"
)
_OPENERS = _words(
    "Bright and airy,Beautifully updated,Sun-filled,Move-in ready,Thoughtfully renovated,"
    "Charming,Spacious,Stylish,Light-filled,Well-kept,Quiet,Rare"
)
_LAND_OPENERS = _words("Buildable,Level,Wooded,Corner,Rare,Quiet,Gently sloping,Cleared")
_HOOKS = _words(
    "steps from parks and cafes,close to downtown,on a tree-lined street,near top-rated schools,"
    "minutes from the freeway,in a walkable neighborhood,near transit,backing onto a greenbelt,"
    "on a quiet cul-de-sac,close to shopping and dining"
)
_CLOSERS = _words(
    "Schedule a showing today.,Open house this weekend.,Priced to sell.,A must see.,"
    "Offers reviewed as received.,Ready for its next chapter.,Bring your ideas."
)
_NOUNS = {
    "SingleFamilyResidence": "home",
    "Condominium": "condo",
    "Townhouse": "townhome",
    "Apartment": "apartment",
    "Duplex": "duplex",
    "Triplex": "triplex",
    "Quadruplex": "fourplex",
    "MultiFamily": "multifamily building",
    "UnimprovedLand": "lot",
    "Office": "office building",
    "Retail": "retail space",
    "Industrial": "industrial building",
    "MixedUse": "mixed-use building",
    "Warehouse": "warehouse",
}

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
    first = _words(
        "Ava,Ben,Chloe,Diego,Elena,Farah,Gus,Hana,Ivan,Jade,Kofi,Lena,Malik,Nora,Omar,Priya,Quinn,Rosa,Sam,Tara"
    )
    last = _words(
        "Alvarez,Brooks,Chen,Diaz,Evans,Fischer,Garcia,Hughes,Ito,Johnson,Khan,Lopez,Moreau,Nguyen,"
        "Okafor,Patel,Rossi,Smith,Tanaka,Walsh"
    )
    people = []
    for role, count in (("seller", SELLERS), ("agent", AGENTS)):
        for k in range(count):
            email = f"{role}{k + 1:02d}@{DEMO_EMAIL_DOMAIN}"
            name = f"{first[(k * 7 + len(role)) % len(first)]} {last[(k * 3 + len(role)) % len(last)]}"
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


def _s(value) -> str:
    return NULL if value is None else str(value)


def generate_chunk(seed: int, chunk: int, count: int, sellers: list[str], agents: list[str]):
    """Rows ``chunk * CHUNK`` … ``+ count`` as COPY text: ``(listing lines, history lines)``."""
    rng = random.Random(f"hearth-demo:{seed}:{chunk}")
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
            lot = int(lognorm(math.log(21_780), 0.9)) + 1000
            price = lot * city.price_per_sqft * 0.04 * lognorm(0, 0.35)
        else:
            if sub in ("Condominium", "Apartment"):
                median_area *= 0.6
                unit = str(rng.randint(1, 30) * 100 + rng.randint(1, 20))
            area = max(300, int(lognorm(math.log(median_area), sigma)))
            if ptype.startswith("Commercial"):
                full = max(1, int(area / 2500))
            else:
                beds = min(
                    12 if ptype == "ResidentialIncome" else 7,
                    max(0 if sub == "Apartment" else 1, round(area / 550 + gauss(0, 0.6))),
                )
                full = min(8, max(1, round(beds * 0.6 + gauss(0.3, 0.4))))
                half = 1 if rand() < (0.45 if sub == "SingleFamilyResidence" else 0.15) else 0
                if sub in ("SingleFamilyResidence", "Duplex", "Triplex", "Quadruplex", "MultiFamily"):
                    lot = int(lognorm(math.log(6500), 0.5))
            year = min(2026, 1890 + int(136 * rng.betavariate(3.2, 1.6)))
            if ptype.endswith("Lease"):
                price = area * city.rent_per_sqft * (0.9 if ptype == "CommercialLease" else 1.0) * lognorm(0, 0.18)
            else:
                factor = {"ResidentialIncome": 0.85, "CommercialSale": 0.8}.get(ptype, 1.0)
                price = area * city.price_per_sqft * factor * lognorm(0, 0.22)
            if sub in ("Condominium", "Townhouse") or (ptype == "Residential" and rand() < 0.25):
                monthly = 80 if sub == "SingleFamilyResidence" else 320  # dollars a month, median
                hoa, hoa_freq = int(lognorm(math.log(monthly), 0.4)) * 100, "Monthly"
        lease = ptype.endswith("Lease")
        unit_cents = 500 if lease else 100_000  # rents end in $5, prices in $1,000
        original = max(int(price * 100 / unit_cents + 0.5), 1) * unit_cents
        current, previous = original, None
        if status != "Incomplete" and rand() < 0.22:  # a price reduction (rarely an increase)
            step = (0.97 if rand() < 0.9 else 1.03) * lognorm(0, 0.01)
            current = max(int(original * step / unit_cents + 0.5), 1) * unit_cents
            previous = original if current != original else None
        if not lease:
            tax = int(current * city.tax_rate * lognorm(0, 0.1))
            tax_year = 2025

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
        noun = _NOUNS[sub]
        size = f"{beds}-bedroom " if beds else ""
        opener = choice(_OPENERS if median_area is not None else _LAND_OPENERS)
        remarks = (
            f"{opener} {size}{noun} {choice(_HOOKS)} in {city.name}. "
            + (f"Features {features[0].lower()} and {features[1].lower()}. " if features else "")
            + choice(_CLOSERS)
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
            close_price = max(int(current * (0.95 + rand() * 0.08) / unit_cents + 0.5), 1) * unit_cents
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
