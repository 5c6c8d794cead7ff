"""server/core/ids.py against the facts in STORAGE.md §2 and the HSDS 1.0.2 fixture."""
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.core import ids

from conftest import FIXTURE

ROOT = "g-83d8d88d-2f87bd91-0b50-5005a7-0f3519"
GROUP = "g-83d8d88d-2f87bd91-a2f7-ab16c1-583291"
DSET = "d-83d8d88d-2f87bd91-5613-0fdb84-64f7f4"
DTYPE = "t-83d8d88d-2f87bd91-25eb-949188-4402c3"
CHUNK = "c-83d8d88d-2f87bd91-5613-0fdb84-64f7f4_3_2"
PCHUNK = "c2-83d8d88d-2f87bd91-c6ac-65529a-f311c6_4"
V1 = "g-0568d8c5-a77e-11e4-9f7a-3c15c2da029e"

KEYS = {
    ROOT: "db/83d8d88d-2f87bd91/.group.json",
    GROUP: "db/83d8d88d-2f87bd91/g/a2f7-ab16c1-583291/.group.json",
    DSET: "db/83d8d88d-2f87bd91/d/5613-0fdb84-64f7f4/.dataset.json",
    DTYPE: "db/83d8d88d-2f87bd91/t/25eb-949188-4402c3/.datatype.json",
}
CHUNK_KEYS = {
    CHUNK: "db/83d8d88d-2f87bd91/d/5613-0fdb84-64f7f4/3_2",
    PCHUNK: "db/83d8d88d-2f87bd91/d/c6ac-65529a-f311c6/p2/4",
    "c-83d8d88d-2f87bd91-9e85-3d0487-50116e_0": "db/83d8d88d-2f87bd91/d/9e85-3d0487-50116e/0",
}
V2_RE = re.compile(r"^[gdt]-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{6}-[0-9a-f]{6}$")


# ---- the spec's examples -----------------------------------------------------

def test_root_is_root():
    assert ids.is_root(ROOT)
    assert ids.root_of(ROOT) == ROOT


@pytest.mark.parametrize("obj_id", [GROUP, DSET, DTYPE])
def test_non_roots(obj_id):
    assert not ids.is_root(obj_id)
    assert ids.root_of(obj_id) == ROOT
    assert ids.same_domain(obj_id, ROOT)


def test_only_a_group_can_be_root():
    # same digits as the root, other collection letters
    assert not ids.is_root("d" + ROOT[1:])
    assert not ids.is_root("t" + ROOT[1:])


@pytest.mark.parametrize("obj_id, key", list(KEYS.items()))
def test_object_key(obj_id, key):
    assert ids.object_key(obj_id) == key


@pytest.mark.parametrize("obj_id, key", list(KEYS.items()) + list(CHUNK_KEYS.items()))
def test_key_to_id_inverts(obj_id, key):
    assert ids.key_to_id(key) == obj_id


def test_chunk_id_and_key():
    assert ids.chunk_id(DSET, (3, 2)) == CHUNK
    assert ids.chunk_key(CHUNK) == CHUNK_KEYS[CHUNK]


def test_partitioned_chunk():
    assert ids.chunk_id("d-83d8d88d-2f87bd91-c6ac-65529a-f311c6", (4,), partition=2) == PCHUNK
    assert ids.chunk_key(PCHUNK) == CHUNK_KEYS[PCHUNK]


def test_scalar_chunk_index_is_zero():
    dset = "d-83d8d88d-2f87bd91-9e85-3d0487-50116e"
    cid = ids.chunk_id(dset, (0,))
    assert cid == "c-83d8d88d-2f87bd91-9e85-3d0487-50116e_0"
    assert ids.chunk_key(cid) == "db/83d8d88d-2f87bd91/d/9e85-3d0487-50116e/0"


def test_chunk_hex_is_its_datasets():
    assert ids.hex_of(CHUNK) == ids.hex_of(DSET)
    assert ids.hex_of(PCHUNK) == ids.hex_of("d-83d8d88d-2f87bd91-c6ac-65529a-f311c6")
    assert ids.root_of(CHUNK) == ROOT


def test_prefixes():
    assert ids.root_prefix(ROOT) == "db/83d8d88d-2f87bd91/"
    assert ids.root_prefix(DSET) == "db/83d8d88d-2f87bd91/"
    assert ids.dataset_prefix(DSET) == "db/83d8d88d-2f87bd91/d/5613-0fdb84-64f7f4/"
    assert ids.domain_key("/home/test_user1/fixture.h5") == \
        "home/test_user1/fixture.h5/.domain.json"


@pytest.mark.parametrize("key", [
    "db/83d8d88d-2f87bd91/.info.json",
    "db/83d8d88d-2f87bd91/.summary.json",
    "home/test_user1/fixture.h5/.domain.json",
    "ref/sample.h5",
    "db/83d8d88d-2f87bd91",
    "db/83d8d88d-2f87bd91/g/a2f7-ab16c1-583291/stray",
    "db/83d8d88d-2f87bd91/t/25eb-949188-4402c3/stray",
])
def test_key_to_id_skips_non_objects(key):
    assert ids.key_to_id(key) is None


@pytest.mark.parametrize("name, node", [
    (ROOT, 3),
    (DSET, 1),
    (CHUNK, 1),
    ("hsdstest/home/test_user1/fixture.h5", 3),
])
def test_node_index(name, node):
    assert ids.node_index(name, 4) == node


def test_node_index_range():
    for n in (1, 2, 3, 7):
        assert 0 <= ids.node_index(DSET, n) < n
    assert ids.node_index(DSET, 1) == 0


# ---- new ids -----------------------------------------------------------------

def test_new_root_id():
    root = ids.new_root_id()
    assert V2_RE.match(root)
    assert ids.is_valid(root, "g") and ids.is_v2(root)
    assert ids.is_root(root)
    assert ids.root_of(root) == root
    assert ids.key_to_id(ids.object_key(root)) == root


@pytest.mark.parametrize("prefix", ["g", "d", "t"])
def test_new_object_id(prefix):
    root = ids.new_root_id()
    obj = ids.new_object_id(prefix, root)
    assert V2_RE.match(obj) and obj[0] == prefix
    assert ids.is_valid(obj, prefix) and ids.is_v2(obj)
    assert ids.root_of(obj) == root
    assert ids.same_domain(obj, root)
    assert not ids.is_root(obj)
    assert ids.object_key(obj).startswith(ids.root_prefix(root))


def test_new_ids_are_distinct():
    root = ids.new_root_id()
    made = {ids.new_object_id("d", root) for _ in range(200)}
    assert len(made) == 200
    assert len({ids.new_root_id() for _ in range(200)}) == 200


def test_other_domain():
    a, b = ids.new_root_id(), ids.new_root_id()
    assert not ids.same_domain(ids.new_object_id("g", a), b)


# ---- validity ----------------------------------------------------------------

@pytest.mark.parametrize("obj_id", [ROOT, GROUP, DSET, DTYPE])
def test_valid(obj_id):
    assert ids.is_valid(obj_id)
    assert ids.is_valid(obj_id, obj_id[0])
    assert ids.is_v2(obj_id)
    assert ids.collection_of(obj_id) == {"g": "groups", "d": "datasets", "t": "datatypes"}[obj_id[0]]


@pytest.mark.parametrize("obj_id, prefix", [
    (DSET, "g"),                    # wrong collection asked for
    (GROUP, "d"),
    ("x" + DSET[1:], None),         # unknown collection letter
    ("d_" + DSET[2:], None),        # no '-' after the letter
    (DSET[:-1], None),              # 37 characters
    (DSET + "0", None),             # 39 characters
    ("", None),
    (None, None),
    (12, None),
    (DSET[:-1] + "!", None),        # bad characters
    (DSET[:-1] + "_", None),
    (DSET[:-1] + " ", None),
    (DSET[:-1] + "/", None),
])
def test_invalid(obj_id, prefix):
    assert not ids.is_valid(obj_id, prefix)


def test_v1_id_is_valid_but_not_v2():
    assert len(V1) == 38
    assert ids.is_valid(V1)
    assert not ids.is_v2(V1)


# ---- the HSDS 1.0.2 fixture --------------------------------------------------

EXPECTED = FIXTURE / "expected.json"
BUCKET = FIXTURE / "hsdstest"


@pytest.fixture(scope="module")
def expected():
    if not EXPECTED.is_file():
        pytest.skip("shared fixture not present")
    return json.loads(EXPECTED.read_text())


def _objects(expected):
    return [(path, o) for path, o in expected["objects"].items() if o.get("id") and o.get("key")]


def test_fixture_root(expected):
    assert expected["root_id"] == ROOT
    assert ids.is_root(expected["root_id"])
    assert ids.domain_key(expected["domain"]) == expected["domain_key"]
    assert (BUCKET / expected["domain_key"]).is_file()


def test_fixture_object_keys(expected):
    objects = _objects(expected)
    assert len(objects) >= 30
    kinds = {o["kind"] for _, o in objects}
    assert kinds == {"group", "dataset", "datatype"}
    for path, o in objects:
        obj_id, key = o["id"], o["key"]
        assert ids.is_valid(obj_id) and ids.is_v2(obj_id), path
        assert ids.object_key(obj_id) == key, path
        assert ids.key_to_id(key) == obj_id, path
        assert ids.root_of(obj_id) == expected["root_id"], path
        assert ids.is_root(obj_id) == (path == "/"), path
        assert (BUCKET / key).is_file(), f"{path}: {key} missing from the bucket"
        assert key in expected["files"], path


def test_fixture_chunk_keys(expected):
    count = 0
    for path, o in _objects(expected):
        for rel in o.get("chunk_keys") or []:
            key = ids.dataset_prefix(o["id"]) + rel
            cid = ids.key_to_id(key)
            assert cid is not None and cid.startswith("c"), key
            assert ids.chunk_key(cid) == key, key
            assert ids.hex_of(cid) == ids.hex_of(o["id"]), key
            assert (BUCKET / key).is_file(), key
            count += 1
    assert count >= 40


def test_fixture_partitioned_chunk_ids(expected):
    o = expected["objects"]["/g1/partitioned_i4"]
    n = o["layout"]["partition_count"]
    for rel in o["chunk_keys"]:
        part, index = rel.split("/")
        cid = ids.chunk_id(o["id"], (int(index),), partition=int(part[1:]))
        assert int(part[1:]) == int(index) * 29 % n
        assert ids.key_to_id(ids.dataset_prefix(o["id"]) + rel) == cid


def test_fixture_every_db_file_is_classified(expected):
    """Every file under db/ maps to an object or chunk id, except the scan summaries."""
    for key in expected["files"]:
        if not key.startswith("db/"):
            assert ids.key_to_id(key) is None
            continue
        cid = ids.key_to_id(key)
        if key.endswith(("/.info.json", "/.summary.json")):
            assert cid is None, key
            continue
        assert cid is not None, key
        back = ids.chunk_key(cid) if cid[0] == "c" else ids.object_key(cid)
        assert back == key


# ---- properties --------------------------------------------------------------

hex16 = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)


def _root_from(h16: str) -> str:
    rot = "".join("%x" % ((int(c, 16) + 8) % 16) for c in h16)
    h = h16 + rot
    return f"g-{h[0:8]}-{h[8:16]}-{h[16:20]}-{h[20:26]}-{h[26:32]}"


@settings(max_examples=200, deadline=None)
@given(h16=hex16, prefix=st.sampled_from("gdt"),
       index=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
       partition=st.one_of(st.none(), st.integers(0, 99)))
def test_roundtrip_property(h16, prefix, index, partition):
    root = _root_from(h16)
    assert ids.is_root(root) and ids.is_valid(root)
    assert ids.key_to_id(ids.object_key(root)) == root
    assert ids.object_key(root) == f"db/{h16[:8]}-{h16[8:]}/.group.json"

    obj = ids.new_object_id(prefix, root)
    assert ids.is_valid(obj, prefix) and ids.is_v2(obj)
    assert ids.root_of(obj) == root
    assert ids.key_to_id(ids.object_key(obj)) == obj

    if prefix == "d":
        cid = ids.chunk_id(obj, index, partition)
        assert ids.key_to_id(ids.chunk_key(cid)) == cid
        assert ids.chunk_key(cid).startswith(ids.dataset_prefix(obj))
