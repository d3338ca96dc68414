"""A raw StreamEvents consumer in its own process, for bench/test_bench_sim_flood.py.

``python -m bench._raw_consumer ENDPOINT START_AT SECONDS``: opens a session on the simulator,
advises ITEMS items, reads StreamEvents on a sync grpc channel (``SingleThreadedUnaryStream``,
identity deserializer: raw bytes, no decoding) and counts the messages received between the
wall-clock times START_AT and START_AT + SECONDS (the same window for every consumer of a run).
Prints one JSON line: messages, seconds, messages_per_s, cpu_seconds (this process), and the
first and last worker_sequence of the window (decoded), to show the stream was contiguous.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import grpc

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc

ITEMS = 16
EVENTS_PATH = "/mxaccess_gateway.v1.MxAccessGateway/StreamEvents"
_CHECK_EVERY = 1024  # messages between clock reads


def _subscribe(stub: Any, session_id: str) -> None:
    server = stub.Invoke(
        pb.MxCommandRequest(
            session_id=session_id,
            command=pb.MxCommand(kind=pb.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand()),
        )
    ).register.server_handle
    stub.Invoke(
        pb.MxCommandRequest(
            session_id=session_id,
            command=pb.MxCommand(
                kind=pb.MX_COMMAND_KIND_SUBSCRIBE_BULK,
                subscribe_bulk=pb.SubscribeBulkCommand(
                    server_handle=server,
                    tag_addresses=[f"Pump_{i:03d}.Speed" for i in range(1, ITEMS + 1)],
                ),
            ),
        )
    )


def consume(endpoint: str, start_at: float, seconds: float) -> dict[str, Any]:
    """Read StreamEvents raw; count the messages of the window [start_at, start_at+seconds)."""
    options = [("SingleThreadedUnaryStream", 1), ("grpc.max_receive_message_length", 16 << 20)]
    with grpc.insecure_channel(endpoint, options=options) as channel:
        stub: Any = pb_grpc.MxAccessGatewayStub(channel)
        session_id = stub.OpenSession(pb.OpenSessionRequest(client_session_name="bench")).session_id
        _subscribe(stub, session_id)
        method: Any = channel.unary_stream(
            EVENTS_PATH,
            request_serializer=pb.StreamEventsRequest.SerializeToString,
            response_deserializer=None,
        )
        call = method(pb.StreamEventsRequest(session_id=session_id))
        stream = iter(call)
        end_at = start_at + seconds
        # Warm up until the window opens.
        while time.time() < start_at:
            for _ in range(_CHECK_EVERY):
                next(stream)
        first = pb.MxEvent.FromString(next(stream)).worker_sequence
        count = 1
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        raw = b""
        while True:
            for raw in stream:  # noqa: B007 - the last message is decoded after the loop
                count += 1
                if count % _CHECK_EVERY == 0:
                    break
            if time.time() >= end_at:
                break
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        call.cancel()
        last = pb.MxEvent.FromString(raw).worker_sequence
        stub.CloseSession(pb.CloseSessionRequest(session_id=session_id))
    return {
        "messages": count,
        "seconds": elapsed,
        "messages_per_s": count / elapsed,
        "cpu_seconds": cpu,
        "first_sequence": first,
        "last_sequence": last,
    }


def main() -> None:
    endpoint, start_at, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(consume(endpoint, start_at, seconds)), flush=True)


if __name__ == "__main__":
    main()
