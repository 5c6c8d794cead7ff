"""Object ids (HSDS schema v2), their storage keys, and their owning node.

An id is a collection letter, '-', and 32 hex digits grouped 8-8-4-6-6. The
first 16 digits are shared by every object of a domain; the root group's last
16 digits are the first 16 each "rotated" by 8. See STORAGE.md §2.
"""
import hashlib
import uuid

COLLECTIONS = {"g": "groups", "d": "datasets", "t": "datatypes"}
PREFIX_OF = {v: k for k, v in COLLECTIONS.items()}
_HEX = set("0123456789abcdef")
_ROT8 = str.maketrans("0123456789abcdefABCDEF", "89abcdef01234567234567")
_NOT_HEX = str.maketrans("", "", "0123456789abcdefABCDEF")


def _rot8(hexdigits: str) -> str:
    """Each hex digit plus 8, mod 16, in lower case; ValueError for a non-hex one."""
    if hexdigits.translate(_NOT_HEX):
        raise ValueError(f"not hex digits: {hexdigits!r}")
    return hexdigits.translate(_ROT8)


def _format(prefix: str, h: str) -> str:
    return f"{prefix}-{h[0:8]}-{h[8:16]}-{h[16:20]}-{h[20:26]}-{h[26:32]}"


def _random_hex() -> str:
    return hashlib.sha256(uuid.uuid4().hex.encode()).hexdigest()[:32]


def hex_of(obj_id: str) -> str:
    """The 32 hex digits of an object or chunk id."""
    body = obj_id.split("_", 1)[0]
    return body[body.index("-") + 1:].replace("-", "")


def new_root_id() -> str:
    h = _random_hex()[:16]
    return _format("g", h + _rot8(h))


def new_object_id(prefix: str, root_id: str) -> str:
    """A fresh group ('g'), dataset ('d') or datatype ('t') id in root_id's domain."""
    return _format(prefix, hex_of(root_id)[:16] + _random_hex()[16:])


def root_of(obj_id: str) -> str:
    h = hex_of(obj_id)[:16]
    return _format("g", h + _rot8(h))


def is_root(obj_id: str) -> bool:
    h = hex_of(obj_id)
    return obj_id.startswith("g-") and h[16:] == _rot8(h[:16])


def is_valid(obj_id: str, prefix: str | None = None) -> bool:
    """Well-formed per HSDS's check (and, when given, of the expected collection)."""
    if not isinstance(obj_id, str) or len(obj_id) != 38 or obj_id[1] != "-":
        return False
    if obj_id[0] not in COLLECTIONS or (prefix and obj_id[0] != prefix):
        return False
    rest = obj_id[2:].replace("-", "")
    return not rest or rest.isalnum()


def is_v2(obj_id: str) -> bool:
    parts = obj_id[2:].split("-")
    return len(parts) == 5 and len(parts[1]) == 8 and set("".join(parts)) <= _HEX


def collection_of(obj_id: str) -> str:
    return COLLECTIONS[obj_id[0]]


def same_domain(obj_id: str, root_id: str) -> bool:
    return hex_of(obj_id)[:16] == hex_of(root_id)[:16]


# ---- keys -----------------------------------------------------------------

def root_prefix(root_id: str) -> str:
    """'db/<R>/' under which every key of the domain lives."""
    h = hex_of(root_id)
    return f"db/{h[0:8]}-{h[8:16]}/"


def object_key(obj_id: str) -> str:
    h = hex_of(obj_id)
    if is_root(obj_id):
        return f"{root_prefix(obj_id)}.group.json"
    kind = obj_id[0]
    name = {"g": ".group.json", "d": ".dataset.json", "t": ".datatype.json"}[kind]
    return f"{root_prefix(obj_id)}{kind}/{h[16:20]}-{h[20:26]}-{h[26:32]}/{name}"


def dataset_prefix(dset_id: str) -> str:
    h = hex_of(dset_id)
    return f"{root_prefix(dset_id)}d/{h[16:20]}-{h[20:26]}-{h[26:32]}/"


def chunk_id(dset_id: str, index, partition: int | None = None) -> str:
    p = "" if partition is None else str(partition)
    return f"c{p}-{dset_id[2:]}_" + "_".join(str(int(i)) for i in index)


def chunk_index(chunk: str) -> tuple:
    """The grid index of a chunk id: 'c-..._3_0' -> (3, 0)."""
    return tuple(int(i) for i in chunk.split("_")[1:])


def chunk_key(chunk: str) -> str:
    body, suffix = chunk.split("_", 1)
    part = body[1:body.index("-")]
    dset = "d-" + body[body.index("-") + 1:]
    return dataset_prefix(dset) + (f"p{part}/" if part else "") + suffix


def domain_key(path: str) -> str:
    """Key of a domain or folder document: '/a/b.h5' -> 'a/b.h5/.domain.json'."""
    return path.lstrip("/") + "/.domain.json"


def key_to_id(key: str) -> str | None:
    """Object or chunk id for a key under db/, or None (summaries, strays)."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "db":
        return None
    r = parts[1].replace("-", "")
    if len(parts) == 3:
        return _format("g", r + _rot8(r)) if parts[2] == ".group.json" else None
    if len(parts) == 5 and parts[2] in ("g", "t", "d"):
        h = r + parts[3].replace("-", "")
        if parts[4].endswith(".json"):
            return _format(parts[2], h)
        return "c" + _format("", h) + "_" + parts[4] if parts[2] == "d" else None
    if len(parts) == 6 and parts[2] == "d" and parts[4].startswith("p"):
        h = r + parts[3].replace("-", "")
        return f"c{parts[4][1:]}" + _format("", h) + "_" + parts[5]
    return None


# ---- partitioning over data nodes ----------------------------------------

def node_index(name: str, node_count: int) -> int:
    """HSDS's rule: md5 of the exact id (or 'bucket/path' of a domain) over N nodes."""
    return int(hashlib.md5(name.encode("utf-8")).hexdigest()[:5], 16) % node_count
