"""server.core.selection: parsing (REST_API.md §11.1, §11.3, §11.4) and the
selection -> chunk task mapping, checked against numpy's own indexing."""
import json
import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.core.errors import BadRequest
from server.core.selection import (ChunkTask, Selection, broadcast_block, broadcast_count_ok,
                                   chunk_grid, chunk_indices_in, chunk_origin, chunk_tasks,
                                   from_start_stop, pages, parse_points, parse_select,
                                   point_chunk_tasks, point_tasks, whole)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ============================================================================
# helpers: chunked storage simulated with numpy
# ============================================================================

def chunk_of(full: np.ndarray, index, chunk_dims) -> np.ndarray:
    """The full-size chunk array at `index` (edge chunks padded with -1)."""
    origin = chunk_origin(index, chunk_dims)
    chunk = np.full(chunk_dims, -1, dtype=full.dtype)
    src = full[tuple(slice(o, o + c) for o, c in zip(origin, chunk_dims))]
    chunk[tuple(slice(0, n) for n in src.shape)] = src
    return chunk


def assemble(full, sel, chunk_dims, via_json=True) -> np.ndarray:
    out = np.full(sel.shape, -7, dtype=full.dtype)
    for task in chunk_tasks(sel, chunk_dims):
        if via_json:
            task = ChunkTask.from_json(json.loads(json.dumps(task.to_json())))
        piece = chunk_of(full, task.index, chunk_dims)[task.chunk_sel]
        assert piece.shape == task.shape
        assert out[task.out_sel].shape == task.shape
        out[task.out_sel] = piece
    return out


def scatter(full, sel, chunk_dims, src) -> np.ndarray:
    """Write src through the chunk tasks into a chunked copy of full; reassemble."""
    grid = chunk_grid(full.shape, chunk_dims)
    chunks = {idx: chunk_of(full, idx, chunk_dims) for idx in chunk_indices_in(full.shape,
                                                                               chunk_dims)}
    for task in chunk_tasks(sel, chunk_dims):
        task = ChunkTask.from_json(task.to_json())
        chunks[task.index][task.chunk_sel] = src[task.out_sel]
    result = np.empty_like(full)
    for idx, chunk in chunks.items():
        origin = chunk_origin(idx, chunk_dims)
        region = tuple(slice(o, min(o + c, n)) for o, c, n in zip(origin, chunk_dims,
                                                                  full.shape))
        result[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]
    assert len(chunks) == math.prod(grid)
    return result


def numpy_reference(full, parts):
    """numpy's own result for per-dimension parts, with the paired coordinate axis
    placed at the first coordinate list (numpy moves it to the front when the
    coordinate arrays are not adjacent)."""
    result = full[tuple(parts)]
    arr_dims = [d for d, p in enumerate(parts) if not isinstance(p, slice)]
    if len(arr_dims) > 1 and arr_dims[-1] - arr_dims[0] != len(arr_dims) - 1:
        result = np.moveaxis(result, 0, arr_dims[0])
    return result


def numpy_assign(full, parts, src):
    arr_dims = [d for d, p in enumerate(parts) if not isinstance(p, slice)]
    if len(arr_dims) > 1 and arr_dims[-1] - arr_dims[0] != len(arr_dims) - 1:
        src = np.moveaxis(src, arr_dims[0], 0)
    full[tuple(parts)] = src


# ============================================================================
# strategies
# ============================================================================

@st.composite
def range_text(draw, extent):
    start = draw(st.integers(0, extent - 1))
    stop = draw(st.integers(start + 1, extent))
    step = draw(st.integers(1, extent + 3))
    a = "" if start == 0 and draw(st.booleans()) else str(start)
    b = "" if stop == extent and draw(st.booleans()) else str(stop)
    form = draw(st.sampled_from(["two", "three", "empty_step"])) if step == 1 else "three"
    if form == "two":
        text = f"{a}:{b}"
    elif form == "empty_step":
        text = f"{a}:{b}:"
    else:
        text = f"{a}:{b}:{step}"
    return text, slice(start, stop, step)


@st.composite
def selections(draw, max_rank=4, allow_dups=True):
    """(dims, chunk dims, text form, JSON list form, numpy parts). Rank 1-3 with
    extents up to 40, and rank 4 (small extents) where paired coordinate lists can be
    separated by a range with the first list not in front."""
    rank = draw(st.integers(1, max_rank))
    top = 40 if rank <= 3 else 9
    dims = tuple(draw(st.lists(st.integers(1, top), min_size=rank, max_size=rank)))
    chunk_dims = tuple(draw(st.integers(1, n + 5)) for n in dims)
    kinds = draw(st.lists(st.sampled_from(["range", "index", "list"]), min_size=rank,
                          max_size=rank))
    k = draw(st.integers(1, 8))
    if not allow_dups and "list" in kinds:
        # distinct coordinates in each list -> distinct paired points
        k = min([k] + [n for n, kind in zip(dims, kinds) if kind == "list"])
    texts, jsons, parts = [], [], []
    for extent, kind in zip(dims, kinds):
        if kind == "range":
            text, part = draw(range_text(extent))
            texts.append(text)
            jsons.append(text if draw(st.booleans()) else
                         f"{part.start}:{part.stop}:{part.step}")
            parts.append(part)
        elif kind == "index":
            i = draw(st.integers(0, extent - 1))
            texts.append(str(i))
            jsons.append(i)
            parts.append(slice(i, i + 1, 1))
        else:
            if allow_dups:
                coords = draw(st.lists(st.integers(0, extent - 1), min_size=k, max_size=k))
            else:
                coords = draw(st.permutations(range(extent)))[:k]
            texts.append("[" + ", ".join(map(str, coords)) + "]")
            jsons.append(list(coords))
            parts.append(np.asarray(coords, dtype=np.int64))
    text = "[ " + " , ".join(texts) + " ]"
    return dims, chunk_dims, text, jsons, parts


def full_array(dims):
    return np.arange(math.prod(dims), dtype=np.int64).reshape(dims)


# ============================================================================
# properties
# ============================================================================

@SETTINGS
@given(selections())
def test_read_assembly_matches_numpy(case):
    dims, chunk_dims, text, jsons, parts = case
    full = full_array(dims)
    ref = numpy_reference(full, parts)
    for sel in (parse_select(text, dims), parse_select(jsons, dims)):
        assert sel.shape == ref.shape
        assert sel.count == ref.size
        assert np.array_equal(assemble(full, sel, chunk_dims), ref)
        assert np.array_equal(full[sel.numpy_index()], ref)
        assert parse_select(sel.to_text(), dims) == sel


@SETTINGS
@given(selections())
def test_tasks_touch_exactly_the_needed_chunks_in_c_order(case):
    dims, chunk_dims, text, _, parts = case
    sel = parse_select(text, dims)
    tasks = chunk_tasks(sel, chunk_dims)
    indices = [t.index for t in tasks]
    assert indices == sorted(indices)
    assert len(set(indices)) == len(indices)
    assert all(t.count > 0 for t in tasks)
    assert sum(t.count for t in tasks) == sel.count
    # the chunks holding the selected elements, computed element by element
    coords = np.indices(dims).reshape(len(dims), -1).T
    chosen = numpy_reference(np.arange(len(coords)).reshape(dims), parts).reshape(-1)
    expected = {tuple(int(x) for x in c) for c in coords[chosen] // np.asarray(chunk_dims)}
    assert set(indices) == expected


@SETTINGS
@given(selections(allow_dups=False), st.integers(0, 2**31))
def test_scatter_write_matches_numpy_assignment(case, seed):
    dims, chunk_dims, text, _, parts = case
    full = full_array(dims)
    sel = parse_select(text, dims)
    src = np.random.default_rng(seed).integers(-10**6, -1, size=sel.shape)
    expected = full.copy()
    numpy_assign(expected, parts, src)
    assert np.array_equal(scatter(full, sel, chunk_dims, src), expected)


@SETTINGS
@given(st.data())
def test_point_tasks_match_fancy_indexing(data):
    rank = data.draw(st.integers(1, 3))
    dims = tuple(data.draw(st.lists(st.integers(1, 40), min_size=rank, max_size=rank)))
    chunk_dims = tuple(data.draw(st.integers(1, n + 5)) for n in dims)
    n = data.draw(st.integers(0, 60))
    pts = [[data.draw(st.integers(0, e - 1)) for e in dims] for _ in range(n)]
    json_points = [p[0] for p in pts] if rank == 1 and data.draw(st.booleans()) else pts
    points = parse_points(json_points, dims)
    assert points.shape == (n, rank)
    binary = parse_points(np.asarray(pts, dtype="<u8").reshape(-1), dims)
    assert np.array_equal(points, binary)
    full = full_array(dims)
    expected = full[tuple(points.T)]
    out = np.full(n, -1, dtype=full.dtype)
    seen = []
    for index, in_chunk, positions in point_tasks(points, chunk_dims):
        chunk = chunk_of(full, index, chunk_dims)
        out[positions] = chunk[tuple(in_chunk.T)]
        seen.append(index)
        assert np.all(in_chunk < np.asarray(chunk_dims)) and np.all(in_chunk >= 0)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert np.array_equal(out, expected)
    out2 = np.full(n, -1, dtype=full.dtype)
    for task in point_chunk_tasks(points, chunk_dims):
        task = ChunkTask.from_json(json.loads(json.dumps(task.to_json())))
        out2[task.out_sel] = chunk_of(full, task.index, chunk_dims)[task.chunk_sel]
    assert np.array_equal(out2, expected)


@SETTINGS
@given(selections(), st.integers(1, 400))
def test_pages_cover_the_selection_in_row_major_order(case, max_elements):
    dims, chunk_dims, text, _, parts = case
    full = full_array(dims)
    sel = parse_select(text, dims)
    ref = numpy_reference(full, parts)
    out = np.full(sel.shape, -1, dtype=full.dtype)
    covered = np.zeros(sel.shape, dtype=np.int64)
    streamed = []
    for page, out_sel in pages(sel, chunk_dims, max_elements):
        assert page.count <= max_elements
        piece = assemble(full, page, chunk_dims, via_json=False)
        assert out[out_sel].shape == piece.shape
        out[out_sel] = piece
        covered[out_sel] += 1
        streamed.append(piece.reshape(-1))
    assert np.array_equal(out, ref)
    assert np.all(covered == 1)
    assert np.array_equal(np.concatenate(streamed), ref.reshape(-1))


# ============================================================================
# parsing: every form
# ============================================================================

def parts_of(sel):
    return [(p.start, p.stop, p.step) if isinstance(p, slice) else p.tolist()
            for p in sel.parts]


@pytest.mark.parametrize("text, expected, shape", [
    ("[2:8]", [(2, 8, 1)], (6,)),
    ("[2:8:3]", [(2, 8, 3)], (2,)),
    ("[2:8:]", [(2, 8, 1)], (6,)),
    ("[:]", [(0, 10, 1)], (10,)),
    ("[::]", [(0, 10, 1)], (10,)),
    ("[::4]", [(0, 10, 4)], (3,)),
    ("[3:]", [(3, 10, 1)], (7,)),
    ("[:4]", [(0, 4, 1)], (4,)),
    ("[7]", [(7, 8, 1)], (1,)),
    ("[0:10:1]", [(0, 10, 1)], (10,)),
    ("[ 1 : 9 : 2 ]", [(1, 9, 2)], (4,)),
    ("[0:10:25]", [(0, 10, 25)], (1,)),
    ("[[3,1,1,9]]", [[3, 1, 1, 9]], (4,)),
    ("[ [ 3 , 1 ] ]", [[3, 1]], (2,)),
])
def test_text_forms_1d(text, expected, shape):
    sel = parse_select(text, (10,))
    assert parts_of(sel) == expected
    assert sel.shape == shape
    assert sel.count == math.prod(shape)


def test_text_forms_nd():
    sel = parse_select("[0:4,[7,4,2]]", (10, 10))
    assert sel.shape == (4, 3)
    sel = parse_select("[[0,1,3],[7,4,2]]", (10, 10))
    assert sel.shape == (3,)
    assert sel.list_dims == (0, 1)
    sel = parse_select("[2:3,0:4]", (10, 10))
    assert sel.shape == (1, 4)
    sel = parse_select("[5,:,[1,2],1:3,[0,0]]", (6, 7, 8, 9, 10))
    assert sel.shape == (1, 7, 2, 2)
    assert sel.axis_dims() == [[0], [1], [2, 4], [3]]


def test_json_list_forms():
    dims = (10, 20, 30)
    sel = parse_select([[1, 5, 2], "2:8", 4], dims)
    assert parts_of(sel) == [[1, 5, 2], (2, 8, 1), (4, 5, 1)]
    sel = parse_select([":", "::2", "3:"], dims)
    assert parts_of(sel) == [(0, 10, 1), (0, 20, 2), (3, 30, 1)]
    sel = parse_select([np.int64(3), np.array([1, 2]), "[4, 5]"], dims)
    assert parts_of(sel) == [(3, 4, 1), [1, 2], [4, 5]]


def test_whole_and_scalar():
    sel = parse_select(None, (4, 5))
    assert isinstance(sel, Selection)
    assert sel == whole((4, 5)) and sel.is_whole()
    assert sel.shape == (4, 5) and sel.count == 20
    scalar = parse_select(None, ())
    assert (scalar.dims, scalar.parts, scalar.shape, scalar.count) == ((), (), (), 1)
    assert parse_select("[]", ()) == scalar
    assert parse_select([], ()) == scalar
    assert scalar.to_text() == "[]"
    empty = whole((0, 3))
    assert empty.count == 0 and chunk_tasks(empty, (1, 3)) == []
    assert parse_select("[:, :]", (0, 3)).count == 0


def test_from_start_stop():
    dims = (10, 20)
    sel = from_start_stop([1, 2], [5, 20], [2, 3], dims)
    assert parts_of(sel) == [(1, 5, 2), (2, 20, 3)]
    assert from_start_stop([0, 0], [10, 20], None, dims) == whole(dims)
    assert parts_of(from_start_stop(3, 7, None, (10,))) == [(3, 7, 1)]
    assert parts_of(from_start_stop(3, 7, 2, (10,))) == [(3, 7, 2)]


def test_to_text_round_trip():
    dims = (10, 12)
    sel = parse_select("[1:9:2,[3,3,0]]", dims)
    assert sel.to_text() == "[1:9:2,[3,3,0]]"
    assert parse_select(sel.to_text(), dims) == sel
    assert "Selection(" in repr(sel)


# ============================================================================
# parsing: every 400
# ============================================================================

@pytest.mark.parametrize("value, dims", [
    ("[2:18]", (10,)),                       # stop out of range
    ("[0:12,0:12]", (10, 10)),               # out of range in both
    ("[0:5]", (10, 10)),                     # wrong rank (too few)
    ("[0:5,1,2]", (10, 10)),                 # wrong rank (too many)
    ("[5:5]", (10,)),                        # stop == start
    ("[6:5]", (10,)),                        # stop < start
    ("[0:5:0]", (10,)),                      # step 0
    ("[0:5:-1]", (10,)),                     # negative step
    ("[-1:5]", (10,)),                       # negative start
    ("[10:]", (10,)),                        # start == extent
    ("[:0]", (10,)),                         # stop 0 with default start
    ("[10]", (10,)),                         # index out of range
    ("[-1]", (10,)),
    ("[[1,10]]", (10,)),                     # coordinate out of range
    ("[[]]", (10,)),                         # empty coordinate list
    ("[[1,2],[3]]", (10, 10)),               # coordinate lists of different lengths
    ("[[1,2],0:2,[3,4,5]]", (10, 10, 10)),
    ("[[1:3]]", (10,)),                      # ranges inside a coordinate list
    ("[[1,[2]]]", (10,)),                    # nested brackets
    ("[[1,2]", (10,)),                       # unbalanced
    ("[1,2]]", (10, 10)),
    ("0:5", (10,)),                          # no outer brackets
    ("(0:5)", (10,)),
    ("[0:5", (10,)),
    ("", (10,)),
    ("[]", (10,)),                           # rank 0 for a 1-D dataset
    ("[,]", (10, 10)),                       # empty dimensions
    ("[1,]", (10, 10)),
    ("[a:b]", (10,)),                        # not numbers
    ("[1.5]", (10,)),
    ("[0:5:1:1]", (10,)),                    # too many colons
    ("[0x3]", (10,)),
    ("[1e2]", (100,)),
    ("[99999999999999999999999]", (10,)),
    ("[[99999999999999999999999]]", (10,)),
    ("[0:5]", ()),                           # scalar dataset with a selection
    ([":"], (10, 10)),                       # JSON form: wrong rank
    ([[1, 2], [3]], (10, 10)),               # JSON form: lengths differ
    ([[1, 12]], (10,)),                      # JSON form: out of range
    ([[1.5]], (10,)),                        # JSON form: non-integer coordinate
    ([[True]], (10,)),
    ([True], (10,)),
    ([1.0], (10,)),
    ([{"a": 1}], (10,)),
    ([None], (10,)),
    (["2:18"], (10,)),
    ([[]], (10,)),
    ([[[1, 2]]], (10,)),
    ({"a": 1}, (10,)),
    (5, (10,)),
])
def test_select_400(value, dims):
    with pytest.raises(BadRequest):
        parse_select(value, dims)


@pytest.mark.parametrize("start, stop, step, dims", [
    ([0], [5], None, (10, 10)),              # wrong rank
    ([0, 0], [5], None, (10, 10)),
    (0, 11, None, (10,)),                    # out of range
    (5, 5, None, (10,)),                     # stop <= start
    (0, 5, 0, (10,)),                        # step 0
    (0, 5, [1, 1], (10,)),                   # step rank
    (-1, 5, None, (10,)),
    ("0", 5, None, (10,)),                   # not integers
    (0.5, 5, None, (10,)),
    (True, 5, None, (10,)),
    (None, 5, None, (10,)),
])
def test_start_stop_400(start, stop, step, dims):
    with pytest.raises(BadRequest):
        from_start_stop(start, stop, step, dims)


def test_points_forms():
    assert parse_points([3, 1, 3], (5,)).tolist() == [[3], [1], [3]]
    assert parse_points([[3], [1]], (5,)).tolist() == [[3], [1]]
    assert parse_points([[1, 2], [0, 4]], (2, 5)).tolist() == [[1, 2], [0, 4]]
    assert parse_points([], (2, 5)).shape == (0, 2)
    raw = np.asarray([1, 2, 0, 4], dtype="<u8").tobytes()
    assert parse_points(np.frombuffer(raw, "<u8"), (2, 5)).tolist() == [[1, 2], [0, 4]]
    assert parse_points(np.frombuffer(raw, "<u8"), (5,)).tolist() == [[1], [2], [0], [4]]
    assert parse_points(np.asarray([[1, 2]], np.uint64), (2, 5)).dtype == np.int64


@pytest.mark.parametrize("points, dims", [
    ([5], (5,)),                             # out of range
    ([-1], (5,)),
    ([[1, 2]], (5,)),                        # wrong rank
    ([1, 2], (5, 5)),
    ([[1, 2, 3]], (5, 5)),
    ([[1], [1, 2]], (5, 5)),                 # ragged
    ([[1, 2], 3], (5, 5)),
    ([1.5], (5,)),                           # not integers
    ([True, False], (5,)),
    (["1"], (5,)),
    ([[0, 5]], (5, 5)),
    ([2**70], (5,)),
    ("[1,2]", (5,)),
    ({"a": 1}, (5,)),
    ([1], ()),                               # scalar dataset
    (np.asarray([1, 2, 3], dtype="<u8"), (5, 5)),    # count not divisible by rank
    (np.asarray([1, 5], dtype="<u8"), (5, 5)),       # out of range
    (np.asarray([2**63 + 5], dtype="<u8"), (5,)),
])
def test_points_400(points, dims):
    with pytest.raises(BadRequest):
        parse_points(points, dims)


# ============================================================================
# chunk tasks: unit cases
# ============================================================================

def test_steps_skipping_whole_chunks():
    sel = parse_select("[0:100:25]", (100,))
    tasks = chunk_tasks(sel, (10,))
    assert [t.index for t in tasks] == [(0,), (2,), (5,), (7,)]
    assert [t.shape for t in tasks] == [(1,)] * 4
    sel = parse_select("[3:100:7]", (100,))
    tasks = chunk_tasks(sel, (10,))
    assert all(t.count > 0 for t in tasks)
    assert [t.index for t in tasks] == sorted({(x // 10,) for x in range(3, 100, 7)})


def test_coordinate_lists_are_grouped_by_chunk():
    sel = parse_select("[[9,0,15,1,9,30]]", (40,))
    tasks = chunk_tasks(sel, (10,))
    assert [t.index for t in tasks] == [(0,), (1,), (3,)]
    first = tasks[0]
    assert first.chunk[0].tolist() == [9, 0, 1, 9]
    assert first.out[0].tolist() == [0, 1, 3, 4]
    # a contiguous run of output positions becomes a slice
    sel = parse_select("[[1,2,3,25]]", (40,))
    tasks = chunk_tasks(sel, (10,))
    assert tasks[0].out[0] == slice(0, 3, 1)


def test_paired_non_adjacent_lists_keep_the_axis_in_place():
    full = full_array((6, 7, 8, 9))
    sel = parse_select("[1:5,[0,6,3],2:8:3,[8,0,4]]", full.shape)
    assert sel.shape == (4, 3, 2)
    assert np.array_equal(assemble(full, sel, (2, 3, 4, 5)),
                          numpy_reference(full, list(sel.parts)))


def test_edge_chunks_extend_past_the_dataset():
    full = full_array((7, 5))
    sel = parse_select("[5:7,3:5]", full.shape)
    tasks = chunk_tasks(sel, (4, 4))
    assert [t.index for t in tasks] == [(1, 0), (1, 1)]
    assert tasks[0].chunk == (slice(1, 3, 1), slice(3, 4, 1))
    assert np.array_equal(assemble(full, sel, (4, 4)), full[5:7, 3:5])


def test_scalar_task():
    full = np.array(3.5)
    tasks = chunk_tasks(whole(()), (1,))
    assert len(tasks) == 1
    task = ChunkTask.from_json(tasks[0].to_json())
    assert task.index == (0,) and task.shape == ()
    chunk = np.array([3.5])
    out = np.zeros(())
    out[task.out_sel] = chunk[task.chunk_sel]
    assert out == full
    chunk[task.chunk_sel] = np.array(7.0)[task.out_sel]
    assert chunk.tolist() == [7.0]
    assert chunk[task.chunk_sel].shape == ()


def test_task_json_is_compact():
    sel = parse_select("[0:4,[7,4,2]]", (10, 10))
    task = chunk_tasks(sel, (10, 10))[0]
    obj = task.to_json()
    assert obj == {"i": [0, 0], "c": [[0, 4, 1], [[7, 4, 2]]], "o": [[0, 4, 1], [0, 3, 1]],
                   "n": [4, 3]}
    assert ChunkTask.from_json(obj) == task
    for bad in ({}, {"i": [0], "c": [[1, 2]], "o": [], "n": [1]},
                {"i": [0], "c": [[0, 1, 0]], "o": [], "n": [1]},
                {"i": [0], "c": "x", "o": [], "n": [1]},
                {"i": [0], "c": [[["a"]]], "o": [], "n": [1]}):
        with pytest.raises(BadRequest):
            ChunkTask.from_json(bad)


def test_chunk_grid_helpers():
    assert chunk_grid((10, 0, 7), (3, 4, 7)) == (4, 0, 1)
    assert list(chunk_indices_in((5, 3), (3, 2))) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert chunk_origin((2, 3), (10, 4)) == (20, 12)
    with pytest.raises(BadRequest):
        chunk_tasks(whole((5,)), (0,))
    with pytest.raises(BadRequest):
        chunk_tasks(whole((5,)), (1, 1))


# ============================================================================
# paging
# ============================================================================

def test_pages_cut_at_chunk_boundaries():
    sel = whole((100, 10))
    result = list(pages(sel, (20, 10), 450))
    # 20-row chunks: 2 chunks (400 elements) fit per page
    assert [p.parts[0] for p, _ in result] == [slice(0, 40, 1), slice(40, 80, 1),
                                               slice(80, 100, 1)]
    assert [o for _, o in result][1] == (slice(40, 80), slice(0, 10))
    # one chunk row does not fit: pages of as many rows as fit
    result = list(pages(sel, (20, 10), 55))
    assert [p.shape[0] for p, _ in result][:5] == [5, 5, 5, 5, 5]
    assert sum(p.count for p, _ in result) == 1000


def test_pages_skip_leading_length_one_axes_and_recurse():
    sel = parse_select("[3,0:6,0:50]", (5, 6, 50))
    result = list(pages(sel, (1, 2, 50), 120))
    assert all(p.shape[0] == 1 for p, _ in result)
    assert [p.shape[1] for p, _ in result] == [2, 2, 2]
    # a single row larger than the bound is paged along the next axis
    result = list(pages(sel, (1, 2, 50), 20))
    assert all(p.count <= 20 for p, _ in result)
    assert sum(p.count for p, _ in result) == sel.count


def test_pages_of_a_coordinate_list():
    sel = parse_select("[[5,1,9,3,3],0:4]", (10, 4))
    result = list(pages(sel, (2, 4), 8))
    assert [p.parts[0].tolist() for p, _ in result] == [[5, 1], [9, 3], [3]]
    assert [o[0] for _, o in result] == [slice(0, 2), slice(2, 4), slice(4, 5)]


def test_pages_small_selection_is_one_page():
    sel = parse_select("[0:3]", (10,))
    assert [(p, o) for p, o in pages(sel, (4,), 100)] == [(sel, (slice(0, 3),))]
    scalar = whole(())
    assert list(pages(scalar, (1,), 10)) == [(scalar, ())]


# ============================================================================
# element_count (§11.3)
# ============================================================================

@pytest.mark.parametrize("count, shape, block", [
    (20, (4, 5), (4, 5)),
    (1, (4, 5), (1, 1)),
    (5, (4, 5), (1, 5)),
    (15, (2, 3, 5), (1, 3, 5)),
    (30, (2, 3, 5), (2, 3, 5)),
    (5, (2, 3, 5), (1, 1, 5)),
    (1, (), ()),
    (7, (7,), (7,)),
    ("5", (4, 5), (1, 5)),
])
def test_broadcast_ok(count, shape, block):
    assert broadcast_block(shape, count) == block
    assert broadcast_count_ok(count, shape)
    src = np.arange(math.prod(block)).reshape(block)
    assert np.broadcast_to(src, shape).shape == shape


@pytest.mark.parametrize("count, shape", [
    (4, (4, 5)), (3, (7,)), (0, (4, 5)), (-1, (4, 5)), (2, ()), (6, (2, 3, 5)),
    (True, (1,)), (1.0, (4,)), ("x", (4,)), (None, (4,)),
])
def test_broadcast_400(count, shape):
    assert not broadcast_count_ok(count, shape)
    with pytest.raises(BadRequest):
        broadcast_block(shape, count)


# ============================================================================
# speed: numpy, not per-element Python
# ============================================================================

def test_large_inputs_are_fast():
    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    dims = (100_000, 1000)
    coords = rng.integers(0, dims[0], 200_000)
    text = "[[" + ",".join(map(str, coords.tolist())) + "],0:1000:7]"
    sel = parse_select(text, dims)
    tasks = chunk_tasks(sel, (1000, 1000))
    assert sum(t.count for t in tasks) == sel.count
    points = parse_points(np.stack([coords, coords % 1000], 1).astype("<u8").reshape(-1),
                          dims)
    groups = point_tasks(points, (100, 100))
    assert sum(len(p) for _, _, p in groups) == len(coords)
    tasks = chunk_tasks(whole((20_000, 20_000)), (100, 100))
    assert len(tasks) == 40_000
    assert len(list(pages(whole((10**9,)), (10**6,), 10**7))) == 100
    assert time.perf_counter() - t0 < 5
