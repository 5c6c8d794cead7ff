"""The offload grid: every read kind x codec x chunk count, measured with the DNs alone
(AWS_LAMBDA_OFFLOAD=never), with Lambda for all (always), and as the cost model picks
(auto); how often auto picked the faster plan, and the time its wrong picks lost.

    .venv/bin/python bench/offload_grid.py [--chunks 64,256,1024] [--chunk 128]
        [--codecs none,deflate,zstd] [--latency-ms 30] [--workers 8] [--dn 4]
        [--train-rounds 2] [--explore 0.5]

The backends are bench/serverless.py's: moto behind a proxy that adds --latency-ms to
every object GET on both paths (replaying answers, so moto's own CPU stays out of it),
and the built chunk_read zip behind the local Invoke endpoint with --workers workers.
Datasets: float32, --chunk x --chunk chunks, written and flushed through a DN-only
cluster. Reads: hyperslab (all of it), strided (every 4th row and column), column (one),
points (1,000 scattered), query (`_ > q`, 0.5 % of the values). One cluster per mode
(the same order of reads in each), each answer hashed and compared across modes. The
DNs' chunk caches are small (--dn-cache, 1 MiB each): every read meets cold chunks, in
every mode alike (with big caches a plan that read a dataset first would leave the DN
plan warm caches the other modes never had). Every mode is timed after one untimed pass
over its reads (auto's training is its pass): the proxy replays what each path fetched
before, the workers are up and the connections open. Without it a cold whole hyperslab
of 1,024 chunks took 7-8 s on the DNs in the never pass and 1.4 s on the same plan in
auto's judged pass.

Auto is judged as a deployment would run it: its model (which lives in the SN's memory,
so training and judging share one cluster) first calibrates on --train-rounds untimed
passes over the same reads, with AWS_LAMBDA_EXPLORE=--explore (0.5: every second
decision runs the plan not picked; alternate rounds are shifted by one read when the
reads are even in number, so over two rounds each read runs on both plans). The judged
pass follows in the same SN, so with the same share: the model goes on learning, and
what is judged is its pick, the plan it found faster, whether the request then ran on
it or explored the other (the SN's EMF records, CLOUDWATCH_EMF=1, say which). A pick is
right when it took at most 15 % longer than the faster plan (as measured in the never
and always runs). The model's weights are printed after training and after judging.
"""
import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import serverless as sb  # noqa: E402  (the backends: moto, proxy, local Invoke endpoint)
from server.config import parse_size  # noqa: E402

AUTH = sb.AUTH
KINDS = ("hyperslab", "strided", "column", "points", "query")
FILTERS = {"none": [], "deflate": [{"class": "H5Z_FILTER_DEFLATE", "id": 1, "level": 6}],
           "zstd": [{"class": "H5Z_FILTER_ZSTD", "id": 32015, "level": 3}]}
TIE = 1.15


def values_of(shape, seed):
    """Smooth data with a little noise, at an instrument's 1/1024 resolution: deflate and
    zstd store a 128x128 chunk in about 1/2.2 of its bytes (full-precision noise would
    leave them nothing to take: 1.08x)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]].astype("f4")
    smooth = np.sin(y / 37) * np.cos(x / 23)
    return (np.round((smooth + rng.normal(0, 0.01, shape)) * 1024) / 1024).astype("<f4")


def stored_ratio(ds) -> float:
    """Decoded / stored bytes of the dataset's first chunk, through the server's codec."""
    from server.core.chunks import codec_for
    doc = {"id": "d-grid", "type": {"class": "H5T_FLOAT", "base": "H5T_IEEE_F32LE"},
           "shape": {"class": "H5S_SIMPLE", "dims": list(ds.shape)},
           "creationProperties": {"layout": {"class": "H5D_CHUNKED",
                                             "dims": [ds.chunk, ds.chunk]},
                                  "filters": FILTERS[ds.codec]}}
    chunk = np.ascontiguousarray(ds.data[:ds.chunk, :ds.chunk])
    return round(chunk.nbytes / len(codec_for(doc, (ds.chunk, ds.chunk)).encode(chunk)), 2)


class Dataset:
    def __init__(self, codec, chunks, chunk, seed):
        rows = max(d for d in range(1, int(chunks ** 0.5) + 1) if chunks % d == 0)
        self.codec, self.chunks, self.chunk = codec, chunks, chunk
        self.shape = (rows * chunk, chunks // rows * chunk)
        self.domain = f"/home/test_user1/grid_{codec}_{chunks}.h5"
        self.data = values_of(self.shape, seed)
        self.threshold = float(np.quantile(self.data, 0.995))
        rng = np.random.default_rng(seed + 1)
        self.points = np.stack([rng.integers(0, n, 1000) for n in self.shape], 1).astype("<u8")
        self.did = None

    def write(self, endpoint):
        q = {"domain": self.domain}
        requests.put(endpoint + "/", params=q, auth=AUTH, timeout=60).raise_for_status()
        body = {"type": "H5T_IEEE_F32LE", "shape": list(self.shape), "creationProperties": {
            "layout": {"class": "H5D_CHUNKED", "dims": [self.chunk, self.chunk]},
            "filters": FILTERS[self.codec]}}
        rsp = requests.post(endpoint + "/datasets", params=q, auth=AUTH, json=body, timeout=60)
        rsp.raise_for_status()
        self.did = rsp.json()["id"]
        step = max(1, (8 << 20) // (self.shape[1] * 4))
        for r in range(0, self.shape[0], step):
            stop = min(r + step, self.shape[0])
            requests.put(f"{endpoint}/datasets/{self.did}/value", auth=AUTH, timeout=600,
                         params={**q, "select": f"[{r}:{stop},0:{self.shape[1]}]"},
                         data=self.data[r:r + step].tobytes(),
                         headers={"Content-Type": "application/octet-stream"}
                         ).raise_for_status()
        requests.put(endpoint + "/", params=q, auth=AUTH, json={"flush": 1},
                     timeout=600).raise_for_status()

    def read(self, endpoint, kind) -> tuple:
        """(ms, sha256 of the answer) of one read of this kind."""
        url = f"{endpoint}/datasets/{self.did}/value"
        q, binary = {"domain": self.domain}, {"Accept": "application/octet-stream"}
        h, w = self.shape
        t0 = time.perf_counter()
        if kind == "points":
            rsp = requests.post(url, params=q, auth=AUTH, data=self.points.tobytes(), timeout=900,
                                headers={**binary, "Content-Type": "application/octet-stream"})
        elif kind == "query":
            rsp = requests.get(url, params={**q, "query": f"_ > {self.threshold!r}"},
                               auth=AUTH, timeout=900)
        else:
            select = {"hyperslab": f"[0:{h},0:{w}]", "strided": f"[0:{h}:4,0:{w}:4]",
                      "column": f"[0:{h},5:6]"}[kind]
            rsp = requests.get(url, params={**q, "select": select}, auth=AUTH, timeout=900,
                               headers=binary)
        ms = (time.perf_counter() - t0) * 1000
        rsp.raise_for_status()
        # a JSON answer's hrefs name the cluster's own port: compare what it found
        body = json.dumps([rsp.json().get(k) for k in ("value", "index")]).encode() \
            if kind == "query" else rsp.content
        return ms, hashlib.sha256(body).hexdigest()

    def warm(self, endpoint):
        """The domain and dataset documents into the SN's and DNs' caches, untimed."""
        requests.get(f"{endpoint}/datasets/{self.did}", params={"domain": self.domain},
                     auth=AUTH, timeout=60).raise_for_status()


def decisions(cluster) -> list:
    """The SN's offload decisions so far (its EMF records: Plan, Explored, estimates)."""
    return [json.loads(ln) for ln in cluster.sn_log.read_text().splitlines()
            if ln.startswith("{") and '"_aws"' in ln]


def weights(cluster) -> dict:
    model = requests.get(cluster.endpoint + "/info", timeout=10).json()
    model = model.get("serverless", {}).get("model", {})
    return {"weights": model.get("weights"), "samples": model.get("samples")}


def dn_loads(ds, dn_count) -> list | None:
    """The dataset's chunks on DN 0, 1, ...: the SN sends chunk c to DN node_index(c), the
    md5 of its id (None before the dataset has an id)."""
    if not ds.did:
        return None
    from server.core.ids import chunk_id, node_index
    loads = [0] * dn_count
    for r in range(ds.shape[0] // ds.chunk):
        for c in range(ds.shape[1] // ds.chunk):
            loads[node_index(chunk_id(ds.did, (r, c)), dn_count)] += 1
    return loads


def read_work(ds, kind) -> tuple:
    """(chunks the read touches, bytes it returns), as the SN's cost model counts them
    (serverless.LambdaExecutor.work: a query's answer as 1/100 of its elements' bytes)."""
    h, w = ds.shape
    if kind == "column":
        return h // ds.chunk, h * 4
    if kind == "points":
        return len({tuple(p) for p in (ds.points // ds.chunk).tolist()}), 4 * len(ds.points)
    if kind == "strided":
        return ds.chunks, 4 * -(-h // 4) * -(-w // 4)
    if kind == "query":
        return ds.chunks, max(1, h * w * 4 // 100)
    return ds.chunks, h * w * 4


def sn_per_call(a, ds, kind) -> int:
    """Chunks per invocation as the SN batches this read: its cost model's rule, per
    page of a streamed read (a whole hyperslab: 8 MiB pages, as sim_record counts them).
    Grids before 2026-12-01 01:00 used the whole request's batch on every page."""
    from server.config import load_settings
    from server.offload.cost import CostModel, Work
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    settings = load_settings(env={**env, "AWS_LAMBDA_MAX_INVOKE": str(a.workers)})
    chunks, returned = read_work(ds, kind)
    work = Work(chunks, 4 * ds.chunk ** 2, returned, ds.codec)
    pages = max(1, -(-work.decoded_bytes * chunks // (8 << 20))) if kind == "hyperslab" else 1
    return CostModel(settings).page_call(work, -(-chunks // pages))


def answer_ratio(ds, kind, per_call) -> float:
    """What zstd level 1 (chunk_read's) makes of the first invocation's answer: the
    selections of its chunks, one after the other."""
    import zstandard
    k, cols = ds.chunk, ds.shape[1] // ds.chunk
    if kind == "points":
        raw = ds.data[tuple(ds.points.astype(np.intp).T)].tobytes()
    elif kind == "query":
        raw = ds.data[ds.data > ds.threshold].tobytes()
    elif kind == "column":          # column 5 of the chunks down the first column
        raw = ds.data[:per_call * k, 5:6].tobytes()
    else:
        step = 4 if kind == "strided" else 1
        raw = b"".join(np.ascontiguousarray(
            ds.data[i // cols * k:(i // cols + 1) * k:step, i % cols * k:(i % cols + 1) * k:step]
        ).tobytes() for i in range(min(per_call, ds.chunks)))
    return round(len(raw) / len(zstandard.ZstdCompressor(level=1).compress(raw)), 2)


def sim_record(a, ds, kind, dn_ms, fn_ms) -> dict:
    """One read as bench/offload_sim.py's validation describes it."""
    rec = {"kind": kind, "codec": ds.codec, "chunks": ds.chunks, "chunk_bytes": 4 * ds.chunk ** 2,
           "itemsize": 4, "rank": 2, "dn_count": a.dn, "workers": a.workers,
           "s3_latency_ms": a.latency_ms, "jitter_ms": a.jitter_ms, "cores": os.cpu_count(),
           "dn_ms": round(dn_ms, 1), "lambda_ms": round(fn_ms, 1),
           "ratio": stored_ratio(ds), "dataset_chunks": ds.chunks}
    loads = dn_loads(ds, a.dn)
    if loads:                       # the real placement, not a random one
        rec["dn_chunks"] = loads
    rec["per_call"] = sn_per_call(a, ds, kind)
    rec["answer_ratio"] = answer_ratio(ds, kind, rec["per_call"])
    # a dataset's reads run one after another: the first meets another dataset's chunks
    # in the DN caches, the later ones find what fits of its own still there: the caches
    # have room for this share of the dataset, decoded (above 1: room to spare; grids
    # before 2026-12-01 01:00 charged a chunk its stored bytes: x ratio)
    cache = a.dn * parse_size(a.dn_cache)
    rec["cached"] = 0.0 if kind == a.kinds.split(",")[0] else \
        round(cache / (ds.chunks * rec["chunk_bytes"]), 3)
    if kind == "strided":
        rec.update(stride=4, strided_dims=2)
    elif kind == "column":          # one column of chunks
        rec["chunks"] = ds.shape[0] // ds.chunk
    elif kind == "points":          # the chunks the points fall in
        touched = len({tuple(p) for p in (ds.points // ds.chunk).tolist()})
        rec.update(chunks=touched, points=max(1, round(len(ds.points) / touched)))
    elif kind == "query":
        rec["hit_rate"] = 0.005
    elif kind == "hyperslab":       # the SN streams big answers in 8 MiB pages
        rec["pages"] = max(1, -(-rec["chunk_bytes"] * ds.chunks // (8 << 20)))
    return rec


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunks", default="64,256,1024")
    p.add_argument("--chunk", type=int, default=128, help="chunk edge (float32)")
    p.add_argument("--codecs", default="none,deflate,zstd")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--latency-ms", type=float, default=30.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--dn", type=int, default=4)
    p.add_argument("--dn-cache", default="1m", help="CHUNK_MEM_CACHE_SIZE of each DN")
    p.add_argument("--train-rounds", type=int, default=2,
                   help="untimed passes over the reads that calibrate auto's model first")
    p.add_argument("--explore", type=float, default=0.5,
                   help="AWS_LAMBDA_EXPLORE of the auto cluster (training and judging)")
    p.add_argument("--save", metavar="FILE.json",
                   help="the never/always times as bench/offload_sim.py --validate records")
    a = p.parse_args()
    a.no_cache, a.repeat, a.stride = False, 1, 0
    counts = [int(n) for n in a.chunks.split(",")]
    a.chunks = max(counts)                       # what Bench sizes its own dataset by
    tmp = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    b = sb.Bench(a, tmp)
    kinds = a.kinds.split(",")
    sets = [Dataset(c, n, a.chunk, i) for i, (c, n) in enumerate(
        (c, n) for c in a.codecs.split(",") for n in counts)]
    lambda_env = dict(AWS_LAMBDA_CHUNKREAD_FUNCTION="chunk_read", AWS_LAMBDA_THRESHOLD=1,
                      AWS_LAMBDA_MAX_INVOKE=a.workers, AWS_LAMBDA_MEMORY_MB=1769)
    cases = [(ds, kind) for ds in sets for kind in kinds]
    results = {}                                   # (set, kind) -> {mode: (ms, sha)}
    picks = {}                                     # (set, kind) -> (picked, ran)
    with b.session():
        lambda_env["AWS_LAMBDA_GATEWAY"] = b.lam
        c = b.cluster(FLUSH_TIMEOUT=600)          # thousands of chunks through the proxy
        for ds in sets:
            ds.write(c.endpoint)
        for ds in sets:                              # fill the proxy's replay cache, untimed
            ds.read(c.endpoint, "hyperslab")
        b.stop(c)
        for mode in ("never", "always", "auto"):
            extra = dict(AWS_LAMBDA_EXPLORE=a.explore, CLOUDWATCH_EMF=1) \
                if mode == "auto" else {}
            c = b.cluster(AWS_LAMBDA_OFFLOAD=mode, CHUNK_MEM_CACHE_SIZE=a.dn_cache,
                          **lambda_env, **extra)
            for ds in sets:
                ds.warm(c.endpoint)
            if mode != "auto":
                # one untimed pass, as auto's training gives it: the proxy replays what
                # each path fetched before (a cluster's start may empty it), the workers
                # are up, the DNs' connections open, so every mode is timed warm alike
                for ds, kind in cases:
                    ds.read(c.endpoint, kind)
            if mode == "auto":                       # calibrate, untimed
                for r in range(a.train_rounds):
                    # explore 0.5 flips every second decision: shifting alternate rounds
                    # of an even number of reads lets each read meet both plans
                    shift = r % 2 if len(cases) % 2 == 0 else 0
                    for ds, kind in cases[shift:] + cases[:shift]:
                        ds.read(c.endpoint, kind)
                trained = weights(c)
            for ds, kind in cases:
                before = len(decisions(c))
                ms, sha = ds.read(c.endpoint, kind)
                results.setdefault((ds, kind), {})[mode] = (ms, sha)
                if mode == "auto":
                    new = decisions(c)[before:]
                    ran = new[-1]["Plan"] if new else "dn"      # none: not eligible
                    explored = bool(new and new[-1].get("Explored"))
                    other = "dn" if ran == "lambda" else "lambda"
                    picks[(ds, kind)] = (other if explored else ran, ran)
            if mode == "auto":
                judged = weights(c)
            b.stop(c)

    print(f"{len(sets)} datasets of {a.chunk}x{a.chunk} float32 chunks, {a.dn} DNs with "
          f"{a.dn_cache} chunk caches, {a.workers} local workers, {a.latency_ms:g} ms per S3 "
          "GET on both paths")
    print(f"\n{'kind':10s}{'codec':8s}{'chunks':>7s}{'never':>9s}{'always':>9s}{'auto':>9s}"
          f"{'picked':>8s}{'ran':>8s}{'right':>7s}")
    right = lost = explored = 0
    for (ds, kind), r in results.items():
        (dn_ms, dn_sha), (fn_ms, fn_sha), (auto_ms, auto_sha) = (
            r["never"], r["always"], r["auto"])
        if len({dn_sha, fn_sha, auto_sha}) != 1:
            raise SystemExit(f"different answers for {kind} of {ds.domain}")
        picked, ran = picks[(ds, kind)]
        picked_ms = fn_ms if picked == "lambda" else dn_ms
        ok = picked_ms <= TIE * min(dn_ms, fn_ms)
        right += ok
        explored += picked != ran
        lost += max(0.0, picked_ms - min(dn_ms, fn_ms))
        print(f"{kind:10s}{ds.codec:8s}{ds.chunks:7d}{dn_ms:9.0f}{fn_ms:9.0f}{auto_ms:9.0f}"
              f"{picked:>8s}{ran:>8s}{'yes' if ok else 'NO':>7s}")
    n = len(results)
    print(f"\nauto's model picked the faster plan (ties within {TIE - 1:.0%}) in {right} of {n} "
          f"cases ({right / n:.0%}), after {a.train_rounds} training rounds at explore "
          f"{a.explore:g}; {explored} judged requests explored the other plan; its wrong picks "
          f"lost {lost:.0f} ms in all "
          f"(of {sum(min(r['never'][0], r['always'][0]) for r in results.values()):.0f} ms "
          f"best-case total); medians: never "
          f"{statistics.median(r['never'][0] for r in results.values()):.0f} ms, always "
          f"{statistics.median(r['always'][0] for r in results.values()):.0f} ms")
    if a.save:
        Path(a.save).write_text(json.dumps([sim_record(a, ds, kind, r["never"][0],
                                                       r["always"][0])
                                            for (ds, kind), r in results.items()], indent=1))
        print(f"measurements for the simulator: {a.save}")
    for when, model in (("after training", trained), ("after the judged pass", judged)):
        print(f"model weights {when} (samples {model['samples']}; fixed_ms in ms, the others "
              "multiply their stage at the analytic constants):")
        for plan, ws in (model["weights"] or {}).items():
            print(f"  {plan:7s}" + " ".join(f"{k}={v:g}" for k, v in ws.items()
                                           if not k.startswith("decode/") or
                                           k.split("/")[1] in a.codecs.split(",")))

if __name__ == "__main__":
    main()
