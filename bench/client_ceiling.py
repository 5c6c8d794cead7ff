"""The ceilings of workload.py's own client: how fast could any server's read and
metadata be, asked the way ../shared/bench/workload.py asks?

    .venv/bin/python bench/client_ceiling.py [--scale 1] [--port P]

A server that does nothing (aiohttp answering every GET with bytes it made at start)
is read in the workload's row blocks of about 32 MiB, each copied into a fresh n x n
float32 array (np.frombuffer, then a slice assignment), in a fresh process: the client
work of workload.py's read, with no server work at all. ../shared/bench/loopback_limit.py
times only the transfer of the same blocks (`.content`, no array). The first pass is
what compare.py's runs see (workload.py --repeat 1 reads each dataset once, into memory
its process never touched before); later passes reuse memory the first one faulted in.

The metadata pass is the workload's `meta` step against the same server: a parent group,
then N groups each made with a link (POST /groups) and given a 4-integer attribute (PUT),
then the parent's links listed (GET); the server only keeps each parent's link names to
list them back, answering as h5cloud does (a fresh id, the created object's JSON).

Prints one JSON line: client_read_MiBps (first pass), client_read_warm_MiBps (median of
the later passes), client_meta_ops_per_s (median of --passes metadata passes).
"""
import argparse
import json
import multiprocessing
import statistics
import time
import uuid

import numpy as np
import requests

META_GROUPS = 200      # workload.py's meta groups at scale 1 (max(20, 200 * scale))


def shape_of(scale: float, block_mib: float = 32) -> tuple[int, int]:
    """(n, rows per block) exactly as workload.py picks them."""
    n = max(256, int(8192 * scale ** 0.5)) // 256 * 256
    return n, max(1, int(block_mib * 2**20) // (n * 4))


def serve(port: int, n: int, rows: int):
    from aiohttp import web
    block = memoryview(b"\x01" * (rows * n * 4))

    async def get(request):
        k = int(request.query["rows"])
        return web.Response(body=block[:k * n * 4], content_type="application/octet-stream")

    links: dict = {}       # parent id -> [(title, id, created)]

    async def post_group(request):
        body = await request.json()
        gid, now = f"g-{uuid.uuid4()}", time.time()
        if body.get("link"):
            links.setdefault(body["link"]["id"], []).append((body["link"]["name"], gid, now))
        return web.json_response({"id": gid, "root": "g-root", "created": now,
                                  "lastModified": now, "attributeCount": 0, "linkCount": 0},
                                 status=201)

    async def put_attribute(request):
        await request.json()
        return web.json_response({}, status=201)

    async def get_links(request):
        return web.json_response({"links": [
            {"class": "H5L_TYPE_HARD", "id": gid, "created": t, "title": title,
             "collection": "groups", "target": f"/groups/{gid}",
             "href": f"/groups/{request.match_info['id']}/links/{title}"}
            for title, gid, t in links.get(request.match_info["id"], [])]})

    app = web.Application()
    app.router.add_get("/b", get)
    app.router.add_post("/groups", post_group)
    app.router.add_put("/groups/{id}/attributes/{name}", put_attribute)
    app.router.add_get("/groups/{id}/links", get_links)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def read_once(session, url, n, rows) -> float:
    """Seconds for one workload-style read of the n x n array."""
    t0 = time.perf_counter()
    out = np.empty((n, n), np.float32)
    for i in range(0, n, rows):
        k = min(rows, n - i)
        r = session.get(url, params={"rows": k}, headers={"Accept": "application/octet-stream"})
        out[i:i + k] = np.frombuffer(r.content, np.float32).reshape(-1, n)
    took = time.perf_counter() - t0
    if out[-1, -1] != np.frombuffer(b"\x01" * 4, np.float32)[0]:
        raise SystemExit("client ceiling: the last block did not arrive")
    return took


def meta_once(session, endpoint: str, groups: int = META_GROUPS) -> float:
    """Operations per second of one workload-style metadata step (workload.py's meta)."""
    def rest(method, path, **kw):
        params = {"domain": "/home/test_user1/ceiling.h5", **kw.pop("params", {})}
        r = session.request(method, endpoint + path, params=params,
                            auth=("test_user1", "test"), timeout=300, **kw)
        if r.status_code not in (200, 201):
            raise SystemExit(f"client ceiling: {method} {path} -> {r.status_code}")
        return r

    t0 = time.perf_counter()
    par = rest("POST", "/groups", json={"link": {"id": "g-root", "name": "meta"}}).json()["id"]
    names = [f"g{i:05d}_{uuid.uuid4().hex[:6]}" for i in range(groups)]
    for i, name in enumerate(names):
        g = rest("POST", "/groups", json={"link": {"id": par, "name": name}}).json()["id"]
        rest("PUT", f"/groups/{g}/attributes/a", json={"type": "H5T_STD_I32LE", "shape": [4],
                                                        "value": [i, i + 1, i + 2, i + 3]})
    links = rest("GET", f"/groups/{par}/links", params={"Limit": groups + 10}).json()["links"]
    took = time.perf_counter() - t0
    if sorted(lk["title"] for lk in links) != sorted(names):
        raise SystemExit("client ceiling: the listing lost links")
    return (2 * groups + 2) / took


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--port", type=int, default=5998)
    p.add_argument("--passes", type=int, default=3)
    a = p.parse_args()
    n, rows = shape_of(a.scale)
    server = multiprocessing.Process(target=serve, args=(a.port, n, rows), daemon=True)
    server.start()
    try:
        session = requests.Session()
        url = f"http://127.0.0.1:{a.port}/b"
        for _ in range(100):
            try:
                session.get(url, params={"rows": 1})
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        mib = n * n * 4 / 2**20
        times = [read_once(session, url, n, rows) for _ in range(max(2, a.passes))]
        groups = max(20, int(META_GROUPS * a.scale))
        meta = [meta_once(session, f"http://127.0.0.1:{a.port}", groups)
                for _ in range(max(1, a.passes))]
        print(json.dumps({"client_read_MiBps": round(mib / times[0], 1),
                          "client_read_warm_MiBps": round(mib / statistics.median(times[1:]), 1),
                          "client_meta_ops_per_s": round(statistics.median(meta), 1)}))
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
