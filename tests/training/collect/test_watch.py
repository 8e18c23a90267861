"""Live collection: polling, publishing only what is new, the schedule, and real Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest
import respx

from training.collect import SourceError
from training.collect.watch import KafkaPublisher, Watcher, run_schedule, to_messages
from gridcast.errors import UserInputError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "collect"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class Recorder:
    """Collects published messages (the scheduling logic's test double; Kafka itself is tested below)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, dict]]] = []

    async def publish(self, messages):
        self.batches.append(list(messages))


def _answer(request: httpx.Request) -> httpx.Response:
    params = request.url.params
    if "processType" in params:
        return httpx.Response(200, content=fixture_bytes(f"entsoe_A65_{params['processType']}_ES.xml"))
    if "forecast_days" in params:
        return httpx.Response(200, content=fixture_bytes("openmeteo_forecast_madrid.json"))
    return httpx.Response(200, content=fixture_bytes("openmeteo_archive_madrid.json"))


@pytest.fixture
def watcher(collector, settings, tmp_path):
    recorder = Recorder()
    w = Watcher(collector=collector, publisher=recorder, source="entsoe", zone="ES", points="40.4,-3.7",
                state_path=tmp_path / "watch.json", lookback=pd.Timedelta(hours=48), forecast_days=2,
                forecast_path=settings.forecast_weather_path)
    return w, recorder


async def test_publishes_only_new_observations_and_refreshes_the_forecast(watcher, settings):
    w, recorder = watcher
    with respx.mock:
        respx.get(url__regex=r"https://.*\.test/.*").mock(side_effect=_answer)
        first = await w.poll_once(pd.Timestamp("2024-04-01T00:30", tz="UTC"))
        again = await w.poll_once(pd.Timestamp("2024-04-01T00:40", tz="UTC"))
        later = await w.poll_once(pd.Timestamp("2024-04-01T22:30", tz="UTC"))
    assert (first, again, later) == (48, 0, 22)  # the fixture's load ends at 2024-04-01T21:00 UTC
    key, value = recorder.batches[0][0]
    assert key == "ES"
    assert value["region"] == "ES" and value["timestamp"] == "2024-03-30T00:00:00+00:00"
    assert {"load_mw", "reference_mw", "temperature_c"} <= set(value)
    assert json.loads(json.dumps(value)) == value  # JSON-able as is
    last = recorder.batches[-1][-1][1]
    assert last["timestamp"] == "2024-04-01T21:00:00+00:00"
    assert "temperature_c" not in last  # no weather for that hour in the fixture: left out, not NaN
    assert json.loads(w.state_path.read_text()) == {"last_published": "2024-04-01T21:00:00+00:00"}
    forecast = pd.read_parquet(settings.forecast_weather_path)
    assert forecast["region"].unique().tolist() == ["ES"] and len(forecast) == 48


async def test_an_empty_window_is_an_upstream_outage_not_the_end(watcher, settings):
    w, recorder = watcher
    with respx.mock:
        respx.get(settings.entsoe_url).mock(
            return_value=httpx.Response(200, content=fixture_bytes("entsoe_acknowledgement_no_data.xml")))
        respx.get(url__regex=r"https://.*openmeteo\.test/.*").mock(side_effect=_answer)
        published = await w.poll_once(pd.Timestamp("2024-04-09T00:30", tz="UTC"))
    assert published == 0 and recorder.batches == []
    assert settings.forecast_weather_path.exists()  # the weather forecast is still refreshed


def test_to_messages_skips_missing_load():
    ts = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    table = pd.DataFrame({"timestamp": ts, "region": "PJM", "load_mw": [1.0, float("nan"), 3.0],
                          "temperature_c": [float("nan"), 2.0, 3.0]})
    messages = to_messages(table, after=ts[0])
    assert messages == [("PJM", {"timestamp": ts[2].isoformat(), "region": "PJM", "load_mw": 3.0, "temperature_c": 3.0})]


async def test_schedule_keeps_going_after_a_source_failure_and_keeps_the_pace():
    ticks = iter(pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(seconds=s) for s in (0, 2, 10, 11, 20, 25))
    sleeps: list[float] = []
    outcomes = iter([SourceError("ENTSO-E still failing"), 5, 7])

    async def poll(now):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def sleep(seconds):
        sleeps.append(seconds)

    total = await run_schedule(poll, every_s=10, iterations=3, clock=lambda: next(ticks), sleep=sleep)
    assert total == 12
    assert sleeps == [8.0, 9.0]  # every 10 s, minus each poll's own duration


async def test_schedule_stops_on_a_user_error():
    async def poll(now):
        raise UserInputError("ENTSO-E needs a security token")

    async def sleep(seconds):  # pragma: no cover - must not be reached
        raise AssertionError("should have stopped")

    with pytest.raises(UserInputError):
        await run_schedule(poll, every_s=1, iterations=None, sleep=sleep)


@pytest.mark.integration
async def test_kafka_publisher_round_trip(settings):
    """Against the local broker (`scripts/kafka.sh up`, done by `make test`): keyed JSON lands on the topic."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"gridcast.test-collect-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        publisher = KafkaPublisher(settings.kafka_bootstrap, topic)
        await publisher.start()
        sent = [("ES", {"region": "ES", "timestamp": f"2024-04-01T0{h}:00:00+00:00", "load_mw": 25000.0 + h})
                for h in range(3)]
        try:
            await publisher.publish(sent)
        finally:
            await publisher.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            got = []
            async with asyncio.timeout(20):
                while len(got) < len(sent):
                    record = await consumer.getone()
                    got.append((record.key.decode(), json.loads(record.value)))
        finally:
            await consumer.stop()
        assert got == sent
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def test_each_poll_publishes_the_weather_forecast_as_a_vintage_the_bridge_accepts(collector, settings, tmp_path):
    from gridcast.settings import Settings
    from streaming.vintages import parse_weather

    observations, weather = Recorder(), Recorder()
    w = Watcher(collector=collector, publisher=observations, source="entsoe", zone="ES", points="40.4,-3.7",
                state_path=tmp_path / "watch.json", lookback=pd.Timedelta(hours=48), forecast_days=2,
                forecast_path=settings.forecast_weather_path, weather_publisher=weather)
    with respx.mock:
        respx.get(url__regex=r"https://.*\.test/.*").mock(side_effect=_answer)
        await w.poll_once(pd.Timestamp("2024-04-01T00:30", tz="UTC"))
    [[(key, doc)]] = weather.batches
    vintage = parse_weather(json.dumps(doc).encode(), settings=Settings(_env_file=None))
    assert key == "ES" == vintage.region
    assert vintage.weather.start > vintage.issued_at and len(vintage.weather) > 0
    forecast = pd.read_parquet(settings.forecast_weather_path)
    assert pd.Timestamp(vintage.issued_at, unit="s", tz="UTC") == pd.Timestamp(forecast["issued_at"].iloc[0]).floor("h")
