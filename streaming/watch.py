"""Watch forecasts arrive on the forecasts topic: ``python -m streaming.watch [--from-beginning]``.

A console consumer for people (not a group member: it commits nothing), one line per
forecast: region, origin, the model that answered, the first step's mean and interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys


async def watch(*, from_beginning: bool, limit: int | None) -> int:
    from aiokafka import AIOKafkaConsumer

    from gridcast.settings import get_settings

    settings = get_settings()
    consumer = AIOKafkaConsumer(
        settings.topic_forecasts, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
        enable_auto_commit=False, auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    seen = 0
    try:
        async for msg in consumer:
            doc = json.loads(msg.value)
            if "error" in doc:
                line = f"{doc.get('region')}: no forecast ({doc['error']}: {doc.get('detail')})"
            else:
                p = doc["points"][0]
                line = (f"{doc['region']:<16} origin {doc['origin']}  {doc['model']:<8} "
                        f"next {p['mean']:10.1f} MW [{p['lower']:.1f}, {p['upper']:.1f}]  h={len(doc['points'])}")
            if doc.get("request_id"):
                line += f"  (answer to {doc['request_id']})"
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            seen += 1
            if limit is not None and seen >= limit:
                break
    finally:
        await consumer.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.watch", description=__doc__)
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest forecast kept")
    parser.add_argument("--limit", type=int, help="stop after this many forecasts")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(watch(from_beginning=args.from_beginning, limit=args.limit))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
