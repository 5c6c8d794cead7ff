"""bench/offload_sim.py: sanity properties of the DN-plan / Lambda-plan simulator."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parent.parent / "bench" / "offload_sim.py"
spec = importlib.util.spec_from_file_location("offload_sim", PATH)
sim = importlib.util.module_from_spec(spec)
sys.modules["offload_sim"] = sim
spec.loader.exec_module(sim)

AWS = sim.preset("aws")
MiB = 1 << 20


def scenario(kind="column", codec="deflate", chunks=1000, **parts):
    return AWS.set(read={"kind": kind, "codec": codec, "chunks": chunks}, **parts)


def non_increasing(xs):
    return all(b <= a * (1 + 1e-12) for a, b in zip(xs, xs[1:]))


@pytest.mark.parametrize("kind,codec,chunks", [("column", "deflate", 2000),
                                               ("hyperslab", "none", 2000),
                                               ("strided", "zstd", 300),
                                               ("query", "deflate", 64)])
def test_more_dns_never_make_the_dn_plan_slower(kind, codec, chunks):
    ms = [sim.dn_plan(scenario(kind, codec, chunks, dn={"count": d})).latency_ms
          for d in (1, 2, 4, 8, 16, 32)]
    assert non_increasing(ms), ms
    assert ms[-1] < ms[0]


@pytest.mark.parametrize("kind,codec,chunks", [("column", "deflate", 5000),
                                               ("strided", "none", 2000),
                                               ("hyperslab", "deflate", 1000),
                                               ("query", "zstd", 300)])
def test_a_higher_concurrency_limit_never_makes_the_lambda_plan_slower(kind, codec, chunks):
    ms = [sim.lambda_plan(scenario(kind, codec, chunks, fn={"max_concurrency": c})).latency_ms
          for c in (1, 4, 16, 64, 256, 1000, 3000)]
    assert non_increasing(ms), ms
    assert ms[-1] < ms[0] / 4


def test_a_hyperslab_read_through_lambda_is_bound_by_the_sn_ingest():
    sc = scenario("hyperslab", "deflate", 10000)
    slow = sim.lambda_plan(sc)
    fast = sim.lambda_plan(sc.set(sn={"ingest_mb_s": 2 * sc.sn.ingest_mb_s}))
    assert fast.latency_ms < 0.8 * slow.latency_ms
    assert slow.detail["sn_busy_ms"] > 0.95 * slow.latency_ms     # the SN never rests
    # ... while a column read of the same chunks hardly cares
    col = scenario("column", "deflate", 10000)
    a = sim.lambda_plan(col).latency_ms
    b = sim.lambda_plan(col.set(sn={"ingest_mb_s": 2 * col.sn.ingest_mb_s})).latency_ms
    assert b > 0.95 * a


def test_cached_chunks_make_the_dn_plan_faster():
    ms = [sim.dn_plan(scenario("column", "deflate", 4000, dn={"cached": f})).latency_ms
          for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(b < a for a, b in zip(ms, ms[1:])), ms
    assert sim.dn_plan(scenario(dn={"cached": 1.0})).detail["gets"] == 0


@pytest.mark.parametrize("chunks", [1, 40, 1000, 5000])
def test_a_cold_start_adds_at_least_the_cold_start_time(chunks):
    sc = scenario("column", "zstd", chunks, fn={"cold_ms": (500.0, 500.0)})
    warm = sim.lambda_plan(sc.set(fn={"warm": 1.0}))
    cold = sim.lambda_plan(sc.set(fn={"warm": 0.0}))
    assert cold.detail["cold_calls"] == min(cold.detail["calls"], sc.fn.max_concurrency)
    assert cold.latency_ms >= warm.latency_ms + 500 - 1e-6
    assert cold.cost_usd > warm.cost_usd          # INIT is billed


def test_a_cold_start_overlaps_the_sns_own_work_when_the_sn_is_the_bottleneck():
    sc = scenario("column", "zstd", 30000, fn={"cold_ms": (500.0, 500.0), "per_call": 64})
    warm = sim.lambda_plan(sc.set(fn={"warm": 1.0}))
    cold = sim.lambda_plan(sc.set(fn={"warm": 0.0}))
    assert warm.detail["sn_busy_ms"] > 0.85 * warm.latency_ms      # the SN is busy
    assert warm.latency_ms < cold.latency_ms < warm.latency_ms + 500


@pytest.mark.parametrize("kind", sim.KINDS)
@pytest.mark.parametrize("chunk_bytes", [64 * 1024, MiB, 4 * MiB])
def test_the_batching_never_exceeds_the_payload_limit(kind, chunk_bytes):
    for chunks, limit in ((7, 1000), (3000, 1000), (3000, 10), (500, 1)):
        sc = AWS.set(read={"kind": kind, "codec": "zstd", "chunks": chunks,
                           "chunk_bytes": chunk_bytes}, fn={"max_concurrency": limit})
        fit = sim.answer_fit(sc)
        assert sim.answer_bytes(sc.read, fit) <= sc.fn.payload_limit
        assert fit == chunks or sim.answer_bytes(sc.read, fit + 1) > sc.fn.payload_limit
        sizes = sim.batch_sizes(sc)
        assert sizes == sorted(sizes) and sizes[-1] == fit
        res = sim.lambda_plan(sc)
        per_call = res.detail["per_call"]
        assert per_call in sizes and res.detail["max_answer_bytes"] <= sc.fn.payload_limit
        assert res.detail["calls"] == math.ceil(chunks / per_call)
        # no more invocations than the limit, unless even full answers need more
        assert res.detail["calls"] <= limit or per_call == fit


def test_a_chunk_too_big_for_one_answer_cannot_go_to_lambda():
    sc = AWS.set(read={"kind": "hyperslab", "chunks": 10, "chunk_bytes": 8 * MiB})
    assert sim.answer_fit(sc) == 0 and sim.batch_sizes(sc) == []
    assert sim.lambda_plan(sc).latency_ms == math.inf
    assert sim.crossover([100.0], [math.inf], grid=[10]) is None


def test_a_column_read_over_deflate_crosses_over_before_a_hyperslab_read():
    grid = [10, 32, 100, 316, 1000, 3162, 10000]
    cross = {}
    for kind in ("column", "hyperslab"):
        sc = scenario(kind, "deflate")
        cross[kind] = sim.crossover(sim.curve(sc, sim.dn_plan, grid),
                                    sim.curve(sc, sim.lambda_plan, grid), grid)
    assert cross["column"] is not None
    assert cross["hyperslab"] is None or cross["hyperslab"] > cross["column"]


def test_the_crossover_interpolates_between_grid_points():
    assert sim.crossover([10, 10, 10], [20, 10 * math.sqrt(2), 5], grid=[1, 10, 100]) == \
        pytest.approx(10 ** (1 + 1 / 3))
    assert sim.crossover([10, 10], [5, 5], grid=[1, 10]) == 1
    assert sim.crossover([10, 10], [11, 12], grid=[1, 10]) is None
    assert sim.crossover([10, 10, 10], [5, 12, 5], grid=[1, 10, 100]) > 10    # wins for good
    assert sim.crossover([10, 10, 10], [5, 5, 12], grid=[1, 10, 100]) is None


def test_results_are_deterministic_for_a_seed():
    sc = scenario("strided", "deflate", 3000, dn={"cached": 0.3}, fn={"warm": 0.5})
    one, two = sim.both(sc), sim.both(sc)
    assert [(r.latency_ms, r.cost_usd) for r in one] == [(r.latency_ms, r.cost_usd) for r in two]
    other = sim.both(sc.set(seed=2))
    assert [r.latency_ms for r in other] != [r.latency_ms for r in one]


def test_the_vectorised_single_wave_matches_the_event_loop():
    for kind, chunks, warm in (("column", 5000, 0.3), ("query", 40, 1.0), ("strided", 900, 0.0)):
        sc = scenario(kind, "deflate", chunks, fn={"warm": warm})
        a = sim.lambda_plan(sc)
        b = sim.lambda_plan(sc, one_pass=False)
        assert a.detail["calls"] <= sc.fn.max_concurrency
        assert a.latency_ms == pytest.approx(b.latency_ms, rel=1e-12)


def test_the_connection_pool_is_exact_greedy():
    rng = np.random.default_rng(3)
    service = rng.random((40, 50)) * 10
    got = sim.pool(service, 4)                      # 40 rows: the column-wise path
    for r in range(40):
        free = [0.0] * 4
        for j, s in enumerate(service[r]):
            k = int(np.argmin(free))
            free[k] += s
            assert got[r, j] == pytest.approx(free[k])
    assert np.allclose(sim.pool(service[:3], 4), got[:3])     # the heap path agrees
    assert np.allclose(sim.fifo1(np.array([0.0, 0, 5, 20]), np.array([2.0, 2, 2, 2])),
                       [2, 4, 7, 22])


def test_lambda_cpu_follows_memory_and_costs_follow_prices():
    sc = scenario("column", "deflate", 2000)
    small, big = (sim.lambda_plan(sc.set(fn={"memory_mb": m})) for m in (128, 1769))
    assert small.latency_ms > big.latency_ms
    assert sim.lambda_cpu_ms(sc.set(fn={"memory_mb": 128})) == pytest.approx(
        sim.lambda_cpu_ms(sc) * 1769 / 128)
    res = sim.lambda_plan(sc)
    want = res.detail["billed_ms"] / 1e3 * 1769 / 1024 * 0.0000166667 + \
        res.detail["calls"] * 0.2e-6
    assert res.cost_usd == pytest.approx(want)
    dn = sim.dn_plan(sc)
    assert dn.cost_usd == pytest.approx(8 * dn.latency_ms / 1e3 * 0.192 / 3600 / 4)


def test_validate_reads_measurements_and_prints_ratios(tmp_path, capsys):
    records = [                 # synthetic numbers: only the parsing is under test
        {"kind": "strided", "codec": "none", "chunks": 200, "chunk_bytes": 262144,
         "dn_count": 4, "workers": 8, "s3_latency_ms": 30, "dn_ms": 400.0, "lambda_ms": 500.0,
         "stride": 32, "strided_dims": 1},
        {"kind": "column", "codec": "deflate", "chunks": 50, "chunk_bytes": 65536,
         "dn_count": 2, "workers": 4, "s3_latency_ms": 20, "dn_ms": 150.0, "lambda_ms": None,
         "note": "no Lambda number"},
    ]
    path = tmp_path / "local.json"
    path.write_text(json.dumps(records))
    assert sim.main(["--validate", str(path)]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith(("strided", "column"))]
    assert len(lines) == 2
    first = lines[0].split()
    dn_sim, dn_meas, dn_ratio = float(first[7]), float(first[8]), float(first[9])
    assert dn_meas == 400 and dn_ratio == pytest.approx(dn_sim / 400, abs=0.006)
    assert "no Lambda number" in lines[1]
    assert "of 3 within 1.5x" in out
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "column"}')
    with pytest.raises(SystemExit):
        sim.main(["--validate", str(bad)])


def test_pages_run_one_after_the_other():
    sc = sim.preset("local").set(read={"kind": "hyperslab", "codec": "none", "chunks": 320,
                                       "chunk_bytes": 262144})
    one = sim.dn_plan(sc)
    paged = sim.dn_plan(sc.set(read={"pages": 10}))
    assert paged.detail["pages"] == 10 and paged.latency_ms > one.latency_ms


def test_the_tables_and_the_plot(tmp_path, monkeypatch):
    text = sim.aws_tables(AWS, dns=(4,), memories=(1769,), kinds=("column",),
                          codecs=("deflate",), cost_ns=(1000,))
    assert "| column | deflate |" in text and "crossover 4 DN" in text
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # not installed
    msg = sim.save_plot({}, str(tmp_path / "x.png"), (4,), (1769,))
    assert "skipped" in msg and not (tmp_path / "x.png").exists()


# ---- the local model's structure: each term, and that removing it shows ----------------

LOCAL = sim.preset("local")


def warm(kind="column", chunks=64, **parts):
    """A read of chunks the DNs all hold, on a machine that is not the bottleneck."""
    return AWS.set(read={"kind": kind, "codec": "none", "chunks": chunks,
                         "chunk_bytes": 64 * 1024}, s3={"median_ms": 30.0, "p99_ms": 30.0},
                   dn={"cached": 1.0, **parts})


def test_each_dn_call_costs_the_dn_and_the_sn():
    base = warm(count=8)
    plain = sim.dn_plan(base)
    dn_side = sim.dn_plan(base.set(dn={"call_cpu_ms": 1.0}))
    assert dn_side.latency_ms >= plain.latency_ms + 1.0 - 1e-9      # parse + answer
    sn_side = [sim.dn_plan(warm(count=d).set(sn={"dn_call_ms": 1.0})) for d in (2, 16)]
    free = [sim.dn_plan(warm(count=d)) for d in (2, 16)]
    extra = [a.latency_ms - b.latency_ms for a, b in zip(sn_side, free)]
    assert extra[1] > extra[0] + 5          # 16 calls to send and read, not 2
    assert sn_side[1].detail["calls"] == 16 and sn_side[1].detail["sn_cpu_ms"] >= 16


def test_hashed_placement_leaves_the_busiest_dn_short_of_cache():
    even = sim.dn_plan(warm(chunks=64, count=4, placement="even"))
    hashed = sim.dn_plan(warm(chunks=64, count=4, placement="hash"))
    assert even.detail["gets"] == 0
    assert hashed.detail["gets"] > 0         # a DN owns more than the 16 its cache holds
    assert hashed.latency_ms > even.latency_ms + 25     # ... and waits for S3 (30 ms)
    idx, cached = sim.dn_rows(warm(chunks=64, count=4, placement="hash"),
                              sim.draws(64, 1))
    owned = (idx < 64).sum(axis=1)
    assert (cached.sum(axis=1) == np.minimum(owned, 16)).all()


def test_a_few_chunks_of_a_cached_dataset_are_found_cached():
    """A column of 8 chunks of a 64-chunk dataset the caches hold: the DNs' loads are
    their shares of the dataset, not of the 8 (each holds 16 of its ~16)."""
    def gets(dataset):
        return sum(sim.dn_plan(warm(chunks=8, count=4, placement="hash").set(
            read={"dataset_chunks": dataset}, seed=seed)).detail["gets"] for seed in range(1, 7))
    assert gets(64) < gets(None) / 2       # as a dataset of its own, 2 per DN: more misses
    rec = {"kind": "column", "codec": "none", "chunks": 8, "chunk_bytes": 65536,
           "dn_count": 4, "workers": 8, "s3_latency_ms": 30, "cached": 1.0}
    assert sim.record_scenario(LOCAL, rec).read.dataset_chunks == 64    # 4 x 1 MiB
    rec["cached"] = 0.25
    assert sim.record_scenario(LOCAL, rec).read.dataset_chunks == 256


def test_a_query_in_order_thrashes_a_cache_that_is_a_little_short():
    """20 chunks on one DN, room for 16: a batch read misses 4; a query that loads 16
    ahead misses those 4 first, and their loads evict the 4 beyond its window (LRU)."""
    sc = AWS.set(read={"kind": "query", "codec": "none", "chunks": 20,
                       "chunk_bytes": 64 * 1024, "dataset_chunks": 20},
                 dn={"count": 1, "cached": 0.8, "query_window": None})
    batch = sim.dn_plan(sc)
    ordered = sim.dn_plan(sc.set(dn={"query_window": 16}))
    assert batch.detail["gets"] == 4 and ordered.detail["gets"] == 8
    assert ordered.latency_ms > batch.latency_ms + 20        # a second round of GETs


def test_a_query_window_waits_for_the_chunks_ahead():
    """Cold chunks in order, 4 loads ahead: each wave waits for the one before."""
    sc = AWS.set(read={"kind": "query", "codec": "none", "chunks": 16,
                       "chunk_bytes": 64 * 1024},
                 s3={"median_ms": 30.0, "p99_ms": 30.0}, dn={"count": 1, "query_window": None})
    pooled = sim.dn_plan(sc).latency_ms
    ordered = sim.dn_plan(sc.set(dn={"query_window": 4})).latency_ms
    assert pooled < 2 * 30 and ordered > 4 * 30


def test_the_aws_preset_follows_h5cloud_s_dn_pool_and_query_window():
    """A DN runs up to 64 GETs at once (aws_lambda_p_dn sizes its S3 pool), a DN query
    loads 16 ahead (QUERY_WINDOW), a function fetches through chunk_read's 16 threads."""
    for sc in (AWS, LOCAL):
        assert sc.dn.connections == 64 and sc.dn.query_window == 16
    assert AWS.fn.connections == 16


@pytest.mark.parametrize("codec", sim.CODECS)
def test_a_cold_query_is_slower_on_the_dns_than_a_strided_read_of_the_same_chunks(codec):
    """Nothing cached, 8 DNs, 1,000 chunks (125 a DN): a strided read keeps 64 GETs in
    flight per DN, a query only its window of 16, so it waits for 4x as many S3 rounds.
    Without the window the query would be within its extra scan CPU of the strided
    read."""
    def ms(kind, **dn):
        return sim.dn_plan(scenario(kind, codec, 1000, dn=dn)).latency_ms
    strided, query = ms("strided"), ms("query")
    assert query > 1.4 * strided, (query, strided)
    assert ms("query", query_window=None) < 0.8 * query         # the window is the cause
    assert ms("query", query_window=64) < query                 # a wider window helps


def test_a_bigger_lambda_answer_costs_the_relay_more():
    sc = LOCAL.set(read={"kind": "hyperslab", "codec": "none", "chunks": 64,
                         "chunk_bytes": 64 * 1024}, fn={"relay_mb_s": 170.0})  # one that parsed
    slow = sim.lambda_plan(sc)
    none = sim.lambda_plan(sc.set(fn={"relay_mb_s": None}))
    assert slow.latency_ms > none.latency_ms + 10           # 5.6 MB at 170 MB/s, one process
    small = sc.set(read={"kind": "column"})
    a = sim.lambda_plan(small).latency_ms
    b = sim.lambda_plan(small.set(fn={"relay_mb_s": None})).latency_ms
    assert a - b < (slow.latency_ms - none.latency_ms) / 10
    # the event loop and the one-wave shortcut agree with a relay too
    for kind, chunks in (("hyperslab", 40), ("strided", 300)):
        one = LOCAL.set(read={"kind": kind, "codec": "none", "chunks": chunks,
                              "chunk_bytes": 64 * 1024}, fn={"max_concurrency": 1000},
                        machine={"cores": None})
        assert sim.lambda_plan(one).latency_ms == pytest.approx(
            sim.lambda_plan(one, one_pass=False).latency_ms, rel=1e-12)


def test_the_function_prices_its_gets_apart_from_the_dns():
    sc = scenario("column", "none", 500)
    dn, fn = sim.both(sc)
    dn2, fn2 = sim.both(sc.set(fn={"get_ms": 5.0}))
    assert dn2.latency_ms == dn.latency_ms and fn2.latency_ms > fn.latency_ms


def test_per_request_costs_and_a_querys_json_answer():
    sc = scenario("query", "none", 200)
    dn, fn = sim.both(sc)
    more = sc.set(sn={"request_cpu_ms": 1.0, "client_cpu_ms": 2.0, "request_ms": 0.5})
    dn2, fn2 = sim.both(more)
    assert dn2.latency_ms == pytest.approx(dn.latency_ms + 3.5)
    assert fn2.latency_ms == pytest.approx(fn.latency_ms + 3.5)
    values = 200 * (MiB // 4) * 0.005
    dn3 = sim.dn_plan(sc.set(sn={"json_value_us": 2.0}))
    assert dn3.latency_ms == pytest.approx(dn.latency_ms + values * 2e-3)
    col = scenario("column", "none", 200)           # binary: no JSON values
    assert sim.dn_plan(col.set(sn={"json_value_us": 2.0})).latency_ms == \
        sim.dn_plan(col).latency_ms


# ---- the dataset's real placement, the DN cache in stored bytes, answer compression ----

def test_a_records_real_placement_replaces_the_random_one():
    """dn_chunks: the dataset's chunks on each DN. Loads that all fit the caches (16 of
    64 KiB in 1 MiB) leave a cached read no misses, whatever the seed; one DN 4 over
    misses 4. The random hashed placement of the same read does miss (seed 1)."""
    def gets(loads, chunks=64, seed=1, **read):
        sc = warm(chunks=chunks, count=4, placement="hash").set(
            read={"dn_chunks": loads, "dataset_chunks": 64, **read}, seed=seed)
        return sim.dn_plan(sc).detail["gets"]
    assert [gets((16, 16, 16, 16), seed=s) for s in (1, 2, 3)] == [0, 0, 0]
    assert sim.dn_plan(warm(chunks=64, count=4, placement="hash")).detail["gets"] > 0
    assert gets((20, 16, 16, 12)) == 4
    assert gets((16, 16, 16, 16), kind="query") == 0
    assert gets((20, 16, 16, 12), kind="query") == 8        # its window thrashes, as before
    # a column of 8 chunks of the dataset: shared out by the loads, 3 on the DN with 24
    assert gets((16, 16, 16, 16), chunks=8) == 0
    assert gets((24, 16, 12, 12), chunks=8) == 1            # 3 x (1 - 16/24)
    assert np.bincount(sim.share_out(np.array([24.0, 16, 12, 12]), 8)).tolist() == [3, 2, 2, 1]
    with pytest.raises(ValueError):
        gets((32, 32))                                      # 2 loads for 4 DNs


def test_a_record_may_give_its_placement_and_answer_ratio():
    rec = {"kind": "strided", "codec": "zstd", "chunks": 64, "chunk_bytes": 65536,
           "dn_count": 4, "workers": 8, "s3_latency_ms": 150, "cached": 2.2,
           "dn_chunks": [20, 14, 15, 15], "answer_ratio": 2.0}
    sc = sim.record_scenario(LOCAL, rec)
    assert sc.read.dn_chunks == (20, 14, 15, 15) and sc.read.dataset_chunks == 64
    assert sc.read.answer_ratio == 2.0
    assert sim.dn_plan(sc).detail["gets"] == 0              # cached 2.2: room to spare
    assert sim.dn_plan(sc.set(dn={"cached": 1.0})).detail["gets"] == 4
    with pytest.raises(ValueError):
        sim.record_scenario(LOCAL, {**rec, "dn_chunks": [32, 32]})


def packing(ratio=2.16, kind="hyperslab", chunks=64, **parts):
    return LOCAL.set(read={"kind": kind, "codec": "none", "chunks": chunks,
                           "chunk_bytes": 64 * 1024, "answer_ratio": ratio}, **parts)


def test_chunk_read_compresses_an_answer_when_it_saves_a_fifth():
    """chunk_read tries zstd level 1 on answers of 64 KiB or more and sends the result
    when it is at most 0.8 of the raw bytes."""
    tried, packed = sim.answer_packing(packing(kind="strided"), [15, 16, 64])  # 4 KiB each
    assert tried.tolist() == [False, True, True] and packed.tolist() == [False, True, True]
    assert not sim.answer_packing(packing(1.2), [64])[1].any()          # saves < 20 %
    assert not sim.answer_packing(packing(None), [64])[1].any()
    raw = 16 * 64 * 1024
    assert sim.sent_bytes(packing(), [16])[0] == pytest.approx(
        4 * math.ceil(raw / 2.16 / 3) + 16 * 100 + 200)
    assert sim.sent_bytes(packing(1.2), [16])[0] == sim.answer_bytes(packing().read, 16)
    res = sim.lambda_plan(packing())
    assert res.detail["packed_calls"] == res.detail["calls"]
    assert res.detail["sent_bytes"] < 0.5 * sim.lambda_plan(packing(None)).detail["sent_bytes"]


def test_each_answer_compression_term_costs_what_it_should():
    """Per chunk of 64 KiB in a 16-chunk answer: the function pays the zstd try (answer
    does not shrink) or the compression (it does) on the raw bytes, then base64 + JSON
    on the bytes sent; the SN pays json.loads + base64 on the bytes sent and zstd
    decompression on the raw ones; the gateway relays the bytes sent."""
    ret, cpu, sn = 64 * 1024, LOCAL.cpu, LOCAL.sn
    plain, packed = sim.lambda_cpu_ms(packing(None), 16), sim.lambda_cpu_ms(packing(), 16)
    b64 = ret * 4 / 3 / (cpu.b64enc_mb_s * 1e3)
    assert packed - plain == pytest.approx(
        ret / (cpu.zstd_pack_mb_s * 1e3) - ret / (cpu.zstd_try_mb_s * 1e3) + b64 / 2.16 - b64)
    strided = [sim.lambda_cpu_ms(packing(r, kind="strided"), n)      # 4 KiB a chunk
               for r in (None, 2.16) for n in (15, 16)]
    assert strided[0] == strided[2]                         # under 64 KiB: not even tried
    assert strided[1] - strided[0] == pytest.approx(4096 / (cpu.zstd_try_mb_s * 1e3))
    sizes = np.array([16])
    _, ingest_plain = sim.sn_work(packing(None), sizes)
    _, ingest_packed = sim.sn_work(packing(), sizes)
    sent = sim.sent_bytes(packing(), sizes) - sim.sent_bytes(packing(None), sizes)
    assert ingest_packed - ingest_plain == pytest.approx(
        sent / (sn.ingest_mb_s * 1e3) + 16 * ret / (sn.unpack_mb_s * 1e3))
    # and each rate shows in the plan's latency (a 2-core machine: all CPU counts)
    base = sim.lambda_plan(packing()).latency_ms
    for part, rate in (("cpu", "zstd_pack_mb_s"), ("sn", "unpack_mb_s")):
        slower = packing(**{part: {rate: getattr(getattr(LOCAL, part), rate) / 4}})
        assert sim.lambda_plan(slower).latency_ms > base + 5, rate
    slower = packing(None, cpu={"zstd_try_mb_s": cpu.zstd_try_mb_s / 4})
    assert sim.lambda_plan(slower).latency_ms > sim.lambda_plan(packing(None)).latency_ms + 5
    relayed = [sim.lambda_plan(packing(r)).latency_ms -
               sim.lambda_plan(packing(r, fn={"relay_mb_s": None})).latency_ms
               for r in (2.16, None)]
    assert relayed[0] < 0.7 * relayed[1]                    # fewer bytes through the gateway


def test_the_grid_writes_the_real_placement_batches_and_answer_ratio():
    """bench/offload_grid.py's sim_record: the dataset's DN loads by node_index of its
    chunk ids, the SN's own batch size, zstd's ratio on an answer, and the cache's room
    in decoded bytes (what the DN cache charges)."""
    import types
    sys.path.insert(0, str(PATH.parent))
    spec = importlib.util.spec_from_file_location("offload_grid", PATH.parent / "offload_grid.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    from server.core.ids import chunk_id, node_index
    a = types.SimpleNamespace(dn=4, workers=8, latency_ms=150.0, jitter_ms=0.0,
                              dn_cache="1m", kinds=",".join(sim.KINDS))
    ds = grid.Dataset("deflate", 64, 128, 3)
    assert grid.dn_loads(ds, 4) is None                     # no id yet
    ds.did = "d-8f4b2a60-1c2d-4e5f-9a0b-123456789abc"
    recs = {k: grid.sim_record(a, ds, k, 10.0, 20.0) for k in sim.KINDS}
    loads = recs["strided"]["dn_chunks"]
    want = np.bincount([node_index(chunk_id(ds.did, (r, c)), 4)
                        for r in range(8) for c in range(8)], minlength=4)
    assert loads == want.tolist() and sum(loads) == 64
    assert recs["hyperslab"]["per_call"] == 16               # max(p_fn 16, 64 / 8 workers)
    assert recs["hyperslab"]["answer_ratio"] > 1.5 > recs["hyperslab"]["ratio"] / 2
    assert recs["hyperslab"]["cached"] == 0.0
    assert recs["strided"]["cached"] == pytest.approx(4 * MiB / (64 * 65536), abs=1e-3)
    for rec in recs.values():
        sc = sim.record_scenario(LOCAL, rec)
        assert sc.read.dn_chunks == tuple(loads) and sc.fn.per_call == rec["per_call"]


@pytest.mark.parametrize("name,least", [("offload_grid_local_dec01.json", 84),
                                        ("offload_grid_local_150ms_dec01.json", 83),
                                        ("offload_grid_local.json", 87),
                                        ("offload_grid_local_150ms.json", 87),
                                        ("offload_grid_local_pages.json", 8),
                                        ("offload_grid_local_150ms_cold.json", 87),
                                        ("offload_issue11_16core.json", 11),
                                        ("offload_grid_local_ingest.json", 86)])
def test_the_grids_validate(name, least, capsys):
    """The current code's grids (2026-12-01, 30 and 150 ms per GET: the reference now),
    and the older ones, measured before the SN's own Invoke POST (OFFLOAD_SIM.md)."""
    assert sim.main(["--validate", str(PATH.parent / name)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert int(last.split(";")[1].split()[0]) >= least, last


def test_a_file_of_older_code_carries_its_parameters(tmp_path, capsys):
    """{"set", "records"}: the records ran with "set"'s parameters; --current leaves them
    (and the older SN's per_call) out and prints what the current code would do."""
    rec = {"kind": "strided", "codec": "none", "chunks": 300, "chunk_bytes": 262144,
           "dn_count": 4, "workers": 48, "s3_latency_ms": 30, "cores": 16, "stride": 32,
           "strided_dims": 1, "per_call": 7, "lambda_ms": 300}
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"set": {"sn": {"ingest_mb_s": 50.0}}, "records": [rec]}))

    def lambda_sim(*extra):
        assert sim.main(["--validate", str(path), *extra]) == 0
        row = capsys.readouterr().out.splitlines()[3]
        return float(row.split()[-3])

    slow, now = lambda_sim(), lambda_sim("--current")
    sc = sim.record_scenario(LOCAL, rec)
    assert slow == round(sim.lambda_plan(sc.set(sn={"ingest_mb_s": 50.0})).latency_ms)
    assert now == round(sim.lambda_plan(sc.set(fn={"per_call": None})).latency_ms) < slow
    path.write_text(json.dumps({"set": {"sn": {"no_such": 1}}, "records": [rec]}))
    with pytest.raises(SystemExit):
        sim.main(["--validate", str(path)])
