"""The bridge end to end: flood simulator → ``Bridge`` → JetStream → a consumer, beside
``stream_event_batches()`` on the same simulator, in alternating rounds of one run.

Every round measures, in an order that rotates from round to round: ``stream_event_batches()``
counting events (what reading the gateway costs this process alone); the bridge in the batch
layout; the bridge in the items layout. The flood simulator, the nats-server (one server, file
storage, in a temporary directory) and the consumer (``consume_batches`` from the stream's
start, in a process of its own, reading while the bridge writes) each run in their own
process, so the CPU this process spends is the bridge's own. Per bridge round: events the
bridge forwarded (JetStream acknowledged them) per second, the bridge's CPU per event, and
events per second end to end: the consumer's events over the time from the bridge going
active to the consumer's last event; the consumer must receive exactly what the bridge
forwarded. Goals (issue 16): batch layout ≥ 1 M events/s through one server, items layout
≥ 40k events/s. This machine is small and shared: compare figures of one round, not of runs.

Run: ``python -m bench.bridge --rounds 3`` (a line per round, then one JSON line);
``--compare-consumer PATH`` adds an items-layout round whose consumer reads with another
``_consume.py`` (the code before a change), in the same rotation.
``python -m bench.bridge --consume URL STREAM`` is the consumer process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mxgateway import ClientOptions, run
from mxgateway.bridge import Bridge, BridgeConfig, NatsOptions, connect_nats, consume_batches
from tests.bridge._check import check_stream
from tests.bridge._servers import start_server
from tests.hardening.simproc import SimProcess

from .stream_events_vs_batches import _measure as measure_batches

# Every wait of a round is bounded: a stuck piece fails the round with a message, never hangs.
_WAIT_S = 60.0


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _bounded(what: str, awaitable: Any, seconds: float = _WAIT_S) -> Any:
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        # Where everything waits, taken before anything is cancelled: a stall is otherwise
        # silent, and cancelling first would unwind the very stacks that show it.
        for other in asyncio.all_tasks():
            print(f"-- task {other.get_name()}:", file=sys.stderr)
            other.print_stack(file=sys.stderr)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        task.cancel()
        raise RuntimeError(f"bench.bridge: {what} did not finish within {seconds:g} s")
    return task.result()


# -- the consumer process --------------------------------------------------------------------


async def _consume(url: str, stream: str, idle: float, code: str | None) -> dict[str, Any]:
    """Read ``stream`` from its start until nothing came for ``idle`` seconds after the
    ``{"stop": N}`` line on stdin (N: the events the bridge forwarded) or N events; with
    ``consume_batches`` of ``code`` (another ``_consume.py``) when given."""
    reader_of: Any = consume_batches
    if code is not None:
        spec = importlib.util.spec_from_file_location("_consume_compared", code)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        reader_of = module.consume_batches
    nc = await connect_nats(NatsOptions(servers=(url,)))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    expected: list[int] = []

    async def read_expected() -> None:
        line = await reader.readline()
        expected.append(int(json.loads(line)["stop"]) if line else -1)

    js = nc.jetstream()
    async with asyncio.timeout(_WAIT_S):  # the bridge creates the stream
        while True:
            try:
                await js.stream_info(stream)
                break
            except Exception:
                await asyncio.sleep(0.05)
    print(json.dumps({"ready": True}), flush=True)
    count = 0
    last = 0.0

    async def read() -> None:
        nonlocal count, last
        batches = reader_of(nc, stream, from_start=True, batch=256, kv_bucket=None)
        try:
            async for batch in batches:
                count += len(batch)
                last = time.time()
        finally:
            await batches.aclose()

    reading = asyncio.create_task(read())
    await read_expected()
    waited_from = time.time()
    # A count with an idle limit, polled: nothing to wait on.
    while count < expected[0] and time.time() - max(last, waited_from) < idle:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(reading, _WAIT_S)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(nc.close(), 10)
    return {"events": count, "lastEventAt": last, "cpu": time.process_time()}


# -- the rounds ------------------------------------------------------------------------------


async def _bridge_round(
    endpoint: str,
    nats_url: str,
    tags: list[str],
    layout: str,
    seconds: float,
    number: int,
    pids: tuple[int, int],
    consumer_code: str | None = None,
) -> dict[str, Any]:
    stream = f"BENCH_{layout}_{number}{'_compared' if consumer_code else ''}"
    code = ["--consumer-code", consumer_code] if consumer_code else []
    consumer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bridge",
        "--consume",
        nats_url,
        stream,
        *code,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert consumer.stdin is not None and consumer.stdout is not None
    started: list[tuple[float, float, float, float]] = []
    active = asyncio.Event()
    sim_pid, server_pid = pids

    def notify(kind: str, details: dict[str, Any]) -> None:
        if kind == "active":
            started.append(
                (time.time(), time.process_time(), _cpu_of(sim_pid), _cpu_of(server_pid))
            )
            active.set()

    nats = NatsOptions(servers=(nats_url,))
    config = BridgeConfig(
        stream=stream,
        items=tuple(tags),
        layout=layout,  # type: ignore[arg-type]
        close_session=True,
    )
    bridge = Bridge(ClientOptions(endpoint=endpoint, plaintext=True), nats, config, notify=notify)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop=stop))
    try:
        await _bounded(f"{layout} round {number + 1}: the bridge going active", active.wait())
        await asyncio.sleep(seconds)
        stop.set()
        stats = await _bounded(f"{stream}: the bridge stopping", task)
        ended, cpu = time.time(), time.process_time()
        sim_cpu, server_cpu = _cpu_of(sim_pid), _cpu_of(server_pid)
        what = f"{layout} round {number + 1}: the consumer"
        await _bounded(what + " starting", consumer.stdout.readline())  # ready (long since)
        consumer.stdin.write(json.dumps({"stop": stats.events}).encode() + b"\n")
        await consumer.stdin.drain()
        line = await _bounded(what + " reading the stream", consumer.stdout.readline(), 300)
        result = json.loads(line or b"{}")
        if "events" not in result:
            raise RuntimeError(f"bench.bridge: {what} gave no result (exit {consumer.returncode})")
        await _bounded(what + " exiting", consumer.wait(), 30)
    finally:
        task.cancel()
        if consumer.returncode is None:
            consumer.kill()
            await consumer.wait()
    began, cpu_began, sim_began, server_began = started[0]
    received = int(result.get("events", -1))
    nc = await connect_nats(nats)
    integrity = "ok"
    try:
        # What the stream holds: every worker_sequence once, contiguous (the tests' check).
        check = await _bounded("the stream check", check_stream(nc, stream, config.prefix), 300)
        if not (check.events == stats.events == received and len(check.sessions) == 1):
            integrity = (
                f"the bridge forwarded {stats.events} events, the stream holds {check.events} "
                f"in {len(check.sessions)} sessions, the consumer got {received}"
            )
    except AssertionError as failed:  # a figure without integrity is no figure: say why
        integrity = f"stream check failed: {failed}"
    finally:
        await nc.close()
    if integrity != "ok":
        print(f"{layout} round {number + 1}: INTEGRITY: {integrity}", flush=True)
    wall = ended - began
    return {
        "integrity": integrity,
        "resyncs": stats.resyncs,
        "events": stats.events,
        "messages": stats.messages,
        "forwardedPerSecond": stats.events / wall,
        "endToEndPerSecond": received / (max(result["lastEventAt"], ended) - began),
        "bridgeCpuNsPerEvent": (cpu - cpu_began) / max(stats.events, 1) * 1e9,
        # Who was busy while the bridge forwarded (CPU seconds per wall second; 1.0 is a
        # whole core): a bridge well under 1.0 was waiting on the others, not the limit.
        "bridgeCpuShare": (cpu - cpu_began) / wall,
        "simCpuShare": (sim_cpu - sim_began) / wall,
        "serverCpuShare": (server_cpu - server_began) / wall,
        "consumerCpuNsPerEvent": result["cpu"] / max(received, 1) * 1e9,
    }


async def _batches_round(endpoint: str, tags: list[str], seconds: float) -> dict[str, Any]:
    rate, ns = await measure_batches(endpoint, tags, False, seconds)
    return {"eventsPerSecond": rate, "cpuNsPerEvent": ns}


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    kinds = ["stream_event_batches", "bridge/batch", "bridge/items"]
    if args.compare_consumer:
        kinds.append("bridge/items-compared")  # the consumer of --compare-consumer
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as directory:
        server = start_server(Path(directory))
        try:
            async with SimProcess(flood=True) as sim:
                tags = await sim.call("sample_references", args.items)
                for number in range(args.rounds):
                    order = kinds[number % len(kinds) :] + kinds[: number % len(kinds)]
                    for kind in order:
                        if kind == "stream_event_batches":
                            row = await _batches_round(sim.endpoint, tags, args.seconds)
                        else:
                            layout = kind.split("/")[1].removesuffix("-compared")
                            assert server.process is not None
                            row = await _bridge_round(
                                sim.endpoint,
                                server.url,
                                tags,
                                layout,
                                args.seconds,
                                number,
                                (sim.pid, server.process.pid),
                                args.compare_consumer if kind.endswith("-compared") else None,
                            )
                        rows[kind].append(row)
                    b, bb, bi = (rows[k][-1] for k in kinds[:3])
                    print(
                        f"round {number + 1}: stream_event_batches "
                        f"{b['eventsPerSecond']:,.0f}/s {b['cpuNsPerEvent']:.0f} ns/event; "
                        f"bridge batch {bb['forwardedPerSecond']:,.0f}/s forwarded, "
                        f"{bb['endToEndPerSecond']:,.0f}/s end to end, "
                        f"{bb['bridgeCpuNsPerEvent']:.0f} ns/event "
                        f"(cpu: bridge {bb['bridgeCpuShare']:.2f} sim {bb['simCpuShare']:.2f} "
                        f"server {bb['serverCpuShare']:.2f}); "
                        f"bridge items {bi['forwardedPerSecond']:,.0f}/s forwarded, "
                        f"{bi['endToEndPerSecond']:,.0f}/s end to end, "
                        f"{bi['bridgeCpuNsPerEvent']:.0f} ns/event "
                        f"(cpu: bridge {bi['bridgeCpuShare']:.2f} sim {bi['simCpuShare']:.2f} "
                        f"server {bi['serverCpuShare']:.2f}), consumer "
                        f"{bi['consumerCpuNsPerEvent']:.0f} ns/event",
                        flush=True,
                    )
                    if args.compare_consumer:
                        bc = rows[kinds[3]][-1]
                        print(
                            f"round {number + 1}: bridge items, compared consumer: "
                            f"{bc['forwardedPerSecond']:,.0f}/s forwarded, "
                            f"{bc['endToEndPerSecond']:,.0f}/s end to end, consumer "
                            f"{bc['consumerCpuNsPerEvent']:.0f} ns/event",
                            flush=True,
                        )
        finally:
            server.stop()

    def median(kind: str, key: str) -> float:
        return round(float(statistics.median(row[key] for row in rows[kind])), 1)

    summary: dict[str, Any] = {
        "rounds": args.rounds,
        "items": args.items,
        "stream_event_batches": {
            "eventsPerSecondMedian": median("stream_event_batches", "eventsPerSecond"),
            "cpuNsPerEventMedian": median("stream_event_batches", "cpuNsPerEvent"),
        },
    }
    for kind in kinds[1:]:
        summary[kind] = {
            key + "Median": median(kind, key)
            for key in (
                "forwardedPerSecond",
                "endToEndPerSecond",
                "bridgeCpuNsPerEvent",
                "bridgeCpuShare",
                "simCpuShare",
                "serverCpuShare",
                "consumerCpuNsPerEvent",
            )
        }
        summary[kind]["integrity"] = [row["integrity"] for row in rows[kind]]
        # Same-round ratios: the bridge's CPU per event over reading alone.
        summary[kind]["cpuPerEventVsBatchesMedian"] = round(
            statistics.median(
                row["bridgeCpuNsPerEvent"] / base["cpuNsPerEvent"]
                for row, base in zip(rows[kind], rows["stream_event_batches"], strict=True)
            ),
            2,
        )
    summary["rows"] = rows
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--consume", nargs=2, metavar=("URL", "STREAM"), help=argparse.SUPPRESS)
    parser.add_argument("--idle", type=float, default=3.0, help=argparse.SUPPRESS)
    parser.add_argument("--consumer-code", help=argparse.SUPPRESS)
    parser.add_argument(
        "--compare-consumer",
        metavar="PATH",
        help="another _consume.py (e.g. git show main:src/mxgateway/bridge/_consume.py): an "
        "extra items-layout round whose consumer process reads with it",
    )
    args = parser.parse_args()
    if args.consume:
        url, stream = args.consume
        print(json.dumps(run(_consume(url, stream, args.idle, args.consumer_code))), flush=True)
        return
    print(json.dumps(run(_main(args)), sort_keys=True, default=round))


if __name__ == "__main__":
    main()
