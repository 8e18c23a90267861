"""The published OpenAPI document tells the truth: schemathesis fuzzes a served process against it.

Checks (bounded budget, fixed seed): no 5xx, responses and status codes as documented,
content types as documented, and schema-valid requests accepted — except the documented
422s for what JSON Schema cannot state (timestamps on the model's grid, strictly
increasing, weather after the history), configured in ``schemathesis.toml`` beside this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import served_service

pytestmark = [pytest.mark.slow, pytest.mark.integration]
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def served_url(served_home, tmp_path_factory) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCAST_")}
    env.update(BENTOML_HOME=str(served_home), GRIDCAST_UI_MOUNT="false")
    with served_service(env, tmp_path_factory.mktemp("openapi") / "serve.log") as url:
        yield url


def test_every_route_declares_its_errors_with_their_body(served_url):
    spec = httpx.get(f"{served_url}/docs.json", timeout=30).json()
    assert "ErrorBody" in spec["components"]["schemas"]
    forecast = spec["paths"]["/forecast"]["post"]
    assert set(forecast["responses"]) >= {"200", "400", "404", "413", "415", "422", "503"}
    assert forecast["responses"]["503"]["headers"]["Retry-After"]
    for status, response in forecast["responses"].items():
        if status != "200":
            assert response["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    query = spec["components"]["schemas"]["ForecastQueryIODescriptor"]["properties"]
    assert query["region"]["enum"] == ["region-1", "region-2"]
    assert query["horizon"]["maximum"] == 168 and query["level"]["items"]["maximum"] == 99


def test_schemathesis_finds_no_lie_in_the_document(served_url, tmp_path):
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(HERE / "schemathesis.toml"), "run",
           f"{served_url}/docs.json", "--max-examples", "30", "--seed", "1",
           "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                       "response_schema_conformance,positive_data_acceptance",
           "--include-path-regex", "^/(forecast|forecast_batch|recent|models|admin/observations)$",
           "--request-timeout", "30", "--report", "ndjson", "--report-ndjson-path", str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
