"""The rules of a search's parameters on their own, as the saved-search alert scan applies them."""

from __future__ import annotations

import pytest

from models.search import DEFAULT_STATUSES, InvalidSearch, SearchFilters, parse_query


def test_a_query_becomes_its_filters_and_sort():
    filters, sort = parse_query(
        {
            "q": "  pool ",
            "status": ["Active", "Active"],
            "min_beds": 3,
            "bbox": "-97.8,30.2,-97.6,30.3",
            "polygon": "30 -97,31 -97,31 -96,30 -97",
        }
    )
    assert sort == "relevance"  # the default with q
    assert filters == SearchFilters(
        q="pool",
        statuses=("Active",),
        min_beds=3,
        bbox=(-97.8, 30.2, -97.6, 30.3),
        polygon=((30.0, -97.0), (31.0, -97.0), (31.0, -96.0)),
    )
    assert parse_query({}) == (SearchFilters(statuses=DEFAULT_STATUSES), "newest")


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"min_price": 500, "max_price": 100}, ("min_price", "must not exceed max_price")),
        (
            {"bbox": "-97.6,30.2,-97.8,30.3"},
            ("bbox", "minLon must not exceed maxLon (split a box across the antimeridian in two)"),
        ),
        ({"near": "91,0"}, ("near", "latitude must be between -90 and 90")),
        ({"radius_km": 5}, ("radius_km", "needs near")),
        ({"polygon": "30 -97,31 -97"}, ("polygon", "at least 3 points")),
        ({"sort": "relevance"}, ("sort", "relevance sort needs q")),
        ({"status": ["Withdrawn"]}, ("status[0]", "Invalid enum value 'Withdrawn'")),
        ({"near": "30,-97", "radius_km": 501}, ("radius_km", "Expected `float` <= 500.0")),
        ({"features": "Pool"}, ("features", "Expected `array | null`, got `str`")),
        ({"bedrooms": 3}, ("", "Object contains unknown field `bedrooms`")),
    ],
)
def test_a_refused_query_names_the_parameter_and_why(query, error):
    with pytest.raises(InvalidSearch) as refused:
        parse_query(query)
    assert refused.value.errors == [error]
