"""Groups, datasets and committed datatypes as objects: look-up with HSDS's checks,
GET (by id and by path), DELETE, creation (groups and datatypes here), the
collection listings, getalias, and walks over the hard-link graph."""
import asyncio

from ..core import clock, ids, layout, limits, types
from ..core.errors import BadRequest, Conflict, Forbidden, Gone, NotFound
from ..web import json_response, read_json
from .params import flag, int_param
from .paths import Resolver
from .service import caller, href, require_domain, service

COLLECTION_OF_ROUTE = {"groups": "g", "datasets": "d", "datatypes": "t"}


# ---- look-ups -----------------------------------------------------------------

async def load_object(svc, target, domain_doc: dict, obj_id: str, prefix: str,
                      cached=False) -> dict:
    """An object of the request's domain, checked in HSDS's order:
    malformed or wrong kind -> 400, unknown -> 404, deleted -> 410, other domain -> 400.
    cached: a copy this SN read moments ago will do (Service.object_doc)."""
    if not ids.is_valid(obj_id, prefix):
        raise BadRequest(f"invalid id: {obj_id}")
    if not ids.is_v2(obj_id):
        raise NotFound(f"{obj_id} not found")
    doc = await svc.object_doc(target.bucket, obj_id, cached)
    if not ids.same_domain(obj_id, domain_doc["root"]):
        raise BadRequest(f"{obj_id} is not a member of {target.path}")
    return doc


async def check_member(svc, target, domain_doc, obj_id: str, prefix: str):
    """Cheap membership check for ops that go straight to the owning DN: the id's
    form and domain are pure string tests; a foreign id is looked up first so an
    unknown one still answers 404."""
    if not ids.is_valid(obj_id, prefix):
        raise BadRequest(f"invalid id: {obj_id}")
    if not ids.is_v2(obj_id):
        raise NotFound(f"{obj_id} not found")
    if not ids.same_domain(obj_id, domain_doc["root"]):
        await svc.object_doc(target.bucket, obj_id)
        raise BadRequest(f"{obj_id} is not a member of {target.path}")


def per_object(body: dict, this_id: str, ids_key: str, items_key: str) -> dict:
    """id -> items of a multi-object create (links, attributes): {items_key: {...}} for
    this object or for every id of an ids_key list, or {ids_key: {id: {items_key: {...}}}}."""
    ids = body.get(ids_key)
    if isinstance(ids, dict):
        if items_key in body:
            raise BadRequest(f"{items_key} with an {ids_key} object")
        plan = {}
        for oid, item in ids.items():
            if not isinstance(item, dict) or not isinstance(item.get(items_key), dict):
                raise BadRequest(f"{ids_key}[{oid}] needs a {items_key} object")
            plan[oid] = item[items_key]
        return plan
    items = body.get(items_key)
    if not isinstance(items, dict):
        raise BadRequest(f"{items_key} must be an object keyed by name")
    if ids is not None and not isinstance(ids, list):
        raise BadRequest(f"{ids_key} must be a list or an object")
    return {oid: items for oid in (ids or [this_id])}


async def object_op(svc, target, obj_id: str, op: str, args: dict, sync=False):
    """Run a document change (core.metaops) on the object's owning DN."""
    try:
        return await svc.nodes.apply(target.bucket, ids.object_key(obj_id), obj_id, op, args,
                                     sync)
    finally:
        svc.forget_object(target.bucket, obj_id)


async def try_doc(svc, bucket, obj_id):
    try:
        return await svc.object_doc(bucket, obj_id)
    except (NotFound, Gone):
        return None


def hard_targets(doc: dict) -> list:
    out = []
    for link in (doc.get("links") or {}).values():
        target = link.get("id")
        if target and ids.is_valid(target) and ids.is_v2(target):
            out.append(target)
    return out


async def walk(svc, bucket: str, start_doc: dict, groups_only=False, limit=None) -> dict | None:
    """Every object reachable from start_doc by hard links (breadth first, each once,
    in link order), as id -> document; None when more than limit."""
    found = {start_doc["id"]: start_doc}
    frontier = [start_doc]
    while frontier:
        wanted = []
        for doc in frontier:
            for t in hard_targets(doc):
                if t not in found and t not in wanted and (t[0] == "g" or not groups_only):
                    wanted.append(t)
        docs = await asyncio.gather(*(try_doc(svc, bucket, t) for t in wanted))
        frontier = []
        for obj_id, doc in zip(wanted, docs):
            if doc is None:
                continue
            found[obj_id] = doc
            if obj_id[0] == "g":
                frontier.append(doc)
        if limit is not None and len(found) > limit:
            return None
    return found


async def walk_groups(svc, target, start_doc) -> dict:
    return await walk(svc, target.bucket, start_doc, groups_only=True)


async def collect(svc, bucket: str, root_id: str, limit=500):
    """domain_objs for getobjs: every reachable object as stored, attributes included
    (h5pyd 1.0 reads attributes from this cache whether or not it asked for
    include_attrs, as HSDS 1.0.2's summary always has them); None over limit."""
    root = await try_doc(svc, bucket, root_id)
    if root is None:
        return {}
    found = await walk(svc, bucket, root, limit=limit)
    if found is None:
        return None
    out = {}
    for obj_id, doc in found.items():
        entry = dict(doc)
        if "type" in doc:
            entry["type"] = types.for_clients(doc["type"])
        entry["attributes"] = client_attributes(doc.get("attributes") or {})
        if obj_id[0] == "g":
            entry["links"] = client_links(doc.get("links") or {})
            entry["linkCount"] = len(doc.get("links") or {})
        entry["attributeCount"] = len(doc.get("attributes") or {})
        out[obj_id] = entry
    return out


async def alias_of(svc, bucket: str, root_id: str, obj_id: str) -> list:
    """The first path a depth-first hard-link walk from the root finds (§14.6)."""
    if obj_id == root_id:
        return ["/"]
    seen = {root_id}

    async def dfs(doc, path):
        for title, link in (doc.get("links") or {}).items():
            t = link.get("id")
            if not t or t in seen:
                continue
            seen.add(t)
            if t == obj_id:
                return f"{path}/{title}"
            if t[0] == "g":
                child = await try_doc(svc, bucket, t)
                if child is not None:
                    hit = await dfs(child, f"{path}/{title}")
                    if hit:
                        return hit
        return None

    root = await try_doc(svc, bucket, root_id)
    hit = await dfs(root, "") if root else None
    return [hit] if hit else []


# ---- presentation -------------------------------------------------------------

def client_link(link: dict) -> dict:
    """A stored link as clients read it: an external link names its target under both
    `file` and `h5domain` (h5pyd 1.0 reads `file`, 0.24 `h5domain`; stored links carry
    one or the other depending on which HSDS and which request made them)."""
    if ("file" in link) != ("h5domain" in link):
        target = link.get("file", link.get("h5domain"))
        link = {**link, "file": target, "h5domain": target}
    return link


def client_links(links: dict) -> dict:
    return {title: client_link(link) for title, link in links.items()}


def client_attributes(attrs: dict) -> dict:
    out = {}
    for name, attr in attrs.items():
        shown = types.for_clients(attr.get("type"))
        out[name] = attr if shown is attr.get("type") else {**attr, "type": shown}
    return out


def public_json(doc: dict, target, include_links=False, include_attrs=False) -> dict:
    """An object document as GET returns it."""
    kind = doc["id"][0]
    out = {"id": doc["id"], "root": doc.get("root"), "created": doc.get("created"),
           "lastModified": doc.get("lastModified")}
    if kind == "g":
        out["linkCount"] = len(doc.get("links") or {})
    else:
        out["type"] = types.for_clients(doc.get("type"))
    if kind == "d":
        out["shape"] = doc.get("shape")
        out["layout"] = effective_layout(doc)
        out["creationProperties"] = doc.get("creationProperties") or {}
    elif "creationProperties" in doc:
        out["creationProperties"] = doc["creationProperties"]
    out["attributeCount"] = len(doc.get("attributes") or {})
    if include_links and kind == "g":
        out["links"] = client_links(doc.get("links") or {})
    if include_attrs:
        out["attributes"] = client_attributes(doc.get("attributes") or {})
    out["domain"] = target.path
    out["bucket"] = target.bucket
    return out


def effective_layout(doc: dict) -> dict:
    """What clients read as the dataset's layout: chunked, with the dims in use."""
    if (doc.get("shape") or {}).get("class") == "H5S_NULL":
        return {}
    return {"class": "H5D_CHUNKED", "dims": list(layout.chunk_dims_of(doc))}


def object_hrefs(request, target, root_id: str, obj_id: str) -> list:
    col = ids.collection_of(obj_id)
    refs = [("self", f"/{col}/{obj_id}")]
    if col == "groups":
        refs += [("links", f"/groups/{obj_id}/links"), ("root", f"/groups/{root_id}"),
                 ("home", "/"), ("attributes", f"/groups/{obj_id}/attributes")]
    elif col == "datatypes":
        refs += [("root", f"/groups/{root_id}"), ("home", "/"),
                 ("attributes", f"/datatypes/{obj_id}/attributes")]
    else:
        refs += [("root", f"/groups/{root_id}"), ("home", "/"),
                 ("attributes", f"/datasets/{obj_id}/attributes"),
                 ("value", f"/datasets/{obj_id}/value")]
    return [{"rel": rel, "href": href(request, target, path)} for rel, path in refs]


async def object_response(request, target, domain_doc, doc, with_class=False):
    svc = service(request)
    q = request.query
    body = public_json(doc, target, flag(q, "include_links"), flag(q, "include_attrs"))
    if with_class:
        body["class"] = {"g": "group", "d": "dataset", "t": "datatype"}[doc["id"][0]]
    if flag(q, "getalias"):
        body["alias"] = await alias_of(svc, target.bucket, domain_doc["root"], doc["id"])
    if doc["id"][0] == "d" and flag(q, "verbose"):
        body.update(await dataset_usage(svc, target.bucket, doc["id"]))
    body["hrefs"] = object_hrefs(request, target, domain_doc["root"], doc["id"])
    return body


async def dataset_usage(svc, bucket: str, dset_id: str) -> dict:
    """num_chunks and allocated_size of a dataset, from a listing of its chunk keys."""
    count = size = 0
    async for key, nbytes in svc.store.list_sizes(bucket, ids.dataset_prefix(dset_id)):
        if not key.endswith(".json"):
            count += 1
            size += nbytes
    return {"num_chunks": count, "allocated_size": size}


# ---- GET / DELETE by id ---------------------------------------------------------

def _route_prefix(request) -> str:
    return COLLECTION_OF_ROUTE[request.path.strip("/").split("/")[0]]


async def get_object(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    doc = await load_object(svc, target, domain_doc, request.match_info["id"],
                            _route_prefix(request))
    return json_response(await object_response(request, target, domain_doc, doc))


async def delete_object(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "delete")
    obj_id = request.match_info["id"]
    await load_object(svc, target, domain_doc, obj_id, _route_prefix(request))
    if ids.is_root(obj_id):
        raise Forbidden("the root group cannot be deleted")
    await delete_by_id(svc, target, obj_id)
    return json_response({})


async def delete_by_id(svc, target, obj_id: str):
    await svc.nodes.delete(target.bucket, ids.object_key(obj_id), obj_id)
    svc.forget_object(target.bucket, obj_id)
    if obj_id[0] == "d":   # then its chunks: every DN forgets them, the owner purges them
        await svc.nodes.drop_all(target.bucket, ids.dataset_prefix(obj_id), obj_id)


# ---- GET by path ------------------------------------------------------------------

async def get_by_path(request):
    """GET /groups/?h5path=, /datasets/?h5path=, /datatypes/?h5path= (grpid or parent_id
    for relative paths; symbolic links are refused here)."""
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    q = request.query
    h5path = q.get("h5path")
    if not h5path:
        raise BadRequest("h5path is required")
    base = q.get("grpid") or q.get("parent_id")
    if not h5path.startswith("/") and not base:
        raise BadRequest("a relative h5path needs grpid")
    if base:
        await load_object(svc, target, domain_doc, base, "g")
    found = await Resolver(svc, caller(request)).resolve(target, domain_doc, h5path, base)
    prefix = _route_prefix(request)
    if found.obj_id[0] != prefix:
        if prefix == "t":
            raise Gone(f"{h5path} is not a datatype")   # HSDS's answer (quirk)
        raise NotFound(f"no {ids.COLLECTIONS[prefix][:-1]} at {h5path}")
    return json_response(await object_response(request, found.target, found.domain_doc,
                                               found.doc))


async def domain_by_path(request, target, domain_doc, h5path: str):
    """GET /?h5path=...: the object with its domain and class."""
    svc = service(request)
    q = request.query
    base = q.get("parent_id")
    if base:
        await load_object(svc, target, domain_doc, base, "g")
    resolver = Resolver(svc, caller(request), flag(q, "follow_soft_links"),
                        flag(q, "follow_external_links"))
    found = await resolver.resolve(target, domain_doc, h5path, base)
    body = await object_response(request, found.target, found.domain_doc, found.doc, True)
    body["domain"] = found.target.path
    return body


async def post_domain(request):
    """POST / {"h5paths": [...]}: many objects by path in one request."""
    target, domain_doc = await require_domain(request, "read")
    body = await read_json(request)
    paths = body.get("h5paths") if isinstance(body, dict) else None
    if not isinstance(paths, list):
        raise BadRequest("h5paths must be a list")
    results = await asyncio.gather(*(domain_by_path(request, target, domain_doc, p)
                                     for p in paths))
    return json_response({"h5paths": dict(zip(paths, results))})


# ---- collections --------------------------------------------------------------------

async def list_collection(request):
    """GET /groups, /datasets, /datatypes: sorted ids reachable from the root (not it)."""
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    col = request.path.strip("/")
    prefix = COLLECTION_OF_ROUTE[col]
    root = await svc.object_doc(target.bucket, domain_doc["root"])
    found = await walk(svc, target.bucket, root)
    names = sorted(i for i in found if i[0] == prefix and i != domain_doc["root"])
    marker = request.query.get("Marker")
    if marker:
        names = [n for n in names if n > marker]
    limit = int_param(request.query, "Limit")
    if limit is not None:
        names = names[:limit]
    return json_response({col: names, "hrefs": [
        {"rel": "self", "href": href(request, target, f"/{col}")},
        {"rel": "root", "href": href(request, target, f"/groups/{domain_doc['root']}")},
        {"rel": "home", "href": href(request, target, "/")}]})


# ---- creation -----------------------------------------------------------------------

async def resolve_type(svc, target, domain_doc, type_json) -> dict:
    """A type from a request: a committed type id ('t-...') becomes a copy of that
    type plus its id; anything else is validated and normalised."""
    if isinstance(type_json, str) and type_json.startswith("t-"):
        dt = await load_object(svc, target, domain_doc, type_json, "t")
        return {**dt["type"], "id": type_json}
    if isinstance(type_json, dict) and isinstance(type_json.get("id"), str) \
            and type_json["id"].startswith("t-") and "class" not in type_json:
        return await resolve_type(svc, target, domain_doc, type_json["id"])
    return types.normalize_type(type_json)


async def place_new(svc, target, domain_doc, body: dict, prefix: str, implicit=False):
    """Where a new object goes: (parent group id, title) from `link` or `h5path`
    (+ parent_id), creating missing groups on the way when implicit; or None."""
    link, h5path = body.get("link"), body.get("h5path")
    if link is not None and h5path is not None:
        raise BadRequest("give link or h5path, not both")
    if link is not None:
        if not isinstance(link, dict) or "id" not in link or "name" not in link:
            raise BadRequest("link needs id and name")
        name = link["name"]
        if not isinstance(name, str) or not name or "/" in name:
            raise BadRequest(f"invalid link name: {name!r}")
        limits.check_name(name, "link name")
        # the parent's existence is checked when the link is added to it
        await check_member(svc, target, domain_doc, link["id"], "g")
        return link["id"], name
    if h5path is None:
        return None
    if not isinstance(h5path, str) or not h5path.strip("/"):
        raise BadRequest("invalid h5path")
    parent_id = body.get("parent_id") or domain_doc["root"]
    if h5path.startswith("/") and parent_id != domain_doc["root"]:
        raise BadRequest("an absolute h5path needs the root as parent")
    parent = await load_object(svc, target, domain_doc, parent_id, "g")
    *dirs, name = [limits.check_name(p, "name in h5path") for p in h5path.split("/") if p]
    for part in dirs:
        link = (parent.get("links") or {}).get(part)
        if link is None:
            if not implicit:
                raise NotFound(f"{part} not found in {h5path}")
            made = await create_object(svc, target, domain_doc, "g", {},
                                       (parent["id"], part))
            parent = made
            continue
        if "id" not in link or link["id"][0] != "g":
            raise BadRequest(f"{part} in {h5path} is not a hard link to a group")
        parent = await svc.object_doc(target.bucket, link["id"])
    if name in (parent.get("links") or {}):
        raise Conflict(f"{h5path} already exists")
    return parent["id"], name


async def create_object(svc, target, domain_doc, prefix: str, fields: dict, place=None,
                        obj_id: str | None = None) -> dict:
    """Store a new object (through its DN's write-back, like any change) and link it
    where placed. A client-chosen id must not be in use; ours are random."""
    root = domain_doc["root"]
    chosen = obj_id is not None
    if obj_id is not None:
        if not ids.is_valid(obj_id, prefix) or not ids.is_v2(obj_id) \
                or not ids.same_domain(obj_id, root) or ids.is_root(obj_id):
            raise BadRequest(f"invalid id for a new object: {obj_id}")
    obj_id = obj_id or ids.new_object_id(prefix, root)
    now = clock.now()
    # keys in HSDS's order: id, root, created, lastModified, links | type, shape,
    # attributes, creationProperties
    doc = {"id": obj_id, "root": root, "created": now, "lastModified": now}
    if prefix == "g":
        doc["links"] = {}
    fields = dict(fields)
    for key in ("type", "shape"):
        if key in fields:
            doc[key] = fields.pop(key)
    doc["attributes"] = fields.pop("attributes", None) or {}
    doc.update(fields)
    store = svc.nodes.put(target.bucket, ids.object_key(obj_id), doc, obj_id, exclusive=chosen)
    if place is None:
        await store
        return doc
    # the object and its link live on (usually) different DNs: make both at once,
    # and undo the one that worked if the other did not
    parent_id, title = place
    link = object_op(svc, target, parent_id, "add_links",
                     {"links": {title: {"class": "H5L_TYPE_HARD", "id": obj_id}}})
    stored, linked = await asyncio.gather(store, link, return_exceptions=True)
    if isinstance(stored, Exception) or isinstance(linked, Exception):
        if not isinstance(stored, Exception):
            await svc.nodes.delete(target.bucket, ids.object_key(obj_id), obj_id)
        if not isinstance(linked, Exception) and linked.get("new"):
            await object_op(svc, target, parent_id, "delete_links", {"titles": [title]})
        raise stored if isinstance(stored, Exception) else linked
    return doc
