"""The words of the demo data: listing features, the phrases remarks are made of, what each sub type is
called in prose, and the demo users' names.

The lists are written as comma-separated text; ``words`` splits them (``ops/demo_cities.py`` uses it too).
"""

from __future__ import annotations


def words(text: str) -> tuple[str, ...]:
    """``"a,b, c"`` → ``("a", "b", "c")``: the comma-separated items of ``text``, trimmed, empty ones left out."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


FEATURES = words(
    "Central Air,Hardwood Floors,Fireplace,Walk-In Closet,Granite Counters,Stainless Appliances,Open Floor Plan,"
    "Vaulted Ceilings,Attached Garage,Two-Car Garage,Covered Parking,EV Charger,Solar Panels,Pool,Hot Tub,"
    "Fenced Yard,Deck,Patio,Balcony,Rooftop Terrace,Mountain View,Water View,City View,Updated Kitchen,"
    "Kitchen Island,Breakfast Nook,Laundry Room,In-Unit Laundry,Basement,Finished Basement,Home Office,"
    "Guest Suite,Smart Thermostat,Security System,Sprinkler System,Gated Community,Fitness Center,Doorman,"
    "Elevator,Pet Friendly,Dog Park,Bike Storage,Storage Unit,Skylights,Tankless Water Heater,Energy Star Windows,"
    "Wine Cellar,Workshop,Garden,Fruit Trees"
)
OPENERS = words(
    "Bright and airy,Beautifully updated,Sun-filled,Move-in ready,Thoughtfully renovated,"
    "Charming,Spacious,Stylish,Light-filled,Well-kept,Quiet,Rare"
)
LAND_OPENERS = words("Buildable,Level,Wooded,Corner,Rare,Quiet,Gently sloping,Cleared")
HOOKS = words(
    "steps from parks and cafes,close to downtown,on a tree-lined street,near top-rated schools,"
    "minutes from the freeway,in a walkable neighborhood,near transit,backing onto a greenbelt,"
    "on a quiet cul-de-sac,close to shopping and dining"
)
CLOSERS = words(
    "Schedule a showing today.,Open house this weekend.,Priced to sell.,A must see.,"
    "Offers reviewed as received.,Ready for its next chapter.,Bring your ideas."
)
NOUNS = {
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

# The demo users' names.
FIRST_NAMES = words(
    "Ava,Ben,Chloe,Diego,Elena,Farah,Gus,Hana,Ivan,Jade,Kofi,Lena,Malik,Nora,Omar,Priya,Quinn,Rosa,Sam,Tara"
)
LAST_NAMES = words(
    "Alvarez,Brooks,Chen,Diaz,Evans,Fischer,Garcia,Hughes,Ito,Johnson,Khan,Lopez,Moreau,Nguyen,"
    "Okafor,Patel,Rossi,Smith,Tanaka,Walsh"
)
