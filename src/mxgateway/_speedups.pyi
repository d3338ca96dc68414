# Type stub for the compiled codec (built from ext/_speedups.pyx); mirrors mxgateway._pycodec:
# the same functions with the same signatures (docs/codec.md).

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message

from mxgateway.types import MxDataType, MxEvent, MxValue

if TYPE_CHECKING:
    from mxgateway.columns import EventColumns

__all__ = [
    "configure",
    "decode_event",
    "decode_event_batch",
    "decode_event_columns",
    "decode_varint",
    "encode_event",
    "encode_event_batch",
    "encode_flood_batch",
    "from_mx_value",
    "to_mx_value",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

def configure(file_descriptor: FileDescriptor | None = None) -> None: ...
def decode_varint(data: Buffer, offset: int = 0) -> tuple[int, int]: ...
def decode_event(data: Buffer, tags: dict[int, str] | None = None) -> MxEvent: ...
def decode_event_batch(data: Buffer, tags: dict[int, str] | None = None) -> list[MxEvent]: ...
def decode_event_columns(data: Buffer, tags: dict[int, str] | None = None) -> EventColumns: ...
def _decode_columns(messages: Sequence[Buffer], tags: object, single: bool) -> tuple[Any, ...]: ...
def _column_layout() -> tuple[tuple[str, str], ...]: ...
def from_mx_value(data: Buffer | Message) -> MxValue: ...
def to_mx_value(value: Any, data_type: MxDataType | int | None = None) -> bytes: ...
def encode_event(event: MxEvent) -> bytes: ...
def encode_event_batch(events: Sequence[MxEvent]) -> bytes: ...
def encode_flood_batch(
    session_id: str,
    server_handle: int,
    item_handles: Sequence[int],
    first_sequence: int,
    count: int,
    timestamp_ns: int,
) -> bytes: ...
