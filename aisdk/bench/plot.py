"""`--plot FILE`: the latency distributions of one run as cumulative curves,
every round's samples pooled, cut at the slowest curve's p99.9 (the bench
extra brings matplotlib)."""

from __future__ import annotations

from pathlib import Path

from aisdk.bench.harness import Results, percentile

PANELS = (
    ("request_reply", "request -> typed reply, sequential"),
    ("agent_latency", "agent message publish -> handler, one at a time"),
    ("queue_group", "request/reply, 3 workers in a queue group, 8 in flight"),
)
STYLE = {
    "raw": ("raw nats-py", "#555555", "-"),
    "ours": ("ours", "#1f77b4", "-"),
    "ours_traced": ("ours, traced", "#1f77b4", "--"),
    "ours_unsampled": ("ours, tracing unsampled", "#1f77b4", ":"),
    "faststream": ("FastStream", "#d62728", "-"),
    "faststream_otel": ("FastStream + OTel", "#d62728", "--"),
}


def chart(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    panels = [(g, title) for g, title in PANELS if g in results]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.6 * len(panels)), squeeze=False)
    for ax, (group, title) in zip(axes[:, 0], panels, strict=True):
        left, right = float("inf"), 0.0
        for case in sorted(results[group], key=lambda c: list(STYLE).index(c) if c in STYLE else len(STYLE)):
            pooled = sorted(ns / 1e3 for s in results[group][case] for ns in s.latencies_ns)
            if not pooled:
                continue
            # A handful of stalls (a GC pass, a neighbour's burst) would
            # otherwise stretch the axis a decade past everything else.
            left, right = min(left, pooled[0]), max(right, percentile(pooled, 99.9))
            label, color, line = STYLE.get(case, (case, None, "-"))
            n = len(pooled)
            ax.plot(pooled, [(i + 1) / n for i in range(n)], label=label, color=color, linestyle=line, linewidth=1.4)
        ax.axhline(0.95, color="#999999", linewidth=0.6, linestyle=":")
        ax.set_xscale("log")
        ax.set_xlim(left * 0.8, right * 1.3)
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("latency (µs, log scale)")
        ax.set_ylabel("fraction of messages")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Latency distributions, same run and server (dotted line: p95)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
