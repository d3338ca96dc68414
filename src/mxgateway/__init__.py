"""mxgateway: a fast async Python client for the MXAccess Gateway.

Public names are re-exported here from private modules; ``__all__`` is explicit and sorted
(a test checks it).
"""

from mxgateway._codec import codec_implementation
from mxgateway._errors import MxGatewayDecodeError, MxGatewayError
from mxgateway._loop import preferred_event_loop, run
from mxgateway._version import __version__

__all__ = [
    "MxGatewayDecodeError",
    "MxGatewayError",
    "__version__",
    "codec_implementation",
    "preferred_event_loop",
    "run",
]
