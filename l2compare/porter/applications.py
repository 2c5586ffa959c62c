"""Every keras.applications model, as a user brings it: ``weights=None``, its smallest input, 10 classes, L2
on every kernel (``clone_model`` with a ``clone_function`` setting the regularizers), BatchNorm statistics,
biases and scales randomized so that none is the identity. ``measure`` ports one and compares the port's
forward pass (logits: ``classifier_activation=None``) and penalty with Keras's.

``python -m l2compare.porter.applications results/applications.csv [--only NAME,...] [--dtypes float64,float32]``
writes the table (application, parameters, forward and penalty differences, port time) that PORTING.md shows.
"""
from __future__ import annotations

import argparse
import csv
import gc
import sys
import time
from contextlib import contextmanager

import keras
import numpy as np
import torch

from l2compare.porter.convert import keras_to_torch

# name -> (smallest input side, family): each constructor's min_size (Keras's imagenet_utils.obtain_input_shape).
APPLICATIONS = {
    "VGG16": (32, "VGG"), "VGG19": (32, "VGG"),
    "ResNet50": (32, "ResNet"), "ResNet101": (32, "ResNet"), "ResNet152": (32, "ResNet"),
    "ResNet50V2": (32, "ResNetV2"), "ResNet101V2": (32, "ResNetV2"), "ResNet152V2": (32, "ResNetV2"),
    "InceptionV3": (75, "Inception"), "InceptionResNetV2": (75, "InceptionResNetV2"), "Xception": (71, "Xception"),
    "MobileNet": (32, "MobileNet"), "MobileNetV2": (32, "MobileNetV2"),
    "MobileNetV3Small": (32, "MobileNetV3"), "MobileNetV3Large": (32, "MobileNetV3"),
    "DenseNet121": (32, "DenseNet"), "DenseNet169": (32, "DenseNet"), "DenseNet201": (32, "DenseNet"),
    "NASNetMobile": (32, "NASNet"), "NASNetLarge": (32, "NASNet"),
    **{f"EfficientNetB{i}": (32, "EfficientNet") for i in range(8)},
    **{f"EfficientNetV2{v}": (32, "EfficientNetV2") for v in ("B0", "B1", "B2", "B3", "S", "M", "L")},
    **{f"ConvNeXt{v}": (32, "ConvNeXt") for v in ("Tiny", "Small", "Base", "Large", "XLarge")},
}
# Ported in float32 only: in float64 Keras's model, its clone and the port hold 3 copies of 200-350 M
# parameters at 8 bytes (over 8 GB), more than a shared 23 GB test machine gives one process.
FLOAT32_ONLY = ("ConvNeXtLarge", "ConvNeXtXLarge")
# Each family's smallest member.
SMALLEST = {}
for _name, (_, _family) in APPLICATIONS.items():
    SMALLEST.setdefault(_family, _name)
SMALLEST.update({"NASNet": "NASNetMobile", "MobileNetV3": "MobileNetV3Small"})
_KERNELS = ("kernel_regularizer", "depthwise_regularizer", "pointwise_regularizer")


@contextmanager
def floatx(dtype: str):
    """Build in ``dtype``: floatx for inputs, and the global dtype policy for layers. Keras fixes that
    policy from floatx when the first layer is made and keeps it (dtype_policies.dtype_policy), so
    floatx alone would give float64 inputs and float32 layers once any layer exists."""
    before, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(before)
        keras.config.set_dtype_policy(policy)


def with_l2(model, lam: float = 1e-4):
    """The usual way to put L2 on every kernel of a built model: clone it, each layer from its config."""
    def clone(layer):
        config = layer.get_config()
        for key in _KERNELS:
            if key in config:
                config[key] = keras.regularizers.l2(lam)
        return layer.__class__.from_config(config)
    return keras.models.clone_model(model, clone_function=clone, recursive=True)


# Randomized within ±10% instead of ±50%: with ±50% their depth amplifies rounding exponentially (Keras's own
# float32 forward pass 100% off its float64 one; measured float64 port difference 1.9e-5 for V2M), while at
# ±10% V2M's float64 port is within 3.8e-15, as every other application.
MILD = ("EfficientNetV2M", "EfficientNetV2L")
# EfficientNetV2L is chaotic even so, and with Keras's own initial values: measured block by block in Keras
# alone, a 1e-15 relative change of the input grows about ×3 every two blocks from block4 on, and moves the
# output by 78% of its max |·| after 79 blocks, so its float64 output has no correct digit to compare a port
# against (the port measured 0.60 there, the same size). With each residual branch halved (the γ of its
# ``*_project_bn``, the branch's last layer, × 0.5) the same net is well conditioned: Keras's own 1e-15 change
# moves the output by 1.3e-15, and the port is within 1.5e-15. The factor is the branch's, so every layer
# kind and every weight the port reads still differs from its neighbours.
DAMPED = {"EfficientNetV2L": 0.5}
FLOAT64_ALLOWANCE = 1e-12   # the float64 port's bound, relative to max |output| (comparisons/portcheck.py)


def randomize(model, seed: int = 0, spread: float = 0.5) -> None:
    """BatchNorm statistics, scales and shifts, biases and LayerScale's γ drawn at random (Keras's
    initial values 0 and 1 would hide a port that mixes them up): scales in 1 ± ``spread``, shifts
    N(0, (spread/5)²)."""
    rng = np.random.default_rng(seed)
    for var in model.weights:
        name, shape = var.path.rsplit("/", 1)[-1], tuple(var.shape)
        if name in ("moving_variance", "gamma"):
            var.assign(rng.uniform(1.0 - spread, 1.0 + spread, shape).astype(var.dtype))
        elif name in ("moving_mean", "beta", "bias"):
            var.assign(rng.normal(0.0, spread / 5.0, shape).astype(var.dtype))


def _convnext_small_widths(**args):
    """ConvNeXt's own builder (keras.src.applications.convnext.ConvNeXt) with one block per stage and
    narrow stages: every layer kind of ConvNeXtTiny (the nested stem, LayerScale, LayerNormalization,
    the preprocessing Normalization), at 1/20 of its build time."""
    from keras.src.applications.convnext import ConvNeXt

    return ConvNeXt(depths=[1, 1, 1, 1], projection_dims=[8, 16, 32, 64], name="convnext_narrow", **args)


# Builders beside the applications themselves, for quick tests: name -> (constructor, smallest side).
NARROW = {"ConvNeXtNarrow": (_convnext_small_widths, 32)}


def build(name: str, dtype: str, *, top: bool = True, seed: int = 0):
    """``name`` at its smallest input with L2 on every kernel; ``top=False``: the backbone alone."""
    constructor, side = NARROW[name] if name in NARROW else (getattr(keras.applications, name), APPLICATIONS[name][0])
    with floatx(dtype):
        keras.utils.set_random_seed(seed)
        args = dict(weights=None, input_shape=(side, side, 3))
        args.update(dict(classes=10, classifier_activation=None) if top else dict(include_top=False))
        model = with_l2(constructor(**args))
    randomize(model, seed, spread=0.1 if name in MILD else 0.5)
    if name in DAMPED:
        for layer in model.layers:
            if layer.name.endswith("_project_bn"):
                layer.gamma.assign(layer.gamma * DAMPED[name])
    return model


def transfer(name: str, dtype: str, *, frozen: bool, seed: int = 0):
    """The fine-tuning pattern: base(include_top=False) called with training=False, GAP, a new Dense.
    ``model.get_layer(base name).trainable`` switches between the two phases afterwards."""
    base = build(name, dtype, top=False, seed=seed)
    base.trainable = not frozen
    with floatx(dtype):
        i = keras.Input(base.input_shape[1:])
        h = keras.layers.GlobalAveragePooling2D()(base(i, training=False))
        out = keras.layers.Dense(10, kernel_regularizer=keras.regularizers.l2(1e-4), name="classifier")(h)
        return keras.Model(i, out, name=f"{name}_transfer")


def measure(model, dtype: str, seed: int = 0) -> dict:
    """Port ``model``; Keras against the port on one random batch: forward pass (max |Δ| relative to
    max |Keras's output|) and penalty (|Δ| relative to Keras's), port time."""
    x = np.random.default_rng(seed).random((2, *model.input_shape[1:])).astype(dtype)
    start = time.perf_counter()
    port = keras_to_torch(model).eval()
    seconds = time.perf_counter() - start
    expected = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), np.float64)
    with torch.no_grad():
        got = port(torch.from_numpy(x)).double().numpy()
    keras_penalty = float(sum(float(keras.ops.convert_to_numpy(v)) for v in model.losses))
    torch_penalty = float(port.source_module.l2_penalty(port).detach())
    return {"parameters": int(model.count_params()), "forward": float(np.abs(expected - got).max() / np.abs(expected).max()),
            "penalty": abs(keras_penalty - torch_penalty) / keras_penalty if keras_penalty else abs(torch_penalty),
            "port_s": seconds, "terms": len(port.port.penalties), "keras_terms": len(model.losses),
            "outputs": (x, expected, got)}


def float32_bound(name: str, model, result: dict, rebuild=None) -> float:
    """A bound relative to max |Keras's float32 output| for a float32 ``model`` measured into ``result``.
    Its float64 twin (the same weights, cast) is run by Keras (k64) and ported (t64); elementwise
    |k32 − t32| <= |k32 − k64| + |k64 − t64| + |t64 − t32| (the triangle inequality), so the right side's
    maximum bounds the two float32 forward passes' difference: each framework's own float32 rounding,
    measured in the same run, plus the float64 port's difference, for which the bound takes the float64
    allowance (``float64_allowance``: 1e-12, more where the net amplifies rounding), not its measured
    value: a port error present in both dtypes must not widen the bound. Deep nets with randomized
    BatchNorm amplify rounding (EfficientNetV2B1: 4e-5 where most models are 1e-6), which a fixed 1e-5
    would call a port error. The float64 port itself is checked by the float64 test of the application."""
    x32, k32, t32 = result["outputs"]
    twin = _twin(name, model, "float64", rebuild)
    x64 = x32.astype(np.float64)
    k64 = np.asarray(keras.ops.convert_to_numpy(twin(x64, training=False)), np.float64)
    with torch.no_grad():
        t64 = keras_to_torch(twin).eval()(torch.from_numpy(x64)).numpy()
    scale, twin_allowance = np.abs(k32).max(), float64_allowance(k32, k64)
    bound = np.abs(k32 - k64).max() + twin_allowance * np.abs(k64).max() + np.abs(t32 - t64).max()
    return float(bound / scale)


def _twin(name: str, model, dtype: str, rebuild=None):
    """``model``'s architecture built in ``dtype`` (``rebuild(dtype)``, e.g. a transfer model; default: the
    application ``name``) with ``model``'s weights cast to it."""
    twin = (rebuild or (lambda d: build(name, d)))(dtype)
    twin.set_weights([np.asarray(w, dtype) for w in model.get_weights()])
    return twin


def float64_allowance(k32, k64) -> float:
    """The float64 port's bound relative to max |k64|: FLOAT64_ALLOWANCE + 2^-29 x Keras's own float32 error
    (``k32`` against ``k64``, the same weights): see ``float64_bound``."""
    return FLOAT64_ALLOWANCE + 2.0 ** -29 * float(np.abs(np.asarray(k32, np.float64) - k64).max() / np.abs(k64).max())


def float64_bound(name: str, model, result: dict, rebuild=None) -> float:
    """A float64 bound for a net that amplifies rounding past 1e-12 (EfficientNetV2S with randomized
    BatchNorm: 1.9e-11, its float32 forward 8e-2 off float64 in Keras itself), relative to max |output|:
    1e-12 + 2^-29 x Keras's own float32 error on a float32 twin (the same weights, rounded). To first
    order a computation's rounding error is its condition times the unit roundoff, and float64's is
    2^-29 of float32's; the same rule as verify's float64 floor (l2compare.core.onestep)."""
    x64, k64, _ = result["outputs"]
    twin = _twin(name, model, "float32", rebuild)
    k32 = np.asarray(keras.ops.convert_to_numpy(twin(x64.astype(np.float32), training=False)), np.float64)
    return float64_allowance(k32, k64)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--only", default="", help="comma-separated application names (default: all)")
    parser.add_argument("--dtypes", default="float64,float32")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(APPLICATIONS)
    fields = ["application", "family", "parameters", "float64_forward", "float64_bound", "float32_forward",
              "float32_bound", "penalty", "port_s"]
    # Resumable: rows already in OUT are kept, and their applications skipped.
    try:
        with open(args.out, newline="") as f:
            done = {row["application"]: row for row in csv.DictReader(f)}
    except FileNotFoundError:
        done = {}
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows({**row, "float32_bound": row.get("float32_bound") or "1e-05",
                          "float64_bound": row.get("float64_bound") or "1e-12"} for row in done.values())
        for name in (n for n in names if n not in done):
            row = {"application": name, "family": APPLICATIONS[name][1], "float64_forward": "not run",
                   "float32_bound": "1e-05", "float64_bound": "1e-12"}
            for dtype in args.dtypes.split(","):
                if dtype == "float64" and name in FLOAT32_ONLY:
                    continue
                model = build(name, dtype)
                result = measure(model, dtype)
                row.update({"parameters": result["parameters"], f"{dtype}_forward": f"{result['forward']:.3g}"})
                if dtype == "float64" and result["forward"] > 1e-12:
                    row["float64_bound"] = f"{float64_bound(name, model, result):.3g}"   # as the slow test
                if dtype == "float32" and result["forward"] > 1e-5 and name not in FLOAT32_ONLY:
                    row["float32_bound"] = f"{float32_bound(name, model, result):.3g}"   # as the slow test
                if dtype == "float64" or "penalty" not in row:   # the penalty and port time of float64 if run
                    row.update(penalty=f"{result['penalty']:.3g}", port_s=f"{result['port_s']:.2f}")
                del model, result   # before the next build: the large ones hold gigabytes
                keras.backend.clear_session()
                gc.collect()
            writer.writerow(row)
            f.flush()
            print(row, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
