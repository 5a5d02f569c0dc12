"""The ten real US cities the demo listings are in: where each is, its share of the listings, its prices
per square foot and tax rate, and its ZIP codes and streets.

A listing's coordinates fall inside its city's box: the real centre ± ``LAT_HALF_BOX``, ``LON_HALF_BOX``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ops.demo_text import words


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
        words("78701,78702,78703,78704,78705,78721,78723,78731,78741,78745,78746,78748,78749,78751,78757"),
        words(
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
        words("80202,80203,80204,80205,80206,80207,80209,80210,80211,80212,80218,80219,80220,80223,80224"),
        words(
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
        words("98101,98102,98103,98105,98107,98109,98112,98115,98116,98117,98118,98122,98125,98126,98144"),
        words(
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
        words("33125,33127,33128,33129,33130,33131,33132,33133,33135,33137,33138,33142,33145,33146,33155"),
        words(
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
        words("60601,60605,60607,60608,60610,60611,60613,60614,60618,60622,60625,60640,60647,60657,60660"),
        words(
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
        words("02108,02109,02110,02111,02113,02114,02115,02116,02118,02119,02124,02127,02130,02131,02135"),
        words(
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
        words("85003,85004,85006,85008,85012,85013,85014,85016,85018,85020,85021,85022,85028,85032,85044"),
        words(
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
        words("97201,97202,97203,97205,97206,97209,97210,97211,97212,97213,97214,97215,97217,97219,97239"),
        words(
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
        words("37203,37204,37205,37206,37207,37208,37209,37210,37211,37212,37214,37215,37216,37218,37220"),
        words(
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
        words("92101,92102,92103,92104,92105,92106,92107,92108,92109,92110,92111,92115,92116,92117,92122"),
        words(
            "Market Street,University Avenue,El Cajon Boulevard,Adams Avenue,Park Boulevard,Garnet Avenue,"
            "Sunset Cliffs Boulevard,Rosecrans Street,India Street,Kettner Boulevard,Mission Boulevard,"
            "Genesee Avenue,Balboa Avenue,Clairemont Drive"
        ),
    ),
)
