"""Secrets: API keys and AuthenticateUser passwords appear in no repr, no log record (every
logger at DEBUG, grpc's included, and the simulator's), no exception (message, repr, chained
context, formatted traceback, attached reply) and no output of a child process running gRPC
at debug verbosity."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterable

import pytest

from mxgateway import (
    ClientOptions,
    GalaxyRepositoryClient,
    GatewayClient,
    MxAccessError,
    MxDataType,
    MxGatewayAuthenticationError,
    MxGatewayError,
    MxGatewayPermissionError,
    Session,
)
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.conftest import find_reference

KEY = "mxgw_hardening_Sup3rS3cretKeyMaterial"
SCOPED_KEY = "mxgw_scoped_An0therS3cretOfTheScopedKey"
UNKNOWN_KEY = "mxgw_hardening_WrongS3cretNobodyKnows"
PASSWORD = "Wr0ng-Pa55phrase-zq81"  # never right: sent, refused, never shown
SECRETS = (
    KEY,
    KEY.split("_", 2)[2],
    SCOPED_KEY.split("_", 2)[2],
    UNKNOWN_KEY.split("_", 2)[2],
    PASSWORD,
)


def _leaks(texts: Iterable[str]) -> list[tuple[str, str]]:
    return [(secret, text[:200]) for text in texts for secret in SECRETS if secret in text]


def _exception_texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), repr(error.args)]
    texts.append("".join(traceback.format_exception(error)))  # __cause__ and __context__ too
    context = error.__context__
    while context is not None:
        texts += [str(context), repr(context)]
        debug = getattr(context, "debug_error_string", None)
        if callable(debug):
            texts.append(str(debug()))
        context = context.__context__
    if isinstance(error, MxGatewayError) and error.raw_reply is not None:
        texts += [str(error.raw_reply), repr(error.raw_reply)]
    if isinstance(error, MxAccessError):
        texts.append(repr(error.statuses))
    return texts


def _log_texts(records: Iterable[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter()
    texts: list[str] = []
    for record in records:
        texts += [record.getMessage(), repr(record.args)]
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    return texts


async def test_no_secret_in_reprs_logs_or_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root: mxgateway, mxgateway.sim, asyncio ...
    caplog.set_level(logging.DEBUG, logger="grpc")
    config = SimConfig(
        api_keys={KEY: None, SCOPED_KEY: frozenset({"session:open", "invoke:read"})},
        rate=20.0,
        galaxy_size=60,
    )
    texts: list[str] = [repr(config)]
    async with SimulatedGateway(config) as sim:
        options = ClientOptions(endpoint=sim.endpoint, api_key=KEY, plaintext=True)
        texts += [repr(options), str(options)]
        async with GatewayClient(options) as client, GalaxyRepositoryClient(options) as galaxy:
            texts += [repr(client), str(client), repr(galaxy)]
            session = await client.open_session(client_session_name="secrets")
            texts += [repr(session), str(session), repr(session.open_reply)]
            server = await session.register("secrets")
            reference = find_reference(sim, MxDataType.BOOLEAN)
            item = await session.add_item(server, reference)
            await session.advise(server, item)
            for user in ("operator", "nobody"):
                with pytest.raises(MxAccessError) as refused:
                    await session.authenticate_user(server, user, PASSWORD)
                texts += _exception_texts(refused.value)
            # A stream that is cut and resumes logs warnings; they name no secret either.
            events = session.stream_events()
            await asyncio.wait_for(anext(events), 10)
            sim.drop_streams()
            await asyncio.wait_for(anext(events), 10)
            await events.aclose()
            await session.close()
            texts.append(repr(session))
        for key in (UNKNOWN_KEY, "mxgw_bad", f"x{KEY}"):  # unknown, malformed, malformed
            async with await GatewayClient.connect(
                endpoint=sim.endpoint, api_key=key, plaintext=True
            ) as wrong:
                texts.append(repr(wrong))
                with pytest.raises(MxGatewayAuthenticationError) as denied:
                    await wrong.open_session()
                texts += _exception_texts(denied.value)
                ghost = Session(wrong, session.open_reply)
                with pytest.raises(MxGatewayAuthenticationError) as denied:
                    await anext(ghost.stream_event_batches())
                texts += _exception_texts(denied.value)
        async with await GatewayClient.connect(
            endpoint=sim.endpoint, api_key=SCOPED_KEY, plaintext=True
        ) as scoped:
            scoped_session = await scoped.open_session()
            with pytest.raises(MxGatewayPermissionError) as forbidden:
                await scoped_session.authenticate_user(1, "operator", PASSWORD)
            texts += _exception_texts(forbidden.value)
    with pytest.raises(ValueError) as malformed:
        ClientOptions(endpoint="h:1", api_key=KEY + " trailing")
    texts += _exception_texts(malformed.value)
    assert caplog.records, "nothing was logged: the capture is not working"
    assert any(r.name.startswith("mxgateway.sim") for r in caplog.records)
    assert any(
        r.name.startswith("mxgateway.") and not r.name.startswith("mxgateway.sim")
        for r in caplog.records
    )  # the library's own loggers (named by module) were captured too
    texts += _log_texts(caplog.records)
    assert not _leaks(texts)


_CHILD = textwrap.dedent(
    """
    import asyncio, logging, sys
    from mxgateway import GatewayClient, MxGatewayError
    from mxgateway.sim import SimConfig, SimulatedGateway

    KEY, UNKNOWN, PASSWORD = sys.argv[1:4]

    async def main():
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        config = SimConfig(api_keys={KEY: None}, galaxy_size=60)
        async with SimulatedGateway(config) as sim:
            async with await GatewayClient.connect(
                endpoint=sim.endpoint, api_key=KEY, plaintext=True
            ) as client:
                session = await client.open_session()
                server = await session.register("child")
                try:
                    await session.authenticate_user(server, "operator", PASSWORD)
                except MxGatewayError as exc:
                    print(repr(exc))
                await session.close()
            async with await GatewayClient.connect(
                endpoint=sim.endpoint, api_key=UNKNOWN, plaintext=True
            ) as wrong:
                try:
                    await wrong.open_session()
                except MxGatewayError as exc:
                    print(repr(exc))

    asyncio.run(main())
    """
)


def test_no_secret_in_the_output_of_a_process_at_grpc_debug_verbosity() -> None:
    # gRPC's C core logs to stderr on its own at GRPC_VERBOSITY=debug. (GRPC_TRACE=http would
    # print HTTP/2 headers, the authorization header included: see docs/reliability.md.)
    env = {**os.environ, "GRPC_VERBOSITY": "debug", "PYTHONUNBUFFERED": "1"}
    env.pop("GRPC_TRACE", None)
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, KEY, UNKNOWN_KEY, PASSWORD],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MxAccessError" in result.stdout and "MxGatewayAuthenticationError" in result.stdout
    assert "DEBUG" in result.stderr  # the capture really was at debug
    assert not _leaks([result.stdout, result.stderr])
