"""The Live tab with a published forecast: a service on real Redis, the bridge's key written.

The streaming bridge stores each region's latest forecast under
``latest_forecast_key(region)`` in the Redis cache the service reads; here the test
plays the bridge (the same cache class and key, a forecast computed by the service),
so the UI must switch from "no live data" to showing that forecast. Needs the Redis of
``make services-up`` (127.0.0.1:6379); keys live under a unique prefix.
"""

from __future__ import annotations

import pytest

from ui.app import live_view
from ui.client import ServiceClient


@pytest.mark.slow
@pytest.mark.integration
def test_live_view_shows_the_bridges_latest_forecast(redis_service, ui_settings) -> None:
    from gridcast.cache import latest_forecast_key, make_cache
    from gridcast.settings import Settings

    from gridcast.stores import make_state_store
    from gridcast.synthetic import generate
    from gridcast.schema import region_frame

    url, prefix = redis_service
    client = ServiceClient(url)
    before = live_view(client, "region-2", settings=ui_settings)
    assert before.live is False and "No live data" in before.status

    # the bridge's two writes: observations into the state store, the latest forecast into the cache
    bridge_settings = Settings(redis_url="redis://127.0.0.1:6379/0", redis_key_prefix=prefix)
    df, _ = generate(days=80, regions=2, seed=5)
    observed = region_frame(df, "region-2").tail(48)
    make_state_store(bridge_settings).add_observations("region-2", observed)
    published = client.forecast({"region": "region-2", "model": "naive", "horizon": 12, "level": [80]})
    published = dict(published, request_id=None)  # what the bridge adds to a scheduled forecast
    make_cache(bridge_settings).set(latest_forecast_key("region-2"), published, 300)

    after = live_view(client, "region-2", settings=ui_settings)
    assert after.live is True
    assert after.n_observations == 48
    assert f"Last observation: {observed.index[-1]:%Y-%m-%d %H:%M} UTC" in after.status
    assert after.status.startswith("**Live**") and published["model_version"] in after.status
    means = [t for t in after.figure.data if t.meta == "forecast-mean"]
    assert len(means) == 1 and len(means[0].x) == 12  # the published forecast, not an on-demand one
    assert live_view(client, "region-1", settings=ui_settings).live is False  # nothing published there
