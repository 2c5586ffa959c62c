"""PORTING.md's section on choosing a Keras backend instead of porting by hand, from the records.

Three ways to run a Keras model's L2 in PyTorch's world: port it by hand (§1–§8), run the Keras
model on the torch backend (or JAX), or train that Keras model with a torch loop (the zero-port
route). The parity grids per backend (``l2compare.parity.grid.backend_cells``) say which torch recipe is
the same computation as Keras on each backend; the native runs say what a user sees (the
``recipes`` experiment pairs each backend with Keras on TensorFlow, seed by seed). Each backend
fact is asserted by a test in ``comparisons/`` that fails if it changes.
"""
from __future__ import annotations

import pandas as pd

from l2compare.core import columns
from l2compare.engine.experiments import ARTICLE_LAMBDA
from l2compare.reports.frames import column_label, runs_frame
from l2compare.reports.tables import ci_text, markdown, recipes_table

# The row's exact recipe in the TensorFlow grid: what each backend is measured against.
EXACT = {"l2 on kernels": "penalty", "l2 on kernels+biases": "penalty", "weight_decay": "decoupled"}
FACTS = "comparisons/test_backend_facts.py"
PROOF = {
    "clip": f"`{FACTS}::test_crossentropy_on_a_softmax_output_is_clipped_on_torch_and_jax_not_tensorflow`",
    "wd": f"`{FACTS}::test_optimizer_weight_decay_is_written_differently_on_torch`",
    "jit": f"`{FACTS}::test_jit_compile_auto_resolves_per_backend`",
    "x64": f"`{FACTS}::test_float64_needs_x64_on_jax`",
    "torch64": f"`{FACTS}::test_float64_on_the_torch_backend_is_float32_inside_a_dense_layer`",
    "sum": f"`{FACTS}::test_the_torch_guide_sum_of_losses_fails_with_two_regularized_tensors`",
    "casts": f"`{FACTS}::test_float64_hyperparameters_are_rounded_through_float32_on_tensorflow_only`",
    "casts_port": "`comparisons/test_backend_parity.py::test_a_port_of_keras_on_jax_casts_hyperparameters_exactly`",
    "zero": "`comparisons/test_zero_port.py`",
    "xla": "`comparisons/test_xla.py`",
    "threads": "`comparisons/test_jax_threads.py`",
}


def _exact_recipe(row: str) -> str:
    return EXACT[row.split(" / ")[0]]


def _verdicts(parity: list[dict], dtype: str) -> pd.Series:
    """Per grid row, the verdict of the row's exact recipe in ``dtype``."""
    hits = {p["row"]: f"{p['verdict']} {p['score']:.1e}" for p in parity
            if p.get("dtype") == dtype and not p.get("extra") and not p.get("study")
            and p.get("column") == _exact_recipe(p["row"])}
    return pd.Series(hits, dtype=object)


def grid_summary(reference: list[dict], backends: dict[str, list[dict]]) -> pd.DataFrame:
    """Rows = grid rows; per backend (TensorFlow first), the exact recipe's float32 / float64 verdicts."""
    sides = {columns.PARITY_SOURCE: reference, **backends}
    rows = list(dict.fromkeys(p["row"] for p in reference if not p.get("extra") and not p.get("study")))
    table = {"Keras config / optimizer": rows, "torch recipe": [_exact_recipe(r) for r in rows]}
    for name, records in sides.items():
        f32, f64 = _verdicts(records, "float32"), _verdicts(records, "float64")
        table[column_label(name)] = [f"{f32.get(r, '—')} / {f64.get(r, '—')}" for r in rows]
    return pd.DataFrame(table)


def exact_counts(records: list[dict]) -> dict[str, str]:
    """Per dtype, "exact cells / cells" of the row's exact recipe."""
    out = {}
    for dtype in ("float32", "float64"):
        verdicts = _verdicts(records, dtype)
        out[dtype] = f"{sum(v.startswith('exact') for v in verdicts)}/{len(verdicts)}"
    return out


def native_shift(runs: list[dict]) -> pd.DataFrame | None:
    """Keras l2 on each other backend against Keras l2 on TensorFlow, native mode at the article's λ,
    paired by seed (the ``recipes`` experiment's runs): what switching backend changes for a user."""
    native = [r for r in runs if r["spec"]["mode"] == "native" and r["spec"]["l2"] == ARTICLE_LAMBDA]
    if not native:
        return None
    table = recipes_table(runs_frame(native))
    keras_backends = [c.name for c in columns.all_columns() if c.framework == "keras" and c.name != columns.PARITY_SOURCE]
    part = table[table["framework"].isin(keras_backends) & table["regularization"].eq("l2")]
    if part.empty:
        return None
    return pd.DataFrame([{"model": r["model"], "optimizer": r["optimizer"], "backend": column_label(r["framework"]),
                          "Δ test acc vs TensorFlow [95% CI]": ci_text(r, "delta_accuracy", signed=True),
                          "‖w‖ reg ratio vs TensorFlow [95% CI]": ci_text(r, "norm_ratio", signed=False),
                          "n": int(r["test_accuracy_n"])} for _, r in part.iterrows()])


def section(runs: list[dict], reference: list[dict], backends: dict[str, list[dict]], number: int) -> str:
    """PORTING.md's §``number``: Keras on another backend, or a port by hand."""
    if not backends:
        return ""
    counts = {name: exact_counts(records) for name, records in {columns.PARITY_SOURCE: reference, **backends}.items()}
    count_text = "; ".join(f"{column_label(n)} {c['float32']} in float32, {c['float64']} in float64" for n, c in counts.items())
    shift = native_shift(runs)
    shift_text = ("" if shift is None else
                  "\nWhat a user sees (native mode on `digits`: each backend's own initializers and arithmetic, "
                  "seeds paired with Keras on TensorFlow; the `recipes` experiment):\n\n" + markdown(shift) + "\n")
    return f"""## {number}. Keras on JAX or torch instead of a port

Keras 3 runs the same model on TensorFlow, JAX or torch, so a PyTorch shop can keep `kernel_regularizer=l2(λ)` as it is
and switch the backend (`KERAS_BACKEND=torch`) instead of porting. The grid below is the parity grid of
[parity.md](parity.md) with Keras's side run on each backend, from the same initial weights (TensorFlow's) and batches:
for each Keras configuration, the exact torch recipe's verdict, float32 / float64. The torch recipe is exact against
Keras on each backend in this many rows: {count_text}.

{markdown(grid_summary(reference, backends))}

Where a backend is not exact, the backend is why, not the recipe:

- **The torch backend rounds float64 like float32 inside a Dense layer** ({PROOF['torch64']}): no float64 port can
  match it to float64 precision, so its float64 cells are at best `close`; in float32 the same rounding makes its own
  float64 step an unreliable floor, so a float32 cell can read `close` for a recipe that is exact on TensorFlow and JAX.
- **JAX needs x64 for float64** ({PROOF['x64']}); the `keras_jax` column turns it on (`JAX_ENABLE_X64=1`).
- **A float64 hyperparameter is rounded through float32 on TensorFlow only** ({PROOF['casts']}): momentum 0.9
  reaches a float64 variable as 0.8999999762 on TensorFlow, as 0.9 on JAX and torch, and λ likewise. A float64 port
  of Keras on JAX or torch must not round them; the grids above mirror each backend's cast
  ({PROOF['casts_port']}).
- **`jit_compile="auto"` is XLA on JAX only** ({PROOF['jit']}). Whether XLA's float32 step differs from op by op is
  a fact of the CPU: where XLA may emit fused multiply-adds (x86 AVX2 and up) it moves single steps by a few units in
  the last place, no more than summing the batch in another order does; capped below that
  (`XLA_FLAGS=--xla_cpu_max_isa=SSE4_2` or `AVX`) it gives op by op's bits ({PROOF['xla']}). Records name the CPU;
  the float32 verdict allows for each side's own rounding either way.
- **Cross-entropy on a softmax output is clipped to [1e-7, 1−1e-7] on torch and JAX, not on TensorFlow**
  ({PROOF['clip']}): a confidently wrong sample gets zero gradient on those backends, where TensorFlow still corrects it.
- **Optimizer `weight_decay` is computed as w·(1 − wd·lr) on torch, w − w·wd·lr on TensorFlow and JAX**
  ({PROOF['wd']}): the same number up to one float32 rounding.
- **XLA's threads** are not bounded by XLA_FLAGS; only CPU affinity confines them ({PROOF['threads']}); the suite's
  JAX workers each get a core of their own.
{shift_text}
### The zero-port route: a torch loop around a Keras model

On the torch backend a Keras model is a `torch.nn.Module`: `model.parameters()` trains with a torch optimizer. Its L2
counts only if the loop adds the regularizers itself:

```python
loss = loss_fn(y, model(x)) + sum(model.losses)   # not torch.sum(*model.losses): that fails from two regularized tensors
```

With `sum(model.losses)` and SGD, this loop ends bit for bit where `fit` does ({PROOF['zero']}); the keras-io guide's
`torch.sum(*model.losses)` raises a `TypeError` as soon as two tensors are regularized ({PROOF['sum']}).
"""
