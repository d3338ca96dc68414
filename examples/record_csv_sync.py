"""Record tags to CSV, across a gateway restart (blocking).

    python examples/record_csv_sync.py --plaintext --tag Pump_001.Speed --output speed.csv

record_csv.py with ``mxgateway.sync``. A blocking iterator has no ``asyncio.timeout``: the
``--handles`` recording ends at its duration by a timer that closes the stream from another
thread (``Stream.close`` may be called from any thread; the loop then ends at once).

Two ways, both of which outlive a gateway restart:

- the tag API (default): ``client.subscribe`` runs on a session the client keeps and recovers
  for you; events lost while the gateway was away arrive as one notice (tag ``"*"``);
- ``--handles``: a session opened with ``recover=True``, read with ``stream_events``: after a
  restart it opens a new session, replays its items, and yields a marker event whose
  ``session_recovered`` names the old and new session and the items it could not restore.

A notice is a row with tag ``*`` (the text in ``note``) and a line on stderr. Rows are flushed
as they come, so the file can be followed while it grows.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from mxgateway import MxEvent, MxEventFamily, MxGatewayError
from mxgateway.sync import GatewayClient

COLUMNS = ["time", "tag", "value", "quality", "note"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:5000", help="gateway HOST:PORT")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (the simulator)")
    parser.add_argument("--api-key-env", metavar="NAME", help="env variable holding the API key")
    parser.add_argument("--tag", action="append", help="a tag to record (repeatable)")
    parser.add_argument("--output", default="recording.csv", help="CSV file ('-': stdout)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to record")
    parser.add_argument("--max-rows", type=int, default=0, help="stop after N rows (0: no limit)")
    parser.add_argument("--handles", action="store_true", help="a recover=True session instead")
    return parser.parse_args(argv)


class Recording:
    """The CSV file: one row per value, one per notice."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._csv = csv.writer(out)
        self._csv.writerow(COLUMNS)
        self.rows = 0
        self.notices = 0

    def value(self, when: datetime | None, tag: str, value: Any, quality: int, note: str) -> None:
        stamp = when.isoformat() if when is not None else ""
        self._csv.writerow([stamp, tag, value, quality, note])
        self._out.flush()
        self.rows += 1

    def notice(self, text: str) -> None:
        print(f"notice: {text}", file=sys.stderr, flush=True)
        self._csv.writerow([datetime.now(UTC).isoformat(), "*", "", "", text])
        self._out.flush()
        self.notices += 1


def event_notice(event: MxEvent) -> str | None:
    """The text of a stream-wide notice (a session recovery, a replay gap), else None."""
    if event.session_recovered is not None:
        recovered = event.session_recovered
        return (
            f"session recovered: {recovered.old_session_id} -> {recovered.new_session_id}; "
            f"{len(recovered.failed)} item(s) not restored; the events in between were lost"
        )
    if event.replay_gap is not None:
        gap = event.replay_gap
        return (
            f"events lost: sequences {gap.requested_after_sequence + 1} to "
            f"{gap.oldest_available_sequence - 1} were older than the gateway kept"
        )
    return None


def record_tags(client: GatewayClient, tags: list[str], args: Any, out: Recording) -> None:
    for change in client.subscribe(tags, duration=args.duration):
        if change.tag == "*":
            out.notice(change.error or "events lost")
            continue
        out.value(change.timestamp, change.tag, change.value, change.quality, change.error or "")
        if out.rows == args.max_rows:
            break


def record_handles(client: GatewayClient, tags: list[str], args: Any, out: Recording) -> None:
    with client.open_session("csv-recorder", recover=True) as session:
        server = session.register("csv-recorder")
        for result in session.subscribe_bulk(server, tags):
            if not result.was_successful:
                out.value(None, result.tag_address, "", 0, f"error: {result.error_message}")
        with session.stream_events() as events:
            timer = threading.Timer(args.duration, events.close)  # the duration is over
            timer.start()
            try:
                for event in events:
                    text = event_notice(event)
                    if text is not None:
                        out.notice(text)
                    elif event.family == MxEventFamily.ON_DATA_CHANGE:
                        # event.tag: the item's Tag.Attribute, named by the session itself.
                        tag = event.tag or str(event.item_handle)
                        note = next((s.diagnostic_text for s in event.statuses if not s.ok), "")
                        out.value(event.source_timestamp, tag, event.value, event.quality, note)
                        if out.rows == args.max_rows:
                            break
            finally:
                timer.cancel()


@contextlib.contextmanager
def opened(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdout
        return
    with open(path, "w", newline="", encoding="utf-8") as out:
        yield out


def record(args: argparse.Namespace) -> int:
    api_key = os.environ[args.api_key_env] if args.api_key_env else None
    tags = args.tag or ["Pump_001.Speed", "Tank_001.Level"]
    with (
        GatewayClient.connect(args.endpoint, api_key=api_key, plaintext=args.plaintext) as client,
        opened(args.output) as out,
    ):
        recording = Recording(out)
        if args.handles:
            record_handles(client, tags, args, recording)
        else:
            record_tags(client, tags, args, recording)
    print(
        f"{recording.rows} row(s) and {recording.notices} notice(s) written to {args.output}",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return record(args)
    except MxGatewayError as error:  # e.g. the gateway stayed away beyond the retry budget
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
