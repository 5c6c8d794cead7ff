"""The service node's aiohttp application: middlewares, service routes, route table."""
import asyncio
import logging
import time

from aiohttp import web

from ..core.errors import Unavailable
from ..web import error_middleware, json_response
from ..offload.direct import DirectExecutor
from ..offload.dispatch import Dispatcher
from ..offload.serverless import LambdaExecutor
from . import attributes, create, datasets, domains, links, objects, values
from .service import API_VERSION, CALLER, SERVICE, VIA, Service, service

log = logging.getLogger("h5cloud.sn")
OPEN_PATHS = ("/about", "/info")
READ_POSTS = ("/links", "/attributes", "/value")


def is_write(request) -> bool:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    if request.method == "POST":
        path = request.path.rstrip("/")
        return not (path == "" or path.endswith(READ_POSTS))
    return True


@web.middleware
async def access_log(request, handler):
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
        request[CALLER] = svc.auth.authenticate(request.headers.get("Authorization"),
                                                is_write(request))
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
        who = svc.auth.authenticate(header, write=False)
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
    """Poll the DNs: fast until all answer, then every few seconds."""
    while True:
        ready = await svc.nodes.check_health()
        await asyncio.sleep(5 if ready else 0.2)


def make_app(svc: Service) -> web.Application:
    app = web.Application(middlewares=[access_log, error_middleware, gate],
                          client_max_size=svc.settings.max_request_size)
    app[SERVICE] = svc
    r = app.router
    r.add_get("/about", about)
    r.add_get("/info", info)
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
        dn = svc.nodes.executor()
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

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
