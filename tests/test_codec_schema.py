"""One source of truth: the codec takes every field number from the descriptors.

A copy of mxaccess_gateway.proto (and of timestamp.proto / duration.proto) is renumbered
with descriptor_pb2: fields shifted, reversed and spread to multi-byte tags. Messages built
with classes from a fresh DescriptorPool are decoded after ``configure(renumbered)`` and must
equal the oracle; the codec's encoder must then write the renumbered layout byte for byte.
``configure()`` restores the generated schema. The IntEnums of mxgateway.types are checked
against the descriptors' enums.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from enum import IntEnum
from types import ModuleType
from typing import Any

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    message_factory,
    timestamp_pb2,
)
from google.protobuf.descriptor import FieldDescriptor, FileDescriptor
from hypothesis import HealthCheck, given, settings

from mxgateway import types
from mxgateway._pbconvert import event_from_pb, events_from_pb
from tests.codec_support import (
    canon,
    event_timestamps_encodable,
    outcome,
    pb,
    pb_batches,
    pb_event_from_struct,
    pb_events,
)

# New numbers per message: reversed, shifted, spread out to 2- and 3-byte tags.
RENUMBER: dict[str, Callable[[int], int]] = {
    "MxEvent": lambda n: 300 - n,
    "MxValue": lambda n: n + 100,
    "MxStatusProxy": lambda n: 20 - n,
    "MxArray": lambda n: n * 1000 + 7,
    "MxSparseArray": lambda n: 50 - n,
    "MxSparseElement": lambda n: 3 - n,
    "MxEventBatch": lambda n: n + 15,
    "OnBufferedDataChangeEvent": lambda n: 100 - n,
    "BufferedSample": lambda n: n + 2000,
    "ReplayGap": lambda n: 9 - n,
    "OnAlarmTransitionEvent": lambda n: 1000 - 3 * n,
    "Timestamp": lambda n: 30 - n,
    "Duration": lambda n: 2 * n + 40,
}


def _renumbered(module: Any) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    for message in proto.message_type:
        remap = RENUMBER.get(message.name)
        if remap is not None:
            for field in message.field:
                field.number = remap(field.number)
    return proto


class Renumbered:
    """The renumbered schema: its FileDescriptor and message classes."""

    def __init__(self) -> None:
        pool = descriptor_pool.DescriptorPool()
        pool.Add(_renumbered(timestamp_pb2))
        pool.Add(_renumbered(duration_pb2))
        pool.Add(_renumbered(pb))
        self.file: FileDescriptor = pool.FindFileByName(pb.DESCRIPTOR.name)
        self.classes: dict[str, Any] = {
            name: message_factory.GetMessageClass(descriptor)
            for name, descriptor in self.file.message_types_by_name.items()
        }

    def convert(self, message: Any) -> Any:
        """A generated message copied field by field into the renumbered class."""
        target = self.classes[message.DESCRIPTOR.name]()
        _transplant(message, target)
        return target


def _transplant(source: Any, target: Any) -> None:
    for field, value in source.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                for item in value:
                    _transplant(item, getattr(target, field.name).add())
            else:
                sub = getattr(target, field.name)
                sub.SetInParent()
                _transplant(value, sub)
        elif field.is_repeated:
            getattr(target, field.name).extend(value)
        else:
            setattr(target, field.name, value)


RENUMBERED = Renumbered()


@pytest.fixture
def renumbered_codec(codec: ModuleType) -> Iterator[ModuleType]:
    """The codec configured with the renumbered schema; the generated one is restored after."""
    codec.configure(RENUMBERED.file)
    try:
        yield codec
    finally:
        codec.configure()


def test_the_renumbering_really_moves_fields() -> None:
    event = pb.MxEvent(session_id="s", family=1)
    event.source_timestamp.seconds = 5
    original = event.SerializeToString()
    moved = RENUMBERED.convert(event).SerializeToString()
    assert original != moved
    # and protobuf reads each with its own schema to the same struct
    assert event_from_pb(RENUMBERED.classes["MxEvent"].FromString(moved)) == event_from_pb(event)


SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@SETTINGS
@given(message=pb_events())
def test_decode_and_encode_with_renumbered_schema(
    renumbered_codec: ModuleType, message: Any
) -> None:
    codec = renumbered_codec
    moved = RENUMBERED.convert(message)
    data = moved.SerializeToString()
    expected = outcome(lambda: event_from_pb(moved))
    # the same struct as the original message gives with the generated schema
    assert expected == outcome(lambda: event_from_pb(message))
    assert outcome(lambda: codec.decode_event(data)) == expected
    if expected[0] == "ok":
        event = codec.decode_event(data)
        if event_timestamps_encodable(event):
            # the encoder writes the renumbered layout, in the new field-number order
            assert (
                codec.encode_event(event)
                == RENUMBERED.convert(pb_event_from_struct(event)).SerializeToString()
            )


@SETTINGS
@given(message=pb_batches())
def test_batches_with_renumbered_schema(renumbered_codec: ModuleType, message: Any) -> None:
    moved = RENUMBERED.convert(message)
    data = moved.SerializeToString()
    assert outcome(lambda: renumbered_codec.decode_event_batch(data)) == outcome(
        lambda: events_from_pb(moved)
    )


def test_flood_and_values_follow_the_schema(renumbered_codec: ModuleType) -> None:
    codec = renumbered_codec
    data = codec.encode_flood_batch("s", 1, [4, 5, 6, 7], 10, 8, 1_700_000_000_000_000_001)
    batch = RENUMBERED.classes["MxEventBatch"].FromString(data)
    assert [e.worker_sequence for e in batch.events] == list(range(10, 18))
    assert batch.SerializeToString() == data
    assert canon(codec.decode_event_batch(data)) == canon(events_from_pb(batch))
    value = codec.to_mx_value([[1.5, 2.5]])
    message = RENUMBERED.classes["MxValue"].FromString(value)
    assert list(message.array_value.double_values) == [1.5, 2.5]
    assert list(message.array_value.dimensions) == [1, 2]
    assert message.SerializeToString() == value
    assert codec.from_mx_value(value).value == [[1.5, 2.5]]


def test_configure_restores_the_generated_schema(codec: ModuleType) -> None:
    message = pb.MxEvent(session_id="sess", family=2, worker_sequence=9, quality=192)
    message.value.int32_value = 5
    message.source_timestamp.seconds = 3
    original = message.SerializeToString()
    moved = RENUMBERED.convert(message).SerializeToString()
    expected = canon(event_from_pb(message))
    codec.configure(RENUMBERED.file)
    try:
        assert canon(codec.decode_event(moved)) == expected
        assert canon(codec.decode_event(original)) != expected
    finally:
        codec.configure()
    assert canon(codec.decode_event(original)) == expected
    assert codec.encode_event(codec.decode_event(original)) == original
    # the generated descriptor passed explicitly is the same as the default
    codec.configure(pb.DESCRIPTOR)
    assert canon(codec.decode_event(original)) == expected


def _broken(
    edit: Callable[[descriptor_pb2.FileDescriptorProto], None], name: str
) -> FileDescriptor:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_renumbered(timestamp_pb2))
    pool.Add(_renumbered(duration_pb2))
    proto = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(proto)
    proto.name = name
    edit(proto)
    pool.Add(proto)
    return pool.FindFileByName(name)


def _message(proto: descriptor_pb2.FileDescriptorProto, name: str) -> Any:
    return next(m for m in proto.message_type if m.name == name)


def _drop_field(proto: descriptor_pb2.FileDescriptorProto) -> None:
    fields = _message(proto, "MxEvent").field
    index = next(i for i, f in enumerate(fields) if f.name == "quality")
    del fields[index]


def _retype_field(proto: descriptor_pb2.FileDescriptorProto) -> None:
    field = next(f for f in _message(proto, "MxValue").field if f.name == "int32_value")
    field.type = descriptor_pb2.FieldDescriptorProto.TYPE_SINT32


@pytest.mark.parametrize("edit", [_drop_field, _retype_field], ids=["missing", "retyped"])
def test_configure_rejects_an_incompatible_schema(codec: ModuleType, edit: Any) -> None:
    broken = _broken(edit, f"broken_{edit.__name__}.proto")
    message = pb.MxEvent(quality=192, session_id="x")
    data = message.SerializeToString()
    with pytest.raises(ValueError):
        codec.configure(broken)
    # the tables are unchanged
    assert codec.decode_event(data).quality == 192


# ---- enums ------------------------------------------------------------------------------------


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


ENUMS = sorted(pb.DESCRIPTOR.enum_types_by_name)


def test_every_contract_enum_has_an_int_enum() -> None:
    for name in ENUMS:
        assert issubclass(getattr(types, name), IntEnum), name


@pytest.mark.parametrize("name", ENUMS)
def test_int_enums_match_the_descriptors_exactly(name: str) -> None:
    descriptor = pb.DESCRIPTOR.enum_types_by_name[name]
    prefix = _upper_snake(name) + "_"
    expected = {}
    for value in descriptor.values:
        assert value.name.startswith(prefix), value.name
        expected[value.name[len(prefix) :]] = value.number
    enum_class = getattr(types, name)
    assert {member.name: member.value for member in enum_class} == expected
