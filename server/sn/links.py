"""Links (REST_API.md §7): single and multi-link PUT/GET/POST/DELETE and listings."""
import asyncio
import fnmatch

from ..core import ids, limits
from ..core.errors import BadRequest
from ..web import json_response, read_json
from .objects import (check_member, client_link, load_object, object_op, per_object,
                      walk_groups)
from .params import flag, int_param
from .service import href, require_domain, service

HARD, SOFT, EXTERNAL = "H5L_TYPE_HARD", "H5L_TYPE_SOFT", "H5L_TYPE_EXTERNAL"


def parse_link(body, single: bool = False) -> dict:
    """A link as the client sends it -> the stored form (without `created` unless given)."""
    if not isinstance(body, dict):
        raise BadRequest("a link must be a JSON object")
    has_id, has_path = "id" in body, "h5path" in body
    if has_id == has_path:
        raise BadRequest("a link needs either id or h5path")
    if has_id:
        target = body["id"]
        if not isinstance(target, str) or len(target) < 38 or target[:2] not in ("g-", "d-", "t-"):
            raise BadRequest(f"invalid link target id: {target!r}")
        link = {"class": HARD, "id": target}
    else:
        if not isinstance(body["h5path"], str):
            raise BadRequest("h5path must be a string")
        domain = body.get("h5domain", body.get("file"))
        if domain is None:
            link = {"class": SOFT, "h5path": body["h5path"]}
        else:
            if not isinstance(domain, str):
                raise BadRequest("h5domain must be a string")
            # HSDS 1.0.2 writes `file` for a single-link PUT, the client's key otherwise
            key = "file" if single else ("h5domain" if "h5domain" in body else "file")
            link = {"class": EXTERNAL, "h5path": body["h5path"], key: domain}
    if "class" in body and body["class"] != link["class"]:
        raise BadRequest(f"link class {body['class']} does not match the link")
    if "created" in body:
        link["created"] = body["created"]
    return link


def check_title(title) -> str:
    if not isinstance(title, str) or not title or "/" in title:
        raise BadRequest(f"invalid link title: {title!r}")
    return limits.check_name(title, "link title")


def public_link(title: str, link: dict, request=None, target=None, full=True) -> dict:
    """A stored link as GET shows it: title, class and its target keys."""
    out = {"title": title, "class": link.get("class") or _implied_class(link)}
    if out["class"] == HARD:
        out["id"] = link.get("id")
        if full:
            out["collection"] = ids.COLLECTIONS.get((link.get("id") or "x")[0], "groups")
    else:
        out["h5path"] = link.get("h5path")
        if out["class"] == EXTERNAL:
            out["file"] = out["h5domain"] = link.get("file", link.get("h5domain"))
    if "created" in link:
        out["created"] = link["created"]
    if full and request is not None:
        if out["class"] == HARD:
            out["target"] = href(request, target, f"/{out['collection']}/{out['id']}")
    return out


def _implied_class(link):
    if "id" in link:
        return HARD
    return EXTERNAL if ("file" in link or "h5domain" in link) else SOFT


async def check_targets(svc, target, domain_doc, links: dict):
    """Hard link targets must exist (404) and be in this domain (400)."""
    hard = {l["id"] for l in links.values() if l["class"] == HARD}
    await asyncio.gather(*(load_object(svc, target, domain_doc, t, t[0]) for t in hard))


# ---- single link ------------------------------------------------------------

async def put_link(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "create")
    grp_id = request.match_info["id"]
    title = check_title(request.match_info["title"])
    link = parse_link(await read_json(request), single=True)
    await check_member(svc, target, domain_doc, grp_id, "g")
    await check_targets(svc, target, domain_doc, {title: link})
    result = await object_op(svc, target, grp_id, "add_links", {"links": {title: link}})
    status = 201 if result["new"] else 200
    return json_response({"hrefs": []}, status=status)


async def get_link(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    grp_id = request.match_info["id"]
    title = request.match_info["title"]
    await check_member(svc, target, domain_doc, grp_id, "g")
    found = (await object_op(svc, target, grp_id, "get_links", {"titles": [title]}))["links"]
    link = public_link(title, found[0], request, target)
    created = link.pop("created", None)
    link.pop("target", None)
    refs = [{"rel": "self", "href": href(request, target, f"/groups/{grp_id}/links/{title}")},
            {"rel": "home", "href": href(request, target, "/")},
            {"rel": "owner", "href": href(request, target, f"/groups/{grp_id}")}]
    if link["class"] == HARD:
        refs.append({"rel": "target",
                     "href": href(request, target, f"/{link['collection']}/{link['id']}")})
    return json_response({"link": link, "created": created, "lastModified": created,
                          "hrefs": refs})


async def delete_link(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "delete")
    grp_id = request.match_info["id"]
    await check_member(svc, target, domain_doc, grp_id, "g")
    await object_op(svc, target, grp_id, "delete_links",
                         {"titles": [request.match_info["title"]]})
    return json_response({})


# ---- many links -------------------------------------------------------------

def _page(items: list, key, limit, pattern):
    """Those matching pattern, at most limit (a group's own pages: metaops.list_links)."""
    if pattern:
        items = [i for i in items if fnmatch.fnmatchcase(key(i), pattern)]
    if limit is not None:
        items = items[:limit]
    return items


def ordered_links(doc: dict, create_order: bool) -> list:
    items = list((doc.get("links") or {}).items())
    if create_order:
        return sorted(items, key=lambda kv: kv[1].get("created", 0))
    return sorted(items, key=lambda kv: kv[0])


async def list_links(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    grp_id = request.match_info["id"]
    q = request.query
    limit = int_param(q, "Limit")
    create_order = flag(q, "CreateOrder")
    pattern = q.get("pattern")
    if flag(q, "follow_links"):
        doc = await load_object(svc, target, domain_doc, grp_id, "g")
        groups = await walk_groups(svc, target, doc)
        out, remaining = {}, limit
        for gid, gdoc in groups.items():
            items = _page(ordered_links(gdoc, create_order), lambda kv: kv[0], remaining,
                          pattern)
            out[gid] = [{**client_link(l), "title": t} for t, l in items]
            if remaining is not None:
                remaining = max(0, remaining - len(items))
        return json_response({"links": out, "hrefs": _list_hrefs(request, target, grp_id)})
    # the page is cut where the group lives: a big group never crosses to the SN whole
    await check_member(svc, target, domain_doc, grp_id, "g")
    page = await object_op(svc, target, grp_id, "list_links", {
        "marker": q.get("Marker"), "limit": limit, "pattern": pattern,
        "create_order": create_order})
    links = []
    for link in page["links"]:
        title = link.pop("title")
        item = public_link(title, link, request, target)
        item["href"] = href(request, target, f"/groups/{grp_id}/links/{title}")
        links.append(item)
    return json_response({"links": links, "hrefs": _list_hrefs(request, target, grp_id)})


def _list_hrefs(request, target, grp_id):
    return [{"rel": "self", "href": href(request, target, f"/groups/{grp_id}/links")},
            {"rel": "home", "href": href(request, target, "/")},
            {"rel": "owner", "href": href(request, target, f"/groups/{grp_id}")}]


async def post_links(request):
    """Fetch links: {"titles": [...]} of this group, or {"grp_ids": ...} of several."""
    svc = service(request)
    target, domain_doc = await require_domain(request, "read")
    grp_id = request.match_info["id"]
    body = await read_json(request)
    if not isinstance(body, dict) or not ({"titles", "grp_ids"} & set(body)):
        raise BadRequest("expected titles or grp_ids")
    q = request.query
    titles = body.get("titles")
    follow = flag(q, "follow_links")
    if titles is not None:
        if not isinstance(titles, list):
            raise BadRequest("titles must be a list")
        if follow or "Limit" in q or flag(q, "CreateOrder"):
            raise BadRequest("titles cannot be combined with follow_links, Limit or CreateOrder")
    grp_ids = body.get("grp_ids")
    if isinstance(grp_ids, dict):
        if titles is not None:
            raise BadRequest("titles with a grp_ids object")
        wanted = dict(grp_ids)
    elif grp_ids is not None:
        if not isinstance(grp_ids, list):
            raise BadRequest("grp_ids must be a list or an object")
        wanted = {g: titles for g in grp_ids}
    else:
        wanted = {grp_id: titles}
    await asyncio.gather(*(check_member(svc, target, domain_doc, g, "g") for g in wanted))
    limit = int_param(q, "Limit")
    pattern = q.get("pattern")
    create_order = flag(q, "CreateOrder")

    async def links_of(gid, names):
        if names is not None:
            found = await object_op(svc, target, gid, "get_links", {"titles": names})
            return [public_link(l["title"], l, full=False) for l in found["links"]]
        # cut where the group lives, as GET .../links: a big group stays on its DN
        page = await object_op(svc, target, gid, "list_links", {
            "limit": limit, "pattern": pattern, "create_order": create_order})
        return [client_link(link) for link in page["links"]]

    if follow:
        out = {}
        for gid in wanted:
            root_doc = await load_object(svc, target, domain_doc, gid, "g")
            for sub_id, sub_doc in (await walk_groups(svc, target, root_doc)).items():
                items = _page(ordered_links(sub_doc, create_order), lambda kv: kv[0],
                              None, pattern)
                out[sub_id] = [{**client_link(l), "title": t} for t, l in items]
        return json_response({"links": out})
    results = await asyncio.gather(*(links_of(g, n) for g, n in wanted.items()))
    if len(wanted) == 1 and grp_ids is None:
        return json_response({"links": results[0]})
    return json_response({"links": dict(zip(wanted, results))})


async def put_links(request):
    """Create several links: {"links": {...}} [+ "grp_ids": [...]], or
    {"grp_ids": {gid: {"links": {...}}}}. 201 if any was new, 200 if none."""
    svc = service(request)
    target, domain_doc = await require_domain(request, "create")
    grp_id = request.match_info["id"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    plan = per_object(body, grp_id, "grp_ids", "links")
    parsed = {gid: {check_title(t): parse_link(l) for t, l in links.items()}
              for gid, links in plan.items()}
    await asyncio.gather(*(check_member(svc, target, domain_doc, g, "g") for g in parsed))
    every = {f"{g}/{t}": l for g, links in parsed.items() for t, l in links.items()}
    await check_targets(svc, target, domain_doc, every)
    results = await asyncio.gather(*(
        object_op(svc, target, gid, "add_links", {"links": links})
        for gid, links in parsed.items() if links))
    new = sum(r["new"] for r in results)
    return json_response({}, status=201 if new else 200)


async def delete_links(request):
    svc = service(request)
    target, domain_doc = await require_domain(request, "delete")
    grp_id = request.match_info["id"]
    q = request.query
    raw = q.get("titles")
    if not raw:
        raise BadRequest("titles is required")
    titles = raw.split(q.get("separator") or "/")
    await check_member(svc, target, domain_doc, grp_id, "g")
    await object_op(svc, target, grp_id, "delete_links", {"titles": titles})
    return json_response({})
