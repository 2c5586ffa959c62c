"""PORTING.md's layer families: per family, the pitfall a hand port falls into, the test that proves
the porter avoids it, and the verify records of the family's corpus model (``l2compare.porter.verify.showcase``)."""
from __future__ import annotations

import pandas as pd

from l2compare.reports.porting.snippets import _test
from l2compare.reports.tables import markdown

PITFALLS = {
    "batchnorm": ("BatchNormalization", f"""Keras's `momentum=0.99` is torch's `momentum=0.01` (each names the
other's weight), Keras's ε is 1e-3 (torch's 1e-5), and Keras updates the moving variance with the *biased* batch
variance where `nn.BatchNorm2d` uses the unbiased one, so no `nn.BatchNorm2d` setting follows Keras's moving
statistics ({_test('test_port_norm.py', 'test_nn_batchnorm2d_would_not_follow_keras')}). The port writes Keras's
arithmetic in a small module (`KerasBatchNorm`, in the generated file), exact in both modes
({_test('test_port_norm.py', 'test_batchnorm_moving_statistics_follow_keras')}); gamma/beta regularizers are
carried, and a frozen BN normalizes with its moving statistics even in training, as Keras's does
({_test('test_port_norm.py', 'test_frozen_batchnorm_normalizes_with_moving_statistics')})."""),
    "depthwise": ("Depthwise and separable convolutions", f"""A depthwise kernel is (kh, kw, in, multiplier) in
Keras; torch's grouped conv wants (in·multiplier, 1, kh, kw) with output channel c·multiplier + m, the same order
as TensorFlow's, so a reshape is right and a transpose is not; `depthwise_regularizer` and `pointwise_regularizer`
land on the two torch convs of a separable one ({_test('test_port_conv.py', 'test_the_checks_can_fail')})."""),
    "conv1d": ("Conv1D and 1-D pooling", f"""Keras's `padding='same'` puts the odd pixel after (bottom/right),
which torch's symmetric `padding=` cannot: the port pads explicitly when the two sides differ
({_test('test_port_conv.py', 'test_uneven_same_padding_is_written_out')}); `'causal'` is a left pad, and 'same'
average pooling divides by the number of real elements in each window, as TensorFlow does
({_test('test_port_conv_layers.py', 'test_single_layer_sweep_float64')})."""),
    "transpose": ("Transposed convolutions and upsampling", f"""TensorFlow's transposed conv is the gradient of a
conv: with 'same' and an odd kernel-minus-stride it crops the extra pixel at the end, which torch's `padding=` cannot
do, so the port adds a slice; bilinear `UpSampling2D` computes in float32 even in a float64 model and is ported in
float32 only ({_test('test_port_conv_layers.py', 'test_bilinear_upsampling_float32')})."""),
    "layernorm": ("LayerNormalization", f"""Keras's ε is 1e-3 (torch's `nn.LayerNorm` default 1e-5); the port
carries it, with center/scale and gamma/beta regularizers
({_test('test_port_norm.py', 'test_embedding_layernorm_sequence')})."""),
    "lstm": ("LSTM and Embedding", f"""Keras's LSTM has one bias; torch's has two (`bias_ih`, `bias_hh`). Putting
Keras's bias in one and zeros in the other trains both, so the bias moves twice as fast: the port freezes `bias_hh`
at zero ({_test('test_port_recurrent.py', 'test_single_bias_trains_as_keras_and_the_naive_split_does_not')}). The
gate order (i, f, c, o) is the same in both. An `Embedding` without a regularizer gets a sparse gradient, and
Keras's Adam on TensorFlow squares it per lookup: a row looked up twice in a batch gets v += (1−β2)·(g₁² + g₂²), where
torch's dense Adam takes (g₁ + g₂)²; torch cannot follow it, and `verify` says so
({_test('test_keras_sparse_adam.py', 'test_keras_adam_squares_each_slice_and_is_otherwise_dense_adam')}); with an
`embeddings_regularizer` the gradient is dense and Adam is the same on both sides
({_test('test_keras_sparse_adam.py', 'test_fit_hands_adam_the_sparse_gradient_unless_the_embedding_is_regularized')})."""),
    "gru": ("GRU and Bidirectional", f"""Keras's GRU gates are (z, r, h), torch's (r, z, n): reorder the blocks.
`reset_after=True` (Keras 3's default) is torch's `nn.GRU` with Keras's two bias rows as `bias_ih`/`bias_hh`;
`reset_after=False` has no torch module, and the port writes the loop out; a Bidirectional layer's backward output
is flipped back only with `return_sequences`
({_test('test_port_recurrent.py', 'test_forward_and_gradients')})."""),
    "regularizers": ("L1, activity regularizers, frozen layers", f"""`l1_l2` is two terms, λ₁·Σ|w| and λ₂·Σw², each
with λ as TensorFlow casts it; an `activity_regularizer` is divided by the batch size since Keras 3.14
({_test('test_port_graph.py', 'test_an_activity_regularizer_is_divided_by_the_batch_size')}); and a frozen layer
(`trainable=False`) is neither trained nor regularized
({_test('test_port_graph.py', 'test_a_frozen_layer_is_not_trained_and_not_regularized')}). L1 and activity terms
cannot be weight decay: the coupled recipe keeps them in the loss."""),
    "nested": ("Nested models and fine-tuning", f"""A backbone used as a layer is a submodule under its
Keras name (`model.backbone.conv2d`), a model or layer called twice is one module whose weight penalty counts once,
as `model.losses` does ({_test('test_port_nested.py', 'test_a_siamese_backbone_is_one_submodule_counted_as_keras_counts')}),
and a frozen backbone is neither trained nor regularized
({_test('test_port_nested.py', 'test_a_frozen_backbone_is_neither_trained_nor_regularized')}). The pitfall is
`base(x, training=False)`: Keras 3.15's `fit` overrides the recorded `training=False` with its own `training=True`
(`keras/src/models/functional.py`, `operation_fn`), so an unfrozen backbone's BatchNorm trains; a hand port that keeps
it in `eval()` is another model ({_test('test_port_nested.py', 'test_keras_overrides_training_false_in_a_nested_call_and_so_does_the_port')})."""),
    "attention": ("MultiHeadAttention", f"""Keras's projections are EinsumDense kernels, query/key/value
`(dim, heads, key_dim)` and output `(heads, value_dim, dim)`, with `key_dim` free of dim/heads, so `nn.MultiheadAttention`
(one in_proj of `(3·dim, dim)`) cannot hold them: the port writes the einsums. Keras's boolean mask is True where a
query attends (torch's True blocks), and Keras replaces masked scores instead of adding −inf, so a fully masked row is
uniform where torch's softmax gives NaN; regularizers land on all four projections
({_test('test_port_attention.py', 'test_forward_and_penalty')};
{_test('test_port_attention.py', 'test_torch_masking_differs_on_a_fully_masked_row')})."""),
    "masks": ("Masks", f"""`Embedding(mask_zero=True)` and `Masking` send a mask to every layer that reads one: a
masked RNN step keeps its state and repeats its last output (zeros under Bidirectional with `return_sequences`),
`GlobalAveragePooling1D` averages the unmasked steps only, and attention combines query and key masks. Masks may have
gaps in the middle, which `pack_padded_sequence` cannot express, so the port writes the step loop
({_test('test_port_masks.py', 'test_masked_recurrent_forward_and_gradients')};
{_test('test_port_masks.py', 'test_masking_layer_with_gaps')})."""),
}


def _cell(records: list[dict], dtype: str, recipe: str) -> str:
    found = [r for r in records if r["dtype"] == dtype and r["recipe"] == recipe]
    if not found:
        return "—"
    r = found[0]
    # The number the verdict follows from: verify's one-step difference (older records: the trajectory's max |Δw|).
    value = (r.get("onestep") or {}).get("at_worst", r["max_dw"])
    return f"{r['verdict']} ({value:.1e})"


def family_table(cells: list[dict]) -> str:
    """Optimizer × dtype rows, recipe columns: verdict (max |Δw|), from the cells' verify records."""
    rows = []
    for cell in sorted(cells, key=lambda c: c["optimizer"]):
        for dtype in ("float64", "float32"):
            rows.append({"optimizer": cell["optimizer"], "dtype": dtype,
                         **{recipe: _cell(cell["records"], dtype, recipe) for recipe in ("penalty", "coupled", "stock")}})
    return markdown(pd.DataFrame(rows))


LEFT_OUT = "left out of the verdict, values driven by rounding: "


def _notes(cells: list[dict]) -> str:
    """The records' notes, once each; the left-out tensors as one list of names (verify.md has the why)."""
    notes = sorted({n for c in cells for r in c["records"] for n in r.get("notes", []) if not n.startswith(LEFT_OUT)})
    left = sorted({part.split(" (")[0] for c in cells for r in c["records"] for n in r.get("notes", [])
                   if n.startswith(LEFT_OUT) for part in n[len(LEFT_OUT):].split("; ")})
    if left:
        notes.insert(0, f"{LEFT_OUT}{', '.join(left)} (their float64 gradient is zero up to "
                        "rounding, as a bias followed by BatchNormalization has; why, tensor by tensor: verify.md)")
    return "\n".join(f"- {n}" for n in notes)


def section(showcase: list[dict], number: int) -> str:
    """The families section of PORTING.md (empty without records)."""
    if not showcase:
        return ""
    by_family: dict[str, list[dict]] = {}
    for cell in showcase:
        by_family.setdefault(cell["family"], []).append(cell)
    first = showcase[0]["records"][0]
    rules = "; ".join(dict(sorted({r["dtype"]: r["rule"] for c in showcase for r in c["records"]}.items(),
                                  reverse=True)).values())
    parts = [f"""## {number}. Layers beyond Dense and Conv2D: what each family needs

`l2compare port` writes these ports and `l2compare verify` measures them. Each family below names its pitfall, the
test that proves the port avoids it, and `verify`'s measurement on one corpus model (`l2compare/porter/verify/corpus.py`): Keras's
`fit` against the port trained by each recipe, {first['steps']} steps of batch {first['batch_size']} on random data,
from the same weights. Recipes: `penalty` (loss + `l2_penalty(model)`, Keras-exact optimizer), `coupled`
(`param_groups(model)`: weight decay 2λ on exactly the regularized tensors), `stock` (torch.optim's own class at
Keras's hyperparameters). Verdicts (max |Δw| in brackets): {rules}. Every record, in detail: [verify.md](verify.md)."""]
    for family, (title, pitfall) in PITFALLS.items():
        cells = by_family.get(family)
        if not cells:
            continue
        parts.append(f"""### {title} — `{cells[0]['model']}` ({cells[0]['layers']})

{pitfall}

{family_table(cells)}

{_notes(cells)}""".rstrip())
    return "\n\n".join(parts) + "\n"
