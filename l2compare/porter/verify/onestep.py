"""verify's one-step measurement, as the parity grid takes it (``l2compare.parity.onestep``), on a user's model.

Before every step t, torch is given Keras's float32 weights, buffers (BatchNormalization's moving
statistics) and optimizer state after step t−1, and takes one step on the same batch, in float32 and
in float64; Keras takes the same step in float64 from the same float32 state. The four differences
and the verdicts are ``l2compare.core.onestep``'s, the grid's judge: a correct port stays within both
frameworks' own rounding of each step, whatever the model's chaos does to a trajectory.

``TorchStepper`` shares the work between recipes: one forward pass per step and dtype, one backward
pass per distinct loss (``penalty`` and ``stock`` both train on data + ``l2_penalty``; ``coupled`` on
data + the terms weight decay cannot carry), then each recipe's optimizer on a fresh copy of the
parameters. BatchNormalization updates its moving statistics in the forward pass, the same for every recipe.
"""
from __future__ import annotations

import numpy as np
import torch

from l2compare.core.onestep import OneStep, relative
from l2compare.porter.convert import load_state
from l2compare.porter.verify.torch_side import TorchRun, export_slots, import_slots

# Which loss each recipe differentiates (above).
_LOSS_OF = {"penalty": "full", "stock": "full", "coupled": "coupled"}


class TorchStepper:
    """torch's step from any Keras state (``flat``: the port's keys and "key:slot"), in one dtype, for
    every recipe of ``runs`` at once."""

    def __init__(self, runs: dict[str, TorchRun], full_state: dict[str, np.ndarray], dtype):
        self.runs = runs
        self.first = next(iter(runs.values()))
        self.full = full_state   # the keys a flat state lacks (integer buffers) come from here
        self.model = self.first.build(full_state, dtype)
        self.params = {name: p for name, p in self.model.named_parameters() if p.requires_grad}

    def _grads(self, batch) -> dict[str, tuple]:
        run, model = self.first, self.model
        params = list(self.params.values())
        out = model(*(a[batch] for a in run.x))
        data = run.data_loss(out, run.y[batch])
        kinds = list(dict.fromkeys(_LOSS_OF[r] for r in self.runs))
        if not hasattr(model, "activity_penalty"):
            # The penalties depend on the weights alone: one backward pass through the net for the data loss,
            # and each penalty's own (cheap) gradient added, as autograd adds the two paths of data + penalty.
            g_data = torch.autograd.grad(data, params, allow_unused=True)
            grads = {}
            for kind in kinds:
                terms = [run.module.l2_penalty(model)] if kind == "full" else run.extra_terms(model)
                g_terms = [torch.autograd.grad(t, params, allow_unused=True) for t in terms
                           if isinstance(t, torch.Tensor) and t.requires_grad]
                grads[kind] = tuple(_add(g, *(gt[i] for gt in g_terms)) for i, g in enumerate(g_data))
            return grads
        grads = {}
        for i, kind in enumerate(kinds):   # activity terms depend on the forward pass: a backward per loss
            if kind == "full":
                loss = data + run.module.l2_penalty(model)
            else:
                loss = data
                for term in run.extra_terms(model):
                    loss = loss + term
            grads[kind] = torch.autograd.grad(loss, params, retain_graph=i < len(kinds) - 1, allow_unused=True)
        return grads

    def step(self, flat: dict, iterations: int, batch: slice) -> dict[str, dict[str, np.ndarray]]:
        """{recipe: the state after one step from ``flat``} (weights, buffers and slots, as ``flat``)."""
        load_state(self.model, {**self.full, **{k: flat[k] for k in self.first.keys}})
        grads = self._grads(batch)
        start = {name: p.detach().clone() for name, p in self.params.items()}
        result = {}
        for recipe, run in self.runs.items():
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(start[name])
            for p, g in zip(self.params.values(), grads[_LOSS_OF[recipe]]):
                p.grad = g
            optimizer = run.make_optimizer(self.model)
            import_slots(optimizer, self.params, flat, iterations)
            optimizer.step()
            state = self.model.state_dict()
            result[recipe] = {**{k: state[k].detach().numpy().copy() for k in run.keys},
                              **export_slots(optimizer, self.params)}
        return result


def _add(g, *terms):
    """g plus every term that reaches this parameter (None: no gradient on that path)."""
    for t in terms:
        if t is not None:
            g = t if g is None else g + t
    return g


class Measurement:
    """The four differences of every step, per recipe, gathered as the steps are taken."""

    def __init__(self, tensors: list[str], recipes):
        self.tensors = tensors
        self.rows = {r: [] for r in recipes}

    def add(self, keras32: dict, keras64: dict, torch32: dict, torch64: dict) -> None:
        """One step: Keras's float32 step (the teacher's), Keras's float64 step from the same state, and
        each recipe's torch steps ({recipe: state})."""
        cols = self.tensors
        keras_floor = relative(keras32, keras64, keras32, cols)
        for recipe, rows in self.rows.items():
            t32, t64 = torch32[recipe], torch64[recipe]
            rows.append((relative(t32, keras32, keras32, cols), relative(t32, t64, keras32, cols), keras_floor,
                         relative(t64, keras64, keras32, cols)))

    def result(self, recipe: str) -> OneStep:
        cross, torch_floor, keras_floor, cross64 = (np.array(col) for col in zip(*self.rows[recipe]))
        # Decision margins (l2compare.parity.onestep.decision_margin) cover the article's layers only:
        # not measured here, so no step is called a tie.
        return OneStep(self.tensors, cross, torch_floor, keras_floor, cross64, np.full(len(cross), np.inf))
