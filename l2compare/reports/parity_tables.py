"""The parity verdict table (parity.md/.csv) and every float32 cell in detail.

Built from parity records only (``results/parity.jsonl``, written by ``l2compare.parity.grid``). The float32
agreement study over seeds, data sets, models and optimizers is ``l2compare.reports.float32_study``.
Imports no framework.
"""
from __future__ import annotations

import pandas as pd

from l2compare.core import columns
from l2compare.parity.onestep import TIE
from l2compare.core.verdicts import CLOSE, EXACT_FLOAT64
from l2compare.parity.runner import CLOSE_STEP, OUTLIER, SLACK
from l2compare.parity.grid import COLUMNS as PARITY_COLUMNS
from l2compare.reports.tables import distinct, markdown, sci

EXPLANATIONS = ("tie", "floor", "unexplained")  # l2compare.parity.onestep.OneStep.explain
PARITY_FIELDS = ["keras_column", "row", "column", "dtype", "extra", "study", "verdict", "score", "steps",
                 "worst", "worst_tensor", "worst_step", "loss_diff",
                 "onestep_median", "onestep_max", "floor_median", "excess_over_floor", "tie_steps",
                 *(f"outliers_{e}" for e in EXPLANATIONS), "envelope_max"]
_PARITY_COUNTS = ["steps", "worst_step", "tie_steps", *(f"outliers_{e}" for e in EXPLANATIONS)]


def keras_column(p: dict) -> str:
    """The framework column of a record's Keras side (records from before the backends: TensorFlow's)."""
    return p.get("keras_column") or columns.PARITY_SOURCE


def split_by_backend(parity: list[dict]) -> tuple[list[dict], dict[str, list[dict]]]:
    """(the records of Keras on TensorFlow, {other Keras column: its records}), registry order."""
    reference = [p for p in parity if keras_column(p) == columns.PARITY_SOURCE]
    others: dict[str, list[dict]] = {}
    for p in parity:
        if keras_column(p) != columns.PARITY_SOURCE:
            others.setdefault(keras_column(p), []).append(p)
    order = {name: i for i, name in enumerate(columns.names())}
    return reference, dict(sorted(others.items(), key=lambda item: order.get(item[0], len(order))))


def _score(p: dict):
    """The number a verdict follows from; records written before it existed: their worst |Δw|."""
    return p["score"] if p.get("score") is not None else p.get("worst")


def _onestep_fields(p: dict) -> dict:
    """A record's float32 one-step and envelope numbers (None where the record has none)."""
    one, envelope = p.get("onestep"), p.get("envelope")
    out = {"onestep_median": None, "onestep_max": None, "floor_median": None, "excess_over_floor": None,
           "tie_steps": None, **{f"outliers_{e}": None for e in EXPLANATIONS},
           "envelope_max": max(envelope) if envelope else None}
    if one:
        why = list((one.get("outliers") or {}).values())
        out.update(onestep_median=one.get("median"), onestep_max=one.get("max"), floor_median=one.get("floor_median"),
                   # the record's max_excess is max(cross − floor − SLACK); shown as max(cross − floor)
                   excess_over_floor=None if one.get("max_excess") is None else one["max_excess"] + SLACK,
                   tie_steps=one.get("ties"), **{f"outliers_{e}": why.count(e) for e in EXPLANATIONS})
    return out


def parity_frame(parity: list[dict]) -> pd.DataFrame:
    """The CSV's long form, rows in record order (the verdict table's row order): one row per record
    (grid, other mistakes, float32 study), with its float32 one-step, trajectory and envelope numbers."""
    rows = [{**{f: p.get(f) for f in PARITY_FIELDS}, "keras_column": keras_column(p), "extra": bool(p.get("extra")),
             "study": bool(p.get("study")), "score": _score(p), **_onestep_fields(p)} for p in parity]
    df = pd.DataFrame(rows, columns=PARITY_FIELDS)
    numbers = ["score", "worst", "loss_diff", "onestep_median", "onestep_max", "floor_median", "excess_over_floor",
               "envelope_max"]
    for c in numbers:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df.astype({c: "Int64" for c in _PARITY_COUNTS})


def parity_pivot(long: pd.DataFrame) -> pd.DataFrame:
    """Rows = Keras config / optimizer, columns = torch recipe; cell "float32 / float64" verdicts."""
    rows = list(dict.fromkeys(long["row"]))
    present = set(long["column"])
    columns = [c for c in PARITY_COLUMNS if c in present] + [c for c in dict.fromkeys(long["column"])
                                                             if c not in PARITY_COLUMNS]
    cells = {(r.row, r.column, r.dtype): r for r in long.itertuples()}
    table = [{"Keras config / optimizer": row,
              **{c: " / ".join(_verdict(cells.get((row, c, d))) for d in ("float32", "float64"))
                 for c in columns}} for row in rows]
    return pd.DataFrame(table)


def _verdict(cell) -> str:
    if cell is None:
        return "—"
    return cell.verdict if pd.isna(cell.score) else f"{cell.verdict} {cell.score:.1e}"


def _excess(value) -> str:
    """cross − floor: "≤ 0" when the floor explains every step (at equality it is 0 up to ~1e-23, rounding
    of the relative differences; exact allows up to SLACK)."""
    if value is None or pd.isna(value):
        return "—"
    return f"≤ {SLACK:g}" if value <= SLACK else f"{value:.1e}"


def parity_markdown(parity: list[dict]) -> str:
    """The grid with Keras on TensorFlow (and the other mistakes, and its float32 cells in detail),
    then the grid once more per other Keras backend."""
    reference, backends = split_by_backend(parity)
    text = _reference_markdown(reference)
    for name, records in backends.items():
        text += _backend_markdown(name, records)
    return text


def _backend_markdown(name: str, parity: list[dict]) -> str:
    column = columns.get(name) if name in columns.names() else None
    backend = {"jax": "JAX", "tensorflow": "TensorFlow"}.get(column.backend, column.backend) if column else None
    title = f"{backend} (`{name}`)" if column else f"`{name}`"
    detail = parity_detail(parity)
    versions = distinct(f"{k} {v}" for p in parity for k, v in sorted((p.get("versions") or {}).items())
                        if k not in ("numpy", "tensorflow"))
    text = (f"\n## The grid with Keras on {title}\n\nThe same cells, verdicts and tolerances as above, with Keras's side "
            f"run on this backend from the initial weights Keras on TensorFlow draws (so only the arithmetic differs); "
            f"{versions}.\n\n{markdown(parity_pivot(parity_frame(parity)))}\n")
    if detail is not None:
        text += f"\n### float32 cells in detail ({name})\n\n{markdown(detail)}\n"
    return text


def _reference_markdown(parity: list[dict]) -> str:
    grid = [p for p in parity if not p.get("extra") and not p.get("study")]
    extras = [p for p in parity if p.get("extra") and not p.get("study")]
    text = f"{_parity_legend(grid)}\n\n{markdown(parity_pivot(parity_frame(grid)))}\n"
    if extras:
        text += ("\n## Other mistakes (same setup)\n\n`lambda_not_2lambda`: torch `weight_decay=λ` (not 2λ) on the "
                 "right tensors. `no_flatten_permutation`: the CNN ported with torch's (C, H, W) flatten order.\n\n"
                 f"{markdown(parity_pivot(parity_frame(extras)))}\n")
    detail = parity_detail(grid + extras)
    if detail is not None:
        text += f"\n## float32 cells in detail\n\n{_detail_legend()}\n\n{markdown(detail)}\n"
    return text


def parity_detail(parity: list[dict]) -> pd.DataFrame | None:
    """One row per float32 cell: the one-step result, the trajectory and the 1-ulp envelope.
    None when no float32 record carries one-step data (records older than the one-step verdict)."""
    f32 = parity_frame([p for p in parity if p.get("dtype") == "float32"])
    if f32["onestep_median"].isna().all():
        return None
    rows = []
    for r in f32.itertuples():
        ties = "—" if pd.isna(r.tie_steps) else f"{r.tie_steps}/{r.steps}"
        outliers = ("—" if pd.isna(r.outliers_tie)
                    else " / ".join(str(getattr(r, f"outliers_{e}")) for e in EXPLANATIONS))
        rows.append({"Keras config / optimizer": r.row, "torch recipe": r.column, "verdict": r.verdict,
                     "one-step median": sci(r.onestep_median), "one-step max": sci(r.onestep_max),
                     "max excess over the floor": _excess(r.excess_over_floor), "steps with a tie": ties,
                     "outlier steps: " + " / ".join(EXPLANATIONS): outliers,
                     "trajectory max \\|Δw\\|": sci(r.worst), "1-ulp envelope max": sci(r.envelope_max)})
    return pd.DataFrame(rows)


def _detail_legend() -> str:
    return "\n".join([
        "Every float32 cell carries three results. The verdict follows from the first.",
        "",
        "- **one-step median / max**: the difference of torch's single step from Keras's, started each time from "
        "Keras's weights and optimizer state, max over tensors and optimizer slots (momentum, velocity) of "
        "max |Δ| / max |·|; median and max over steps.",
        "- **max excess over the floor**: the largest cross-framework difference minus the rounding floor (torch's "
        "own float32-vs-float64 error of that step + Keras's), over steps and tensors; "
        f"exact needs ≤ {SLACK:g} everywhere, shown as such.",
        f"- **steps with a tie**: steps where a ReLU input or two MaxPool candidates tie (float64 margin < {TIE:.3g} "
        "of the terms they are computed from), so float32 rounding can decide either way.",
        f"- **outlier steps**: steps whose one-step difference exceeds {OUTLIER:g} of max |w|, by explanation: "
        "`tie` (a decision of the step ties), `floor` (no tie, but the frameworks' own float32 error of the step is "
        "as large, e.g. Adam's first steps), `unexplained` (what a mistake looks like).",
        "- **trajectory max |Δw|**: both frameworks trained through all steps on their own; max over steps and "
        "tensors (absolute). **1-ulp envelope max**: the same for torch against torch started from initial "
        "weights nudged by one unit in the last place — how far float32 training amplifies the smallest "
        "difference. A trajectory drift of the envelope's size is rounding, not the recipe.",
    ])


def _parity_legend(parity: list[dict]) -> str:
    case = lambda f: distinct(p.get("case", {}).get(f) for p in parity)  # noqa: E731
    # ε matters only where the row's optimizer is Adam-family (SGD rows carry an unused default)
    eps = {d: distinct(p["case"].get("torch_epsilon") for p in parity
                        if p.get("column") == "stock_torch" and p.get("dtype") == d
                        and p["case"].get("optimizer", {}).get("name") in ("adam", "adamw"))
           for d in ("float32", "float64")}
    return "\n".join([
        "Each cell: the float32 verdict and the number it follows from / the float64 verdict and its number. "
        "Both frameworks start from Keras's initial weights and see the same batches, "
        f"{distinct(p.get('steps') for p in parity)} training steps.",
        "",
        "- **float64: the trajectory.** Both train through every step on their own; the number is max |Δw| over "
        f"all steps and tensors. **exact** ≤ {EXACT_FLOAT64:g} (the same computation up to float64 rounding), "
        f"**close** ≤ {CLOSE:g}, **wrong** above.",
        "- **float32: one step at a time.** Before every step, torch is given Keras's weights and optimizer state "
        "after the previous step and takes one step on the same batch; per tensor, the difference is "
        "max |Δw| / max |w|. **exact**: at every step and in every tensor, the cross-framework difference is at "
        "most torch's own float32 error of that step (its float32 step against the same step in float64) + "
        f"Keras's own float32 error of that step + {SLACK:g}. By the triangle inequality this holds on every "
        "machine when the two are the same computation. Otherwise **close** when the median step differs by at "
        f"most {CLOSE_STEP:g} of max |w|, **wrong** above. The number is that median: the one-step difference "
        "(max over tensors and optimizer slots, of max |·|), median over steps.",
        "- Why not the float32 trajectory: it agrees only until a ReLU input or two MaxPool candidates tie within "
        "rounding; each framework then rounds to its own side, and training amplifies the difference, differently "
        "on every CPU. It is kept below, beside torch's own 1-ulp envelope.",
        f"- Data: model `{case('model')}`, data set `{case('dataset')}`, {case('n_samples')} samples, "
        f"batch {case('batch_size')}, seed {case('seed')}.",
        "- `stock_torch`: the row's exact recipe (penalty for `l2`, decoupled for `wd`) on torch.optim's own "
        "classes at Keras's hyperparameters, with the row's Keras ε "
        f"(ε = {eps['float32']} in float32, {eps['float64']} in float64).",
        "- Under `wd` the Keras model has no layer regularizers, so penalty/coupled carry no λ: those cells "
        "measure the cost of dropping the decay (with AdamW, torch's AdamW still decays all tensors).",
    ])
