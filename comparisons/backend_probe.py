"""Measure what Keras 3.15 does differently on each backend; run as a script with KERAS_BACKEND set.

``python comparisons/backend_probe.py`` prints one JSON object: the facts
``comparisons/test_backend_facts.py`` asserts. It runs in its own process because Keras picks its
backend once, at import. With ``--x64`` it first turns on JAX's 64-bit mode.
"""
import json
import sys

if "--x64" in sys.argv:
    import jax

    jax.config.update("jax_enable_x64", True)

import keras  # noqa: E402
import numpy as np  # noqa: E402

keras.utils.set_random_seed(0)   # every initializer below draws the same weights on every run


def _confidently_wrong() -> dict:
    """Cross-entropy on a softmax output for a sample whose true class has probability ~e^-30:
    its loss, and the gradient reaching the Dense kernel below the softmax."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax", use_bias=False)])
    model.layers[0].kernel.assign(np.array([[15.0, -15.0], [0.0, 0.0]], "float32"))
    x, y = np.array([[1.0, 0.0]], "float32"), np.array([1])
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x))
        grad = tape.gradient(loss, model.trainable_variables)[0].numpy()
    elif backend == "jax":
        import jax

        def f(kernel):
            out, _ = model.stateless_call([kernel], [], x)
            return loss_fn(y, out)
        kernel = model.trainable_variables[0].value
        loss, grad = float(f(kernel)), np.asarray(jax.grad(f)(kernel))
    else:
        out = model(x)
        loss = loss_fn(y, out)
        loss.backward()
        grad = model.trainable_variables[0].value.grad.cpu().numpy()
    return {"loss": float(np.asarray(keras.ops.convert_to_numpy(loss))), "grad_max": float(np.abs(grad).max())}


def _weight_decay() -> dict:
    """One SGD step with weight_decay and a zero gradient on float32 weights: which of the two ways of
    writing the decay (w − w·wd·lr, or w·(1 − wd·lr)) the backend computes, bit for bit."""
    w0 = np.random.default_rng(0).normal(size=4096).astype("float32")
    variable = keras.Variable(w0)
    lr, wd = 0.1, 0.3
    opt = keras.optimizers.SGD(learning_rate=lr, weight_decay=wd)
    opt.apply_gradients([(keras.ops.convert_to_tensor(np.zeros_like(w0)), variable)])
    got = np.asarray(keras.ops.convert_to_numpy(variable.value))
    f32 = np.float32
    subtract = w0 - w0 * f32(wd) * f32(lr)            # TensorFlow and JAX (base_optimizer._apply_weight_decay)
    multiply = w0 * f32(1 - wd * lr)                   # the torch backend (torch_optimizer._apply_weight_decay)
    return {"equals_subtract": bool(np.array_equal(got, subtract)), "equals_multiply": bool(np.array_equal(got, multiply)),
            "forms_differ_on": int((subtract != multiply).sum()), "n": int(w0.size)}


def _jit_compile() -> object:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")   # jit_compile="auto", the default
    return model.jit_compile


def _float64() -> dict:
    """The dtype a float64 model computes in, and how far its Dense output is from a float64 matmul."""
    model = keras.Sequential([keras.Input((6,), dtype="float64"), keras.layers.Dense(5, dtype="float64")])
    x = np.random.default_rng(0).random((8, 6))
    out = model(x)
    dense = model.layers[0]
    exact = x @ np.asarray(keras.ops.convert_to_numpy(dense.kernel.value), np.float64) \
        + np.asarray(keras.ops.convert_to_numpy(dense.bias.value), np.float64)
    got = np.asarray(keras.ops.convert_to_numpy(out), np.float64)
    return {"dtype": str(keras.backend.standardize_dtype(out.dtype)), "dense_error": float(np.abs(got - exact).max())}


def _losses_sum() -> dict:
    """A Keras model on the torch backend is an nn.Module; the keras-io torch loop's
    ``torch.sum(*model.losses)`` against ``sum(model.losses)`` with one and with two regularized tensors.
    Kernels of ones make the right sum known in advance (0.1 × 9 per layer); random kernels made the
    comparison of one against two depend on the draw."""
    import torch

    out = {}
    for n in (1, 2):
        layers = [keras.layers.Dense(3, kernel_initializer="ones",
                                     kernel_regularizer=keras.regularizers.l2(0.1)) for _ in range(n)]
        model = keras.Sequential([keras.Input((3,)), *layers])
        model(torch.zeros(1, 3))
        right = float(sum(model.losses))
        try:
            guide = float(torch.sum(*model.losses))
            out[n] = {"right": right, "guide": guide, "error": None}
        except TypeError as exc:
            out[n] = {"right": right, "guide": None, "error": type(exc).__name__}
    return {"is_module": isinstance(model, torch.nn.Module), "by_count": out}


def _casts() -> dict:
    """How a Python-float hyperparameter reaches a float64 variable: ``ops.cast(0.9, "float64")`` (the
    optimizers' momentum, β) and an L2(0.01) regularizer's λ on a float64 tensor of ones."""
    ones = keras.ops.convert_to_tensor(np.ones((1,), "float64"))
    return {"momentum": float(keras.ops.convert_to_numpy(keras.ops.cast(0.9, "float64"))),
            "l2": float(keras.ops.convert_to_numpy(keras.regularizers.L2(0.01)(ones)))}


facts = {"backend": keras.backend.backend(), "wrong_sample": _confidently_wrong(), "weight_decay": _weight_decay(),
         "jit_compile": _jit_compile(), "float64": _float64(), "casts": _casts()}
if keras.backend.backend() == "torch":
    facts["losses_sum"] = _losses_sum()
print(json.dumps(facts))
