"""Galaxy and alarm commands through the installed ``mxgw-py`` against ``mxgw-py sim``."""

from __future__ import annotations

import re

from tests.cli.conftest import RO_ENV, Gateway, assert_error, assert_protobuf_json


def test_galaxy_unary_commands(gateway: Gateway) -> None:
    assert gateway.ok("galaxy-test-connection") == {"ok": True}
    text = gateway.run("galaxy-test-connection")
    assert text.code == 0 and text.stdout == "ok\n", text

    first = gateway.run("galaxy-last-deploy", "--json")
    assert first.code == 0 and first.stdout == gateway.run("galaxy-last-deploy", "--json").stdout
    deploy = first.json()
    assert deploy["present"] is True and deploy["timeOfLastDeploy"].endswith("Z")


def test_galaxy_discover_is_deterministic(gateway: Gateway) -> None:
    args = ("galaxy-discover", "--json")
    first, second = gateway.run(*args), gateway.run(*args, key_env=RO_ENV)  # metadata:read
    assert first.code == 0 and second.code == 0, (first, second)
    assert first.stdout == second.stdout  # byte for byte
    objects = first.lines()
    assert len(objects) == 60
    for obj in objects:
        assert_protobuf_json(obj)
    area = objects[0]
    assert area["isArea"] is True and area["categoryId"] == 13
    assert {"gobjectId", "tagName", "hierarchicalName", "templateChain"} <= set(area)
    assert area["attributes"][0]["fullTagReference"].startswith(area["tagName"] + ".")

    narrowed = gateway.run(
        "galaxy-discover", "--root", area["tagName"], "--max-depth", "1", "--no-attributes",
        "--json",
    )  # fmt: skip
    assert narrowed.code == 0, narrowed
    below = narrowed.lines()
    assert below[0]["tagName"] == area["tagName"]
    assert all(obj["attributes"] == [] for obj in below)

    text = gateway.run("galaxy-discover", "--tag-glob", "Pump_00?", "--page-size", "2")
    assert text.code == 0, text
    # An object line, then an indented line per attribute with its type.
    lines = text.stdout.splitlines()
    names = [line.split()[0] for line in lines if not line.startswith(" ")]
    expected = [obj["tagName"] for obj in objects if re.fullmatch(r"Pump_00.", obj["tagName"])]
    assert names == expected and len(names) > 2  # every page, in the hierarchy's order
    first = next(obj for obj in objects if obj["tagName"] == expected[0])
    attribute = first["attributes"][0]
    assert lines[1].startswith(f"  .{attribute['attributeName']}: ")
    nothing = gateway.run("galaxy-discover", "--tag-glob", "Nothing_*")
    assert nothing.code == 0 and nothing.stdout == ""
    assert "no object matches --tag-glob 'Nothing_*'" in nothing.stderr


def test_galaxy_browse(gateway: Gateway) -> None:
    roots = gateway.run("galaxy-browse", "--json")
    assert roots.code == 0, roots
    lines = roots.lines()
    assert lines and all(line["depth"] == 0 for line in lines)
    assert all(line["object"]["parentGobjectId"] == 0 for line in lines)
    root = lines[0]
    assert root["hasChildren"] is True

    walked = gateway.run(
        "galaxy-browse", "--root-id", str(root["object"]["gobjectId"]), "--max-depth", "1",
        "--json",
    )  # fmt: skip
    assert walked.code == 0, walked
    depths = {line["depth"] for line in walked.lines()}
    assert depths == {0, 1}

    text = gateway.run("galaxy-browse", "--root", root["object"]["tagName"], "--max-depth", "0")
    assert text.code == 0 and text.stdout and not text.stdout.startswith(" "), text


def test_galaxy_watch_stops_at_its_bounds(gateway: Gateway) -> None:
    one = gateway.run("galaxy-watch", "--max-events", "1", "--timeout", "20", "--json")
    assert one.code == 0, one
    [event] = one.lines()
    assert_protobuf_json(event)
    assert event["sequence"] == "1" and event["objectCount"] == 60
    assert event["timeOfLastDeployPresent"] is True

    # Knowing the current deploy suppresses the bootstrap event: nothing until the timeout.
    quiet = gateway.run(
        "galaxy-watch", "--last-seen", event["timeOfLastDeploy"], "--timeout", "0.5", "--json"
    )
    assert quiet.code == 0 and quiet.stdout == "", quiet


def test_stream_alarms_stops_at_its_bounds(gateway: Gateway) -> None:
    three = gateway.run("stream-alarms", "--max-messages", "3", "--timeout", "20", "--json")
    assert three.code == 0, three
    messages = three.lines()
    assert len(messages) == 3
    for message in messages:
        assert_protobuf_json(message)
        assert len(message) == 1  # one arm of the AlarmFeedMessage oneof

    none = gateway.run(
        "stream-alarms", "--filter-prefix", "NoSuchTag", "--timeout", "0.5", "--json"
    )
    assert none.code == 0, none
    snapshot, provider = none.lines()
    assert snapshot == {"snapshotComplete": {"activeAlarmCount": 0}}
    assert provider["providerStatus"]["mode"] == "ALARM_PROVIDER_MODE_ALARMMGR"

    text = gateway.run("stream-alarms", "--filter-prefix", "NoSuchTag", "--timeout", "0.3")
    assert text.code == 0 and text.stdout.splitlines()[0] == "snapshot complete: 0 active"


def test_query_and_acknowledge_alarms(gateway: Gateway) -> None:
    queried = gateway.run("query-alarms", "--json")
    assert queried.code == 0, queried
    alarms = queried.lines()
    assert alarms, "the simulator raises alarms from its first values"
    for alarm in alarms:
        assert_protobuf_json(alarm)
        assert alarm["currentState"].startswith("ALARM_CONDITION_STATE_")
    reference = alarms[0]["alarmFullReference"]
    prefixed = gateway.run("query-alarms", "--filter-prefix", reference, "--json")
    assert reference in [a["alarmFullReference"] for a in prefixed.lines()]

    acked = gateway.ok(
        "acknowledge-alarm", "--reference", reference, "--comment", "seen", "--operator", "op"
    )
    assert acked["alarmFullReference"] == reference
    assert acked["resultingState"].startswith("ALARM_CONDITION_STATE_")
    assert acked["statuses"][0]["success"] == 1

    unknown = gateway.run("acknowledge-alarm", "--reference", "No.Such.Alarm", "--json")
    assert "not an alarm" in assert_error(unknown, 1)
    assert_error(gateway.run("acknowledge-alarm", "--json"), 2)  # --reference is required
    # AcknowledgeAlarm needs invoke:write, which the read-only key lacks.
    denied = gateway.run("acknowledge-alarm", "--reference", reference, "--json", key_env=RO_ENV)
    assert "invoke:write" in assert_error(denied, 4)
