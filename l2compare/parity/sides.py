"""Each side of a parity case, trained through the shared training run (``l2compare.core.training``).

Keras's trajectory is computed once per Keras side (cached) and read by every torch recipe
compared against it; torch's side departs from the run engine's only as the case says.
This module imports both frameworks (in-process): the run engine calls it in a worker.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from l2compare.core import columns
from l2compare.core.seeds import epoch_orders
from l2compare.core.spec import RunSpec
from l2compare.parity.cases import ParityCase, parity_data


@dataclass
class KerasTrajectory:
    """Keras's initial weights, and its weights and optimizer state after every step (canonical)."""

    initial: dict[str, np.ndarray]
    steps: list[dict[str, np.ndarray]]
    states: list[dict]
    history: list[dict]
    order: list[np.ndarray]  # the batch order: one permutation per epoch


def keras_spec(case: ParityCase) -> RunSpec:
    """The case's Keras side as a run spec (parity mode)."""
    return RunSpec(model=case.model, framework=case.keras_column, regularization=case.keras_config, l2=case.l2,
                   optimizer=case.optimizer, mode="parity", dataset=case.dataset, epochs=case.epochs,
                   batch_size=case.batch_size, seed=case.seed, dtype=case.dtype)


def torch_spec(case: ParityCase, dtype: str) -> RunSpec:
    """The case's torch side in ``dtype`` as a run spec (parity mode: λ as Keras rounds it)."""
    optimizer = case.optimizer
    if case.torch_optimizer == "torch":
        # The stock torch class with Keras's hyperparameters: only ε stays torch's. Momentum as
        # both frameworks' float32 arithmetic and TensorFlow's float64 cast see it (0.9 -> 0.89999998),
        # so that a float64 step of the same computation is that computation without float32 rounding.
        from torch_impl.optim import KERAS_DEFAULTS, keras_float

        optimizer = dataclasses.replace(optimizer, lr=optimizer.lr or KERAS_DEFAULTS[optimizer.name]["lr"],
                                        epsilon=case.torch_epsilon, momentum=keras_float(optimizer.momentum))
    return RunSpec(model=case.model, framework="torch", regularization=case.recipe, l2=case.l2 * case.torch_l2_scale,
                   optimizer=optimizer, mode="parity", dataset=case.dataset, epochs=case.epochs,
                   batch_size=case.batch_size, seed=case.seed, dtype=dtype)


# Keras side (on a backend other than the source's) -> the source's initial weights for it; given by
# the caller (``give_initial``), as this process cannot run Keras on TensorFlow beside its own backend.
_SOURCE_INITIAL: dict[ParityCase, dict[str, np.ndarray]] = {}


def source_initial(keras_case: ParityCase) -> dict[str, np.ndarray]:
    """In the parity source's process (Keras on TensorFlow): the initial weights its trajectory for
    ``keras_case`` starts from, which the same case on another backend starts from too."""
    from keras_impl.worker import Run

    source = dataclasses.replace(keras_case, keras_column=columns.PARITY_SOURCE)
    return Run().initial_weights(keras_spec(source).to_dict())


def give_initial(keras_case: ParityCase, weights: dict[str, np.ndarray]) -> None:
    """Where ``keras_case``'s Keras side runs on another backend: the source's initial weights for it."""
    _SOURCE_INITIAL[keras_case] = weights


@functools.lru_cache(maxsize=8)
def keras_trajectory(keras_case: ParityCase) -> KerasTrajectory:
    """Computed once for all torch recipes compared against it (a Keras run costs ~10× a torch
    one here). Read-only for callers. Keras on TensorFlow starts from its own initializers; on
    another backend, from TensorFlow's weights (``give_initial``), so that only arithmetic differs."""
    from keras_impl.worker import Run

    initial = None
    if keras_case.keras_column != columns.PARITY_SOURCE:
        if keras_case not in _SOURCE_INITIAL:
            raise RuntimeError(f"{keras_case.keras_column}: the {columns.PARITY_SOURCE} column's initial weights "
                               "were not given (l2compare.parity.sides.give_initial)")
        initial = _SOURCE_INITIAL[keras_case]
    x, y = parity_data(keras_case.n_samples, keras_case.dataset)
    order = epoch_orders(len(x), keras_case.epochs, keras_case.seed)
    trained = Run().train(keras_spec(keras_case), x, y, order, initial=initial, capture_steps=True)
    return KerasTrajectory(trained.initial, trained.fit.steps, trained.fit.states, trained.fit.history, order)


def _torch_options(case: ParityCase, spec: RunSpec) -> dict:
    """How the case's torch side departs from the run engine's: the mirror carries the Keras
    model's L2 (none under `wd` or `none`), the deliberate Flatten mistake, a stock optimizer."""
    from torch_impl.worker import keras_lambda

    def torch_flatten(model):
        import torch

        model.flatten = torch.nn.Flatten()  # the mistake: torch's (C, H, W) order

    return dict(l2=keras_lambda(spec) if case.keras_config == "l2" else 0.0,
                adapt=torch_flatten if case.flatten == "torch" else None, stock=case.torch_optimizer == "torch")


def keras_casts(case: ParityCase):
    """A context in which the torch side casts hyperparameters (and λ) as the case's Keras backend does:
    through float32 on TensorFlow, exactly on JAX and torch (``torch_impl.optim.hyperparameters_of``)."""
    from torch_impl.optim import hyperparameters_of

    return hyperparameters_of(columns.get(case.keras_column).backend)


def torch_setup(case: ParityCase, initial: dict[str, np.ndarray], dtype: str):
    """The case's torch side in ``dtype``: (model with the ``initial`` canonical weights, optimizer).
    Its steps must be taken inside ``keras_casts(case)``."""
    from torch_impl.worker import Run

    run = Run()
    with keras_casts(case), run.precision(dtype):
        spec = torch_spec(case, dtype)
        return run.prepare(spec, initial, **_torch_options(case, spec))


def run_torch(case: ParityCase, initial, x, y, order):
    from torch_impl.worker import Run

    with keras_casts(case):
        spec = torch_spec(case, case.dtype)
        return Run().train(spec, x, y, order, initial=initial, capture_steps=True, **_torch_options(case, spec)).fit

