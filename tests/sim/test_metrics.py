"""The simulator's own metrics: Prometheus text on /metrics, scraped over HTTP."""

from __future__ import annotations

import asyncio
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimulatedGateway
from mxgateway.sim._events import flood_available
from mxgateway.sim._metrics import REFUSAL_REASONS
from tests.sim.helpers import Client, take, wait_until

prometheus_parser = pytest.importorskip("prometheus_client.parser")

KEY = "mxgw_metrics_s3cretM"


def _get(url: str, method: str = "GET") -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(gw: SimulatedGateway) -> Samples:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    url = gw.metrics_endpoint
    assert url is not None and url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    status, content_type, body = await asyncio.to_thread(_get, url)
    assert status == 200
    assert content_type.startswith("text/plain")
    samples: Samples = {}
    for family in prometheus_parser.text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_metrics_follow_sessions_streams_and_refusals(gateway_factory) -> None:
    async with (
        gateway_factory(api_keys={KEY: None}, metrics_port=0, queue_capacity=50) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        stub = pb_grpc.MxAccessGatewayStub(channel)
        samples = await scrape(gw)
        assert value(samples, "mxgateway_sim_sessions", state="ready") == 0
        for reason in REFUSAL_REASONS:  # every reason is a series from the start
            assert value(samples, "mxgateway_sim_refused_total", reason=reason) == 0
        with pytest.raises(grpc.aio.AioRpcError):
            await Client(stub).open()  # no key
        client = Client(stub, (("authorization", f"Bearer {KEY}"),))
        await client.open(lease_seconds=2**31 - 1)
        gw.emit_burst(client.session_id, 7)
        samples = await scrape(gw)
        assert value(samples, "mxgateway_sim_sessions", state="ready") == 1
        assert value(samples, "mxgateway_sim_queue_depth") == 7
        assert value(samples, "mxgateway_sim_queue_depth_max") == 7
        assert value(samples, "mxgateway_sim_subscribers") == 0
        assert value(samples, "mxgateway_sim_leases_capped_total") == 1
        assert value(samples, "mxgateway_sim_sessions_opened_total") == 1
        assert value(samples, "mxgateway_sim_refused_total", reason="unauthenticated") == 1
        call = client.stream()
        await take(call, 7)
        samples = await scrape(gw)
        assert value(samples, "mxgateway_sim_subscribers") == 1
        assert value(samples, "mxgateway_sim_queue_depth") == 0
        assert value(samples, "mxgateway_sim_events_sent_total", rpc="StreamEvents") == 7
        assert value(samples, "mxgateway_sim_messages_sent_total", rpc="StreamEvents") == 7
        server = await client.register()
        (item,) = await client.subscribe(server, ["Diag_001.Values[]"])
        reply = await client.write(
            server,
            item,
            pb.MxValue(
                data_type=pb.MX_DATA_TYPE_DOUBLE,
                sparse_array_value=pb.MxSparseArray(total_length=50_000_000),
            ),
        )
        assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_MXACCESS_FAILURE
        gw.emit_burst(client.session_id, 60)  # over the queue of 50: an overflow
        with pytest.raises(grpc.aio.AioRpcError):
            while True:
                await call.read()
        samples = await scrape(gw)
        assert value(samples, "mxgateway_sim_refused_total", reason="sparse_total_length") == 1
        assert value(samples, "mxgateway_sim_overflows_total") == 1
        assert value(samples, "mxgateway_sim_sessions", state="faulted") == 1
        assert value(samples, "mxgateway_sim_pings_total") == 0


async def test_observability_md_names_every_series_the_simulator_serves(gateway_factory) -> None:
    """docs/observability.md's section on the simulator lists exactly the served series."""
    doc = (Path(__file__).parents[2] / "docs" / "observability.md").read_text(encoding="utf-8")
    section = doc.split("## The simulator's own metrics", 1)[1].split("\n## ", 1)[0]
    assert "mxgw-py sim --metrics-port" in section
    listed = section.split("The series, all prefixed `mxgateway_sim_`:", 1)[1]
    listed = listed.split("`mxgateway.sim._metrics` documents", 1)[0]
    documented = {
        "mxgateway_sim_" + name.split("{")[0]
        for name in re.findall(r"`([a-z_]+(?:\{[a-z]+\})?)`", listed)
    }
    async with gateway_factory(metrics_port=0) as gw:
        url = gw.metrics_endpoint
        assert url is not None
        status, _, body = await asyncio.to_thread(_get, url)
    assert status == 200
    served = set()
    for line in body.decode().splitlines():
        if line.startswith("# TYPE "):  # every family, with or without samples yet
            _, _, name, kind = line.split()
            # prometheus_client names a counter's family with or without _total by version
            counter = kind == "counter" and not name.endswith("_total")
            served.add(name + "_total" if counter else name)
    assert documented == served


async def test_the_metrics_port_answers_only_bounded_requests(gateway_factory) -> None:
    async with gateway_factory(metrics_port=0) as gw:
        url = gw.metrics_endpoint
        assert url is not None
        base = url.removesuffix("/metrics")
        assert (await asyncio.to_thread(_get, base + "/other"))[0] == 404
        assert (await asyncio.to_thread(_get, url, "POST"))[0] == 405
        status, _, body = await asyncio.to_thread(_get, url, "HEAD")
        assert (status, body) == (200, b"")
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 40_000 + b"\r\n\r\n")
        try:
            head = await asyncio.wait_for(reader.read(), 10)  # answered and closed
            assert head.startswith(b"HTTP/1.1 400")
        finally:
            writer.close()
            await writer.wait_closed()
        assert (await asyncio.to_thread(_get, url))[0] == 200  # still serving


async def test_metrics_survive_a_restart_on_the_same_port(gateway_factory) -> None:
    async with gateway_factory(metrics_port=0) as gw:
        url = gw.metrics_endpoint
        await gw.restart()
        assert gw.metrics_endpoint == url
        assert (await asyncio.to_thread(_get, url or ""))[0] == 200
    assert gw.metrics_endpoint is None


@pytest.mark.skipif(not flood_available(), reason="codec has no encode_flood_batch")
async def test_front_door_counts_pings_and_oversized_requests(gateway_factory) -> None:
    import h2.config
    import h2.connection
    import h2.events

    limit = 64 * 1024
    async with gateway_factory(flood=True, metrics_port=0, max_message_bytes=limit) as gw:
        host, port = gw.endpoint.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.ping(b"abcdefgh")
        writer.write(conn.data_to_send())
        try:
            acked = False
            while not acked:
                data = await asyncio.wait_for(reader.read(65536), 10)
                assert data
                acked = any(
                    isinstance(e, h2.events.PingAckReceived) for e in conn.receive_data(data)
                )
        finally:
            writer.close()
            await writer.wait_closed()
        async with grpc.aio.insecure_channel(
            gw.endpoint, options=[("grpc.max_send_message_length", 4 * limit)]
        ) as channel:
            client = Client(pb_grpc.MxAccessGatewayStub(channel))
            await client.open()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await client.invoke(
                    pb.MX_COMMAND_KIND_READ_BULK,
                    read_bulk=pb.ReadBulkCommand(server_handle=1, tag_addresses=["x" * 2 * limit]),
                )
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "larger than max" in (info.value.details() or "")
            assert await client.register() > 0  # the connection goes on
        samples = await scrape(gw)
        assert value(samples, "mxgateway_sim_pings_total") >= 1
        assert value(samples, "mxgateway_sim_refused_total", reason="message_bytes") == 1


async def test_without_prometheus_client_metrics_are_refused_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(RuntimeError, match=r"mxgateway\[prometheus\]"):
        SimulatedGateway(metrics_port=0)
    async with SimulatedGateway(rate=0.0) as gw:  # the simulator itself still runs
        assert gw.metrics_endpoint is None
        await wait_until(lambda: gw.port > 0)
