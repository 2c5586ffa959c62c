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
VERDICT_TEXT = {"exact": "the same computation, up to rounding", "close": "the same model, not the same arithmetic",
                "wrong": "a different computation"}


def _sci(value) -> str:
    if value is None:
        return "—"
    return f"{value:.1e}" if value == value else "nan"


def rows(records: list[dict]) -> list[dict[str, str]]:
    """One row per record: the table's columns as text (with the left-out tensors' difference, if any)."""
    left = any(r.get("left_out") for r in records)
    return [{"dtype": r["dtype"], "recipe": r["recipe"], "verdict": r["verdict"], "max |Δw|": _sci(r["max_dw"]),
             "worst tensor": f"{r['worst_tensor']} (step {r['worst_step']}/{r['steps']})" if r.get("worst_tensor")
             else "—",
             "torch's own envelope": _sci(r.get("envelope_max")),
             "loss |Δ|": _sci(r.get("loss_diff")),
             **({"left out: max |Δw|": _sci(r.get("left_out_max_dw"))} if left else {})}
            for r in records]


def text_table(records: list[dict]) -> str:
    """The verdict table for a terminal: aligned columns (tabulate's "simple" format, as pandas writes it)."""
    table = rows(records)
    if not table:
        return "(no records)"
    return pd.DataFrame(table).to_markdown(index=False, tablefmt="simple", disable_numparse=True)


def markdown_table(records: list[dict]) -> str:
    frame = pd.DataFrame(rows(records))
    escape = {c: c.replace("|", "\\|") for c in frame.columns}   # a "|" in a cell would split it
    return markdown_frame(frame.rename(columns=escape).replace({"\\|": "\\|"}, regex=True))


def markdown(records: list[dict], *, model_file: str | None = None) -> str:
    """The whole report: what was trained, the verdicts, what each recipe is, the rules, the notes."""
    if not records:
        raise ValueError("no verify records to report")
    first = records[0]
    source = f" from `{model_file}`" if model_file else ""
    data = "random data shaped like the model's input" if first["data"] == "random" else "the data given"
    rules = list(dict.fromkeys(r[key] for key in ("rule", "left_out_rule") for r in records if r.get(key)))
    notes = list(dict.fromkeys(n for r in records for n in r.get("notes", [])))
    findings = [f"- **{r['dtype']} {r['recipe']}**: {r['verdict']} ({VERDICT_TEXT.get(r['verdict'], '')}), "
                f"max |Δw| {_sci(r['max_dw'])} in `{r['worst_tensor']}` at step {r['worst_step']}"
                for r in records if r["verdict"] != "exact"]
    lines = [
        f"# verify: `{first['model']}`{source}",
        "",
        "The Keras model trained by Keras's own `fit`, and its PyTorch port (`l2compare port`) trained by each "
        "torch recipe, from the same weights on the same batches, compared tensor by tensor after every step.",
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
        "max |Δw|: the largest difference between Keras's and torch's weights and buffers over every step and "
        "tensor. torch's own envelope: the same difference between two torch runs whose starting weights differ by "
        "one ulp (what rounding alone does to a trajectory; the float32 verdict is measured against it).",
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
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines)


def write(records: list[dict], path: Path, *, model_file: str | None = None) -> Path:
    path = Path(path)
    path.write_text(markdown(records, model_file=model_file))
    return path


def showcase_markdown(showcase: list[dict]) -> str:
    """results/verify.md: each showcase cell's verdict table and notes (``l2compare.porter.verify.showcase``)."""
    parts = ["# `l2compare verify` on the corpus, one model per layer family",
             "<!-- generated by `make results` (l2compare/reports/verify_report.py) from results/verify.jsonl; do not edit -->"]
    for cell in showcase:
        records = cell["records"]
        rules = sorted({r["rule"] for r in records} | {r["left_out_rule"] for r in records if r.get("left_out_rule")})
        notes = sorted({n for r in records for n in r.get("notes", [])})
        parts.append(f"## `{cell['model']}` with {cell['optimizer']} ({cell['layers']})\n\n"
                     + markdown_table(records) + "\n\n" + "\n".join(f"- {x}" for x in rules + notes))
    return "\n\n".join(parts) + "\n"
