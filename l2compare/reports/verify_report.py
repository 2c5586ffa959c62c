"""The report of ``l2compare verify``: a verdict table (dtype × recipe) and a Markdown file.

Built from ``l2compare.porter.verify.runner``'s records alone (plain dicts, as they are written to JSON lines).
Imports no framework.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from l2compare.reports.tables import markdown as markdown_frame

RECIPE_TEXT = {
    "penalty": "loss = data + `l2_penalty(model)`, on the Keras-exact optimizer (`torch_impl.optim`)",
    "coupled": "`param_groups(model)`: each L2 as coupled weight decay 2λ on the Keras-exact optimizer; "
               "L1 and activity terms stay in the loss",
    "stock": "`torch.optim`'s own class (Adam, SGD, AdamW) at Keras's hyperparameters (ε = 1e-7), "
             "loss = data + `l2_penalty(model)`",
}
VERDICT_TEXT = {"exact": "one step from Keras's state lands within both frameworks' own rounding, at every step",
                "close": "one step from Keras's state differs by more than rounding, the median step by at most 1e-4 "
                         "of max |w|",
                "wrong": "one step from Keras's state differs by more than 1e-4 of max |w| (median step): a different "
                         "computation"}
TERMINAL_NOTES = 5   # the terminal shows at most this many note lines; the report has them all


def _sci(value) -> str:
    if value is None:
        return "—"
    return f"{value:.1e}" if value == value else "nan"


def rows(records: list[dict]) -> list[dict[str, str]]:
    """One row per record: the verdict, what decided it (the one-step difference nearest its bound, and
    that bound), and the free-running trajectory beside torch's own envelope (information)."""
    out = []
    for r in records:
        one = r.get("onestep") or {}
        out.append({
            "dtype": r["dtype"], "recipe": r["recipe"], "verdict": r["verdict"],
            "one step: |Δ| / max |w|": _sci(one.get("at_worst")), "rounding allows": _sci(one.get("allowed_at_worst")),
            "at": f"{one['worst_tensor']} (step {one['worst_step']}/{r['steps']})" if one else "—",
            "trained freely: max |Δw|": _sci(r.get("max_dw")) if _leads(r) else "—",
            "torch's own envelope": _sci(r.get("envelope_max")) if _leads(r) else "—",
        })
    return out


def _leads(r: dict) -> bool:
    """The record whose recipe was also trained freely (the dtype's trajectory and envelope)."""
    return r.get("trajectory_recipe", r["recipe"]) == r["recipe"]


def notes(records: list[dict]) -> list[str]:
    """Every note of the run, once each; the left-out tensors as one line each per reason kind."""
    found = list(dict.fromkeys(n for r in records for n in r.get("notes", [])))
    left = list(dict.fromkeys(k for r in records for k in r.get("left_out", [])))
    if left:
        found.append(f"{len(left)} tensors left out of the verdict, their values driven by rounding "
                     f"({', '.join(left[:3])}{', …' if len(left) > 3 else ''}): each with its reason in the report")
    return found


def terminal_notes(records: list[dict]) -> list[str]:
    """At most TERMINAL_NOTES lines, each cut to one screen line."""
    found = [n if len(n) <= 160 else n[:157] + "…" for n in notes(records)]
    if len(found) > TERMINAL_NOTES:
        found = found[:TERMINAL_NOTES - 1] + [f"… {len(found) - TERMINAL_NOTES + 1} more notes in the report"]
    return found


def text_table(records: list[dict]) -> str:
    """The verdict table for a terminal: aligned columns (tabulate's "simple" format, as pandas writes it)."""
    table = rows(records)
    if not table:
        return "(no records)"
    return pd.DataFrame(table).to_markdown(index=False, tablefmt="simple", disable_numparse=True)


def text_plot(records: list[dict]) -> str:
    """``verify --plot``: per dtype and step, each recipe's free-running |Δw| beside torch's own envelope, and
    its one-step |Δ| beside what rounding allows (the numbers the report's plot draws)."""
    parts = []
    for dtype in dict.fromkeys(r["dtype"] for r in records):
        mine = [r for r in records if r["dtype"] == dtype]
        table = []
        for step in range(mine[0]["steps"]):
            row = {"step": str(step + 1), "envelope": _sci(mine[0]["envelope_per_step"][step])}
            for r in mine:
                if _leads(r):
                    row[f"{r['recipe']} trained freely |Δw|"] = _sci(r["max_dw_per_step"][step])
            for r in mine:
                one = r.get("onestep") or {}
                if one:
                    row[f"{r['recipe']} one step"] = _sci(one["per_step"][step])
            if mine[0].get("onestep"):
                row["rounding allows"] = _sci(mine[0]["onestep"]["allowed_per_step"][step])
            table.append(row)
        parts.append(f"{dtype}:\n" + pd.DataFrame(table).to_markdown(index=False, tablefmt="simple",
                                                                     disable_numparse=True))
    return "\n\n".join(parts)


def markdown_table(records: list[dict]) -> str:
    frame = pd.DataFrame(rows(records))
    escape = {c: c.replace("|", "\\|") for c in frame.columns}   # a "|" in a cell would split it
    return markdown_frame(frame.rename(columns=escape).replace({"\\|": "\\|"}, regex=True))


def markdown(records: list[dict], *, model_file: str | None = None, plot: str | None = None) -> str:
    """The whole report: what was trained, the verdicts, what each recipe is, the rules, the notes."""
    if not records:
        raise ValueError("no verify records to report")
    first = records[0]
    source = f" from `{model_file}`" if model_file else ""
    data = "random data shaped like the model's input" if first["data"] == "random" else "the data given"
    rules = list(dict.fromkeys(r[key] for key in ("rule", "left_out_rule") for r in records if r.get(key)))
    all_notes = list(dict.fromkeys(n for r in records for n in r.get("notes", [])))
    findings = [_finding(r) for r in records if r["verdict"] != "exact"]
    reasons = {k: why for r in records for k, why in (r.get("left_out_reasons") or {}).items()}
    lines = [
        f"# verify: `{first['model']}`{source}",
        "",
        "The Keras model trained by Keras's own train step (the function `fit` runs), and its PyTorch port "
        "(`l2compare port`) with each torch recipe on the same batches: before every step torch is given Keras's "
        "state and takes one step, and each tensor and optimizer slot is compared with Keras's step.",
        "",
        f"- Keras {first['keras_version']} ({first['backend']} backend), torch {first['torch_version']}",
        f"- optimizer `{first['optimizer']}` (Keras's defaults), {first['steps']} steps of batch "
        f"{first['batch_size']}, {data}, loss `{first['loss']}`, seed {first['seed']}",
        f"- layers: {', '.join(first['layers'])}; regularization terms carried: {first['regularized']}",
        "",
        "## Verdicts",
        "",
        markdown_table(records),
        "",
        "one step: before every step torch is given Keras's weights, buffers and optimizer state and takes one step "
        "on the same batch; the column shows the difference (relative to the tensor's max |·|) nearest what "
        "rounding allows there, and that allowance (both frameworks' own rounding of the step, measured in the same "
        "run). trained freely: the first recipe and Keras each trained for every step from the same start, information "
        "only; torch's own envelope: two torch runs one ulp apart at the start. A deep net's trajectory parts by "
        "rounding (chaos), whatever the port.",
        "",
        *([f"![|Δw| per step against the envelope]({plot})", ""] if plot else []),
        "",
        "## Recipes",
        "",
        *(f"- `{name}`: {text}" for name, text in RECIPE_TEXT.items() if any(r["recipe"] == name for r in records)),
        "",
        "## How the verdict is decided",
        "",
        *(f"- {rule}" for rule in rules),
        "",
    ]
    if findings:
        lines += ["## Not exact", "", *findings, ""]
    if all_notes:
        lines += ["## Notes", "", *(f"- {n}" for n in all_notes), ""]
    if reasons:
        lines += ["## Left out of the verdict", "", *(f"- `{k}`: {why}" for k, why in reasons.items()), ""]
    return "\n".join(lines)


def _finding(r: dict) -> str:
    one = r.get("onestep") or {}
    first = r.get("first_divergence")
    text = (f"- **{r['dtype']} {r['recipe']}**: {r['verdict']} ({VERDICT_TEXT.get(r['verdict'], '')}); one step: "
            f"{_sci(one.get('at_worst'))} of max |·| in `{one.get('worst_tensor')}` at step {one.get('worst_step')}, "
            f"rounding allows {_sci(one.get('allowed_at_worst'))}")
    if first:
        text += f"; first past it at step {first['step']}: {', '.join(f'`{t}`' for t in first['tensors'][:6])}"
    return text


def write(records: list[dict], path: Path, *, model_file: str | None = None) -> Path:
    """The Markdown report, and its plot beside it (``<report>.png``)."""
    from l2compare.reports.verify_plot import plot

    path = Path(path)
    png = plot(records, path.with_suffix(".png"))
    path.write_text(markdown(records, model_file=model_file, plot=png.name))
    return path


def timing_markdown(timings: list[dict]) -> str:
    """verify.md's timing rows: ``l2compare verify`` on a keras.applications backbone, one record per run
    (``python -m l2compare.porter.verify.timing``)."""
    import pandas as pd

    rows = [{"model": t["application"], "input": t["input"], "parameters": f"{t['parameters'] / 1e6:.1f} M",
             "batch": t["batch_size"], "steps": t["steps"], "optimizer": t["optimizer"], "threads": t["threads"],
             "wall": f"{t['wall_s'] / 60:.1f} min", "peak memory": f"{t['peak_gb']:.1f} GB",
             "verdicts": ", ".join(f"{k}: {v}" for k, v in t["verdicts"].items()) or f"exit {t['exit']}",
             "machine": f"{t['machine']['cpu']}, {t['machine']['cores']} cores"} for t in timings]
    return ("## Timing on real backbones\n\nThe whole command as a user runs it (imports, traces, every dtype and "
            "recipe), in a child process: wall time and its peak resident memory. Written by `python -m "
            "l2compare.porter.verify.timing results/verify_timing.json ResNet50 --side 224 --steps 3` (not part of "
            "`make results`: minutes and gigabytes).\n\n" + pd.DataFrame(rows).to_markdown(index=False))


def showcase_markdown(showcase: list[dict], timings: list[dict] = ()) -> str:
    """results/verify.md: each showcase cell's verdict table and notes (``l2compare.porter.verify.showcase``), and
    the timing rows (``timing_markdown``) where there are any."""
    parts = ["# `l2compare verify` on the corpus, one model per layer family",
             "<!-- generated by `make results` (l2compare/reports/verify_report.py) from results/verify.jsonl; do not edit -->"]
    for cell in showcase:
        records = cell["records"]
        rules = sorted({r["rule"] for r in records} | {r["left_out_rule"] for r in records if r.get("left_out_rule")})
        notes = sorted({n for r in records for n in r.get("notes", [])})
        parts.append(f"## `{cell['model']}` with {cell['optimizer']} ({cell['layers']})\n\n"
                     + markdown_table(records) + "\n\n" + "\n".join(f"- {x}" for x in rules + notes))
    if timings:
        parts.append(timing_markdown(list(timings)))
    return "\n\n".join(parts) + "\n"
