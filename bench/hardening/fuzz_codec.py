"""A long fuzz run of the codec (the compiled module and the pure-Python twin side by side).

Each input is one of: protobuf-shaped random bytes (tests/hardening/fuzz_inputs.py), a
mutation of a valid encoding (flood batches, realistic batches, single events, sentinel
events, MxValues of every kind: bit flips, byte changes, inserts, deletes, duplications,
splices), or plain random bytes. Every input goes through decode_event, decode_event_batch,
from_mx_value and decode_varint of both implementations; a random Python value goes through
to_mx_value of both. An input fails when

- a process dies on it (a crash: the worker is killed by a signal),
- it takes longer than ``--timeout`` seconds (a hang: faulthandler, re-armed for every input,
  ends the worker and prints every stack),
- a codec raises anything but MxGatewayDecodeError (decoding) or ValueError/TypeError
  (encoding), or the two implementations disagree.

Inputs are numbered and derived from ``--seed`` and their number alone, so a failing input is
reproduced by ``--seed S --start N --count 1``; failing inputs are also written to
``--artifacts``. The worker runs in a child process, so a crash or a hang is recorded and the
run goes on with the next input.

Run: ``python -m bench.hardening.fuzz_codec --seconds 600`` (prints a summary and one JSON
line). ``--engine atheris`` runs coverage-guided libFuzzer (pip install atheris) over the same
checks, with libFuzzer's own crash and ``-timeout`` hang detection.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import json
import math
import multiprocessing
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mxgateway import MxDataType, _pycodec, codec_implementation
from mxgateway.generated import mxaccess_gateway_pb2 as pb

COUNTERS = ("inputs", "decoded", "rejected", "failures")


def _compiled() -> Any:
    try:
        from mxgateway import _speedups
    except ImportError:
        return None
    return _speedups


CODECS = [m for m in (_pycodec, _compiled()) if m is not None]


def valid_corpus() -> list[bytes]:
    """Valid encodings to mutate: every kind of message the codec reads."""
    from bench._data import realistic_batch, single_event

    out: list[bytes] = [realistic_batch(50, seed) for seed in range(3)]
    out += [single_event(seed) for seed in range(5)]
    for codec in CODECS:
        out.append(codec.encode_flood_batch("sim-fuzz", 1, [1, 2, 3], 1, 20, 1_700_000_000 * 10**9))
    gap = pb.MxEvent(
        session_id="s",
        replay_gap=pb.ReplayGap(requested_after_sequence=5, oldest_available_sequence=9),
    )
    out.append(gap.SerializeToString())
    buffered = pb.MxEvent(
        family=pb.MX_EVENT_FAMILY_ON_BUFFERED_DATA_CHANGE,
        on_buffered_data_change=pb.OnBufferedDataChangeEvent(
            data_type=pb.MX_DATA_TYPE_DOUBLE,
            samples=[pb.BufferedSample(value=pb.MxValue(double_value=1.5), quality=192)],
        ),
        statuses=[
            pb.MxStatusProxy(
                success=0,
                category=pb.MX_STATUS_CATEGORY_COMMUNICATION_ERROR,
                diagnostic_text="bad",
            )
        ],
        hresult=-2147024890,
    )
    out.append(buffered.SerializeToString())
    values: list[Any] = [
        1.5,
        -7,
        2**40,
        True,
        "text",
        "ünïcode",
        b"\x00\x01",
        datetime(2024, 1, 1, tzinfo=UTC),
        timedelta(seconds=3),
        [1.0, 2.0, 3.0],
        [[1, 2], [3, 4]],
        ["a", "b"],
        [datetime(2024, 1, 1, tzinfo=UTC)],
    ]
    out += [_pycodec.to_mx_value(v) for v in values]
    return out


def _mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(6)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(at, len(buf) - 1)] = rng.choice((0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            buf[at:at] = rng.randbytes(rng.randrange(1, 9))
        elif op == 3 and buf:
            del buf[at : at + rng.randrange(1, 17)]
        elif op == 4 and buf:
            buf[at:at] = buf[at : at + rng.randrange(1, 33)]
        else:
            other = rng.choice(corpus)
            start = rng.randrange(len(other) + 1)
            buf[at:at] = other[start : start + rng.randrange(1, 65)]
    return bytes(buf)


def _python_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.randrange(14 if depth < 3 else 12)
    leaves: list[Any] = [
        None,
        rng.random() < 0.5,
        rng.randrange(-(2**70), 2**70),
        rng.choice((2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 2**64)),
        rng.uniform(-1e308, 1e308),
        rng.choice((math.nan, math.inf, -math.inf, 3.5e38, 1e-46, -0.0)),
        "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(6))),
        rng.choice(("\ud800", "a\udfffb")),
        rng.randbytes(rng.randrange(8)),
        datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(-(10**10), 10**10)),
        datetime(2024, 1, 1),  # naive
        timedelta(microseconds=rng.randrange(-(10**15), 10**15)),
    ]
    if roll < len(leaves):
        return leaves[roll]
    return [_python_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def make_input(seed: int, index: int, corpus: list[bytes]) -> tuple[bytes, Any, Any]:
    """Input ``index`` of run ``seed``: bytes to decode, and a value and data_type to encode."""
    from tests.hardening.fuzz_inputs import random_message

    rng = random.Random(f"{seed}:{index}")
    roll = rng.random()
    if roll < 0.45:
        data = _mutate(rng, rng.choice(corpus), corpus)
    elif roll < 0.9:
        data = random_message(rng)
    else:
        data = rng.randbytes(rng.randrange(256))
    data_type = rng.choice([None, None, *MxDataType, rng.randrange(-3, 25)])
    return data, _python_value(rng), data_type


def check(data: bytes, value: Any, data_type: Any) -> tuple[str | None, bool]:
    """A description of what went wrong with one input (None: nothing), and whether the bytes
    decoded as an event or a batch somewhere."""
    from tests.hardening.fuzz_inputs import decode_outcome, encode_outcome

    decoded = False
    for kind in ("event", "batch", "value", "varint"):
        try:
            outcomes = [decode_outcome(codec, kind, data) for codec in CODECS]
        except Exception as exc:
            return f"{kind}: unexpected {type(exc).__name__}: {exc}", decoded
        if any(o != outcomes[0] for o in outcomes):
            return f"{kind}: the implementations disagree: {outcomes}", decoded
        decoded = decoded or (kind in ("event", "batch") and outcomes[0][0] == "ok")
    try:
        encoded = [encode_outcome(codec, value, data_type) for codec in CODECS]
    except Exception as exc:
        return f"to_mx_value({value!r}, {data_type!r}): unexpected {exc!r}", decoded
    if any(e != encoded[0] for e in encoded):
        return f"to_mx_value({value!r}, {data_type!r}): disagree: {encoded}", decoded
    return None, decoded


def _save(artifacts: Path, seed: int, index: int, what: str, detail: str) -> None:
    artifacts.mkdir(parents=True, exist_ok=True)
    corpus = valid_corpus()
    data, value, data_type = make_input(seed, index, corpus)
    stem = artifacts / f"{what}-seed{seed}-input{index}"
    stem.with_suffix(".bin").write_bytes(data)
    stem.with_suffix(".txt").write_text(
        f"{what}: {detail}\nvalue={value!r} data_type={data_type!r}\n"
        f"reproduce: python -m bench.hardening.fuzz_codec --seed {seed} --start {index} "
        "--count 1\n",
        encoding="utf-8",
    )


def _worker(
    seed: int,
    start: int,
    count: int,
    deadline: float,
    timeout: float,
    progress: Any,
    counters: Any,
    artifacts: str,
    inject: dict[int, str],
) -> None:
    corpus = valid_corpus()
    index = start
    stop = start + count if count else None
    while (stop is None or index < stop) and time.time() < deadline:
        progress.value = index
        faulthandler.dump_traceback_later(timeout, exit=True)
        if inject and index in inject:
            _inject(inject[index], timeout)
        problem, decoded = check(*make_input(seed, index, corpus))
        faulthandler.cancel_dump_traceback_later()
        counters[0] += 1
        counters[1 if decoded else 2] += 1
        if problem is not None:
            counters[3] += 1
            _save(Path(artifacts), seed, index, "failure", problem)
        index += 1
    progress.value = index


def _injections(args: argparse.Namespace) -> dict[int, str]:
    # --inject-faults: a hang and a crash at known inputs, to show the harness catches both.
    if not args.inject_faults:
        return {}
    return {args.start + 10: "hang", args.start + 20: "crash"}


def _inject(fault: str, timeout: float) -> None:
    if fault == "hang":
        time.sleep(timeout * 3)
    else:
        import ctypes

        ctypes.string_at(0)  # a segmentation fault


def run_loop(args: argparse.Namespace) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    progress = context.Value("q", args.start)
    counters = context.Array("q", len(COUNTERS))
    deadline = time.time() + args.seconds
    crashes: list[int] = []
    hangs: list[int] = []
    started = time.monotonic()
    next_index = args.start
    remaining = args.count
    while time.time() < deadline and (args.count == 0 or remaining > 0):
        worker = context.Process(
            target=_worker,
            args=(
                args.seed,
                next_index,
                remaining,
                deadline,
                args.timeout,
                progress,
                counters,
                args.artifacts,
                _injections(args),
            ),
        )
        worker.start()
        worker.join()
        if worker.exitcode == 0:
            break
        index = int(progress.value)
        kind = "hang" if worker.exitcode == 1 else "crash"
        (hangs if kind == "hang" else crashes).append(index)
        _save(Path(args.artifacts), args.seed, index, kind, f"exit code {worker.exitcode}")
        counters[0] += 1
        next_index = index + 1
        if args.count:
            remaining = args.start + args.count - next_index
    elapsed = time.monotonic() - started
    totals = dict(zip(COUNTERS, counters[:], strict=True))
    return {
        "engine": "loop",
        "seed": args.seed,
        "seconds": round(elapsed, 1),
        "inputs": totals["inputs"],
        "inputsPerSecond": round(totals["inputs"] / elapsed) if elapsed else 0,
        "decodedAsEventOrBatch": totals["decoded"],
        "rejectedEverywhere": totals["rejected"],
        "failures": totals["failures"],
        "crashes": len(crashes),
        "hangs": len(hangs),
        "hangTimeoutSeconds": args.timeout,
        "implementations": [m.__name__.rsplit(".", 1)[-1] for m in CODECS],
        "selectedCodec": codec_implementation(),
        "lastInput": int(progress.value) - 1,
    }


def run_atheris(args: argparse.Namespace) -> int:
    atheris: Any = importlib.import_module("atheris")  # optional: pip install atheris

    # Coverage comes from the twin's Python code (the compiled module is not instrumented,
    # but runs on every input and must agree with the twin).
    atheris.instrument_all()

    def one_input(raw: bytes) -> None:
        provider = atheris.FuzzedDataProvider(raw)
        data = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 4096))
        rng = random.Random(provider.ConsumeInt(8))
        problem, _ = check(data, _python_value(rng), rng.choice([None, *MxDataType]))
        if problem is not None:
            raise AssertionError(problem)

    corpus_dir = Path(args.artifacts) / "corpus"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for number, seed_input in enumerate(valid_corpus()):
        (corpus_dir / f"seed-{number}").write_bytes(
            len(seed_input).to_bytes(2, "little") + seed_input
        )
    argv = [
        sys.argv[0],
        str(corpus_dir),
        f"-max_total_time={int(args.seconds)}",
        f"-timeout={int(max(1, args.timeout))}",
        f"-seed={args.seed}",
        f"-artifact_prefix={args.artifacts}/",
        "-print_final_stats=1",
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    parser.add_argument("--start", type=int, default=0, help="first input number")
    parser.add_argument("--count", type=int, default=0, help="inputs to run (0: until time)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per input: a hang")
    parser.add_argument(
        "--artifacts", default=os.path.join("build", "fuzz"), help="where failing inputs go"
    )
    parser.add_argument("--engine", choices=("loop", "atheris"), default="loop")
    parser.add_argument(
        "--inject-faults",
        action="store_true",
        help="check the harness: a hang at input start+10 and a crash at start+20",
    )
    args = parser.parse_args(argv)
    if args.engine == "atheris":
        return run_atheris(args)
    summary = run_loop(args)
    print(
        f"{summary['inputs']} inputs in {summary['seconds']} s "
        f"({summary['inputsPerSecond']}/s, seed {summary['seed']}, implementations "
        f"{', '.join(summary['implementations'])}): {summary['crashes']} crashes, "
        f"{summary['hangs']} hangs (> {summary['hangTimeoutSeconds']} s), "
        f"{summary['failures']} other failures; "
        f"{summary['decodedAsEventOrBatch']} inputs decoded as an event or a batch"
    )
    print(json.dumps(summary, sort_keys=True))
    failed = summary["crashes"] + summary["hangs"] + summary["failures"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
