"""Dataspaces (REST_API.md §13): client input forms -> the stored shape JSON."""
import math

from .errors import BadRequest

UNLIMITED = "H5S_UNLIMITED"


def _extent(value, what="dims") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"invalid {what} extent: {value!r}")
    return value


def parse_shape(shape, *, attribute: bool = False) -> dict:
    """absent/[] -> scalar; n -> [n]; list -> simple; 'H5S_SCALAR'/'H5S_NULL'; objects
    only for attributes (datasets get 400, as HSDS answers)."""
    if shape is None or shape == []:
        return {"class": "H5S_SCALAR"}
    if isinstance(shape, str):
        if shape in ("H5S_SCALAR", "H5S_NULL"):
            return {"class": shape}
        raise BadRequest(f"invalid shape: {shape}")
    if isinstance(shape, bool):
        raise BadRequest("invalid shape")
    if isinstance(shape, int):
        return {"class": "H5S_SIMPLE", "dims": [_extent(shape)]}
    if isinstance(shape, list):
        return {"class": "H5S_SIMPLE", "dims": [_extent(d) for d in shape]}
    if isinstance(shape, dict) and attribute:
        cls = shape.get("class")
        if cls == "H5S_NULL":
            return {"class": "H5S_NULL"}
        if cls == "H5S_SCALAR":
            if shape.get("dims") not in (None, [1]):
                raise BadRequest("a scalar shape has no dims")
            return {"class": "H5S_SCALAR"}
        if cls == "H5S_SIMPLE":
            dims = shape.get("dims")
            if isinstance(dims, int):
                dims = [dims]
            if not isinstance(dims, list):
                raise BadRequest("a simple shape needs dims")
            return {"class": "H5S_SIMPLE", "dims": [_extent(d) for d in dims]}
        raise BadRequest(f"unknown shape class: {cls}")
    raise BadRequest("invalid shape")


def parse_maxdims(shape: dict, maxdims) -> dict:
    """Add a dataset's maxdims (0 or 'H5S_UNLIMITED' = unlimited) to its shape; an
    unlimited extent is stored and shown as 'H5S_UNLIMITED', as HSDS 1.0.2 does."""
    if maxdims is None:
        return shape
    if shape["class"] != "H5S_SIMPLE":
        raise BadRequest("maxdims needs a simple shape")
    if not isinstance(maxdims, list):
        maxdims = [maxdims]
    dims = shape["dims"]
    if len(maxdims) != len(dims):
        raise BadRequest("maxdims rank does not match the shape")
    out = []
    for extent, limit in zip(dims, maxdims):
        if limit == UNLIMITED or limit is None:
            limit = 0
        limit = _extent(limit, "maxdims")
        if limit and limit < extent:
            raise BadRequest("maxdims is smaller than the shape")
        out.append(limit or UNLIMITED)
    return {**shape, "maxdims": out}


def dims_of(shape: dict) -> tuple:
    """Extents as a tuple: () for scalar; None for a null space."""
    cls = shape.get("class") if isinstance(shape, dict) else None
    if cls == "H5S_NULL":
        return None
    if cls == "H5S_SCALAR" or cls is None:
        return ()
    return tuple(shape.get("dims") or ())


def element_count(shape: dict) -> int:
    dims = dims_of(shape)
    return 0 if dims is None else math.prod(dims)
