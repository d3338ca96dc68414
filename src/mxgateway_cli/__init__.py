"""mxgw-py: the mxgateway command line (thin commands over the library).

gRPC's C core logs to stderr on its own (``I1207 ... chttp2_transport.cc ... Got goaway``),
which mixes with the CLI's output. It is set quiet here, before gRPC is imported, unless the
user chose a verbosity (``GRPC_VERBOSITY``) or asked for ``--log-level debug``.
"""

import os as _os
import sys as _sys


def _debug_requested(argv: list[str]) -> bool:
    for index, argument in enumerate(argv):
        if argument == "--log-level" and index + 1 < len(argv):
            if argv[index + 1].lower() == "debug":
                return True
        elif argument.lower() == "--log-level=debug":
            return True
    return False


if "GRPC_VERBOSITY" not in _os.environ and not _debug_requested(_sys.argv[1:]):
    _os.environ["GRPC_VERBOSITY"] = "NONE"
