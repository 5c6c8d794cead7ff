"""AWS-scale analysis: crossovers, speed-ups, costs per request, the tables and the plot."""
from __future__ import annotations

import math

import numpy as np

from .params import CODECS, KINDS, MiB, Scenario
from .plans import dn_plan, draws, lambda_plan

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
