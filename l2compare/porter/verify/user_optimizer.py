"""``verify --torch-optimizer``: the user's torch.optim class, built on the user's module for each step.

The text was parsed without evaluating it (``l2compare.cli_args.torch_optimizer``); here the name is looked
up in ``torch.optim`` and the keywords are tried on it, so a wrong one is a usage error before any training.

A command line cannot write parameter groups, so ``--decay-on`` says which tensors ``weight_decay`` acts on:
``all`` (what ``Optimizer(model.parameters(), weight_decay=...)`` does, the default: biases and BatchNorm too, a
classic mistake where Keras regularizes only kernels) or ``regularized`` (the tensors with an L2 regularizer, 0 on
the rest; every trainable tensor when the Keras optimizer itself has ``weight_decay``, AdamW). β, momentum and weight_decay go through float32
first, as TensorFlow casts Keras's Python-float hyperparameters (DESIGN.md): without it a float64 step could
never be exact. Learning rate and ε stay as given (Keras keeps them in the variable's dtype).
"""
from __future__ import annotations

import torch

from l2compare.porter.verify.torch_side import THROUGH_FLOAT32, keras_rounded
from l2compare.porter.verify.user_port import UserPortError


def optimizer_class(name: str):
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)) or name.startswith("_"):
        allowed = sorted(n for n in dir(torch.optim) if not n.startswith("_")
                         and isinstance(getattr(torch.optim, n), type)
                         and issubclass(getattr(torch.optim, n), torch.optim.Optimizer) and n != "Optimizer")
        raise UserPortError(f"--torch-optimizer {name}(...): not a torch.optim optimizer class; allowed: "
                            f"{', '.join(allowed)}")
    return cls


class UserOptimizer:
    """``name(**kwargs)`` of torch.optim, with verify's parameter groups (module docstring)."""

    def __init__(self, name: str, kwargs: dict):
        self.name, self.kwargs = name, dict(kwargs)
        self.cls = optimizer_class(name)
        self.rounded = {k: keras_rounded(k, v) for k, v in kwargs.items()}   # and the defaults, in build
        try:   # the keywords tried once on a throwaway parameter: a typo is a usage error now, not mid-run
            self.cls([torch.nn.Parameter(torch.zeros(1))], **self.rounded)
        except Exception as exc:  # noqa: BLE001 - torch's own message, in one line
            raise UserPortError(f"--torch-optimizer {self.text}: {str(exc).strip().splitlines()[-1]}") from None

    @property
    def text(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"

    @property
    def decays(self) -> bool:
        return bool(self.kwargs.get("weight_decay"))

    def build(self, params: dict[str, torch.nn.Parameter], decayed: set[str]) -> torch.optim.Optimizer:
        """On ``params`` ({port key: the user's parameter}); ``weight_decay`` on the keys in ``decayed`` only."""
        if "weight_decay" not in self.rounded:
            optimizer = self.cls(list(params.values()), **self.rounded)
        else:
            on = [p for k, p in params.items() if k in decayed]
            off = [p for k, p in params.items() if k not in decayed]
            groups = [g for g in ({"params": on}, {"params": off, "weight_decay": 0.0}) if g["params"]]
            optimizer = self.cls(groups, **self.rounded)
        for group in optimizer.param_groups:   # the class's defaults too (torch Adam's betas (0.9, 0.999))
            for key in THROUGH_FLOAT32:
                if key in group:
                    group[key] = keras_rounded(key, group[key])
        return optimizer

    def state_importable(self, keras_optimizer: str) -> bool:
        """Whether Keras's optimizer state maps onto this class's (``torch_side.import_slots``): Adam/AdamW for
        Keras's Adam/AdamW (m, v, iterations -> exp_avg, exp_avg_sq, step), SGD with momentum for Keras's
        momentum (m -> momentum_buffer = −m/lr), plain SGD for plain SGD (no state)."""
        momentum = bool(self.kwargs.get("momentum"))
        if self.name in ("Adam", "AdamW"):
            return keras_optimizer in ("adam", "adamw") and not self.kwargs.get("amsgrad")
        if self.name == "SGD":
            return (keras_optimizer == "momentum") == momentum and keras_optimizer in ("sgd", "momentum")
        return False

    def group_weight_decay(self, optimizer) -> dict[int, float]:
        """{id(parameter): its group's weight_decay} of a built optimizer."""
        return {id(p): float(g.get("weight_decay") or 0.0) for g in optimizer.param_groups for p in g["params"]}
