"""Groups, datasets and datatypes as the client sees them (GET), and domain walks."""
import asyncio

from ..core import ids
from ..core.errors import BadRequest, Gone, NotFound
from ..web import json_response
from .params import flag
from .service import href, require_domain, service


async def load_object(svc, target, domain_doc: dict, obj_id: str, prefix: str) -> dict:
    """An object of the request's domain, checked in HSDS's order:
    malformed or wrong kind -> 400, unknown -> 404, deleted -> 410, other domain -> 400."""
    if not ids.is_valid(obj_id, prefix):
        raise BadRequest(f"invalid id: {obj_id}")
    if not ids.is_v2(obj_id):
        raise NotFound(f"{obj_id} not found")
    doc = await svc.object_doc(target.bucket, obj_id)
    if not ids.same_domain(obj_id, domain_doc["root"]):
        raise BadRequest(f"{obj_id} is not a member of {target.path}")
    return doc


def public_json(doc: dict, target, include_links=False, include_attrs=False) -> dict:
    """An object document as GET returns it."""
    out = {"id": doc["id"], "root": doc.get("root"), "created": doc.get("created"),
           "lastModified": doc.get("lastModified")}
    kind = doc["id"][0]
    if kind == "g":
        out["linkCount"] = len(doc.get("links") or {})
    else:
        out["type"] = doc.get("type")
    if kind == "d":
        out["shape"] = doc.get("shape")
        out["layout"] = doc.get("layout") or (doc.get("creationProperties") or {}).get("layout", {})
    out["attributeCount"] = len(doc.get("attributes") or {})
    if "creationProperties" in doc or kind == "d":
        out["creationProperties"] = doc.get("creationProperties") or {}
    if include_links and kind == "g":
        out["links"] = doc.get("links") or {}
    if include_attrs:
        out["attributes"] = doc.get("attributes") or {}
    out["domain"] = target.path
    out["bucket"] = target.bucket
    return out


async def get_group(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    obj_id = request.match_info["id"]
    doc = await load_object(svc, target, domain_doc, obj_id, "g")
    q = request.query
    body = public_json(doc, target, flag(q, "include_links"), flag(q, "include_attrs"))
    body["hrefs"] = [{"rel": rel, "href": href(request, target, path)} for rel, path in (
        ("self", f"/groups/{obj_id}"), ("links", f"/groups/{obj_id}/links"),
        ("root", f"/groups/{domain_doc['root']}"), ("home", "/"),
        ("attributes", f"/groups/{obj_id}/attributes"))]
    return json_response(body)


async def collect(svc, bucket: str, root_id: str, include_attrs=False, limit=500):
    """Every object reachable from the root by hard links, as stored (attributes only
    when asked); None when there are more than limit."""
    found: dict = {}
    frontier = [root_id]
    while frontier:
        docs = await asyncio.gather(*(_try_doc(svc, bucket, i) for i in frontier),
                                    return_exceptions=False)
        frontier = []
        for doc in docs:
            if doc is None or doc["id"] in found:
                continue
            entry = {k: v for k, v in doc.items() if include_attrs or k != "attributes"}
            if doc["id"][0] == "g":
                entry["linkCount"] = len(doc.get("links") or {})
            entry["attributeCount"] = len(doc.get("attributes") or {})
            found[doc["id"]] = entry
            if len(found) > limit:
                return None
            for link in (doc.get("links") or {}).values():
                target = link.get("id")
                if link.get("class", "H5L_TYPE_HARD") == "H5L_TYPE_HARD" and target \
                        and target not in found and ids.is_v2(target):
                    frontier.append(target)
        frontier = list(dict.fromkeys(frontier))
    return found


async def _try_doc(svc, bucket, obj_id):
    try:
        return await svc.object_doc(bucket, obj_id)
    except (NotFound, Gone):
        return None
