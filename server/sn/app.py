"""The service node's aiohttp application: middlewares, service routes, route table."""
import asyncio
import json
import logging
import time

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from ..core.errors import BadRequest, TooLarge, Unavailable
from ..web import error_middleware, json_response
from ..offload.direct import DirectExecutor
from ..offload.dispatch import Dispatcher
from ..offload.serverless import LambdaExecutor
from . import attributes, create, datasets, domains, links, objects, values
from .params import check_allowed_bucket, check_bucket, limits_buckets, target_of
from .service import API_VERSION, CALLER, SERVICE, VIA, Service, service

log = logging.getLogger("h5cloud.sn")
OPEN_PATHS = ("/about", "/info", "/health")
READ_POSTS = ("/links", "/attributes", "/value")
BINARY = "application/octet-stream"


class QuietBadRequests(logging.Filter):
    """aiohttp answers a malformed request (a URL or header line over its 8190-byte
    limits, too many headers) with 400 but logs it at ERROR with a traceback: one line
    at INFO instead, so such requests cannot flood the log."""

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            record.msg, record.args = "bad request answered 400: %s", (
                " ".join(str(exc).split())[:200],)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def is_write(request) -> bool:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    if request.method == "POST":
        path = request.path.rstrip("/")
        return not (path == "" or path.endswith(READ_POSTS))
    return True


@web.middleware
async def access_log(request, handler):
    if request.path == "/health":       # probes every few seconds: not worth a line each
        return await handler(request)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        via = request.get(VIA)
        log.info("%s %s %d %.1fms%s", request.method, request.path_qs, status,
                 (time.perf_counter() - start) * 1000, f" via {via}" if via else "")


def json_limit(request) -> int | None:
    """The most bytes this request's body may hold, below max_request_size: max_json_body
    for every JSON body except dataset values (data, as in HSDS: max_request_size), and
    None where there is no smaller limit (dataset values, binary attribute values)."""
    settings = service(request).settings
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    if route == "/datasets/{id}/value":
        return None
    if route.endswith("/attributes/{name}/value") and \
            BINARY in request.headers.get("Content-Type", ""):
        return None
    if settings.max_json_body <= 0:
        return None
    return min(settings.max_json_body, settings.max_request_size)


@web.middleware
async def body_limit(request, handler):
    """413 (JSON) for a body over its limit: at once when Content-Length says so, else
    when reading passes it (aiohttp stops at the request's client_max_size)."""
    if request.body_exists:
        limit = json_limit(request)
        most = service(request).settings.max_request_size
        size = request.content_length
        if size is not None and size > most:
            raise TooLarge(f"request body of {size} bytes; at most {most} are accepted")
        if limit is not None:
            if size is not None and size > limit:
                raise TooLarge(f"JSON body of {size} bytes; at most {limit} "
                               "are accepted (max_json_body)")
            request._client_max_size = limit     # aiohttp's read() enforces it
    return await handler(request)


async def check_buckets(request, settings):
    """403 for a request naming a bucket the settings keep it from (allowed_buckets,
    allow_any_bucket_read/_write): its bucket (`bucket=`, X-Hdf-bucket, `bucket/home/...`)
    and a new domain's linked_bucket (read)."""
    try:
        target = target_of(request, settings.bucket_name, folder_ok=True)
    except BadRequest:
        return                      # the handler answers it with its 400
    check_allowed_bucket(target.bucket, settings, is_write(request))
    if request.method == "PUT" and request.path == "/" and request.body_exists:
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):
            return
        if isinstance(body, dict) and body.get("linked_bucket"):
            check_allowed_bucket(check_bucket(str(body["linked_bucket"])), settings)


@web.middleware
async def gate(request, handler):
    """CORS pre-flight, readiness, load shedding and authentication, in that order."""
    svc = service(request)
    if request.method == "OPTIONS":
        return preflight(request)
    if request.path not in OPEN_PATHS:
        if not svc.nodes.ready:
            raise Unavailable("service is starting: data nodes are not ready")
        if svc.in_flight >= svc.settings.max_task_count:
            raise Unavailable("too many requests in flight")
        request[CALLER] = await svc.auth.authenticate_async(
            request.headers.get("Authorization"), is_write(request))
        if limits_buckets(svc.settings):
            await check_buckets(request, svc.settings)
    svc.in_flight += 1
    try:
        return await handler(request)
    finally:
        svc.in_flight -= 1


def preflight(request) -> web.Response:
    headers = {
        "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
        "Access-Control-Allow-Methods": request.headers.get(
            "Access-Control-Request-Method", "GET, PUT, POST, DELETE"),
        "Access-Control-Allow-Credentials": "true",
    }
    if "Access-Control-Request-Headers" in request.headers:
        headers["Access-Control-Allow-Headers"] = request.headers["Access-Control-Request-Headers"]
    return web.Response(status=200, headers=headers)


async def add_headers(request, response):
    svc = request.app[SERVICE]
    response.headers["Server"] = svc.settings.server_name
    response.headers["X-XSS-Protection"] = "1; mode=block"
    origin = request.headers.get("Origin")
    if origin and request.method != "OPTIONS":
        allowed = svc.settings.cors_domain
        response.headers["Access-Control-Allow-Origin"] = origin if allowed == "*" else allowed
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = ", ".join(response.headers.keys())


async def about(request):
    svc = service(request)
    header = request.headers.get("Authorization")
    username, admin = "anonymous", False
    if header:
        who = await svc.auth.authenticate_async(header, write=False)
        username, admin = who.user, who.admin
    return json_response({
        "start_time": svc.start_time, "state": "READY" if svc.nodes.ready else "WAITING",
        "hsds_version": API_VERSION, "name": svc.settings.server_name,
        "greeting": svc.settings.greeting, "about": svc.settings.about,
        "node_count": len(svc.nodes.urls), "dn_ids": svc.nodes.ids, "dn_urls": svc.nodes.urls,
        "username": username, "isadmin": admin})


async def info(request):
    svc = service(request)
    body = {"node": {
        "id": svc.node_id, "type": "sn", "start_time": svc.start_time,
        "state": "READY" if svc.nodes.ready else "WAITING",
        "node_count": len(svc.nodes.urls)}, "req_count": {"in_flight": svc.in_flight}}
    if svc.executor is not None and svc.executor.serverless is not None:
        body["serverless"] = svc.executor.serverless.info()
    return json_response(body)


async def watch_nodes(svc: Service):
    """Poll the DNs: fast until all answer, every second while one is down (so it
    serves again soon after it returns), else every few seconds."""
    while True:
        all_up = await svc.nodes.check_health()
        await asyncio.sleep(5 if all_up else 1 if svc.nodes.ready else 0.2)


async def health(request):
    """200 once every DN has answered (the SN serves; a DN down answers 503 for its
    objects alone), 503 before: for container and Kubernetes probes."""
    nodes = service(request).nodes
    body = {"state": "READY" if nodes.ready else "WAITING", "dn_count": len(nodes.urls),
            "dn_down": sorted(nodes.down)}
    return json_response(body, status=200 if nodes.ready else 503)


def make_app(svc: Service) -> web.Application:
    app = web.Application(middlewares=[access_log, error_middleware, body_limit, gate],
                          client_max_size=svc.settings.max_request_size)
    app[SERVICE] = svc
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietBadRequests) for f in server_log.filters):
        server_log.addFilter(QuietBadRequests())
    r = app.router
    r.add_get("/about", about)
    r.add_get("/info", info)
    r.add_get("/health", health)
    r.add_get("/", domains.get_domain)
    r.add_put("/", domains.put_domain)
    r.add_delete("/", domains.delete_domain)
    r.add_get("/domains", domains.get_domains)
    r.add_get("/domains/", domains.get_domains)
    r.add_get("/acls", domains.get_acls)
    r.add_get("/acls/{user}", domains.get_acl)
    r.add_put("/acls/{user}", domains.put_acl)
    r.add_post("/", objects.post_domain)
    r.add_get("/groups", objects.list_collection)
    r.add_post("/groups", create.post_group)
    r.add_get("/datatypes", objects.list_collection)
    r.add_post("/datatypes", create.post_datatype)
    r.add_get("/datasets", objects.list_collection)
    r.add_post("/datasets", create.post_dataset)
    r.add_get("/datasets/{id}/shape", datasets.get_shape)
    r.add_put("/datasets/{id}/shape", datasets.put_shape)
    r.add_get("/datasets/{id}/type", datasets.get_type)
    r.add_get("/datasets/{id}/value", values.get_value)
    r.add_put("/datasets/{id}/value", values.put_value)
    r.add_post("/datasets/{id}/value", values.post_value)
    for col in ("groups", "datasets", "datatypes"):
        r.add_get(f"/{col}/", objects.get_by_path)
        r.add_get(f"/{col}/{{id}}", objects.get_object)
        r.add_delete(f"/{col}/{{id}}", objects.delete_object)
        base = f"/{col}/{{id}}/attributes"
        r.add_get(base, attributes.list_attributes)
        r.add_post(base, attributes.post_attributes)
        r.add_put(base, attributes.put_attributes)
        r.add_delete(base, attributes.delete_attributes)
        r.add_get(base + "/{name}", attributes.get_attribute)
        r.add_put(base + "/{name}", attributes.put_attribute)
        r.add_delete(base + "/{name}", attributes.delete_attribute)
        r.add_get(base + "/{name}/value", attributes.get_attribute_value)
        r.add_put(base + "/{name}/value", attributes.put_attribute_value)
    links_base = "/groups/{id}/links"
    r.add_get(links_base, links.list_links)
    r.add_post(links_base, links.post_links)
    r.add_put(links_base, links.put_links)
    r.add_delete(links_base, links.delete_links)
    r.add_get(links_base + "/{title}", links.get_link)
    r.add_put(links_base + "/{title}", links.put_link)
    r.add_delete(links_base + "/{title}", links.delete_link)
    app.on_response_prepare.append(add_headers)

    tasks = []

    async def start(app):
        await svc.nodes.start()
        dn = svc.nodes.executor(svc.settings.chunk_mem_cache_size)
        direct = DirectExecutor(svc.store) if svc.direct_reads else None
        serverless = None
        if svc.settings.aws_lambda_chunkread_function and not svc.settings.root_dir:
            serverless = LambdaExecutor(svc.settings, dn)     # offload reads from S3 only
        svc.executor = Dispatcher(dn, direct, svc.settings.s3_age_time, serverless)
        tasks.append(asyncio.ensure_future(
            svc.executor.settle_loop(max(0.2, svc.settings.s3_sync_interval))))
        tasks.append(asyncio.ensure_future(watch_nodes(svc)))

    async def stop(app):
        for task in tasks:
            task.cancel()
        if svc.executor and svc.executor.serverless:
            await svc.executor.serverless.close()
        await svc.nodes.close()
        await svc.store.close()
        svc.auth.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
