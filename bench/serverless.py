"""Serverless chunk reads against DN-only reads over S3, next to the cost model.

    .venv/bin/python bench/serverless.py [--chunks 1000] [--latency-ms 30] [--repeat 2]
        [--workers 8] [--dn 4] [--stride 0] [--jitter-ms 0] [--no-cache]

Method
- S3 is moto's server. In front of it a small aiohttp reverse proxy (this file run as
  `_proxy`, its own process) forwards requests unchanged (method, path, query, headers,
  body; status, headers, ETag, Content-Length, Range/206 back) and sleeps --latency-ms
  (+ uniform 0..--jitter-ms) before answering a GET of an object key (`/bucket/key`;
  not listings, not HEADs). The SN and DNs (AWS_S3_GATEWAY) and the workers of
  awslambda/serve_local.sh (AWS_S3_GATEWAY in their environment) all go through it, so
  every chunk GET costs the same latency on both paths.
- moto serves only ~250-450 GETs of 256 KiB a second on 2 cores, which would bury the
  latency under the emulator's CPU. So by default the proxy keeps object GET answers
  (status, headers, body) and replays them, still after the delay, dropping them all on
  any write; an untimed read fills it. --no-cache sends every GET to moto.
- One float32 dataset of --chunks chunks of 256x256 (256 KiB) is written through a
  DN-only cluster (MIN_CHUNK_SIZE=1k keeps that layout) and flushed to S3.
- Two reads touch every chunk: "slab" [0:H:stride, 0:W] (stride 0: the least power of
  two that fits the answer in one 8 MiB streaming page, so the SN decides once for all n
  chunks - the model's case) and "whole" (binary answers stream in pages of at least
  8 MiB or one chunk row; the SN decides once per request and logs one line).
- DN-only: per read and repeat a fresh SN + DNs without Lambda (cold chunk caches);
  metadata is fetched first, then the read is timed.
- Serverless: one cluster with AWS_LAMBDA_CHUNKREAD_FUNCTION, AWS_LAMBDA_THRESHOLD=0,
  AWS_LAMBDA_MAX_INVOKE=--workers (more gets throttled locally) and
  AWS_LAMBDA_OFFLOAD=always. The first slab read meets cold workers; then --repeat warm
  reads of each (Lambda caches no chunks, so the same dataset is as fresh as a new one)
  and five 1-chunk reads. The SN's `serverless read ... ms=` lines give the offload time.
  Every answer is compared with the array written.
- The model (server/offload/cost.py, default constants, warm functions with a full core
  each, as local workers have) is printed next to the measured times. The SN calibrates
  it online; bench/offload_grid.py measures how often its picks were right.
"""
import asyncio
import contextlib
import hashlib
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
AUTH = ("test_user1", "test")
DOMAIN = "/home/test_user1/serverless_bench.h5"
CHUNK = 256                                  # chunk dims CHUNK x CHUNK of float32
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "expect",
       "te", "trailer", "upgrade", "proxy-connection"}


def proxy_main(port, upstream, latency_ms, jitter_ms, cache):
    """The latency proxy (its own process); cache "1" replays answers of object GETs."""
    from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
    from multidict import CIMultiDict
    delay, jitter = float(latency_ms) / 1000, float(jitter_ms) / 1000
    state, kept = {}, {}

    async def fetch(request):
        body = await request.read()
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP)
        async with state["session"].request(request.method, upstream + request.rel_url.raw_path_qs,
                                            headers=headers, data=body or None,
                                            allow_redirects=False) as rsp:
            keep = [(k, v) for k, v in rsp.headers.items() if k.lower() not in HOP]
            return rsp.status, rsp.reason, keep, rsp.headers.get("Content-Length"), \
                await rsp.read()

    async def reply(request, status, reason, headers, length, data):
        out = web.StreamResponse(status=status, reason=reason)
        for k, v in headers:
            out.headers.add(k, v)
        out.content_length = int(length) if request.method == "HEAD" and length else len(data)
        await out.prepare(request)
        if data and request.method != "HEAD":
            await out.write(data)
        await out.write_eof()
        return out

    async def forward(request):
        bucket, _, key = request.rel_url.path.lstrip("/").partition("/")
        if request.method not in ("GET", "HEAD"):
            kept.clear()
        if request.method != "GET" or not (bucket and key):
            return await reply(request, *await fetch(request))
        await asyncio.sleep(delay + random.uniform(0, jitter))
        ident = (request.rel_url.raw_path_qs, *(request.headers.get(h) for h in (
            "Range", "If-Match", "If-None-Match")))
        answer = kept.get(ident) or await fetch(request)
        if cache == "1" and answer[0] in (200, 206):
            kept[ident] = answer
        return await reply(request, *answer)

    async def session(app):
        state["session"] = ClientSession(connector=TCPConnector(limit=64), auto_decompress=False,
                                         timeout=ClientTimeout(total=None), skip_auto_headers=(
                                             "Accept-Encoding", "User-Agent", "Content-Type"))
        yield
        await state["session"].close()

    app = web.Application(client_max_size=1 << 30)
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(app, host="127.0.0.1", port=int(port), print=None, access_log=None,
                backlog=4096)          # 128 overflows under hundreds of connects (1 s SYN retry)


class Bench:
    def __init__(self, args, tmp: Path):
        self.args, self.tmp, self.procs, self.clusters, self.count = args, tmp, [], [], 0
        (tmp / "passwd.txt").write_text("admin:admin\ntest_user1:test\n")
        rows = max(d for d in range(1, math.isqrt(args.chunks) + 1) if args.chunks % d == 0)
        self.shape = (rows * CHUNK, args.chunks // rows * CHUNK)

    def spawn(self, cmd, log, env=None):
        with open(self.tmp / f"{log}.log", "ab") as out:
            proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, cwd=REPO,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def wait(self, proc, url, method="get"):
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[:3]} exited; see {self.tmp}")
            try:
                return getattr(requests, method)(url, timeout=2)
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"{proc.args[:3]} did not start")

    def start_backends(self):
        import boto3
        from server.launch import free_ports
        a = self.args
        moto, proxy, lam = (free_ports(1) for _ in range(3))
        self.moto, self.proxy, self.lam = (f"http://127.0.0.1:{p}" for p in (moto, proxy, lam))
        self.wait(self.spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                              str(moto)], "moto"), self.moto)
        boto3.client("s3", endpoint_url=self.moto, region_name="us-east-1", aws_access_key_id="x",
                     aws_secret_access_key="x").create_bucket(Bucket="bench")
        self.wait(self.spawn([sys.executable, __file__, "_proxy", str(proxy), self.moto,
                              str(a.latency_ms), str(a.jitter_ms), str(int(not a.no_cache))],
                             "proxy"), self.proxy)
        zip_path = REPO / "dist" / "chunk_read.zip"
        if not zip_path.exists():
            print("building dist/chunk_read.zip (a few minutes) ...", file=sys.stderr)
            subprocess.run(["bash", "awslambda/build.sh"], cwd=REPO, check=True)
        proc = self.spawn(["bash", "awslambda/serve_local.sh", "--port", str(lam), "--concurrency",
                           str(a.workers), "--timeout", "300", f"chunk_read={zip_path}"],
                          "lambda", self.env())           # slow cold starts must not time out
        self.wait(proc, f"{self.lam}/2015-03-31/functions/x/invocations", "post")

    def env(self):
        return {"AWS_S3_GATEWAY": self.proxy, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}

    def cluster(self, **extra):
        from server.launch import Cluster, free_ports, make_home_folders
        self.count += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        base = free_ports(self.args.dn + 1)
        env.update(self.env(), ROOT_DIR="", BUCKET_NAME="bench", SN_PORT=str(base),
                   DN_PORT=str(base + 1), PASSWORD_FILE=str(self.tmp / "passwd.txt"),
                   LOG_LEVEL="INFO", S3_SYNC_INTERVAL="0.2", S3_AGE_TIME="0.5",
                   MIN_CHUNK_SIZE="1k", DIRECT_READS="never", **extra)
        c = Cluster(self.tmp / f"run{self.count}", self.args.dn,
                    {k: str(v) for k, v in env.items()})
        self.clusters.append(c)
        c.start()
        make_home_folders(c.endpoint, "admin", "admin", ["test_user1"])
        if getattr(self, "did", None):          # metadata into the caches, untimed
            requests.get(f"{c.endpoint}/datasets/{self.did}", params={"domain": DOMAIN},
                         auth=AUTH, timeout=30).raise_for_status()
        return c

    def stop(self, c):
        if c in self.clusters:
            self.clusters.remove(c)
            c.stop()

    def load(self):
        """Create and write the dataset through a DN-only cluster; flush it to S3."""
        c, (h, w), q = self.cluster(), self.shape, {"domain": DOMAIN}
        requests.put(c.endpoint + "/", params=q, auth=AUTH, timeout=30).raise_for_status()
        body = {"type": "H5T_IEEE_F32LE", "shape": [h, w], "creationProperties": {
            "layout": {"class": "H5D_CHUNKED", "dims": [CHUNK, CHUNK]}}}
        rsp = requests.post(c.endpoint + "/datasets", params=q, auth=AUTH, json=body, timeout=30)
        self.did = rsp.json()["id"]
        self.data = (np.arange(h * w, dtype=np.int64) % 65521).astype("<f4").reshape(h, w)
        for r in range(0, h, CHUNK):
            requests.put(f"{c.endpoint}/datasets/{self.did}/value", auth=AUTH, timeout=300,
                         params={**q, "select": f"[{r}:{r + CHUNK},0:{w}]"},
                         data=self.data[r:r + CHUNK].tobytes(),
                         headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        requests.put(c.endpoint + "/", params=q, auth=AUTH, json={"flush": 1},
                     timeout=300).raise_for_status()
        meta = requests.get(f"{c.endpoint}/datasets/{self.did}", params=q, auth=AUTH, timeout=30)
        assert meta.json()["layout"]["dims"] == [CHUNK, CHUNK], meta.text
        self.stop(c)
        if not self.args.no_cache:             # fill the proxy's cache, untimed
            c = self.cluster()
            self.read(c, 1)
            self.stop(c)

    def read(self, c, stride, rows=None, cols=None):
        """(client ms, sums over its serverless lines or None); checks the bytes."""
        rows, cols = rows or self.shape[0], cols or self.shape[1]
        before = len(self.lines(c))
        t0 = time.perf_counter()
        rsp = requests.get(f"{c.endpoint}/datasets/{self.did}/value", auth=AUTH, timeout=900,
                           params={"domain": DOMAIN, "select": f"[0:{rows}:{stride},0:{cols}]"},
                           headers={"Accept": "application/octet-stream"})
        ms = (time.perf_counter() - t0) * 1000
        rsp.raise_for_status()
        want = np.ascontiguousarray(self.data[0:rows:stride, 0:cols]).tobytes()
        if hashlib.sha256(rsp.content).digest() != hashlib.sha256(want).digest():
            raise RuntimeError(f"wrong bytes from {c.run_dir}")
        new = [dict((k, float(v)) for k, v in re.findall(r"(\w+)=([\d.]+)", ln))
               for ln in self.lines(c)[before:]]
        sums = {k: sum(d[k] for d in new) for k in ("chunks", "invocations", "ms", "fallback")}
        return ms, ({**sums, "lines": len(new)} if new else None)

    @staticmethod
    def lines(c):
        return [ln for ln in c.sn_log.read_text().splitlines() if "serverless read" in ln]

    @contextlib.contextmanager
    def session(self):
        """The backends up for the block; everything stopped after it, and the temporary
        folder removed (kept, with its logs, when the block failed)."""
        try:
            self.start_backends()
            yield self
        except BaseException:
            print(f"failed; logs kept in {self.tmp}", file=sys.stderr)
            raise
        finally:
            self.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def cleanup(self):
        for c in list(self.clusters):
            self.stop(c)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()


def measure(b, a, cases):
    dn_ms = {case: [] for case in cases}
    for _ in range(a.repeat):
        for case, step in cases.items():
            c = b.cluster()                     # fresh DNs: cold chunk caches
            dn_ms[case].append(b.read(c, step)[0])
            b.stop(c)
    c = b.cluster(AWS_LAMBDA_CHUNKREAD_FUNCTION="chunk_read", AWS_LAMBDA_GATEWAY=b.lam,
                  AWS_LAMBDA_THRESHOLD=0, AWS_LAMBDA_MAX_INVOKE=a.workers,
                  AWS_LAMBDA_OFFLOAD="always")
    cold = b.read(c, cases["slab"])
    fn = {case: [b.read(c, step) for _ in range(a.repeat)] for case, step in cases.items()}
    one = [b.read(c, cases["slab"], CHUNK, CHUNK) for _ in range(5)]
    b.stop(c)
    for ms, agg in [cold, *fn["slab"], *fn["whole"], *one]:
        if agg is None or agg["fallback"]:
            print(f"WARNING: a read was not (fully) offloaded: {agg}")
    return dn_ms, cold, fn, one


def main():
    import argparse
    from server.config import load_settings
    from server.offload.cost import CostModel, Work
    from server.sn.values import STREAM_PAGE
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunks", type=int, default=1000)
    p.add_argument("--latency-ms", type=float, default=30.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--workers", type=int, default=8, help="local Lambda workers (concurrency)")
    p.add_argument("--dn", type=int, default=4)
    p.add_argument("--stride", type=int, default=0, help="slab row step (0: fit one page)")
    p.add_argument("--no-cache", action="store_true", help="every GET goes to moto")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    n, dn, tmp = a.chunks, a.dn, Path(tempfile.mkdtemp(prefix="bench-serverless-"))
    b = Bench(a, tmp)
    h, w = b.shape
    stride = a.stride or next(s for s in (1, 2, 4, 8, 16, 32, 64, 128, 256)
                              if -(-h // s) * w * 4 <= STREAM_PAGE or s == CHUNK)
    cases = {"slab": stride, "whole": 1}
    with b.session():
        b.load()
        dn_ms, cold, fn, one = measure(b, a, cases)

    med, best = statistics.median, min
    # the model's view of the same reads (local workers have a full core each)
    run = load_settings(env={}).replace(aws_lambda_max_invoke=a.workers,
                                        aws_lambda_memory_mb=1769)
    model = CostModel(run, lambda: dn)
    model.warm = a.workers
    ms_1 = med(agg["ms"] for _, agg in one)
    fmt = lambda xs: "/".join(f"{x:.0f}" for x in xs)            # noqa: E731
    store = "moto" if a.no_cache else "moto + replay cache"
    print(f"\n{n} chunks of {CHUNK}x{CHUNK} float32 (256 KiB), dataset {h}x{w}, {dn} DNs, S3 = "
          f"{store}, {a.latency_ms:g} ms (+0..{a.jitter_ms:g}) before every object GET on both "
          f"paths; ms: best (DN) / median (Lambda) of {a.repeat}")
    print(f"caveat: local Lambda = {a.workers} worker processes (max_invoke {a.workers}) on "
          f"{os.cpu_count()} cores shared with everything; AWS runs up to 1000 at once, each "
          "with its own CPU")
    print(f"\n{'read':36s}{'DN-only':>8s}{'Lambda':>8s}{'offload':>8s}{'cold':>7s}"
          f"{'calls':>6s}{'pages':>6s}  all runs (DN; Lambda)")
    for case, step in cases.items():
        sel = f"[0:{h}:{step},0:{w}]" if step > 1 else "(whole)"
        mib = len(range(0, h, step)) * w * 4 / 2**20
        agg = fn[case][0][1] or {"invocations": 0, "lines": 0}
        print(f"{case} {sel} {mib:.0f} MiB".ljust(36) + f"{best(dn_ms[case]):8.0f}"
              f"{med(ms for ms, _ in fn[case]):8.0f}{med(g['ms'] for _, g in fn[case]):8.0f}"
              + (f"{cold[0]:7.0f}" if case == "slab" else " " * 7)
              + f"{agg['invocations']:6.0f}{agg['lines']:6d}  {fmt(dn_ms[case])}; "
              f"{fmt(ms for ms, _ in fn[case])}")
    print(f"{'1 chunk':36s}{'':8s}{med(ms for ms, _ in one):8.0f}{ms_1:8.0f}")
    whole = fn["whole"][0][1] or {"chunks": 0}
    if whole["chunks"] > n:
        print(f"whole: Lambda fetched {whole['chunks']:.0f} chunks for {n} "
              "(a chunk row was split across pages)")
    print(f"\nthe model (defaults, warm, {a.workers} invocations at once) vs measured, ms:")
    print(f"  {'read':8s}{'est_dn':>8s}{'DN':>8s}{'est_lambda':>11s}{'Lambda':>8s}")
    for case, step in cases.items():
        rows = len(range(0, CHUNK, step))
        work = Work(n, CHUNK * CHUNK * 4, n * rows * CHUNK * 4)
        print(f"  {case:8s}{model.est_dn(work):8.0f}{best(dn_ms[case]):8.0f}"
              f"{model.est_lambda(work):11.0f}{med(g['ms'] for _, g in fn[case]):8.0f}")
    print("  (the SN calibrates these online: GET /info -> serverless.model.weights)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_proxy":
        proxy_main(*sys.argv[2:7])
    else:
        main()
