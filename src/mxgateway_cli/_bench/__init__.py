"""``mxgw-py bench-stream-events``: event-stream throughput, CPU per event, latency, integrity.

Without ``--endpoint`` it starts ``mxgw-py sim --flood --plaintext --listen 127.0.0.1:0`` in
a child process (genuine mode, ``--no-event-batches``, for ``--path single``; paced with
``--flood-rate`` for ``--rate``), and stops it however the run ends. The pieces:

* ``simulator``: the child simulator: its command, start and stop, CPU time, final stats;
* ``stats``: what a consumer measured (``StreamStats``), percentiles, the CPU clocks read;
* ``consume``: the hot loops (lists of events, EventColumns, single events, raw bytes) and
  their window;
* ``consumers``: consumers wired to a gateway (the client, the generated stubs, a raw reader),
  each in a session of its own that advises its items once its stream is open;
* ``rounds``: consumers in alternating rounds, and the ratios between them;
* ``command``: the flags, the run, the report and its human form.
"""

from mxgateway_cli._bench.command import (
    DEFAULT_ITEMS,
    add_bench_arguments,
    cmd_bench_stream_events,
    main,
    run_bench,
)
from mxgateway_cli._bench.consume import (
    consume_batches,
    consume_columns,
    consume_events,
    consume_raw,
)
from mxgateway_cli._bench.consumers import (
    PathName,
    Spec,
    measure_client,
    measure_raw,
    measure_stub,
)
from mxgateway_cli._bench.rounds import ratio, run_rounds
from mxgateway_cli._bench.simulator import (
    SimulatorError,
    SimulatorProcess,
    builtin_simulator,
    flood_simulator,
    simulator_command,
    simulator_env,
    simulator_tags,
)
from mxgateway_cli._bench.stats import StreamStats, summary

__all__ = [
    "DEFAULT_ITEMS",
    "PathName",
    "SimulatorError",
    "SimulatorProcess",
    "Spec",
    "StreamStats",
    "add_bench_arguments",
    "builtin_simulator",
    "cmd_bench_stream_events",
    "consume_batches",
    "consume_columns",
    "consume_events",
    "consume_raw",
    "flood_simulator",
    "main",
    "measure_client",
    "measure_raw",
    "measure_stub",
    "ratio",
    "run_bench",
    "run_rounds",
    "simulator_command",
    "simulator_env",
    "simulator_tags",
    "summary",
]
