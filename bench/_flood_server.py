"""The flood simulator for the benchmark's comparison run: as ``mxgw-py sim --flood``, but its
first line also names the grpc.aio server behind the front door.

``python -m bench._flood_server [--no-event-batches]`` prints
``{"listening": FRONT_DOOR, "grpc": GRPC_AIO}``, serves until SIGTERM, then prints
``{"stopped": STATS}`` (``SimulatedGateway.stats()``), as ``mxgw-py sim`` does.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import mxgateway
from mxgateway.sim import SimConfig, SimulatedGateway


async def serve(event_batches: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    gateway = SimulatedGateway(SimConfig(rate=0.0, flood=True, event_batches=event_batches, seed=1))
    async with gateway:
        print(json.dumps({"listening": gateway.endpoint, "grpc": gateway.grpc_endpoint}))
        sys.stdout.flush()
        await stop.wait()
    print(json.dumps({"stopped": gateway.stats()}), flush=True)


def main() -> None:
    mxgateway.run(serve(event_batches="--no-event-batches" not in sys.argv[1:]))


if __name__ == "__main__":
    main()
