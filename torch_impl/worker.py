"""The torch side of the training run (mirror: keras_impl/worker.py).

``Run`` supplies the hooks of ``l2compare.core.training.TrainingRun``; the template (seed, build,
start weights, optimizer, fit, export, summarize) is written once there. The run engine
calls it in a worker process of its own; it takes and returns plain dicts and NumPy arrays.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

import torch_impl
from l2compare.core.machine import provenance
from l2compare.core.spec import RunSpec
from l2compare.core.training import TrainingRun
from torch_impl import bench, optim, recipes, seeding, train
from torch_impl.weights import export_weights, import_weights

FRAMEWORK = "torch"


def versions() -> dict:
    return {"torch": torch.__version__, "numpy": np.__version__}


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def machine() -> dict:
    """The machine facts of this process (``l2compare.core.machine.provenance``) and torch's own: the
    ISA level its ATen kernels dispatch at, and its thread pools."""
    return {**provenance(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "versions": versions()}


def defaults() -> dict:
    """torch's own defaults, read off the optimizer signatures (PORTING.md reports them beside Keras's)."""
    def default(cls, name):
        return inspect.signature(cls.__init__).parameters[name].default

    return {"sgd_lr": default(torch.optim.SGD, "lr"), "adam_lr": default(torch.optim.Adam, "lr"),
            "adam_epsilon": default(torch.optim.Adam, "eps"), "adamw_weight_decay": default(torch.optim.AdamW, "weight_decay"),
            # nn.Linear/Conv2d.reset_parameters: kaiming_uniform_(a=√5) for weights = U(±1/√fan_in), biases U(±1/√fan_in)
            "kernel_initializer": "kaiming_uniform(a=sqrt(5)): U(±1/sqrt(fan_in))",
            "bias_initializer": "U(±1/sqrt(fan_in))"}


def keras_lambda(spec: RunSpec) -> float:
    """λ as the run uses it. Parity mode reproduces Keras, whose L2 and optimizers cast a Python
    float through float32 on the TensorFlow backend (``ops.cast``): a float64 Keras model has λ
    rounded to float32, so the port must too (``optim.keras_float``; exact where the parity runner
    mirrors Keras on JAX or torch). Native mode is a user's own port: the Python λ."""
    return optim.keras_float(spec.l2) if spec.mode == "parity" else spec.l2


class Run(TrainingRun):
    """The torch hooks of the training run."""

    framework = FRAMEWORK

    def versions(self) -> dict:
        return versions()

    def device(self) -> str:
        return device()

    def machine(self) -> dict:
        return machine()

    def defaults(self) -> dict:
        return defaults()

    def backend(self) -> str:
        return "torch"

    def set_threads(self, n: int) -> None:
        seeding.set_threads(n)

    def seed(self, seed: int) -> None:
        seeding.seed_everything(seed)

    def precision(self, dtype: str):
        return train.precision(dtype)

    def build(self, spec: RunSpec, l2: float | None = None) -> torch.nn.Module:
        if l2 is None:
            l2 = recipes.model_l2(spec.regularization, keras_lambda(spec))
        return torch_impl.build_model(spec.model, l2=l2, dtype=getattr(torch, spec.dtype)).to(device())

    def make_optimizer(self, spec: RunSpec, model, *, stock: bool | None = None):
        """Parity mode: Keras-exact optimizers, Keras's AdamW default; native: torch's own."""
        stock = spec.mode == "native" if stock is None else stock
        defaults = optim.KERAS_DEFAULTS if spec.mode == "parity" else optim.TORCH_DEFAULTS
        recipe = recipes.for_optimizer(spec.regularization, model, spec.optimizer, l2=keras_lambda(spec),
                                       adamw_default=defaults["adamw"]["weight_decay"])
        return (optim.stock_optimizer if stock else optim.make_optimizer)(model, spec.optimizer, recipe)

    def inputs(self, x: np.ndarray, model_name: str, dtype: str):
        return train.as_inputs(x, model_name, dtype, device())

    def labels(self, y: np.ndarray):
        return torch.as_tensor(y, device=device())

    def fit(self, model, optimizer, x, y, **kwargs):
        return train.fit(model, optimizer, x, y, **kwargs)

    def export_weights(self, model) -> dict[str, np.ndarray]:
        return export_weights(model)

    def import_weights(self, model, weights: dict[str, np.ndarray]) -> None:
        import_weights(model, weights)

    def minimal_loop(self, model_name, x, y, order, warm_order, batch_size) -> float:
        return bench.minimal_loop(model_name, x, y, order, warm_order, batch_size)
