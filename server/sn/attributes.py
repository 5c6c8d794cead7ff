"""Attributes (REST_API.md §8) on groups, datasets and committed datatypes.

Attributes live inside their object's JSON as {type, shape, value, created
[, encoding]}. A value is checked by converting it to numpy, but what the
client sent is what is stored and returned (HSDS keeps it verbatim).
"""
import asyncio
import base64
import binascii
import fnmatch
import math

from aiohttp import web

from ..core import limits, shapes, types, values
from ..core.errors import BadRequest, NotFound
from ..web import json_response, read_json
from .objects import check_member, load_object, object_op, per_object, resolve_type, walk
from .params import flag, int_param
from .service import href, require_domain, service

BINARY = "application/octet-stream"
ROUTE_PREFIX = {"groups": "g", "datasets": "d", "datatypes": "t"}


def _prefix(request) -> str:
    return ROUTE_PREFIX[request.path.strip("/").split("/")[0]]


# ---- values -------------------------------------------------------------------

def _dims(shape: dict) -> tuple:
    dims = shapes.dims_of(shape)
    return () if dims is None else dims


def decode_base64(text, type_json, shape) -> bytes:
    if types.is_variable(type_json):
        raise BadRequest("base64 values are not allowed for variable-length types")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadRequest("value is not valid base64") from None
    expected = types.item_size(type_json) * shapes.element_count(shape)
    if len(raw) != expected:
        raise BadRequest(f"base64 value has {len(raw)} bytes, expected {expected}")
    return raw


def from_packed(raw: bytes, type_json, shape) -> tuple:
    """Packed bytes -> (stored value, encoding): JSON when it can be, else base64."""
    arr = values.from_bytes(raw, type_json, _dims(shape))
    try:
        return values.to_json(arr, type_json), None
    except BadRequest:
        return base64.b64encode(raw).decode("ascii"), "base64"


def stored_attribute(body, type_json: dict) -> dict:
    """Check one attribute body (§8.2) whose type is already resolved -> stored form."""
    shape = shapes.parse_shape(body.get("shape"), attribute=True)
    attr = {"type": type_json, "shape": shape}
    value = body.get("value")
    if shape["class"] == "H5S_NULL":
        if value is not None:
            raise BadRequest("a null-space attribute has no value")
        attr["value"] = None
    elif body.get("encoding") is not None:
        if body["encoding"] != "base64":
            raise BadRequest(f"unknown encoding: {body['encoding']}")
        raw = decode_base64(value, type_json, shape)
        attr["value"], encoding = from_packed(raw, type_json, shape)
        if encoding:
            attr["encoding"] = encoding
    else:
        if value is not None:
            values.from_json(value, type_json, _dims(shape))   # validates; kept verbatim
        attr["value"] = value
    if "created" in body:
        attr["created"] = body["created"]
    return attr


def _nan_to_null(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_nan_to_null(v) for v in value]
    return value


def public_attribute(name: str, attr: dict, q, include_data=True) -> dict:
    """An attribute as GET shows it, honouring encoding=base64 and ignore_nan."""
    out = {"name": name, "type": types.for_clients(attr.get("type")),
           "shape": attr.get("shape")}
    if include_data:
        out.update(render_value(attr, q))
    out["created"] = attr.get("created")
    return out


def render_value(attr: dict, q) -> dict:
    encoding = q.get("encoding")
    if encoding not in (None, "", "base64"):
        raise BadRequest(f"unknown encoding: {encoding}")
    value = attr.get("value")
    if attr.get("encoding") == "base64":
        return {"value": value, "encoding": "base64"}
    if encoding == "base64" and value is not None and not types.is_variable(attr["type"]):
        arr = values.from_json(value, attr["type"], _dims(attr["shape"]))
        raw = values.to_bytes(arr, attr["type"])
        return {"value": base64.b64encode(raw).decode("ascii"), "encoding": "base64"}
    if flag(q, "ignore_nan"):
        value = _nan_to_null(value)
    return {"value": value}


def estimated_size(attr: dict) -> int:
    size = types.item_size(attr["type"])
    size = 512 if size == "H5T_VARIABLE" else size
    return size * shapes.element_count(attr["shape"])


# ---- single attribute ---------------------------------------------------------------

async def put_attribute(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "create")
    obj_id = request.match_info["id"]
    await check_member(svc, target, domain_doc, obj_id, _prefix(request))
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    attrs = await parse_attributes(svc, target, domain_doc,
                                   {request.match_info["name"]: body})
    result = await object_op(svc, target, obj_id, "put_attributes", {
        "attributes": attrs, "replace": flag(request.query, "replace")})
    return json_response({}, status=201 if result["new"] else 200)


async def parse_attributes(svc, target, domain_doc, bodies: dict) -> dict:
    """name -> body (§8.2) -> name -> stored attribute; committed types resolved once."""
    out = {}
    for name, body in bodies.items():
        limits.check_name(name, "attribute name")
        if not isinstance(body, dict) or "type" not in body:
            raise BadRequest(f"attribute {name} needs a type")
        type_json = await resolve_type(svc, target, domain_doc, body["type"])
        out[name] = stored_attribute(body, type_json)
    return out


async def _one(request, action):
    svc = service(request)
    target, domain_doc = await require_domain(request, action)
    obj_id = request.match_info["id"]
    await check_member(svc, target, domain_doc, obj_id, _prefix(request))
    name = request.match_info["name"]
    found = await object_op(svc, target, obj_id, "get_attributes", {"names": [name]})
    return svc, target, obj_id, name, found["attributes"][0]


async def get_attribute(request):
    _, target, obj_id, name, attr = await _one(request, "read")
    q = request.query
    include = q.get("IncludeData", "1") not in ("0", "", "false")
    body = public_attribute(name, attr, q, include)
    body["lastModified"] = attr.get("created")
    col = request.path.strip("/").split("/")[0]
    body["hrefs"] = _attr_hrefs(request, target, col, obj_id, f"/attributes/{name}")
    return json_response(body)


def _attr_hrefs(request, target, col, obj_id, tail):
    return [{"rel": "self", "href": href(request, target, f"/{col}/{obj_id}{tail}")},
            {"rel": "home", "href": href(request, target, "/")},
            {"rel": "owner", "href": href(request, target, f"/{col}/{obj_id}")}]


async def delete_attribute(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "delete")
    obj_id = request.match_info["id"]
    await check_member(svc, target, domain_doc, obj_id, _prefix(request))
    await object_op(svc, target, obj_id, "delete_attributes",
                    {"names": [request.match_info["name"]]})
    return json_response({})


async def get_attribute_value(request):
    _, target, obj_id, name, attr = await _one(request, "read")
    if attr["shape"].get("class") == "H5S_NULL":
        raise BadRequest("a null-space attribute has no value")
    type_json = attr["type"]
    wants_binary = BINARY in request.headers.get("Accept", "")
    if wants_binary and not types.is_variable(type_json):
        dims = _dims(attr["shape"])
        if attr.get("encoding") == "base64":
            raw = base64.b64decode(attr["value"])
        elif attr.get("value") is None:
            raw = bytes(types.item_size(type_json) * shapes.element_count(attr["shape"]))
        else:
            raw = values.to_bytes(values.from_json(attr["value"], type_json, dims), type_json)
        return web.Response(body=raw, content_type=BINARY)
    body = render_value(attr, request.query)
    col = request.path.strip("/").split("/")[0]
    body["hrefs"] = _attr_hrefs(request, target, col, obj_id, f"/attributes/{name}/value")
    return json_response(body)


async def put_attribute_value(request):
    svc, target, obj_id, name, attr = await _one(request, "update")
    type_json, shape = attr["type"], attr["shape"]
    if shape.get("class") == "H5S_NULL":
        raise BadRequest("a null-space attribute has no value")
    content_type = request.headers.get("Content-Type", "")
    encoding = None
    if BINARY in content_type:
        if types.is_variable(type_json):
            raise BadRequest("binary values are not allowed for variable-length types")
        raw = await request.read()
        expected = types.item_size(type_json) * shapes.element_count(shape)
        if len(raw) != expected:
            raise BadRequest(f"body has {len(raw)} bytes, expected {expected}")
        value, encoding = from_packed(raw, type_json, shape)
    elif content_type and "json" not in content_type:
        raise BadRequest(f"unsupported content type: {content_type}")
    else:
        body = await read_json(request)
        if not isinstance(body, dict) or "value" not in body:
            raise BadRequest("expected {\"value\": ...}")
        value = body["value"]
        if body.get("encoding") is not None:
            if body["encoding"] != "base64":
                raise BadRequest(f"unknown encoding: {body['encoding']}")
            value, encoding = from_packed(decode_base64(value, type_json, shape), type_json,
                                          shape)
        elif value is not None:
            values.from_json(value, type_json, _dims(shape))
    await object_op(svc, target, obj_id, "set_attribute_value",
                    {"name": name, "value": value, "encoding": encoding})
    return json_response({})


# ---- many attributes ---------------------------------------------------------------

def _ordered(doc: dict, create_order: bool) -> list:
    items = list((doc.get("attributes") or {}).items())
    if create_order:
        return sorted(items, key=lambda kv: kv[1].get("created", 0))
    return sorted(items, key=lambda kv: kv[0])


def _listing(items, q, include_data, max_size, with_href=None) -> list:
    out = []
    for name, attr in items:
        show = include_data and not (max_size and estimated_size(attr) > max_size)
        item = public_attribute(name, attr, q, show)
        if with_href:
            item["href"] = with_href(name)
        out.append(item)
    return out


async def list_attributes(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    obj_id = request.match_info["id"]
    col = request.path.strip("/").split("/")[0]
    doc = await load_object(svc, target, domain_doc, obj_id, _prefix(request))
    q = request.query
    include = flag(q, "IncludeData")
    max_size = int_param(q, "max_data_size", 0)
    limit = int_param(q, "Limit")
    pattern = q.get("pattern")
    create_order = flag(q, "CreateOrder")
    if flag(q, "follow_links"):
        if col != "groups":
            raise BadRequest("follow_links works on groups only")
        found = await walk(svc, target.bucket, doc)
        out, remaining = {}, limit
        for oid, odoc in found.items():
            items = _filter(_ordered(odoc, create_order), pattern)
            if remaining is not None:
                items, remaining = items[:remaining], max(0, remaining - len(items))
            out[oid] = _listing(items, q, include, max_size)
        return json_response({"attributes": out,
                              "hrefs": _attr_hrefs(request, target, col, obj_id, "/attributes")})
    items = _filter(_ordered(doc, create_order), pattern)
    marker = q.get("Marker")
    if marker is not None:
        names = [n for n, _ in items]
        if marker not in names:
            raise NotFound(f"marker {marker} not found")
        items = items[names.index(marker) + 1:]
    if limit is not None:
        items = items[:limit]
    listing = _listing(items, q, include, max_size, lambda n: href(
        request, target, f"/{col}/{obj_id}/attributes/{n}"))
    return json_response({"attributes": listing,
                          "hrefs": _attr_hrefs(request, target, col, obj_id, "/attributes")})


def _filter(items, pattern):
    if not pattern:
        return items
    return [(n, a) for n, a in items if fnmatch.fnmatchcase(n, pattern)]


async def post_attributes(request):
    """Fetch several: {"attr_names": [...]} of this object, or {"obj_ids": ...}."""
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    obj_id = request.match_info["id"]
    body = await read_json(request)
    if not isinstance(body, dict) or not ({"attr_names", "obj_ids"} & set(body)):
        raise BadRequest("expected attr_names or obj_ids")
    q = request.query
    include = flag(q, "IncludeData")
    max_size = int_param(q, "max_data_size", 0)
    names = body.get("attr_names")
    if names is not None and not isinstance(names, list):
        raise BadRequest("attr_names must be a list")
    obj_ids = body.get("obj_ids")
    if isinstance(obj_ids, dict):
        if names is not None:
            raise BadRequest("attr_names with an obj_ids object")
        wanted = dict(obj_ids)
    elif obj_ids is not None:
        if not isinstance(obj_ids, list):
            raise BadRequest("obj_ids must be a list or an object")
        wanted = {o: None for o in obj_ids}     # HSDS returns all of each (quirk)
    else:
        wanted = {obj_id: names}
    await asyncio.gather(*(check_member(svc, target, domain_doc, o, str(o)[:1]) for o in wanted))

    async def attrs_of(oid, wanted_names):
        if wanted_names is not None:
            found = await object_op(svc, target, oid, "get_attributes", {"names": wanted_names})
            items = [(a["name"], a) for a in found["attributes"]]
        else:
            doc = await load_object(svc, target, domain_doc, oid, oid[0])
            items = _ordered(doc, False)
        return _listing(items, q, include, max_size)

    results = await asyncio.gather(*(attrs_of(o, n) for o, n in wanted.items()))
    if obj_ids is None:
        return json_response({"attributes": results[0]})
    return json_response({"attributes": dict(zip(wanted, results))})


async def put_attributes(request):
    """Create several: {"attributes": {...}} [+ obj_ids list], {"obj_ids": {id: {...}}},
    or one attribute with its name in the body."""
    svc = service(request)
    target, domain_doc = await require_domain(request, "create")
    obj_id = request.match_info["id"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    if "attributes" not in body and "name" in body and not isinstance(body.get("obj_ids"), dict):
        # one attribute, named in the body (for this object or an obj_ids list)
        body = {"attributes": {body["name"]: body}, "obj_ids": body.get("obj_ids")}
    plan = per_object(body, obj_id, "obj_ids", "attributes")
    await asyncio.gather(*(check_member(svc, target, domain_doc, o, str(o)[:1]) for o in plan))
    parsed = {oid: await parse_attributes(svc, target, domain_doc, attrs)
              for oid, attrs in plan.items()}
    replace = flag(request.query, "replace")
    results = await asyncio.gather(*(
        object_op(svc, target, oid, "put_attributes", {"attributes": a, "replace": replace})
        for oid, a in parsed.items() if a))
    return json_response({}, status=201 if sum(r["new"] for r in results) else 200)


async def delete_attributes(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "delete")
    obj_id = request.match_info["id"]
    q = request.query
    raw = q.get("attr_names")
    if not raw:
        raise BadRequest("attr_names is required")
    encoding = q.get("encoding")
    if encoding:
        if encoding != "base64":
            raise BadRequest(f"unknown encoding: {encoding}")
        try:
            raw = base64.b64decode(raw).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest("attr_names is not valid base64") from None
    names = raw.split(q.get("separator") or "/")
    await check_member(svc, target, domain_doc, obj_id, _prefix(request))
    await object_op(svc, target, obj_id, "delete_attributes", {"names": names})
    return json_response({"hrefs": []})
