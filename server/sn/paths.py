"""Finding objects by h5path (REST_API.md §4.2, §6.2): hard links always, soft and
external links only when the caller says so (else 400)."""
from dataclasses import dataclass

from ..core import ids
from ..core.errors import BadRequest, NotFound
from .params import Target, check_path, split_domain

MAX_HOPS = 32      # soft/external link hops before we call it a loop


@dataclass
class Found:
    target: Target          # the domain the object lives in (external links move it)
    domain_doc: dict
    obj_id: str
    doc: dict


class Resolver:
    def __init__(self, svc, caller, follow_soft=False, follow_external=False):
        self.svc = svc
        self.caller = caller
        self.follow_soft = follow_soft
        self.follow_external = follow_external
        self.hops = 0

    async def resolve(self, target: Target, domain_doc: dict, h5path: str,
                      base_id: str | None = None) -> Found:
        root = domain_doc["root"]
        start = root if h5path.startswith("/") or base_id is None else base_id
        obj_id = start
        doc = await self.svc.object_doc(target.bucket, obj_id)
        for name in [p for p in h5path.split("/") if p not in ("", ".")]:
            if obj_id[0] != "g":
                raise NotFound(f"{h5path}: {name} is not in a group")
            link = (doc.get("links") or {}).get(name)
            if link is None:
                raise NotFound(f"{h5path}: {name} not found")
            if "id" in link:
                obj_id = link["id"]
                doc = await self._doc(target, obj_id)
                continue
            self.hops += 1
            if self.hops > MAX_HOPS:
                raise BadRequest(f"{h5path}: too many symbolic links")
            if "file" in link or "h5domain" in link:
                if not self.follow_external:
                    raise BadRequest(f"{h5path}: {name} is an external link")
                found = await self._external(target, link)
            else:
                if not self.follow_soft:
                    raise BadRequest(f"{h5path}: {name} is a soft link")
                found = await self.resolve(target, domain_doc, link.get("h5path", ""), obj_id)
            if found.target != target:
                # the rest of the path continues in the other domain
                target, domain_doc = found.target, found.domain_doc
            obj_id, doc = found.obj_id, found.doc
        return Found(target, domain_doc, obj_id, doc)

    async def _doc(self, target, obj_id):
        if not ids.is_valid(obj_id) or not ids.is_v2(obj_id):
            raise NotFound(f"link target {obj_id} not found")
        return await self.svc.object_doc(target.bucket, obj_id)

    async def _external(self, target: Target, link: dict) -> Found:
        bucket, path = split_domain(link.get("file") or link.get("h5domain") or "")
        other = Target(bucket or target.bucket, check_path(path), target.by_query)
        domain_doc = await self.svc.domain_doc(other)
        self.svc.require(self.caller, domain_doc, "read")
        if "root" not in domain_doc:
            raise BadRequest(f"external link target {other.path} is a folder")
        h5path = link.get("h5path") or "/"
        if not h5path.startswith("/"):
            raise BadRequest("an external link's path must be absolute")
        return await self.resolve(other, domain_doc, h5path)
