"""mxgateway.sync: the blocking API, for scripts, threads and notebooks.

The same classes as ``mxgateway`` (``GatewayClient``, ``Session``, ``GalaxyRepositoryClient``)
with the same methods, arguments, results and exceptions, but blocking::

    from mxgateway.sync import GatewayClient

    with GatewayClient.connect(endpoint="127.0.0.1:5000", plaintext=True) as client:
        print(client.read(["Pump_001.Speed"]))
        client.write("Pump_001.SpeedSP", 42.5)  # waits for MXAccess's outcome
        for change in client.subscribe(["Pump_001.Speed"], duration=10):
            print(change.tag, change.value)

Each client runs the async client on an event loop of its own (uvloop where ``mxgateway`` uses
it), on a daemon thread that ``connect`` starts and ``close`` stops. So it works in a plain
script, from several threads at once, and inside a running event loop (a Jupyter cell): the
calling thread only waits. Streams are ``Stream`` iterators: leaving a ``for`` loop with
``break`` (or ``close()``, or a ``with`` block) cancels the call; Ctrl-C while a call waits
cancels that call before the KeyboardInterrupt propagates. Calling a blocking method on the
client's own loop thread raises RuntimeError (it would wait for itself forever); a closed
client or session raises MxGatewayClientClosedError.
"""

from mxgateway.sync._clients import GalaxyRepositoryClient, GatewayClient, Session
from mxgateway.sync._stream import Stream

__all__ = ["GalaxyRepositoryClient", "GatewayClient", "Session", "Stream"]
