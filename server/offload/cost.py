"""The offload cost model (v3): how long a read takes on the DNs and through the
chunk_read Lambda, from what the read asks for, with weights that calibrate
themselves from the reads the SN runs.

Per request (`Work`): chunks touched, how many the DNs likely hold decoded already
(those cost neither a fetch nor a decode), bytes per chunk decoded, bytes
returned, and the codec. Each plan is a sum of its stages, the slowest stage bounding
the overlap:

  DN plan:     waiting behind the DNs' queue + max(fetch, decode) on each DN (one core
               each, p_dn GETs at once, a query its window; decode counts each GET's
               CPU too) + the DNs' answers crossing to the SN
  Lambda plan: waves of invocations, each: invoke overhead (+ a cold start where more
               instances run than have run before) + max(fetch, decode) on a CPU share
               proportional to the function's memory; then the SN ingests the base64
               answers (one process)

Calibration: each stage's time at the analytic constants (its feature, in ms) has a
weight per plan (decode: per plan and codec), and each plan a fixed ms, so an estimate
is a weighted sum of features. The weights start at 1 (the fixed ms at DN_REQUEST_MS
and 0), where the estimate is the formula above. Each measured time
updates its plan's weights by least squares with forgetting (`Calibration`), so a stage
the constants get wrong (the SN assembling a big answer, far slower than the link) is
corrected on its own, and big and small reads are estimated well together. A small
share of eligible requests (every 1/share-th) explores the plan not chosen, keeping
both plans' weights fresh.
"""
import dataclasses
import math
from collections import OrderedDict

import numpy as np

FULL_VCPU_MB = 1769     # AWS: a function gets one full vCPU at 1,769 MB, less in proportion
BASE64 = 4 / 3
# decode throughput of one core per codec (MB/s of decoded bytes), refined by calibration
DECODE_MB_S = {"none": 4000.0, "deflate": 250.0, "zstd": 900.0, "blosc": 1500.0,
               "lz4": 1500.0, "bitshuffle": 1000.0, "other": 300.0}
# a GET's own CPU (signing, the request, reading the body) on one full core: a chunk
# fetched costs it beside its decode, on a DN as in a function (dev VM: 2.0-2.5 ms)
GET_CPU_MS = 2.0
PLANS = ("dn", "lambda")
DN_REQUEST_MS = 2.0     # a batch's round trip to the DNs, even when every chunk is cached
MODES = {"auto": None, "always": "lambda", "never": "dn"}     # aws_lambda_offload
# each plan's features (ms at the analytic constants); "decode" has a weight per codec
PARTS = {"dn": ("fixed_ms", "queue", "fetch", "decode", "send"),
         "lambda": ("fixed_ms", "cold", "invoke", "fetch", "decode", "ingest")}
PRIOR = {"dn": {"fixed_ms": DN_REQUEST_MS}, "lambda": {"fixed_ms": 0.0}}   # others: 1
# calibration (Calibration): the analytic weights may be off by about SPREAD (the fixed
# ms by FIXED_SPREAD_MS), a measurement by NOISE (relative)
FORGET = 0.97           # a row's weight shrinks so much per later row: ~33 remembered
NOISE = 0.25
SPREAD = 10.0
FIXED_SPREAD_MS = 200.0
HUBER = 1.345 * NOISE   # Huber's constant: rows off by more count less
BOUNDS = (1000.0, 10000.0)      # the largest multiplier, the largest fixed ms


@dataclasses.dataclass(frozen=True)
class Work:
    """What one read asks of storage."""
    chunks: int
    decoded_bytes: int          # per chunk
    returned_bytes: int         # the whole answer
    codec: str = "none"
    cached: int = 0             # chunks the DNs hold decoded
    window: int = 0             # a DN loads at most this many at once (a query's window;
                                # 0: as many as its connections, p_dn)


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


class Calibration:
    """One plan's weights: estimate = weights . features, where of fetch and decode,
    which overlap, only the longer (at the current weights) counts.

    The weights are the posterior mean of a Bayesian linear regression of relative
    errors: a Gaussian prior at the analytic weights, and each measurement a row
    features/estimate -> ms/estimate (a 20 ms read counts as much as a 20 s one). Rows
    fade by FORGET per later row (recursive least squares with forgetting) but the prior
    does not, so a weight no read exercises lately returns to its analytic value instead
    of winding up. A row off by more than a factor 1 + HUBER gets Huber's weight, so one
    wild measurement pulls no harder than a moderately wrong one, and the solution is
    kept within [0, BOUNDS]."""

    def __init__(self, parts, prior: dict):
        self.names = [p for p in parts if p != "decode"] + [f"decode/{c}" for c in DECODE_MB_S]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.prior = np.array([prior.get(name, 1.0) for name in self.names])
        fixed = np.array([name == "fixed_ms" for name in self.names])
        self.precision = (NOISE / np.where(fixed, FIXED_SPREAD_MS, SPREAD)) ** 2
        self.hi = np.where(fixed, BOUNDS[1], BOUNDS[0])
        self.w = self.prior.copy()
        self.A = np.zeros((len(self.names), len(self.names)))    # forgotten sums of rows
        self.b = np.zeros(len(self.names))
        self.samples = 0

    def features(self, stages: dict, codec: str) -> np.ndarray:
        """The stages (ms at the constants) as a vector over the weights."""
        x = np.zeros(len(self.names))
        decode = self.index[f"decode/{codec if codec in DECODE_MB_S else 'other'}"]
        for name, ms in stages.items():
            x[decode if name == "decode" else self.index[name]] = ms
        fetch = self.index["fetch"]     # the shorter of the overlapping stages adds nothing
        x[decode if self.w[fetch] * x[fetch] >= self.w[decode] * x[decode] else fetch] = 0.0
        return x

    def estimate(self, stages: dict, codec: str) -> float:
        return float(self.w @ self.features(stages, codec))

    def update(self, stages: dict, codec: str, ms: float):
        x = self.features(stages, codec)
        est = float(self.w @ x)
        if not (est > 0 and 0 < ms < math.inf):
            return
        row, target = x / est, ms / est
        # Huber's weight, on the ratio: off by more than a factor 1 + HUBER either way,
        # the further off the less it counts (its pull stays about HUBER)
        off = max(target, 1 / target) - 1
        weight = min(1.0, HUBER / off) if off > 0 else 1.0
        self.A = FORGET * self.A + weight * np.outer(row, row)
        self.b = FORGET * self.b + weight * target * row
        self.w = self.solve()
        self.samples += 1

    def solve(self) -> np.ndarray:
        """argmin over 0 <= w <= hi of |rows . w - targets|^2 (faded) + the prior's term,
        by active sets: solve for the free weights, hold those out of bounds at their
        bound, free again a held one whose gradient points inside, until neither."""
        h = self.A + np.diag(self.precision)        # positive definite: the prior's part
        g = self.b + self.precision * self.prior
        held = np.zeros(len(g), bool)
        w = np.zeros(len(g))
        for _ in range(3 * len(g)):
            free = ~held
            w[free] = np.linalg.solve(h[np.ix_(free, free)],
                                      g[free] - h[np.ix_(free, held)] @ w[held])
            out = free & ((w < 0) | (w > self.hi))
            if out.any():
                w[out] = np.clip(w[out], 0.0, self.hi[out])
                held |= out
                continue
            slope = h @ w - g                       # of the quantity minimised
            inside = held & np.where(w <= 0, slope < 0, slope > 0)
            if not inside.any():
                break
            held &= ~inside
        return np.clip(w, 0.0, self.hi)

    def weights(self) -> dict:
        return {name: round(float(v), 3) for name, v in zip(self.names, self.w)}


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
        self.plans = {p: Calibration(PARTS[p], PRIOR[p]) for p in PLANS}
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

    def page_call(self, work: Work, chunks: int) -> int:
        """Chunks per invocation for a page of `chunks` of work's chunks (a streamed
        read): the page spread over the functions by the same rule. The whole request's
        batches could leave most functions idle while each call works through several
        rounds of GETs, page after page."""
        share = chunks / max(1, work.chunks)
        return self.per_call(dataclasses.replace(
            work, chunks=chunks, returned_bytes=int(work.returned_bytes * share)))

    def stages(self, plan: str, work: Work) -> dict:
        """The plan's features for work: each stage's ms at the analytic constants."""
        c = self.constants
        decode_mb_s = DECODE_MB_S.get(work.codec, DECODE_MB_S["other"]) * 1000
        if plan == "dn":
            dns = max(1, self.dn_count_fn())
            fetched = max(0, work.chunks - work.cached) / dns
            at_once = min(c["dn_concurrency"], work.window or c["dn_concurrency"])
            return {"fixed_ms": 1.0,
                    "queue": self.dn_queue_fn() / dns / c["dn_concurrency"] * c["dn_fetch_ms"],
                    "fetch": math.ceil(fetched / at_once) * c["dn_fetch_ms"],
                    "decode": fetched * (work.decoded_bytes / decode_mb_s + GET_CPU_MS),
                    "send": work.returned_bytes / dns / (c["dn_link_mb_s"] * 1000)}
        b = self.per_call(work)
        calls = math.ceil(work.chunks / b)
        waves = math.ceil(calls / max(1, c["max_invoke"]))
        cpu = min(1.0, c["fn_memory_mb"] / FULL_VCPU_MB)
        return {"fixed_ms": 1.0,
                "cold": c["fn_cold_ms"] if min(calls, c["max_invoke"]) > self.warm else 0.0,
                "invoke": waves * c["fn_invoke_ms"],
                "fetch": waves * math.ceil(b / c["fn_concurrency"]) * c["fn_fetch_ms"],
                "decode": waves * b * (work.decoded_bytes / decode_mb_s + GET_CPU_MS) / cpu,
                "ingest": work.returned_bytes * BASE64 / (c["sn_ingest_mb_s"] * 1000)}

    def estimate(self, plan: str, work: Work) -> float:
        return self.plans[plan].estimate(self.stages(plan, work), work.codec)

    def est_dn(self, work: Work) -> float:
        return self.estimate("dn", work)

    def est_lambda(self, work: Work) -> float:
        return self.estimate("lambda", work)

    def decide(self, work: Work) -> dict:
        """{"plan", "est_dn_ms", "est_lambda_ms", "per_call", "explored", "stages"} for a
        read the function could run (the caller checked that); "stages" go back with the
        measurement (`measured`), as they were when the plan was picked."""
        stages = {p: self.stages(p, work) for p in PLANS}
        est = {p: self.plans[p].estimate(stages[p], work.codec) for p in PLANS}
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
                "per_call": self.per_call(work), "explored": explored, "stages": stages}

    # ---- calibration ---------------------------------------------------------

    def measured(self, plan: str, work: Work, ms: float, instances: int = 0,
                 stages: dict | None = None):
        """A plan ran work in ms: update its weights. stages: the features decide() saw
        (the queue and the warm instances change meanwhile); default: as they are now."""
        self.plans[plan].update(stages or self.stages(plan, work), work.codec, ms)
        if plan == "lambda":
            self.warm = max(self.warm, instances)

    def info(self) -> dict:
        """The current constants and weights (GET /info)."""
        return {"mode": self.s.aws_lambda_offload, "explore": self.s.aws_lambda_explore,
                "constants": dict(self.constants), "decode_mb_s": dict(DECODE_MB_S),
                "weights": {p: cal.weights() for p, cal in self.plans.items()},
                "samples": {p: cal.samples for p, cal in self.plans.items()},
                "warm_instances": self.warm, "dn_queue_chunks": self.dn_queue_fn()}


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
