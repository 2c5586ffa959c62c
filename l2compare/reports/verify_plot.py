"""The plot of ``l2compare verify``'s report, from its records alone (no framework): per dtype, the free-running
|Δw| per step of each recipe against torch's own 1-ulp envelope (top), and the one-step difference that decides
the verdict against what rounding allows (bottom)."""
from __future__ import annotations

from pathlib import Path

TINY = 1e-18   # a zero on a log axis is drawn here


def plot(records: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = list(dict.fromkeys(r["dtype"] for r in records))
    fig, axes = plt.subplots(2, len(dtypes), figsize=(5.5 * len(dtypes), 6.5), squeeze=False, sharex=True)
    for col, dtype in enumerate(dtypes):
        mine = [r for r in records if r["dtype"] == dtype]
        top, bottom = axes[0][col], axes[1][col]
        for r in mine:
            steps = range(1, len(r["max_dw_per_step"]) + 1)
            if r.get("trajectory_recipe", r["recipe"]) == r["recipe"]:
                top.semilogy(steps, [max(v, TINY) for v in r["max_dw_per_step"]], marker="o",
                             label=f"{r['recipe']} vs Keras")
            one = r.get("onestep")
            if one:
                bottom.semilogy(steps, [max(v, TINY) for v in one["per_step"]], marker="o",
                                label=f"{r['recipe']} ({r['verdict']})")
        envelope = mine[0]["envelope_per_step"]
        top.semilogy(range(1, len(envelope) + 1), [max(v, TINY) for v in envelope], "k--",
                     label="torch vs torch, 1 ulp apart")
        if mine[0].get("onestep"):
            allowed = mine[0]["onestep"]["allowed_per_step"]
            bottom.semilogy(range(1, len(allowed) + 1), allowed, "k:", label="rounding allows (max)")
        top.set_title(f"{dtype}: trained freely, max |Δw| (information)")
        bottom.set_title(f"{dtype}: one step from Keras's state, max |Δ| / max |w|")
        bottom.set_xlabel("step")
        for ax in (top, bottom):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"verify: {records[0]['model']}, {records[0]['optimizer']}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
