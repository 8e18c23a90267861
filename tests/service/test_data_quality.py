"""``POST /data/check`` and ``GET /data/sample`` through the ASGI test client.

The service runs the core's quality checks (:mod:`gridcast.quality`) on a table a client
sends; the UI's data-quality tab is such a client. Errors are ``{error, detail, field}``.
"""

from __future__ import annotations

import pytest


def _csv(rows: list[tuple[str, float, float]]) -> str:
    return "timestamp,region,load_mw,temperature_c\n" + "".join(f"{t},r,{lo},{te}\n" for t, lo, te in rows)


def test_faulty_sample_is_checked_and_its_faults_found(client):
    sample = client.get("/data/sample", params={"days": 60, "faults": "true"})
    assert sample.status_code == 200, sample.text
    body = sample.json()
    assert body["meta"]["synthetic"] is True and body["meta"]["faults"]
    r = client.post("/data/check", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["rows_in"] == len(body["columns"]["timestamp"])
    assert answer["rows_clean"] == len(answer["clean"]["timestamp"])
    counts = {name: c["count"] for name, c in answer["report"]["checks"].items()}
    assert counts["duplicates_exact"] > 0 and counts["gaps"] > 0 and counts["spikes"] > 0
    assert isinstance(answer["usable"], bool) and answer["freq"] == "1h"


def test_csv_body_without_the_clean_table(client):
    stamps = [f"2024-01-{d:02d}T{h:02d}:00Z" for d in range(1, 22) for h in range(24)]
    text = _csv([(t, 100.0 + (i % 24), 25.0) for i, t in enumerate(stamps)])
    r = client.post("/data/check", json={"csv": text, "include_clean": False})
    assert r.status_code == 200, r.text
    assert "clean" not in r.json() and r.json()["rows_in"] == len(stamps)


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"csv": "timestamp,region,load_mw\n2024-01-01T00:00Z,r,1\n"}, 422, "temperature_c"),
        ({"csv": _csv([("2024-01-01T00:00Z", 1, 2), ("yesterday", 1, 2)])}, 422, "timestamp"),
        ({"csv": _csv([("2024-01-01T00:00Z", 1, 2), ("2024-01-01T01:00Z", "lots", 2)])}, 422, "load_mw"),
        ({"columns": {"timestamp": ["2024-01-01T00:00Z"], "region": ["r", "r"], "load_mw": [1],
                      "temperature_c": [1]}}, 422, "columns"),
        ({}, 400, None),
        ({"csv": "a", "columns": {}}, 400, None),
    ],
    ids=["missing-column", "bad-timestamp", "bad-number", "unequal-lengths", "empty", "both-forms"],
)
def test_bad_tables_get_4xx_naming_the_field(client, body, status, field):
    r = client.post("/data/check", json=body)
    assert r.status_code == status, r.text
    doc = r.json()
    assert set(doc) == {"error", "detail", "field"}
    if field:
        assert doc["field"] == field
        assert "row" in doc["detail"] or field in doc["detail"]


def test_check_takes_json_only_and_is_size_bounded(client, monkeypatch):
    r = client.post("/data/check", content=b"timestamp,region\n", headers={"content-type": "text/csv"})
    assert r.status_code == 415 and r.json()["field"] == "content-type"
    monkeypatch.setenv("GRIDCAST_MAX_BODY_BYTES", "2048")
    from gridcast.settings import get_settings

    get_settings.cache_clear()
    r = client.post("/data/check", json={"csv": "x" * 4096})
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


@pytest.mark.parametrize("params, field", [({"days": 5000}, "days"), ({"regions": 0}, "regions"),
                                           ({"days": 20, "faults": "true"}, "days")])
def test_sample_is_bounded(client, params, field):
    r = client.get("/data/sample", params=params)
    assert r.status_code == 422 and r.json()["field"] == field
