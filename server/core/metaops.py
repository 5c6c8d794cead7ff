"""Changes to stored JSON documents, applied by the owning data node.

Each op is a pure function (doc, args, memo) -> (changed, result). It checks
everything first and only then edits doc in place, so a refused request leaves
the document as it was. The DN runs one op at a time per document, so
read-modify-write races between requests do not exist. `memo` is the DN's
in-memory companion of the document (names deleted lately, for 410 answers).
Read-only ops (changed=False) answer questions that need that memo.
"""
import bisect
import fnmatch
import itertools

from . import clock
from .acl import entry
from .errors import Conflict, Gone, NotFound
from .types import for_clients

OPS = {}
MAX_DRIFT = 300.0      # seconds a client-supplied `created` may differ from ours


def op(fn):
    OPS[fn.__name__] = fn
    return fn


def apply(name: str, doc: dict, args: dict, memo: dict):
    return OPS[name](doc, args, memo)


def _stamp(given) -> float:
    now = clock.now()
    if isinstance(given, (int, float)) and not isinstance(given, bool) \
            and abs(given - now) <= MAX_DRIFT:
        return float(given)
    return now


def _find(items: dict, names, deleted: set, what: str) -> list:
    """The named items in order; 410 for a deleted name, 404 for an unknown one."""
    out = []
    for name in names:
        if name in items:
            out.append((name, items[name]))
        elif name in deleted:
            raise Gone(f"{what} {name} has been deleted")
        else:
            raise NotFound(f"{what} {name} not found")
    return out


# ---- domains ------------------------------------------------------------------

@op
def set_acl(doc, args, memo):
    """Create or change one user's ACL entry; it records the bucket/domain (HSDS does)."""
    acls = doc.setdefault("acls", {})
    current = acls.setdefault(args["user"], entry(False))
    current.update(args["flags"])
    current["domain"] = args["domain"]
    doc["lastModified"] = clock.now()
    return True, {}


# ---- links --------------------------------------------------------------------

_LINK_KEYS = ("class", "id", "h5path", "h5domain", "file")


def same_link(a: dict, b: dict) -> bool:
    def target(link):
        t = {k: link.get(k) for k in _LINK_KEYS}
        t["h5domain"] = t["h5domain"] or t.pop("file")   # 1.0.2 writes either key
        t.pop("file", None)
        return t
    return target(a) == target(b)


@op
def add_links(doc, args, memo):
    """args.links: title -> link (validated). 409 if a title holds another link;
    an identical one is left alone. Result: how many were new."""
    links = doc.setdefault("links", {})
    new = {}
    for title, link in args["links"].items():
        old = links.get(title)
        if old is None:
            new[title] = link
        elif not same_link(old, link):
            raise Conflict(f"link {title} already exists")
    deleted = memo.get("links_deleted", set())
    if new:
        _drop_link_orders(memo)
    for title, link in new.items():
        links[title] = {**link, "created": _stamp(link.get("created"))}
        deleted.discard(title)
    if new:
        doc["lastModified"] = clock.now()
    return bool(new), {"new": len(new)}


class _LinkOrder:
    """A group's titles in one listing order, kept beside the document (memo) so a page
    costs a look-up, not a sort of every link. Valid while `links` is the document's own
    dict and no op changed it (add_links / delete_links drop it); shared, never copied."""

    def __init__(self, links: dict, create_order: bool):
        self.links = links
        if create_order:        # stable: equal stamps stay in insertion order
            self.titles = sorted(links, key=lambda t: links[t].get("created", 0))
            self.position = {t: i for i, t in enumerate(self.titles)}
        else:
            self.titles, self.position = sorted(links), None

    def __deepcopy__(self, _memo):
        return self

    def after(self, marker) -> int:
        """Where a page that resumes after marker starts (404 for an unknown marker)."""
        if marker is None:
            return 0
        if self.position is not None:
            i = self.position.get(marker)
        else:
            i = bisect.bisect_left(self.titles, marker)
            i = i if i < len(self.titles) and self.titles[i] == marker else None
        if i is None:
            raise NotFound(f"marker {marker} not found")
        return i + 1


def _link_order(doc, memo, create_order: bool) -> _LinkOrder:
    links = doc.get("links") or {}
    key = "link_order_created" if create_order else "link_order"
    order = memo.get(key)
    if order is None or order.links is not links:
        order = memo[key] = _LinkOrder(links, create_order)
    return order


def _drop_link_orders(memo):
    memo.pop("link_order", None)
    memo.pop("link_order_created", None)


@op
def list_links(doc, args, memo):
    """A page of links in title (or creation) order: those matching pattern, resuming
    after marker (404 if it is no such title or does not match), at most limit."""
    order = _link_order(doc, memo, bool(args.get("create_order")))
    pattern, limit, marker = args.get("pattern"), args.get("limit"), args.get("marker")
    if marker is not None and pattern and not fnmatch.fnmatchcase(marker, pattern):
        raise NotFound(f"marker {marker} not found")
    rest = itertools.islice(order.titles, order.after(marker), None)
    if pattern:
        rest = (t for t in rest if fnmatch.fnmatchcase(t, pattern))
    titles = list(itertools.islice(rest, limit))
    links = order.links
    return False, {"links": [{**links[t], "title": t} for t in titles]}


@op
def get_links(doc, args, memo):
    found = _find(doc.get("links") or {}, args["titles"], memo.get("links_deleted", ()), "link")
    return False, {"links": [{**link, "title": title} for title, link in found]}


@op
def delete_links(doc, args, memo):
    """Delete every named link; names deleted before are skipped, unknown ones 404
    (checked before anything is removed)."""
    links = doc.get("links") or {}
    deleted = memo.setdefault("links_deleted", set())
    present = [t for t in args["titles"] if t in links]
    for title in args["titles"]:
        if title not in links and title not in deleted:
            raise NotFound(f"link {title} not found")
    if present:
        _drop_link_orders(memo)
    for title in present:
        del links[title]
        deleted.add(title)
    if present:
        doc["lastModified"] = clock.now()
    return bool(present), {}


# ---- datasets -------------------------------------------------------------------

@op
def resize(doc, args, memo):
    """Change a dataset's extent (body: shape, or extend + extend_dim); HSDS leaves
    lastModified alone. Result: old and new dims and the grown region, if one."""
    from .layout import resize_plan
    new_dims, selection = resize_plan(doc["shape"], args["body"])
    old = list(doc["shape"]["dims"])
    doc["shape"]["dims"] = list(new_dims)
    return old != list(new_dims), {"old_dims": old, "new_dims": list(new_dims),
                                   "selection": selection}


# ---- attributes ---------------------------------------------------------------

def same_attribute(a: dict, b: dict) -> bool:
    # types compare as clients see them: an enum re-sent with both spellings
    # (types.for_clients) is the same type as the stored one
    return for_clients(a.get("type")) == for_clients(b.get("type")) and \
        all(a.get(k) == b.get(k) for k in ("shape", "value", "encoding"))


@op
def put_attributes(doc, args, memo):
    """args.attributes: name -> {type, shape, value[, encoding][, created]} (validated);
    args.replace: overwrite a different one (keeping its `created`), else 409."""
    attrs = doc.setdefault("attributes", {})
    new = {}
    for name, attr in args["attributes"].items():
        old = attrs.get(name)
        if old is not None and same_attribute(old, attr):
            continue
        if old is not None and not args.get("replace"):
            raise Conflict(f"attribute {name} already exists")
        new[name] = attr
    deleted = memo.get("attrs_deleted", set())
    for name, attr in new.items():
        old = attrs.get(name)
        stored = {k: v for k, v in attr.items() if k != "created"}
        stored["created"] = old["created"] if old and "created" in old \
            else _stamp(attr.get("created"))
        attrs[name] = stored
        deleted.discard(name)
    if new:
        doc["lastModified"] = clock.now()
    return bool(new), {"new": len(new)}


@op
def get_attributes(doc, args, memo):
    found = _find(doc.get("attributes") or {}, args["names"],
                  memo.get("attrs_deleted", ()), "attribute")
    return False, {"attributes": [{**attr, "name": name} for name, attr in found]}


@op
def delete_attributes(doc, args, memo):
    attrs = doc.get("attributes") or {}
    deleted = memo.setdefault("attrs_deleted", set())
    for name in args["names"]:
        if name not in attrs and name not in deleted:
            raise NotFound(f"attribute {name} not found")
    present = [n for n in args["names"] if n in attrs]
    for name in present:
        del attrs[name]
        deleted.add(name)
    if present:
        doc["lastModified"] = clock.now()
    return bool(present), {}


@op
def set_attribute_value(doc, args, memo):
    """Replace one attribute's value (type and shape stay)."""
    (name, attr), = _find(doc.get("attributes") or {}, [args["name"]],
                          memo.get("attrs_deleted", ()), "attribute")
    attr["value"] = args["value"]
    attr.pop("encoding", None)
    if args.get("encoding"):
        attr["encoding"] = args["encoding"]
    doc["lastModified"] = clock.now()
    return True, {}
