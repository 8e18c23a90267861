"""The shared HTTP client: retries with backoff/jitter, Retry-After, rate limit, auth errors."""

from __future__ import annotations

import httpx
import pytest
import respx

from training.collect import AuthError, SourceError
from training.collect.http import redact

URL = "https://source.test/data"


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(httpx.Response(429, headers={"Retry-After": "2"}), id="429-retry-after"),
        pytest.param(httpx.Response(503), id="503"),
        pytest.param(httpx.ConnectTimeout("slow"), id="timeout"),
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
    ],
)
def test_transient_failure_then_success(make_client, sleeps, first):
    with respx.mock:
        route = respx.get(URL).mock(side_effect=[first, httpx.Response(200, json={"ok": True})])
        response = make_client().get(URL, {"a": "1"})
    assert response.json() == {"ok": True}
    assert route.call_count == 2
    assert len(sleeps) == 1
    if isinstance(first, httpx.Response) and "Retry-After" in first.headers:
        assert sleeps == [2.0]  # the server's wish wins over our backoff
    else:
        assert 0 <= sleeps[0] <= 0.01  # first backoff: full jitter in [0, backoff_s]


def test_500_gives_up_after_max_retries_with_growing_backoff(make_client, sleeps, settings):
    with respx.mock:
        route = respx.get(URL).mock(return_value=httpx.Response(500, text="upstream broke"))
        with pytest.raises(SourceError, match=r"still failing after 4 attempts: HTTP 500"):
            make_client("EIA").get(URL, {})
    assert route.call_count == settings.collect_max_retries + 1
    assert len(sleeps) == settings.collect_max_retries
    caps = [settings.collect_backoff_s * 2**i for i in range(len(sleeps))]
    assert all(0 <= s <= cap for s, cap in zip(sleeps, caps, strict=True))


def test_backoff_grows_with_every_attempt_up_to_its_cap(settings):
    """With the jitter at its top, the waits are exactly base·2^n, capped: zero waits would fail this."""
    import random

    from training.collect.http import HttpClient, RetryPolicy

    class Highest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    waits: list[float] = []
    policy = RetryPolicy(5, 1.0, 10.0)
    client = HttpClient.from_settings(settings, "test", sleep=waits.append, rng=Highest(), retry=policy)
    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(503))
        with pytest.raises(SourceError):
            client.get(URL, {})
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0]


@pytest.mark.parametrize("status", [401, 403], ids=["401", "403"])
def test_auth_error_is_immediate_and_names_the_variable(make_client, sleeps, status):
    with respx.mock:
        route = respx.get(URL).mock(return_value=httpx.Response(status, text="Unauthorized"))
        with pytest.raises(AuthError, match=rf"ENTSO-E rejected the credentials \(HTTP {status}\); check ENTSOE_API_TOKEN"):
            make_client("ENTSO-E", "ENTSOE_API_TOKEN").get(URL, {"securityToken": "secret"})
    assert route.call_count == 1 and sleeps == []


def test_other_4xx_is_not_retried_and_hides_the_token(make_client):
    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(404, text="not here"))
        with pytest.raises(SourceError) as err:
            make_client("EIA").get(URL, {"api_key": "very-secret"})
    assert "HTTP 404" in err.value.detail
    assert "very-secret" not in err.value.detail and "api_key=***" in err.value.detail


def test_rate_limit_spaces_requests(settings, sleeps):
    from training.collect.http import HttpClient

    clock = iter([0.0, 0.1, 0.2]).__next__
    client = HttpClient("x", rate_per_s=2.0, sleep=sleeps.append, clock=clock)
    with respx.mock:
        respx.get(URL).mock(return_value=httpx.Response(200))
        for _ in range(3):
            client.get(URL, {})
    # 0.5 s between requests: the 2nd came 0.1 s after the 1st, the 3rd 0.1 s after the 2nd's slot (0.5 s)
    assert sleeps == pytest.approx([0.4, 0.8])
    assert client.requests_made == 3


def test_redact():
    assert redact("u?api_key=k1&x=2&securityToken=t") == "u?api_key=***&x=2&securityToken=***"


def test_tokens_never_reach_the_logs(make_client, caplog):
    with respx.mock, caplog.at_level("DEBUG"):
        respx.get(URL).mock(side_effect=[httpx.Response(503), httpx.Response(200)])
        make_client("ENTSO-E").get(URL, {"securityToken": "s3cr3t-token", "documentType": "A65"})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request" in logged  # httpx did log the URL ...
    assert "s3cr3t-token" not in logged  # ... without the token
