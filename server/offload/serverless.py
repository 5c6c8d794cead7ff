"""The chunk_read Lambda as an executor of read tasks, and the decision, per request,
whether it runs them (LAMBDA.md Part B; the model is cost.py). Batches of chunks go out
through one Invoker (invoke.py: signed POSTs) with bounded concurrency; a batch that fails
(function error, status >= 500, throttle, timeout, connection error) is read by the DNs
instead."""
import asyncio
import json
import logging
import time
import uuid

import numpy as np
import pybase64
import zstandard

from ..core import values
from ..core.frames import QUERY_WINDOW
from . import emf
from .cost import CostModel, Work, codec_name
from .invoke import Invoker
from .job import Job

log = logging.getLogger("h5cloud.sn")
MAX_ANSWER_BYTES = 64 * 1024**2     # what one answer may unpack to (batches hold far less)


def decode_answer(raw: bytes):
    """A function's answer with its "data" as bytes (base64 decoded, and unpacked when
    the function compressed it); answers without data come back as they are."""
    payload = json.loads(raw)
    if isinstance(payload, dict) and isinstance(payload.get("data"), str):
        # pybase64 (SIMD, strict): 5.7 GB/s here, the standard library's 0.26
        data = pybase64.b64decode(payload["data"], validate=True)
        if payload.get("encoding") == "zstd":
            data = zstandard.ZstdDecompressor().decompress(
                data, max_output_size=MAX_ANSWER_BYTES)
        payload["data"] = data
    return payload


def offloadable(job: Job, tasks) -> str | None:
    """The event kind for these tasks, or None when chunk_read can not run them."""
    if job.fields or job.item_size == "H5T_VARIABLE":
        return None
    if any(len(job.refs.get(tuple(t.index), [])) > 1 for t in tasks):
        return None
    sels = [t.chunk_sel for t in tasks]
    if all(all(isinstance(s, slice) for s in sel) for sel in sels):
        return "hyperslab"
    if all(all(isinstance(s, np.ndarray) for s in sel) for sel in sels):
        return "points"
    return None


class LambdaExecutor:
    name = "lambda"

    def __init__(self, settings, fallback):
        self.settings = settings
        self.function = settings.aws_lambda_chunkread_function
        self.fallback = fallback          # the DNs' executor
        self.model = CostModel(settings, lambda: len(fallback.urls),
                               lambda: fallback.in_flight)
        self.recent = fallback.recent     # what the DN caches likely hold
        self.sem = asyncio.Semaphore(max(1, settings.aws_lambda_max_invoke))
        self.stats = dict.fromkeys(("requests", "read_chunks", "query_chunks", "invocations",
                                    "fallbacks", "invoke_ms"), 0)
        self.invoker = Invoker(settings, min(256, max(1, settings.aws_lambda_max_invoke)))
        self.emf = logging.getLogger(emf.EMF_LOGGER) if emf.enabled(settings) else None

    async def close(self):
        await self.invoker.close()

    def event(self, job: Job, kind: str, batch, query=None) -> dict:
        props = job.dset.get("creationProperties") or {}
        dataset = {"id": job.dset["id"], "type": job.type, "shape": job.dset["shape"],
                   "layout": {"class": "H5D_CHUNKED", "dims": list(job.chunk_dims)},
                   "filters": props.get("filters") or []}
        for key in ("fillValue", "fillValue_encoding", "initializer"):
            if key in props:
                dataset[key] = props[key]
        chunks = []
        for task in batch:
            item = {"id": job.chunk_id(task)}
            if kind in ("hyperslab", "query"):
                item["select"] = [[s.start, s.stop, s.step or 1] for s in task.chunk_sel]
                if kind == "query":
                    item["query"] = query
            else:
                coords = np.stack([np.asarray(s) for s in task.chunk_sel], axis=1)
                item["points"] = pybase64.b64encode(coords.astype("<u8").tobytes()).decode()
            ref = job.refs.get(tuple(task.index))
            if ref:
                bucket, key, offset, size, _ = ref[0]
                item["s3"] = {"bucket": bucket, "key": key, "offset": offset, "size": size}
            chunks.append(item)
        return {"request_id": uuid.uuid4().hex[:12], "bucket": job.bucket, "dataset": dataset,
                "kind": kind, "chunks": chunks}

    async def call(self, event: dict) -> dict | None:
        """One invocation's answer, or None when its chunks must go to the DNs
        (throttle, timeout, connection error, function error, status >= 500)."""
        self.stats["invocations"] += 1
        try:
            async with self.sem:
                start = time.perf_counter()        # billed time: not the wait for a slot
                try:
                    raw, function_error = await self.invoker.invoke(
                        self.function, json.dumps(event).encode())
                    # parsing megabytes of JSON and base64 (and zstd) off the event loop
                    payload = await asyncio.to_thread(decode_answer, raw)
                finally:
                    self.stats["invoke_ms"] += (time.perf_counter() - start) * 1000
        except Exception as e:          # throttle, timeout, connection, unknown function
            log.warning("chunk_read invocation failed: %s", e)
            payload, function_error = None, None
        if payload is not None and (function_error or not isinstance(payload, dict)
                                    or payload.get("status") != 200):
            log.warning("chunk_read answered %s", str(payload)[:200])
            payload = None
        if payload is None:
            self.stats["fallbacks"] += 1
        return payload

    def counted(self, kind: str, chunks: int):
        """Account for one offloaded request (for GET /info)."""
        self.stats["requests"] += 1
        self.stats[f"{kind}_chunks"] += chunks

    def info(self) -> dict:
        """Counters since start, with the price of the invocations at 128 MB (LAMBDA.md E)."""
        st = self.stats
        cost = st["invocations"] * 0.20e-6 + st["invoke_ms"] * 0.0000000021
        return {"function": self.function, **{k: round(v, 1) for k, v in st.items()},
                "estimated_cost_usd": round(cost, 6), "model": self.model.info()}

    def record(self, plan: str, kind: str, job: Job, work: Work, model: dict, ms: float,
               invocations: int = 0, fallbacks: int = 0):
        """One EMF record of a decision and how it went (when cloudwatch_emf is on)."""
        if self.emf is None:
            return
        gb_s = invocations * ms / 1000 * self.settings.aws_lambda_memory_mb / 1024
        cost = invocations * 0.20e-6 + gb_s * 0.0000166667      # at most: calls ran ms each
        emf.emit(self.emf, emf.decision_record(
            plan=plan, kind=kind, dataset=job.dset["id"], chunks=work.chunks,
            est_dn_ms=model["est_dn_ms"], est_lambda_ms=model["est_lambda_ms"], ms=ms,
            invocations=invocations, fallbacks=fallbacks, cost_usd=cost,
            explored=model["explored"], function=self.function))

    def work(self, job: Job, tasks, kind: str) -> Work:
        """What these tasks ask of storage, for the model."""
        returned = sum(t.count for t in tasks) * job.item_size
        if kind == "query":             # matching rows only: a few of them, as a rule
            returned = max(1, returned // 100)
        cached = self.recent.count(job.chunk_id(t) for t in tasks)
        return Work(len(tasks), job.chunk_bytes, returned, codec_name(job.dset), cached,
                    QUERY_WINDOW if kind == "query" else 0)

    async def _invoke(self, job: Job, kind: str, batch, out) -> bool:
        """Run one batch; False when it must go to the DNs instead."""
        payload = await self.call(self.event(job, kind, batch))
        if payload is None:
            return False
        data = payload["data"]
        for task, part in zip(batch, payload["parts"]):
            if part["found"]:
                piece = data[part["offset"]:part["offset"] + part["size"]]
                out[task.out_sel] = values.from_bytes(piece, job.piece_info, task.shape)
            else:
                out[task.out_sel] = job.codec.missing(task.index)[task.chunk_sel]
        return True

    async def read(self, job: Job, tasks, out, kind: str, per_call: int) -> tuple:
        """Read every task in batches of per_call chunks; batches that fail are read by
        the DNs. Returns (batches that fell back, batches)."""
        batches = [tasks[i:i + per_call] for i in range(0, len(tasks), per_call)]
        done = await asyncio.gather(*(self._invoke(job, kind, b, out) for b in batches))
        failed = [t for ok, b in zip(done, batches) if not ok for t in b]
        if failed:
            await self.fallback.read(job, failed, out)
        return sum(1 for ok in done if not ok), len(batches)


async def _query_batch(executor, job: Job, batch, text):
    """[(task, positions, rows)] of one batch, or None when it must go to the DNs."""
    payload = await executor.call(executor.event(job, "query", batch, text))
    if payload is None:
        return None
    data = payload["data"]
    found = []
    for task, part in zip(batch, payload["parts"]):
        info = (payload.get("query") or {}).get(part["id"])
        if not info or not info["index"]:
            continue
        rows = values.from_bytes(data[info["values_offset"]:info["values_offset"] +
                                      info["values_size"]], job.piece_info,
                                 (len(info["index"]),))
        found.append((task, np.asarray(info["index"], dtype=np.int64), rows))
    return found


async def offload_query(executor, job: Job, tasks, text, dn_count: int):
    """Query matches of a request chunk_read could run, through Lambda when the model
    says it pays (failed batches go to the DNs), else through the DNs; None when the
    request is not eligible."""
    if offloadable(job, tasks) != "hyperslab":
        return None
    decision = plan_read(executor, job, tasks, dn_count, "query")
    if decision is None:
        return None
    if decision.offload is None:            # the DNs, timed for the model
        start = time.perf_counter()
        found = await executor.fallback.query(job, tasks, text, None)
        decision.dn_measured((time.perf_counter() - start) * 1000)
        return found
    offload = decision.offload
    per_call = offload.model["per_call"]
    batches = [tasks[i:i + per_call] for i in range(0, len(tasks), per_call)]
    results = await asyncio.gather(*(_query_batch(executor, job, b, text) for b in batches))
    found = []
    for batch, result in zip(batches, results):
        if result is None:
            offload.fallbacks += 1
            result = await executor.fallback.query(job, batch, text, None)
        found += result
    order = {id(t): i for i, t in enumerate(tasks)}
    found.sort(key=lambda item: order[id(item[0])])
    offload.calls = len(batches)
    offload.finish()
    return found


class Offload:
    """One request's chunk work through Lambda: decided once for all its chunk tasks (a
    streamed read runs page by page through it), logged once when finished."""

    def __init__(self, executor: LambdaExecutor, job: Job, work: Work, model: dict,
                 kind: str):
        self.executor, self.job, self.work, self.model = executor, job, work, model
        self.n = work.chunks
        self.kind = kind                  # "read" or "query": the log line's and counters'
        self.calls = self.fallbacks = 0
        self.start = time.perf_counter()
        self.finished = False

    async def read(self, tasks, out) -> bool:
        """Read these tasks into out; False (nothing done) when chunk_read can't."""
        kind = offloadable(self.job, tasks)
        if kind is None:
            return False
        per_call = self.executor.model.page_call(self.work, len(tasks))
        fallbacks, calls = await self.executor.read(self.job, tasks, out, kind, per_call)
        self.fallbacks += fallbacks
        self.calls += calls
        return True

    def finish(self):
        """Log the request's one `serverless` line (once, however often called) and
        tell the model how long it took (not when batches fell back to the DNs)."""
        if self.calls and not self.finished:
            self.finished = True
            ms = (time.perf_counter() - self.start) * 1000
            self.executor.counted(self.kind, self.n)
            if not self.fallbacks:
                self.executor.model.measured("lambda", self.work, ms, instances=self.calls,
                                             stages=self.model["stages"]["lambda"])
            self.executor.record("lambda", self.kind, self.job, self.work, self.model, ms,
                                 self.calls, self.fallbacks)
            log.info("serverless %s %s fn=%s chunks=%d invocations=%d est_lambda_ms=%.0f "
                     "est_dn_ms=%.0f ms=%.0f fallback=%d plan=lambda%s codec=%s cached=%d",
                     self.kind, self.job.dset["id"], self.executor.function, self.n,
                     self.calls, self.model["est_lambda_ms"], self.model["est_dn_ms"], ms,
                     self.fallbacks, " explored=1" if self.model["explored"] else "",
                     self.work.codec, self.work.cached)


class Decision:
    """Where one eligible request's chunk tasks run: offload is an Offload when the
    model picked Lambda, else None and the DNs' time is measured (dn_read, or
    dn_measured)."""

    def __init__(self, executor: LambdaExecutor, job: Job, work: Work, model: dict,
                 kind: str, count: int = 0):
        self.executor, self.job, self.work, self.model = executor, job, work, model
        self.kind = kind
        self.offload = Offload(executor, job, work, model, kind) \
            if model["plan"] == "lambda" else None
        self.start = time.perf_counter()
        self.left = count                 # selected elements the DNs have still to read

    def dn_read(self, tasks):
        """The DNs read these tasks (a page, or all of them). After the last page the
        request is measured from the decision on, as an Offload measures Lambda's: a
        streamed read's pages count too, and its big answers are what the DN plan's
        weights must learn."""
        if self.left <= 0:
            return
        self.left -= sum(t.count for t in tasks)
        if self.left <= 0:
            self.dn_measured((time.perf_counter() - self.start) * 1000)

    def dn_measured(self, ms: float):
        self.executor.model.measured("dn", self.work, ms, stages=self.model["stages"]["dn"])
        self.executor.record("dn", self.kind, self.job, self.work, self.model, ms)


def plan_read(executor: LambdaExecutor, job: Job, tasks, dn_count: int,
              kind: str = "read") -> Decision | None:
    """The decision for tasks chunk_read can run (None: not eligible: a kind it can't
    run, or fewer chunks than aws_lambda_threshold per DN, HSDS's floor)."""
    n = len(tasks)
    if offloadable(job, tasks) is None:
        return None
    if n < dn_count * executor.settings.aws_lambda_threshold:
        return None
    work = executor.work(job, tasks, kind)
    return Decision(executor, job, work, executor.model.decide(work), kind,
                    sum(t.count for t in tasks))
