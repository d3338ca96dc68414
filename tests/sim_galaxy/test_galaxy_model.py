"""The in-memory Galaxy on its own: determinism, content, references, redeploys, scale."""

from __future__ import annotations

import time

import pytest

from mxgateway.sim._galaxy import AREA_CATEGORY, Galaxy, GalaxyFilter

ALL = GalaxyFilter()


# The simulated Galaxy and alarm model: no event decoding, nothing loop-specific.
pytestmark = pytest.mark.once


def _dump(galaxy: Galaxy) -> list[bytes]:
    return [
        galaxy.object_proto(g).SerializeToString(deterministic=True)
        for g in galaxy.discover(None, None, ALL)
    ]


def test_same_seed_same_galaxy() -> None:
    a, b = Galaxy(500, 42), Galaxy(500, 42)
    assert _dump(a) == _dump(b)
    assert a.deploy_time_ns == b.deploy_time_ns
    assert a.attribute_count == b.attribute_count
    assert a.sample_references(50) == b.sample_references(50)
    assert a.alarm_references() == b.alarm_references()
    a.redeploy()
    b.redeploy()
    assert _dump(a) == _dump(b)


def test_other_seed_other_galaxy() -> None:
    assert _dump(Galaxy(500, 42)) != _dump(Galaxy(500, 43))


def test_size_is_the_object_count() -> None:
    for size in (1, 2, 49, 400, 1234):
        galaxy = Galaxy(size, 5)
        assert galaxy.object_count == size
        assert len(galaxy.discover(None, None, ALL)) == size
    with pytest.raises(ValueError):
        Galaxy(0, 1)


def test_structure(galaxy: Galaxy) -> None:
    objects = [galaxy.object_proto(g) for g in galaxy.discover(None, None, ALL)]
    by_id = {o.gobject_id: o for o in objects}
    areas = [o for o in objects if o.is_area]
    assert areas and all(o.category_id == AREA_CATEGORY for o in areas)
    assert all(o.is_area == (o.category_id == AREA_CATEGORY) for o in objects)
    assert all(by_id[o.parent_gobject_id].is_area for o in areas if o.parent_gobject_id)
    assert any(o.parent_gobject_id for o in areas), "no nested area"
    roots = [o for o in objects if o.parent_gobject_id == 0]
    assert roots and all(o.is_area for o in roots)
    contained = [o for o in objects if o.contained_name]
    assert contained, "no contained object"
    for o in contained:
        parent = by_id[o.parent_gobject_id]
        assert not parent.is_area
        assert o.browse_name == o.contained_name
        assert o.hierarchical_name == f"{parent.hierarchical_name}.{o.contained_name}"
    assert any(o.hierarchical_name.count(".") == 2 for o in contained), "no two-level containment"
    for o in objects:
        if not o.contained_name:
            assert o.browse_name == o.tag_name == o.hierarchical_name
        if not o.is_area:
            assert by_id[galaxy.find_object(tag_name=o.area_tag_name) or 0].is_area
    chains = {tuple(o.template_chain) for o in objects}
    assert ("$UserDefined", "$Pump") in chains
    assert {1, 3, 10, 11, 13} <= {o.category_id for o in objects}
    tags = [o.tag_name for o in objects]
    assert len(set(tags)) == len(tags)


def test_attributes_cover_every_type_and_flag(galaxy: Galaxy) -> None:
    attributes = [
        a for g in galaxy.discover(None, None, ALL) for a in galaxy.object_proto(g).attributes
    ]
    assert {a.mx_data_type for a in attributes} == set(range(17))  # every native MXAccess type
    arrays = [a for a in attributes if a.is_array]
    assert arrays and all(a.array_dimension > 0 for a in arrays)
    assert {a.mx_data_type for a in arrays} >= {1, 2, 3, 4, 5, 6, 7}
    assert any(a.is_historized for a in attributes)
    assert any(a.is_alarm for a in attributes)
    assert {a.security_classification for a in attributes} == set(range(7))
    assert all(a.full_tag_reference.endswith("." + a.attribute_name) for a in attributes)
    total = sum(len(galaxy.object_proto(g).attributes) for g in range(1, 401))
    assert galaxy.attribute_count == total


def test_optional_attributes_vary_per_object(galaxy: Galaxy) -> None:
    pumps = galaxy.discover(None, None, GalaxyFilter.of(template_chain_contains=["$Pump"]))
    shapes = {len(galaxy.object_proto(g).attributes) for g in pumps}
    assert len(shapes) > 1


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Pump_001.Speed", ("Pump_001.Speed", 5, False, 0)),
        ("pump_001.SPEED", ("Pump_001.Speed", 5, False, 0)),
        ("Pump_001.Speed.EngUnits", ("Pump_001.Speed.EngUnits", 6, False, 0)),
        ("Tank_001.Level.HiLimit", ("Tank_001.Level.HiLimit", 5, False, 0)),
        ("Tank_001.LevelProfile[]", ("Tank_001.LevelProfile[]", 4, True, 10)),
        ("Tank_001.LevelProfile", ("Tank_001.LevelProfile", 4, True, 10)),
        ("Tank_001.LevelProfile[1]", ("Tank_001.LevelProfile[1]", 4, False, 0)),
        ("Tank_001.LevelProfile[10]", ("Tank_001.LevelProfile[10]", 4, False, 0)),
        ("Diag_001.Flags[16]", ("Diag_001.Flags[16]", 2, False, 0)),
        ("Diag_001.Record", ("Diag_001.Record", 15, False, 0)),
        ("Diag_001.NoDataValue", ("Diag_001.NoDataValue", 1, False, 0)),
        ("Tank_001.Level.InAlarm", ("Tank_001.Level.InAlarm", 2, False, 0)),
        ("Tank_001.Level.Acked", ("Tank_001.Level.Acked", 2, False, 0)),
        ("Tank_001.Level.AckMsg", ("Tank_001.Level.AckMsg", 6, False, 0)),
        ("Tank_001.Level.Priority", ("Tank_001.Level.Priority", 3, False, 0)),
        ("Tank_001.LevelProfile[0]", None),
        ("Tank_001.LevelProfile[11]", None),
        ("Tank_001.LevelProfile[x]", None),
        ("Tank_001.Level[]", None),
        ("Tank_001.Level[1]", None),
        ("Tank_001.BatchId.InAlarm", None),  # not an alarm attribute
        ("Tank_001.Level.Nope", None),
        ("Tank_001.Nope", None),
        ("Nope_001.Level", None),
        ("Tank_001", None),
        ("Tank_001.", None),
        ("", None),
    ],
)
def test_resolve(
    galaxy: Galaxy, reference: str, expected: tuple[str, int, bool, int] | None
) -> None:
    info = galaxy.resolve(reference)
    if expected is None:
        assert info is None
        return
    assert info is not None
    assert (info.reference, info.data_type, info.is_array, info.array_length) == expected
    assert info.tag_name == expected[0].split(".")[0]


def test_resolve_details(galaxy: Galaxy) -> None:
    speed = galaxy.resolve("Pump_001.Speed")
    assert speed is not None
    assert speed.is_alarm and speed.is_historized and speed.generator == "sine"
    assert speed.alarm_limit is not None and speed.value_low < speed.alarm_limit < speed.value_high
    assert speed.attribute_name == "Speed"
    start = galaxy.resolve("Pump_001.StartCmd")
    assert start is not None and start.security_classification == 2 and not start.is_alarm
    interlock = galaxy.resolve("Valve_001.Interlock")
    assert interlock is not None and interlock.security_classification == 3
    in_alarm = galaxy.resolve("Pump_001.Speed.InAlarm")
    assert in_alarm is not None and not in_alarm.is_alarm and in_alarm.alarm_limit is None
    assert in_alarm.attribute_name == "Speed.InAlarm"
    element = galaxy.resolve("Diag_001.Stamps[2]")
    assert element is not None and element.data_type == 7 and element.generator == "ramp"


def test_sample_references(galaxy: Galaxy) -> None:
    refs = galaxy.sample_references(200)
    assert len(refs) == 200 == len(set(refs))
    assert refs == galaxy.sample_references(200)
    assert galaxy.sample_references(10) == refs[:10]
    common = {2, 3, 4, 5, 6, 7, 8}
    for ref in refs:
        info = galaxy.resolve(ref)
        assert info is not None and info.reference == ref
        assert not info.is_array and info.data_type in common
    assert not refs[0].startswith("Area_")  # process objects come first
    assert len(Galaxy(1, 1).sample_references(100)) == 2  # only an area's two attributes


def test_alarm_references(galaxy: Galaxy) -> None:
    refs = galaxy.alarm_references()
    assert refs and len(refs) == len(set(refs))
    for ref in refs:
        info = galaxy.resolve(ref)
        assert info is not None and info.is_alarm and info.alarm_limit is not None
        assert info.value_low <= info.alarm_limit <= info.value_high
        assert info.data_type in (2, 4, 5)
    flagged = sum(
        a.is_alarm
        for g in range(1, galaxy.object_count + 1)
        for a in galaxy.object_proto(g).attributes
    )
    assert flagged == len(refs)


def test_find_object(galaxy: Galaxy) -> None:
    tank = galaxy.find_object(tag_name="tank_001")
    assert tank is not None
    assert galaxy.find_object(gobject_id=tank) == tank
    assert galaxy.find_object(gobject_id=0) is None
    assert galaxy.find_object(gobject_id=10_000) is None
    contained = next(
        g for g in galaxy.discover(None, None, ALL) if galaxy.object_proto(g, False).contained_name
    )
    name = galaxy.hierarchical_name(contained)
    assert galaxy.find_object(contained_path=name) == contained
    assert galaxy.find_object(contained_path=name.upper()) == contained
    # The browse path from the root: browse names joined with "/".
    path: list[str] = []
    gid = contained
    while gid:
        obj = galaxy.object_proto(gid, False)
        path.append(obj.browse_name)
        gid = obj.parent_gobject_id
    assert galaxy.find_object(contained_path="/".join(reversed(path))) == contained
    assert galaxy.find_object(contained_path="/" + "/".join(reversed(path))) == contained
    assert galaxy.find_object(contained_path="Area_001/Nope") is None
    assert galaxy.find_object(contained_path="Tank_001.Nope") is None
    assert galaxy.find_object(contained_path="Nope") is None


@pytest.mark.parametrize(
    ("glob", "tag", "matches"),
    [
        ("Pump_00?", "Pump_001", True),
        ("pump_00?", "PUMP_001", True),
        ("Pump_00?", "Pump_0012", False),
        ("Pump*", "Pump_0012", True),
        ("*_001", "Tank_001", True),
        ("ump*", "Pump_001", False),  # anchored
        ("Pump", "Pump_001", False),
        ("P.mp*", "Pump_001", False),  # "." is literal
        ("[P]ump*", "Pump_001", False),  # brackets are literal
        ("*", "", True),
    ],
)
def test_glob(glob: str, tag: str, matches: bool) -> None:
    pattern = GalaxyFilter.of(tag_name_glob=glob).glob_pattern()
    assert pattern is not None
    assert bool(pattern.fullmatch(tag)) is matches


def test_redeploy(galaxy: Galaxy) -> None:
    before = _dump(galaxy)
    ids_before = set(galaxy.discover(None, None, ALL))
    time_before, count_before = galaxy.deploy_time_ns, galaxy.object_count
    assert (galaxy.generation, galaxy.deploy_sequence) == (0, 1)
    galaxy.redeploy()
    assert (galaxy.generation, galaxy.deploy_sequence) == (1, 2)
    assert galaxy.deploy_time_ns > time_before
    assert count_before < galaxy.object_count <= count_before + 20
    after = {galaxy.object_proto(g).SerializeToString(deterministic=True) for g in ids_before}
    assert after == set(before)  # existing objects keep their ids and content
    assert len(galaxy.discover(None, None, ALL)) == galaxy.object_count
    event = galaxy.deploy_event()
    assert event.sequence == 2 and event.object_count == galaxy.object_count
    assert event.attribute_count == galaxy.attribute_count
    last = galaxy.deploy_time_ns
    galaxy.redeploy()
    assert galaxy.deploy_time_ns > last


def test_large_galaxy_builds_fast() -> None:
    start = time.perf_counter()
    galaxy = Galaxy(100_000, 3)
    built = time.perf_counter() - start
    assert galaxy.object_count == 100_000
    assert built < 5.0, f"building 100k objects took {built:.2f} s"
    assert galaxy.resolve(galaxy.sample_references(1)[0]) is not None
    assert len(galaxy.alarm_references()) > 10_000
