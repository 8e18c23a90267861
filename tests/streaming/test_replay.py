"""``gridcast replay``: a canonical table becomes time-ordered observations on Kafka."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tests.streaming.streamkit import consume_all

from training.cli import main
from training.data.synthetic import generate
from gridcast.schema import write_table

pytestmark = pytest.mark.integration


@pytest.fixture
def table(tmp_path):
    df, meta = generate(days=3, regions=2, seed=5)
    path = tmp_path / "t.parquet"
    write_table(df, path, meta)
    return path, df


async def test_replay_sends_every_row_in_time_order_keyed_by_region(stream, table, monkeypatch):
    path, df = table
    s = stream.settings
    for k, v in stream.env.items():
        monkeypatch.setenv(k, v)
    from gridcast.settings import get_settings

    get_settings.cache_clear()
    try:
        import asyncio

        rc = await asyncio.to_thread(main, ["replay", "--data", str(path), "--speed", "0", "--regions", "region-2"])
    finally:
        get_settings.cache_clear()
    assert rc == 0
    expected = df[df["region"] == "region-2"].sort_values("timestamp")
    msgs = await consume_all(s.kafka_bootstrap, s.topic_observations, until=lambda ms: len(ms) >= len(expected))
    assert len(msgs) == len(expected)
    assert {m.key for m in msgs} == {b"region-2"} and len({m.partition for m in msgs}) == 1
    msgs.sort(key=lambda m: m.offset)  # one partition: offset order is the order they were sent in
    docs = [json.loads(m.value) for m in msgs]
    assert [pd.Timestamp(d["timestamp"]) for d in docs] == list(expected["timestamp"])
    assert [d["load_mw"] for d in docs] == pytest.approx(expected["load_mw"].tolist())
    assert all(d["region"] == "region-2" and "temperature_c" in d for d in docs)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "/nonexistent.parquet"], "no such file"),
        (["--speed", "-1"], "--speed must be >= 0"),
        (["--regions", "atlantis"], "unknown region(s) atlantis"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
    ids=["missing-file", "negative-speed", "unknown-region", "zero-limit"],
)
def test_bad_replay_arguments_are_one_line_errors(table, capsys, args, message):
    path, _ = table
    argv = ["replay", "--data", str(path), *args] if args[0] != "--data" else ["replay", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
