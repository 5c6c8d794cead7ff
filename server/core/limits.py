"""What a request may ask for, checked at the edge before numpy or storage sees it.

One place for the limits, so a new route cannot forget them: names (domains, buckets,
links, attributes), types (item size, nesting, fields, array dims) and shapes (rank,
extents). Each check raises BadRequest with a clear message.
"""
import re

from .errors import BadRequest

MAX_NAME_BYTES = 1024        # a link title or an attribute name (UTF-8)
MAX_PATH_BYTES = 960         # a domain path: S3 keys hold 1024 bytes, '/.domain.json' too
MAX_COMPONENT_BYTES = 255    # one folder or file name of a domain path (POSIX NAME_MAX)
MAX_BUCKET_CHARS = 255       # a bucket name (a folder under ROOT_DIR; S3 allows 63)
MAX_ITEM_SIZE = 1 << 30      # bytes of one element of any type (h5py tests make 100 MB ones)
MAX_TYPE_DEPTH = 16          # nesting of compound/array/vlen types
MAX_FIELDS = 4096            # fields of one compound type
MAX_RANK = 32                # HDF5's H5S_MAX_RANK, for shapes and array types
MAX_EXTENT = 2 ** 63 - 1     # one dimension of a shape
MAX_JSON_DEPTH = 64          # nesting of a JSON body

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(name, what: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A name a client chose: a non-empty string, no control characters, bounded."""
    if not isinstance(name, str) or not name:
        raise BadRequest(f"invalid {what}: must be a non-empty string")
    if _CONTROL.search(name):
        raise BadRequest(f"invalid {what}: control characters are not allowed")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest(f"invalid {what}: not valid Unicode") from None
    if size > max_bytes:
        raise BadRequest(f"invalid {what}: longer than {max_bytes} bytes")
    return name


def check_domain_path(path: str) -> str:
    check_name(path, "domain", MAX_PATH_BYTES)
    for part in path.split("/"):
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise BadRequest(f"invalid domain: a name longer than {MAX_COMPONENT_BYTES} bytes")
    return path


def check_bucket_name(name: str) -> str:
    return check_name(name, "bucket name", MAX_BUCKET_CHARS)


def check_item_size(size: int, what: str = "type") -> int:
    if size > MAX_ITEM_SIZE:
        raise BadRequest(f"{what} too large: {size} bytes per element (at most {MAX_ITEM_SIZE})")
    return size


def json_depth_ok(value, limit: int = MAX_JSON_DEPTH) -> bool:
    """Is a parsed JSON value nested at most `limit` deep? (iterative: no recursion)"""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def safe_header(text: str, limit: int = 200) -> str:
    """User text fit for a header value (e.g. a reason phrase): printable ASCII, one line."""
    out = "".join(c if " " <= c <= "~" else "?" for c in " ".join(str(text).split()))
    return out[:limit]
