"""server.core.layout: chunk shapes (REST_API.md §10.2), creation layouts, filters
(§10.3), fill values (§10.4), resize (§10.8), and the chunk dims of stored datasets
(STORAGE.md §4.3, §6.1, §7) -- checked against the HSDS 1.0.2 fixture bucket."""
import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.core.errors import BadRequest, Conflict
from server.core.layout import (CONTIGUOUS_REF_LIMIT, DEFAULT_COMPRESSORS, check_fill_value,
                                chunk_dims_for, chunk_dims_of, contiguous_ref_dims,
                                creation_layout, layout_json_of, normalize_filters,
                                partition_count_of, partition_of, resize_plan)

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "hsds-1.0.2"
MIN, MAX = 1024 * 1024, 4 * 1024 * 1024
F32 = {"class": "H5T_FLOAT", "base": "H5T_IEEE_F32LE"}
I32 = {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}
VSTR = {"class": "H5T_STRING", "length": "H5T_VARIABLE", "charSet": "H5T_CSET_UTF8",
        "strPad": "H5T_STR_NULLTERM"}
CMPD24 = {"class": "H5T_COMPOUND", "fields": [
    {"name": "a", "type": "H5T_IEEE_F64LE"}, {"name": "b", "type": "H5T_STD_I64LE"},
    {"name": "c", "type": "H5T_STD_I64LE"}]}
TABLE_ID = "d-83d8d88d-2f87bd91-41d0-1d658c-02f4aa"


def simple(dims, maxdims=None):
    shape = {"class": "H5S_SIMPLE", "dims": list(dims)}
    if maxdims is not None:
        shape["maxdims"] = list(maxdims)
    return shape


SCALAR = {"class": "H5S_SCALAR"}
NULL = {"class": "H5S_NULL"}


# ============================================================================
# chunk shape algorithm: every worked example of §10.2
# ============================================================================

@pytest.mark.parametrize("dims, maxdims, isz, requested, expected", [
    ([365, 780, 1024], [0, 780, 1024], 4, [1, 390, 512], [1, 390, 1024]),
    ([10, 20], None, 4, None, [10, 20]),
    ([50000, 80000], None, 4, None, [782, 1250]),
    ([10**9], None, 24, [10], [81920]),
    ([0], [0], 4, None, [262144]),
    ([10], [20], 4, None, [20]),
    ([], None, 4, None, [1]),
    ([45, 54], None, 4, [10, 10], [45, 54]),
    ([50000, 80000, 90000], None, 4, None, [49, 79, 176]),
    ([10, 10], None, 4, None, [10, 10]),                 # tall.h5
    ([3000, 4000], None, 4, None, [750, 1000]),          # STORAGE.md §4.3
    ([10], ["H5S_UNLIMITED"], 4, None, [262144]),        # STORAGE.md §4.3
    ([10], [0], "H5T_VARIABLE", None, [8192]),           # variable length: 128 bytes
    ([100], None, "H5T_VARIABLE", None, [100]),
])
def test_chunk_shape_examples(dims, maxdims, isz, requested, expected):
    assert chunk_dims_for(dims, maxdims, isz, requested, MIN, MAX) == expected


def test_chunk_shape_sizes_land_in_the_window():
    for dims in ([10**6, 10**4], [7, 10**8], [3, 5, 10**7]):
        chunk = chunk_dims_for(dims, None, 8, None, MIN, MAX)
        assert MIN // 2 <= 8 * _prod(chunk) <= MAX
    # settings are honoured
    assert chunk_dims_for([10**6], None, 1, None, 1000, 4000) == [3907]


def _prod(xs):
    out = 1
    for x in xs:
        out *= x
    return out


def test_contiguous_rule():
    assert contiguous_ref_dims([50000, 8000000], 4, 4 * 1024 * 1024) == [1, 1000000]
    assert contiguous_ref_dims([0, 10], 4, 4 * 1024 * 1024) == [0, 10]
    assert contiguous_ref_dims([24, 10], 4) == [24, 10]
    assert contiguous_ref_dims([50000, 8000000], 4) == [1, 2000000]
    assert contiguous_ref_dims([1000, 1000, 10], 8, CONTIGUOUS_REF_LIMIT) == [63, 1000, 10]
    assert contiguous_ref_dims([5], 10**8, CONTIGUOUS_REF_LIMIT) == [1]


# ============================================================================
# creation_layout: validation (§10.2)
# ============================================================================

@pytest.mark.parametrize("type_json, shape, layout", [
    (F32, simple([10]), {"dims": [5]}),                                   # no class
    (F32, simple([10]), {"class": "H5D_WHATEVER"}),
    (F32, simple([10]), {"class": "H5D_CHUNKED"}),                        # dims required
    (F32, SCALAR, {"class": "H5D_CHUNKED", "dims": [1]}),                 # not simple
    (F32, NULL, {"class": "H5D_CHUNKED", "dims": [1]}),
    (F32, simple([10, 10]), {"class": "H5D_CHUNKED", "dims": [5]}),       # rank
    (F32, simple([10]), {"class": "H5D_CHUNKED", "dims": [0]}),           # zero
    (F32, simple([10]), {"class": "H5D_CHUNKED", "dims": [-2]}),
    (F32, simple([10]), {"class": "H5D_CHUNKED", "dims": [2.5]}),
    (F32, simple([10]), {"class": "H5D_CHUNKED", "dims": "5"}),
    (F32, simple([10]), {"class": "H5D_CHUNKED", "dims": [11]}),          # > extent
    (F32, simple([10], [20]), {"class": "H5D_CHUNKED", "dims": [21]}),    # > maxdims
    (F32, simple([0]), {"class": "H5D_CHUNKED", "dims": [1]}),
    (F32, simple([10]), {"class": "H5D_CHUNKED", "dims": [5], "partition_count": 0}),
    (F32, simple([10]), {"class": "H5D_CONTIGUOUS", "dims": [10]}),
    (F32, simple([10]), {"class": "H5D_COMPACT", "dims": [10]}),
    (VSTR, simple([24, 10]), {"class": "H5D_CONTIGUOUS_REF", "file_uri": "b/f.h5",
                              "offset": 0, "size": 10}),                 # variable type
    (I32, simple([24, 10]), {"class": "H5D_CONTIGUOUS_REF", "file_uri": "b/f.h5",
                             "offset": 0}),                               # size missing
    (I32, simple([24, 10]), {"class": "H5D_CONTIGUOUS_REF", "file_uri": "b/f.h5",
                             "offset": 0, "size": 960, "dims": [24, 10]}),
    (I32, simple([24, 10], [48, 10]), {"class": "H5D_CONTIGUOUS_REF", "file_uri": "b/f.h5",
                                       "offset": 0, "size": 960}),
    (I32, simple([24, 10]), {"class": "H5D_CONTIGUOUS_REF", "file_uri": "b/f.h5",
                             "offset": -1, "size": 960}),
    (I32, NULL, {"class": "H5D_CONTIGUOUS_REF", "file_uri": "b/f.h5", "offset": 0,
                 "size": 1}),
    (I32, simple([24, 10]), {"class": "H5D_CHUNKED_REF", "file_uri": "b/f.h5",
                             "dims": [8, 10]}),                           # chunks missing
    (I32, simple([24, 10]), {"class": "H5D_CHUNKED_REF", "dims": [8, 10], "chunks": {}}),
    (I32, simple([24, 10]), {"class": "H5D_CHUNKED_REF", "file_uri": "b/f.h5",
                             "dims": [8, 10], "chunks": []}),
    (VSTR, simple([24, 10]), {"class": "H5D_CHUNKED_REF", "file_uri": "b/f.h5",
                              "dims": [8, 10], "chunks": {}}),
    (I32, simple([24, 10]), {"class": "H5D_CHUNKED_REF_INDIRECT", "dims": [8, 10]}),
    (I32, simple([24, 10]), {"class": "H5D_CHUNKED_REF_INDIRECT", "dims": [8, 10],
                             "chunk_table": "g-83d8d88d-2f87bd91-41d0-1d658c-02f4aa"}),
    (I32, simple([24, 10]), {"class": "H5D_CHUNKED_REF_INDIRECT", "dims": [8, 10],
                             "chunk_table": 5}),
    (I32, simple([24, 10]), {"class": "H5D_CHUNKED_REF_INDIRECT", "chunk_table": TABLE_ID}),
    (I32, simple([24, 10]), {"class": "H5D_CHUNKED_REF_INDIRECT", "dims": [24, 10],
                             "chunk_table": TABLE_ID, "hyper_dims": [7, 10]}),
    (I32, SCALAR, {"class": "H5D_CHUNKED_REF_INDIRECT", "dims": [1],
                   "chunk_table": TABLE_ID}),
    (F32, simple([10]), "H5D_CHUNKED"),
    (F32, simple([10]), [1, 2]),
])
def test_layout_400(type_json, shape, layout):
    with pytest.raises(BadRequest):
        creation_layout(type_json, shape, {"layout": layout}, MIN, MAX)


def test_null_space_with_filters_400():
    with pytest.raises(BadRequest):
        creation_layout(F32, NULL, {"filters": [{"class": "H5Z_FILTER_DEFLATE"}]}, MIN, MAX)


def test_layout_dims_rules_accepted():
    # integer dims promoted; unlimited dims accept any positive size
    eff, stored = creation_layout(F32, simple([10], [0]), {
        "layout": {"class": "H5D_CHUNKED", "dims": 5000}}, MIN, MAX)
    assert stored["layout"]["dims"] == eff["dims"]
    eff, _ = creation_layout(F32, simple([10], [0]), {
        "layout": {"class": "H5D_CHUNKED", "dims": [10**6]}}, MIN, MAX)
    assert eff["dims"] == [10**6]
    # finite maxdims bounds the dims, not the current extent
    eff, _ = creation_layout(F32, simple([10], [20]), {
        "layout": {"class": "H5D_CHUNKED", "dims": [15]}}, MIN, MAX)
    assert eff["dims"] == [20]


# ============================================================================
# creation_layout: effective layout and stored creationProperties
# ============================================================================

def test_effective_layouts():
    assert creation_layout(F32, NULL, {}, MIN, MAX) == (None, {})
    eff, _ = creation_layout(F32, simple([365, 780, 1024], [0, 780, 1024]), {
        "layout": {"class": "H5D_CHUNKED", "dims": [1, 390, 512]}}, MIN, MAX)
    assert eff == {"class": "H5D_CHUNKED", "dims": [1, 390, 1024]}
    eff, _ = creation_layout(F32, simple([10, 20]), {"layout": {"class": "H5D_CONTIGUOUS"}},
                             MIN, MAX)
    assert eff == {"class": "H5D_CHUNKED", "dims": [10, 20]}
    eff, _ = creation_layout(F32, simple([50000, 80000]), {}, MIN, MAX)
    assert eff == {"class": "H5D_CHUNKED", "dims": [782, 1250]}
    eff, _ = creation_layout(CMPD24, simple([10**9]), {
        "layout": {"class": "H5D_CHUNKED", "dims": [10]}}, MIN, MAX)
    assert eff["dims"] == [81920]
    eff, _ = creation_layout(I32, simple([0], [0]), {}, MIN, MAX)
    assert eff["dims"] == [262144]
    eff, _ = creation_layout(I32, simple([10], [20]), {}, MIN, MAX)
    assert eff["dims"] == [20]
    eff, _ = creation_layout(F32, SCALAR, {}, MIN, MAX)
    assert eff == {"class": "H5D_CHUNKED", "dims": [1]}
    eff, _ = creation_layout(F32, simple([45, 54]), {
        "layout": {"class": "H5D_CHUNKED", "dims": [10, 10]}}, MIN, MAX)
    assert eff["dims"] == [45, 54]
    eff, _ = creation_layout(F32, simple([50000, 80000, 90000]), {}, MIN, MAX)
    assert eff["dims"] == [49, 79, 176]
    eff, _ = creation_layout(F32, simple([10, 10]), {}, MIN, MAX)
    assert eff["dims"] == [10, 10]
    eff, _ = creation_layout(F32, simple([10, 20]), {"layout": {"class": "H5D_COMPACT"}},
                             MIN, MAX)
    assert eff == {"class": "H5D_CHUNKED", "dims": [10, 20]}


def test_reference_layouts():
    ref = {"class": "H5D_CHUNKED_REF", "file_uri": "hsdstest/ref/sample.h5", "dims": [8, 10],
           "chunks": {"0_0": [3008, 320], "1_0": [3328, 320], "2_0": [3648, 320]}}
    props = {"layout": ref, "fillValue": 3}
    eff, stored = creation_layout(I32, simple([24, 10]), copy.deepcopy(props), MIN, MAX)
    assert eff == {"class": "H5D_CHUNKED", "dims": [8, 10]}          # not enlarged
    assert stored == props
    ind = {"class": "H5D_CHUNKED_REF_INDIRECT", "file_uri": "hsdstest/ref/sample.h5",
           "dims": [24, 10], "hyper_dims": [8, 10], "chunk_table": TABLE_ID}
    eff, stored = creation_layout(I32, simple([24, 10]), {"layout": ind}, MIN, MAX)
    assert eff == {"class": "H5D_CHUNKED", "dims": [24, 10]} and stored == {"layout": ind}
    ind2 = {"class": "H5D_CHUNKED_REF_INDIRECT", "dims": [8, 10], "chunk_table": TABLE_ID}
    eff, _ = creation_layout(I32, simple([24, 10]), {"layout": ind2}, MIN, MAX)
    assert eff["dims"] == [8, 10]
    con = {"class": "H5D_CONTIGUOUS_REF", "file_uri": "hsdstest/ref/sample.h5",
           "offset": 2048, "size": 960}
    eff, stored = creation_layout(I32, simple([24, 10]), {"layout": con}, MIN, MAX)
    assert eff == {"class": "H5D_CHUNKED", "dims": [24, 10]} and stored == {"layout": con}
    eff, _ = creation_layout(F32, simple([50000, 8000000]), {"layout": con}, MIN, MAX)
    assert eff["dims"] == [1, 2000000]          # the fixed reading limit (STORAGE.md §7)
    eff, _ = creation_layout(F32, SCALAR, {"layout": con}, MIN, MAX)
    assert eff["dims"] == [1]


@pytest.mark.parametrize("type_json, shape, props, stored_layout", [
    # server-chosen (STORAGE.md §4.3)
    (F32, SCALAR, {}, {"class": "H5D_CONTIGUOUS"}),
    ({"class": "H5T_INTEGER", "base": "H5T_STD_I64LE"}, simple([4, 5]), {},
     {"class": "H5D_CONTIGUOUS"}),
    (VSTR, simple([8]), {}, {"class": "H5D_CONTIGUOUS"}),
    (F32, simple([10]), {"filters": [{"class": "H5Z_FILTER_DEFLATE", "id": 1,
                                      "name": "gzip"}]},
     {"class": "H5D_CHUNKED", "dims": [10]}),
    (I32, simple([10], [0]), {}, {"class": "H5D_CHUNKED", "dims": [262144]}),
    (I32, simple([10], [10]), {}, {"class": "H5D_CHUNKED", "dims": [10]}),   # resizable
    (F32, simple([3000, 4000]), {}, {"class": "H5D_CHUNKED", "dims": [750, 1000]}),
    (F32, simple([512, 512]), {}, {"class": "H5D_CHUNKED", "dims": [512, 512]}),  # = min
    (F32, simple([0, 10]), {}, {"class": "H5D_CHUNKED", "dims": [1, 10]}),
    # requested
    (F32, simple([190, 290]), {"layout": {"class": "H5D_CHUNKED", "dims": [50, 100]}},
     {"class": "H5D_CHUNKED", "dims": [190, 290]}),
    (I32, simple([64]), {"layout": {"class": "H5D_CHUNKED", "dims": [8],
                                    "partition_count": 3}},
     {"class": "H5D_CHUNKED", "dims": [64], "partition_count": 3}),
    (F32, simple([10, 20]), {"layout": {"class": "H5D_CONTIGUOUS"}},
     {"class": "H5D_CONTIGUOUS"}),
    (F32, simple([10, 20]), {"layout": {"class": "H5D_COMPACT"}},
     {"class": "H5D_CONTIGUOUS"}),
    (F32, SCALAR, {"layout": {"class": "H5D_COMPACT"}}, {"class": "H5D_CONTIGUOUS"}),
    (F32, simple([3000, 4000]), {"layout": {"class": "H5D_CONTIGUOUS"}},
     {"class": "H5D_CHUNKED", "dims": [750, 1000]}),
    (F32, simple([10, 20], [10, 40]), {}, {"class": "H5D_CHUNKED", "dims": [10, 40]}),
    (F32, simple([10]), {"layout": {}}, {"class": "H5D_CONTIGUOUS"}),
])
def test_stored_layout(type_json, shape, props, stored_layout):
    extra = {"fillValue": 7, "CreateOrder": 1, "allocTime": "H5D_ALLOC_TIME_INCR",
             "big": {"nested": [1, 2, {"x": "y"}] * 50}}
    request = {**props, **extra}
    before = copy.deepcopy(request)
    eff, stored = creation_layout(type_json, shape, request, MIN, MAX)
    assert request == before                               # the input is not changed
    assert stored["layout"] == stored_layout
    assert {k: v for k, v in stored.items() if k != "layout"} == \
        {k: v for k, v in before.items() if k != "layout"}
    # what is stored reads back (chunk_dims_of) as the effective layout
    doc = {"type": type_json, "shape": shape, "creationProperties": stored}
    assert list(chunk_dims_of(doc)) == eff["dims"]


def test_null_space_keeps_props():
    props = {"fillValue": 1, "layout": {"class": "H5D_CONTIGUOUS"}}
    assert creation_layout(F32, NULL, dict(props), MIN, MAX) == (None, props)


def test_partition_count_from_config():
    eff, stored = creation_layout(I32, simple([10**6]), {}, 1000, 4000,
                                  max_chunks_per_folder=100)
    assert stored["layout"]["dims"] == [977]          # 3908 bytes
    assert stored["layout"]["partition_count"] == 11  # ceil(1024 chunks / 100)
    assert eff["partition_count"] == 11
    _, stored = creation_layout(I32, simple([10**6]), {}, 1000, 4000)
    assert "partition_count" not in stored["layout"]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_stored_layout_reads_back_as_effective(data):
    rank = data.draw(st.integers(0, 3))
    dims = data.draw(st.lists(st.integers(0, 5000), min_size=rank, max_size=rank))
    shape = simple(dims) if rank else SCALAR
    if rank and data.draw(st.booleans()):
        shape["maxdims"] = [data.draw(st.sampled_from([0, n, n * 3, "H5S_UNLIMITED"]))
                            for n in dims]
    type_json = data.draw(st.sampled_from([F32, I32, VSTR, CMPD24, "H5T_STD_U8LE"]))
    props = {}
    kind = data.draw(st.sampled_from(["none", "chunked", "contiguous", "compact"]))
    if kind == "chunked" and rank:
        limits = [m if isinstance(m, int) and m else (n if "maxdims" not in shape else 10**4)
                  for m, n in zip(shape.get("maxdims") or dims, dims)]
        if all(limits):
            props["layout"] = {"class": "H5D_CHUNKED",
                               "dims": [data.draw(st.integers(1, n)) for n in limits]}
    elif kind in ("contiguous", "compact"):
        props["layout"] = {"class": "H5D_" + kind.upper()}
    if data.draw(st.booleans()):
        props["filters"] = [{"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip"}]
    if kind in ("contiguous", "compact") and "maxdims" in shape:
        with pytest.raises(BadRequest):           # as HSDS 1.0.2: maxdims need chunks
            creation_layout(type_json, shape, props, MIN, MAX)
        return
    eff, stored = creation_layout(type_json, shape, props, MIN, MAX)
    doc = {"type": type_json, "shape": shape, "creationProperties": stored}
    assert list(chunk_dims_of(doc)) == eff["dims"]
    assert all(c >= 1 for c in eff["dims"])
    if stored["layout"]["class"] == "H5D_CONTIGUOUS" and rank:
        assert "maxdims" not in shape            # a fixed extent: the grid never changes


# ============================================================================
# reading stored datasets: the HSDS 1.0.2 fixture, 0.9 documents, partitions
# ============================================================================

def fixture_datasets():
    expected = json.loads((FIXTURE / "expected.json").read_text())
    out = []
    for path, obj in sorted(expected["objects"].items()):
        if obj.get("kind") == "dataset":
            out.append((path, obj))
    return out


@pytest.mark.parametrize("path, obj", fixture_datasets(), ids=[p for p, _ in
                                                               fixture_datasets()])
def test_fixture_chunk_dims(path, obj):
    doc = json.loads((FIXTURE / "hsdstest" / obj["key"]).read_text())
    dims = obj["shape"].get("dims")
    layout = obj["layout"]
    got = chunk_dims_of(doc)
    if layout["class"].startswith("H5D_CHUNKED"):
        assert got == tuple(layout["dims"])
    elif dims is None:
        assert got == (1,)
    else:
        assert got == tuple(dims)
    # every stored chunk key lies on the grid
    grid = [-(-n // c) for n, c in zip(dims or [1], got)]
    for key in obj["chunk_keys"]:
        index = [int(i) for i in key.split("/")[-1].split("_")]
        assert all(0 <= i < g for i, g in zip(index, grid)), key


def test_fixture_server_chosen_layouts_match():
    """Datasets the fixture created without a layout are stored as HSDS 1.0.2 did."""
    checked = 0
    for path, obj in fixture_datasets():
        doc = json.loads((FIXTURE / "hsdstest" / obj["key"]).read_text())
        if doc["creationProperties"]["layout"] != {"class": "H5D_CONTIGUOUS"}:
            continue
        props = {k: v for k, v in doc["creationProperties"].items() if k != "layout"}
        shape = doc["shape"]
        _, stored = creation_layout(doc["type"], shape, props, MIN, MAX)
        assert stored["layout"] == {"class": "H5D_CONTIGUOUS"}, path
        checked += 1
    assert checked >= 8


def test_fixture_partitions():
    obj = dict(fixture_datasets())["/g1/partitioned_i4"]
    doc = json.loads((FIXTURE / "hsdstest" / obj["key"]).read_text())
    count = partition_count_of(doc)
    assert count == 3
    for key in obj["chunk_keys"]:
        folder, index = key.split("/")
        assert folder == f"p{partition_of((int(index),), count)}"
    assert [partition_of((i,), 3) for i in range(8)] == [0, 2, 1, 0, 2, 1, 0, 2]
    assert partition_of((1, 1), 5) == (29 + 31) % 5
    assert partition_of(tuple([1] * 11), 1000) == (sum([29, 31, 37, 41, 43, 47, 53, 59, 61,
                                                        67]) + 29) % 1000


def test_partition_count_absent_or_trivial():
    doc = {"shape": simple([10]), "type": I32,
           "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [5]}}}
    assert partition_count_of(doc) == 0
    doc["creationProperties"]["layout"]["partition_count"] = 1
    assert partition_count_of(doc) == 0


def test_hsds09_documents():
    # top-level layout (HSDS 0.9) wins over the request in creationProperties
    doc = {"shape": simple([190, 290]), "type": F32,
           "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [50, 100]}},
           "layout": {"class": "H5D_CHUNKED", "dims": [190, 290]}}
    assert chunk_dims_of(doc) == (190, 290)
    doc["creationProperties"]["layout"] = {"class": "H5D_CONTIGUOUS"}
    assert chunk_dims_of(doc) == (190, 290)
    doc["layout"] = {"class": "H5D_CHUNKED", "dims": [95, 290], "partition_count": 4}
    assert chunk_dims_of(doc) == (95, 290) and partition_count_of(doc) == 4
    # ... unless creationProperties holds a reference layout
    doc["creationProperties"]["layout"] = {
        "class": "H5D_CHUNKED_REF", "file_uri": "b/f", "dims": [10, 290], "chunks": {}}
    assert chunk_dims_of(doc) == (10, 290)
    assert layout_json_of(doc)["class"] == "H5D_CHUNKED_REF"
    doc["creationProperties"]["layout"] = {"class": "H5D_CONTIGUOUS_REF", "file_uri": "b/f",
                                           "offset": 0, "size": 1}
    assert chunk_dims_of(doc) == (190, 290)
    # a 0.9 compact dataset, and documents without any layout
    assert chunk_dims_of({"shape": simple([7, 3]), "type": F32,
                          "layout": {"class": "H5D_COMPACT"}}) == (7, 3)
    assert chunk_dims_of({"shape": simple([0, 3]), "type": F32}) == (1, 3)
    assert chunk_dims_of({"shape": SCALAR, "type": F32}) == (1,)
    assert chunk_dims_of({"shape": NULL, "type": F32, "creationProperties": {}}) is None
    assert chunk_dims_of({"shape": NULL, "type": F32,
                          "creationProperties": {"layout": {}}}) is None


def test_contiguous_ref_reading_uses_the_fixed_limit():
    doc = {"shape": simple([50000, 8000000]), "type": F32, "creationProperties": {
        "layout": {"class": "H5D_CONTIGUOUS_REF", "file_uri": "b/f", "offset": 0,
                   "size": 1}}}
    assert chunk_dims_of(doc) == (1, 2000000)
    doc["shape"] = simple([0, 10])
    assert chunk_dims_of(doc) == (1, 10)


# ============================================================================
# filters (§10.3)
# ============================================================================

@pytest.mark.parametrize("entry, expected", [
    (1, {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip"}),
    (2, {"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "shuffle"}),
    (32015, {"class": "H5Z_FILTER_ZSTD", "id": 32015, "name": "zstd"}),
    ("gzip", {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip"}),
    ("deflate", {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "deflate"}),
    ("H5Z_FILTER_DEFLATE", {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip"}),
    ("shuffle", {"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "shuffle"}),
    ("fletcher32", {"class": "H5Z_FILTER_FLETCHER32", "id": 3, "name": "fletcher32"}),
    ("nbit", {"class": "H5Z_FILTER_NBIT", "id": 5, "name": "nbit"}),
    ("scaleoffset", {"class": "H5Z_FILTER_SCALEOFFSET", "id": 6, "name": "scaleoffset"}),
    ("H5Z_FILTER_LZ4", {"class": "H5Z_FILTER_LZ4", "id": 32004, "name": "lz4"}),
    ({"class": "H5Z_FILTER_DEFLATE", "level": 9},
     {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip", "level": 9}),
    ({"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "deflate"},
     {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "deflate"}),
    ({"class": "H5Z_FILTER_USER", "name": "lz4", "level": 5},
     {"class": "H5Z_FILTER_USER", "id": 32004, "name": "lz4", "level": 5}),
    ({"class": "H5Z_FILTER_USER", "id": 32015},
     {"class": "H5Z_FILTER_USER", "id": 32015, "name": "zstd"}),
    ({"class": "H5Z_FILTER_BLOSC", "id": 32001, "name": "blosclz", "clevel": 3},
     {"class": "H5Z_FILTER_BLOSC", "id": 32001, "name": "blosclz", "clevel": 3}),
    ({"class": "H5Z_FILTER_LZ4HC", "name": "something"},
     {"class": "H5Z_FILTER_LZ4HC", "id": 32005, "name": "lz4hc"}),
    ("bitshuffle", {"class": "H5Z_FILTER_BITSHUFFLE", "id": 32008, "name": "bitshuffle"}),
    (32008, {"class": "H5Z_FILTER_BITSHUFFLE", "id": 32008, "name": "bitshuffle"}),
    ({"class": "H5Z_FILTER_BITSHUFFLE"},
     {"class": "H5Z_FILTER_BITSHUFFLE", "id": 32008, "name": "bitshuffle"}),
    ({"class": "H5Z_FILTER_SHUFFLE", "name": "bitshuffle"},      # HSDS 1.0.2's bit shuffle
     {"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "bitshuffle"}),
])
def test_filter_forms(entry, expected):
    assert normalize_filters([entry], DEFAULT_COMPRESSORS) == [expected]


def test_every_compressor_as_a_bare_string():
    compressors = list(DEFAULT_COMPRESSORS) + ["snappy"]
    for name in compressors:
        [obj] = normalize_filters([name], compressors)
        assert obj["name"] == name or (name in ("gzip", "deflate")
                                       and obj["name"] in ("gzip", "deflate"))
    assert normalize_filters([], None) == []
    assert [f["name"] for f in normalize_filters(["shuffle", "gzip"], None)] == \
        ["shuffle", "gzip"]


@pytest.mark.parametrize("filters, compressors", [
    ("gzip", None),                                          # not a list
    ({"class": "H5Z_FILTER_DEFLATE"}, None),
    ([{"id": 1}], None),                                     # object without class
    ([{"class": 1}], None),
    ([{"class": "H5Z_FILTER_DEFLATE", "id": 2}], None),      # contradicting id
    ([{"class": "H5Z_FILTER_DEFLATE", "name": "lz4"}], None),  # contradicting name
    ([{"class": "H5Z_FILTER_DEFLATE", "id": "1"}], None),
    ([{"class": "H5Z_FILTER_USER"}], None),
    ([{"class": "H5Z_FILTER_USER", "name": "shrink-o-rama"}], None),
    ([{"class": "H5Z_FILTER_USER", "id": 99999}], None),
    ([{"class": "H5Z_FILTER_USER", "id": 32004, "name": "zstd"}], None),
    ([{"class": "H5Z_FILTER_NOPE"}], None),
    (["szip"], None),                                        # unsupported
    (["lzf"], None),
    (["shrink-o-rama"], None),
    ([4], None),
    ([32000], None),
    ([12345], None),
    ([{"class": "H5Z_FILTER_USER", "name": "lzf"}], None),
    (["snappy"], None),                                      # not offered by default
    (["zstd"], ["gzip"]),                                    # not offered here
    ([True], None),
    ([None], None),
    ([1.5], None),
    ([["gzip"]], None),
])
def test_filters_400(filters, compressors):
    with pytest.raises(BadRequest):
        normalize_filters(filters, compressors)


# ============================================================================
# fill value (§10.4)
# ============================================================================

CMPD = {"class": "H5T_COMPOUND", "fields": [
    {"name": "s", "type": {"class": "H5T_STRING", "length": 10, "charSet": "H5T_CSET_ASCII",
                           "strPad": "H5T_STR_NULLPAD"}},
    {"name": "n", "type": "H5T_STD_I32LE"}]}


@pytest.mark.parametrize("props, type_json", [
    ({}, I32),
    ({"fillValue": None}, I32),
    ({"fillValue": None, "fillValue_encoding": "base64"}, I32),
    ({"fillValue": 42}, I32),
    ({"fillValue": float("nan")}, F32),
    ({"fillValue": "nan"}, F32),
    ({"fillValue": -1.5}, F32),
    ({"fillValue": ["blank", -999]}, CMPD),
    ({"fillValue": "AADAfw==", "fillValue_encoding": "base64"}, F32),
    ({"fillValue": "x" * 1000}, {"class": "H5T_STRING", "length": 1000,
                                 "charSet": "H5T_CSET_ASCII", "strPad": "H5T_STR_NULLPAD"}),
    ({"fillValue": "abc"}, VSTR),
])
def test_fill_value_ok(props, type_json):
    check_fill_value(props, type_json)


@pytest.mark.parametrize("props, type_json", [
    ({"fillValue": "XXXX"}, I32),
    ({"fillValue": float("nan")}, I32),
    ({"fillValue": [1, 2]}, I32),
    ({"fillValue": 2**40}, I32),
    ({"fillValue": {"a": 1}}, I32),
    ({"fillValue": ["blank"]}, CMPD),
    ({"fillValue": "AADAfw==", "fillValue_encoding": "hex"}, F32),
    ({"fillValue": 5, "fillValue_encoding": "base64"}, F32),
    ({"fillValue": "AADA", "fillValue_encoding": "base64"}, F32),     # wrong size
    ({"fillValue": "!!!", "fillValue_encoding": "base64"}, F32),
])
def test_fill_value_400(props, type_json):
    with pytest.raises(BadRequest):
        check_fill_value(props, type_json)


# ============================================================================
# resize (§10.8)
# ============================================================================

@pytest.mark.parametrize("shape, body, new, selection", [
    (simple([10], [20]), {"shape": [15]}, [15], "[10:15]"),
    (simple([10], [20]), {"shape": 15}, [15], "[10:15]"),
    (simple([10], [0]), {"shape": [10**9]}, [10**9], "[10:1000000000]"),
    (simple([10, 5], [0, 5]), {"shape": [15, 5]}, [15, 5], "[10:15,:]"),
    (simple([4, 20], ["H5S_UNLIMITED", "H5S_UNLIMITED"]), {"shape": [4, 30]}, [4, 30],
     "[:,20:30]"),
    (simple([0, 3, 3], [0, 3, 3]), {"extend": 5}, [5, 3, 3], "[0:5,:,:]"),
    (simple([4, 20], [0, 0]), {"extend": 10, "extend_dim": 1}, [4, 30], "[:,20:30]"),
    (simple([10], [20]), {"extend": 10}, [20], "[10:20]"),
    (simple([10], [20]), {"shape": [5]}, [5], None),                  # shrink
    (simple([10], [20]), {"shape": [10]}, [10], None),                # unchanged
    (simple([10, 5], [0, 10]), {"shape": [12, 7]}, [12, 7], None),    # two grew
    (simple([10, 5], [0, 10]), {"shape": [12, 3]}, [12, 3], None),    # grew and shrank
    (simple([10], [20]), {"extend": 2, "extend_dim": None}, [12], "[10:12]"),
])
def test_resize_plan(shape, body, new, selection):
    assert resize_plan(shape, body) == (new, selection)


@pytest.mark.parametrize("shape, body", [
    (simple([10], [20]), {}),                                        # neither
    (simple([10], [20]), {"shape": [12], "extend": 2}),              # both
    (simple([10], [20]), {"extend": 0}),
    (simple([10], [20]), {"extend": -3}),
    (simple([10], [20]), {"extend": "3"}),
    (simple([10], [20]), {"extend": 2.0}),
    (simple([10], [20]), {"extend": True}),
    (simple([10], [20]), {"extend": 2, "extend_dim": 1}),
    (simple([10], [20]), {"extend": 2, "extend_dim": -1}),
    (simple([10], [20]), {"extend": 2, "extend_dim": "0"}),
    (simple([10]), {"shape": [12]}),                                 # no maxdims
    (SCALAR, {"shape": [1]}),
    (NULL, {"shape": [1]}),
    (simple([10, 5], [0, 5]), {"shape": [12]}),                      # rank
    (simple([10], [20]), {"shape": [-1]}),
    (simple([10], [20]), {"shape": [1.5]}),
    (simple([10], [20]), {"shape": "12"}),
    (simple([10], [20]), {"shape": {"class": "H5S_SIMPLE"}}),
    (simple([10], [20]), [12]),
])
def test_resize_400(shape, body):
    with pytest.raises(BadRequest):
        resize_plan(shape, body)


@pytest.mark.parametrize("shape, body", [
    (simple([10], [20]), {"shape": [21]}),
    (simple([10, 5], [0, 5]), {"shape": [100, 6]}),
    (simple([10], [20]), {"extend": 11}),
    (simple([4, 20], [0, 25]), {"extend": 10, "extend_dim": 1}),
])
def test_resize_409(shape, body):
    with pytest.raises(Conflict):
        resize_plan(shape, body)
