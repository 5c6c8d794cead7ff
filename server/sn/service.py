"""What every SN handler needs, built once: settings, data nodes, auth, storage."""
import time

from aiohttp import web

from ..core import acl as aclmod
from ..core import ids
from ..core.errors import BadRequest, Forbidden, Unauthorized
from .auth import Authenticator, Caller
from .nodes import DataNodes
from .params import Target, target_of

DOMAIN_TTL = 2.0        # seconds a cached domain document is trusted
API_VERSION = "1.0.2"   # the HSDS release whose API and storage we serve
COMPRESSORS = ["blosclz", "lz4", "lz4hc", "gzip", "zstd", "deflate"]


class Service:
    def __init__(self, settings, store, nodes: DataNodes | None = None):
        self.settings = settings
        self.store = store                      # read-only look-ups (listings)
        self.nodes = nodes or DataNodes(settings.dn_urls, service=settings.dn_service,
                                        count=settings.target_dn_count)
        self.auth = Authenticator(settings)
        self.start_time = int(time.time())
        self.node_id = settings.node_id or "sn-1"
        self.in_flight = 0
        self._domains: dict = {}    # (bucket, path) -> (document, when read)
        self._objects: dict = {}    # (bucket, object id) -> (document, when read)
        self._object_changes = 0
        self.object_ttl = DOMAIN_TTL   # 0 where other servers change objects (lambda_app)
        self.executor = None        # offload.Dispatcher, made at start
        # the SN reads clean chunks itself where storage is local (measured cheaper than
        # a DN hop); over S3 the DNs' caches save round trips, so reads stay with them
        mode = settings.direct_reads
        self.direct_reads = mode == "always" or (mode == "auto" and bool(settings.root_dir))

    # ---- documents through their owning DN ------------------------------

    async def domain_doc(self, target: Target) -> dict:
        """The domain's document, from a short-lived cache: every change to a domain
        goes through this SN, which forgets its copy (forget_domain); the TTL only
        bounds how long a change made by another server stays unseen."""
        key = (target.bucket, target.path)
        hit = self._domains.get(key)
        if hit is not None and time.monotonic() - hit[1] < DOMAIN_TTL:
            return hit[0]
        doc = await self.nodes.get(target.bucket, ids.domain_key(target.path), target.qualified)
        if len(self._domains) > 10_000:
            self._domains.clear()
        self._domains[key] = (doc, time.monotonic())
        return doc

    def forget_domain(self, target: Target):
        self._domains.pop((target.bucket, target.path), None)

    async def object_doc(self, bucket: str, obj_id: str, cached=False) -> dict:
        """An object's document from its DN; with cached, possibly from a short-lived
        copy here (value requests: saves a DN round trip each). Every change to an object
        goes through object_op, which forgets the copy (forget_object)."""
        key = (bucket, obj_id)
        if cached and self.object_ttl:
            hit = self._objects.get(key)
            if hit is not None and time.monotonic() - hit[1] < self.object_ttl:
                return hit[0]
        changes = self._object_changes
        doc = await self.nodes.get(bucket, ids.object_key(obj_id), obj_id)
        if cached and self.object_ttl and changes == self._object_changes:
            if len(self._objects) > 10_000:
                self._objects.clear()
            self._objects[key] = (doc, time.monotonic())
        return doc

    def forget_object(self, bucket: str, obj_id: str):
        self._object_changes += 1         # a read in flight meanwhile is not kept either
        self._objects.pop((bucket, obj_id), None)

    # ---- permissions -----------------------------------------------------

    def require(self, caller: Caller, doc: dict, action: str):
        """403 unless the domain's ACL lets the caller do action (admins always may)."""
        if caller.admin:
            return
        if aclmod.is_allowed(doc.get("acls"), caller.user, caller.groups, action):
            return
        if caller.anonymous and action != "read":
            raise Unauthorized("authentication required")
        raise Forbidden(f"user {caller.user} is not allowed to {action} here")

    def limits(self) -> dict:
        s = self.settings
        return {"min_chunk_size": s.min_chunk_size, "max_chunk_size": s.max_chunk_size,
                "max_request_size": s.max_request_size,
                "max_chunks_per_folder": s.max_chunks_per_folder}


SERVICE = web.AppKey("service", Service)
def _request_key(name: str, kind):
    # typed request storage keys where aiohttp has them (a plain str key warns there)
    make = getattr(web, "RequestKey", None)
    return make(f"h5cloud.{name}", kind) if make else f"h5cloud.{name}"


CALLER = _request_key("caller", Caller)
VIA = _request_key("via", str)          # which executor served a request's chunks (the log)


def service(request) -> Service:
    return request.app[SERVICE]


def caller(request) -> Caller:
    return request[CALLER]


def href(request, target: Target | None, path: str, with_domain=True) -> str:
    svc = service(request)
    base = svc.settings.hsds_endpoint or f"{request.scheme}://{request.host}"
    url = base.rstrip("/") + path
    if with_domain and target and target.path and target.by_query:
        url += f"?domain={target.path}"
    return url


async def load_domain(request, target: Target, action: str = "read") -> dict:
    """The domain document, after the caller's ACL check for action."""
    svc = service(request)
    doc = await svc.domain_doc(target)
    svc.require(caller(request), doc, action)
    return doc


async def require_domain(request, action: str = "read") -> tuple[Target, dict]:
    """For object routes: a domain (not a folder) the caller may act on."""
    svc = service(request)
    target = target_of(request, svc.settings.bucket_name)
    if target.path is None:
        raise BadRequest("no domain given")
    doc = await load_domain(request, target, action)
    if "root" not in doc:
        raise BadRequest(f"{target.path} is a folder, not a domain")
    return target, doc
