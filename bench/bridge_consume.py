"""The bridge's consumers alone: a stream filled once, read back by each reader in turn, in
alternating rounds of one run, CPU per event (``time.process_time``) beside events/s.

Run: ``python -m bench.bridge_consume --events 100000 --rounds 3 [--old PATH]`` (``--old``:
another ``_consume.py``, e.g. ``git show main:src/mxgateway/bridge/_consume.py``, measured
in the same rounds). The stream (items layout: one message per event on its tag's subject,
and batch layout) is written with core publishes of what the bridge's ``Records`` builds.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from mxgateway import _codec, run
from mxgateway.bridge import NatsOptions, connect_nats
from mxgateway.bridge import _consume as new
from mxgateway.bridge._records import Part, Records
from tests.bridge._servers import start_server


async def _fill(nc: Any, layout: str, events: int, tags: int) -> str:
    from nats.js.api import StreamConfig

    stream = f"B{layout.upper()}"
    prefix = f"mxgw.{stream}"
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[prefix + ".>"]))
    records = Records(prefix, stream, 1024 * 1024, "run")
    impl = _codec.impl
    handles = list(range(1, tags + 1))
    names = {h: f"Area_{h % 4}.Pump_{h:03d}.Speed" for h in handles}
    sent = 0
    chunk = 512
    while sent < events:
        raw = impl.encode_flood_batch("sess-1", 7, handles, sent + 1, chunk, 1_700_000_000_000)
        batch = impl.decode_event_batch(raw, names)
        part = Part(batch, raw)
        outs = records.items(part) if layout == "items" else records.batch(part)
        for out in outs:
            headers = {**out.headers, "Nats-Msg-Id": out.msg_id}
            await nc.publish(out.subject, out.payload, headers=headers)
        sent += chunk
        await nc.flush()
    want = sent if layout == "items" else sent // chunk
    # The server's count, polled: nothing to wait on.
    while (await js.stream_info(stream)).state.messages < want:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return stream


async def _read(module: Any, shape: str, nc: Any, stream: str, events: int, batch: int) -> int:
    got = 0
    kwargs: dict[str, Any] = {"from_start": True, "kv_bucket": None, "batch": batch}
    if shape == "events":
        async for _ in module.consume(nc, stream, **kwargs):
            got += 1
            if got >= events:
                break
    elif shape == "batches":
        async for events_ in module.consume_batches(nc, stream, **kwargs):
            got += len(events_)
            if got >= events:
                break
    else:
        async for unit in module.consume_columns(nc, stream, **kwargs):
            got += len(unit)
            if got >= events:
                break
    return got


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    readers: list[tuple[str, Any, str]] = [
        ("new", new, "events"),
        ("new", new, "columns"),
    ]
    if args.old:
        spec = importlib.util.spec_from_file_location("_consume_old", args.old)
        assert spec is not None and spec.loader is not None
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        readers.insert(0, ("old", old, "events"))
    results: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp))
        try:
            nc = await connect_nats(NatsOptions(servers=(server.url,)))
            try:
                streams = {
                    layout: await _fill(nc, layout, args.events, args.tags)
                    for layout in args.layouts
                }
                for number in range(args.rounds):
                    order = readers[number % len(readers) :] + readers[: number % len(readers)]
                    for layout, stream in streams.items():
                        for name, module, shape in order:
                            if shape == "columns" and not hasattr(module, "consume_columns"):
                                continue
                            wall, cpu = time.perf_counter(), time.process_time()
                            got = await _read(module, shape, nc, stream, args.events, args.batch)
                            wall = time.perf_counter() - wall
                            cpu = time.process_time() - cpu
                            key = f"{layout}/{name}/{shape}"
                            results.setdefault(key, []).append((got / wall, cpu / got * 1e6))
                            print(
                                f"round {number + 1} {key}: {got / wall:,.0f} events/s, "
                                f"{cpu / got * 1e6:.2f} CPU us/event",
                                flush=True,
                            )
            finally:
                await nc.close()
        finally:
            server.stop()
    return {
        key: {
            "eventsPerSecondMedian": sorted(r for r, _ in values)[len(values) // 2],
            "cpuUsPerEventMedian": sorted(c for _, c in values)[len(values) // 2],
        }
        for key, values in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=new.DEFAULT_BATCH)
    parser.add_argument("--layouts", nargs="+", default=["items", "batch"])
    parser.add_argument("--old", help="another _consume.py to measure in the same rounds")
    args = parser.parse_args()
    print(json.dumps(run(_main(args))), flush=True)


if __name__ == "__main__":
    main()
