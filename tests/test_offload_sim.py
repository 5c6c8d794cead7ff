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
