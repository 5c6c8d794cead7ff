"""The offload cost model v2 (server/offload/cost.py): both plans' estimates as
arithmetic over the work and the constants, the forced modes, exploration, and
calibration converging on synthetic timings."""
import math

import pytest

from server.config import Settings
from server.offload.cost import DECODE_MB_S, CostModel, RecentChunks, Work, codec_name

S = Settings()          # t_dn 40, p_dn 16, t_invoke 30, cold 500, t_s3 50, p_fn 16, 128 MB
MB = 1024 * 1024


def model(dns=4, queue=0, **settings):
    return CostModel(S.replace(**settings) if settings else S, lambda: dns, lambda: queue)


def test_the_dn_plan_is_the_slowest_stage_of_each_dn_plus_the_transfer():
    m = model(dns=4)
    w = Work(chunks=1000, decoded_bytes=MB, returned_bytes=8 * MB, codec="deflate")
    per_dn = 1000 / 4
    fetch = math.ceil(per_dn / 16) * 40
    decode = per_dn * MB / (DECODE_MB_S["deflate"] * 1000)     # CPU-bound on one core
    send = 8 * MB / 4 / 1e6
    assert math.isclose(m.est_dn(w), 2 + max(fetch, decode) + send)
    assert decode > fetch
    # uncompressed: the GETs' latency bounds it instead
    plain = Work(1000, MB, 8 * MB, "none")
    assert math.isclose(m.est_dn(plain), 2 + fetch + send)


def test_cached_chunks_cost_neither_fetch_nor_decode_and_queues_add():
    m = model()
    cold = Work(512, MB, MB, "deflate")
    warm = Work(512, MB, MB, "deflate", cached=512)
    assert m.est_dn(warm) < m.est_dn(cold) / 50 and m.est_dn(warm) >= 2   # a round trip
    busy = model(queue=6400)
    assert busy.est_dn(cold) - m.est_dn(cold) == pytest.approx(6400 / 4 / 16 * 40)


def test_the_lambda_plan_follows_memory_waves_cold_starts_and_ingest():
    w = Work(1000, MB, 8 * MB, "deflate")
    small, big = model(aws_lambda_memory_mb=128), model(aws_lambda_memory_mb=1769)
    small.warm = big.warm = 1000
    assert small.est_lambda(w) > 5 * big.est_lambda(w)      # 1/14 of a vCPU decodes
    big.warm = 0
    b = big.per_call(w)
    assert b == 16                                       # one round of GETs per call
    decode = b * MB / (DECODE_MB_S["deflate"] * 1000)
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
    m = model()
    w = Work(800, MB, 2 * MB, "zstd")
    truth_dn = 3.0 * m.est_dn(w)                 # this deployment's DNs are 3x slower
    truth_fn = 0.5 * m.est_lambda(w)             # and its functions 2x faster
    for _ in range(60):
        m.measured("dn", w, m.est_dn(w), truth_dn)
        m.measured("lambda", w, m.est_lambda(w), truth_fn, instances=50)
    assert m.est_dn(w) == pytest.approx(truth_dn, rel=0.02)
    assert m.est_lambda(w) == pytest.approx(truth_fn, rel=0.02)
    # per codec: deflate's factors did not move
    assert m.factors[("dn", "deflate")] == 1.0
    assert m.warm == 50
    info = m.info()
    assert info["factors"]["dn/zstd"] == pytest.approx(3.0, rel=0.02)
    assert info["samples"] == {"dn": 60, "lambda": 60}
    # a wild measurement moves a factor only within its bounds
    for _ in range(200):
        m.measured("dn", w, m.est_dn(w), 1e9)
    assert m.factors[("dn", "zstd")] == 10.0


def test_codec_names_and_recent_chunks():
    assert codec_name({"creationProperties": {"filters": [
        {"class": "H5Z_FILTER_SHUFFLE"}, {"class": "H5Z_FILTER_DEFLATE", "level": 6}]}}) == "deflate"
    assert codec_name({"creationProperties": {"filters": [{"class": "H5Z_FILTER_ZSTD"}]}}) == "zstd"
    assert codec_name({}) == "none"
    recent = RecentChunks(3 * MB)
    recent.add(["a", "b", "c"], MB)
    recent.add(["d"], MB)                    # "a" is forgotten: the DN caches are full
    assert recent.count(["a", "b", "c", "d"]) == 3 and recent.bytes == 3 * MB
