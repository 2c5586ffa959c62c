"""``results/PORTING.md``: the porting reference, generated from the records.

Every number comes from ``parity.jsonl`` (step-by-step parity) or ``runs.jsonl``
(native-mode runs: recipes and article experiments); the code snippets are the
recipes that the parity tests prove (``porting_snippets``). Each claim names the test in
``comparisons/`` that fails if the claim becomes false.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from l2compare.engine.experiments import ARTICLE_LAMBDA
from l2compare.engine.files import write_atomic
from l2compare.core.verdicts import CLOSE, EXACT_FLOAT64
from l2compare.parity.runner import CLOSE_STEP, SLACK
from l2compare.reports import float32_study
from l2compare.reports.frames import runs_frame
from l2compare.reports.porting import applications as porting_applications, backends as porting_backends
from l2compare.reports.porting import families as porting_families
from l2compare.reports.porting.snippets import CODE, PROOF
from l2compare.reports.stats import summarize


def _cell(parity: pd.DataFrame, row: str, column: str, dtype: str) -> str:
    hit = parity[(parity["row"] == row) & (parity["column"] == column) & (parity["dtype"] == dtype)]
    if hit.empty:
        return "—"
    r = hit.iloc[0]
    score = r.get("score")
    if score is None or pd.isna(score):  # records written before the score existed
        score = r["worst"]
    return f"{r['verdict']} ({score:.1e})"


def _cells(parity, row, column) -> str:
    return " / ".join(_cell(parity, row, column, d) for d in ("float32", "float64"))


def _shift(runs: pd.DataFrame, model: str, optimizer: str, recipe: str) -> str:
    """Native-mode shift of a recipe against the exact torch recipe (`penalty`), paired by seed:
    same torch initializers and stock optimizer, so only the regularization differs."""
    mine = runs[(runs["framework"] == "torch") & (runs["model"] == model) & (runs["optimizer"] == optimizer)
                & (runs["l2"] == ARTICLE_LAMBDA)]
    ref = mine[mine["regularization"] == "penalty"].set_index("seed")
    other = mine[mine["regularization"] == recipe].set_index("seed")
    seeds = ref.index.intersection(other.index)
    if recipe == "penalty" or seeds.empty:
        return "—"
    ratio = summarize((other.loc[seeds, "regularized_norm"] / ref.loc[seeds, "regularized_norm"]).tolist())
    delta = summarize((other.loc[seeds, "test_accuracy"] - ref.loc[seeds, "test_accuracy"]).tolist())
    return (f"norm ×{ratio['mean']:.2f} [{ratio['ci95_low']:.2f}, {ratio['ci95_high']:.2f}], "
            f"test acc {delta['mean']:+.3f} [{delta['ci95_low']:+.3f}, {delta['ci95_high']:+.3f}] (n={ratio['n']})")


def _mistakes(parity: pd.DataFrame, runs: pd.DataFrame, row_prefix: str, steps) -> str:
    lines = ["| mistake | float32: median one-step difference (of max \\|w\\|) / float64: max \\|Δw\\| over "
             f"{steps} steps | native shift vs the exact torch recipe, mlp, SGD | same, Adam | proof |",
             "|---|---|---|---|---|"]
    entries = [
        ("`naive_wd`: `weight_decay=λ` on all parameters", "naive_wd", "adam", "naive_wd"),
        ("`naive_adamw`: `AdamW(weight_decay=λ)` for l2 + Adam", "naive_adamw", "adam", "naive_adamw"),
        ("`decoupled` 2λ on the right tensors", "decoupled", "adam", "decoupled"),
    ]
    for label, column, opt, proof in entries:
        lines.append(f"| {label} | {_cells(parity, f'{row_prefix} / {opt}', column)} | "
                     f"{_shift(runs, 'mlp', 'sgd', column)} | {_shift(runs, 'mlp', 'adam', column)} | {PROOF[proof]} |")
    lines.append(f"| λ instead of 2λ in torch `weight_decay` | "
                 f"{_cells(parity, 'l2 on kernels / adam (mlp)', 'lambda_not_2lambda')} | — | — | {PROOF['lambda']} |")
    lines.append(f"| stock `torch.optim.Adam` (constant ε = Keras's) | "
                 f"{_cells(parity, f'{row_prefix} / adam', 'stock_torch')} | — | — | {PROOF['eps']} |")
    return "\n".join(lines)


def _agreement(parity: pd.DataFrame, row_prefix: str, columns: list[str], optimizers: list[str]) -> str:
    lines = ["| optimizer | " + " | ".join(f"`{c}` (float32 / float64)" for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for opt in optimizers:
        lines.append(f"| {opt} | " + " | ".join(_cells(parity, f"{row_prefix} / {opt}", c) for c in columns) + " |")
    return "\n".join(lines)


def _initial_norm(records: list[dict], framework: str) -> dict:
    """Initial ‖hidden/kernel‖ of the mlp, one value per seed (initial weights depend on the seed only)."""
    by_seed = {r.get("seed"): r["initial_norms"]["hidden/kernel"] for r in records
               if r.get("framework") == framework and r.get("initial_norms")
               and r["spec"]["model"] == "mlp" and r["spec"]["mode"] == "native"}
    return summarize(list(by_seed.values()))


def _initializers(records: list[dict]) -> str:
    rows = []
    for fw in ("keras", "torch"):
        recs = [r for r in records if r.get("framework") == fw and r.get("initial_norms") and r.get("defaults")
                and r["spec"]["model"] == "mlp" and r["spec"]["mode"] == "native"]
        if not recs:
            continue
        init = _initial_norm(records, fw)
        rows.append(f"| {fw} | {recs[0]['defaults']['kernel_initializer']} | {recs[0]['defaults']['bias_initializer']} "
                    f"| {init['mean']:.3f} ± {init['std']:.3f} (n={init['n']}) |")
    return "\n".join(["| framework | kernel initializer | bias initializer | initial ‖hidden/kernel‖ (mlp) |",
                      "|---|---|---|---|", *rows])


def _defaults(records: list[dict]) -> str:
    by_fw = {r.get("framework"): r["defaults"] for r in records if r.get("defaults")}
    if len(by_fw) < 2:
        return ""
    names = {"sgd_lr": "SGD learning rate", "adam_lr": "Adam learning rate", "adam_epsilon": "Adam ε",
             "adamw_weight_decay": "AdamW weight decay"}
    lines = ["| hyperparameter | Keras | torch |", "|---|---|---|"]
    lines += [f"| {label} | {by_fw['keras'][k]:g} | {by_fw['torch'][k]:g} |" for k, label in names.items()]
    return "\n".join(lines)


def _article_norms(runs: pd.DataFrame) -> str:
    sel = runs[(runs["model"] == "mlp") & (runs["l2"] == 0.01) & (runs["optimizer"] == "adam")
               & (((runs["framework"] == "keras") & (runs["regularization"] == "l2"))
                  | ((runs["framework"] == "torch") & (runs["regularization"] == "penalty")))]
    parts = []
    for fw, group in sel.groupby("framework"):
        s = summarize(group["regularized_norm"].tolist())
        a = summarize(group["test_accuracy"].tolist())
        parts.append(f"{fw}: ‖w‖ {s['mean']:.2f} ± {s['std']:.2f}, test accuracy {a['mean']:.3f} ± {a['std']:.3f}")
    return "; ".join(parts)


def _cnn_ties(s: dict) -> str:
    cnn = s["tie_fraction_cnn"]
    return "" if cnn != cnn or cnn == s["tie_fraction"] else f" ({cnn:.0%} of the CNN's)"


def _float32(parity: list[dict]) -> str:
    """What "exact" means in float32 and why, with the float32 agreement study's numbers."""
    text = f"""### What "exact" means in float32

Whole float32 trajectories prove nothing either way: they agree only until a ReLU input or two MaxPool candidates
tie within rounding; each framework then rounds its own way and training amplifies the difference, differently on
every CPU, just as torch's own trajectory parts from a start nudged by one ulp. So float32 is judged one step at a
time: from Keras's weights and optimizer state before each step, torch's step must land within the two frameworks'
own float32 rounding of that step (each against the same step in float64) + {SLACK:g}. By the triangle inequality
that holds on every machine for the same computation, and λ off by 1% breaks it ({PROOF['float32_lambda']}).
Proofs: {PROOF['float32']}; steps that differ more than usual are decision ties or steps whose own rounding is as
large ({PROOF['float32_outliers']}); Keras resumes bit for bit from its recorded state ({PROOF['float32_resume']})."""
    s = float32_study.float32_summary(parity)
    if s is None:
        return text + "\n"
    return text + f"""

Over {s['cases']} cases ({s['extent']}; torch `penalty` against Keras `l2`), the float32 trajectory stays under the
old fixed bound {float32_study.OLD_BOUND:g} in {s['under_old_bound']} (largest drift {s['trajectory_max']:.1e}; torch's own 1-ulp
envelope reaches {s['envelope_max']:.1e}). One step at a time, {s['exact']} of {s['cases']} are exact; one-step medians are
{s['median_low']:.1e}–{s['median_high']:.1e} of max |w|, and {s['tie_fraction']:.0%} of steps have a decision tie{_cnn_ties(s)}. Per case:
[float32.md](float32.md); one CNN case step by step: [float32_cnn.png](float32_cnn.png).
"""


def write(out: Path, runs: list[dict], parity: list[dict], showcase: list[dict] = (),
          backends: dict[str, list[dict]] | None = None) -> Path | None:
    """PORTING.md from the runs, the parity records of Keras on TensorFlow (``parity``), the porter's
    showcase (§9) and the parity records of Keras on each other backend (``backends``, the last §)."""
    if not parity:
        return None
    p = pd.DataFrame([r for r in parity if not r.get("study")])
    steps = parity[0].get("steps")
    native = [r for r in runs if r["spec"]["mode"] == "native"]
    frame = runs_frame(native)
    v = {"keras": "?", "torch": "?", **(parity[0].get("versions") or {})}
    epochs = ", ".join(map(str, sorted({r["spec"]["epochs"] for r in native})))
    keras_init, torch_init = _initial_norm(runs, "keras"), _initial_norm(runs, "torch")
    init_ratio = keras_init["mean"] / torch_init["mean"] if torch_init["n"] else float("nan")
    text = f"""# Porting Keras L2 regularization to PyTorch — measured

<!-- generated by `make results` (l2compare/reports/porting/guide.py) from results/parity.jsonl, results/runs.jsonl and results/verify.jsonl; do not edit -->

Keras {v['keras']} (TensorFlow backend) and torch {v['torch']}, commit `{parity[0].get('commit')}`.
Both frameworks start from identical initial weights and see identical batches ({steps} steps of the article's random
data, 100 samples, batch 32, so every epoch ends in a partial batch). In float64, **exact** means max |Δw| ≤
{EXACT_FLOAT64:g} over every tensor after each step, **close** ≤ {CLOSE:g}, **wrong** above. In float32, **exact** means
every single step agrees within rounding: started from Keras's weights and optimizer state, torch's step differs from
Keras's by no more than the two frameworks' own float32 rounding of that step (+ {SLACK:g}); otherwise **close** when the
median step differs by ≤ {CLOSE_STEP:g} of max |w|, **wrong** above (why, in §8). Cells read "float32 / float64" with the
number each verdict follows from: the median one-step difference (of max |w|) / the trajectory's max |Δw|; the full
grid, with every float32 cell in detail, is in [parity.md](parity.md). "Native shift" compares runs on `digits`
({epochs} epochs, seeds paired) where each framework uses its own initializers and stock optimizers: it is what a
mistake changes in the weight norm and accuracy a user sees, against the exact torch recipe (mean [95% CI]).

## 1. `kernel_regularizer=l2(λ)`

{CODE['l2']}

Agreement with Keras (proof: {PROOF['l2']}; with momentum, stock torch SGD is exact too: {PROOF['momentum']}):

{_agreement(p, 'l2 on kernels', ['penalty', 'coupled', 'stock_torch'], ['sgd', 'momentum', 'adam'])}

`stock_torch` is the penalty on `torch.optim`'s own classes at Keras's hyperparameters. With plain SGD,
decoupled decay of 2λ is the same computation too ({_cells(p, 'l2 on kernels / sgd', 'decoupled')}; {PROOF['decoupled_sgd']}),
but not with momentum or Adam.

Common mistakes and what they cost:

{_mistakes(p, frame, 'l2 on kernels', steps)}

## 2. `bias_regularizer=l2(λ)`

{CODE['bias']}

Agreement (model `mlp_bias`; proof: {PROOF['l2']}):

{_agreement(p, 'l2 on kernels+biases', ['penalty', 'coupled', 'naive_wd'], ['sgd', 'momentum', 'adam'])}

## 3. Optimizer `weight_decay=` (SGD, momentum, Adam)

{CODE['wd']}

Agreement (proof: {PROOF['wd']}):

{_agreement(p, 'weight_decay', ['decoupled', 'stock_torch', 'coupled'], ['sgd', 'momentum', 'adam'])}

`stock_torch` here is torch's own decoupled form (SGD: decay by hand, then `torch.optim.SGD`; Adam: `torch.optim.AdamW`).
`coupled` measures porting `weight_decay` as if it were an L2 penalty: under `wd` the Keras model has no layer
regularizer, so it carries no λ and equals dropping the decay.

## 4. AdamW, and excluding biases

{CODE['adamw']}

Agreement (proof: {PROOF['wd']}):

{_agreement(p, 'weight_decay', ['decoupled', 'stock_torch'], ['adamw', 'adamw (biases excluded)'])}

Exclude biases in Keras with `var_list`, not `var_names=["bias"]`: on the TensorFlow backend the name pattern is
matched against the full variable name (`mlp_bias/hidden/kernel:0`), so in a model or layer whose name contains
"bias" the kernels are silently excluded too ({PROOF['exclude']}).

## 5. Initializers

{_initializers(runs)}

Keras's glorot_uniform first kernel starts at {init_ratio:.2f}× torch's norm, so the same λ pulls on different weights:
after the article's Adam training (λ = 0.01, `digits`) — {_article_norms(frame)}. To compare like with like,
start both from the same weights (`l2compare.porter.convert.copy_weights`); proof: {PROOF['init']}.

## 6. Adam's ε

Keras: w −= lr·√(1−β2ᵗ)/(1−β1ᵗ)·m/(√v+ε); torch: ε inside the bias correction. They agree only with a torch ε of
ε/√(1−β2ᵗ) at step t, so no constant torch ε is exact: stock `torch.optim.Adam` at Keras's ε gives
{_cells(p, 'l2 on kernels / adam', 'stock_torch')} ({PROOF['eps']}). `torch_impl.optim.KerasAdam` is exact.

## 7. Flatten order

Keras flattens (H, W, C), torch (C, H, W). Port the Dense after `Flatten` with its rows permuted, or permute the
activations to (H, W, C) before flattening (`torch_impl.models.KerasFlatten`). Without it the CNN is a different
model: {_cells(p, 'l2 on kernels / adam (cnn)', 'no_flatten_permutation')} ({PROOF['flatten']}; forward pass:
{PROOF['flatten_forward']}).

## 8. Default hyperparameters

{_defaults(runs)}

Set every hyperparameter explicitly on both sides ({PROOF['defaults']}). In float64, TensorFlow casts Python-float
hyperparameters through float32: exact float64 parity needs values representable in float32.

{_float32(parity)}
"""
    number = 9
    if showcase:
        text += "\n" + porting_families.section(list(showcase), number)
        number += 1
    if backends:
        text += "\n" + porting_backends.section(runs, parity, backends, number)
        number += 1
    if (apps := porting_applications.section(out / "applications.csv", number)):
        text += "\n" + apps
    path = out / "PORTING.md"
    write_atomic(path, text)
    return path
