"""Object creation: POST /groups, /datasets and /datatypes (REST_API.md §6, §9, §10).

One mechanism for all three: a body is one object or a list of them; each may be
placed by `link` or `h5path`, and carry its `attributes` (and, for a group, its
`links`), stored with the object as HSDS 1.0.2 does. Every item is checked before
anything is stored, so a refused request leaves storage as it was.
"""
import asyncio

from ..core import clock, types
from ..core.errors import BadRequest
from ..web import json_response, read_json
from .attributes import parse_attributes
from .datasets import dataset_fields
from .links import check_targets, check_title, parse_link
from .objects import create_object, place_new
from .params import flag
from .service import require_domain, service
from .values import write_json_value

# keys a group body may have (h5pyd 1.0 sends created/lastModified with its ids)
GROUP_KEYS = {"id", "link", "h5path", "parent_id", "creationProperties", "attributes",
              "links", "created", "lastModified"}


def _stamped(items: dict) -> dict:
    """Attributes or links as stored: each with its `created` (the client's if given)."""
    out = {}
    for name, item in items.items():
        created = item.get("created")
        if isinstance(created, bool) or not isinstance(created, (int, float)):
            created = clock.now()
        out[name] = {**item, "created": created}
    return out


def _group_fields(body: dict) -> dict:
    unknown = sorted(set(body) - GROUP_KEYS)
    if unknown:
        raise BadRequest(f"unknown keys for a group: {', '.join(unknown)}")
    props = body.get("creationProperties")
    if props is not None and not isinstance(props, dict):
        raise BadRequest("creationProperties must be an object")
    return {"creationProperties": props or {}}


def _datatype_fields(body: dict) -> dict:
    if "type" not in body:
        raise BadRequest("a datatype needs a type")
    if isinstance(body["type"], str) and body["type"].startswith("t-"):
        raise BadRequest("a committed type cannot be made from another's id")
    return {"type": types.normalize_type(body["type"])}


async def _fields(svc, target, domain_doc, prefix: str, body: dict) -> dict:
    """The new document's fields: its own (type, shape, properties), attributes, links."""
    if prefix == "g":
        fields = _group_fields(body)
    elif prefix == "t":
        fields = _datatype_fields(body)
    else:
        fields = await dataset_fields(svc, target, domain_doc, body)
    attrs = body.get("attributes")
    if attrs is not None:
        if not isinstance(attrs, dict):
            raise BadRequest("attributes must be an object keyed by name")
        fields["attributes"] = _stamped(await parse_attributes(svc, target, domain_doc,
                                                               attrs))
    links = body.get("links")
    if links is not None:
        if prefix != "g":
            raise BadRequest("only groups have links")
        if not isinstance(links, dict):
            raise BadRequest("links must be an object keyed by title")
        fields["links"] = _stamped({check_title(t): parse_link(l) for t, l in links.items()})
    if body.get("id") is not None and not isinstance(body["id"], str):
        raise BadRequest("id must be a string")
    return fields


async def _check_links(svc, target, domain_doc, plans):
    """Hard links made with a group must point at objects of this domain: ones that
    exist, or ones this same request creates."""
    made = {body.get("id") for body, _, _ in plans}
    every = {f"{i}/{t}": l for i, (_, fields, _) in enumerate(plans)
             for t, l in (fields.get("links") or {}).items() if l.get("id") not in made}
    if every:
        await check_targets(svc, target, domain_doc, every)


def created_json(doc: dict) -> dict:
    """The answer to a creation, as HSDS 1.0.2 gives it."""
    out = {"id": doc["id"], "root": doc["root"], "created": doc["created"],
           "lastModified": doc["lastModified"], "attributeCount": len(doc["attributes"])}
    if doc["id"][0] == "g":
        out["linkCount"] = len(doc.get("links") or {})
    else:
        out["type"] = types.for_clients(doc.get("type"))
    if doc["id"][0] == "d":
        out["shape"] = doc.get("shape")
        out["creationProperties"] = doc.get("creationProperties") or {}
    return out


async def post_objects(request, prefix: str):
    svc = service(request)
    target, domain_doc = await require_domain(request, "create")
    body = await read_json(request)
    many = isinstance(body, list)
    if body is None and prefix == "g":
        body = {}                           # an anonymous group
    items = body if many else [body]
    if not all(isinstance(item, dict) for item in items):
        raise BadRequest("each object must be a JSON object")
    fields = await asyncio.gather(*(_fields(svc, target, domain_doc, prefix, item)
                                    for item in items))
    implicit = flag(request.query, "implicit")
    places = []
    for item in items:       # in order: an h5path may create the groups on its way
        places.append(await place_new(svc, target, domain_doc, item, prefix, implicit))
    plans = list(zip(items, fields, places))
    await _check_links(svc, target, domain_doc, plans)

    async def make(item, doc_fields, place):
        doc = await create_object(svc, target, domain_doc, prefix, doc_fields, place,
                                  item.get("id"))
        if prefix == "d" and item.get("value") is not None:
            await write_json_value(svc, target, doc, item["value"])
        return doc

    made = await asyncio.gather(*(make(*plan) for plan in plans))
    if many:
        return json_response({"objects": [created_json(d) for d in made]}, status=201)
    return json_response(created_json(made[0]), status=201)


async def post_group(request):
    return await post_objects(request, "g")


async def post_dataset(request):
    return await post_objects(request, "d")


async def post_datatype(request):
    return await post_objects(request, "t")
