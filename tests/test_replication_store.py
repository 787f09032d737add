"""The replication agent's rules on real PyKMIP databases, without servers: ids are
cluster-unique, a whole object (key bytes, state) is copied with its id, the last
writer wins (timestamp, then replica name), destroys travel as tombstones."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from harness.replica.replication import Agent
from harness.replica.store import install_id_hook


@pytest.fixture(scope="module", autouse=True)
def id_hook() -> None:
    install_id_hook(7)


def make_replica(tmp_path: Path, name: str) -> tuple[Agent, sessionmaker]:
    from kmip.pie import sqltypes

    data = tmp_path / name
    data.mkdir()
    engine = create_engine(f"sqlite:///{data / 'kms.sqlite'}")
    sqltypes.Base.metadata.create_all(engine)
    agent = Agent(name, "127.0.0.1", 0, data, interval_s=0.1)
    return agent, sessionmaker(bind=engine)


def create_key(session_factory: sessionmaker, material: bytes) -> int:
    from kmip.core import enums
    from kmip.pie.objects import SymmetricKey

    with session_factory() as s:
        key = SymmetricKey(enums.CryptographicAlgorithm.AES, 256, material)
        s.add(key)
        s.commit()
        return int(key.unique_identifier)


def set_state(session_factory: sessionmaker, uid: int, state: str) -> None:
    from kmip.core import enums
    from kmip.pie.objects import ManagedObject

    with session_factory() as s:
        obj = s.query(ManagedObject).filter(ManagedObject.unique_identifier == uid).one()
        obj.state = enums.State[state]
        s.commit()


def state_of(session_factory: sessionmaker, uid: int) -> tuple[bytes, str] | None:
    from kmip.pie.objects import ManagedObject

    with session_factory() as s:
        obj = s.query(ManagedObject).filter(ManagedObject.unique_identifier == uid).first()
        return None if obj is None else (bytes(obj.value), obj.state.name)


def ship(src: Agent, dst: Agent) -> dict:
    """What one push carries, applied directly (no HTTP)."""
    versions = src.scan()
    objects = {
        str(u): {"version": list(v), "rows": src.store.read(u) if v[2] else None}
        for u, v in versions.items()
    }
    return dst.apply({"from": src.name, "objects": objects})


def test_ids_are_cluster_unique_and_carry_the_replica_index(tmp_path: Path) -> None:
    _, sf = make_replica(tmp_path, "kms-a")
    uids = [create_key(sf, bytes([i]) * 32) for i in range(20)]
    assert len(set(uids)) == 20
    assert all(u % 100 == 7 for u in uids)


def test_object_is_copied_whole_with_its_id(tmp_path: Path) -> None:
    a, sfa = make_replica(tmp_path, "kms-a")
    b, sfb = make_replica(tmp_path, "kms-b")
    uid = create_key(sfa, b"\x11" * 32)
    set_state(sfa, uid, "ACTIVE")
    answer = ship(a, b)
    assert state_of(sfb, uid) == (b"\x11" * 32, "ACTIVE")
    assert answer["versions"][str(uid)] == list(a.scan()[uid])
    assert b.scan()[uid] == a.scan()[uid], "the copy must hash the same as the original"


def test_last_writer_wins_by_timestamp_then_replica_name(tmp_path: Path) -> None:
    a, sfa = make_replica(tmp_path, "kms-a")
    b, sfb = make_replica(tmp_path, "kms-b")
    uid = create_key(sfa, b"\x22" * 32)
    ship(a, b)
    set_state(sfa, uid, "ACTIVE")  # a writes first ...
    a.scan()
    set_state(sfb, uid, "DEACTIVATED")  # ... b writes later: b wins everywhere
    b.scan()
    ship(a, b)
    ship(b, a)
    assert state_of(sfa, uid)[1] == state_of(sfb, uid)[1] == "DEACTIVATED"


def test_equal_timestamps_the_greater_replica_name_wins(tmp_path: Path) -> None:
    from kmip.core import enums

    a, sfa = make_replica(tmp_path, "kms-b")
    uid = create_key(sfa, b"\x44" * 32)
    ts, _, _ = a.scan()[uid]
    rows = a.store.read(uid)
    assert rows is not None
    rows["crypto_objects"][0]["state"] = enums.State.ACTIVE.value

    def offer(origin: str) -> None:
        a.apply(
            {"from": origin, "objects": {str(uid): {"version": [ts, origin, "h"], "rows": rows}}}
        )

    offer("kms-a")  # same time, smaller name: kms-b's own version stays
    assert state_of(sfa, uid)[1] == "PRE_ACTIVE"
    offer("kms-c")  # same time, greater name: it wins
    assert state_of(sfa, uid)[1] == "ACTIVE"


def test_destroy_travels_as_a_tombstone_and_is_not_resurrected(tmp_path: Path) -> None:
    from kmip.pie.objects import ManagedObject

    a, sfa = make_replica(tmp_path, "kms-a")
    b, sfb = make_replica(tmp_path, "kms-b")
    uid = create_key(sfa, b"\x33" * 32)
    ship(a, b)
    with sfa() as s:
        s.query(ManagedObject).filter(ManagedObject.unique_identifier == uid).delete()
        s.commit()
    ship(a, b)
    assert state_of(sfb, uid) is None, "the destroy did not reach kms-b"
    ship(b, a)  # b's older copy must not bring it back
    assert state_of(sfa, uid) is None


def test_object_groups_are_copied_by_value(tmp_path: Path) -> None:
    from kmip.pie.objects import ManagedObject, ObjectGroup

    a, sfa = make_replica(tmp_path, "kms-a")
    b, sfb = make_replica(tmp_path, "kms-b")
    create_key(sfb, b"\x55" * 32)  # b's own row ids differ from a's
    uid = create_key(sfa, b"\x66" * 32)
    with sfa() as s:
        obj = s.query(ManagedObject).filter(ManagedObject.unique_identifier == uid).one()
        obj.object_groups.append(ObjectGroup(object_group="vm-disks"))
        s.commit()
    ship(a, b)
    with sfb() as s:
        obj = s.query(ManagedObject).filter(ManagedObject.unique_identifier == uid).one()
        assert [g.object_group for g in obj.object_groups] == ["vm-disks"]
    assert b.scan()[uid][2] == a.scan()[uid][2]
