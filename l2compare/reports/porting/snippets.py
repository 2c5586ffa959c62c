"""What PORTING.md shows verbatim: each recipe's code, and the test that proves each claim.

The snippets are the recipes the parity tests prove; each ``PROOF`` links the test in
``comparisons/`` that fails if its claim becomes false (tests/test_porting_md.py checks every
link names a real test).
"""
from __future__ import annotations

T = "../comparisons/"  # links are relative to results/


def _test(path: str, name: str) -> str:
    return f"[`{path}::{name}`]({T}{path})"


PROOF = {
    "l2": _test("test_parity.py", "test_keras_l2_equals_torch_penalty_and_coupled"),
    "wd": _test("test_parity.py", "test_keras_weight_decay_equals_torch_decoupled"),
    "naive_wd": _test("test_parity.py", "test_naive_weight_decay_is_not_l2"),
    "naive_adamw": _test("test_parity.py", "test_naive_adamw_is_not_l2_with_adam"),
    "decoupled": _test("test_parity.py", "test_decoupled_is_not_l2_with_adam_even_on_the_right_tensors_at_2_lambda"),
    "decoupled_sgd": _test("test_parity.py", "test_decoupled_equals_l2_with_plain_sgd"),
    "eps": _test("test_parity.py", "test_constant_torch_eps_is_not_keras_adam"),
    "momentum": _test("test_parity.py", "test_stock_torch_sgd_with_momentum_is_keras_momentum_up_to_rounding"),
    "lambda": _test("test_parity.py", "test_lambda_instead_of_2_lambda_is_not_l2"),
    "flatten": _test("test_parity.py", "test_missing_flatten_permutation_is_not_the_same_model"),
    "flatten_forward": _test("test_porting.py", "test_missing_flatten_permutation_breaks_parity"),
    "init": _test("test_framework_facts.py", "test_initializers_differ"),
    "defaults": _test("test_framework_facts.py", "test_default_hyperparameters_differ"),
    "exclude": _test("test_framework_facts.py", "test_var_names_bias_also_excludes_kernels_of_a_model_named_bias"),
    "float32": _test("test_parity.py",
                     "test_float32_cnn_on_digits_is_exact_one_step_at_a_time_and_float64_trajectory_exact"),
    "float32_lambda": _test("test_parity.py", "test_lambda_off_by_one_percent_is_not_exact_in_float32"),
    "float32_outliers": _test("test_parity.py", "test_float32_outlier_steps_are_ties_or_within_the_rounding_floor"),
    "float32_resume": _test("test_onestep.py", "test_keras_resumes_bit_for_bit_from_its_recorded_state"),
}

CODE = {
    "l2": '''```python
# Keras: layers.Dense(128, activation="relu", kernel_regularizer=regularizers.l2(lam))
# PyTorch, recipe `penalty`: λ·Σw² (no ½), added once per batch, not divided by the batch size
loss = F.cross_entropy(logits, y) + lam * model.hidden.weight.square().sum()
# or recipe `coupled`: torch's weight_decay is coupled (g += wd·w) -> wd = 2λ, on those tensors only
decay = [model.hidden.weight]
rest = [p for p in model.parameters() if all(p is not q for q in decay)]
opt = torch.optim.SGD([{"params": decay, "weight_decay": 2 * lam},
                       {"params": rest, "weight_decay": 0.0}], lr=0.01, momentum=0.9)
# Adam: torch.optim.Adam puts ε inside the bias correction; for Keras-exact Adam use
# torch_impl.optim.KerasAdam (same parameter groups), or accept the ε difference below.
```''',
    "bias": '''```python
# Keras: Dense(128, kernel_regularizer=l2(lam), bias_regularizer=l2(lam)); Dense(10, bias_regularizer=l2(lam))
# PyTorch: the same recipes over exactly those tensors, biases included
loss = F.cross_entropy(logits, y) + lam * sum(p.square().sum() for p in
                                              (model.hidden.weight, model.hidden.bias, model.out.bias))
```''',
    "wd": '''```python
# Keras: keras.optimizers.SGD(learning_rate=lr, momentum=m, weight_decay=wd)   (or Adam(weight_decay=wd))
# Keras's weight_decay is decoupled: w -= lr·wd·w on every trainable tensor, before the update.
with torch.no_grad():                       # before each opt.step()
    for p in decayed_params:
        p.mul_(1 - lr * wd)
opt.step()
# Adam: torch.optim.AdamW(params, lr=lr, weight_decay=wd) does the same decay (ε differs, see below);
# torch_impl.optim.KerasSGD / KerasAdam(weight_decay=wd) reproduce Keras exactly.
```''',
    "adamw": '''```python
# Keras: opt = keras.optimizers.AdamW(weight_decay=wd)
#        opt.exclude_from_weight_decay(var_list=[v for v in model.trainable_weights if v.name == "bias"])
decay = [p for n, p in model.named_parameters() if not n.endswith("bias")]
rest = [p for n, p in model.named_parameters() if n.endswith("bias")]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                         {"params": rest, "weight_decay": 0.0}], lr=1e-3, eps=1e-7)
# Exact: torch_impl.optim.KerasAdam with the same groups and weight_decay=wd (None for `rest`).
```''',
}
