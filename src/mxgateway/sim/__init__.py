"""A simulated MXAccess Gateway: the whole contract on a real grpc.aio server, for tests.

``async with SimulatedGateway(SimConfig(...)) as gw:`` serves both services on
``gw.endpoint`` (port 0 = a free port bound by the server itself), with gateway semantics:
sessions with leases and a detach grace, handles per session, every MXAccess command including
the bulk family, MXAccess failures as replies, a replay ring, per-subscriber queues with
overflow policies, API keys with scopes, TLS, health and reflection. ``mxgw-py sim`` runs one
from the command line.

Choices where the contract is silent:

- OpenSession beyond ``max_sessions`` (every client together), beyond
  ``max_sessions_per_key`` for the caller's API key (default 16; with auth off there is no key,
  only the global limit), and an Invoke beyond ``max_pending_commands`` fail at once with gRPC
  RESOURCE_EXHAUSTED naming the limit. A lease asked for beyond ``max_lease_seconds`` (default
  3600) is granted that maximum: OpenSession announces the granted lease as the capability
  ``lease-seconds=N`` and, when it capped it, says so in the (OK) protocol status message.
  Sessions nobody holds (no stream, no unary call) close when their lease runs out. A
  command slower than ``command_timeout_s`` (or than the client's deadline) ends the call
  with DEADLINE_EXCEEDED; the command still completes.
  Commands of one session run one at a time, in order (one MXAccess worker per session).
- A session keeps the events nobody has read yet in its queue (``queue_capacity``); the next
  subscriber gets them first, and DrainEvents takes them. A resume (``after_worker_sequence``
  > 0) replays from the ring and the queue, without gap or duplicate.
- Overflow: ``fail_fast`` faults the session (Invoke then answers SESSION_NOT_READY, a new
  stream FAILED_PRECONDITION); ``disconnect_subscriber`` ends the stream and empties the queue
  (the ring still serves a resume). Either way the stream ends with RESOURCE_EXHAUSTED
  "EventQueueOverflow".
- A write emits ON_DATA_CHANGE to every advised item of the attribute (every session), then
  ON_WRITE_COMPLETE to the writer; a written attribute then holds its value (its generator
  stops).
- Flood mode produces ON_DATA_CHANGE events for advised items only while a subscriber reads:
  as fast as it reads, or paced at ``flood_rate`` events per second per session (produced when
  due, with a granularity of about a millisecond, stamped when produced; a backlog the reader
  does not take that outgrows ``queue_capacity`` is an overflow).
- ``event_batches=False`` (``--no-event-batches``) is the genuine gateway: StreamEventBatches
  answers UNIMPLEMENTED and OpenSession does not announce "stream-event-batches".
- Rate mode: each advised attribute changes every 1/``rate`` s at its own phase, when due
  (about 1 ms timer resolution), evenly rather than in ticks; ``step_values()`` steps them all
  at once for tests. Buffered items deliver a window once the update interval has passed
  since its first sample.
- Bounded at every door, so that nothing a client chooses makes the simulator allocate in
  proportion to it: a written value has at most ``max_value_elements`` elements and
  ``max_value_bytes`` encoded bytes (at most a quarter of ``max_message_bytes``); an array
  write must have the attribute's declared length and one dimension; a sparse write's
  ``total_length`` must be the declared length (0 = it) and its indices inside it;
  ``Tag.Arr[n]`` past the end is DISP_E_BADINDEX. Each is an MXAccess failure reply
  (E_INVALIDARG / DISP_E_BADINDEX), the value unchanged, nothing published. Names it keeps
  have at most ``max_name_chars`` characters, a session at most ``max_items_per_session``
  items and 1,024 server handles; DrainEvents takes at most one reply's worth; a bulk whose
  reply would be over ``max_message_bytes`` runs every entry and ends RESOURCE_EXHAUSTED
  ("SERVER: Sent message larger than max", as grpc-core's) without building the reply.
  Request messages over ``max_message_bytes`` are refused by grpc-core (RESOURCE_EXHAUSTED,
  before any handler: not counted) or by the flood front door (counted).
- ``stats()``: messages and events sent per event rpc, requests refused per reason, and the
  process's CPU time (``mxgw-py sim`` prints them as its last line, ``{"stopped": ...}``).
- ``metrics_port`` (``mxgw-py sim --metrics-port``): Prometheus text on
  ``http://127.0.0.1:PORT/metrics`` (``mxgateway.sim._metrics`` lists the series), served on
  the gateway's own loop; needs ``prometheus_client`` (the ``mxgateway[prometheus]`` extra).
- ``min_ping_interval_s`` / ``max_ping_strikes`` set the grpc server's ping policy (None keeps
  grpc-core's defaults: 5 minutes without data, 2 strikes).

The flood front door. In flood mode the public port is not the grpc.aio server (whose 30-55 us
of CPU per streamed message cannot feed a fast StreamEvents client) but an asyncio HTTP/2
server on h2 (``mxgateway.sim._frontdoor``). It serves StreamEvents and StreamEventBatches
itself: gRPC length-prefixed messages, pre-encoded (flood batches re-framed in one pass), as
many per DATA frame as fit, produced only while both flow-control windows and the transport
have room, so a slow reader gets HTTP/2 flow control and the server holds at most one chunk
per stream. Sessions, attach, replay, ReplayGap, overflow, the one-subscriber rule and auth
are the same code as the grpc.aio handlers (``GatewayService.open_feed``). A client's
RST_STREAM detaches the subscriber at once; a session closed by the gateway ends the stream
with OK; errors are trailers (grpc-status, grpc-message); ``grpc-timeout`` is honoured.
OpenSession, CloseSession and Invoke are served by the same GatewayService handlers as on the
grpc.aio server, with the client's deadline. Every other rpc (alarms, GalaxyRepository, health,
the bidi reflection service) is proxied to the grpc.aio server of the same process on
127.0.0.1:0, with metadata (authorization) passed through, ``grpc-timeout`` as the deadline,
and the status and trailing metadata passed back. TLS uses asyncio's ssl with ALPN "h2". The
front door acknowledges every PING: it does not enforce grpc-core's ping policy (the ping
knobs apply to the grpc.aio server, that is to the simulator outside flood mode); nor does it
accept compressed messages (grpc-encoding other than identity: UNIMPLEMENTED).
"""

from mxgateway import _sim_extra  # noqa: F401  (first: names the extra if it is missing)
from mxgateway.sim._config import SimConfig, parse_api_key_lines
from mxgateway.sim._server import SimulatedGateway

__all__ = ["SimConfig", "SimulatedGateway", "parse_api_key_lines"]
