"""Domains and folders: GET/PUT/DELETE /, GET /domains, and the ACL routes.

A domain document lives at '<path>/.domain.json' (STORAGE.md §3) and is owned
by the DN that 'bucket/path' hashes to. Domain documents are written through
to storage at once, so folder listings can read storage directly.
"""
import asyncio
import fnmatch

from aiohttp import web

from ..core import acl as aclmod
from ..core import clock, ids
from ..core.domain_query import parse_domain_query
from ..core.errors import BadRequest, Conflict, Forbidden, Gone, NotFound
from ..web import json_response, read_json
from . import objects
from .params import Target, check_path, flag, int_param, parent_of, split_domain, target_of
from .scan import scan
from .service import API_VERSION, COMPRESSORS, caller, href, load_domain, service


# ---- helpers ----------------------------------------------------------------

def domain_hrefs(request, target: Target, doc: dict) -> list:
    refs = [{"rel": "self", "href": href(request, target, "/")}]
    if "root" in doc:
        refs += [{"rel": "database", "href": href(request, target, "/datasets")},
                 {"rel": "groupbase", "href": href(request, target, "/groups")},
                 {"rel": "typebase", "href": href(request, target, "/datatypes")},
                 {"rel": "root", "href": href(request, target, f"/groups/{doc['root']}")}]
    else:
        refs.append({"rel": "domains", "href": href(request, target, "/domains/")})
    refs.append({"rel": "acls", "href": href(request, target, "/acls")})
    parent = parent_of(target.path)
    if parent:
        refs.append({"rel": "parent", "href": href(request, None, "/") + f"?domain={parent}"})
    return refs


def summary(doc: dict) -> dict:
    """The fields a domain or folder shows in responses and listings."""
    out = {"owner": doc.get("owner"), "created": doc.get("created"),
           "lastModified": doc.get("lastModified")}
    if "root" in doc:
        out["root"] = doc["root"]
        out["class"] = "domain"
    else:
        out["class"] = "folder"
    return out


# ---- GET / ------------------------------------------------------------------

async def get_domain(request):
    svc = service(request)
    target = target_of(request, svc.settings.bucket_name)
    if target.path is None:
        return await list_domains(request, folder="/")
    doc = await load_domain(request, target)
    q = request.query
    if q.get("h5path"):
        if "root" not in doc:
            raise BadRequest(f"{target.path} is a folder")
        body = await objects.domain_by_path(request, target, doc, q["h5path"])
        body["hrefs"] = domain_hrefs(request, target, doc) + [
            {"rel": "home", "href": href(request, target, "/")}]
        return json_response(body)
    body = summary(doc)
    if "root" in doc:
        body.update(limits=svc.limits(), compressors=COMPRESSORS, version=API_VERSION)
        if flag(q, "getdnids"):
            body["dn_ids"] = svc.nodes.ids
        if flag(q, "getobjs"):
            objs = await objects.collect(svc, target.bucket, doc["root"],
                                         limit=svc.settings.domain_req_max_objects_limit)
            if objs is not None:
                body["domain_objs"] = objs
        if flag(q, "verbose"):
            body.update(await scan(svc.store, target.bucket, doc["root"], doc))
    body["hrefs"] = domain_hrefs(request, target, doc)
    return json_response(body)


# ---- PUT / ------------------------------------------------------------------

async def put_domain(request):
    svc = service(request)
    who = caller(request)
    target = target_of(request, svc.settings.bucket_name)
    if target.path is None:
        raise BadRequest("no domain given")
    body = await read_json(request)
    body = body if isinstance(body, dict) else {}
    q = request.query
    getdnids = flag(q, "getdnids") or bool(body.get("getdnids"))
    if any(flag(q, k) or body.get(k) for k in ("flush", "rescan")):
        return await flush_domain(request, target, getdnids)

    is_folder = flag(q, "folder") or bool(body.get("folder"))
    owner = body.get("owner") or who.user
    if owner != who.user and not who.admin:
        raise Forbidden("only an admin may create a domain for another user")
    linked = body.get("linked_domain")
    if linked and is_folder:
        raise BadRequest("a folder cannot be a linked domain")
    parent = parent_of(target.path)
    parent_doc = None
    if parent is None:
        if not who.admin:
            raise Forbidden("only an admin may create top-level domains")
    else:
        try:
            parent_doc = await svc.domain_doc(Target(target.bucket, parent))
        except (NotFound, Gone):
            raise NotFound(f"parent folder {parent} does not exist") from None
        if "root" in parent_doc:
            raise BadRequest(f"parent {parent} is a domain, not a folder")
        svc.require(who, parent_doc, "create")
    svc.forget_domain(target)
    try:
        await svc.domain_doc(target)
        raise Conflict(f"{target.path} already exists")
    except (NotFound, Gone):
        pass

    now = clock.now()
    doc = {}
    if linked:
        root_id = await linked_root(request, target, linked, body)
        doc["root"] = root_id
    elif not is_folder:
        root_id = body.get("root_id") or ids.new_root_id()   # h5pyd 1.0 may choose it
        if not (ids.is_valid(root_id, "g") and ids.is_v2(root_id) and ids.is_root(root_id)):
            raise BadRequest(f"invalid root_id: {root_id}")
        group = {"id": root_id, "root": root_id, "created": now, "lastModified": now,
                 "links": {}, "attributes": {}}
        props = (body.get("group") or {}).get("creationProperties") \
            if isinstance(body.get("group"), dict) else None
        if props is not None:
            group["creationProperties"] = props
        await svc.nodes.put(target.bucket, ids.object_key(root_id), group, root_id,
                            exclusive=True, sync=True)
        doc["root"] = root_id
    admins = (svc.settings.admin_user,)
    doc.update(owner=owner, acls=aclmod.initial_acls(
        owner, parent_doc and parent_doc.get("acls"), is_folder,
        svc.settings.default_public, admins), created=now, lastModified=now)
    svc.forget_domain(target)
    try:
        await svc.nodes.put(target.bucket, ids.domain_key(target.path), doc,
                            target.qualified, exclusive=True, sync=True)
    except Conflict:
        if "root" in doc and not linked:   # lost a race: undo our root group
            await svc.nodes.delete(target.bucket, ids.object_key(doc["root"]), doc["root"])
        raise
    rsp = {k: doc[k] for k in ("root", "owner", "acls", "created", "lastModified") if k in doc}
    if not is_folder:
        rsp.update(limits=svc.limits(), compressors=COMPRESSORS, version=API_VERSION)
    if getdnids:
        rsp["dn_ids"] = svc.nodes.ids
    return json_response(rsp, status=201)


async def linked_root(request, target, linked: str, body: dict) -> str:
    svc = service(request)
    other = Target(body.get("linked_bucket") or target.bucket,
                   target_of_path(linked), target.by_query)
    other_doc = await svc.domain_doc(other)
    if "root" not in other_doc:
        raise BadRequest("linked_domain must be a domain, not a folder")
    svc.require(caller(request), other_doc, "read")
    svc.require(caller(request), other_doc, "delete")
    return other_doc["root"]


def target_of_path(raw: str) -> str:
    return check_path(split_domain(raw)[1])


async def flush_domain(request, target: Target, getdnids: bool):
    svc = service(request)
    doc = await load_domain(request, target, "update")
    if "root" in doc:
        generation = svc.executor.generation
        await svc.nodes.flush_all()
        svc.executor.flushed(generation)
    if getdnids:
        return json_response({"dn_ids": svc.nodes.ids})
    return web.Response(status=204)


# ---- DELETE / ---------------------------------------------------------------

async def delete_domain(request):
    svc = service(request)
    who = caller(request)
    target = target_of(request, svc.settings.bucket_name)
    if target.path is None:
        raise BadRequest("no domain given")
    body = await read_json(request)
    body = body if isinstance(body, dict) else {}
    q = request.query
    if flag(q, "meta_only") or body.get("meta_only"):
        return json_response({})
    if parent_of(target.path) is None and not who.admin:
        raise Forbidden("only an admin may delete top-level domains")
    doc = await load_domain(request, target, "delete")
    if "root" not in doc:
        async for _ in svc.store.list_dirs(target.bucket, target.path.lstrip("/") + "/"):
            raise Conflict("folder has sub-items")
    svc.forget_domain(target)
    await svc.nodes.delete(target.bucket, ids.domain_key(target.path), target.qualified)
    svc.forget_domain(target)
    keep_root = flag(q, "keep_root") or bool(body.get("keep_root"))
    if "root" in doc and not keep_root:
        root_id = doc["root"]
        await svc.nodes.drop_all(target.bucket, ids.root_prefix(root_id), root_id)
    return json_response(None)


# ---- GET /domains -----------------------------------------------------------

async def get_domains(request):
    svc = service(request)
    target = target_of(request, svc.settings.bucket_name, folder_ok=True)
    return await list_domains(request, folder=target.path or "/")


async def list_domains(request, folder: str):
    svc = service(request)
    target = target_of(request, svc.settings.bucket_name, folder_ok=True)
    q = request.query
    limit = int_param(q, "Limit")
    if limit is not None and limit < 0:
        raise BadRequest("Limit must not be negative")
    marker = q.get("Marker")
    pattern = q.get("pattern")
    query = parse_domain_query(q["query"]) if q.get("query") else None
    if folder == "/" and svc.settings.top_level_domains:
        names = sorted(svc.settings.top_level_domains)
    else:
        prefix = "" if folder == "/" else folder.lstrip("/") + "/"
        # folders up to the marker are not even listed (a page costs the same at the end)
        after = marker[len(prefix) + 1:] if marker and marker.startswith("/" + prefix) \
            and "/" not in marker[len(prefix) + 1:] else ""
        names = ["/" + d.rstrip("/")
                 async for d in svc.store.list_dirs(target.bucket, prefix, after)]
    if marker:
        names = [n for n in names if n > marker]
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n.rsplit("/", 1)[-1], pattern)]
    items = []
    # read documents a page at a time (no more than asked for), keeping listing order;
    # strays (db/, ref/) drop out
    step = min(64, limit) if limit else 64
    for start in range(0, len(names), step):
        docs = await asyncio.gather(*(read_doc(svc, target.bucket, n)
                                      for n in names[start:start + step]))
        if query is not None:
            docs = await asyncio.gather(*(_matching(svc, target.bucket, doc, query)
                                          for doc in docs))
        for name, doc in zip(names[start:start + step], docs):
            if doc is None:
                continue
            item = {"name": name, **summary(doc)}
            if flag(q, "verbose") and "root" in doc:
                item.update(await scan(svc.store, target.bucket, doc["root"], doc))
            item["hrefs"] = [{"rel": "domain", "href": href(request, None, "/") + f"?domain={name}"}]
            items.append(item)
            if limit is not None and len(items) >= limit:
                break
        if limit is not None and len(items) >= limit:
            break
    return json_response({"domains": items, "hrefs": [
        {"rel": "self", "href": href(request, None, "/domains")}]})


async def _matching(svc, bucket: str, doc, query) -> dict | None:
    """doc when its root group's attributes satisfy the query (folders never do)."""
    if doc is None or "root" not in doc:
        return None
    try:
        root = await svc.object_doc(bucket, doc["root"])
    except (NotFound, Gone):
        return None
    return doc if query.matches(root.get("attributes") or {}) else None


async def read_doc(svc, bucket: str, path: str) -> dict | None:
    try:
        doc = await svc.domain_doc(Target(bucket, path))
    except (NotFound, Gone, BadRequest):
        return None
    return doc if isinstance(doc, dict) else None


# ---- ACLs -------------------------------------------------------------------

def acl_hrefs(request, target, doc) -> list:
    refs = [{"rel": "self", "href": href(request, target, "/acls")}]
    if "root" in doc:
        refs.append({"rel": "root", "href": href(request, target, f"/groups/{doc['root']}")})
    refs += [{"rel": "home", "href": href(request, target, "/")},
             {"rel": "owner", "href": href(request, target, "/")}]
    return refs


async def _acl_target(request):
    svc = service(request)
    target = target_of(request, svc.settings.bucket_name)
    if target.path is None:
        raise BadRequest("no domain given")
    return target


async def get_acls(request):
    target = await _acl_target(request)
    doc = await load_domain(request, target, "readACL")
    acls = doc.get("acls") or {}
    items = [{"userName": name, **acls[name]} for name in sorted(acls)]
    return json_response({"acls": items, "hrefs": acl_hrefs(request, target, doc)})


async def get_acl(request):
    target = await _acl_target(request)
    user = request.match_info["user"]
    who = caller(request)
    action = "read" if user in (who.user, aclmod.DEFAULT) else "readACL"
    doc = await load_domain(request, target, action)
    acls = doc.get("acls") or {}
    if user not in acls:
        raise NotFound(f"no ACL for {user}")
    return json_response({"acl": {"userName": user, **acls[user]},
                          "hrefs": acl_hrefs(request, target, doc)})


async def put_acl(request):
    svc = service(request)
    target = await _acl_target(request)
    user = request.match_info["user"]
    flags = aclmod.parse_update(await read_json(request))
    await load_domain(request, target, "updateACL")
    await svc.nodes.apply(target.bucket, ids.domain_key(target.path), target.qualified,
                          "set_acl", {"user": user, "flags": flags,
                                      "domain": target.qualified}, sync=True)
    svc.forget_domain(target)
    return json_response({}, status=201)
