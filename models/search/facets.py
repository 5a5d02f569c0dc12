"""Facet counts of a search: per property type, status, beds, baths and price band.

One ``GROUPING SETS`` query (``facet_select``) counts every facet in one pass
over the matches; ``facet_groups`` turns its rows into buckets. An unknown
count of beds or baths is its own bucket, so every facet sums to the total.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Price bands in minor units (cents): lower bounds; the last band has no upper bound.
PRICE_BANDS = tuple(
    dollars * 100
    for dollars in (
        0,
        100_000,
        200_000,
        300_000,
        400_000,
        500_000,
        750_000,
        1_000_000,
        1_500_000,
        2_000_000,
        3_000_000,
        5_000_000,
    )
)
MAX_BEDS_BUCKET = 5
MAX_BATHS_BUCKET = 4


def facet_select(source: str, where: str, limit: str = "") -> str:
    """The facet query over the rows of ``source`` matching ``where`` (params: ``bands``)."""
    return (
        "SELECT GROUPING(property_type, standard_status, beds, baths, band), property_type, standard_status, "  # noqa: S608 - ListingQuery's checked table, constant SQL, values as params
        "beds, baths, band, count(*) FROM ("
        # Not LEAST(): it skips NULLs, and an unknown count must stay unknown.
        f"SELECT property_type, standard_status, CASE WHEN bedrooms_total >= {MAX_BEDS_BUCKET} "
        f"THEN {MAX_BEDS_BUCKET} ELSE bedrooms_total END AS beds, CASE WHEN bathrooms_total >= "
        f"{MAX_BATHS_BUCKET} THEN {MAX_BATHS_BUCKET} ELSE bathrooms_total END AS baths, "
        "width_bucket(list_price, %(bands)s::bigint[]) AS band "
        f"FROM {source} WHERE {where}{limit}) s "
        "GROUP BY GROUPING SETS ((property_type), (standard_status), (beds), (baths), (band), ())"
    )


@dataclass
class Facets:
    total: int
    estimated: bool
    groups: dict = field(default_factory=dict)


def bucket_label(value, top: int) -> str:
    if value is None:
        return "unknown"
    return f"{top}+" if value >= top else str(value)


def facet_groups(rows) -> tuple[int, dict]:
    """Rows of the GROUPING SETS query → (total, {facet: [buckets]})."""
    # GROUPING(...) has a bit set for each column *not* grouped; the first argument is the highest bit.
    names = ("property_type", "status", "beds", "baths", "price")
    groups: dict[str, list] = {name: [] for name in names}
    total = 0
    for grouping, ptype, status, beds, baths, band, count in rows:
        grouped = [name for bit, name in enumerate(names) if not grouping & (1 << (len(names) - 1 - bit))]
        if not grouped:
            total = count
            continue
        name = grouped[0]
        if name == "property_type":
            groups[name].append({"value": ptype, "count": count})
        elif name == "status":
            groups[name].append({"value": status, "count": count})
        elif name == "beds":
            groups[name].append({"value": bucket_label(beds, MAX_BEDS_BUCKET), "count": count, "_order": beds})
        elif name == "baths":
            groups[name].append({"value": bucket_label(baths, MAX_BATHS_BUCKET), "count": count, "_order": baths})
        else:
            low = PRICE_BANDS[band - 1]
            high = PRICE_BANDS[band] - 1 if band < len(PRICE_BANDS) else None
            groups[name].append({"min": low, "max": high, "count": count, "_order": band})
    for name in ("property_type", "status"):
        groups[name].sort(key=lambda b: (-b["count"], b["value"]))
    for name in ("beds", "baths", "price"):
        groups[name].sort(key=lambda b: (b["_order"] is None, b["_order"] or 0))
        for bucket in groups[name]:
            del bucket["_order"]
    return total, groups


__all__ = ["PRICE_BANDS", "Facets", "bucket_label", "facet_groups", "facet_select"]
