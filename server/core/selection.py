"""Selections (REST_API.md §11.1) and the one way they become per-chunk work.

A request's target -- a hyperslab, coordinate lists, a point list -- is parsed
into a `Selection` (or a points array), and `chunk_tasks` / `point_chunk_tasks`
turn it into one `ChunkTask` per touched chunk. A task says which elements of
the chunk are involved (`chunk_sel`, relative to the chunk origin) and where
they go in the result (`out_sel`), so that for every task

    out[task.out_sel] = chunk_array[task.chunk_sel]      # read
    chunk_array[task.chunk_sel] = src[task.out_sel]      # write

assembles a read or scatters a write. Everything is numpy over coordinates;
Python loops run per chunk (or per page), never per element.

Selection shape (§11.1): one axis per dimension; a range contributes
ceil((stop-start)/step); a single index is kept as an axis of length 1; the
*first* coordinate list contributes its length and any further coordinate
lists must have the same length and add no axis (they are paired pointwise).
The paired axis sits where the first coordinate list is.
"""
import itertools
import math
import re

import numpy as np

from .errors import BadRequest

__all__ = ["Selection", "ChunkTask", "parse_select", "from_start_stop", "whole",
           "parse_points", "chunk_tasks", "point_tasks", "point_chunk_tasks", "pages",
           "broadcast_block", "broadcast_count_ok", "chunk_grid", "chunk_indices_in",
           "chunk_origin"]

_DIGITS = re.compile(r"[0-9]+\Z")
_COORD_LIST = re.compile(r"[0-9]+(?:,[0-9]+)*\Z")


# ============================================================================
# small helpers
# ============================================================================

def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _slice_len(s: slice) -> int:
    return max(0, (s.stop - s.start + s.step - 1) // s.step)


def _as_dims(dims) -> tuple:
    if dims is None:
        raise BadRequest("a null-space dataset has no selection")
    try:
        out = tuple(int(d) for d in dims)
    except (TypeError, ValueError):
        raise BadRequest(f"invalid dataset extents: {dims!r}") from None
    if any(d < 0 for d in out):
        raise BadRequest(f"invalid dataset extents: {dims!r}")
    return out


def _as_chunk_dims(chunk_dims, rank: int) -> tuple:
    try:
        out = tuple(int(c) for c in chunk_dims)
    except (TypeError, ValueError):
        raise BadRequest(f"invalid chunk dims: {chunk_dims!r}") from None
    if len(out) != rank or any(c < 1 for c in out):
        raise BadRequest(f"chunk dims {list(out)} do not fit rank {rank}")
    return out


def _int_array(values, what: str) -> np.ndarray:
    """A 1-D int64 array from a list/array of integers (400 for anything else)."""
    if isinstance(values, np.ndarray):
        arr = values
    else:
        try:
            arr = np.asarray(values)
        except (ValueError, TypeError, OverflowError):
            raise BadRequest(f"invalid {what}") from None
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        if arr.ndim == 1 and arr.size == 0:
            return np.zeros(0, np.int64)
        raise BadRequest(f"invalid {what}: expected a list of integers")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise BadRequest(f"{what} out of range")
    return arr.astype(np.int64, copy=False)


def _contiguous_run(pos: np.ndarray):
    """slice(a, a+n, 1) when the ascending positions are a run a..a+n-1, else pos."""
    n = len(pos)
    if n and int(pos[-1]) - int(pos[0]) == n - 1:
        return slice(int(pos[0]), int(pos[0]) + n, 1)
    return pos


def chunk_grid(dims, chunk_dims) -> tuple:
    """Chunks per dimension: ceil(extent / chunk extent)."""
    dims = _as_dims(dims)
    chunk_dims = _as_chunk_dims(chunk_dims, len(dims))
    return tuple(-(-d // c) for d, c in zip(dims, chunk_dims))


def chunk_indices_in(dims, chunk_dims):
    """Every chunk index of the grid, in C order."""
    return itertools.product(*(range(n) for n in chunk_grid(dims, chunk_dims)))


def chunk_origin(index, chunk_dims) -> tuple:
    """Dataset coordinates of a chunk's first element."""
    return tuple(int(i) * int(c) for i, c in zip(index, chunk_dims))


# ============================================================================
# Selection
# ============================================================================

class Selection:
    """A validated selection of a dataset of extents `dims`.

    parts: per dimension a slice(start, stop, step) of concrete ints (step >= 1)
    or a 1-D int64 array of coordinates. shape/count as in the module doc.
    Scalar datasets: dims (), parts (), shape (), count 1.
    Treat instances as immutable."""

    __slots__ = ("dims", "parts", "shape", "count", "list_dims")

    def __init__(self, dims, parts):
        dims = tuple(dims)
        parts = tuple(parts)
        if len(parts) != len(dims):
            raise BadRequest(f"selection has {len(parts)} dimensions, dataset has {len(dims)}")
        shape, list_dims, k = [], [], None
        for d, p in enumerate(parts):
            if isinstance(p, slice):
                shape.append(_slice_len(p))
                continue
            list_dims.append(d)
            if k is None:
                k = len(p)
                shape.append(k)
            elif len(p) != k:
                raise BadRequest("coordinate lists must all have the same length "
                                 f"({k} and {len(p)})")
        self.dims = dims
        self.parts = parts
        self.shape = tuple(shape)
        self.count = math.prod(self.shape)
        self.list_dims = tuple(list_dims)

    @property
    def rank(self) -> int:
        return len(self.dims)

    def axis_dims(self) -> list:
        """For each result axis, the dataset dimensions it comes from (several for
        the paired coordinate-list axis)."""
        out, list_axis = [], None
        for d, p in enumerate(self.parts):
            if isinstance(p, slice):
                out.append([d])
            elif list_axis is None:
                list_axis = len(out)
                out.append([d])
            else:
                out[list_axis].append(d)
        return out

    def is_whole(self) -> bool:
        return all(isinstance(p, slice) and p.start == 0 and p.stop == n and p.step == 1
                   for p, n in zip(self.parts, self.dims))

    def to_text(self) -> str:
        """The `[a:b:s,[i,j],…]` form (parses back to the same selection)."""
        items = []
        for p in self.parts:
            if isinstance(p, slice):
                items.append(f"{p.start}:{p.stop}:{p.step}" if p.stop > p.start else ":")
            else:
                items.append("[" + ",".join(str(int(x)) for x in p) + "]")
        return "[" + ",".join(items) + "]"

    def numpy_index(self) -> tuple:
        """An index for the full dataset array giving exactly the selection (shape
        included): full[sel.numpy_index()].shape == sel.shape."""
        return _index_tuple(self.parts)

    def __eq__(self, other):
        if not isinstance(other, Selection) or self.dims != other.dims:
            return False
        for a, b in zip(self.parts, other.parts):
            if isinstance(a, slice) != isinstance(b, slice):
                return False
            if isinstance(a, slice):
                if (a.start, a.stop, a.step) != (b.start, b.stop, b.step):
                    return False
            elif not np.array_equal(a, b):
                return False
        return True

    __hash__ = None

    def __repr__(self):
        text = self.to_text()
        if len(text) > 200:
            text = text[:200] + "…"
        return f"Selection({text} of {list(self.dims)})"


# ---- parsing ----------------------------------------------------------------

def whole(dims) -> Selection:
    """The whole dataspace (scalar: the single element)."""
    dims = _as_dims(dims)
    return Selection(dims, [slice(0, n, 1) for n in dims])


def _split_text(text: str) -> list:
    s = "".join(text.split())
    if len(s) < 2 or s[0] != "[" or s[-1] != "]":
        raise BadRequest(f"invalid selection {text!r}: expected [d0,d1,...]")
    inner = s[1:-1]
    if inner == "":
        return []
    entries, depth, current = [], 0, []
    for ch in inner:
        if ch == "[":
            depth += 1
            if depth > 1:
                raise BadRequest(f"invalid selection {text!r}: nested brackets")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise BadRequest(f"invalid selection {text!r}: unbalanced brackets")
        elif ch == "," and depth == 0:
            entries.append("".join(current))
            current = []
            continue
        current.append(ch)
    if depth != 0:
        raise BadRequest(f"invalid selection {text!r}: unbalanced brackets")
    entries.append("".join(current))
    if any(e == "" for e in entries):
        raise BadRequest(f"invalid selection {text!r}: empty dimension")
    return entries


def _check_index(i: int, extent: int, d: int) -> int:
    if i < 0 or i >= extent:
        raise BadRequest(f"index {i} out of range for dimension {d} (extent {extent})")
    return i


def _range(start, stop, step, extent: int, d: int) -> slice:
    """Validate start/stop/step (None = omitted) for one dimension (§11.1)."""
    for v in (start, stop, step):
        if v is not None and not _is_int(v):
            raise BadRequest(f"invalid selection for dimension {d}: {v!r} is not an integer")
    step = 1 if step is None else int(step)
    if step <= 0:
        raise BadRequest(f"invalid step {step} for dimension {d}: must be >= 1")
    if start is None and stop is None and extent == 0:
        return slice(0, 0, step)
    if start is None:
        start = 0
    else:
        start = int(start)
        if start < 0 or start >= extent:
            raise BadRequest(f"start {start} out of range for dimension {d} (extent {extent})")
    if stop is None:
        stop = extent
    else:
        stop = int(stop)
        if stop <= start:
            raise BadRequest(f"stop {stop} must be greater than start {start} "
                             f"for dimension {d}")
        if stop > extent:
            raise BadRequest(f"stop {stop} out of range for dimension {d} (extent {extent})")
    return slice(start, stop, step)


def _coords(values, extent: int, d: int) -> np.ndarray:
    arr = _int_array(values, f"coordinate list for dimension {d}")
    if arr.size == 0:
        raise BadRequest(f"empty coordinate list for dimension {d}")
    if int(arr.min()) < 0 or int(arr.max()) >= extent:
        raise BadRequest(f"coordinate out of range for dimension {d} (extent {extent})")
    return arr


def _num(text: str, what: str, d: int):
    if text == "":
        return None
    if not _DIGITS.match(text):
        raise BadRequest(f"invalid {what} {text!r} for dimension {d}")
    return int(text)


def _parse_text_entry(e: str, extent: int, d: int):
    if e.startswith("["):
        if not e.endswith("]"):
            raise BadRequest(f"invalid coordinate list {e!r} for dimension {d}")
        inner = e[1:-1]
        if inner == "":
            raise BadRequest(f"empty coordinate list for dimension {d}")
        if not _COORD_LIST.match(inner):
            raise BadRequest(f"invalid coordinate list {e!r} for dimension {d}")
        try:
            arr = np.array(inner.split(","), dtype=np.int64)
        except (OverflowError, ValueError):
            raise BadRequest(f"coordinate out of range for dimension {d}") from None
        return _coords(arr, extent, d)
    if ":" in e:
        pieces = e.split(":")
        if len(pieces) > 3:
            raise BadRequest(f"invalid range {e!r} for dimension {d}")
        start = _num(pieces[0], "start", d)
        stop = _num(pieces[1], "stop", d)
        step = _num(pieces[2], "step", d) if len(pieces) == 3 else None
        return _range(start, stop, step, extent, d)
    i = _num(e, "index", d)
    if i is None:
        raise BadRequest(f"invalid selection for dimension {d}")
    i = _check_index(i, extent, d)
    return slice(i, i + 1, 1)


def _parse_entry(e, extent: int, d: int):
    if isinstance(e, str):
        return _parse_text_entry("".join(e.split()), extent, d)
    if _is_int(e):
        i = _check_index(int(e), extent, d)
        return slice(i, i + 1, 1)
    if isinstance(e, (list, tuple, np.ndarray)):
        return _coords(e, extent, d)
    raise BadRequest(f"invalid selection for dimension {d}: {e!r}")


def parse_select(value, dims) -> Selection:
    """A `select` value -> Selection. value: the text "[d0,d1,…]", a JSON list with
    one entry per dimension (coordinate list, range string such as "2:8" or ":",
    or an integer), or None (the whole dataspace)."""
    dims = _as_dims(dims)
    if value is None:
        return whole(dims)
    if isinstance(value, str):
        entries = _split_text(value)
    elif isinstance(value, (list, tuple)):
        entries = list(value)
    else:
        raise BadRequest("select must be a string or a list")
    if len(entries) != len(dims):
        raise BadRequest(f"selection has {len(entries)} dimensions, dataset has "
                         f"{len(dims)}")
    return Selection(dims, [_parse_entry(e, n, d) for d, (e, n) in
                            enumerate(zip(entries, dims))])


def from_start_stop(start, stop, step, dims) -> Selection:
    """The body keys start/stop[/step] (scalars for 1-D or lists of length rank)."""
    dims = _as_dims(dims)
    rank = len(dims)

    def listed(v, what):
        if v is None:
            return [None] * rank
        v = list(v) if isinstance(v, (list, tuple)) else [v]
        if len(v) != rank:
            raise BadRequest(f"{what} has {len(v)} values, dataset rank is {rank}")
        return v

    starts, stops, steps = listed(start, "start"), listed(stop, "stop"), listed(step, "step")
    if start is None or stop is None:
        raise BadRequest("start and stop must both be given")
    return Selection(dims, [_range(a, b, s, n, d) for d, (a, b, s, n) in
                            enumerate(zip(starts, stops, steps, dims))])


def parse_points(points, dims) -> np.ndarray:
    """Points -> an (N, rank) int64 array, checked against dims.

    points: a JSON list (ints for rank 1 -- one-element lists accepted too -- or
    lists of rank ints), or a numpy unsigned array of N or N x rank values
    (the binary body, np.frombuffer(body, '<u8'))."""
    dims = _as_dims(dims)
    rank = len(dims)
    if rank == 0:
        raise BadRequest("points need a dataset with dimensions")
    if isinstance(points, np.ndarray) and points.dtype.kind in "iu":
        flat = points.reshape(-1)
        if flat.size % rank:
            raise BadRequest(f"{flat.size} coordinates do not make points of rank {rank}")
        arr = flat.reshape(-1, rank)
        if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
            raise BadRequest("point coordinates must not be negative")
        limit = np.asarray(dims, dtype=np.uint64)
        if arr.size and np.any(arr.astype(np.uint64, copy=False) >= limit):
            raise BadRequest("point out of range")
        return arr.astype(np.int64)
    if not isinstance(points, (list, tuple)):
        raise BadRequest("points must be a list")
    if len(points) == 0:
        return np.zeros((0, rank), np.int64)
    try:
        arr = np.asarray(points)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"invalid points: each point must be a list of {rank} "
                         "integers") from None
    if arr.dtype.kind not in "iu":
        raise BadRequest("point coordinates must be integers")
    if rank == 1 and arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != rank:
        raise BadRequest(f"points must have rank {rank}")
    if arr.dtype.kind == "u" and int(arr.max()) > np.iinfo(np.int64).max:
        raise BadRequest("point out of range")
    arr = arr.astype(np.int64)
    if int(arr.min()) < 0 or np.any(arr >= np.asarray(dims, dtype=np.int64)):
        raise BadRequest("point out of range")
    return arr


# ============================================================================
# chunk tasks
# ============================================================================

def _index_tuple(parts) -> tuple:
    """A numpy index for per-dimension parts (slices / paired int arrays) whose
    result has the selection's axis order: the paired axis at the first array.

    numpy already does that when the arrays are adjacent; otherwise it would move
    the paired axis to the front, so every part becomes a broadcastable array."""
    arr_dims = [d for d, p in enumerate(parts) if not isinstance(p, slice)]
    if len(arr_dims) <= 1 or arr_dims[-1] - arr_dims[0] == len(arr_dims) - 1:
        return tuple(parts)
    naxes = len(parts) - len(arr_dims) + 1
    out, axis, list_axis = [], 0, None
    for p in parts:
        if isinstance(p, slice):
            ax = axis
            axis += 1
            vals = np.arange(p.start, p.stop, p.step, dtype=np.int64)
        else:
            if list_axis is None:
                list_axis = axis
                axis += 1
            ax = list_axis
            vals = p
        shape = [1] * naxes
        shape[ax] = len(vals)
        out.append(vals.reshape(shape))
    return tuple(out)


def _part_json(p):
    if isinstance(p, slice):
        return [p.start, p.stop, p.step]
    return [p.tolist()]


def _part_from_json(v):
    if type(v) is list:
        if len(v) == 3:
            a, b, step = v
            if type(a) is int and type(b) is int and type(step) is int and step >= 1:
                return slice(a, b, step)
        elif len(v) == 1 and type(v[0]) is list:
            return _int_array(v[0], "chunk task coordinates")
    raise BadRequest(f"invalid chunk task part: {v!r}")


class ChunkTask:
    """The part of a selection inside one chunk.

    index     -- chunk grid index (tuple)
    chunk     -- per dataset dimension: slice relative to the chunk origin, or an
                 int array of in-chunk coordinates (all arrays are paired)
    out       -- per result axis: slice, or an int array of positions
    shape     -- shape of the piece
    chunk_sel -- numpy index into the chunk array (chunk_array[chunk_sel] has `shape`)
    out_sel   -- numpy index into the result (out[out_sel] has `shape`)
    """

    __slots__ = ("index", "chunk", "out", "shape", "_chunk_sel")

    def __init__(self, index, chunk, out, shape):
        self.index = tuple(map(int, index))
        self.chunk = tuple(chunk)
        self.out = tuple(out)
        self.shape = tuple(map(int, shape))
        self._chunk_sel = None

    @property
    def chunk_sel(self) -> tuple:
        if self._chunk_sel is None:
            # rank 0 (scalar dataset, chunk of shape (1,)): a 0-d view of element 0
            self._chunk_sel = _index_tuple(self.chunk) if self.chunk else (0, Ellipsis)
        return self._chunk_sel

    @property
    def out_sel(self) -> tuple:
        return self.out if self.out else (Ellipsis,)

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    def to_json(self) -> dict:
        """Compact JSON: slices as [start, stop, step], arrays as [[c0, c1, …]]."""
        return {"i": list(self.index), "c": [_part_json(p) for p in self.chunk],
                "o": [_part_json(p) for p in self.out], "n": list(self.shape)}

    @classmethod
    def from_json(cls, obj) -> "ChunkTask":
        try:
            return cls(obj["i"], [_part_from_json(p) for p in obj["c"]],
                       [_part_from_json(p) for p in obj["o"]], obj["n"])
        except (KeyError, TypeError, ValueError):
            raise BadRequest("invalid chunk task") from None

    def __eq__(self, other):
        return isinstance(other, ChunkTask) and self.to_json() == other.to_json()

    __hash__ = None

    def __repr__(self):
        return f"ChunkTask({self.index}, shape={self.shape})"


def _slice_pieces(s: slice, c: int) -> list:
    """[(chunk index, in-chunk slice, output slice)] of a range along one dimension."""
    n = _slice_len(s)
    if n == 0:
        return []
    start, step = s.start, s.step
    pieces = []
    if step >= c:
        # no two selected coordinates share a chunk
        for j in range(n):
            x = start + j * step
            pieces.append((x // c, slice(x % c, x % c + 1, 1), slice(j, j + 1, 1)))
        return pieces
    last = start + (n - 1) * step
    for k in range(start // c, last // c + 1):
        lo = k * c
        j0 = max(0, -(-(lo - start) // step))
        j1 = min(n, -(-(lo + c - start) // step))
        if j1 <= j0:
            continue
        a = start + j0 * step - lo
        b = start + (j1 - 1) * step - lo + 1
        pieces.append((k, slice(a, b, step), slice(j0, j1, 1)))
    return pieces


def _group_rows(coords: np.ndarray, chunk_dims: np.ndarray):
    """Group coordinate columns by chunk.

    coords: (m, k) -- m dimensions, k points. Yields (chunk index tuple,
    in-chunk coords (m, n), ascending positions (n,)) in C order of chunk index."""
    k = coords.shape[1]
    if k == 0:
        return
    cidx = coords // chunk_dims[:, None]
    if coords.shape[0] == 1:
        order = np.argsort(cidx[0], kind="stable")
    else:
        order = np.lexsort(cidx[::-1])
    sc = cidx[:, order]
    change = np.flatnonzero(np.any(sc[:, 1:] != sc[:, :-1], axis=0)) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [k]))
    local = coords[:, order] - sc * chunk_dims[:, None]
    for a, b in zip(starts.tolist(), ends.tolist()):
        yield tuple(sc[:, a].tolist()), local[:, a:b], order[a:b]


def chunk_tasks(sel: Selection, chunk_dims) -> list:
    """One ChunkTask per chunk the selection touches, in C order of chunk index."""
    rank = sel.rank
    if rank == 0:
        return [ChunkTask((0,), (), (), ())]
    cdims = _as_chunk_dims(chunk_dims, rank)
    if sel.count == 0:
        return []
    list_dims = sel.list_dims
    # factors, in result-axis order: (dims covered, [(chunk indices, chunk parts, out part)])
    factors = []
    for d, p in enumerate(sel.parts):
        if isinstance(p, slice):
            pieces = [((k,), (cs,), os) for k, cs, os in _slice_pieces(p, cdims[d])]
            factors.append(((d,), pieces))
        elif d == list_dims[0]:
            coords = np.stack([sel.parts[x] for x in list_dims])
            cd = np.asarray([cdims[x] for x in list_dims], dtype=np.int64)
            pieces = [(idx, tuple(local), _contiguous_run(pos))
                      for idx, local, pos in _group_rows(coords, cd)]
            factors.append((list_dims, pieces))
    tasks = []
    for combo in itertools.product(*(pieces for _, pieces in factors)):
        index = [0] * rank
        chunk = [None] * rank
        out, shape = [], []
        for (dims_covered, _), (idx, cparts, opart) in zip(factors, combo):
            for x, i, cp in zip(dims_covered, idx, cparts):
                index[x] = i
                chunk[x] = cp
            out.append(opart)
            shape.append(_slice_len(opart) if isinstance(opart, slice) else len(opart))
        tasks.append(ChunkTask(index, chunk, out, shape))
    if len(list_dims) > 1 and list_dims[-1] - list_dims[0] != len(list_dims) - 1:
        tasks.sort(key=lambda t: t.index)
    return tasks


def point_tasks(points: np.ndarray, chunk_dims) -> list:
    """[(chunk index, in-chunk coordinates (n, rank), positions in the point list (n,))]
    grouped by chunk, in C order of chunk index."""
    points = np.asarray(points, dtype=np.int64)
    if points.ndim != 2:
        raise BadRequest("points must be an (N, rank) array")
    cd = np.asarray(_as_chunk_dims(chunk_dims, points.shape[1]), dtype=np.int64)
    return [(idx, local.T, pos) for idx, local, pos in _group_rows(points.T, cd)]


def point_chunk_tasks(points: np.ndarray, chunk_dims) -> list:
    """point_tasks as ChunkTasks (every dimension a paired coordinate array; the
    result is the flat list of points)."""
    tasks = []
    for idx, local, pos in point_tasks(points, chunk_dims):
        tasks.append(ChunkTask(idx, tuple(np.ascontiguousarray(local.T)),
                               (_contiguous_run(pos),), (len(pos),)))
    return tasks


# ============================================================================
# paging
# ============================================================================

def _restrict(sel: Selection, axis_dims: list, j0: int, j1: int) -> Selection:
    """sel with result axis `axis_dims` (dataset dims) cut to rows j0:j1."""
    parts = list(sel.parts)
    for d in axis_dims:
        p = parts[d]
        if isinstance(p, slice):
            parts[d] = slice(p.start + j0 * p.step, p.start + (j1 - 1) * p.step + 1, p.step)
        else:
            parts[d] = p[j0:j1]
    return Selection(sel.dims, parts)


def _row_runs(sel: Selection, axis_dims: list, chunk_dims: tuple, rows_per: int):
    """(j0, j1) runs of rows along one result axis, each at most rows_per rows,
    cut at chunk boundaries where possible."""
    d = axis_dims[0]
    p = sel.parts[d]
    if not isinstance(p, slice):
        n = len(p)
        for j in range(0, n, rows_per):
            yield j, min(n, j + rows_per)
        return
    n, start, step, c = _slice_len(p), p.start, p.step, chunk_dims[d]

    def rows_before(k):
        return min(n, max(0, -(-(k * c - start) // step)))

    first, last = start // c, (start + (n - 1) * step) // c
    per_chunk = -(-c // step)
    if per_chunk <= rows_per:
        k_step = rows_per // per_chunk
        for k in range(first, last + 1, k_step):
            yield rows_before(k), rows_before(min(k + k_step, last + 1))
    else:
        for k in range(first, last + 1):
            j0, j1 = rows_before(k), rows_before(k + 1)
            for j in range(j0, j1, rows_per):
                yield j, min(j1, j + rows_per)


def _pages(sel, chunk_dims, max_elements, base):
    if sel.count <= max_elements or sel.count == 0:
        yield sel, tuple(base)
        return
    axes = sel.axis_dims()
    a = next((i for i, n in enumerate(sel.shape) if n > 1), None)
    if a is None:
        yield sel, tuple(base)
        return
    row = sel.count // sel.shape[a]
    offset = base[a].start
    if row <= max_elements:
        for j0, j1 in _row_runs(sel, axes[a], chunk_dims, max_elements // row):
            out = list(base)
            out[a] = slice(offset + j0, offset + j1)
            yield _restrict(sel, axes[a], j0, j1), tuple(out)
    else:
        for j in range(sel.shape[a]):
            out = list(base)
            out[a] = slice(offset + j, offset + j + 1)
            yield from _pages(_restrict(sel, axes[a], j, j + 1), chunk_dims, max_elements,
                              out)


def pages(sel: Selection, chunk_dims, max_elements: int):
    """Split sel into pages of at most max_elements elements, for streaming.

    Yields (page Selection, out_sel) in row-major order of the result, where out_sel
    (a tuple of slices) places the page in an array of shape sel.shape. Pages are
    cut along the first result axis longer than 1, at chunk boundaries where
    possible (as many whole chunk rows as fit); a coordinate-list axis is cut into
    runs of the (paired) lists. When one chunk row does not fit, it is cut into runs
    of rows; when a single row does not fit, each row is paged along the next axis.
    So every page holds at most max_elements elements."""
    max_elements = max(1, int(max_elements))
    if sel.rank == 0:
        yield sel, ()
        return
    cdims = _as_chunk_dims(chunk_dims, sel.rank)
    yield from _pages(sel, cdims, max_elements, [slice(0, n) for n in sel.shape])


# ============================================================================
# element_count broadcast (§11.3)
# ============================================================================

def broadcast_block(target_shape, element_count) -> tuple:
    """The shape of the block a body of element_count elements stands for: the
    whole target, one element (all axes 1), or the last k extents of the target
    (1 <= k < rank) repeated along the leading axes. 400 otherwise."""
    target_shape = tuple(int(n) for n in target_shape)
    if isinstance(element_count, str) and _DIGITS.match(element_count.strip()):
        element_count = int(element_count.strip())
    if not _is_int(element_count) or element_count < 1:
        raise BadRequest(f"invalid element_count: {element_count!r}")
    given = int(element_count)
    if given == math.prod(target_shape):
        return target_shape
    if given == 1:
        return (1,) * len(target_shape)
    for k in range(1, len(target_shape)):
        tail = target_shape[len(target_shape) - k:]
        if math.prod(tail) == given:
            return (1,) * (len(target_shape) - k) + tail
    raise BadRequest(f"element_count {given} does not fit a selection of shape "
                     f"{list(target_shape)}")


def broadcast_count_ok(element_count, target_shape) -> bool:
    try:
        broadcast_block(target_shape, element_count)
        return True
    except BadRequest:
        return False
