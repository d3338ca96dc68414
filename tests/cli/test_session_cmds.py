"""Session commands through the installed ``mxgw-py`` against ``mxgw-py sim``.

Each call is a new process working on a session opened by ``open-session``; the session and
its handles live on the simulated gateway between calls.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mxgateway.sim._users import KNOWN_USERS
from tests.cli.conftest import (
    ENV,
    FULL_KEY,
    Gateway,
    OpenSession,
    assert_error,
    assert_protobuf_json,
    pick,
    run,
)


def test_reference_walkthrough(gateway: Gateway, attributes: list[dict[str, Any]]) -> None:
    """The reference README's session examples (as written, plus the connection flags)."""
    tag = pick(attributes, 2)["reference"]  # an Integer attribute
    opened = gateway.ok("open-session")
    assert opened["state"] == "SESSION_STATE_READY"
    assert opened["protocolStatus"]["code"] == "PROTOCOL_STATUS_CODE_OK"
    sid = opened["sessionId"]
    try:
        registered = gateway.ok("register", "--session-id", sid, "--client-name", "python-client")
        handle = registered["serverHandle"]
        assert registered == {
            "kind": "MX_COMMAND_KIND_REGISTER",
            "serverHandle": handle,
            "sessionId": sid,
        }
        h = str(handle)
        added = gateway.ok("add-item", "--session-id", sid, "--server-handle", h, "--item", tag)
        assert added["kind"] == "MX_COMMAND_KIND_ADD_ITEM" and added["itemDefinition"] == tag
        item = str(added["itemHandle"])
        write = (
            "write", "--session-id", sid, "--server-handle", h, "--item-handle", item,
            "--type", "int32", "--value", "123", "--json",
        )  # fmt: skip

        # A write before advise is MXAccess's verdict: exit 1, the error as JSON.
        assert "advise" in assert_error(gateway.run(*write), 1)

        advised = gateway.ok(
            "advise", "--session-id", sid, "--server-handle", h, "--item-handle", item
        )
        assert advised == {
            "itemHandle": int(item),
            "kind": "MX_COMMAND_KIND_ADVISE",
            "serverHandle": handle,
            "sessionId": sid,
        }
        streamed = gateway.run("stream-events", "--session-id", sid, "--max-events", "1", "--json")
        assert streamed.code == 0, streamed
        [event] = streamed.lines()
        assert_protobuf_json(event)
        assert event["family"] == "MX_EVENT_FAMILY_ON_DATA_CHANGE"
        assert event["sessionId"] == sid and event["itemHandle"] == int(item)
        assert event["workerSequence"] == "1"  # uint64 is a string in protobuf JSON
        assert event["value"]["dataType"] == "MX_DATA_TYPE_INTEGER"

        first, second = gateway.run(*write), gateway.run(*write)
        assert first.code == 0 and second.code == 0, (first, second)
        assert first.stdout == second.stdout  # the same input, the same bytes
        reply = first.json()
        assert_protobuf_json(reply)
        assert reply["kind"] == "MX_COMMAND_KIND_WRITE"
        assert reply["value"]["int32Value"] == 123
        assert reply["value"]["dataType"] == "MX_DATA_TYPE_INTEGER"

        # Resume after the event seen (the first stream may have received more than it
        # printed): the data changes since, then the written value and ON_WRITE_COMPLETE.
        rest = gateway.run(
            "stream-events", "--session-id", sid, "--after-sequence", "1", "--timeout", "1.5",
            "--json",
        )  # fmt: skip
        assert rest.code == 0, rest
        events = rest.lines()
        sequences = [int(e["workerSequence"]) for e in events]
        assert sequences == list(range(2, 2 + len(events)))  # no gap, no duplicate
        families = [e["family"] for e in events]
        assert "MX_EVENT_FAMILY_ON_WRITE_COMPLETE" in families
        assert any(e.get("value", {}).get("int32Value") == 123 for e in events)
    finally:
        closed = gateway.ok("close-session", "--session-id", sid)
    assert closed["finalState"] == "SESSION_STATE_CLOSED" and closed["sessionId"] == sid
    assert gateway.ok("close-session", "--session-id", sid)["sessionId"] == sid  # idempotent


def test_item_commands(session: OpenSession, attributes: list[dict[str, Any]]) -> None:
    gw = session.gateway
    tag = pick(attributes, 4)["reference"]
    added = gw.ok("add-item2", *session.args(), "--item", tag, "--item-context", "ctx")
    assert added["kind"] == "MX_COMMAND_KIND_ADD_ITEM2"
    assert added["itemContext"] == "ctx" and added["itemDefinition"] == tag
    item = ["--item-handle", str(added["itemHandle"])]
    for command, kind in (
        ("advise-supervisory", "ADVISE_SUPERVISORY"),
        ("unadvise", "UN_ADVISE"),
        ("advise", "ADVISE"),
        ("unadvise", "UN_ADVISE"),
    ):
        assert gw.ok(command, *session.args(), *item)["kind"] == f"MX_COMMAND_KIND_{kind}"
    assert "not advised" in assert_error(gw.run("unadvise", *session.args(), *item, "--json"), 1)
    removed = gw.ok("remove-item", *session.args(), *item)
    assert removed["kind"] == "MX_COMMAND_KIND_REMOVE_ITEM"
    assert_error(gw.run("advise", *session.args(), *item, "--json"), 1)  # the handle is gone

    text = gw.run("add-item", *session.args(), "--item", tag)  # text mode: the bare handle
    assert text.code == 0 and text.stdout.strip().isdigit(), text
    unregistered = gw.ok("unregister", *session.args())
    assert unregistered["kind"] == "MX_COMMAND_KIND_UNREGISTER"
    assert_error(gw.run("add-item", *session.args(), "--item", tag, "--json"), 1)


def _handles(result: dict[str, Any]) -> dict[str, int]:
    assert all(entry["wasSuccessful"] for entry in result["results"]), result
    return {entry["tagAddress"]: entry["itemHandle"] for entry in result["results"]}


def test_write_every_type_and_read_it_back(
    session: OpenSession, attributes: list[dict[str, Any]]
) -> None:
    gw = session.gateway
    doubles = pick(attributes, 4, array=True)
    length = doubles["arrayDimension"]
    array_values = [0.5 * n for n in range(length)]
    strings = pick(attributes, 5, array=True)
    names = [f"n{n}" for n in range(strings["arrayDimension"])]
    # (--type, attribute, --value, --array, the MxValue JSON field read back, its value)
    cases: list[tuple[str, dict[str, Any], str, bool, str, Any]] = [
        ("bool", pick(attributes, 1), "true", False, "boolValue", True),
        ("int32", pick(attributes, 2), "-42", False, "int32Value", -42),
        ("float", pick(attributes, 3), "2.5", False, "floatValue", 2.5),
        ("double", pick(attributes, 4), "1e3", False, "doubleValue", 1000.0),
        ("string", pick(attributes, 5), "héllo wörld", False, "stringValue", "héllo wörld"),
        (
            "time",
            pick(attributes, 6),
            "2024-05-01T12:00:00.25+02:00",
            False,
            "timestampValue",
            "2024-05-01T10:00:00.250Z",
        ),
        ("elapsed", pick(attributes, 7), "90.5", False, "elapsedValue", "90.500s"),
        ("double", doubles, json.dumps(array_values), True, "arrayValue", array_values),
        ("string", strings, json.dumps(names), True, "arrayValue", names),
    ]
    tags = [case[1]["reference"] for case in cases]
    subscribed = gw.ok("subscribe-bulk", *session.args(), *(f"--item={tag}" for tag in tags))
    assert subscribed["kind"] == "MX_COMMAND_KIND_SUBSCRIBE_BULK"
    handles = _handles(subscribed)

    for type_name, attr, value, array, _, _ in cases:
        write = ["write", *session.args(), "--item-handle", str(handles[attr["reference"]])]
        write += ["--type", type_name, "--value", value, *(["--array"] if array else [])]
        assert gw.ok(*write)["kind"] == "MX_COMMAND_KIND_WRITE"

    read = gw.ok("read-bulk", *session.args(), *(f"--item={tag}" for tag in tags))
    assert read["kind"] == "MX_COMMAND_KIND_READ_BULK"
    by_tag = {entry["tagAddress"]: entry for entry in read["results"]}
    for _, attr, _, array, field, expected in cases:
        entry = by_tag[attr["reference"]]
        assert entry["wasSuccessful"] and entry["wasCached"], entry
        value = entry["value"]
        if array:
            values = value["arrayValue"]
            got = values.get("doubleValues") or values.get("stringValues")
            assert got == expected and values["dimensions"] == [len(expected)], values
        else:
            assert value[field] == expected, (attr["reference"], value)


def test_int64_write2_and_write_bulk(
    session: OpenSession, attributes: list[dict[str, Any]]
) -> None:
    gw = session.gateway
    tag = pick(attributes, 2)["reference"]
    item = str(_handles(gw.ok("subscribe-bulk", *session.args(), "--item", tag))[tag])
    handle = ["--item-handle", item]
    assert gw.ok("write", *session.args(), *handle, "--type", "int64", "--value", "77")
    stamped = gw.ok(
        "write2", *session.args(), *handle, "--type", "int32", "--value", "5",
        "--timestamp", "2024-01-02T03:04:05Z",
    )  # fmt: skip
    assert stamped["kind"] == "MX_COMMAND_KIND_WRITE2"

    bulk = ["write-bulk", *session.args(), "--type", "int32"]
    bulk += ["--entry", f"{item}=9", "--entry", "99999=1"]
    first = gw.run(*bulk, "--json")
    assert first.code == 0, first  # a failing entry fails in place, not the call
    assert first.stdout == gw.run(*bulk, "--json").stdout
    results = first.json()["results"]
    assert [r["wasSuccessful"] for r in results] == [True, False]
    assert results[1]["itemHandle"] == 99999 and results[1]["errorMessage"]

    text = gw.run(*bulk)  # text mode: one line per entry
    assert text.code == 0 and "FAILED" in text.stdout.splitlines()[1], text


def test_secured_writes(session: OpenSession, attributes: list[dict[str, Any]]) -> None:
    gw = session.gateway
    secured = pick(attributes, 1, security=(2,))["reference"]  # SecuredWrite
    verified = pick(attributes, 1, security=(3,))["reference"]  # VerifiedWrite
    handles = _handles(
        gw.ok("subscribe-bulk", *session.args(), "--item", secured, "--item", verified)
    )
    on_secured = ["--item-handle", str(handles[secured]), "--type", "bool", "--value", "true"]
    on_verified = ["--item-handle", str(handles[verified]), "--type", "bool", "--value", "1"]

    assert "WriteSecured" in assert_error(
        gw.run("write", *session.args(), *on_secured, "--json"), 1
    )

    operator = KNOWN_USERS[0]
    supervisor = KNOWN_USERS[1]
    env = {**ENV, "PW": operator.name}  # the simulator's passwords are the user names
    user = gw.ok(
        "authenticate-user", *session.args(), "--user", operator.name, "--password-env", "PW",
        env=env,
    )  # fmt: skip
    assert (
        user["userId"] == operator.user_id and user["kind"] == "MX_COMMAND_KIND_AUTHENTICATE_USER"
    )
    bad = gw.run(
        "authenticate-user", *session.args(), "--user", operator.name, "--password-env", "PW",
        "--json", env={**ENV, "PW": "wrong"},
    )  # fmt: skip
    assert_error(bad, 1)
    verifier = gw.ok("archestra-user-to-id", *session.args(), "--user-guid", supervisor.guid)
    assert verifier["userId"] == supervisor.user_id

    current = ["--current-user-id", str(operator.user_id)]
    assert gw.ok("write-secured", *session.args(), *on_secured, *current)
    assert_error(gw.run("write-secured", *session.args(), *on_verified, *current, "--json"), 1)
    done = gw.ok(
        "write-secured2", *session.args(), *on_verified, *current,
        "--verifier-user-id", str(supervisor.user_id), "--timestamp", "2024-06-01T00:00:00Z",
    )  # fmt: skip
    assert done["kind"] == "MX_COMMAND_KIND_WRITE_SECURED2"
    assert done["value"]["boolValue"] is True


def test_stream_events_stops_at_its_bounds(
    session: OpenSession, attributes: list[dict[str, Any]]
) -> None:
    gw = session.gateway
    sid = ["--session-id", session.session_id]
    idle = gw.run("stream-events", *sid, "--timeout", "0.5", "--json")
    assert idle.code == 0 and idle.stdout == "", idle  # nothing advised: the timeout ends it

    tag = pick(attributes, 4, alarm=True)["reference"]  # a generated double: 20 changes/s
    gw.ok("subscribe-bulk", *session.args(), "--item", tag)
    sid += ["--timeout", "20"]  # only a safety net: the count ends these streams
    three = gw.run("stream-events", *sid, "--max-events", "3", "--json")
    assert three.code == 0, three
    assert [e["workerSequence"] for e in three.lines()] == ["1", "2", "3"]

    text = gw.run("stream-events", *sid, "--max-events", "2")
    assert text.code == 0, text
    # Text mode: "#<sequence> <family> ...". A new stream starts after what the previous one
    # received, which can be more than it printed (hence --after-sequence, below).
    numbers = [int(line.split()[0].removeprefix("#")) for line in text.stdout.splitlines()]
    assert len(numbers) == 2 and 3 < numbers[0] < numbers[1], text
    resumed = gw.run("stream-events", *sid, "--after-sequence", "1", "--max-events", "2", "--json")
    assert [e["workerSequence"] for e in resumed.lines()] == ["2", "3"]  # replayed


def test_smoke_reference_example_and_its_finally(gateway: Gateway) -> None:
    env = {**ENV, "MXGATEWAY_API_KEY": FULL_KEY}
    result = run(
        "smoke", "--endpoint", gateway.endpoint, "--plaintext", "--api-key-env",
        "MXGATEWAY_API_KEY", "--item", "Object.Attribute", "--json", env=env,
    )  # fmt: skip
    assert result.code == 0, result
    data = result.json()
    assert_protobuf_json(data)
    assert data["closed"] is True and data["item"] == "Object.Attribute"
    [event] = data["events"]  # an unknown item: one bad-quality event with its status
    assert event["quality"] == 0 and event["statuses"][0]["success"] == 0
    # The session was closed: the gateway no longer knows it.
    gone = gateway.run(
        "register", "--session-id", data["sessionId"], "--json", key_env="MXGW_CLI_TEST_KEY"
    )
    assert "SESSION_NOT_FOUND" in assert_error(gone, 1)

    text = gateway.run("smoke", "--item", "Pump_001.Speed", "--max-events", "2")
    assert text.code == 0, text
    assert text.stdout.splitlines()[-1] == "session closed: ok"
    assert len(text.stdout.splitlines()) == 4

    slow = gateway.run(
        "smoke", "--item", "Object.Attribute", "--max-events", "5", "--timeout", "0.5", "--json"
    )
    assert "1 of 5 events" in assert_error(slow, 3)


def test_write_without_type_reads_it_from_the_value(
    session: OpenSession, attributes: list[dict[str, Any]]
) -> None:
    gw = session.gateway
    doubles = pick(attributes, 4, array=True)
    length = doubles["arrayDimension"]
    # (attribute, --value, --array, the MxValue JSON field read back, its value)
    cases: list[tuple[dict[str, Any], str, bool, str, Any]] = [
        (pick(attributes, 1), "true", False, "boolValue", True),
        (pick(attributes, 2), "-42", False, "int32Value", -42),
        (pick(attributes, 4), "2.75", False, "doubleValue", 2.75),
        (pick(attributes, 5), "plain words", False, "stringValue", "plain words"),
        (doubles, json.dumps([1.5] * length), True, "arrayValue", [1.5] * length),
    ]
    tags = [case[0]["reference"] for case in cases]
    handles = _handles(gw.ok("subscribe-bulk", *session.args(), *(f"--item={t}" for t in tags)))
    for attr, value, array, _, _ in cases:
        write = ["write", *session.args(), "--item-handle", str(handles[attr["reference"]])]
        write += ["--value", value, *(["--array"] if array else [])]
        assert gw.ok(*write)["kind"] == "MX_COMMAND_KIND_WRITE"
    read = gw.ok("read-bulk", *session.args(), *(f"--item={tag}" for tag in tags))
    by_tag = {entry["tagAddress"]: entry["value"] for entry in read["results"]}
    for attr, _, array, field, expected in cases:
        value = by_tag[attr["reference"]]
        if array:
            assert value["arrayValue"]["doubleValues"] == expected
        else:
            assert value[field] == expected, (attr["reference"], value)
    # Text mode names each tag with its item handle and value.
    text = gw.run("read-bulk", *session.args(), f"--item={tags[1]}")
    assert text.code == 0
    assert text.stdout.strip() == f"{tags[1]} (item {handles[tags[1]]}): -42 quality=192"
    # Mixed bulk values that do not agree on a type ask for --type.
    mixed = ["write-bulk", *session.args(), "--entry", "1=true", "--entry", "2=text"]
    assert "--type" in assert_error(gw.run(*mixed, "--json"), 2)


@pytest.mark.once  # reading and splitting the list: neither codec nor loop
def test_tag_lists_of_any_size_from_a_file_or_stdin(session: OpenSession, tmp_path: Any) -> None:
    gw = session.gateway
    listed = tmp_path / "tags.txt"
    listed.write_text("Pump_001.Speed\n  # comment\nPump_001.Running\n", encoding="utf-8")
    read = gw.ok("read-bulk", *session.args(), "--item", "Pump_001.Mode", f"--items-file={listed}")
    assert [r["tagAddress"] for r in read["results"]] == [
        "Pump_001.Mode",
        "Pump_001.Speed",
        "Pump_001.Running",
    ]
    assert "--items-file" in assert_error(
        gw.run("read-bulk", *session.args(), "--items-file", str(tmp_path / "none"), "--json"), 2
    )
    assert "--item" in assert_error(gw.run("read-bulk", *session.args(), "--json"), 2)
    # 100,000 references from stdin (with a BOM, a comment and a blank line). Their first
    # values then overflow the session's queue nobody reads: that is the gateway's business.
    references = [f"Tag_{i:06d}.Value" for i in range(100_000)]
    text = "\ufeff# a PowerShell-saved list\n\n" + "\n".join(references) + "\n"
    subscribed = gw.run(
        "subscribe-bulk", *session.args(), "--items-file", "-", "--json", stdin=text, timeout=120
    )
    assert subscribed.code == 0, subscribed.stderr
    results = subscribed.json()["results"]
    assert [r["tagAddress"] for r in results] == references  # every one, in order
    assert all(r["wasSuccessful"] for r in results)
