"""Every benchmark group's in-run reference, the ratio to it, and what the run ran on.

A wall-clock or CPU figure moves with the machine and its load; the ratio of a benchmark to
a reference measured in the same run, the same way, moves far less (docs/benchmarks.md).
After a run, each benchmark of a group named in ``REFERENCES`` gets in its ``extra_info``
the reference's name and ``ratio_to_reference``: the reference's median time divided by its
own (above 1: faster than the reference). ``python -m bench.compare`` compares those ratios
between a saved baseline and a run. The machine info of the JSON gains the versions of
Python, grpcio, protobuf, msgspec and mxgateway, and the active codec.
"""

from __future__ import annotations

from typing import Any

import pytest

REFERENCES: dict[str, str] = {
    # group: the benchmark (name as pytest-benchmark reports it) the others are divided by
    "decode-batch": "test_decode_batch[protobuf]",
    "decode-batch-tags": "test_decode_batch_with_tags[cython-no-tags]",  # what naming costs
    "decode-event": "test_decode_event[protobuf]",
    "encode-flood": "test_encode_flood_batch[python]",  # the simulator's: the twin is the base
    "to-mx-value": "test_to_mx_value[protobuf]",
    "from-mx-value": "test_from_mx_value[protobuf]",
    "encode-commands": "test_encode_write_bulk[protobuf]",
    "decode-varint": "test_decode_varint[python]",  # protobuf has no public varint reader
    "stream-stats": "test_stats_overhead[without-stats]",
    "decode-columns": "test_decode_columns[structs-cython]",  # columns against structs
    "decode-columns-realistic": "test_decode_columns_realistic[structs-cython]",
}
"""Groups with an in-run reference. A group whose reference did not run gets no ratios."""


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]
) -> None:
    """Add each benchmark's ratio to its group's reference (the JSON's ``extra_info``)."""
    del config, benchmarks
    add_ratios(output_json["benchmarks"])


def add_ratios(benchmarks: list[dict[str, Any]]) -> None:
    """Set ``reference``, ``ratio_to_reference`` (of the medians) and ``ratio_to_reference_min``
    (of the best rounds) in the ``extra_info`` of each benchmark whose group has its reference
    in ``benchmarks`` (pytest-benchmark's JSON entries); ratios already there are dropped
    first, so a file saved earlier or edited by hand is read from its timings alone."""
    stats = {(b["group"], b["name"]): b["stats"] for b in benchmarks}
    for bench in benchmarks:
        for key in ("reference", "ratio_to_reference", "ratio_to_reference_min"):
            bench.get("extra_info", {}).pop(key, None)
    for bench in benchmarks:
        reference = REFERENCES.get(bench["group"] or "")
        base = stats.get((bench["group"], reference)) if reference else None
        own = bench["stats"]
        if not base or not base["median"] or not own["median"] or not own["min"]:
            continue
        info = bench.setdefault("extra_info", {})
        info["reference"] = reference
        info["ratio_to_reference"] = round(base["median"] / own["median"], 4)
        info["ratio_to_reference_min"] = round(base["min"] / own["min"], 4)


def pytest_benchmark_update_machine_info(
    config: pytest.Config, machine_info: dict[str, Any]
) -> None:
    """What the run ran on, beyond pytest-benchmark's CPU and platform."""
    del config
    import google.protobuf
    import grpc
    import msgspec

    import mxgateway

    machine_info["mxgateway"] = {
        "version": mxgateway.__version__,
        "codec": mxgateway.codec_implementation(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "msgspec": msgspec.__version__,
        "event_loop": mxgateway.preferred_event_loop(),
    }
