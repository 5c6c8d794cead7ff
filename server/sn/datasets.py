"""Datasets (REST_API.md §10): create, shape and type, resize. GET and DELETE of the
object itself are the generic ones in objects.py; values are in values.py."""

from ..core import initializers, layout, shapes
from ..core.errors import BadRequest
from ..core.types import for_clients
from ..web import json_response, read_json
from .objects import load_object, object_op, resolve_type
from .service import COMPRESSORS, href, require_domain, service
from .values import clear_region


async def dataset_fields(svc, target, domain_doc, body: dict) -> dict:
    """Validate a creation body -> the document fields (type, shape, creationProperties)."""
    if "type" not in body:
        raise BadRequest("a dataset needs a type")
    type_json = await resolve_type(svc, target, domain_doc, body["type"])
    shape = body.get("shape")
    if isinstance(shape, dict):
        raise BadRequest("shape must be a list, an integer or H5S_SCALAR/H5S_NULL")
    shape = shapes.parse_maxdims(shapes.parse_shape(shape), body.get("maxdims"))
    props = body.get("creationProperties") or {}
    if not isinstance(props, dict):
        raise BadRequest("creationProperties must be an object")
    props = dict(props)
    if "filters" in props:
        if shape["class"] == "H5S_NULL":
            raise BadRequest("a null-space dataset has no filters")
        props["filters"] = layout.normalize_filters(props["filters"], COMPRESSORS)
    layout.check_fill_value(props, type_json)
    initializers.check(props, type_json, shapes.dims_of(shape))
    settings = svc.settings
    _, stored = layout.creation_layout(type_json, shape, props, settings.min_chunk_size,
                                       settings.max_chunk_size)
    chunk_table = (stored.get("layout") or {}).get("chunk_table")
    if chunk_table:
        table = await load_object(svc, target, domain_doc, chunk_table, "d")
        if (table.get("shape") or {}).get("class") != "H5S_SIMPLE":
            raise BadRequest("the chunk table must be a simple dataset")
    return {"type": type_json, "shape": shape, "creationProperties": stored}


def _refs(request, target, dset_id, root_id, tail):
    return [{"rel": "self", "href": href(request, target, f"/datasets/{dset_id}{tail}")},
            {"rel": "owner", "href": href(request, target, f"/datasets/{dset_id}")},
            {"rel": "root", "href": href(request, target, f"/groups/{root_id}")}]


async def get_shape(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    dset_id = request.match_info["id"]
    doc = await load_object(svc, target, domain_doc, dset_id, "d")
    return json_response({"shape": doc["shape"], "created": doc.get("created"),
                          "lastModified": doc.get("lastModified"),
                          "hrefs": _refs(request, target, dset_id, domain_doc["root"],
                                         "/shape")})


async def get_type(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    dset_id = request.match_info["id"]
    doc = await load_object(svc, target, domain_doc, dset_id, "d")
    return json_response({"type": for_clients(doc["type"]),
                          "hrefs": _refs(request, target, dset_id, domain_doc["root"],
                                         "/type")})


async def put_shape(request):
    """Resize (§10.8): the DN changes the shape atomically; a shrink then resets the
    cut-off part of the chunks to the fill value, so a later extend shows fill."""
    svc = service(request)
    target, domain_doc = await require_domain(request, "update")
    dset_id = request.match_info["id"]
    await load_object(svc, target, domain_doc, dset_id, "d")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    result = await object_op(svc, target, dset_id, "resize", {"body": body})
    old, new = result["old_dims"], result["new_dims"]
    if any(n < o for n, o in zip(new, old)):
        doc = await svc.object_doc(target.bucket, dset_id)
        await clear_region(svc, target, doc, old, new)
    out = {"selection": result["selection"]} if result.get("selection") else {}
    return json_response(out, status=201)
