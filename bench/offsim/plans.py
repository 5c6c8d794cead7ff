"""The two plans of one read: the DNs' and the Lambda functions', each a Result (latency,
cost, what bounded it)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .params import Read, Scenario
from .queues import fifo1, invocations, pool

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
