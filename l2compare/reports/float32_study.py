"""The float32 agreement study: the exact recipe (torch penalty against Keras l2) over seeds × data
sets × models × optimizers (float32.md/.csv), and one float32 CNN case step by step (float32_cnn.png).

Built from the study's parity records (``study`` set, written by ``l2compare.parity.grid``); its verdicts are
those of ``l2compare.reports.parity_tables``. Imports no framework.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global backend state, safe in any process

from l2compare.core.names import MODELS
from l2compare.core.spec import OptimizerSpec
from l2compare.engine.files import atomic_path
from l2compare.parity.onestep import TIE
from l2compare.parity.runner import OUTLIER, SLACK
from l2compare.parity.grid import STUDY
from l2compare.reports.parity_tables import EXPLANATIONS
from l2compare.reports.tables import DPI, distinct, markdown, sci

# The fixed float32 trajectory bound that issue #8 retires (it held on one CPU and failed on the next);
# kept only to count, in the float32 study, how many trajectories would still have passed it.
OLD_BOUND = 1e-5
FLOAT32_KEYS = ["dataset", "model", "optimizer"]


def study_records(parity: list[dict]) -> list[dict]:
    """The float32 agreement study's records that carry one-step data."""
    return [p for p in parity if p.get("study") and p.get("onestep")]


def _study_ids(p: dict) -> dict:
    case = p["case"]
    return {"dataset": case["dataset"], "model": case["model"],
            "optimizer": OptimizerSpec(**case["optimizer"]).label, "seed": case["seed"]}


def study_frame(parity: list[dict]) -> pd.DataFrame:
    """One row per study record: its ids and the numbers the study table aggregates."""
    rows = []
    for p in study_records(parity):
        one = p["onestep"]
        why = list((one.get("outliers") or {}).values())
        rows.append({**_study_ids(p), "verdict": p["verdict"], "steps": p["steps"], "trajectory_max": p["worst"],
                     "envelope_max": max(p["envelope"]) if p.get("envelope") else math.nan,
                     "onestep_median": one["median"], "onestep_max": one["max"], "floor_median": one["floor_median"],
                     "ties": one["ties"], **{f"outliers_{e}": why.count(e) for e in EXPLANATIONS}})
    return pd.DataFrame(rows)


def float32_table(parity: list[dict]) -> pd.DataFrame:
    """Per (dataset, model, optimizer), over seeds: how many float32 trajectories stay ≤ OLD_BOUND, the
    one-step numbers, the fraction of steps with a decision tie, outliers by explanation, verdict counts."""
    df = study_frame(parity)
    if df.empty:
        return df
    groups = df.groupby(FLOAT32_KEYS, sort=False)
    out = groups.agg(n=("seed", "nunique"),
                     trajectory_le_old_bound=("trajectory_max", lambda s: int((s <= OLD_BOUND).sum())),
                     onestep_median_median=("onestep_median", "median"),
                     onestep_median_max=("onestep_median", "max"), onestep_max=("onestep_max", "max"),
                     floor_median=("floor_median", "median"),
                     **{f"outliers_{e}": (f"outliers_{e}", "sum") for e in EXPLANATIONS},
                     trajectory_max_median=("trajectory_max", "median"),
                     envelope_max_median=("envelope_max", "median")).reset_index()
    ties = groups[["ties", "steps"]].sum().reset_index()
    out["tie_fraction"] = (ties["ties"] / ties["steps"]).to_numpy()
    verdicts = pd.crosstab([df[k] for k in FLOAT32_KEYS], df["verdict"])
    verdicts = verdicts.reindex(columns=["exact", "close", "wrong"], fill_value=0).reset_index()
    out = out.merge(verdicts, on=FLOAT32_KEYS, how="left")
    order = {"dataset": STUDY["datasets"], "model": MODELS, "optimizer": STUDY["optimizers"]}
    out = out.sort_values(FLOAT32_KEYS, key=lambda s: s.map({v: i for i, v in enumerate(order[s.name])})
                          .fillna(len(order[s.name])), kind="stable").reset_index(drop=True)
    columns = [*FLOAT32_KEYS, "n", "trajectory_le_old_bound", "onestep_median_median", "onestep_median_max",
               "onestep_max", "floor_median", "tie_fraction", *(f"outliers_{e}" for e in EXPLANATIONS),
               "exact", "close", "wrong", "trajectory_max_median", "envelope_max_median"]
    counts = ["n", "trajectory_le_old_bound", *(f"outliers_{e}" for e in EXPLANATIONS), "exact", "close", "wrong"]
    return out[columns].astype({c: "Int64" for c in counts})


def float32_summary(parity: list[dict]) -> dict | None:
    """The study in a few numbers (for float32.md and PORTING.md); None without study records."""
    df = study_frame(parity)
    if df.empty:
        return None
    cnn = df[df["model"].eq("cnn")]
    return {"cases": len(df), "extent": _study_extent(df),
            "seeds": distinct(sorted(df["seed"])), "datasets": distinct(df["dataset"]),
            "models": distinct(df["model"]), "optimizers": distinct(df["optimizer"]),
            "under_old_bound": int((df["trajectory_max"] <= OLD_BOUND).sum()),
            "median_low": float(df["onestep_median"].min()), "median_high": float(df["onestep_median"].max()),
            "onestep_max": float(df["onestep_max"].max()), "tie_fraction": float(df["ties"].sum() / df["steps"].sum()),
            "tie_fraction_cnn": float(cnn["ties"].sum() / cnn["steps"].sum()) if len(cnn) else math.nan,
            **{f"outliers_{e}": int(df[f"outliers_{e}"].sum()) for e in EXPLANATIONS},
            **{v: int(df["verdict"].eq(v).sum()) for v in ("exact", "close", "wrong")},
            "trajectory_max": float(df["trajectory_max"].max()), "envelope_max": float(df["envelope_max"].max())}


def _study_extent(df: pd.DataFrame) -> str:
    """"5 seeds × 2 data sets × 3 models × 3 optimizers" for a full cross product, else what there is."""
    names = {"seed": "seeds", "dataset": "data sets", "model": "models", "optimizer": "optimizers"}
    counts = {k: df[k].nunique() for k in names}
    if len(df) == math.prod(counts.values()) and not df.duplicated(["seed", *FLOAT32_KEYS]).any():
        text = " × ".join(f"{n} {names[k]}" for k, n in counts.items())
    else:
        seeds = df.groupby(FLOAT32_KEYS)["seed"].nunique()
        each = f"{seeds.iloc[0]} seeds" if seeds.nunique() == 1 else f"{seeds.min()}–{seeds.max()} seeds"
        text = f"{each} × {len(seeds)} data set / model / optimizer combinations"
    design = math.prod(len(v) for v in STUDY.values())
    return text if len(df) >= design else f"{text}, a partial run of the study's {design}"


def float32_markdown(table: pd.DataFrame, parity: list[dict]) -> str:
    s = float32_summary(parity)
    rows = [{"data set": r["dataset"], "model": r["model"], "optimizer": r["optimizer"], "seeds": str(r["n"]),
             f"trajectory ≤ {OLD_BOUND:g}": f"{r['trajectory_le_old_bound']}/{r['n']}",
             "one-step median (median / max over seeds)": f"{sci(r['onestep_median_median'])} / "
                                                         f"{sci(r['onestep_median_max'])}",
             "one-step max": sci(r["onestep_max"]), "floor median": sci(r["floor_median"]),
             "steps with a tie": f"{r['tie_fraction']:.0%}",
             "outlier steps: " + " / ".join(EXPLANATIONS): " / ".join(str(r[f"outliers_{e}"]) for e in EXPLANATIONS),
             "verdicts exact / close / wrong": f"{r['exact']} / {r['close']} / {r['wrong']}",
             "trajectory max \\|Δw\\| (median)": sci(r["trajectory_max_median"]),
             "1-ulp envelope max (median)": sci(r["envelope_max_median"])} for _, r in table.iterrows()]
    intro = "\n".join([
        f"The exact recipe (torch `penalty`) against Keras `l2` in float32, over {s['cases']} cases ({s['extent']}). "
        f"Seeds {s['seeds']}; data sets {s['datasets']}; models {s['models']}; optimizers {s['optimizers']}. "
        "Each case is set up as in [parity.md](parity.md), where the verdicts are defined.",
        "",
        f"- {s['exact']} of {s['cases']} cases are exact one step at a time ({s['close']} close, {s['wrong']} wrong); "
        f"one-step medians are {sci(s['median_low'])}–{sci(s['median_high'])} of max |w|, the largest single "
        f"step {sci(s['onestep_max'])}.",
        f"- The whole float32 trajectory stays ≤ {OLD_BOUND:g} (the fixed bound this replaces) in "
        f"{s['under_old_bound']} of {s['cases']} cases; its largest drift, {sci(s['trajectory_max'])}, compares with "
        f"torch's own 1-ulp envelope, up to {sci(s['envelope_max'])}.",
        f"- {s['tie_fraction']:.0%} of all steps have a decision tie; outlier steps (> {OUTLIER:g} of max |w|): "
        + ", ".join(f"{s[f'outliers_{e}']} {e}" for e in EXPLANATIONS) + ".",
        "",
        "Columns: **trajectory ≤ bound**: seeds whose trajectory max |Δw| stays within the old fixed bound; "
        "**one-step median**: per seed the median over steps of the one-step difference (of max |w|), then its "
        "median and max over seeds; **one-step max**: the largest single step; **floor median**: the median "
        "rounding floor (torch's + Keras's own float32-vs-float64 error of a step); **steps with a tie**: share of "
        "all steps where a ReLU or MaxPool decision ties within float32 rounding; **outlier steps**: summed over "
        "seeds; **trajectory / envelope**: medians over seeds of the trajectory's max |Δw| and of torch's own "
        "1-ulp envelope.",
    ])
    return f"{intro}\n\n{markdown(pd.DataFrame(rows))}\n\n![float32 CNN case](float32_cnn.png)\n"


def _float32_case(parity: list[dict]) -> dict | None:
    """The study's CNN / article / momentum case with the lowest seed; else the first float32 CNN record
    with one-step data (study records first, lowest seed first; the deliberate mistakes never)."""
    def ok(p):
        return p.get("dtype") == "float32" and p.get("onestep") and p.get("trajectory") \
            and p.get("case", {}).get("model") == "cnn" and not p.get("extra")
    candidates = [p for p in parity if ok(p)]
    preferred = [p for p in candidates if p.get("study") and _study_ids(p)["dataset"] == "article"
                 and _study_ids(p)["optimizer"] == "momentum"]
    return min(preferred or candidates, key=lambda p: (not p.get("study"), p["case"].get("seed", 0)), default=None)


def _positive(values) -> np.ndarray:
    """For a log axis: exact zeros (identical weights) are not drawn."""
    v = np.asarray([math.nan if x is None else x for x in values], dtype=float)
    return np.where(v > 0, v, np.nan)


def plot_float32_case(parity: list[dict], path: Path) -> bool:
    """Top: the float32 trajectory (Keras vs torch) against torch's own 1-ulp envelope, per step. Bottom:
    one step at a time, the cross-framework difference against the frameworks' own rounding floor, with
    the steps where a decision ties marked."""
    p = _float32_case(parity)
    if p is None:
        return False
    series = p["onestep"]["series"]
    steps = np.arange(1, len(p["trajectory"]) + 1)
    fig = Figure(figsize=(10, 9), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(steps, _positive(p["trajectory"]), marker="o", markersize=3, label="Keras vs torch (cross-framework)")
    if p.get("envelope"):
        top.plot(steps, _positive(p["envelope"]), marker="s", markersize=3, color="tab:gray",
                 label="torch vs torch, start nudged by 1 ulp (same-framework envelope)")
    top.axhline(OLD_BOUND, color="black", linestyle=":", linewidth=1, label=f"old fixed bound {OLD_BOUND:g}")
    top.set(yscale="log", ylabel="max |Δw| over tensors",
            title="Whole trajectories, each side training on its own: how far Keras and torch drift apart, "
                  "against how far\ntorch drifts from itself after a 1-ulp nudge of its start (rounding, amplified "
                  "by training)")
    one = steps[:len(series["cross"])]
    ties = np.asarray(series["margin"], dtype=float) < TIE
    for ax in (top, bottom):
        for s in one[ties]:
            ax.axvspan(s - 0.5, s + 0.5, color="tab:red", alpha=0.12, linewidth=0)
    bottom.plot(one, _positive(series["cross"]), marker="o", markersize=3, label="Keras vs torch, one step")
    bottom.plot(one, _positive(series["floor"]), color="tab:green", linestyle="--",
                label="rounding floor: torch's + Keras's own float32 error of the step")
    bottom.plot(one[ties], _positive(series["cross"])[ties], linestyle="none", marker="x", color="tab:red",
                markersize=7, label=f"a ReLU/MaxPool decision ties (margin < {TIE:.3g})")
    bottom.set(yscale="log", xlabel="training step", ylabel="max |Δ| / max |·| over tensors and slots",
               title="One step at a time from Keras's weights and optimizer state: exact means that in every tensor\n"
                     f"and optimizer slot the difference stays within the floor (+ {SLACK:g}) at every step; "
                     "at a tie both may jump")
    top.axvspan(math.nan, math.nan, color="tab:red", alpha=0.12,
                label="steps where a decision ties (from the bottom panel)")
    for ax in (top, bottom):  # legends under each panel: never over the data, whatever the case
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14 if ax is bottom else -0.03), ncol=2)
    top.tick_params(labelbottom=True)
    case = p["case"]
    label = OptimizerSpec(**case["optimizer"]).label
    fig.suptitle(f"float32, {case['model']} / {label} / {case['dataset']}, seed {case.get('seed')}: torch "
                 f"{case.get('recipe')} against Keras {case.get('keras_config')} (verdict: {p.get('verdict')})")
    with atomic_path(path) as tmp:  # never half a PNG under the real name
        fig.savefig(tmp, dpi=DPI)
    return True
