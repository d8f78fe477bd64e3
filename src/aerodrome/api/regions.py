"""Fly's region codes. One aerodrome host serves any of them; `--regions` narrows the set."""

from __future__ import annotations

_TABLE = (
    ("ams", "Amsterdam, Netherlands", 52.374342, 4.895439, "EU"),
    ("arn", "Stockholm, Sweden", 59.6512, 17.9178, "EU"),
    ("bom", "Mumbai, India", 19.097403, 72.874245, "AP"),
    ("cdg", "Paris, France", 48.860875, 2.353477, "EU"),
    ("dfw", "Dallas, Texas (US)", 32.778287, -96.7984, "NA"),
    ("ewr", "Secaucus, NJ (US)", 40.789543, -74.056534, "NA"),
    ("fra", "Frankfurt, Germany", 50.1167, 8.6833, "EU"),
    ("gru", "Sao Paulo, Brazil", -23.549664, -46.654351, "SA"),
    ("iad", "Ashburn, Virginia (US)", 39.02214, -77.462555, "NA"),
    ("jnb", "Johannesburg, South Africa", -26.13629, 28.20298, "AF"),
    ("lax", "Los Angeles, California (US)", 33.9416, -118.4085, "NA"),
    ("lhr", "London, United Kingdom", 51.516434, -0.125656, "EU"),
    ("nrt", "Tokyo, Japan", 35.621124, 139.741546, "AP"),
    ("ord", "Chicago, Illinois (US)", 41.891544, -87.630386, "NA"),
    ("sin", "Singapore, Singapore", 1.3, 103.8, "AP"),
    ("sjc", "San Jose, California (US)", 37.351601, -121.896744, "NA"),
    ("syd", "Sydney, Australia", -33.866034, 151.20693, "OC"),
    ("yyz", "Toronto, Canada", 43.644397, -79.381216, "NA"),
)

REGIONS: list[dict[str, object]] = [
    {
        "code": code,
        "name": name,
        "latitude": lat,
        "longitude": lon,
        "gateway_available": True,
        "requires_paid_plan": False,
        "deprecated": False,
        "geo_region": geo,
    }
    for code, name, lat, lon, geo in _TABLE
]
