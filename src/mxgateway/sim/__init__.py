"""A simulated MXAccess Gateway: the whole contract on a real grpc.aio server, for tests.

``async with SimulatedGateway(SimConfig(...)) as gw:`` serves both services on
``gw.endpoint`` (port 0 = a free port bound by the server itself), with gateway semantics:
sessions with leases and a detach grace, handles per session, every MXAccess command including
the bulk family, MXAccess failures as replies, a replay ring, per-subscriber queues with
overflow policies, API keys with scopes, TLS, health and reflection. ``mxgw-py sim`` runs one
from the command line.

Choices where the contract is silent:

- OpenSession beyond ``max_sessions`` and an Invoke beyond ``max_pending_commands`` fail at once
  with gRPC RESOURCE_EXHAUSTED. A command slower than ``command_timeout_s`` (or than the
  client's deadline) ends the call with DEADLINE_EXCEEDED; the command still completes.
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
- Flood mode produces ON_DATA_CHANGE events for advised items only while a subscriber reads.
"""

from mxgateway.sim._config import SimConfig, parse_api_key_lines
from mxgateway.sim._server import SimulatedGateway

__all__ = ["SimConfig", "SimulatedGateway", "parse_api_key_lines"]
