"""``mxgw-py record``: a session's events into rotating Parquet or Arrow IPC files.

The events come from ``Session.stream_event_columns`` (the stream core: resume after cuts
without losses or duplicates, ReplayGap, recovery) and are written as the columns of
``EventColumns.to_arrow()``: row groups of ``--row-group-rows`` (a partial one after
``--flush-seconds`` without filling, so a quiet stream still reaches the disk), written by
one background thread while the next events arrive. A file that has passed ``--rotate-bytes``
or been open ``--rotate-seconds`` is closed at the next write, which starts the next file; so
the last file of a run is always closed with the reason the run ended.

Each file is written as ``NAME.partial`` and renamed to ``NAME`` when closed, so a finished
name is always a complete file; Ctrl-C, ``--duration``/``--timeout`` and ``--max-events``
close the current file the same way (exit 130 for Ctrl-C, 0 for the bounds). Continuity is
written into each file's metadata (``mxgateway.recording`` when it opens; the summary
``mxgateway.summary`` when it closes: the Parquet footer's key-value metadata, or for Arrow
IPC the custom metadata of a last, empty record batch):

- recording: ``recording`` (an id shared by the files of one run), ``file`` (its index),
  ``sessionId``, ``previousFile`` and ``previousLastSequence`` (what came before, so the
  next file's first sequence can be checked against it), ``startedNs``;
- summary: ``rows``, ``firstSequence``, ``lastSequence``, ``sessions`` (ids with rows in the
  file), ``replayGaps`` (what the gateway said was lost: ``requestedAfter``,
  ``oldestAvailable``), ``recoveries`` (``oldSessionId``, ``newSessionId``,
  ``lastSequence``), ``reconnects`` and ``resumes`` of the stream while the file was open
  (cuts it resumed across without a loss), ``closedNs`` and ``reason`` (``rotate-bytes``,
  ``rotate-seconds``, ``end``, ``duration``, ``max-events``, ``interrupted``, ``error``).

Within a file and across files of a run, worker sequences follow each other with no
duplicate; where they do not, a replay gap or a recovery in the summary says why.
``--resume`` continues a recording of ``--session-id`` after the last sequence in ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import importlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mxgateway import GatewayClient, MxGatewayStreamLostError, Session
from mxgateway_cli._connection import (
    attach_session,
    connected,
    connection_parent,
    gateway_client,
    json_parent,
    positive_int,
    seconds,
    uint64,
)
from mxgateway_cli._exit_codes import EXIT_OK, UsageError
from mxgateway_cli._items import add_item_flags, items_of
from mxgateway_cli._output import emit, progress
from mxgateway_cli._streams import add_retry_budget

__all__ = ["Recorder", "add_record_command", "cmd_record", "read_summaries"]

RECORDING_KEY = "mxgateway.recording"
SUMMARY_KEY = "mxgateway.summary"
_MIB = 1 << 20
_COMPRESSIONS = ("zstd", "lz4", "snappy", "gzip", "none")
_ARROW_COMPRESSIONS = ("zstd", "lz4", "none")  # what Arrow IPC can compress with
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_QUEUE_UNITS = 8  # EventColumns waiting for the writer loop (then the stream waits)
_IPC_DICTIONARIES = ("session_id", "tag", "variant_type", "status_diagnostic_text", "body")


def _modules() -> tuple[Any, Any, Any]:
    """pyarrow, pyarrow.parquet and pyarrow.ipc, or a usage error naming the extras."""
    try:
        importlib.import_module("numpy")
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
        ipc = importlib.import_module("pyarrow.ipc")
    except ImportError as exc:
        raise UsageError(
            f"mxgw-py record needs pyarrow and numpy ({exc.name} is missing): "
            "pip install 'mxgateway[arrow,columns]'"
        ) from None
    return pa, pq, ipc


# -- files -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _File:
    """The file being written and what its summary will say."""

    path: Path
    partial: Path
    index: int
    opened_ns: int
    opened_at: float  # monotonic
    sink: Any
    writer: Any
    schema: Any
    rows: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    sessions: list[str] = field(default_factory=list)
    gaps: list[dict[str, int]] = field(default_factory=list)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    reconnects_at_open: int = 0
    resumes_at_open: int = 0


class Recorder:
    """Rotating files of EventColumns (see the module docstring). Not async: ``write`` and
    ``close`` run in the writer thread, ``add`` on the loop."""

    def __init__(
        self,
        out: Path,
        *,
        file_format: str,
        prefix: str,
        compression: str,
        row_group_rows: int,
        rotate_bytes: int,
        rotate_seconds: float,
        first_session: str,
    ) -> None:
        self.pa, self.pq, self.ipc = _modules()
        self.out = out
        self.format = file_format
        self.prefix = prefix
        self.compression = None if compression == "none" else compression
        self.row_group_rows = row_group_rows
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.recording = uuid.uuid4().hex
        self.session_id = first_session
        self.closed: list[dict[str, Any]] = []
        self.current: _File | None = None
        self.pending: list[Any] = []  # record batches not yet written
        self.pending_rows = 0
        self.pending_since: float | None = None
        self.previous_file: str | None = None
        self.previous_last: int | None = None
        self.stats: Any = None  # the session's StreamStats, read for reconnects/resumes
        self.rows = 0

    # -- on the loop --------------------------------------------------------------------------

    def add(self, columns: Any) -> None:
        """Take the rows of one EventColumns (written later, by the writer thread)."""
        if not len(columns):
            return
        self.pending.append(columns)
        self.pending_rows += len(columns)
        self.rows += len(columns)
        if self.pending_since is None:
            self.pending_since = time.monotonic()

    def due(self, flush_seconds: float) -> bool:
        """True when the pending rows make a row group, or waited ``flush_seconds``."""
        if not self.pending:
            return False
        if self.pending_rows >= self.row_group_rows:
            return True
        return self.pending_since is not None and (
            time.monotonic() - self.pending_since >= flush_seconds
        )

    def take(self, everything: bool = False) -> list[Any]:
        """Pending rows for the writer thread: one row group's worth (the EventColumns that
        crosses the boundary is split, as views), or ``everything``."""
        if everything or self.pending_rows <= self.row_group_rows:
            taken, self.pending = self.pending, []
            self.pending_rows = 0
            self.pending_since = None
            return taken
        taken = []
        room = self.row_group_rows
        while room:
            columns = self.pending.pop(0)
            if len(columns) > room:
                self.pending.insert(0, columns[room:])
                columns = columns[:room]
            taken.append(columns)
            room -= len(columns)
        self.pending_rows -= self.row_group_rows
        self.pending_since = time.monotonic()
        return taken

    # -- in the writer thread --------------------------------------------------------------------

    def write(self, pending: list[Any]) -> None:
        """Write batches (and their facts) to the current file as one row group (Parquet;
        several if over ``row_group_rows``), closing a file due for rotation and opening the
        next first."""
        if not pending:
            return
        # One conversion per row group (the per-call costs of to_arrow() are paid once).
        batch = pending[0].concat(pending).to_arrow()
        if self.format == "arrow":
            batch = self._plain_strings(batch)
        due = self._rotation_due()
        if due is not None:
            self.close(due)
        if self.current is None:
            self._open(batch.schema)
        current = self.current
        assert current is not None
        table = self.pa.Table.from_batches([batch])
        if self.format == "parquet":
            current.writer.write_table(table, row_group_size=self.row_group_rows)
        else:
            current.writer.write_table(table)
        for columns in pending:
            self._note(_facts(columns))

    def close(self, reason: str) -> None:
        """Close the current file: its summary, then the rename from ``.partial``."""
        current = self.current
        if current is None:
            return
        self.current = None
        summary = self._summary(current, reason)
        text = json.dumps(summary, sort_keys=True)
        if self.format == "parquet":
            current.writer.add_key_value_metadata({SUMMARY_KEY: text})
            current.writer.close()
        else:
            empty = self.pa.RecordBatch.from_pylist([], schema=current.schema)
            current.writer.write_batch(empty, custom_metadata={SUMMARY_KEY: text})
            current.writer.close()
        current.sink.close()
        size = current.partial.stat().st_size
        os.replace(current.partial, current.path)
        self.previous_file = current.path.name
        if current.last_sequence is not None:
            self.previous_last = current.last_sequence
        self.closed.append(
            {
                "bytes": size,
                "firstSequence": current.first_sequence,
                "lastSequence": current.last_sequence,
                "path": str(current.path),
                "reason": reason,
                "rows": current.rows,
            }
        )

    def _rotation_due(self) -> str | None:
        current = self.current
        if current is None or not current.rows:
            return None
        if current.sink.tell() >= self.rotate_bytes:
            return "rotate-bytes"
        if time.monotonic() - current.opened_at >= self.rotate_seconds:
            return "rotate-seconds"
        return None

    def _open(self, schema: Any) -> None:
        index = len(self.closed)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        suffix = ".parquet" if self.format == "parquet" else ".arrow"
        name = f"{self.prefix}-{stamp}-{self.recording[:8]}-{index:05d}{suffix}"
        path = self.out / name
        partial = path.with_name(name + ".partial")
        opened_ns = time.time_ns()
        recording = {
            "file": index,
            "previousFile": self.previous_file,
            "previousLastSequence": self.previous_last,
            "recording": self.recording,
            "sessionId": self.session_id,
            "startedNs": opened_ns,
            "version": 1,
        }
        schema = schema.with_metadata({RECORDING_KEY: json.dumps(recording, sort_keys=True)})
        sink = self.pa.OSFile(str(partial), "wb")
        if self.format == "parquet":
            writer = self.pq.ParquetWriter(
                sink, schema, compression=self.compression or "none", use_dictionary=True
            )
        else:
            options = self.ipc.IpcWriteOptions(compression=self.compression)
            writer = self.ipc.new_file(sink, schema, options=options)
        stats = self.stats
        self.current = _File(
            path=path,
            partial=partial,
            index=index,
            opened_ns=opened_ns,
            opened_at=time.monotonic(),
            sink=sink,
            writer=writer,
            schema=schema,
            reconnects_at_open=stats.reconnects if stats is not None else 0,
            resumes_at_open=stats.resumes if stats is not None else 0,
        )

    def _note(self, facts: dict[str, Any]) -> None:
        current = self.current
        assert current is not None
        current.rows += facts["rows"]
        if current.first_sequence is None:
            current.first_sequence = facts["first"]
        current.last_sequence = facts["last"]
        for session_id in facts["sessions"]:
            if session_id not in current.sessions:
                current.sessions.append(session_id)
        current.gaps.extend(facts["gaps"])
        current.recoveries.extend(facts["recoveries"])
        if facts["recoveries"]:
            self.session_id = facts["recoveries"][-1]["newSessionId"]

    def _summary(self, current: _File, reason: str) -> dict[str, Any]:
        stats = self.stats
        return {
            "closedNs": time.time_ns(),
            "firstSequence": current.first_sequence,
            "lastSequence": current.last_sequence,
            "reason": reason,
            "reconnects": (stats.reconnects if stats is not None else 0)
            - current.reconnects_at_open,
            "recoveries": current.recoveries,
            "replayGaps": current.gaps,
            "resumes": (stats.resumes if stats is not None else 0) - current.resumes_at_open,
            "rows": current.rows,
            "sessions": current.sessions,
        }

    def _plain_strings(self, batch: Any) -> Any:
        # Arrow IPC files cannot replace a dictionary between batches: plain strings there.
        arrays = list(batch.columns)
        for name in _IPC_DICTIONARIES:
            index = batch.schema.get_field_index(name)
            arrays[index] = arrays[index].dictionary_decode()
        return self.pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _facts(columns: Any) -> dict[str, Any]:
    """What a file's summary needs of one EventColumns (read on the loop, small)."""
    gaps: list[dict[str, int]] = []
    recoveries: list[dict[str, Any]] = []
    sessions = [columns.session_id]
    for _, event in columns.others:
        if event.replay_gap is not None:
            gaps.append(
                {
                    "oldestAvailable": event.replay_gap.oldest_available_sequence,
                    "requestedAfter": event.replay_gap.requested_after_sequence,
                }
            )
        recovered = event.session_recovered
        if recovered is not None:
            recoveries.append(
                {
                    "lastSequence": recovered.last_sequence,
                    "newSessionId": recovered.new_session_id,
                    "oldSessionId": recovered.old_session_id,
                }
            )
            sessions.append(recovered.new_session_id)
    return {
        "first": int(columns.worker_sequence[0]),
        "gaps": gaps,
        "last": int(columns.worker_sequence[-1]),
        "recoveries": recoveries,
        "rows": len(columns),
        "sessions": sessions,
    }


def read_summaries(out: Path) -> list[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """The finished files of ``out`` in the order they were opened (``startedNs``: names sort
    by the second only, then by the random recording id) with their recording and summary
    metadata."""
    _, pq, ipc = _modules()
    found = []
    for path in sorted(out.iterdir()):
        if path.suffix == ".parquet":
            meta = pq.read_metadata(path).metadata or {}
            recording = json.loads(meta[RECORDING_KEY.encode()])
            summary = json.loads(meta[SUMMARY_KEY.encode()])
        elif path.suffix == ".arrow":
            with ipc.open_file(path) as reader:
                recording = json.loads(reader.schema.metadata[RECORDING_KEY.encode()])
                last = reader.get_batch_with_custom_metadata(reader.num_record_batches - 1)
                summary = json.loads(last.custom_metadata[SUMMARY_KEY.encode()])
        else:
            continue
        found.append((path, recording, summary))
    found.sort(key=lambda f: (f[1].get("startedNs", 0), f[1].get("file", 0), f[0].name))
    return found


# -- the command --------------------------------------------------------------------------------


async def cmd_record(args: argparse.Namespace) -> int:
    """Record the events of a session (opened here for --item, or --session-id) to files."""
    _modules()  # before connecting: a missing extra is a usage error
    items = items_of(args, required=False)
    if bool(items) == bool(args.session_id):
        raise UsageError("give the tags to record (--item/--items-file) or --session-id, not both")
    if args.duration is not None and args.timeout is not None:
        raise UsageError("--duration and --timeout are the same bound here: give one")
    if args.resume and not args.session_id:
        raise UsageError("--resume continues the recording of a --session-id")
    if args.format == "arrow" and args.compression not in _ARROW_COMPRESSIONS:
        raise UsageError(f"--format arrow compresses with {', '.join(_ARROW_COMPRESSIONS)} only")
    out = _directory(args.out)
    after = args.after_sequence
    if args.resume:
        after = _resume_point(out, args.session_id) or after
    async with gateway_client(args) as client:
        await connected(client, args)
        session = await _session(client, args, items)
        try:
            summary = await _record(session, args, out, after)
        finally:
            if items:
                await _close_quietly(session)
    emit(args.json, summary, lambda: _summary_text(summary))
    return EXIT_OK


def _directory(text: str) -> Path:
    out = Path(text)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create {text!r}: {exc.strerror}") from None
    return out


async def _session(client: GatewayClient, args: argparse.Namespace, items: list[str]) -> Session:
    if args.session_id:
        return attach_session(client, args.session_id)
    session = await client.open_session(args.client_name, recover=True)
    try:
        server = await session.register(args.client_name)
        results = await session.subscribe_bulk(server, items)
    except BaseException:
        await _close_quietly(session)
        raise
    failed = [r for r in results if not r.was_successful]
    if failed:
        progress(f"record: {len(failed)} of {len(items)} items could not be subscribed")
    return session


async def _close_quietly(session: Session) -> None:
    with contextlib.suppress(Exception):
        await asyncio.shield(session.close())


async def _record(
    session: Session, args: argparse.Namespace, out: Path, after: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    recorder = Recorder(
        out,
        file_format=args.format,
        prefix=args.prefix,
        compression=args.compression,
        row_group_rows=args.row_group_rows,
        rotate_bytes=args.rotate_bytes,
        rotate_seconds=args.rotate_seconds,
        first_session=session.session_id,
    )
    bound = args.duration if args.duration is not None else args.timeout
    deadline = None if bound is None else loop.time() + bound
    units: asyncio.Queue[Any] = asyncio.Queue(_QUEUE_UNITS)
    stream = session.stream_event_columns(
        max_batch_events=args.batch_size,
        after_worker_sequence=after,
        retry_budget_s=args.retry_budget,
    )

    async def produce() -> None:
        try:
            async for columns in stream:
                await units.put(columns)
        finally:
            await stream.aclose()
        await units.put(None)  # the gateway ended the stream

    producer = asyncio.create_task(produce(), name="mxgw-py record stream")
    thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mxgw-py-record")
    writing: concurrent.futures.Future[None] | None = None
    reason = "error"
    progress(f"recording session {session.session_id} into {out} (Ctrl-C to stop)")
    try:
        while True:
            timeout = args.flush_seconds
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - loop.time()))
            get = asyncio.ensure_future(units.get())
            done, _ = await asyncio.wait(
                {get, producer}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if get in done:
                columns = get.result()
                if columns is None:
                    reason = "end"
                    break
                if recorder.stats is None:
                    recorder.stats = session.stats
                if args.max_events is not None and recorder.rows + len(columns) >= args.max_events:
                    recorder.add(columns[: args.max_events - recorder.rows])
                    reason = "max-events"
                    break
                recorder.add(columns)
            else:
                get.cancel()
                if producer in done:
                    producer.result()  # the stream's error
            if deadline is not None and loop.time() >= deadline:
                reason = "duration"
                break
            if recorder.due(args.flush_seconds):
                if writing is not None:
                    # One write at a time; the next events arrive while it runs.
                    await asyncio.wrap_future(writing)
                writing = thread.submit(recorder.write, recorder.take())
        if session.stream_trouble is not None:
            raise MxGatewayStreamLostError(
                f"event stream of session {session.session_id} was still reconnecting at "
                f"the bound ({session.stream_trouble})"
            )
    except asyncio.CancelledError:
        reason = "interrupted"
        raise
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        # Everything taken is written, and the file closed, whatever ended the recording.
        thread.shutdown(wait=True)
        try:
            if writing is not None:
                writing.result()  # a failed write is the recording's error
            recorder.write(recorder.take(everything=True))
        finally:
            recorder.close(reason)
        if reason == "interrupted":
            result = _result(recorder, session)
            emit(args.json, result, lambda: _summary_text(result))
    return _result(recorder, session)


def _result(recorder: Recorder, session: Session) -> dict[str, Any]:
    return {
        "files": recorder.closed,
        "format": recorder.format,
        "recording": recorder.recording,
        "rows": sum(f["rows"] for f in recorder.closed),
        "sessionId": session.session_id,
    }


def _summary_text(summary: dict[str, Any]) -> str:
    lines = [
        f"{f['path']}: {f['rows']} rows, sequences {f['firstSequence']}..{f['lastSequence']}, "
        f"{f['bytes']} bytes ({f['reason']})"
        for f in summary["files"]
    ]
    lines.append(f"recorded {summary['rows']} events in {len(summary['files'])} files")
    return "\n".join(lines)


def _resume_point(out: Path, session_id: str) -> int | None:
    """The last sequence recorded in ``out`` for ``session_id`` (None: nothing yet)."""
    last = None
    for _, recording, summary in read_summaries(out):
        sessions = summary.get("sessions") or [recording.get("sessionId")]
        ended = summary.get("lastSequence")
        if sessions and sessions[-1] == session_id and ended is not None:
            last = ended if last is None else max(last, ended)  # a session's sequences grow
    return last


# -- arguments ----------------------------------------------------------------------------------


def _bytes(text: str) -> int:
    value = positive_int(text)
    if value < _MIB:
        raise argparse.ArgumentTypeError(f"must be at least {_MIB} (1 MiB): {text!r}")
    return value


def _row_group(text: str) -> int:
    value = positive_int(text)
    if value > 1 << 24:
        raise argparse.ArgumentTypeError(f"must be at most {1 << 24}: {text!r}")
    return value


def _batch(text: str) -> int:
    value = positive_int(text)
    if value > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..4294967295")
    return value


def _prefix(text: str) -> str:
    if not _PREFIX.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "letters, digits, '_', '.', '-' (up to 64, starting with a letter or digit)"
        )
    return text


def add_record_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``record`` to the ``mxgw-py`` parser."""
    from mxgateway._session import DEFAULT_COLUMN_BATCH_EVENTS

    parser = commands.add_parser(
        "record",
        help="record a session's events into rotating Parquet or Arrow files",
        description=__doc__.split("\n\n")[0]
        + " Needs pyarrow and numpy: pip install 'mxgateway[arrow,columns]'.",
        parents=[json_parent(), connection_parent(stream=True)],
    )
    add_item_flags(parser, what="a tag to record (a session is opened, subscribed and closed)")
    parser.add_argument("--session-id", metavar="ID", help="record a session opened elsewhere")
    parser.add_argument(
        "--client-name", default="mxgw-py record", help="session and MXAccess client name"
    )
    files = parser.add_argument_group("files")
    files.add_argument("--out", required=True, metavar="DIR", help="directory of the files")
    files.add_argument("--format", choices=("parquet", "arrow"), default="parquet")
    files.add_argument("--prefix", type=_prefix, default="events", help="file name prefix")
    files.add_argument(
        "--compression",
        choices=_COMPRESSIONS,
        default="zstd",
        help="codec of the file's data (arrow: zstd, lz4 or none; default zstd)",
    )
    files.add_argument(
        "--row-group-rows",
        type=_row_group,
        default=262144,
        metavar="N",
        help="rows per Parquet row group / per Arrow write (default 262144)",
    )
    files.add_argument(
        "--flush-seconds",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="write a partial row group after this long (default 10)",
    )
    files.add_argument(
        "--rotate-bytes",
        type=_bytes,
        default=256 * _MIB,
        metavar="N",
        help="start a new file past N bytes (default 268435456)",
    )
    files.add_argument(
        "--rotate-seconds",
        type=seconds,
        default=3600.0,
        metavar="SECONDS",
        help="start a new file after SECONDS (default 3600)",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--max-events", type=positive_int, metavar="N", help="stop after N events")
    run.add_argument(
        "--duration",
        type=seconds,
        metavar="SECONDS",
        help="stop after SECONDS and exit 0 (the same as --timeout here)",
    )
    run.add_argument(
        "--after-sequence",
        type=uint64,
        default=0,
        metavar="SEQ",
        help="start after this worker sequence (replayed by the gateway; 0: live only)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="with --session-id: start after the last sequence of that session in --out",
    )
    run.add_argument(
        "--batch-size",
        type=_batch,
        default=DEFAULT_COLUMN_BATCH_EVENTS,
        metavar="N",
        help=f"max_batch_events of the stream (default {DEFAULT_COLUMN_BATCH_EVENTS})",
    )
    add_retry_budget(parser, "stream")
    parser.set_defaults(handler=cmd_record)
