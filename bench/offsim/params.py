"""The simulator's parameters: what a read is, and the machines that serve it (S3, DN
cores, Lambda, the SN), with the AWS and local presets (OFFLOAD_SIM.md has the sources)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

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
                                  # ahead (h5cloud: QUERY_WINDOW in server/core/frames.py);
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
                    b64enc_mb_s=195.0,      # pybase64 + json.dumps (microbenchmark 12-01:
                                            # 21.0 ms a 4 MiB answer; 26.6 with the
                                            # standard library's base64, 154 MB/s before)
                    zstd_try_mb_s=625.0,    # zstd level 1 on bytes it cannot shrink
                    zstd_pack_mb_s=230.0,   # ... and on values_of's, 2.16x (12-01)
                    frame_mb_s=1000.0,
                    decode_mb_s={"none": 2000.0, "deflate": 250.0, "zstd": 600.0}),
            dn=DataNodes(count=4, nic_mb_s=2000.0, link_mb_s=1000.0,
                         placement="hash",      # md5 of the chunk id (core/ids.py)
                         cache_bytes=1 << 20,   # offload_grid.py --dn-cache (default 1m)
                         connections=64,        # aws_lambda_p_dn: the DN's S3 pool
                         query_window=16,       # QUERY_WINDOW (server/core/frames.py)
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
