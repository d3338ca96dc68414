"""Commands that need an optional extra say so before they start, naming the pip command.

The simulator (``mxgw-py sim``, and ``bench-stream-events`` without ``--endpoint``, which
starts one) needs ``mxgateway[sim]``. Without it the command stops with a usage error (exit 2,
nothing was started) instead of an ImportError from inside the simulator.
"""

from __future__ import annotations

import argparse

from mxgateway._extras import SIM_INSTALL, missing_sim_packages
from mxgateway_cli._exit_codes import UsageError

__all__ = ["require_extras"]


def require_extras(args: argparse.Namespace) -> None:
    """Raise UsageError when the command in ``args`` needs an extra that is not installed."""
    if args.command == "sim":
        what = "mxgw-py sim"
    elif args.command == "bench-stream-events" and getattr(args, "endpoint", None) is None:
        what = "bench-stream-events without --endpoint (it starts the simulator)"
    else:
        return
    missing = missing_sim_packages()
    if missing:
        raise UsageError(f"{what} needs {', '.join(missing)}: {SIM_INSTALL}")
