"""The SQL of one listing search over the index table (``models.search.index``).

``ListingQuery(filters, sort, limit)`` turns validated filters into the
``WHERE`` clause and its parameters, and builds each statement a search runs:
a page in sort order after a keyset cursor, a bounded count, the facet
counts, and the walk of a text query along the sort order.
``models.search.query.ListingSearch`` decides which of them to run. ``card``
turns a page row into the listing card a search answers with.
"""

from __future__ import annotations

from models.search.facets import PRICE_BANDS, facet_select
from models.search.filters import (
    EARTH_RADIUS_KM,
    SORTS,
    SearchFilters,
    box_literal,
    city_key,
    feature_key,
    postal_key,
    radius_boxes,
)
from models.search.index import CELL, LIVE_TABLE, TEXT_CONFIG, check_table

_TSQUERY = f"websearch_to_tsquery('{TEXT_CONFIG}', %(q)s)"
_DISTANCE = (
    f"(2 * {EARTH_RADIUS_KM} * asin(LEAST(1.0, sqrt("
    "power(sin(radians(location[1] - %(near_lat)s) / 2), 2) + cos(radians(%(near_lat)s)) "
    "* cos(radians(location[1])) * power(sin(radians(location[0] - %(near_lon)s) / 2), 2)))))"
)
# sort → (key expression, direction, SQL type of the key in a cursor). Relevance is
# (tier, listed_at): see ``RELEVANCE_TIERS``.
_SORT_KEYS = {
    "newest": ("listed_at", "DESC", "timestamptz"),
    "price_asc": ("list_price", "ASC", "bigint"),
    "price_desc": ("list_price", "DESC", "bigint"),
    "distance": (_DISTANCE, "ASC", "float8"),
    "relevance": ("listed_at", "DESC", "timestamptz"),
}
# Relevance: the best group of fields that matches the whole query by itself, by the weights
# of the text vector: address and city (A), then with the features (A+B), then anywhere
# (remarks, C); newest first within a tier. Each tier is an indexed condition (expression
# GIN indexes on ts_filter), so a page costs a few index probes however many listings
# match, where ordering by ts_rank would rank every match (150 ms for a common word).
_IN_A = f"ts_filter(tsv, '{{a}}') @@ {_TSQUERY}"
_IN_AB = f"ts_filter(tsv, '{{a,b}}') @@ {_TSQUERY}"
RELEVANCE_TIERS = ((3, _IN_A), (2, f"{_IN_AB} AND NOT {_IN_A}"), (1, f"NOT {_IN_AB}"))
CARD_COLUMNS = (
    "id",
    "standard_status",
    "property_type",
    "property_sub_type",
    "currency",
    "list_price",
    "bedrooms_total",
    "bathrooms_total",
    "bathrooms_full",
    "bathrooms_half",
    "living_area",
    "living_area_units",
    "year_built",
    "address",
    "city",
    "state_or_province",
    "postal_code",
    "country",
    "location[1]",
    "location[0]",
    "features",
    "listed_at",
    "modified_at",
)
# What added to a sort key leaves it unchanged but hides it from the index (see _gin_page_sql).
_ZERO = {"newest": "interval '0 s'", "relevance": "interval '0 s'", "price_asc": "0", "price_desc": "0"}


class ListingQuery:
    """The statements of one search: ``filters`` in ``sort`` order, ``limit`` rows a page, read from ``table``.

    Their SQL text is built from constants (column names, operators, sort keys) and ``table``, an
    index table's name (``check_table``); every value of the filters is a ``%(name)s`` parameter in
    ``params``, never part of the text.
    """

    def __init__(self, filters: SearchFilters, sort: str = "newest", limit: int = 20, table: str = LIVE_TABLE):
        if sort not in SORTS:
            raise ValueError(f"unknown sort {sort!r}")
        if sort == "distance" and filters.near is None:
            raise ValueError("distance sort needs near")
        if sort == "relevance" and not filters.q:
            raise ValueError("relevance sort needs q")
        self.filters = filters
        self.sort = sort
        self.limit = limit
        self.table = check_table(table)
        self.params: dict = {}
        self.text = None
        if filters.q:
            self.params["q"] = filters.q
            # A query of stop words only matches everything rather than nothing.
            self.text = f"(numnode({_TSQUERY}) = 0 OR tsv @@ {_TSQUERY})"
        # Every condition but the text one (a text query walks these in sort order: ListingSearch._text_rows).
        self.base = self._where(indexed_geo=True)
        self.where = self.base + (f" AND {self.text}" if self.text else "")
        # The same filter with its map conditions hidden from the GiST index (broad filters).
        self.where_unindexed_geo = self._where(indexed_geo=False) + (f" AND {self.text}" if self.text else "")

    def _where(self, indexed_geo: bool, radius_km: float | None = None) -> str:
        f, params = self.filters, self.params
        # ``location + point '(0,0)'`` is the same point, but not the indexed column.
        location = "location" if indexed_geo else "(location + point '(0,0)')"
        clauses = ["standard_status = ANY(%(statuses)s)"]
        params["statuses"] = list(f.statuses)
        for name, column, op in (
            ("min_price", "list_price", ">="),
            ("max_price", "list_price", "<="),
            ("min_beds", "bedrooms_total", ">="),
            ("min_baths", "bathrooms_total", ">="),
            ("min_year_built", "year_built", ">="),
            ("max_year_built", "year_built", "<="),
            ("min_living_area", "living_area", ">="),
            ("max_living_area", "living_area", "<="),
        ):
            value = getattr(f, name)
            if value is not None:
                params[name] = value
                clauses.append(f"{column} {op} %({name})s")
        if f.property_types:
            params["types"] = list(f.property_types)
            clauses.append("property_type = ANY(%(types)s)")
        if f.city:
            params["city"] = city_key(f.city)
            clauses.append("city_key = %(city)s")
        if f.postal_code:
            params["postal"] = postal_key(f.postal_code)
            clauses.append("postal_code = %(postal)s")
        if f.features:
            params["features"] = sorted({feature_key(x) for x in f.features})
            clauses.append("feature_keys @> %(features)s::text[]")
        if f.bbox:
            params["bbox"] = box_literal(f.bbox)
            clauses.append(f"{location} <@ %(bbox)s::box")
        if f.polygon:
            params["polygon"] = "(" + ",".join(f"({lon!r},{lat!r})" for lat, lon in f.polygon) + ")"
            clauses.append(f"{location} <@ %(polygon)s::polygon")
        if f.near is not None:
            params["near_lat"], params["near_lon"] = f.near
            radius = radius_km if radius_km is not None else f.radius_km
            if radius is not None:
                name = "radius_km" if radius_km is None else "ring_km"
                params[name] = radius
                within = []
                for index, box in enumerate(radius_boxes(f.near[0], f.near[1], radius)):
                    params[f"{name}_box{index}"] = box_literal(box)
                    within.append(f"{location} <@ %({name}_box{index})s::box")
                clauses.append("(" + " OR ".join(within) + ")")
                clauses.append(f"{_DISTANCE} <= %({name})s")
            else:
                clauses.append("location IS NOT NULL")
        return " AND ".join(clauses)

    def _distance(self) -> str:
        return _DISTANCE if self.filters.near is not None else "NULL::float8"

    def _keyset(self, after: list | None, params: dict) -> str:
        if after is None:
            return ""
        key, direction, kind = _SORT_KEYS[self.sort]
        params["after_key"], params["after_id"] = after[-2], after[-1]
        compare = "<" if direction == "DESC" else ">"
        return f" AND ({key}, id) {compare} (%(after_key)s::{kind}, %(after_id)s::uuid)"

    def page_sql(
        self,
        after: list | None = None,
        *,
        where: str | None = None,
        direct: bool = False,
        tier: int | None = None,
        cells: list[int] | None = None,
        collect: bool = False,
    ) -> tuple[str, dict]:
        """One page under ``where`` (default: the whole filter), after ``after``.

        Rows: the card columns, ``distance_km``, then the sort key values (the
        tier first for relevance). By default the page's ids and keys are
        chosen first (an index-only scan where the covering indexes allow) and
        only those rows are read whole; ``direct`` reads whole rows at once
        (text queries read them anyway). ``tier`` adds that relevance tier's
        condition. ``cells`` (newest first only): the grid cells
        (``models.search.index.grid_cells``) holding every match; the first rows
        of each cell in sort order are read from the cell index and merged.
        ``collect``: the ids are chosen with the sort hidden from the indexes
        (every match is collected, then sorted: for a few counted matches).
        """
        key, direction, _ = _SORT_KEYS[self.sort]
        params = dict(self.params, limit=self.limit + 1)
        where = (where or self.where) + self._keyset(after, params)
        order = f"ORDER BY {key} {direction}, id {direction} LIMIT %(limit)s"
        if direct or tier is not None:
            keys = f"{tier}, {key}" if tier is not None else key
            condition = f" AND {dict(RELEVANCE_TIERS)[tier]}" if tier is not None else ""
            return (
                f"SELECT {', '.join(CARD_COLUMNS)}, {self._distance()}, {keys} FROM {self.table} "  # noqa: S608 - checked table, constant SQL, values as params (see ListingQuery)
                f"WHERE {where}{condition} {order}",
                params,
            )
        if collect and self.sort in _ZERO:
            order = f"ORDER BY ({key}) + {_ZERO[self.sort]} {direction}, id {direction} LIMIT %(limit)s"
        chosen = f"SELECT id, {key} AS key, {self._distance()} AS distance FROM {self.table} WHERE {where} {order}"  # noqa: S608 - checked table, constant SQL, values as params (see ListingQuery)
        if cells is not None:
            if self.sort != "newest":
                raise ValueError("cells serve the newest-first sort only")
            params["cells"] = cells
            chosen = (
                f"SELECT c.* FROM unnest(%(cells)s::integer[]) g(cell) CROSS JOIN LATERAL ("  # noqa: S608 - checked table, constant SQL, values as params (see ListingQuery)
                f"SELECT id, {key} AS key, {self._distance()} AS distance FROM {self.table} "
                f"WHERE {CELL} = g.cell AND {where} {order}) c "
                f"ORDER BY c.key {direction}, c.id {direction} LIMIT %(limit)s"
            )
        columns = ", ".join(f"p.{column}" for column in CARD_COLUMNS)
        return (
            f"SELECT {columns}, h.distance, h.key FROM ({chosen}) h JOIN {self.table} p ON p.id = h.id "  # noqa: S608 - checked table, constant SQL, values as params (see ListingQuery)
            f"ORDER BY h.key {direction}, h.id {direction}",
            params,
        )

    def count_sql(self, bound: int) -> tuple[str, dict]:
        return (
            f"SELECT count(*) FROM (SELECT 1 FROM {self.table} WHERE {self.where} LIMIT %(bound)s) s",  # noqa: S608 - checked table, constant SQL, values as params (see ListingQuery)
            dict(self.params, bound=bound + 1),
        )

    def facet_sql(self, bound: int | None, sample_percent: float | None = None) -> tuple[str, dict]:
        params = dict(self.params, bands=list(PRICE_BANDS))
        source = self.table
        if sample_percent is not None:
            source += " TABLESAMPLE SYSTEM (%(sample)s) REPEATABLE (7)"
            params["sample"] = sample_percent
        limit = ""
        if bound is not None:
            limit = " LIMIT %(bound)s"
            params["bound"] = bound + 1
        return facet_select(source, self.where, limit), params

    def _probe_sql(self, rows: int) -> tuple[str, dict]:
        """How many of the first ``rows`` rows of the non-text filter, in sort order, match the text."""
        key, direction, _ = _SORT_KEYS[self.sort]
        return (
            f"SELECT count(*) FILTER (WHERE {self.text}) FROM (SELECT tsv FROM {self.table} "  # noqa: S608 - checked table, constant SQL, values as params (see ListingQuery)
            f"WHERE {self.base} ORDER BY {key} {direction}, id {direction} LIMIT %(probe)s) r",
            dict(self.params, probe=rows),
        )

    def _walk_sql(self, after: list | None, tier: int | None, needed: int, budget: int) -> tuple[str, dict]:
        """Read at most ``budget`` rows of the non-text filter in sort order, keep the text matches.

        Rows: each match (card columns, distance, sort key values, then
        ``hit``, ``examined``, the raw key and the id), and the last row read
        even when it does not match (``hit`` false), so the caller knows how far
        the walk got and whether it reached the end; ``text_hits`` counts the
        rows read that match the text at all (the density of the matches).
        """
        key, direction, _ = _SORT_KEYS[self.sort]
        params = dict(self.params, budget=budget, needed=needed)
        where = self.base + self._keyset(after, params)
        hit = self.text + (f" AND {dict(RELEVANCE_TIERS)[tier]}" if tier is not None else "")
        cards = ", ".join(f"c{i}" for i in range(len(CARD_COLUMNS)))
        named = ", ".join(f"{column} AS c{i}" for i, column in enumerate(CARD_COLUMNS))
        keys = f"{tier}, k" if tier is not None else "k"
        order = f"ORDER BY k {direction}, c0 {direction}"
        sql = (
            f"SELECT {cards}, distance, {keys}, hit, examined, k, c0, text_hits FROM ("  # noqa: S608 - checked table, constant SQL, values as params (see ListingQuery)
            f"SELECT *, row_number() OVER ({order}) AS rn, count(*) OVER () AS examined, "
            f"count(*) FILTER (WHERE hit) OVER ({order}) AS hit_no, "
            "count(*) FILTER (WHERE text_hit) OVER () AS text_hits FROM ("
            f"SELECT {named}, {self._distance()} AS distance, {key} AS k, ({hit}) AS hit, "
            f"({self.text}) AS text_hit FROM {self.table} WHERE {where} "
            f"ORDER BY {key} {direction}, id {direction} LIMIT %(budget)s) r) w "
            "WHERE (hit AND hit_no <= %(needed)s) OR rn = examined ORDER BY rn"
        )
        return sql, params

    def _gin_page_sql(self, after: list | None, tier: int | None, limit: int) -> tuple[str, dict]:
        """Up to ``limit`` text matches after ``after``, collected through the GIN index and sorted.

        The ORDER BY is one the sort index cannot serve, so the planner does
        not walk the sort order (for few matches, reading them all is cheaper).
        """
        sql, params = self.page_sql(after, direct=True, tier=tier)
        key, direction, _ = _SORT_KEYS[self.sort]
        sql = sql.replace(f"ORDER BY {key} {direction}", f"ORDER BY ({key}) + {_ZERO[self.sort]} {direction}")
        params["limit"] = limit
        return sql, params


def card(row) -> dict:
    """A page row (card columns, then the distance) as the listing card a search answers with."""
    (
        id_,
        status,
        ptype,
        subtype,
        currency,
        price,
        beds,
        baths,
        full,
        half,
        area,
        units,
        year,
        address,
        city,
        region,
        postal,
        country,
        lat,
        lon,
        features,
        listed_at,
        modified_at,
    ) = row[: len(CARD_COLUMNS)]
    distance = row[len(CARD_COLUMNS)]
    return {
        "id": str(id_),
        "standard_status": status,
        "property_type": ptype,
        "property_sub_type": subtype,
        "currency": currency,
        "list_price": price,
        "bedrooms_total": beds,
        "bathrooms_total": baths,
        "bathrooms_full": full,
        "bathrooms_half": half,
        "living_area": area,
        "living_area_units": units,
        "year_built": year,
        "unparsed_address": address,
        "city": city,
        "state_or_province": region,
        "postal_code": postal,
        "country": country,
        "latitude": lat,
        "longitude": lon,
        "features": list(features or ()),
        "listed_at": listed_at.isoformat(),
        "modification_timestamp": modified_at.isoformat(),
        "distance_km": round(distance, 3) if distance is not None else None,
    }


__all__ = ["CARD_COLUMNS", "RELEVANCE_TIERS", "ListingQuery", "card"]
