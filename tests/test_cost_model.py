"""The offload cost model v3 (server/offload/cost.py): both plans' estimates as
arithmetic over the work and the constants, the forced modes, exploration, and the
per-stage calibration learning synthetic timings from a different linear truth."""
import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest

from server.config import Settings
from server.offload.cost import (BOUNDS, DECODE_MB_S, GET_CPU_MS, PLANS, CostModel,
                                 RecentChunks, Work, codec_name)
from server.offload.serverless import Decision

S = Settings()          # t_dn 40, p_dn 64, t_invoke 30, cold 500, t_s3 50, p_fn 16, 128 MB
MB = 1024 * 1024


def model(dns=4, queue=0, **settings):
    return CostModel(S.replace(**settings) if settings else S, lambda: dns, lambda: queue)


def test_the_dn_plan_is_the_slowest_stage_of_each_dn_plus_the_transfer():
    m = model(dns=4)
    w = Work(chunks=1000, decoded_bytes=MB, returned_bytes=8 * MB, codec="deflate")
    per_dn = 1000 / 4
    fetch = math.ceil(per_dn / S.aws_lambda_p_dn) * 40
    decode = per_dn * (MB / (DECODE_MB_S["deflate"] * 1000) + GET_CPU_MS)    # one core
    send = 8 * MB / 4 / 1e6
    assert math.isclose(m.est_dn(w), 2 + max(fetch, decode) + send)
    assert decode > fetch
    # uncompressed, a few chunks a DN: the GETs' latency bounds it instead
    plain = Work(40, MB, 8 * MB, "none")
    assert math.isclose(m.est_dn(plain), 2 + 40 + send)
    # many: a GET's own CPU adds up on the DN's one core
    assert m.est_dn(Work(1000, MB, 8 * MB, "none")) > 2 + 250 * GET_CPU_MS


def test_a_query_fetches_through_the_dns_window_not_all_their_connections():
    m = model(dns=4)
    read = Work(256, 64 * 1024, MB, "none")
    query = Work(256, 64 * 1024, MB, "none", window=16)
    assert m.stages("dn", read)["fetch"] == 40                     # 64 a DN: one round
    assert m.stages("dn", query)["fetch"] == 4 * 40                # four windows
    assert m.est_dn(query) > 1.2 * m.est_dn(read)       # (the read: its GETs' CPU bounds it)
    # a window wider than the connections changes nothing
    assert m.est_dn(Work(256, 64 * 1024, MB, "none", window=1000)) == m.est_dn(read)


def test_cached_chunks_cost_neither_fetch_nor_decode_and_queues_add():
    m = model()
    cold = Work(512, MB, MB, "deflate")
    warm = Work(512, MB, MB, "deflate", cached=512)
    assert m.est_dn(warm) < m.est_dn(cold) / 50 and m.est_dn(warm) >= 2   # a round trip
    busy = model(queue=6400)
    assert busy.est_dn(cold) - m.est_dn(cold) == pytest.approx(6400 / 4 / 64 * 40)


def test_the_lambda_plan_follows_memory_waves_cold_starts_and_ingest():
    w = Work(1000, MB, 8 * MB, "deflate")
    small, big = model(aws_lambda_memory_mb=128), model(aws_lambda_memory_mb=1769)
    small.warm = big.warm = 1000
    assert small.est_lambda(w) > 5 * big.est_lambda(w)      # 1/14 of a vCPU decodes
    big.warm = 0
    b = big.per_call(w)
    assert b == 16                                       # one round of GETs per call
    decode = b * (MB / (DECODE_MB_S["deflate"] * 1000) + GET_CPU_MS)
    ingest = 8 * MB * 4 / 3 / 1e6
    expected = 500 + math.ceil(1000 / b / 1000) * (30 + max(50, decode)) + ingest
    assert math.isclose(big.est_lambda(w), expected)
    big.warm = 1000                                      # instances that ran stay warm
    assert math.isclose(big.est_lambda(w), expected - 500)
    few = model(aws_lambda_max_invoke=8, aws_lambda_memory_mb=1769)
    assert few.per_call(w) == 125                    # 8 calls of 125 chunks: one wave
    assert few.per_call(Work(1000, MB, 1000 * MB)) == 4     # answers fit the batch bytes
    assert few.est_lambda(w) > big.est_lambda(w)


def test_decode_heavy_small_answers_offload_and_hyperslabs_of_few_chunks_do_not():
    m = model(dns=4, aws_lambda_memory_mb=1769)
    column = Work(2000, 4 * MB, 2000 * 4 * 1024, "deflate")          # decode much, return little
    assert m.decide(column)["plan"] == "lambda"
    few = Work(16, MB, 16 * MB, "none")
    assert m.decide(few)["plan"] == "dn"


def test_forced_modes_and_exploration():
    w = Work(2000, 4 * MB, MB, "deflate")
    assert model(aws_lambda_offload="never").decide(w)["plan"] == "dn"
    assert model(aws_lambda_offload="always").decide(Work(4, MB, 4 * MB))["plan"] == "lambda"
    with pytest.raises(ValueError):
        model(aws_lambda_offload="sometimes")
    m = model(aws_lambda_explore=0.25, aws_lambda_memory_mb=1769)
    picks = [m.decide(w) for _ in range(2000)]
    explored = [d for d in picks if d["explored"]]
    assert len(explored) == 500 and [d["explored"] for d in picks[:8]] == [False] * 3 + [
        True] + [False] * 3 + [True]            # every fourth: evenly spread
    assert all(d["plan"] == "dn" for d in explored)      # the other plan than the best
    assert model(aws_lambda_explore=0.0).decide(w)["explored"] is False


def test_calibration_converges_on_the_measured_times():
    m = model(aws_lambda_p_dn=16, aws_lambda_t_dn_ms=80)     # fetching bounds the DN plan
    w = Work(800, MB, 2 * MB, "zstd")
    truth_dn = 3.0 * m.est_dn(w)                 # this deployment's DNs are 3x slower
    truth_fn = 0.5 * m.est_lambda(w)             # and its functions 2x faster
    for _ in range(60):
        m.measured("dn", w, truth_dn)
        m.measured("lambda", w, truth_fn, instances=50)
    assert m.est_dn(w) == pytest.approx(truth_dn, rel=0.02)
    assert m.est_lambda(w) == pytest.approx(truth_fn, rel=0.02)
    info = m.info()
    assert info["samples"] == {"dn": 60, "lambda": 60} and m.warm == 50
    # what these reads exercise moved; what they do not (deflate, the queue) did not
    dn, fn = info["weights"]["dn"], info["weights"]["lambda"]
    assert dn["fetch"] == pytest.approx(3.0, rel=0.05)     # the DNs' stage that bounds it
    assert abs(fn["decode/zstd"] - 1) > 0.1     # 128 MB: decoding bounds it: it moved
    assert dn["decode/deflate"] == fn["decode/deflate"] == dn["queue"] == 1.0


def test_weights_stay_within_bounds_and_unexercised_ones_return_to_the_prior():
    m = model()
    few, big = Work(64, MB, 1000), Work(64, MB, 1000 * MB)
    for _ in range(100):            # more answer, less time: the send weight would go < 0
        m.measured("dn", few, 500.0)
        m.measured("dn", big, 100.0)
    dn = m.plans["dn"]
    assert dn.w[dn.index["send"]] == 0.0 and np.all(dn.w >= 0)
    # whatever the rows say, the weights are the bounded optimum (its KKT conditions)
    cal, rng = m.plans["lambda"], np.random.default_rng(3)
    for scale in (1e-3, 1.0, 1e6, -1e6) * 5:
        rows = rng.uniform(0, 1, (30, len(cal.names))) * (rng.uniform(size=len(cal.names)) > 0.3)
        cal.A, cal.b = rows.T @ rows, rows.T @ (rng.normal(1, 2, 30) * scale)
        w = cal.solve()
        slope = (cal.A + np.diag(cal.precision)) @ w - cal.b - cal.precision * cal.prior
        tol = 1e-6 * (1 + np.abs(cal.b).max())
        assert np.all(w >= 0) and np.all(w <= cal.hi)
        assert np.all(np.abs(slope[(w > 0) & (w < cal.hi)]) <= tol)
        assert np.all(slope[w == 0] >= -tol) and np.all(slope[w == cal.hi] <= tol)
    # zstd reads that decode 3x slower, then only plain ones, as estimated: the zstd
    # weight fades back to its analytic value (no wind-up of what no read exercises)
    m = model()
    zstd, plain = Work(800, 4 * MB, MB, "zstd"), Work(800, MB, MB, "none")
    for _ in range(40):
        m.measured("dn", zstd, 3 * m.est_dn(zstd))
    decode = m.plans["dn"].index["decode/zstd"]
    assert m.plans["dn"].w[decode] > 2.5
    for _ in range(600):            # (the prior is weak: a row outweighs it ~1,600 times)
        m.measured("dn", plain, m.est_dn(plain))
    assert m.plans["dn"].w[decode] == pytest.approx(1.0, abs=0.05)


# the synthetic deployment: the same stages, with weights the analytic constants get
# wrong: the DNs' answers cost 5x the link's estimate; Lambda has a fixed 90 ms (3x the
# invoke constant) per request and each wave's invoke costs 3x
SYNTH = S.replace(aws_lambda_memory_mb=1769, aws_lambda_max_invoke=32, aws_lambda_explore=0.5,
                  aws_lambda_p_dn=16)
TRUTH = {"dn": {"send": 5.0, "fetch": 0.8, "decode/deflate": 2.0, "fixed_ms": 20.0},
         "lambda": {"fixed_ms": 90.0, "invoke": 3.0, "fetch": 1.2, "ingest": 2.0,
                    "decode/zstd": 0.6}}


def synthetic_works(rng, n):
    """Reads of every kind: hyperslabs return all they decode, strided reads 1/16,
    columns a little, points and queries almost nothing."""
    works = []
    for _ in range(n):
        chunks = int(np.exp(rng.uniform(np.log(16), np.log(4096))))
        size = int(rng.choice([64 * 1024, 256 * 1024, MB, 4 * MB]))
        returned = {"hyperslab": chunks * size, "strided": chunks * size // 16,
                    "column": chunks * int(size ** 0.5) * 2, "points": 8000,
                    "query": chunks * size // 20000}[rng.choice(
                        ["hyperslab", "strided", "column", "points", "query"])]
        cached = int(chunks * rng.choice([0, 0, 0.1, 0.5]))
        works.append(Work(chunks, size, returned, str(rng.choice(["none", "deflate", "zstd"])),
                          cached))
    return works


def truth(weights=TRUTH):
    t = CostModel(SYNTH)
    for plan, ws in weights.items():
        for name, value in ws.items():
            t.plans[plan].w[t.plans[plan].index[name]] = value
    t.warm = 1000
    return t


def train(m, t, works, rng):
    """Run works as m decides (exploring every other), timed by the truth with 10 % noise."""
    for w in works:
        d = m.decide(w)
        ms = t.estimate(d["plan"], w) * rng.lognormal(0, 0.1)
        m.measured(d["plan"], w, ms, stages=d["stages"][d["plan"]])


def picks(m, works):
    return np.array([m.est_dn(w) < m.est_lambda(w) for w in works])


def agreement(m, t, works):
    return float(np.mean(picks(m, works) == picks(t, works)))


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(7)
    t, m = truth(), CostModel(SYNTH)
    m.warm = 1000
    held_out = synthetic_works(rng, 500)
    prior = agreement(m, t, held_out)
    train(m, t, synthetic_works(rng, 150), rng)
    return m, t, held_out, prior


def test_calibration_learns_a_different_linear_truth_from_mixed_reads(trained):
    m, t, held_out, prior = trained
    assert prior < 0.8                  # the analytic constants rank many reads wrongly
    assert agreement(m, t, held_out) >= 0.95
    w = m.info()["weights"]
    assert w["dn"]["send"] == pytest.approx(5.0, rel=0.25)      # the stage that was wrong
    assert w["lambda"]["ingest"] == pytest.approx(2.0, rel=0.25)
    for cal in m.plans.values():
        assert np.all(cal.w >= 0) and np.all(cal.w <= max(BOUNDS))


def test_one_wild_outlier_does_not_flip_decisions(trained):
    m, t, held_out, _ = trained
    before = picks(m, held_out)
    for plan in PLANS:
        for factor in (1000.0, 0.001):
            wild = copy.deepcopy(m)
            w = held_out[0]
            wild.measured(plan, w, t.estimate(plan, w) * factor)
            assert np.mean(picks(wild, held_out) != before) <= 0.02, (plan, factor)
            assert agreement(wild, t, held_out) >= 0.95


def test_calibration_follows_a_deployment_that_changes(trained):
    m, _, held_out, _ = trained
    m = copy.deepcopy(m)
    rng = np.random.default_rng(8)
    changed = {"dn": {**TRUTH["dn"], "send": 1.0, "fetch": 2.5},
               "lambda": {**TRUTH["lambda"], "fixed_ms": 10.0}}
    assert agreement(m, truth(changed), held_out) < 0.9
    train(m, truth(changed), synthetic_works(rng, 250), rng)
    assert agreement(m, truth(changed), held_out) >= 0.95      # the old rows faded


def test_a_streamed_dn_read_is_measured_once_after_its_last_page():
    m = model(dns=4, aws_lambda_offload="never")
    executor = SimpleNamespace(model=m, record=lambda *args: None)
    work = Work(64, MB, 64 * 100 * 4)
    tasks = [SimpleNamespace(count=100) for _ in range(64)]
    decision = Decision(executor, None, work, m.decide(work), "read", 6400)
    assert decision.offload is None
    for page in (tasks[:30], tasks[30:]):
        assert m.plans["dn"].samples == 0
        decision.dn_read(page)
    decision.dn_read(tasks[:1])                  # nothing left: not measured again
    assert m.plans["dn"].samples == 1 and m.plans["lambda"].samples == 0


def test_codec_names_and_recent_chunks():
    assert codec_name({"creationProperties": {"filters": [
        {"class": "H5Z_FILTER_SHUFFLE"}, {"class": "H5Z_FILTER_DEFLATE", "level": 6}]}}) == "deflate"
    assert codec_name({"creationProperties": {"filters": [{"class": "H5Z_FILTER_ZSTD"}]}}) == "zstd"
    assert codec_name({}) == "none"
    recent = RecentChunks(3 * MB)
    recent.add(["a", "b", "c"], MB)
    recent.add(["d"], MB)                    # "a" is forgotten: the DN caches are full
    assert recent.count(["a", "b", "c", "d"]) == 3 and recent.bytes == 3 * MB


def test_a_streamed_reads_pages_are_spread_over_the_functions():
    """1,024 chunks of 64 KiB read in pages of 128, 8 functions: the request's own batch
    is 64 chunks (4 MiB answers), which would leave 6 of 8 functions idle on each page
    while each call ran 4 rounds of 16 GETs; a page goes out in 8 calls of 16."""
    m = model(aws_lambda_max_invoke=8)
    work = Work(1024, 64 * 1024, 1024 * 64 * 1024)
    assert m.per_call(work) == 64
    assert m.page_call(work, 128) == 16
    assert m.page_call(work, 1024) == m.per_call(work)       # one page: the same rule
    assert m.page_call(work, 3) == 3
