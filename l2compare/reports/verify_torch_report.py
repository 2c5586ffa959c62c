"""What ``verify --torch`` prints and writes: the verdict table and at most five note lines on the terminal (as
verify's own output), and the Markdown report with everything (the weight matching, the forward check, the
rules, every known mistake's candidate step against the user's).

Built from ``l2compare.porter.verify.user_runner.UserResult`` alone (plain fields); imports no framework."""
from __future__ import annotations

from pathlib import Path

from l2compare.reports import verify_report

TERMINAL_NOTES = verify_report.TERMINAL_NOTES


def headline(result, steps_text: str) -> str:
    return (f"{result.model!r}: your {result.torch_class} with {result.optimizer}, against Keras's "
            f"{result.keras_optimizer}: {steps_text}")


def notes(result) -> list[str]:
    line = diagnosis_line(result)
    return ([line] if line else []) + list(result.notes)


def terminal_lines(result) -> list[str]:
    """The table (or the forward verdict) and at most TERMINAL_NOTES notes, each one screen line."""
    if result.forward.verdict != "agrees":
        out = [f"forward pass: {result.forward.verdict} (max relative difference {result.forward.difference:.1e}, "
               "float64); training not compared"]
    else:
        out = [verify_report.text_table(result.records)]
    found = [n if len(n) <= 160 else n[:157] + "…" for n in notes(result)]
    if len(found) > TERMINAL_NOTES:
        found = found[:TERMINAL_NOTES - 1] + [f"… {len(found) - TERMINAL_NOTES + 1} more notes in the report"]
    return out + [f"note: {n}" for n in found]


def diagnosis_line(result) -> str | None:
    """The terminal's one line about which known mistake the step looks like."""
    d = result.diagnosis
    if d is None:
        return None
    if d["match"] is None:
        c = d["closest"]
        return (f"diagnosis (step {d['step']}): none of the known mistakes (max |Δ| {c['max']:.1e} of max |w| "
                f"from the closest, {c['short']}); the report lists each")
    if d["match"]["short"] == "Keras's own step":   # float64 agrees: the difference is float32's alone
        return (f"diagnosis (step {d['step']}): your float64 step is Keras's; the float32 difference is beyond both "
                "frameworks' rounding but none of the known mistakes")
    also = f" (the same step at this point: {', '.join(d['also'])})" if d["also"] else ""
    where = ""
    if d["match"]["short"].endswith("weight decay on tensors Keras does not regularize") and d.get("unregularized"):
        names = d["unregularized"]
        where = f" ({', '.join(names[:4])}{', …' if len(names) > 4 else ''}; --decay-on regularized if yours do not)"
    return f"diagnosis (step {d['step']}): your step is {d['match']['short']}{where}{also}"


def _escape(text) -> str:
    return str(text).replace("|", "\\|")


def markdown(result, *, model_file: str, torch_file: str) -> str:
    lines = [f"# verify --torch: `{result.torch_class}` ({torch_file}) against `{result.model}` ({model_file})", "",
             f"Your optimizer: `{result.optimizer}`. Keras's train step (`fit`'s): {result.keras_optimizer} with "
             "Keras's defaults. Exact: 0, not exact: exit code 1.", "", "## Weights", "",
             "| Keras weight | your tensor | shape (torch layout) |", "|---|---|---|"]
    for key, user_key in result.match.pairs.items():
        name, shape = result.match.keras_names.get(key, key), result.match.shapes.get(key, "")
        lines.append(f"| {_escape(name)} | {_escape(user_key)} | {shape} |")
    f = result.forward
    lines += ["", "## Forward pass (float64, inference mode, 8 samples)", "",
              f"Verdict: **{f.verdict}**; max |your output − Keras's| / max |Keras's| = {f.difference:.2e}."]
    if f.detail:
        lines.append(f.detail)
    if result.records:
        lines += ["", "## One step at a time from Keras's state", "", verify_report.markdown_table(result.records), ""]
        lines += [f"- {r['dtype']}: {r['rule']}" for r in result.records]
        for r in result.records:
            one = r.get("onestep") or {}
            if one:
                per_step = ", ".join(f"{v:.1e}" for v in one["per_step"])
                lines.append(f"- {r['dtype']} per step (max over tensors): {per_step}; first past rounding: "
                             f"{r['first_divergence'] or 'none'}")
    d = result.diagnosis
    if d:
        lines += ["", f"## Diagnosis (step {d['step']})", "",
                  "Each known mistake put into the generated port (exact by construction), the same step taken from "
                  f"the same state in float64, compared with your float64 step. Matches when {d['tolerance']}.", "",
                  "| candidate | max \\|yours − candidate\\| / max \\|w\\| | at | matches |", "|---|---|---|---|"]
        for row in d["rows"]:
            lines.append(f"| {_escape(row['candidate'])} | {row['max']:.2e} | {_escape(row['tensor'])} | "
                         f"{'yes' if row['matches'] else 'no'} |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes(result)]
    return "\n".join(lines) + "\n"


def write(result, path: Path, *, model_file: str, torch_file: str) -> Path:
    path.write_text(markdown(result, model_file=model_file, torch_file=torch_file))
    return path
