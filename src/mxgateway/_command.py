"""Building MxCommand messages, and what a reply to each must carry.

The arm of MxCommand's ``payload`` oneof names the command; its kind follows from the arm
(``add_item`` → MX_COMMAND_KIND_ADD_ITEM). ``check_reply`` is the one place that knows which
part of an MxCommandReply a successful command must carry, so a reply without it is a protocol
error naming the part, never a silent handle 0.
"""

from __future__ import annotations

from typing import Any, cast

from mxgateway._errors import MxGatewayProtocolError
from mxgateway._rpc import failing_statuses
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import ProtocolStatusCode

__all__ = ["BULK_FIELDS", "KIND_BY_ARM", "arm_kind", "check_reply", "command_for"]

KIND_BY_ARM: dict[str, pb.MxCommandKind] = {
    arm: cast(pb.MxCommandKind, pb.MxCommandKind.Value("MX_COMMAND_KIND_" + arm.upper()))
    for arm in (f.name for f in pb.MxCommand.DESCRIPTOR.oneofs_by_name["payload"].fields)
}

# The reply arm a successful command must carry.
_REPLY_ARM = {
    "register": "register",
    "add_item": "item_handle",
    "add_item2": "item_handle",
    "add_buffered_item": "item_handle",
    "authenticate_user": "user_id",
    "archestra_user_to_id": "user_id",
}
# Bulk commands: the reply arm, and the request field whose length the results must have.
BULK_FIELDS: dict[str, tuple[str, str]] = {
    "add_item_bulk": ("bulk_subscribe", "tag_addresses"),
    "subscribe_bulk": ("bulk_subscribe", "tag_addresses"),
    "advise_item_bulk": ("bulk_subscribe", "item_handles"),
    "remove_item_bulk": ("bulk_subscribe", "item_handles"),
    "un_advise_item_bulk": ("bulk_subscribe", "item_handles"),
    "unsubscribe_bulk": ("bulk_subscribe", "item_handles"),
    "write_bulk": ("bulk_write", "entries"),
    "write2_bulk": ("bulk_write", "entries"),
    "write_secured_bulk": ("bulk_write", "entries"),
    "write_secured2_bulk": ("bulk_write", "entries"),
    "read_bulk": ("bulk_read", "tag_addresses"),
}


def command_for(arm: str, payload: Any) -> pb.MxCommand:
    """The MxCommand with ``payload`` in arm ``arm`` and the matching kind."""
    return pb.MxCommand(kind=KIND_BY_ARM[arm], **{arm: payload})


def arm_kind(command: pb.MxCommand) -> str:
    """The command's name for messages (``ADD_ITEM``)."""
    arm = command.WhichOneof("payload")
    return arm.upper() if arm else str(command.kind)


def check_reply(command: pb.MxCommand, reply: pb.MxCommandReply) -> None:
    """Raise MxGatewayProtocolError when ``reply`` lacks a part it must carry: a protocol
    status; for a successful command its handle or user id; for a bulk, one result per entry
    asked. An MXAccess failure reply need carry no payload."""
    what = f"Invoke({arm_kind(command)})"
    if not reply.HasField("protocol_status"):
        raise MxGatewayProtocolError(
            f"{what}: the reply carries no protocol status", raw_reply=reply
        )
    if reply.protocol_status.code != int(ProtocolStatusCode.OK):
        return
    if reply.hresult < 0 or failing_statuses(reply.statuses):
        return  # MXAccess's failure: ensure_mxaccess_success reports it
    arm = command.WhichOneof("payload")
    if arm is None:
        return
    needed = _REPLY_ARM.get(arm)
    if needed is not None:
        if reply.WhichOneof("payload") != needed:
            raise MxGatewayProtocolError(
                f"{what}: the reply carries no {needed} (it must, for a command that succeeded)",
                raw_reply=reply,
            )
        return
    bulk = BULK_FIELDS.get(arm)
    if bulk is None:
        return
    reply_arm, request_field = bulk
    asked = len(getattr(getattr(command, arm), request_field))
    results = getattr(reply, reply_arm).results
    if len(results) != asked:
        raise MxGatewayProtocolError(
            f"{what}: the reply carries {len(results)} results for {asked} entries asked",
            raw_reply=reply,
        )
