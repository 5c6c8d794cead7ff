"""Discrete-event simulation of one chunked read: the DN plan against the Lambda plan.

    .venv/bin/python bench/offload_sim.py                    # AWS-scale tables (+ plot if asked)
    .venv/bin/python bench/offload_sim.py --plot bench/offload_sim.png
    .venv/bin/python bench/offload_sim.py --kind column --codec deflate --chunks 10000 --dn 8
    .venv/bin/python bench/offload_sim.py --validate measurements.json [--preset local]

What is simulated (bench/OFFLOAD_SIM.md has the parameter values and their sources):

- DN plan: the SN turns the selection into chunk tasks and sends each DN its share in
  one call (chunk i -> DN i mod N, hashed, or as the dataset really lies); a call
  costs the SN and the DN a fixed CPU. Per DN: S3 GETs through a pool of `connections`
  (a chunk waits for a free connection; a GET takes a lognormal first-byte latency plus
  size / per-connection throughput), then the DN's network interface, then its one
  core (SDK CPU per GET, decode, select, frame the answer), then its link to the SN. The
  SN's one core assembles the pieces of all DNs in arrival order. A chunk the DN holds
  decoded in its cache skips the GET and the decode; each DN's cache has room for an
  even share of the cached part of the dataset. A query takes its chunks in order with
  a window of loads ahead.
- Lambda plan: the chunks go out in invocations of `per_call` chunks. An invocation
  takes one of `max_concurrency` slots, the SN's core spends CPU to send it, the call
  pays the invoke overhead (plus a cold start when it is the first use of a new
  instance and that instance is cold), the function fetches its chunks through 16
  connections, then decodes, selects, zstd-compresses an answer that shrinks by a fifth
  (chunk_read's rule) and base64-encodes on its CPU share (memory/1769 of a vCPU), the
  answer travels back (locally through one relaying gateway process), the slot is
  freed, and the SN's core base64-decodes, decompresses and copies the answer. Both plans
  pay the same per-request costs (the SN's and the client's CPU, a query's JSON).

Every resource is a FIFO queue in front of c servers. Where jobs flow one way through a
chain of queues (GET pool -> NIC -> core -> link -> SN), the departures of one queue are
the arrivals of the next, and a FIFO queue's departures follow from its arrivals and
service times alone, so each queue is simulated in one pass over its jobs (Lindley's
recursion, vectorised with numpy, for one server; a heap of free times for c servers).
Where a resource is held across other queues - a Lambda slot is held for the whole
invocation, and the SN's single core both sends invocations and ingests their answers -
a small event engine (heapq) drives the invocations. Events per chunk stay O(1).

Times are ms, sizes bytes, rates MB/s (1e6 bytes/s). Deterministic for a seed: the
random draws depend only on the seed and the chunk count (common random numbers), so
two scenarios that differ in one parameter see the same S3 latencies.
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np

MiB = 1 << 20
KINDS = ("hyperslab", "strided", "column", "points", "query")
CODECS = ("none", "deflate", "zstd")


# ----------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class Read:
    """The request: which chunks, how they are stored, and what comes back."""
    kind: str = "hyperslab"       # hyperslab | strided | column | points | query
    codec: str = "deflate"        # none | deflate | zstd
    chunks: int = 1000
    chunk_bytes: int = MiB        # decoded bytes of one chunk
    itemsize: int = 4             # float32
    rank: int = 2                 # chunk side: (chunk_bytes/itemsize) ** (1/rank)
    ratio: float | None = None    # compression ratio; None: 1 for none, 3 otherwise
    stride: int = 4               # strided: every stride-th element ...
    strided_dims: int | None = None   # ... along this many dims (None: all of them)
    points: int = 64              # points: selected points per chunk
    hit_rate: float = 0.005       # query: share of the elements that match
    pages: int = 1                # the SN streams the answer in this many pages, one after
                                  # the other (h5cloud: 8 MiB pages for big binary reads)
    dataset_chunks: int | None = None   # the dataset's chunks, which the read's are spread
                                  # over evenly (None: the read covers its dataset)
    dn_chunks: tuple | None = None    # the dataset's chunks on DN 0, 1, ... (its real
                                  # placement; None: dn.placement decides)
    answer_ratio: float | None = None   # what zstd level 1 makes of a Lambda answer's bytes
                                  # (raw / compressed; None: they do not compress)

    def stored_bytes(self) -> float:
        ratio = self.ratio if self.ratio else (1.0 if self.codec == "none" else 3.0)
        return self.chunk_bytes / ratio

    def elements(self) -> int:
        return self.chunk_bytes // self.itemsize

    def return_bytes(self) -> float:
        """Selected bytes one chunk contributes to the answer."""
        elems = self.elements()
        if self.kind == "hyperslab":
            return float(self.chunk_bytes)
        if self.kind == "strided":
            dims = self.rank if self.strided_dims is None else self.strided_dims
            return self.chunk_bytes / self.stride ** dims
        if self.kind == "column":
            return self.itemsize * elems ** (1 / self.rank)     # one line of the chunk
        if self.kind == "points":
            return float(self.itemsize * min(self.points, elems))
        if self.kind == "query":
            return self.itemsize * elems * self.hit_rate
        raise ValueError(f"unknown read kind {self.kind!r}")

    def json_bytes(self) -> float:
        """What one chunk adds to a Lambda answer besides its base64 data: its entry in
        "parts", and for a query the hit indices as a JSON list (~8 characters each)."""
        extra = 8 * self.elements() * self.hit_rate if self.kind == "query" else 0.0
        return 100.0 + extra


@dataclass(frozen=True)
class Cpu:
    """CPU cost of the work, on one full core (x86, ~3 GHz); MB/s of the bytes named."""
    decode_mb_s: dict = field(default_factory=lambda: {
        "none": 4000.0, "deflate": 220.0, "zstd": 800.0})   # per decoded byte
    get_ms: float = 1.5           # S3 SDK per GET: signing, request, parsing (botocore)
    body_mb_s: float = 1500.0     # reading a GET's body off the socket
    chunk_ms: float = 0.05        # Python bookkeeping per chunk task
    scan_mb_s: dict = field(default_factory=lambda: {"query": 1500.0})  # per decoded byte
    gather_mb_s: dict = field(default_factory=lambda: {      # per returned byte
        "hyperslab": 4000.0, "strided": 1000.0, "column": 500.0, "points": 200.0,
        "query": 500.0})
    frame_mb_s: float = 2000.0    # a DN writes the selected bytes into its answer frame
    b64enc_mb_s: float = 1500.0   # the function's base64 + JSON (per base64 byte)
    # chunk_read tries zstd level 1 on every answer of compress_min bytes or more, and
    # sends it compressed when that saves 20 %; per raw answer byte (None: not counted).
    # AWS: the dev VM's rates x 2 (it runs ~2x slower than a 3 GHz core)
    zstd_try_mb_s: float | None = 1300.0  # a try that does not pay (incompressible bytes)
    zstd_pack_mb_s: float | None = 460.0  # compressing bytes that do compress

    def select_ms(self, r: Read) -> float:
        scan = self.scan_mb_s.get(r.kind)
        return (r.chunk_bytes / (scan * 1e3) if scan else 0.0) + \
            r.return_bytes() / (self.gather_mb_s[r.kind] * 1e3)

    def fetch_decode_ms(self, r: Read, get_ms: float | None = None) -> float:
        """CPU a fetched chunk costs before selection: SDK GET, body, decode."""
        return (self.get_ms if get_ms is None else get_ms) + \
            r.stored_bytes() / (self.body_mb_s * 1e3) + \
            r.chunk_bytes / (self.decode_mb_s[r.codec] * 1e3)


@dataclass(frozen=True)
class S3:
    median_ms: float = 35.0       # first-byte latency, lognormal
    p99_ms: float = 150.0
    conn_mb_s: tuple = (50.0, 90.0)   # per-connection throughput, uniform in this range
    gateway_cpu_ms: float = 0.0   # local only: the latency proxy's CPU per GET (one process)

    def sigma(self) -> float:
        return max(0.0, math.log(self.p99_ms / self.median_ms) / 2.3263)


@dataclass(frozen=True)
class DataNodes:
    count: int = 8
    connections: int = 64         # concurrent S3 GETs per DN (h5cloud: aws_lambda_p_dn,
                                  # which sizes the DN's S3 connection pool)
    core: float = 1.0             # a DN is one Python process: one core
    nic_mb_s: float = 1250.0 / 4  # S3 bytes in: m5.xlarge 10 Gbit/s burst, 4 DNs share it
    link_mb_s: float = 1000.0     # DN -> SN
    cached: float = 0.0           # the DN caches have room for this share of the read's
                                  # dataset and hold what fits: each DN has room for
                                  # cached * dataset chunks / count (above 1: to spare)
    placement: str = "even"       # even: chunk i -> DN i mod count; hash: each chunk to a
                                  # DN at random (h5cloud: md5 of the chunk id)
    cache_bytes: int | None = None    # each DN's chunk cache (validation: what `cached` of a
                                  # record means in chunks; None: not known)
    query_window: int | None = 16     # a query takes its chunks in order, loading this many
                                  # ahead (h5cloud: QUERY_WINDOW in server/offload/dn.py);
                                  # None: as any read, through the pool
    call_cpu_ms: float = 0.0      # a DN's CPU per call (one per DN and page): parse the
                                  # message and its JSON header, frame and send the answer
    request_ms: float = 2.0       # SN <-> DN round trip of the request itself
    price_hour: float = 0.192     # m5.xlarge on demand, us-east-1
    per_instance: int = 4


@dataclass(frozen=True)
class Lambda:
    max_concurrency: int = 1000   # account default
    memory_mb: int = 1769
    cpu: float | None = None      # None: min(1, memory/1769); local workers: a process each
    warm: float = 1.0             # share of new instances that are already warm
    cold_ms: tuple = (300.0, 800.0)   # what a cold start adds, uniform
    cold_cpu_ms: float = 0.0      # CPU a cold start burns (counts on a shared machine)
    invoke_ms: tuple = (15.0, 30.0)   # warm invoke overhead, uniform
    connections: int = 16         # chunk_read's thread pool
    get_ms: float | None = None   # the function's CPU per GET (None: cpu.get_ms)
    fetch_then_decode: bool = True    # chunk_read fetches all its chunks, then decodes
    payload_limit: int = 6_000_000    # a synchronous answer (and request): 6 MB
    compress_min: int = 64 * 1024     # chunk_read: answers of fewer raw bytes go as they are
    compress_gain: float = 0.8        # ... and compressed ones only when at most 0.8 of raw
    return_mb_s: float = 100.0    # the answer's way back through the Lambda service
    relay_mb_s: float | None = None   # local only: the Invoke gateway, one process, relays
                                  # each answer (base64 bytes of CPU per second); None: none
    per_call: int | None = None   # None: the best of batch_sizes()
    price_gb_s: float = 0.0000166667
    price_request: float = 0.20e-6
    bill_init: bool = True        # INIT is billed (since 2025-08-01, zip + managed runtime)

    def share(self) -> float:
        return self.cpu if self.cpu is not None else min(1.0, self.memory_mb / 1769.0)


@dataclass(frozen=True)
class ServiceNode:
    task_us: float = 10.0         # selection -> chunk tasks, per chunk (both plans)
    copy_mb_s: float = 2000.0     # read a DN frame and copy it into the answer
    chunk_us: float = 20.0        # per-chunk assembly
    invoke_cpu_ms: float = 1.5    # sending one invocation (signing, HTTP POST)
    event_chunk_us: float = 15.0  # a chunk's entry in the event JSON
    answer_cpu_ms: float = 0.5    # receiving one answer (HTTP, json.loads)
    ingest_mb_s: float = 1000.0   # base64 bytes decoded per second
    unpack_mb_s: float | None = 1640.0    # zstd decompression of a compressed answer, per
                                  # raw byte (None: not counted); AWS: the VM's x 2
    dn_call_ms: float = 0.0       # CPU per DN call: build and send it, read the answer
    client_mb_s: float | None = None  # the answer on to the client (None: not counted)
    request_ms: float = 0.0       # per request, both plans: wall time besides the CPU below
    request_cpu_ms: float = 0.0   # per request, both plans: the SN's HTTP, auth, metadata
    client_cpu_ms: float = 0.0    # per request, both plans: the client's own CPU
    json_value_us: float = 0.0    # a query answers JSON: per value, the SN's json.dumps and
                                  # the client's json.loads (0: not counted)


@dataclass(frozen=True)
class Machine:
    cores: float | None = None    # None: every process owns its cores (AWS); else shared


@dataclass(frozen=True)
class Scenario:
    read: Read = Read()
    s3: S3 = S3()
    cpu: Cpu = Cpu()
    dn: DataNodes = DataNodes()
    fn: Lambda = Lambda()
    sn: ServiceNode = ServiceNode()
    machine: Machine = Machine()
    seed: int = 1

    def set(self, **parts) -> "Scenario":
        """A copy with some fields changed: sc.set(read={"chunks": 10}, dn={"count": 4})."""
        changes = {}
        for name, values in parts.items():
            if isinstance(values, dict):
                changes[name] = replace(getattr(self, name), **values)
            else:
                changes[name] = values
        return replace(self, **changes)


def preset(name: str) -> Scenario:
    """aws: the defaults above. local: one 2-core machine that runs everything - SN, DNs,
    the local Lambda workers (processes, a full core each when free, memory irrelevant),
    and S3 = moto behind a latency-injecting proxy on loopback that replays answers
    (bench/serverless.py)."""
    if name == "aws":
        return Scenario()
    if name == "local":
        # CPU costs measured on the 2-core development VM (OFFLOAD_SIM.md, "Local preset");
        # "measured 11-30" = with /proc CPU accounting around 200 repeated requests, 4 DNs,
        # data cached in the DNs; "microbenchmark" = process time of the step alone
        return Scenario(
            s3=S3(median_ms=30.0, p99_ms=30.0, conn_mb_s=(400.0, 800.0), gateway_cpu_ms=0.6),
            cpu=Cpu(get_ms=1.5,             # DN GET: fitted (2.0 measured alone, see .md)
                    chunk_ms=0.08,          # a cached chunk in a DN call (measured 11-30)
                    scan_mb_s={"query": 2000.0},    # mask + take: 0.6-0.8 ms per 1.5 MiB
                    b64enc_mb_s=154.0,      # base64 + json.dumps (microbenchmark)
                    zstd_try_mb_s=625.0,    # zstd level 1 on bytes it cannot shrink
                    zstd_pack_mb_s=230.0,   # ... and on values_of's, 2.16x (12-01)
                    frame_mb_s=1000.0,
                    decode_mb_s={"none": 2000.0, "deflate": 250.0, "zstd": 600.0}),
            dn=DataNodes(count=4, nic_mb_s=2000.0, link_mb_s=1000.0,
                         placement="hash",      # md5 of the chunk id (core/ids.py)
                         cache_bytes=1 << 20,   # offload_grid.py --dn-cache (default 1m)
                         connections=64,        # aws_lambda_p_dn: the DN's S3 pool
                         query_window=16,       # QUERY_WINDOW (server/offload/dn.py)
                         call_cpu_ms=0.8,       # per DN call (measured 11-30)
                         request_ms=0.2),       # loopback WebSocket message each way
            fn=Lambda(max_concurrency=8, cpu=1.0, cold_ms=(900.0, 1300.0), cold_cpu_ms=850.0,
                      invoke_ms=(8.0, 15.0), return_mb_s=300.0,
                      get_ms=1.9,               # chunk_read's urllib3 signed GET: 2.5
                                                # alone (256 KiB, moto, 11-30) x 0.75, the
                                                # DN's grid/alone discount (12-01 grids)
                      relay_mb_s=550.0),        # gateway: readline of the worker's answer,
                                                # relayed unparsed (microbenchmark 12-01;
                                                # json.loads + dumps before: 170)
            sn=ServiceNode(task_us=20.0, copy_mb_s=1000.0, chunk_us=40.0,
                           invoke_cpu_ms=3.0,   # 4.0 with aiobotocore; offload/invoke.py
                                                # saves 1.0 ms a call (1.7-1.9 -> 0.7-0.9)
                           event_chunk_us=4.0,  # event + json.dumps (microbenchmark 12-01)
                           answer_cpu_ms=1.0,
                           ingest_mb_s=700.0,   # json.loads + pybase64 (microbenchmark
                                                # 12-01; the stdlib's base64 before: 200)
                           unpack_mb_s=820.0,   # zstd decompress (microbenchmark 12-01)
                           dn_call_ms=0.6,      # per DN call (measured 11-30)
                           client_mb_s=400.0,
                           request_ms=0.15,     # 2.7 ms wall - 2.55 ms CPU (measured 11-30)
                           request_cpu_ms=0.95,     # GET dataset (measured 11-30)
                           client_cpu_ms=2.45,      # column read (measured 11-30)
                           json_value_us=1.7),      # dumps 1.2 + loads 0.5 (microbenchmark)
            machine=Machine(cores=2.0))
    raise ValueError(f"unknown preset {name!r} (aws, local)")


# ----------------------------------------------------------------------------- queues

def fifo1(arrive, service):
    """One server, jobs served in the given order (arrivals sorted): the departures.
    Lindley: d_i = max(a_i, d_{i-1}) + s_i, i.e. d_i = S_i + max_{j<=i} (a_j - S_{j-1})
    with S the running sum of service times; along the last axis."""
    total = np.cumsum(service, axis=-1)
    return total + np.maximum.accumulate(arrive - (total - service), axis=-1)


def pool(service, c):
    """c servers, every job present at time 0, each taken by the first free server in
    order (a connection pool): the completion times, relative to 0. service: 2-D (rows
    are independent pools)."""
    rows, cols = service.shape
    if cols <= c:
        return service.copy()
    if rows >= 32:              # one numpy step per column, across all rows: exact greedy
        done = np.empty_like(service)
        done[:, :c] = service[:, :c]
        free = service[:, :c].copy()
        at = np.arange(rows)
        for j in range(c, cols):
            k = free.argmin(axis=1)
            done[:, j] = free[at, k] + service[:, j]
            free[at, k] = done[:, j]
        return done
    done = np.empty_like(service)          # few rows: a heap of free times per row
    for r in range(rows):
        row = service[r].tolist()
        free = row[:c]
        heapq.heapify(free)
        out = row[:c]
        push, add = heapq.heapreplace, out.append
        for s in row[c:]:
            t = free[0] + s
            push(free, t)
            add(t)
        done[r] = out
    return done


def invocations(t0, send, flight, ingest, slots: int, one_pass: bool = True, relay=None):
    """The SN's side of the Lambda plan, an event simulation over invocations.

    Call i waits for one of `slots` concurrency slots (FIFO), then for the SN's core to
    send it (send[i] ms), is in flight for flight[i] ms (overhead, cold start, the
    function's work, the answer's way back), frees its slot, passes the relay if there is
    one (relay[i] ms in one FIFO server: the local Invoke gateway), and waits for the core
    again to ingest its answer (ingest[i] ms). The core and the relay are FIFO servers,
    so the jobs can be taken from a heap of (arrival, sequence, kind, call): an arrival
    pushed always lies after the job being served. Returns (time each answer is
    ingested, the core's busy ms)."""
    k = len(send)
    busy = float(send.sum() + ingest.sum())
    if relay is None:
        relay = np.zeros(k)
    if k <= slots and one_pass:
        # one wave: every send arrives at t0, before any answer, so the core sends them
        # all, then ingests the answers in arrival order (the same result, vectorised)
        sent = t0 + np.cumsum(send)
        back = sent + flight
        order = np.argsort(back, kind="stable")
        relayed = fifo1(back[order], relay[order])
        done = np.empty(k)
        done[order] = fifo1(np.maximum(relayed, sent[-1]), ingest[order])
        return done, busy
    SEND, RELAY, INGEST = 0, 1, 2
    heap = [(t0, i, SEND, i) for i in range(min(k, slots))]
    seq, waiting, free_at, relay_free, done = k, min(k, slots), t0, t0, np.empty(k)
    send, flight, ingest, relay = send.tolist(), flight.tolist(), ingest.tolist(), relay.tolist()
    while heap:
        t, _, kind, i = heapq.heappop(heap)
        if kind == RELAY:
            relay_free = max(t, relay_free) + relay[i]
            heapq.heappush(heap, (relay_free, seq, INGEST, i))
            seq += 1
            continue
        start = t if t > free_at else free_at
        if kind == SEND:
            free_at = start + send[i]
            back = free_at + flight[i]
            if waiting < k:                # the slot goes to the next call in line
                heapq.heappush(heap, (back, seq, SEND, waiting))
                waiting += 1
            heapq.heappush(heap, (back, seq + 1, RELAY, i))
            seq += 2
        else:
            free_at = start + ingest[i]
            done[i] = free_at
    return done, busy


# ----------------------------------------------------------------------------- the plans

@dataclass
class Result:
    latency_ms: float
    cost_usd: float
    detail: dict


def draws(n: int, seed: int, page: int = 0, dataset: int | None = None) -> dict:
    """Every random number a run uses, by chunk (or by invocation, fewer than n); "dn"
    (hashed placement) by chunk of the dataset. Each kind of draw has its own stream, so
    the first k chunks get the same draws whatever n is: scenarios that differ in a
    parameter or in the chunk count stay comparable."""
    # "cached" is no longer drawn from; it stays so that the streams after it do not move
    names = ("z", "thr", "cached", "invoke", "cold", "cold_ms", "dn")
    streams = np.random.SeedSequence([seed, page]).spawn(len(names))
    rngs = [np.random.default_rng(s) for s in streams]
    size = {"dn": max(n, dataset or 0)}
    return {name: rng.standard_normal(n) if name == "z" else rng.random(size.get(name, n))
            for name, rng in zip(names, rngs)}


def fetch_ms(sc: Scenario, rnd: dict, idx):
    """The time a GET holds its connection: first byte + body at the connection's rate."""
    s3, lo_hi = sc.s3, sc.s3.conn_mb_s
    first = s3.median_ms * np.exp(s3.sigma() * rnd["z"][idx])
    rate = lo_hi[0] + (lo_hi[1] - lo_hi[0]) * rnd["thr"][idx]
    return first + sc.read.stored_bytes() / (rate * 1e3)


def machine_bound(sc: Scenario, latency: float, cpu_ms: float) -> float:
    """On a shared machine no plan ends before all its CPU work fits on the cores."""
    return max(latency, cpu_ms / sc.machine.cores) if sc.machine.cores else latency


def dn_rows(sc: Scenario, rnd: dict) -> tuple:
    """Which DN reads which chunk, and which it finds in its cache: (idx, cached) as
    (DNs that get a call) x (most chunks one gets) matrices, each row one DN's chunks in
    order (idx padded with n), the misses first.

    The read's chunks are spread evenly over its dataset's, and the dataset's are placed
    on the DNs (chunk i -> DN i mod count, or hashed; or as the read's dn_chunks say, the
    dataset's real loads, when it gives them: then the read's chunks are shared out in
    proportion to those loads). Each DN's cache has room for an even share of the cached
    part of the dataset, cached * dataset / count chunks (cached > 1: room to spare), so
    a DN that owns more of the dataset misses the share of its chunks its cache has no
    room for. A query
    that takes its chunks in order (query_window) and starts with misses evicts the
    cached chunks beyond its window before it reaches them (LRU): it finds only those in
    its first window."""
    d, r, n = sc.dn, sc.read, sc.read.chunks
    size = max(n, r.dataset_chunks or n)
    if r.dn_chunks is not None:
        loads = np.asarray(r.dn_chunks, dtype=float)
        if len(loads) != d.count or loads.sum() <= 0 or (loads < 0).any():
            raise ValueError(f"dn_chunks {r.dn_chunks} do not fit {d.count} DNs")
        dn = share_out(loads, n)
        owned = loads * size / loads.sum()      # a page of the dataset: its share of them
    else:
        if d.placement == "hash":
            owner = np.minimum((rnd["dn"][:size] * d.count).astype(int), d.count - 1)
        elif d.placement == "even":
            owner = np.arange(size) % d.count
        else:
            raise ValueError(f"unknown placement {d.placement!r} (even, hash)")
        dn = owner[np.arange(n) * size // n]
        owned = np.bincount(owner, minlength=d.count)
    owners, row = np.unique(dn, return_inverse=True)
    counts = np.bincount(row)
    order = np.argsort(row, kind="stable")
    pos = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    idx = np.full((len(owners), counts.max()), n)
    idx[row[order], pos] = order
    room = d.cached * size / d.count / owned[owners]           # share of its chunks it holds
    misses = np.floor(counts * np.maximum(0.0, 1.0 - room) + 1e-9).astype(int)
    col = np.arange(idx.shape[1])
    cached = col >= misses[:, None]
    if r.kind == "query" and d.query_window:
        cached &= (col < d.query_window) | (misses == 0)[:, None]
    return idx, cached & (idx < n)


def share_out(loads, n: int) -> np.ndarray:
    """n chunks in order, each given a DN: DN d gets its share of n by loads (largest
    remainders), its chunks spread evenly among the others'."""
    want = n * loads / loads.sum()
    got = np.floor(want).astype(int)
    got[np.argsort(got - want, kind="stable")[:n - got.sum()]] += 1
    where = np.concatenate([(np.arange(k) + 0.5) / k for k in got if k])
    return np.repeat(np.arange(len(got)), got)[np.argsort(where, kind="stable")]


def windowed(start, fetch, nic, work, window: int):
    """A DN that takes its chunks in order and loads up to `window` ahead (h5cloud's
    query): chunk j's load starts when the DN takes chunk j - window. fetch: a miss's
    GET ms, 0 for a hit; all (rows, cols). Returns when the core is done with each."""
    rows, cols = fetch.shape
    taken, done = np.empty((rows, cols)), np.empty((rows, cols))
    free, nic_free = start.copy(), start.copy()
    for j in range(cols):
        got = (start if j < window else taken[:, j - window]) + fetch[:, j]
        nic_free = np.where(fetch[:, j] > 0, np.maximum(got, nic_free) + nic[:, j], nic_free)
        taken[:, j] = np.maximum(np.where(fetch[:, j] > 0, nic_free, got), free)
        done[:, j] = free = taken[:, j] + work[:, j]
    return done


def _dn_page(sc: Scenario, rnd: dict) -> Result:
    r, d, cpu, sn = sc.read, sc.dn, sc.cpu, sc.sn
    n = r.chunks
    ret = r.return_bytes()
    idx, hit = dn_rows(sc, rnd)
    rows = idx.shape[0]
    # the SN makes the tasks, then sends each DN its call, one after the other; a DN
    # parses its call before it starts its chunks, frames and sends its answer after
    t0 = n * sn.task_us / 1e3 + d.request_ms / 2
    called = t0 + np.arange(1, rows + 1)[:, None] * (sn.dn_call_ms / 2) + d.call_cpu_ms / 2
    tail = cpu.select_ms(r) + cpu.chunk_ms + ret / (cpu.frame_mb_s * 1e3)
    # a padded slot costs nothing anywhere, which leaves every queue's other jobs as
    # they were
    real = idx < n
    miss = real & ~hit
    fetch = np.where(miss, fetch_ms(sc, rnd, np.minimum(idx, n - 1)), 0.0)
    nic = miss * (r.stored_bytes() / (d.nic_mb_s * 1e3))
    work = (miss * cpu.fetch_decode_ms(r) + real * tail) / d.core
    if r.kind == "query" and d.query_window:
        core_done = windowed(called[:, 0], fetch, nic, work, d.query_window)
        served = real
    else:
        # the misses (first in each row) through the connection pool, then the NIC, then
        # the core in the order they are ready; cached chunks are ready at once
        got = pool(fetch, d.connections)
        got = np.sort(np.where(miss, got, 0.0), axis=1)     # misses sort after the zeros
        order = np.argsort(miss, axis=1, kind="stable")     # and so do their other costs
        miss, real, nic, work = (np.take_along_axis(x, order, axis=1)
                                 for x in (miss, real, nic, work))
        ready = np.where(miss, called + fifo1(got, nic), called)
        step = np.argsort(ready, axis=1, kind="stable")
        core_done = fifo1(np.take_along_axis(ready, step, axis=1),
                          np.take_along_axis(work, step, axis=1))
        served = np.take_along_axis(real, step, axis=1)
    link_done = fifo1(core_done, served * (ret / (d.link_mb_s * 1e3))) + d.call_cpu_ms / 2
    # the SN copies each piece in arrival order, and reads each DN's answer once
    answered = np.where(served, link_done, -np.inf).max(axis=1)
    per_chunk = sn.chunk_us / 1e3 + ret / (sn.copy_mb_s * 1e3)
    arrive = np.concatenate([link_done[served], answered])
    service = np.concatenate([np.full(n, per_chunk), np.full(rows, sn.dn_call_ms / 2)])
    step = np.argsort(arrive, kind="stable")
    latency = float(fifo1(arrive[step], service[step])[-1]) + d.request_ms / 2
    if sn.client_mb_s:
        latency += n * ret / (sn.client_mb_s * 1e3)
    gets = int(miss.sum())
    dn_cpu = float(work.sum()) * d.core + rows * d.call_cpu_ms
    sn_cpu = t0 + n * per_chunk + rows * sn.dn_call_ms
    latency = machine_bound(sc, latency, dn_cpu + sn_cpu + gets * sc.s3.gateway_cpu_ms)
    return Result(latency, dn_cost(sc, latency), {"gets": gets, "dn_cpu_ms": dn_cpu,
                                                  "sn_cpu_ms": sn_cpu, "calls": rows})


def dn_cost(sc: Scenario, latency_ms: float) -> float:
    """The DNs are held for the whole request: DN-seconds at their share of an instance."""
    d = sc.dn
    return d.count * latency_ms / 1e3 * d.price_hour / 3600 / d.per_instance


def paged(page_plan, sc: Scenario, rnd: dict | None, **kw) -> Result:
    """A plan over the whole request. With pages > 1 the SN reads page after page, the
    next page while it sends this one to the client (h5cloud's stream_pages): page i+1's
    read and page i's send both start at max(page i read, page i-1 sent)."""
    r, sn = sc.read, sc.sn
    if r.pages <= 1:
        return page_plan(sc, rnd or draws(r.chunks, sc.seed, 0, r.dataset_chunks), **kw)
    per = math.ceil(r.chunks / r.pages)
    sub = sc.set(read={"chunks": per, "pages": 1, "dataset_chunks": r.dataset_chunks and
                       math.ceil(r.dataset_chunks / r.pages)}, sn={"client_mb_s": None})
    send = per * r.return_bytes() / (sn.client_mb_s * 1e3) if sn.client_mb_s else 0.0
    start = sent = cost = 0.0
    for page in range(r.pages):
        if page == 1:                   # later pages find the instances warm
            sub = sub.set(fn={"warm": 1.0})
        res = page_plan(sub, draws(per, sc.seed, page + 1, sub.read.dataset_chunks), **kw)
        start = max(start + res.latency_ms, sent)
        sent = start + send
        cost += res.cost_usd
    if page_plan is _dn_page:
        cost = dn_cost(sc, sent)
    return Result(sent, cost, {"pages": r.pages, "chunks_per_page": per})


def per_request_ms(sc: Scenario) -> float:
    """What a request costs besides its pages, the same in both plans: its wall time,
    the SN's and the client's CPU for it, and a query's answer as JSON, value by value."""
    r, sn = sc.read, sc.sn
    values = r.chunks * r.elements() * r.hit_rate if r.kind == "query" else 0.0
    return sn.request_ms + sn.request_cpu_ms + sn.client_cpu_ms + values * sn.json_value_us / 1e3


def dn_plan(sc: Scenario, rnd: dict | None = None) -> Result:
    res = paged(_dn_page, sc, rnd)
    extra = per_request_ms(sc)
    if extra:
        res.latency_ms += extra
        res.cost_usd = dn_cost(sc, res.latency_ms)
    return res


def lambda_plan(sc: Scenario, rnd: dict | None = None, one_pass: bool = True) -> Result:
    res = paged(_lambda_page, sc, rnd, one_pass=one_pass)
    res.latency_ms += per_request_ms(sc)
    return res


def answer_bytes(r: Read, chunks) -> np.ndarray:
    """Bytes of a chunk_read answer that carries `chunks` chunks' selections."""
    chunks = np.asarray(chunks, dtype=float)
    return 4 * np.ceil(chunks * r.return_bytes() / 3) + chunks * r.json_bytes() + 200


def per_mb(nbytes, mb_s):
    """ms to work through nbytes at mb_s MB/s (0 when the rate is not counted)."""
    return nbytes / (mb_s * 1e3) if mb_s else 0.0 * nbytes


def answer_packing(sc: Scenario, chunks) -> tuple:
    """(tried, packed) for answers of `chunks` chunks: chunk_read tries zstd level 1 on an
    answer of compress_min raw bytes or more, and sends the compressed bytes when they are
    at most compress_gain of the raw ones (lambda_function.py: COMPRESS_MIN, _GAIN)."""
    r, fn = sc.read, sc.fn
    tried = np.asarray(chunks, dtype=float) * r.return_bytes() >= fn.compress_min
    pays = bool(r.answer_ratio) and 1 / r.answer_ratio <= fn.compress_gain
    return tried, tried & pays


def sent_bytes(sc: Scenario, chunks) -> np.ndarray:
    """Bytes of a chunk_read answer as it travels (answer_bytes, of the compressed data
    when chunk_read compressed it)."""
    r = sc.read
    chunks = np.asarray(chunks, dtype=float)
    _, packed = answer_packing(sc, chunks)
    data = chunks * r.return_bytes() / np.where(packed, r.answer_ratio or 1.0, 1.0)
    return 4 * np.ceil(data / 3) + chunks * r.json_bytes() + 200


def answer_fit(sc: Scenario) -> int:
    """The most chunks one answer can carry within the payload limit (0: not one)."""
    r, limit = sc.read, sc.fn.payload_limit
    fit = int((limit - 200) // (r.return_bytes() * 4 / 3 + r.json_bytes()))
    while fit > 0 and answer_bytes(r, fit) > limit:
        fit -= 1
    return max(0, min(fit, r.chunks))


def batch_sizes(sc: Scenario) -> list:
    """The per_call values the plan tries, smallest first: the steps of a fixed ladder
    (about 2**(k/2): 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, ...) from ceil(n / limit) - the
    chunks spread over the concurrency limit - up to the most one 6 MB answer carries,
    and that most itself. A higher limit only adds candidates. When even the fullest
    answers need more invocations than the limit allows, only the fullest are tried
    (they run in waves)."""
    fn, n = sc.fn, sc.read.chunks
    fit = answer_fit(sc)
    if fit < 1:
        return []
    if fn.per_call:
        return [max(1, min(fn.per_call, fit))]
    spread = math.ceil(n / max(1, fn.max_concurrency))
    ladder = sorted({round(2 ** (k / 2)) for k in range(2 * fit.bit_length() + 2)})
    return [b for b in ladder if spread <= b < fit] + [fit]


def lambda_cpu_ms(sc: Scenario, chunks=None):
    """CPU time one chunk costs inside the function, at its CPU share, in an answer of
    `chunks` chunks (None: the fullest answer; an array: one value each): fetch, decode,
    select, and its share of the answer's zstd (a try, or the compression that is sent),
    base64 and JSON."""
    r, cpu = sc.read, sc.cpu
    tried, packed = answer_packing(sc, max(1, answer_fit(sc)) if chunks is None else chunks)
    ret = r.return_bytes()
    zstd = np.where(packed, per_mb(ret, cpu.zstd_pack_mb_s),
                    np.where(tried, per_mb(ret, cpu.zstd_try_mb_s), 0.0))
    encode = ret / np.where(packed, r.answer_ratio or 1.0, 1.0) * 4 / 3 / (cpu.b64enc_mb_s * 1e3)
    ms = (cpu.fetch_decode_ms(r, sc.fn.get_ms) + cpu.select_ms(r) + cpu.chunk_ms + zstd +
          encode) / sc.fn.share()
    return float(ms) if np.ndim(ms) == 0 else ms


def _lambda_page(sc: Scenario, rnd: dict, one_pass=True) -> Result:
    """The Lambda plan at its best batch size among batch_sizes(): fewer, fuller
    invocations cost the SN less sending and ingesting, more chunks per invocation cost
    the function more time. Best-first: candidates in the order of a lower bound on
    their latency, until that bound reaches the best latency simulated (an exact
    minimum over the candidates, so a higher concurrency limit is never slower)."""
    best = None
    for bound, per_call in sorted((latency_bound(sc, b), b) for b in batch_sizes(sc)):
        if best is not None and bound >= best.latency_ms:
            break
        res = _lambda_batches(sc, rnd, per_call, one_pass)
        if best is None or res.latency_ms < best.latency_ms:
            best = res
    return best or Result(math.inf, math.inf, {"why": "one chunk's answer exceeds 6 MB"})


def batch_split(n: int, per_call: int) -> np.ndarray:
    """Chunks per invocation."""
    calls = math.ceil(n / per_call)
    sizes = np.full(calls, per_call)
    sizes[-1] = n - per_call * (calls - 1)
    return sizes


def sn_work(sc: Scenario, sizes) -> tuple:
    """The SN core's ms to send each invocation and to ingest its answer (json.loads and
    base64 of the bytes sent, zstd decompression when they were compressed)."""
    r, sn = sc.read, sc.sn
    _, packed = answer_packing(sc, sizes)
    send = sn.invoke_cpu_ms + sizes * sn.event_chunk_us / 1e3
    ingest = sn.answer_cpu_ms + sent_bytes(sc, sizes) / (sn.ingest_mb_s * 1e3) + \
        packed * per_mb(sizes * r.return_bytes(), sn.unpack_mb_s) + \
        sizes * (sn.chunk_us / 1e3 + r.return_bytes() / (sn.copy_mb_s * 1e3))
    return send, ingest


def latency_bound(sc: Scenario, per_call: int) -> float:
    """No batch of per_call ends sooner than the SN's own work for all of them, nor than
    one full invocation's CPU (plus sending it, the least overhead, ingesting it)."""
    n, fn = sc.read.chunks, sc.fn
    send, ingest = sn_work(sc, batch_split(n, per_call))
    t0 = n * sc.sn.task_us / 1e3
    one = send[0] + fn.invoke_ms[0] + per_call * lambda_cpu_ms(sc, per_call) + ingest[0]
    return t0 + max(float(send.sum() + ingest.sum()), one)


def _lambda_batches(sc: Scenario, rnd: dict, per_call: int, one_pass: bool) -> Result:
    r, fn, sn, n = sc.read, sc.fn, sc.sn, sc.read.chunks
    sizes = batch_split(n, per_call)
    calls = len(sizes)
    # inside each invocation (independent of when it starts): fetch, then CPU
    idx = np.arange(calls * per_call).reshape(calls, per_call)
    valid = idx < n
    service = np.where(valid, fetch_ms(sc, rnd, np.minimum(idx, n - 1)), 0.0)
    fetched = pool(service, fn.connections)
    work = np.where(valid, lambda_cpu_ms(sc, sizes)[:, None], 0.0)
    if fn.fetch_then_decode:
        body = fetched.max(axis=1) + work.sum(axis=1)
    else:
        body = fifo1(np.sort(fetched, axis=1), work).max(axis=1)
    answers = sent_bytes(sc, sizes)
    back = answers / (fn.return_mb_s * 1e3)
    overhead = fn.invoke_ms[0] + (fn.invoke_ms[1] - fn.invoke_ms[0]) * rnd["invoke"][:calls]
    # the first max_concurrency invocations each start a new instance; later ones reuse one
    fresh = np.arange(calls) < fn.max_concurrency
    cold = np.where(fresh & (rnd["cold"][:calls] >= fn.warm),
                    fn.cold_ms[0] + (fn.cold_ms[1] - fn.cold_ms[0]) * rnd["cold_ms"][:calls], 0.0)
    send, ingest = sn_work(sc, sizes)
    relay = answers / (fn.relay_mb_s * 1e3) if fn.relay_mb_s else None
    t0 = n * sn.task_us / 1e3
    done, core_ms = invocations(t0, send, overhead + cold + body + back, ingest,
                                max(1, fn.max_concurrency), one_pass, relay)
    latency = float(done.max())
    if sn.client_mb_s:
        latency += n * r.return_bytes() / (sn.client_mb_s * 1e3)
    fn_cpu = float(work.sum()) * fn.share()
    colds = int((cold > 0).sum())
    relay_ms = float(relay.sum()) if relay is not None else 0.0
    cpu_ms = fn_cpu + t0 + core_ms + relay_ms + n * sc.s3.gateway_cpu_ms + \
        colds * fn.cold_cpu_ms
    latency = machine_bound(sc, latency, cpu_ms)
    billed = np.ceil(body + (cold if fn.bill_init else 0.0))
    cost = float(billed.sum()) / 1e3 * fn.memory_mb / 1024 * fn.price_gb_s + \
        calls * fn.price_request
    return Result(latency, cost, {
        "calls": calls, "per_call": per_call, "fit": answer_fit(sc), "cold_calls": colds,
        "max_answer_bytes": int(answer_bytes(r, sizes).max()), "sn_busy_ms": t0 + core_ms,
        "billed_ms": float(billed.sum()), "packed_calls": int(answer_packing(sc, sizes)[1].sum()),
        "sent_bytes": float(answers.sum())})


def both(sc: Scenario) -> tuple[Result, Result]:
    rnd = draws(sc.read.chunks, sc.seed, 0, sc.read.dataset_chunks)
    return dn_plan(sc, rnd), lambda_plan(sc, rnd)


# ----------------------------------------------------------------------------- analysis

GRID = [int(round(10 ** (k / 4))) for k in range(4, 21)]        # 10 ... 100,000


def crossover(dn_ms: list, fn_ms: list, grid=GRID) -> float | None:
    """The chunk count from which the Lambda plan stays faster up to the end of the grid
    (log-interpolated between the last grid point where it is not faster and the next);
    grid[0] when it is faster everywhere, None when it is not faster at the end."""
    gain = [math.log(f / d) if math.isfinite(f) else math.inf for d, f in zip(dn_ms, fn_ms)]
    losing = [i for i, g in enumerate(gain) if g >= 0]
    if not losing:
        return float(grid[0])
    i = losing[-1]
    if i == len(grid) - 1:
        return None
    g0, g1 = gain[i], gain[i + 1]
    if not math.isfinite(g0):
        return float(grid[i + 1])
    x0, x1 = math.log(grid[i]), math.log(grid[i + 1])
    return float(math.exp(x0 + (x1 - x0) * g0 / (g0 - g1)))


def curve(sc: Scenario, plan, grid=GRID) -> list:
    return [plan(sc.set(read={"chunks": n})).latency_ms for n in grid]


def fmt_n(x: float | None) -> str:
    if x is None:
        return "never"
    if x <= GRID[0]:
        return f"<={GRID[0]}"
    return f"{x:,.0f}" if x < 1000 else f"{x / 1000:.3g}k"


def fmt_usd(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.2g}" if x >= 0.01 else f"{x:.1e}".replace("e-0", "e-")


def fmt_ms(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if x < 10000 else f"{x / 1000:,.0f}s"


def aws_tables(base: Scenario, dns=(4, 8, 16), memories=(128, 512, 1769), plot=None,
               kinds=KINDS, codecs=CODECS, cost_ns=(1000, 10000, 100000)) -> str:
    """The AWS-scale tables (markdown), and the plot of the curves behind them."""
    out, curves = [], {}
    idx_10k = GRID.index(10000)
    mid = 8 if 8 in dns else dns[len(dns) // 2]
    rows = [(k, c) for k in kinds for c in codecs]
    dn_curves = {(k, c, d): curve(base.set(read={"kind": k, "codec": c}, dn={"count": d}),
                                  dn_plan) for k, c in rows for d in dns}
    fn_curves = {(k, c, m): curve(base.set(read={"kind": k, "codec": c}, fn={"memory_mb": m}),
                                  lambda_plan) for k, c in rows for m in memories}
    r, fn = base.read, base.fn
    out.append(f"Chunks of {r.chunk_bytes / MiB:g} MiB decoded (float32, 2-D), deflate/zstd "
               f"ratio 3; S3 first byte median {base.s3.median_ms:g} ms, p99 "
               f"{base.s3.p99_ms:g} ms; {base.dn.connections} GETs at once per DN, "
               f"{fn.connections} per function; " +
               (f"a DN query loads {base.dn.query_window} chunks ahead, in order; "
                if base.dn.query_window else "") +
               f"Lambda concurrency {fn.max_concurrency}, all instances warm unless noted; "
               f"seed {base.seed}.")
    for m in memories:
        share = min(1.0, m / 1769)
        out.append(f"\n### Lambda {m} MB ({share:.3f} vCPU): crossover and speed-up\n")
        head = "| kind | codec | " + " | ".join(f"crossover {d} DN" for d in dns) + " | " + \
            " | ".join(f"speed-up @10k {d} DN" for d in dns) + " |"
        out += [head, "|" + "---|" * (2 + 2 * len(dns))]
        for k, c in rows:
            f = fn_curves[(k, c, m)]
            cells = [fmt_n(crossover(dn_curves[(k, c, d)], f)) for d in dns]
            cells += [f"{dn_curves[(k, c, d)][idx_10k] / f[idx_10k]:.2g}x" for d in dns]
            out.append(f"| {k} | {c} | " + " | ".join(cells) + " |")
    # cold starts at 10,000 chunks
    out.append(f"\n### Cold starts: speed-up at 10,000 chunks, {mid} DNs, every new instance "
               "cold (300-800 ms)\n")
    out.append("| kind | codec | " + " | ".join(f"{m} MB warm | {m} MB cold" for m in memories)
               + " |")
    out.append("|" + "---|" * (2 + 2 * len(memories)))
    for k, c in rows:
        sc = base.set(read={"kind": k, "codec": c, "chunks": 10000}, dn={"count": mid})
        dn_ms = dn_curves[(k, c, mid)][idx_10k]
        cells = []
        for m in memories:
            cold = lambda_plan(sc.set(fn={"memory_mb": m, "warm": 0.0})).latency_ms
            cells += [f"{dn_ms / fn_curves[(k, c, m)][idx_10k]:.2g}x", f"{dn_ms / cold:.2g}x"]
        out.append(f"| {k} | {c} | " + " | ".join(cells) + " |")
    # latency and dollars per request
    for n in cost_ns:
        out.append(f"\n### {n:,} chunks: latency (ms) and $ per request, {mid} DNs "
                   f"(DN-seconds x ${base.dn.price_hour}/h / {base.dn.per_instance} DNs per "
                   "instance) vs Lambda (GB-s + requests)\n")
        out.append("| kind | codec | DN ms | DN $ | " + " | ".join(
            f"λ{m} ms | λ{m} $" for m in memories) + " |")
        out.append("|" + "---|" * (4 + 2 * len(memories)))
        for k, c in rows:
            sc = base.set(read={"kind": k, "codec": c, "chunks": n}, dn={"count": mid})
            rnd = draws(n, sc.seed)
            d = dn_plan(sc, rnd)
            cells = [fmt_ms(d.latency_ms), fmt_usd(d.cost_usd)]
            for m in memories:
                f = lambda_plan(sc.set(fn={"memory_mb": m}), rnd)
                cells += [fmt_ms(f.latency_ms), fmt_usd(f.cost_usd)]
            out.append(f"| {k} | {c} | " + " | ".join(cells) + " |")
    curves.update({("dn", *key): v for key, v in dn_curves.items()})
    curves.update({("fn", *key): v for key, v in fn_curves.items()})
    if plot:
        out.append("\n" + save_plot(curves, plot, dns, memories))
    return "\n".join(out)


def save_plot(curves: dict, path: str, dns, memories, codec="deflate") -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"plot skipped: matplotlib is not installed ({path} not written)"
    kinds = ("hyperslab", "strided", "column", "query")
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True, sharey=True)
    for ax, kind in zip(axes.flat, kinds):
        for d, style in zip(dns, ("-", "-", "-")):
            ax.plot(GRID, np.array(curves[("dn", kind, codec, d)]) / 1e3, style,
                    lw=1 + d / 8, color="tab:blue", alpha=0.4 + d / 30, label=f"DN plan, {d} DNs")
        for m, style in zip(memories, (":", "--", "-")):
            ax.plot(GRID, np.array(curves[("fn", kind, codec, m)]) / 1e3, style, color="tab:red",
                    label=f"Lambda {m} MB")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{kind} ({codec})", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("chunks read (1 MiB each, decoded)")
    for ax in axes[:, 0]:
        ax.set_ylabel("latency (s)")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Simulated read latency: DN plan vs Lambda plan (AWS preset, warm)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"plot written to {path}"


# ----------------------------------------------------------------------------- validation

def record_scenario(base: Scenario, rec: dict) -> Scenario:
    """The scenario of one local measurement. Besides the required keys a record may
    give: stride, strided_dims, ratio, itemsize, rank, points, hit_rate (the read),
    pages (both plans) or dn_pages / lambda_pages, cold (true: new workers), per_call
    (the batch the real SN chose), jitter_ms (uniform 0..jitter added to the S3 latency),
    cores (the machine's), cached (the share of the dataset the DN caches have room for,
    above 1 with room to spare: a read that follows another of the same dataset finds
    what fits still in the caches; a DN's cache charges a chunk its stored bytes),
    dataset_chunks (the dataset's chunks, when the read touches only some), dn_chunks
    (the dataset's chunks on DN 0, 1, ...: its real placement, instead of random draws),
    answer_ratio (what zstd level 1 makes of the function's answer bytes). Without
    dataset_chunks, the sum of dn_chunks gives it, or else a cached share and the DNs'
    cache size (dn.cache_bytes), as the grid defines cached: min(1, DNs x cache /
    dataset bytes); for cached = 1 that is the biggest dataset that fits, exact in the
    grid (64 chunks of 64 KiB, 4 x 1 MiB; the 30 ms grid counted decoded bytes, which its
    data, compressed 1.08x, barely changes; later grids give dataset_chunks)."""
    read = {"kind": rec["kind"], "codec": rec["codec"], "chunks": int(rec["chunks"]),
            "chunk_bytes": int(rec["chunk_bytes"])}
    for key in ("itemsize", "rank", "ratio", "stride", "strided_dims", "points", "hit_rate",
                "pages", "answer_ratio"):
        if rec.get(key) is not None:
            read[key] = rec[key]
    lat, jitter = float(rec["s3_latency_ms"]), float(rec.get("jitter_ms") or 0.0)
    s3 = {"median_ms": lat + jitter / 2, "p99_ms": lat + jitter * 0.99}
    fn = {"max_concurrency": int(rec["workers"])}
    if rec.get("cold"):
        fn["warm"] = 0.0
    if rec.get("per_call"):
        fn["per_call"] = int(rec["per_call"])
    dn = {"count": int(rec["dn_count"])}
    if rec.get("cached") is not None:
        dn["cached"] = float(rec["cached"])
    if rec.get("dn_chunks") is not None:
        read["dn_chunks"] = tuple(int(k) for k in rec["dn_chunks"])
        if len(read["dn_chunks"]) != dn["count"]:
            raise ValueError(f"dn_chunks for {len(read['dn_chunks'])} DNs, dn_count "
                             f"{dn['count']}")
    if rec.get("dataset_chunks"):
        read["dataset_chunks"] = int(rec["dataset_chunks"])
    elif read.get("dn_chunks"):
        read["dataset_chunks"] = max(read["chunks"], sum(read["dn_chunks"]))
    elif rec.get("cached") and base.dn.cache_bytes:
        fits = dn["count"] * base.dn.cache_bytes / (dn["cached"] * read["chunk_bytes"])
        read["dataset_chunks"] = max(read["chunks"], round(fits))
    sc = base.set(read=read, s3=s3, dn=dn, fn=fn)
    if rec.get("cores"):
        sc = sc.set(machine={"cores": float(rec["cores"])})
    return sc


def validate(path: str, base: Scenario, current: bool = False) -> str:
    """A file is a list of measurements, or {"code": what ran, "set": the parameters in
    which that code differs from the preset's (sc.set() arguments), "records": [...]}:
    measurements of older code. current: leave "set" (and each record's per_call) out, so
    the table says what the current code would do on the same reads."""
    with open(path) as f:
        records = json.load(f)
    if isinstance(records, dict):
        if not current:
            try:
                base = base.set(**records.get("set", {}))
            except (TypeError, ValueError) as e:
                raise SystemExit(f"{path}: bad set: {e}") from None
        records = records.get("records")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SystemExit(f"{path}: expected a JSON list of measurement objects")
    if current:     # the batches the older SN chose are not the current one's
        records = [{k: v for k, v in r.items() if k != "per_call"} for r in records]
    lines = [f"{'kind':10s}{'codec':8s}{'chunks':>7s}{'KiB':>6s}{'DN':>4s}{'wkr':>4s}"
             f"{'S3ms':>5s}   {'DN sim':>7s}{'meas':>7s}{'ratio':>7s}   "
             f"{'λ sim':>7s}{'meas':>7s}{'ratio':>7s}"]
    ratios = []
    for rec in records:
        try:
            sc = record_scenario(base, rec)
        except (KeyError, TypeError, ValueError) as e:
            raise SystemExit(f"{path}: bad record {rec}: {e!r}") from None
        row = (f"{rec['kind']:10s}{rec['codec']:8s}{int(rec['chunks']):7d}"
               f"{int(rec['chunk_bytes']) // 1024:6d}{int(rec['dn_count']):4d}"
               f"{int(rec['workers']):4d}{float(rec['s3_latency_ms']):5.0f}   ")
        for plan, key, pages in ((dn_plan, "dn_ms", "dn_pages"),
                                 (lambda_plan, "lambda_ms", "lambda_pages")):
            if rec.get(pages):
                sim = plan(sc.set(read={"pages": int(rec[pages])}))
            else:
                sim = plan(sc)
            meas = rec.get(key)
            if meas:
                ratio = sim.latency_ms / float(meas)
                ratios.append(ratio)
                row += f"{sim.latency_ms:7.0f}{float(meas):7.0f}{ratio:7.2f}   "
            else:
                row += f"{sim.latency_ms:7.0f}{'-':>7s}{'-':>7s}   "
        lines.append(row.rstrip() + (f"   {rec['note']}" if rec.get("note") else ""))
    if ratios:
        worst = max(max(x, 1 / x) for x in ratios)
        inside = sum(1 / 1.5 <= x <= 1.5 for x in ratios)
        lines.append(f"\nratio = simulated / measured; {inside} of {len(ratios)} within 1.5x, "
                     f"worst {worst:.2f}x off")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=("aws", "local"), default=None,
                   help="parameter preset (default: aws; local with --validate)")
    p.add_argument("--validate", metavar="FILE.json", help="compare with local measurements")
    p.add_argument("--current", action="store_true", help="with --validate: ignore the "
                   "file's \"set\" (older code's parameters): the current code on its reads")
    p.add_argument("--plot", metavar="PNG", help="latency vs chunk count, log-log")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cores", type=float, help="the machine's cores (local preset: 2); on a "
                   "machine shared with other work, the cores left to the run")
    one = p.add_argument_group("one scenario (instead of the tables)")
    one.add_argument("--kind", choices=KINDS)
    one.add_argument("--codec", choices=CODECS, default="deflate")
    one.add_argument("--chunks", type=int, default=10000)
    one.add_argument("--chunk-kib", type=int, default=1024)
    one.add_argument("--dn", type=int, default=8)
    one.add_argument("--cached", type=float, default=0.0)
    one.add_argument("--memory", type=int, default=1769)
    one.add_argument("--concurrency", type=int, default=1000)
    one.add_argument("--warm", type=float, default=1.0)
    a = p.parse_args(argv)
    base = preset(a.preset or ("local" if a.validate else "aws")).set(seed=a.seed)
    if a.cores:
        base = base.set(machine={"cores": a.cores})
    if a.validate:
        print(f"preset {a.preset or 'local'}: simulated vs measured (ms)\n")
        print(validate(a.validate, base, a.current))
        return 0
    if a.kind:
        sc = base.set(read={"kind": a.kind, "codec": a.codec, "chunks": a.chunks,
                            "chunk_bytes": a.chunk_kib * 1024},
                      dn={"count": a.dn, "cached": a.cached},
                      fn={"memory_mb": a.memory, "max_concurrency": a.concurrency,
                          "warm": a.warm})
        d, f = both(sc)
        print(f"DN plan     {d.latency_ms:10.1f} ms  ${d.cost_usd:.3g}  {d.detail}")
        print(f"Lambda plan {f.latency_ms:10.1f} ms  ${f.cost_usd:.3g}  {f.detail}")
        return 0
    start = time.perf_counter()
    print(aws_tables(base, plot=a.plot))
    if not a.plot:
        print("\n(no --plot PNG given: plot skipped)")
    print(f"\n({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
