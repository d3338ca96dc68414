"""Write a tag and confirm it (async): MXAccess's outcome, not just the gateway's receipt.

    python examples/write_confirm.py --plaintext --tag Pump_001.SpeedSP --value 42.5

``client.write`` adds and advises the tag when needed, infers the type from the value (a JSON
literal here: 42.5, 7, true, "text") and, with confirm (the default), waits for the
ON_WRITE_COMPLETE event: it returns the ``WriteOutcome``, or raises ``MxAccessError`` when
MXAccess refused or failed the write and ``MxGatewayTimeoutError`` when no outcome came in
time. nan/inf and values that do not fit raise ``ValueError`` before anything is sent.
Exit codes: 0 written, 1 refused by MXAccess, 2 a bad value, 3 no outcome in time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import mxgateway
from mxgateway import GatewayClient, MxAccessError, MxGatewayError, MxGatewayTimeoutError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:5000", help="gateway HOST:PORT")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (the simulator)")
    parser.add_argument("--api-key-env", metavar="NAME", help="env variable holding the API key")
    parser.add_argument("--tag", default="Pump_001.SpeedSP", help="the tag to write")
    parser.add_argument("--value", default="42.5", help='a JSON literal: 42.5, 7, true, "on"')
    parser.add_argument("--no-confirm", action="store_true", help="do not wait for the outcome")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for it")
    return parser.parse_args(argv)


def parse_value(text: str) -> Any:
    """A JSON literal as its Python value (anything else is taken as a string)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


async def write(args: argparse.Namespace) -> int:
    api_key = os.environ[args.api_key_env] if args.api_key_env else None
    value = parse_value(args.value)
    async with await GatewayClient.connect(
        args.endpoint, api_key=api_key, plaintext=args.plaintext
    ) as client:
        before = (await client.read(args.tag))[args.tag]
        print(f"{args.tag} was {before.value!r}")
        try:
            outcome = await client.write(
                args.tag, value, confirm=not args.no_confirm, timeout=args.timeout
            )
        except ValueError as error:  # nothing was sent
            print(f"not sent: {error}", file=sys.stderr)
            return 2
        except MxAccessError as error:  # MXAccess said no: hresult and every status
            print(f"refused: {error} (hresult 0x{error.hresult & 0xFFFFFFFF:08X})", file=sys.stderr)
            return 1
        except MxGatewayTimeoutError as error:  # the write may still complete
            print(f"unconfirmed: {error}", file=sys.stderr)
            return 3
        if outcome is None:
            print(f"sent {value!r} to {args.tag} (not confirmed)")
        else:
            print(f"wrote {value!r} to {args.tag}: confirmed by MXAccess (ok={outcome.ok})")
        after = (await client.read(args.tag))[args.tag]
        print(f"{args.tag} is {after.value!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return mxgateway.run(write(args))
    except MxGatewayError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
