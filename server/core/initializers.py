"""Chunk initializers (creationProperties.initializer, as HSDS 1.0.2 and h5pyd 1.0 use
it): a list [app, "--name=value", ...] that computes a never-written chunk in place
of the fill value, chunk by chunk.

Only `arange` exists in-process (HSDS's other one, `chunklocator`, runs an external
program over an HDF5 file and is refused here): for a 1-D integer or float dataset,
element i holds start + i * step (defaults 0 and 1), so chunk k starts at
start + k * chunk_length * step.
"""
import numpy as np

from .errors import BadRequest

APPS = ("arange",)


class Arange:
    __slots__ = ("start", "step", "integer")

    def __init__(self, start: float, step: float, integer: bool):
        self.start, self.step, self.integer = start, step, integer

    def chunk(self, index, chunk_dims, dtype) -> np.ndarray:
        """The chunk at grid index `index` (a full chunk: edge chunks too)."""
        length = int(chunk_dims[0])
        first, step = self.start + int(index[0]) * length * self.step, self.step
        if self.integer:          # HSDS rounds the chunk's start and the step to ints
            first, step = int(first), int(step)
        steps = np.arange(length, dtype=np.int64 if self.integer else np.float64)
        return (first + step * steps).astype(dtype)


def _options(args) -> dict:
    out = {}
    for arg in args:
        if not isinstance(arg, str) or not arg.startswith("--") or "=" not in arg:
            raise BadRequest(f"invalid initializer argument: {arg!r}")
        name, value = arg[2:].split("=", 1)
        out[name] = value
    return out


def parse(spec, type_json):
    """creationProperties.initializer -> an initializer, or None when absent;
    400 for one this server cannot run."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, list) or not spec or not isinstance(spec[0], str):
        raise BadRequest("initializer must be a list: [app, '--option=value', ...]")
    if spec[0] not in APPS:
        raise BadRequest(f"unsupported initializer: {spec[0]!r} (supported: arange)")
    opts = _options(spec[1:])
    unknown = sorted(set(opts) - {"start", "step"})
    if unknown:
        raise BadRequest(f"unknown arange options: {', '.join(unknown)}")
    try:
        start, step = float(opts.get("start", 0)), float(opts.get("step", 1))
    except ValueError:
        raise BadRequest("arange start and step must be numbers") from None
    if not (np.isfinite(start) and np.isfinite(step)):
        raise BadRequest("arange start and step must be finite")
    cls = type_json.get("class") if isinstance(type_json, dict) else None
    if cls not in ("H5T_INTEGER", "H5T_FLOAT"):
        raise BadRequest("the arange initializer needs an integer or float type")
    return Arange(start, step, cls == "H5T_INTEGER")


def check(creation_props: dict, type_json, dims) -> None:
    """Validate an initializer at dataset creation (after the layout is settled)."""
    if creation_props.get("initializer") is None:
        return
    if dims is None or len(dims) != 1:
        raise BadRequest("the arange initializer needs a one-dimensional dataset")
    parse(creation_props["initializer"], type_json)
