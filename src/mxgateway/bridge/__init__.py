"""mxgateway.bridge: a gateway session's events into NATS JetStream, exactly once, and back.

Extra ``mxgateway[nats]`` (nats-py). ``Bridge`` forwards one session into one stream
(``mxgw-py bridge``); ``consume`` / ``consume_batches`` read such a stream back as
``MxEvent`` (``mxgw-py bridge-tail``), ``consume_columns`` as ``EventColumns``. The design,
subjects, headers and the tag-to-subject mapping are in docs/bridge.md and in the docstrings
of ``_records``, ``_publisher`` and ``_state``.
"""

from mxgateway.bridge._bridge import Bridge, BridgeConfig, BridgeStats, Layout
from mxgateway.bridge._consume import (
    consume,
    consume_batches,
    consume_columns,
    decode_message,
    item_names,
)
from mxgateway.bridge._errors import BridgeError, BridgeFencedError, NatsUnavailableError
from mxgateway.bridge._nats import NatsOptions, connect_nats, mask_url
from mxgateway.bridge._records import LAYOUT_VERSION
from mxgateway.bridge._tokens import tag_of_subject, tag_of_tokens, tag_tokens

__all__ = [
    "LAYOUT_VERSION",
    "Bridge",
    "BridgeConfig",
    "BridgeError",
    "BridgeFencedError",
    "BridgeStats",
    "Layout",
    "NatsOptions",
    "NatsUnavailableError",
    "connect_nats",
    "consume",
    "consume_batches",
    "consume_columns",
    "decode_message",
    "item_names",
    "mask_url",
    "tag_of_subject",
    "tag_of_tokens",
    "tag_tokens",
]
