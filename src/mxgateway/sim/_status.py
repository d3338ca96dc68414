"""MXAccess-like statuses, HRESULTs and protocol statuses for simulated replies and events."""

from __future__ import annotations

from mxgateway.generated import mxaccess_gateway_pb2 as pb

__all__ = [
    "DISP_E_BADINDEX",
    "E_ACCESSDENIED",
    "E_FAIL",
    "E_HANDLE",
    "E_INVALIDARG",
    "E_OVERFLOW",
    "E_TYPEMISMATCH",
    "MxFailure",
    "bad_status",
    "configuration_error",
    "ok_status",
    "protocol",
    "quoted",
    "to_int32",
]


def quoted(reference: str, limit: int = 200) -> str:
    """A reference for a diagnostic text, repr-quoted and cut to ``limit`` characters."""
    if len(reference) > limit:
        reference = reference[:limit] + "..."
    return repr(reference)


def to_int32(value: int) -> int:
    """An HRESULT written as unsigned hex (0x80004005) to the int32 the wire carries."""
    value &= 0xFFFFFFFF
    return value - 0x1_0000_0000 if value >= 0x8000_0000 else value


E_FAIL = to_int32(0x80004005)
E_ACCESSDENIED = to_int32(0x80070005)
E_HANDLE = to_int32(0x80070006)
E_INVALIDARG = to_int32(0x80070057)
E_TYPEMISMATCH = to_int32(0x80020005)
E_OVERFLOW = to_int32(0x8002000A)  # DISP_E_OVERFLOW: the value does not fit the type
DISP_E_BADINDEX = to_int32(0x8002000B)  # an array index outside the declared length

_C = pb.MxStatusCategory
_S = pb.MxStatusSource


def _native(enum_value: int, unknown: int) -> int:
    # Native MXAccess numbers are ours - 1 (OK = 0 ...), with Unknown = -1.
    return -1 if enum_value in (0, unknown) else enum_value - 1


def ok_status(source: pb.MxStatusSource = _S.MX_STATUS_SOURCE_RESPONDING_LMX) -> pb.MxStatusProxy:
    """A success status (success 1, category OK)."""
    return pb.MxStatusProxy(
        success=1,
        category=_C.MX_STATUS_CATEGORY_OK,
        detected_by=source,
        raw_category=_native(_C.MX_STATUS_CATEGORY_OK, _C.MX_STATUS_CATEGORY_UNKNOWN),
        raw_detected_by=_native(source, _S.MX_STATUS_SOURCE_UNKNOWN),
    )


def bad_status(
    category: pb.MxStatusCategory,
    text: str,
    *,
    detail: int = 0,
    source: pb.MxStatusSource = _S.MX_STATUS_SOURCE_RESPONDING_LMX,
) -> pb.MxStatusProxy:
    """A failure status (success 0) of ``category`` with a diagnostic text."""
    return pb.MxStatusProxy(
        success=0,
        category=category,
        detected_by=source,
        detail=detail,
        raw_category=_native(category, _C.MX_STATUS_CATEGORY_UNKNOWN),
        raw_detected_by=_native(source, _S.MX_STATUS_SOURCE_UNKNOWN),
        diagnostic_text=text,
    )


def protocol(code: pb.ProtocolStatusCode, message: str = "") -> pb.ProtocolStatus:
    """A ProtocolStatus."""
    return pb.ProtocolStatus(code=code, message=message)


class MxFailure(Exception):
    """An MXAccess failure raised inside a command; becomes a reply, never a gRPC error.

    Carries the HRESULT and the status (category + text) the reply or bulk entry reports.
    ``refusal`` names the door that refused the request (a metrics reason, see
    ``mxgateway.sim._metrics``), empty for an ordinary MXAccess failure.
    """

    def __init__(
        self,
        hresult: int,
        category: pb.MxStatusCategory,
        text: str,
        *,
        detail: int = 0,
        refusal: str = "",
    ) -> None:
        super().__init__(text)
        self.hresult = hresult
        self.category = category
        self.text = text
        self.detail = detail
        self.refusal = refusal

    def status(self) -> pb.MxStatusProxy:
        """The failure as an MxStatusProxy."""
        return bad_status(self.category, self.text, detail=self.detail)


def configuration_error(text: str, *, detail: int = 0) -> MxFailure:
    """Unknown item, bad handle, type mismatch: CONFIGURATION_ERROR."""
    return MxFailure(E_FAIL, _C.MX_STATUS_CATEGORY_CONFIGURATION_ERROR, text, detail=detail)
