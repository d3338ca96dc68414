"""mxgateway: a fast async Python client for the MXAccess Gateway.

Public names are re-exported here from private modules; ``__all__`` is explicit and sorted
(a test checks it).
"""

import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING

from mxgateway._alarm_feed import AlarmFeedItem
from mxgateway._client import GatewayClient
from mxgateway._codec import (
    codec_implementation,
    decode_event,
    decode_event_batch,
    decode_event_columns,
    encode_event,
    encode_event_batch,
    from_mx_value,
)
from mxgateway._errors import (
    MxAccessError,
    MxGatewayAuthenticationError,
    MxGatewayClientClosedError,
    MxGatewayDecodeError,
    MxGatewayError,
    MxGatewayEventQueueOverflowError,
    MxGatewayPermissionError,
    MxGatewayProtocolError,
    MxGatewayRequestTooLargeError,
    MxGatewaySessionNotFoundError,
    MxGatewayStreamLostError,
    MxGatewayTimeoutError,
    MxGatewayTransportError,
)
from mxgateway._galaxy import BrowseNode, GalaxyRepositoryClient
from mxgateway._loop import preferred_event_loop, run
from mxgateway._mxvalue import to_mx_value, to_mx_value_bytes
from mxgateway._options import ClientOptions, EventReceiver
from mxgateway._session import Session, StreamPath
from mxgateway._stats import StreamStats
from mxgateway._version import __version__
from mxgateway.generated.galaxy_repository_pb2 import (
    DeployEvent,
    GalaxyAttribute,
    GalaxyObject,
)
from mxgateway.types import (
    TIMESTAMP_ABSENT,
    AcknowledgeResult,
    ActiveAlarm,
    AlarmConditionState,
    AlarmFeedResync,
    AlarmProviderMode,
    AlarmProviderStatus,
    AlarmResyncClear,
    AlarmSnapshotComplete,
    AlarmTransition,
    AlarmTransitionKind,
    BufferedSample,
    EventBody,
    MxCommandKind,
    MxDataType,
    MxEvent,
    MxEventFamily,
    MxSparseArray,
    MxStatus,
    MxStatusCategory,
    MxStatusSource,
    MxValue,
    ProtocolStatusCode,
    ReadResult,
    RecoveryFailure,
    ReplayGap,
    SessionItem,
    SessionRecovered,
    SessionState,
    TagChange,
    TagValue,
    ValueKind,
    WriteOutcome,
    ns_to_datetime,
)

if _TYPE_CHECKING:
    from mxgateway.columns import EventColumns

# A library logs; the application decides where to (no "No handlers could be found").
_logging.getLogger("mxgateway").addHandler(_logging.NullHandler())


def __getattr__(name: str) -> object:
    # EventColumns needs numpy (mxgateway[columns]): imported on first use, so that the rest
    # of the package works without it.
    if name == "EventColumns":
        from mxgateway.columns import EventColumns

        return EventColumns
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Plain code-point order (tests/test_public_api.py), not ruff's isort style, which would put
# the one SCREAMING_CASE name first.
__all__ = [  # noqa: RUF022
    "AcknowledgeResult",
    "ActiveAlarm",
    "AlarmConditionState",
    "AlarmFeedItem",
    "AlarmFeedResync",
    "AlarmProviderMode",
    "AlarmProviderStatus",
    "AlarmResyncClear",
    "AlarmSnapshotComplete",
    "AlarmTransition",
    "AlarmTransitionKind",
    "BrowseNode",
    "BufferedSample",
    "ClientOptions",
    "DeployEvent",
    "EventBody",
    "EventColumns",
    "EventReceiver",
    "GalaxyAttribute",
    "GalaxyObject",
    "GalaxyRepositoryClient",
    "GatewayClient",
    "MxAccessError",
    "MxCommandKind",
    "MxDataType",
    "MxEvent",
    "MxEventFamily",
    "MxGatewayAuthenticationError",
    "MxGatewayClientClosedError",
    "MxGatewayDecodeError",
    "MxGatewayError",
    "MxGatewayEventQueueOverflowError",
    "MxGatewayPermissionError",
    "MxGatewayProtocolError",
    "MxGatewayRequestTooLargeError",
    "MxGatewaySessionNotFoundError",
    "MxGatewayStreamLostError",
    "MxGatewayTimeoutError",
    "MxGatewayTransportError",
    "MxSparseArray",
    "MxStatus",
    "MxStatusCategory",
    "MxStatusSource",
    "MxValue",
    "ProtocolStatusCode",
    "ReadResult",
    "RecoveryFailure",
    "ReplayGap",
    "Session",
    "SessionItem",
    "SessionRecovered",
    "SessionState",
    "StreamPath",
    "StreamStats",
    "TIMESTAMP_ABSENT",
    "TagChange",
    "TagValue",
    "ValueKind",
    "WriteOutcome",
    "__version__",
    "codec_implementation",
    "decode_event",
    "decode_event_batch",
    "decode_event_columns",
    "encode_event",
    "encode_event_batch",
    "from_mx_value",
    "ns_to_datetime",
    "preferred_event_loop",
    "run",
    "to_mx_value",
    "to_mx_value_bytes",
]
