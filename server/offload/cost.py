"""The offload cost model (v2): how long a read takes on the DNs and through the
chunk_read Lambda, from what the read asks for, with constants that calibrate
themselves from the reads the SN runs.

Per request (`Work`): chunks touched, how many the DNs likely hold decoded already
(those cost neither a fetch nor a decode), bytes per chunk decoded, bytes
returned, and the codec. Each plan is a sum of its stages, the slowest stage bounding
the overlap:

  DN plan:     waiting behind the DNs' queue + max(fetch, decode) on each DN (one core
               each, p_dn GETs at once) + the DNs' answers crossing to the SN
  Lambda plan: waves of invocations, each: invoke overhead (+ a cold start where more
               instances run than have run before) + max(fetch, decode) on a CPU share
               proportional to the function's memory; then the SN ingests the base64
               answers (one process)

Calibration: each measured time is compared with its plan's estimate and a per
(plan, codec) factor moves towards measured/estimated (an exponential moving average,
bounded), so the estimates follow what this deployment really does. A small share of
eligible requests (every 1/share-th) explores the plan not chosen, keeping both factors
fresh.
"""
import dataclasses
import math
from collections import OrderedDict

FULL_VCPU_MB = 1769     # AWS: a function gets one full vCPU at 1,769 MB, less in proportion
BASE64 = 4 / 3
ALPHA = 0.2             # weight of one new measurement
FACTOR_RANGE = (0.1, 10.0)
# decode throughput of one core per codec (MB/s of decoded bytes), refined by calibration
DECODE_MB_S = {"none": 4000.0, "deflate": 250.0, "zstd": 900.0, "blosc": 1500.0,
               "lz4": 1500.0, "bitshuffle": 1000.0, "other": 300.0}
PLANS = ("dn", "lambda")
DN_REQUEST_MS = 2.0     # a batch's round trip to the DNs, even when every chunk is cached
MODES = {"auto": None, "always": "lambda", "never": "dn"}     # aws_lambda_offload


@dataclasses.dataclass(frozen=True)
class Work:
    """What one read asks of storage."""
    chunks: int
    decoded_bytes: int          # per chunk
    returned_bytes: int         # the whole answer
    codec: str = "none"
    cached: int = 0             # chunks the DNs hold decoded


def codec_name(dset: dict) -> str:
    """The model's name for a dataset's compression (the first compressing filter)."""
    filters = (dset.get("creationProperties") or {}).get("filters") or []
    for f in filters:
        name = str(f.get("class") or f.get("name") or "").lower()
        if "deflate" in name or "gzip" in name:
            return "deflate"
        if "zstd" in name:
            return "zstd"
        if "blosc" in name:
            return "blosc"
        if "lz4" in name:
            return "lz4"
        if "bitshuffle" in name:
            return "bitshuffle"
        if "shuffle" not in name and "fletcher" not in name and "scaleoffset" not in name:
            return "other"
    return "none"


class CostModel:
    """Both plans' estimates for a Work, and the calibration that keeps them honest."""

    def __init__(self, settings, dn_count_fn=None, dn_queue_fn=None):
        s = settings
        if s.aws_lambda_offload not in MODES:
            raise ValueError(f"aws_lambda_offload must be one of {', '.join(MODES)}, "
                             f"not {s.aws_lambda_offload!r}")
        self.s = s
        self.dn_count_fn = dn_count_fn or (lambda: 4)
        self.dn_queue_fn = dn_queue_fn or (lambda: 0)     # chunks the DNs are reading now
        self.constants = {
            "dn_fetch_ms": s.aws_lambda_t_dn_ms,      # one GET's latency from a DN
            "dn_concurrency": s.aws_lambda_p_dn,
            "dn_link_mb_s": s.aws_lambda_dn_link_mb_s,
            "fn_invoke_ms": s.aws_lambda_t_invoke_ms,
            "fn_cold_ms": s.aws_lambda_cold_ms,
            "fn_fetch_ms": s.aws_lambda_t_s3_ms,
            "fn_concurrency": s.aws_lambda_p_fn,
            "fn_memory_mb": s.aws_lambda_memory_mb,
            "sn_ingest_mb_s": s.aws_lambda_transfer_mb_s,
            "max_invoke": s.aws_lambda_max_invoke,
        }
        self.factors = {(p, c): 1.0 for p in PLANS for c in DECODE_MB_S}
        self.samples = {p: 0 for p in PLANS}
        self.warm = 0               # function instances known to have run (stay warm)
        self.eligible = 0           # decisions made in auto mode (exploration counts them)

    # ---- the estimates -------------------------------------------------------

    def per_call(self, work: Work) -> int:
        """Chunks per invocation: an answer fits the batch bytes; enough chunks per call
        to keep its GETs busy, more when invocations run out."""
        c = self.constants
        returned = max(1, work.returned_bytes // max(1, work.chunks))
        fit = max(1, self.s.aws_lambda_batch_bytes // returned)
        spread = math.ceil(work.chunks / max(1, c["max_invoke"]))
        return max(1, min(fit, max(c["fn_concurrency"], spread), work.chunks))

    def est_dn(self, work: Work) -> float:
        c = self.constants
        dns = max(1, self.dn_count_fn())
        fetched = max(0, work.chunks - work.cached) / dns
        fetch = math.ceil(fetched / c["dn_concurrency"]) * c["dn_fetch_ms"]
        decode = fetched * work.decoded_bytes / (DECODE_MB_S.get(work.codec, 300.0) * 1000)
        send = work.returned_bytes / dns / (c["dn_link_mb_s"] * 1000)
        queued = self.dn_queue_fn() / dns / c["dn_concurrency"] * c["dn_fetch_ms"]
        base = DN_REQUEST_MS + queued + max(fetch, decode) + send
        return base * self.factors[("dn", work.codec)]

    def est_lambda(self, work: Work) -> float:
        c = self.constants
        b = self.per_call(work)
        calls = math.ceil(work.chunks / b)
        running = min(calls, c["max_invoke"])
        waves = math.ceil(calls / max(1, c["max_invoke"]))
        cpu = min(1.0, c["fn_memory_mb"] / FULL_VCPU_MB)
        fetch = math.ceil(b / c["fn_concurrency"]) * c["fn_fetch_ms"]
        decode = b * work.decoded_bytes / (DECODE_MB_S.get(work.codec, 300.0) * cpu * 1000)
        cold = c["fn_cold_ms"] if running > self.warm else 0.0
        ingest = work.returned_bytes * BASE64 / (c["sn_ingest_mb_s"] * 1000)
        base = cold + waves * (c["fn_invoke_ms"] + max(fetch, decode)) + ingest
        return base * self.factors[("lambda", work.codec)]

    def decide(self, work: Work) -> dict:
        """{"plan", "est_dn_ms", "est_lambda_ms", "per_call", "explored"} for a read the
        function could run (the caller checked that)."""
        est = {"dn": self.est_dn(work), "lambda": self.est_lambda(work)}
        forced = MODES[self.s.aws_lambda_offload]
        if forced:
            plan, explored = forced, False
        else:
            plan = min(PLANS, key=lambda p: est[p])
            # every 1/share-th decision runs the other plan: evenly spread, repeatable
            self.eligible += 1
            share = self.s.aws_lambda_explore
            explored = int(self.eligible * share) > int((self.eligible - 1) * share)
            if explored:
                plan = "dn" if plan == "lambda" else "lambda"
        return {"plan": plan, "est_dn_ms": est["dn"], "est_lambda_ms": est["lambda"],
                "per_call": self.per_call(work), "explored": explored}

    # ---- calibration ---------------------------------------------------------

    def measured(self, plan: str, work: Work, estimate_ms: float, ms: float,
                 instances: int = 0):
        """A plan ran work in ms where the model said estimate_ms: move its factor."""
        if estimate_ms <= 0 or ms <= 0:
            return
        key = (plan, work.codec)
        ratio = ms / estimate_ms            # how far off the current estimate was
        lo, hi = FACTOR_RANGE
        new = self.factors[key] * (1 - ALPHA + ALPHA * ratio)
        self.factors[key] = min(hi, max(lo, new))
        self.samples[plan] += 1
        if plan == "lambda":
            self.warm = max(self.warm, instances)

    def info(self) -> dict:
        """The current constants and factors (GET /info)."""
        used = {f"{p}/{c}": round(v, 3) for (p, c), v in self.factors.items()
                if v != 1.0 or c == "none"}
        return {"mode": self.s.aws_lambda_offload, "explore": self.s.aws_lambda_explore,
                "constants": dict(self.constants), "decode_mb_s": dict(DECODE_MB_S),
                "factors": used, "samples": dict(self.samples), "warm_instances": self.warm,
                "dn_queue_chunks": self.dn_queue_fn()}


class RecentChunks:
    """Chunks read through the DNs lately, as a stand-in for what their caches hold:
    bounded by the DNs' chunk cache capacity, oldest forgotten first."""

    def __init__(self, capacity_bytes: int):
        self.capacity = capacity_bytes
        self.bytes = 0
        self.chunks: OrderedDict = OrderedDict()     # chunk id -> decoded bytes

    def add(self, chunk_ids, decoded_bytes: int):
        for cid in chunk_ids:
            if cid in self.chunks:
                self.chunks.move_to_end(cid)
                continue
            self.chunks[cid] = decoded_bytes
            self.bytes += decoded_bytes
        while self.bytes > self.capacity and self.chunks:
            _, size = self.chunks.popitem(last=False)
            self.bytes -= size

    def count(self, chunk_ids) -> int:
        return sum(1 for cid in chunk_ids if cid in self.chunks)
