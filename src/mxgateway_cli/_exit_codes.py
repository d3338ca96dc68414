"""Exit codes of ``mxgw-py``, and the one place where exceptions become them.

====  ==========================================================================
code  meaning
====  ==========================================================================
0     ok
1     the gateway or MXAccess reported a failure (MxAccessError, protocol errors)
2     usage error: bad flags or values
3     transport failure or timeout
4     authentication or authorization failure
====  ==========================================================================
"""

from __future__ import annotations

from mxgateway import (
    MxGatewayAuthenticationError,
    MxGatewayError,
    MxGatewayPermissionError,
    MxGatewayRequestTooLargeError,
    MxGatewayTimeoutError,
    MxGatewayTransportError,
)

__all__ = [
    "EPILOG",
    "EXIT_AUTH",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TRANSPORT",
    "EXIT_USAGE",
    "UsageError",
    "exit_code_for",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TRANSPORT = 3
EXIT_AUTH = 4
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

EPILOG = """exit codes:
  0  ok
  1  the gateway or MXAccess reported a failure
  2  usage error (bad flags or values)
  3  transport failure or timeout
  4  authentication or authorization failure
"""


class UsageError(Exception):
    """A bad flag or value (exit code 2). The message never contains a secret."""


def exit_code_for(error: Exception) -> int:
    """The exit code of a command that raised ``error``."""
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if isinstance(error, MxGatewayAuthenticationError | MxGatewayPermissionError):
        return EXIT_AUTH
    if isinstance(error, MxGatewayTransportError | MxGatewayTimeoutError):
        return EXIT_TRANSPORT
    if isinstance(error, MxGatewayRequestTooLargeError):
        return EXIT_USAGE  # nothing was sent: the request the flags describe is too large
    if isinstance(error, MxGatewayError):
        return EXIT_FAILURE  # MxAccessError, protocol errors, unknown session, overflow ...
    if isinstance(error, ValueError | TypeError | OverflowError):
        return EXIT_USAGE  # a value the library refused before sending anything
    if isinstance(error, OSError):
        return EXIT_TRANSPORT  # e.g. the simulator cannot listen on its address
    return EXIT_FAILURE
