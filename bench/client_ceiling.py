"""The read ceiling of workload.py's own client: how fast could any server's read be,
read the way ../shared/bench/workload.py reads?

    .venv/bin/python bench/client_ceiling.py [--scale 1] [--port P]

A server that does nothing (aiohttp answering every GET with bytes it made at start)
is read in the workload's row blocks of about 32 MiB, each copied into a fresh n x n
float32 array (np.frombuffer, then a slice assignment), in a fresh process: the client
work of workload.py's read, with no server work at all. ../shared/bench/loopback_limit.py
times only the transfer of the same blocks (`.content`, no array). The first pass is
what compare.py's runs see (workload.py --repeat 1 reads each dataset once, into memory
its process never touched before); later passes reuse memory the first one faulted in.
Prints one JSON line: client_read_MiBps (first pass), client_read_warm_MiBps (median of
the later passes).
"""
import argparse
import json
import multiprocessing
import statistics
import time

import numpy as np
import requests


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

    app = web.Application()
    app.router.add_get("/b", get)
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
        print(json.dumps({"client_read_MiBps": round(mib / times[0], 1),
                          "client_read_warm_MiBps": round(mib / statistics.median(times[1:]), 1)}))
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
