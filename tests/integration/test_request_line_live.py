"""The longest request lines, against gunicorn as deployed (ops/gunicorn.conf.py)."""

from __future__ import annotations

import math
from urllib.parse import quote

import httpx
import pytest

from tests.integration.processes import start_gunicorn

pytestmark = pytest.mark.integration


def _encode_uri_component(text: str) -> str:
    # What a browser's encodeURIComponent leaves as it is.
    return quote(text, safe="-_.!~*'()")


def _polygon(points: int) -> str:
    """A ring of ``points`` points around Austin, each number as JavaScript prints a double (~17 digits)."""
    return ",".join(
        f"{30.2672 + 0.05 * math.sin(2 * math.pi * i / points)!r} "
        f"{-97.7431 + 0.05 * math.cos(2 * math.pi * i / points)!r}"
        for i in range(points)
    )


@pytest.fixture
def web(live_env, logs, procs):
    proc, base = start_gunicorn(live_env, logs, config=True)
    procs.append(proc)
    return base


def test_a_hundred_point_polygon_with_filters_is_searched(web):
    query = "&".join(
        f"{name}={_encode_uri_component(value)}"
        for name, value in (
            ("polygon", _polygon(100)),
            ("q", 'jardín soleado "south facing"'),
            ("city", "Austin"),
            ("features", "Pool,Garage,Fireplace"),
            ("min_price", "25000000"),
            ("min_beds", "3"),
            ("sort", "price_asc"),
        )
    )
    line = f"GET /v1/properties?{query} HTTP/1.1"
    assert 4094 < len(line) < 8190  # over gunicorn's default limit, which answered it 414 in HTML
    resp = httpx.get(f"{web}/v1/properties?{query}", timeout=10)
    assert resp.status_code == 200, resp.text


def test_a_request_line_over_the_limit_is_a_problem_json_414(web):
    resp = httpx.get(f"{web}/v1/properties?polygon={'1' * 8200}", timeout=10)
    assert resp.status_code == 414
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert (body["status"], body["type"]) == (414, "https://hearth.dev/problems/uri-too-long")
    assert "8190 bytes" in body["detail"] and body["request_id"] == resp.headers["X-Request-ID"]
    # The worker that answered goes on serving.
    assert httpx.get(f"{web}/healthz", timeout=10).status_code == 200
