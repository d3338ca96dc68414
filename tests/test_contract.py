"""The generated protobuf descriptors must match the written contract, field for field.

Why this exists: the ``.proto`` files are the only place field numbers live (the codecs read
them from the descriptors), and field numbers marked (G) in ``design/contract.md`` are the
genuine gateway's. A renumbered, retyped, renamed, missing or invented field, enum value, rpc
or message in ``proto/`` would still compile and round-trip against itself, and would only
show up against a real gateway. So the tables below are transcribed from the contract text
(never from the ``.proto``) and every descriptor is compared with them exactly.

Notation (the contract's, made regular)::

    Message: name=N [rep|opt] Type; oneof X { name=N Type; ... }; ...
    A, B: ...                      several messages with the same fields
    Enum: VALUE N, VALUE N, ...    values without their UPPER_SNAKE enum-name prefix
    Service.Rpc: Request -> [stream] Reply

An indented line continues the entry above it; ``#`` starts a comment. ``Ts``, ``Dur`` and
``Int32Value`` are the google.protobuf well-known types; any other non-scalar type name is a
message or enum of the same file. Where the contract leaves a type out, the contract's
convention fills it in (ids, names, references, messages, comments, text: ``string``; handles,
user ids, hresult, severity, quality: ``int32``; ``category``: ``string``; a field repeated "as
above" keeps the type given above). Fields filled in by analogy with a sibling message are
marked ``# by analogy``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    FileDescriptor,
    ServiceDescriptor,
)

from mxgateway.generated import galaxy_repository_pb2, mxaccess_gateway_pb2

# --------------------------------------------------------------------------------------------
# The contract, transcribed from design/contract.md
# --------------------------------------------------------------------------------------------

MXACCESS_ENUMS = """
ProtocolStatusCode: UNSPECIFIED 0, OK 1, INVALID_REQUEST 2, SESSION_NOT_FOUND 3,
  SESSION_NOT_READY 4, WORKER_UNAVAILABLE 5, TIMEOUT 6, CANCELED 7, PROTOCOL_VIOLATION 8,
  MXACCESS_FAILURE 9
SessionState: UNSPECIFIED 0, STARTING 1, READY 2, CLOSING 3, CLOSED 4, FAULTED 5
MxDataType: UNSPECIFIED 0, NO_DATA 1, BOOLEAN 2, INTEGER 3, FLOAT 4, DOUBLE 5, STRING 6, TIME 7,
  ELAPSED_TIME 8, REFERENCE 9, STATUS 10, DATA_TYPE_ENUM 11, SECURITY_CLASSIFICATION_ENUM 12,
  DATA_QUALITY 13, QUALIFIED_ENUM 14, QUALIFIED_STRUCT 15, INTERNATIONALIZED_STRING 16,
  BIG_STRING 17, UNKNOWN 18
MxStatusCategory: UNSPECIFIED 0, OK 1, PENDING 2, WARNING 3, COMMUNICATION_ERROR 4,
  CONFIGURATION_ERROR 5, OPERATIONAL_ERROR 6, SECURITY_ERROR 7, SOFTWARE_ERROR 8,
  OTHER_ERROR 9, UNKNOWN 10
MxStatusSource: UNSPECIFIED 0, REQUESTING_LMX 1, RESPONDING_LMX 2, REQUESTING_NMX 3,
  RESPONDING_NMX 4, REQUESTING_AUTOMATION_OBJECT 5, RESPONDING_AUTOMATION_OBJECT 6, UNKNOWN 7
MxEventFamily: UNSPECIFIED 0, ON_DATA_CHANGE 1, ON_WRITE_COMPLETE 2, OPERATION_COMPLETE 3,
  ON_BUFFERED_DATA_CHANGE 4, ON_ALARM_TRANSITION 5
MxCommandKind: UNSPECIFIED 0, REGISTER 1, UNREGISTER 2, ADD_ITEM 3, ADD_ITEM2 4, REMOVE_ITEM 5,
  ADVISE 6, ADVISE_SUPERVISORY 7, UN_ADVISE 8, WRITE 9, WRITE2 10, WRITE_SECURED 11,
  WRITE_SECURED2 12, AUTHENTICATE_USER 13, ARCHESTRA_USER_TO_ID 14, ADD_BUFFERED_ITEM 15,
  SET_BUFFERED_UPDATE_INTERVAL 16, SUSPEND 17, ACTIVATE 18, DRAIN_EVENTS 19, ADD_ITEM_BULK 30,
  ADVISE_ITEM_BULK 31, REMOVE_ITEM_BULK 32, UN_ADVISE_ITEM_BULK 33, SUBSCRIBE_BULK 34,
  UNSUBSCRIBE_BULK 35, WRITE_BULK 36, WRITE2_BULK 37, WRITE_SECURED_BULK 38,
  WRITE_SECURED2_BULK 39, READ_BULK 40
AlarmTransitionKind: UNSPECIFIED 0, RAISE 1, ACKNOWLEDGE 2, CLEAR 3, RETRIGGER 4
AlarmConditionState: UNSPECIFIED 0, ACTIVE 1, ACTIVE_ACKED 2, INACTIVE_UNACKED 3
AlarmProviderMode: UNSPECIFIED 0, ALARMMGR 1, SUBTAG 2
"""

MXACCESS_SERVICES = """
MxAccessGateway.OpenSession: OpenSessionRequest -> OpenSessionReply
MxAccessGateway.CloseSession: CloseSessionRequest -> CloseSessionReply
MxAccessGateway.Invoke: MxCommandRequest -> MxCommandReply
MxAccessGateway.StreamEvents: StreamEventsRequest -> stream MxEvent
MxAccessGateway.AcknowledgeAlarm: AcknowledgeAlarmRequest -> AcknowledgeAlarmReply
MxAccessGateway.StreamAlarms: StreamAlarmsRequest -> stream AlarmFeedMessage
MxAccessGateway.QueryActiveAlarms: QueryActiveAlarmsRequest -> stream ActiveAlarmSnapshot
MxAccessGateway.StreamEventBatches: StreamEventsRequest -> stream MxEventBatch
"""

MXACCESS_MESSAGES = """
# Status and values
ProtocolStatus: code=1 ProtocolStatusCode; message=2 string
MxStatusProxy: success=1 int32; category=2 MxStatusCategory; detected_by=3 MxStatusSource;
  detail=4 int32; raw_category=5 int32; raw_detected_by=6 int32; diagnostic_text=7 string
MxValue: data_type=1 MxDataType; variant_type=2 string; is_null=3 bool; raw_diagnostic=4 string;
  raw_data_type=5 int32; raw_value=6 bytes;
  oneof kind { bool_value=10 bool; int32_value=11 int32; int64_value=12 int64;
    float_value=13 float; double_value=14 double; string_value=15 string;
    timestamp_value=16 Ts; elapsed_value=17 Dur; array_value=18 MxArray;
    sparse_array_value=19 MxSparseArray }
MxArray: element_data_type=1 MxDataType; dimensions=2 rep uint32; bool_values=3 rep bool;
  int32_values=4 rep int32; int64_values=5 rep int64; float_values=6 rep float;
  double_values=7 rep double; string_values=8 rep string; timestamp_values=9 rep Ts;
  elapsed_values=10 rep Dur
MxSparseArray: element_data_type=1 MxDataType; total_length=2 uint32;
  elements=3 rep MxSparseElement
MxSparseElement: index=1 uint32; value=2 MxValue

# Sessions
OpenSessionRequest: client_session_name=1 string; lease_seconds=2 uint32
OpenSessionReply: session_id=1 string; backend_name=2 string; gateway_protocol_version=3 int32;
  worker_protocol_version=4 int32; protocol_status=5 ProtocolStatus; capabilities=6 rep string;
  state=7 SessionState
CloseSessionRequest: session_id=1 string
CloseSessionReply: session_id=1 string; final_state=2 SessionState;
  protocol_status=3 ProtocolStatus

# Commands
MxCommandRequest: session_id=1 string; client_correlation_id=2 string; command=3 MxCommand
MxCommand: kind=1 MxCommandKind;
  oneof payload { register=10 RegisterCommand; unregister=11 UnregisterCommand;
    add_item=12 AddItemCommand; add_item2=13 AddItem2Command;
    remove_item=14 RemoveItemCommand; advise=15 AdviseCommand;
    advise_supervisory=16 AdviseSupervisoryCommand; un_advise=17 UnAdviseCommand;
    write=18 WriteCommand; write2=19 Write2Command; write_secured=20 WriteSecuredCommand;
    write_secured2=21 WriteSecured2Command; authenticate_user=22 AuthenticateUserCommand;
    archestra_user_to_id=23 ArchestraUserToIdCommand;
    add_buffered_item=24 AddBufferedItemCommand;
    set_buffered_update_interval=25 SetBufferedUpdateIntervalCommand;
    suspend=26 SuspendCommand; activate=27 ActivateCommand;
    drain_events=28 DrainEventsCommand; add_item_bulk=40 AddItemBulkCommand;
    advise_item_bulk=41 AdviseItemBulkCommand; remove_item_bulk=42 RemoveItemBulkCommand;
    un_advise_item_bulk=43 UnAdviseItemBulkCommand; subscribe_bulk=44 SubscribeBulkCommand;
    unsubscribe_bulk=45 UnsubscribeBulkCommand; write_bulk=46 WriteBulkCommand;
    write2_bulk=47 Write2BulkCommand; write_secured_bulk=48 WriteSecuredBulkCommand;
    write_secured2_bulk=49 WriteSecured2BulkCommand; read_bulk=50 ReadBulkCommand }
RegisterCommand: client_name=1 string
UnregisterCommand: server_handle=1 int32
AddItemCommand: server_handle=1 int32; item_definition=2 string
AddItem2Command, AddBufferedItemCommand: server_handle=1 int32; item_definition=2 string;
  item_context=3 string
RemoveItemCommand, AdviseCommand, AdviseSupervisoryCommand, UnAdviseCommand, SuspendCommand,
  ActivateCommand: server_handle=1 int32; item_handle=2 int32
WriteCommand: server_handle=1 int32; item_handle=2 int32; value=3 MxValue; user_id=4 int32
Write2Command: server_handle=1 int32; item_handle=2 int32; value=3 MxValue;
  timestamp_value=4 Ts; user_id=5 int32
WriteSecuredCommand: server_handle=1 int32; item_handle=2 int32; current_user_id=3 int32;
  verifier_user_id=4 int32; value=5 MxValue
WriteSecured2Command: server_handle=1 int32; item_handle=2 int32; current_user_id=3 int32;
  verifier_user_id=4 int32; value=5 MxValue; timestamp_value=6 Ts
AuthenticateUserCommand: server_handle=1 int32; user_name=2 string; password=3 string
ArchestraUserToIdCommand: server_handle=1 int32; user_guid=2 string
SetBufferedUpdateIntervalCommand: server_handle=1 int32; update_interval_ms=2 int32
DrainEventsCommand: max_events=1 uint32
AddItemBulkCommand: server_handle=1 int32; tag_addresses=2 rep string
AdviseItemBulkCommand, RemoveItemBulkCommand, UnAdviseItemBulkCommand, UnsubscribeBulkCommand:
  server_handle=1 int32; item_handles=2 rep int32
SubscribeBulkCommand: server_handle=1 int32; tag_addresses=2 rep string; supervisory=3 bool;
  buffered_update_interval_ms=4 int32
WriteBulkEntry: item_handle=1 int32; value=2 MxValue; user_id=3 int32
Write2BulkEntry: item_handle=1 int32; value=2 MxValue; timestamp_value=3 Ts; user_id=4 int32
WriteSecuredBulkEntry: item_handle=1 int32; value=2 MxValue; current_user_id=3 int32;
  verifier_user_id=4 int32
WriteSecured2BulkEntry: item_handle=1 int32; value=2 MxValue; timestamp_value=3 Ts;
  current_user_id=4 int32; verifier_user_id=5 int32
WriteBulkCommand: server_handle=1 int32; entries=2 rep WriteBulkEntry
Write2BulkCommand: server_handle=1 int32; entries=2 rep Write2BulkEntry
WriteSecuredBulkCommand: server_handle=1 int32; entries=2 rep WriteSecuredBulkEntry
WriteSecured2BulkCommand: server_handle=1 int32; entries=2 rep WriteSecured2BulkEntry
ReadBulkCommand: server_handle=1 int32; tag_addresses=2 rep string; timeout_ms=3 int32

# Results
SubscribeResult: server_handle=1 int32; tag_address=2 string; item_handle=3 int32;
  was_successful=4 bool; error_message=5 string; hresult=6 int32; statuses=7 rep MxStatusProxy
BulkWriteResult: item_handle=1 int32; was_successful=2 bool; error_message=3 string;
  hresult=4 int32; statuses=5 rep MxStatusProxy
BulkReadResult: tag_address=1 string; item_handle=2 int32; was_successful=3 bool;
  was_cached=4 bool; value=5 MxValue; quality=6 int32; source_timestamp=7 Ts;
  error_message=8 string; hresult=9 int32; statuses=10 rep MxStatusProxy
BulkSubscribeReply: results=1 rep SubscribeResult
BulkWriteReply: results=1 rep BulkWriteResult
BulkReadReply: results=1 rep BulkReadResult
DrainEventsReply: events=1 rep MxEvent
RegisterReply: server_handle=1 int32
ItemHandleReply: item_handle=1 int32
UserIdReply: user_id=1 int32
MxCommandReply: session_id=1 string; correlation_id=2 string; kind=3 MxCommandKind;
  protocol_status=4 ProtocolStatus; hresult=5 int32; return_value=6 MxValue;
  statuses=7 rep MxStatusProxy; diagnostic_message=8 string;
  oneof payload { register=10 RegisterReply; item_handle=11 ItemHandleReply;
    user_id=12 UserIdReply; bulk_subscribe=20 BulkSubscribeReply;
    bulk_write=21 BulkWriteReply; bulk_read=22 BulkReadReply;
    drain_events=23 DrainEventsReply }

# Events
StreamEventsRequest: session_id=1 string; after_worker_sequence=2 uint64;
  max_batch_events=3 uint32
MxEvent: session_id=1 string; family=2 MxEventFamily; worker_sequence=3 uint64;
  server_handle=4 int32; item_handle=5 int32; value=6 MxValue; quality=7 int32;
  source_timestamp=8 Ts; statuses=9 rep MxStatusProxy; worker_timestamp=10 Ts;
  gateway_receive_timestamp=11 Ts; hresult=12 opt int32; raw_status=13 string;
  replay_gap=14 opt ReplayGap;
  oneof body { on_data_change=20 OnDataChangeEvent; on_write_complete=21 OnWriteCompleteEvent;
    operation_complete=22 OperationCompleteEvent;
    on_buffered_data_change=23 OnBufferedDataChangeEvent;
    on_alarm_transition=24 OnAlarmTransitionEvent }
OnDataChangeEvent, OnWriteCompleteEvent, OperationCompleteEvent:
OnBufferedDataChangeEvent: data_type=1 MxDataType; samples=2 rep BufferedSample
BufferedSample: value=1 MxValue; quality=2 int32; source_timestamp=3 Ts
ReplayGap: requested_after_sequence=1 uint64; oldest_available_sequence=2 uint64
MxEventBatch: events=1 rep MxEvent

# Alarms
StreamAlarmsRequest: alarm_filter_prefix=1 string; client_correlation_id=2 string
AlarmFeedMessage:
  oneof payload { active_alarm=1 ActiveAlarmSnapshot; snapshot_complete=2 SnapshotComplete;
    transition=3 OnAlarmTransitionEvent; provider_status=4 AlarmProviderStatus }
SnapshotComplete: active_alarm_count=1 uint32
ActiveAlarmSnapshot: alarm_full_reference=1 string; source_object_reference=2 string;
  alarm_type_name=3 string; severity=4 int32; current_state=5 AlarmConditionState;
  category=6 string; description=7 string; original_raise_timestamp=8 Ts;
  last_transition_timestamp=9 Ts; operator_user=10 string; operator_comment=11 string;
  current_value=12 MxValue; limit_value=13 MxValue; degraded=14 bool; area=15 string
OnAlarmTransitionEvent: alarm_full_reference=1 string; source_object_reference=2 string;
  alarm_type_name=3 string; transition_kind=4 AlarmTransitionKind; severity=5 int32;
  original_raise_timestamp=6 Ts; transition_timestamp=7 Ts; operator_user=8 string;
  operator_comment=9 string; category=10 string; description=11 string;
  current_value=12 MxValue; limit_value=13 MxValue; degraded=14 bool;
  current_state=15 AlarmConditionState
AlarmProviderStatus: mode=1 AlarmProviderMode; degraded=2 bool; reason=3 string; since=4 Ts
QueryActiveAlarmsRequest: session_id=1 string; client_correlation_id=2 string;
  alarm_filter_prefix=3 string
AcknowledgeAlarmRequest: session_id=1 string; alarm_full_reference=2 string;
  operator_comment=3 string; operator_user=4 string; client_correlation_id=5 string
AcknowledgeAlarmReply: protocol_status=1 ProtocolStatus; hresult=2 int32;
  statuses=3 rep MxStatusProxy; alarm_full_reference=4 string;
  resulting_state=5 AlarmConditionState
"""

GALAXY_ENUMS = ""

GALAXY_SERVICES = """
GalaxyRepository.TestConnection: TestConnectionRequest -> TestConnectionReply
GalaxyRepository.GetLastDeployTime: GetLastDeployTimeRequest -> GetLastDeployTimeReply
GalaxyRepository.DiscoverHierarchy: DiscoverHierarchyRequest -> DiscoverHierarchyReply
GalaxyRepository.BrowseChildren: BrowseChildrenRequest -> BrowseChildrenReply
GalaxyRepository.WatchDeployEvents: WatchDeployEventsRequest -> stream DeployEvent
"""

GALAXY_MESSAGES = """
TestConnectionRequest, GetLastDeployTimeRequest:
TestConnectionReply: ok=1 bool
GetLastDeployTimeReply: present=1 bool; time_of_last_deploy=2 Ts
DiscoverHierarchyRequest: page_size=1 int32; page_token=2 string;
  oneof root { root_gobject_id=3 int32; root_tag_name=4 string; root_contained_path=5 string };
  max_depth=6 Int32Value; category_ids=7 rep int32; template_chain_contains=8 rep string;
  tag_name_glob=9 string; include_attributes=10 opt bool; alarm_bearing_only=11 bool;
  historized_only=12 bool
DiscoverHierarchyReply: objects=1 rep GalaxyObject; next_page_token=2 string;
  total_object_count=3 int32
# The contract gives BrowseChildrenRequest's types only for include_attributes; the rest are
# DiscoverHierarchyRequest's fields of the same name.
BrowseChildrenRequest:
  oneof parent { parent_gobject_id=1 int32; parent_tag_name=2 string;  # by analogy
    parent_contained_path=3 string };
  page_size=4 int32; page_token=5 string; category_ids=6 rep int32;  # by analogy
  template_chain_contains=7 rep string; tag_name_glob=8 string;  # by analogy
  include_attributes=9 opt bool; alarm_bearing_only=10 bool; historized_only=11 bool
BrowseChildrenReply: children=1 rep GalaxyObject; next_page_token=2 string;
  child_has_children=3 rep bool
GalaxyObject: gobject_id=1 int32; tag_name=2 string; contained_name=3 string;
  browse_name=4 string; parent_gobject_id=5 int32; is_area=6 bool; category_id=7 int32;
  template_chain=8 rep string; hierarchical_name=9 string; attributes=10 rep GalaxyAttribute;
  area_tag_name=11 string
GalaxyAttribute: attribute_name=1 string; full_tag_reference=2 string; mx_data_type=3 int32;
  is_array=4 bool; array_dimension=5 int32; mx_attribute_category=6 int32;
  security_classification=7 int32; is_configured=8 bool; description=9 string;
  is_historized=10 bool; is_alarm=11 bool  # bool by analogy with is_array / is_configured
WatchDeployEventsRequest: last_seen_deploy_time=1 Ts
DeployEvent: sequence=1 uint64; time_of_last_deploy=2 Ts; time_of_last_deploy_present=3 bool;
  object_count=4 int32; attribute_count=5 int32
"""

# --------------------------------------------------------------------------------------------
# Parsing the notation
# --------------------------------------------------------------------------------------------

SCALARS = ("double", "float", "int64", "uint64", "int32", "uint32", "bool", "string", "bytes")
WELL_KNOWN = {
    "Ts": "google.protobuf.Timestamp",
    "Dur": "google.protobuf.Duration",
    "Int32Value": "google.protobuf.Int32Value",
}
_TYPE_NAMES = {
    getattr(FieldDescriptor, n): n.removeprefix("TYPE_").lower()
    for n in dir(FieldDescriptor)
    if n.startswith("TYPE_")
}
_FIELD_RE = re.compile(r"(\w+)=(\d+) (?:(rep|opt) )?(\w+)")
_ONEOF_RE = re.compile(r"oneof (\w+) \{\s*(.*)", re.DOTALL)
_RPC_RE = re.compile(r"(\w+)\.(\w+): (\w+) -> (stream )?(\w+)")


@dataclass(frozen=True)
class FieldSpec:
    """One field as the contract states it; ``type`` is a scalar or ``message|enum <full name>``."""

    name: str
    number: int
    type: str
    repeated: bool
    optional: bool
    oneof: str | None


@dataclass(frozen=True)
class RpcSpec:
    """One rpc: request and reply full names, and whether the reply is a server stream."""

    input: str
    output: str
    server_streaming: bool


@dataclass(frozen=True)
class FileSpec:
    """Everything the contract says one ``.proto`` file holds."""

    package: str
    dependencies: frozenset[str]
    messages: dict[str, dict[str, FieldSpec]]
    enums: dict[str, dict[str, int]]
    services: dict[str, dict[str, RpcSpec]]


def _entries(text: str) -> Iterator[str]:
    """Yield logical entries: a line at column 0 plus its indented continuation lines."""
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace() and current:
            yield " ".join(current)
            current = []
        current.append(line.strip())
    if current:
        yield " ".join(current)


def enum_prefix(enum_name: str) -> str:
    """``MxDataType`` -> ``MX_DATA_TYPE``: the prefix every value of that enum carries."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", enum_name).upper()


def _parse_enums(text: str) -> dict[str, dict[str, int]]:
    enums: dict[str, dict[str, int]] = {}
    for entry in _entries(text):
        name, _, body = entry.partition(":")
        values: dict[str, int] = {}
        for item in body.split(","):
            value, number = item.split()
            values[f"{enum_prefix(name)}_{value}"] = int(number)
        assert name not in enums, f"table lists enum {name} twice"
        enums[name] = values
    return enums


def _parse_services(text: str, package: str) -> dict[str, dict[str, RpcSpec]]:
    services: dict[str, dict[str, RpcSpec]] = {}
    for entry in _entries(text):
        match = _RPC_RE.fullmatch(entry)
        assert match, f"bad rpc line: {entry!r}"
        service, rpc, request, stream, reply = match.groups()
        rpcs = services.setdefault(service, {})
        assert rpc not in rpcs, f"table lists {service}.{rpc} twice"
        rpcs[rpc] = RpcSpec(f"{package}.{request}", f"{package}.{reply}", stream is not None)
    return services


def _parse_messages(
    text: str, package: str, enum_names: set[str]
) -> dict[str, dict[str, FieldSpec]]:
    raw: dict[str, list[tuple[str, int, str | None, str, str | None]]] = {}
    for entry in _entries(text):
        names, _, body = entry.partition(":")
        fields: list[tuple[str, int, str | None, str, str | None]] = []
        oneof: str | None = None
        for part in body.split(";"):
            item = part.strip()
            if not item:
                continue
            if opened := _ONEOF_RE.fullmatch(item):
                oneof, item = opened.group(1), opened.group(2)
            closes = item.endswith("}")
            item = item.removesuffix("}").strip()
            match = _FIELD_RE.fullmatch(item)
            assert match, f"bad field {item!r} in {names}"
            name, number, label, type_token = match.groups()
            fields.append((name, int(number), label, type_token, oneof))
            if closes:
                oneof = None
        assert oneof is None, f"unclosed oneof in {names}"
        for name in (n.strip() for n in names.split(",")):
            assert name not in raw, f"table lists message {name} twice"
            raw[name] = fields

    def resolve(token: str) -> str:
        if token in SCALARS:
            return token
        if token in WELL_KNOWN:
            return f"message {WELL_KNOWN[token]}"
        if token in enum_names:
            return f"enum {package}.{token}"
        assert token in raw, f"table refers to unknown type {token}"
        return f"message {package}.{token}"

    messages: dict[str, dict[str, FieldSpec]] = {}
    for message, fields in raw.items():
        specs: dict[str, FieldSpec] = {}
        for name, number, label, type_token, oneof in fields:
            assert name not in specs, f"table lists {message}.{name} twice"
            specs[name] = FieldSpec(
                name, number, resolve(type_token), label == "rep", label == "opt", oneof
            )
        messages[message] = specs
    return messages


def parse_file_spec(
    package: str, dependencies: set[str], messages: str, enums: str, services: str
) -> FileSpec:
    """Turn the notation for one ``.proto`` file into a FileSpec."""
    enum_table = _parse_enums(enums)
    return FileSpec(
        package=package,
        dependencies=frozenset(dependencies),
        messages=_parse_messages(messages, package, set(enum_table)),
        enums=enum_table,
        services=_parse_services(services, package),
    )


SPECS: dict[str, tuple[FileDescriptor, FileSpec]] = {
    "mxaccess_gateway": (
        mxaccess_gateway_pb2.DESCRIPTOR,
        parse_file_spec(
            "mxaccess_gateway.v1",
            {"google/protobuf/timestamp.proto", "google/protobuf/duration.proto"},
            MXACCESS_MESSAGES,
            MXACCESS_ENUMS,
            MXACCESS_SERVICES,
        ),
    ),
    "galaxy_repository": (
        galaxy_repository_pb2.DESCRIPTOR,
        parse_file_spec(
            "galaxy_repository.v1",
            {"google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto"},
            GALAXY_MESSAGES,
            GALAXY_ENUMS,
            GALAXY_SERVICES,
        ),
    ),
}

# --------------------------------------------------------------------------------------------
# Comparison: each function returns a list of human-readable problems (empty = matches)
# --------------------------------------------------------------------------------------------


def _set_problems(what: str, actual: set[str], expected: set[str]) -> list[str]:
    problems = [f"{what}: {n} is not in the contract" for n in sorted(actual - expected)]
    problems += [f"{what}: {n} is missing" for n in sorted(expected - actual)]
    return problems


def _field_type(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
        return f"message {field.message_type.full_name}"
    if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        return f"enum {field.enum_type.full_name}"
    return _TYPE_NAMES[field.type]


def message_problems(message: Descriptor, spec: dict[str, FieldSpec]) -> list[str]:
    """Compare one message descriptor with its contract fields."""
    where = message.full_name
    problems = _set_problems(f"{where} fields", set(message.fields_by_name), set(spec))
    problems += _set_problems(
        f"{where} nested messages", {m.name for m in message.nested_types}, set()
    )
    problems += _set_problems(f"{where} nested enums", {e.name for e in message.enum_types}, set())
    as_proto = descriptor_pb2.DescriptorProto()
    message.CopyToProto(as_proto)
    proto3_optional = {f.name: f.proto3_optional for f in as_proto.field}
    for name, want in spec.items():
        field = message.fields_by_name.get(name)
        if field is None:
            continue
        here = f"{where}.{name}"
        if field.number != want.number:
            problems.append(f"{here}: number is {field.number}, contract says {want.number}")
        if (got := _field_type(field)) != want.type:
            problems.append(f"{here}: type is {got}, contract says {want.type}")
        if field.is_repeated != want.repeated:
            problems.append(
                f"{here}: repeated is {field.is_repeated}, contract says {want.repeated}"
            )
        is_optional = proto3_optional.get(name, False)
        if is_optional != want.optional:
            problems.append(
                f"{here}: proto3 optional is {is_optional}, contract says {want.optional}"
            )
        elif want.optional and not (
            field.has_presence
            and field.containing_oneof is not None
            and field.containing_oneof.name == f"_{name}"
        ):
            problems.append(f"{here}: optional but not in synthetic oneof _{name} with presence")
        oneof = (
            None if is_optional or field.containing_oneof is None else field.containing_oneof.name
        )
        if oneof != want.oneof:
            problems.append(f"{here}: oneof is {oneof}, contract says {want.oneof}")
    return problems


def enum_problems(enum: EnumDescriptor, spec: dict[str, int]) -> list[str]:
    """Compare one enum descriptor's exact name -> number mapping with the contract."""
    where = enum.full_name
    actual = {v.name: v.number for v in enum.values}
    problems = _set_problems(f"{where} values", set(actual), set(spec))
    for name, number in spec.items():
        if name in actual and actual[name] != number:
            problems.append(f"{where}.{name}: number is {actual[name]}, contract says {number}")
    return problems


def service_problems(service: ServiceDescriptor, spec: dict[str, RpcSpec]) -> list[str]:
    """Compare one service's rpcs (names, request/reply types, streaming) with the contract."""
    where = service.full_name
    problems = _set_problems(f"{where} rpcs", set(service.methods_by_name), set(spec))
    as_proto = descriptor_pb2.ServiceDescriptorProto()
    service.CopyToProto(as_proto)
    methods = {m.name: m for m in as_proto.method}
    for name, want in spec.items():
        method = service.methods_by_name.get(name)
        if method is None:
            continue
        here = f"{where}.{name}"
        if method.input_type.full_name != want.input:
            problems.append(
                f"{here}: request is {method.input_type.full_name}, contract says {want.input}"
            )
        if method.output_type.full_name != want.output:
            problems.append(
                f"{here}: reply is {method.output_type.full_name}, contract says {want.output}"
            )
        raw = methods[name]
        if raw.server_streaming != want.server_streaming:
            problems.append(
                f"{here}: server_streaming is {raw.server_streaming}, "
                f"contract says {want.server_streaming}"
            )
        if raw.client_streaming:
            problems.append(f"{here}: client streaming, the contract has no client streams")
    return problems


def inventory_problems(file: FileDescriptor, spec: FileSpec) -> list[str]:
    """Package, imports and the exact sets of top-level messages, enums and services."""
    problems = []
    if file.package != spec.package:
        problems.append(f"{file.name}: package is {file.package}, contract says {spec.package}")
    problems += _set_problems(
        f"{file.name} imports", {d.name for d in file.dependencies}, set(spec.dependencies)
    )
    problems += _set_problems(
        f"{file.name} messages", set(file.message_types_by_name), set(spec.messages)
    )
    problems += _set_problems(f"{file.name} enums", set(file.enum_types_by_name), set(spec.enums))
    problems += _set_problems(
        f"{file.name} services", set(file.services_by_name), set(spec.services)
    )
    return problems


def contract_problems(file: FileDescriptor, spec: FileSpec) -> list[str]:
    """Every disagreement between a whole file descriptor and its contract table."""
    problems = inventory_problems(file, spec)
    for name, fields in spec.messages.items():
        if name in file.message_types_by_name:
            problems += message_problems(file.message_types_by_name[name], fields)
    for name, values in spec.enums.items():
        if name in file.enum_types_by_name:
            problems += enum_problems(file.enum_types_by_name[name], values)
    for name, rpcs in spec.services.items():
        if name in file.services_by_name:
            problems += service_problems(file.services_by_name[name], rpcs)
    return problems


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def _cases(kind: str) -> list[object]:
    cases: list[object] = []
    for file_key, (_, spec) in SPECS.items():
        for name in getattr(spec, kind):
            cases.append(pytest.param(file_key, name, id=f"{spec.package}.{name}"))
    return cases


def _report(problems: list[str]) -> str:
    return "descriptor disagrees with design/contract.md:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("file_key", list(SPECS))
def test_file_inventory(file_key: str) -> None:
    file, spec = SPECS[file_key]
    problems = inventory_problems(file, spec)
    assert not problems, _report(problems)


@pytest.mark.parametrize(("file_key", "name"), _cases("messages"))
def test_message(file_key: str, name: str) -> None:
    file, spec = SPECS[file_key]
    message = file.message_types_by_name.get(name)
    assert message is not None, f"{spec.package}.{name} is missing from {file.name}"
    problems = message_problems(message, spec.messages[name])
    assert not problems, _report(problems)


@pytest.mark.parametrize(("file_key", "name"), _cases("enums"))
def test_enum(file_key: str, name: str) -> None:
    file, spec = SPECS[file_key]
    enum = file.enum_types_by_name.get(name)
    assert enum is not None, f"{spec.package}.{name} is missing from {file.name}"
    problems = enum_problems(enum, spec.enums[name])
    assert not problems, _report(problems)


@pytest.mark.parametrize(("file_key", "name"), _cases("services"))
def test_service(file_key: str, name: str) -> None:
    file, spec = SPECS[file_key]
    service = file.services_by_name.get(name)
    assert service is not None, f"{spec.package}.{name} is missing from {file.name}"
    problems = service_problems(service, spec.services[name])
    assert not problems, _report(problems)


# --- The checker itself can fail ------------------------------------------------------------


def _rebuild(
    original: FileDescriptor, mutate: Callable[[descriptor_pb2.FileDescriptorProto], None]
) -> FileDescriptor:
    """Copy ``original`` to a FileDescriptorProto, mutate it, build it in a fresh pool."""
    pool = descriptor_pool.DescriptorPool()

    def add(file: FileDescriptor) -> None:
        for dependency in file.dependencies:
            add(dependency)
        try:
            pool.FindFileByName(file.name)
        except KeyError:
            as_proto = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(as_proto)
            pool.AddSerializedFile(as_proto.SerializeToString())

    for dependency in original.dependencies:  # google well-known files: timestamp, duration...
        add(dependency)
    as_proto = descriptor_pb2.FileDescriptorProto()
    original.CopyToProto(as_proto)
    mutate(as_proto)
    pool.AddSerializedFile(as_proto.SerializeToString())
    return pool.FindFileByName(original.name)


def _message(fdp: descriptor_pb2.FileDescriptorProto, name: str) -> descriptor_pb2.DescriptorProto:
    return next(m for m in fdp.message_type if m.name == name)


def _field(
    fdp: descriptor_pb2.FileDescriptorProto, message: str, field: str
) -> descriptor_pb2.FieldDescriptorProto:
    return next(f for f in _message(fdp, message).field if f.name == field)


def _renumber(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    _field(fdp, "ProtocolStatus", "message").number = 3


def _retype(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    _field(fdp, "MxEvent", "worker_sequence").type = descriptor_pb2.FieldDescriptorProto.TYPE_INT64


def _rename(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    field = _field(fdp, "ReplayGap", "oldest_available_sequence")
    field.name, field.json_name = "oldest_sequence", "oldestSequence"


def _extra_field(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    _message(fdp, "ReplayGap").field.add(
        name="invented",
        number=3,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        json_name="invented",
    )


def _make_optional(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    message = _message(fdp, "ProtocolStatus")
    message.oneof_decl.add(name="_message")
    field = _field(fdp, "ProtocolStatus", "message")
    field.oneof_index, field.proto3_optional = len(message.oneof_decl) - 1, True


def _retarget(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    _field(fdp, "MxCommand", "un_advise").type_name = ".mxaccess_gateway.v1.AdviseCommand"


def _enum_value(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    enum = next(e for e in fdp.enum_type if e.name == "MxDataType")
    next(v for v in enum.value if v.name == "MX_DATA_TYPE_BOOLEAN").number = 20


def _unary_stream(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    method = next(m for m in fdp.service[0].method if m.name == "StreamEventBatches")
    method.server_streaming = False


def _invented_message(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    fdp.message_type.add(name="Invented")


def _unchanged(fdp: descriptor_pb2.FileDescriptorProto) -> None:
    del fdp  # a faithful copy must pass: the fresh-pool path itself adds no problems


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(_unchanged, None, id="unchanged-copy-passes"),
        pytest.param(_renumber, "ProtocolStatus.message: number is 3", id="renumber"),
        pytest.param(_retype, "MxEvent.worker_sequence: type is int64", id="retype"),
        pytest.param(_rename, "oldest_sequence is not in the contract", id="rename"),
        pytest.param(_extra_field, "ReplayGap fields: invented", id="extra-field"),
        pytest.param(_make_optional, "ProtocolStatus.message: proto3 optional", id="optional"),
        pytest.param(_retarget, "MxCommand.un_advise: type is message", id="wrong-message-type"),
        pytest.param(_enum_value, "MX_DATA_TYPE_BOOLEAN: number is 20", id="enum-value"),
        pytest.param(
            _unary_stream, "StreamEventBatches: server_streaming is False", id="streaming"
        ),
        pytest.param(
            _invented_message, "messages: Invented is not in the contract", id="extra-message"
        ),
    ],
)
def test_checker_detects_mutation(
    mutate: Callable[[descriptor_pb2.FileDescriptorProto], None], expected: str | None
) -> None:
    """A broken copy of the schema, built in a fresh pool, is reported: a pass means something."""
    file, spec = SPECS["mxaccess_gateway"]
    baseline = set(contract_problems(file, spec))
    problems = set(contract_problems(_rebuild(file, mutate), spec))
    if expected is None:
        assert problems == baseline
    else:
        new = problems - baseline
        assert any(expected in p for p in new), f"{expected!r} not reported; new problems: {new}"
