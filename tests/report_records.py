"""Synthetic records for the reports tests, shaped like the store's, with numbers checkable by hand."""
from __future__ import annotations

import math

import pandas as pd

from l2compare.parity.onestep import TIE
from l2compare.parity.runner import SLACK
from l2compare.core.spec import OptimizerSpec, RunSpec

T975_DF1 = math.tan(math.pi * 0.475)  # Student t, 97.5%, 1 degree of freedom (2 seeds)
ADAM, SGD = OptimizerSpec("adam"), OptimizerSpec("sgd", lr=0.01)


def record(model="mlp", framework="keras", regularization="l2", l2=0.01, optimizer=ADAM, seed=0,
           test_accuracy=0.9, accuracy=0.95, reg_sq=4.0, norms=None, status="ok", epochs=2):
    """A run record shaped like the store's, with chosen final numbers; epoch e has Σw² = reg_sq·e/epochs."""
    spec = RunSpec(model=model, framework=framework, regularization=regularization, l2=l2,
                   optimizer=optimizer, epochs=epochs, seed=seed)
    norms = norms or {"hidden/kernel": math.sqrt(reg_sq), "hidden/bias": 0.5, "out/kernel": 3.0, "out/bias": 0.25}
    final = {"loss": 0.3, "data_loss": 0.2, "penalty": 0.1, "accuracy": accuracy, "test_accuracy": test_accuracy}
    history = [{**final, "epoch": e, "test_accuracy": test_accuracy * e / epochs, "norms": norms,
                "regularized_sq": reg_sq * e / epochs} for e in range(1, epochs + 1)]
    if status == "diverged":
        final = {**final, "loss": None}
    return {"key": spec.key, "spec": spec.to_dict(), "seed": seed, "status": status, "history": history,
            "norms": norms, "regularized_sq": reg_sq, "final": final, "wall_time_s": 1.5, "steps_per_s": 20.0,
            "versions": {"numpy": "2.0", framework: "9.9"}, "commit": "abc123", "backend": framework,
            "device": "cpu"}


def parity_record(row, column, dtype, worst, verdict):
    """A record as written before the one-step verdict: no score, no one-step data, no study flag."""
    return {"key": f"{row}{column}{dtype}", "row": row, "column": column, "dtype": dtype, "worst": worst,
            "worst_tensor": "out/kernel", "worst_step": 52, "per_tensor": {"out/kernel": worst},
            "loss_diff": worst / 10, "verdict": verdict, "steps": 52,
            "case": {"model": "mlp", "dataset": "article", "n_samples": 100, "batch_size": 32, "seed": 0,
                     "optimizer": {"name": "adam"}, "torch_epsilon": 1e-7},
            "versions": {"keras": "3.0"}, "commit": "abc123"}


def onestep(cross, floor, margins, outliers=None):
    """A record's one-step summary from per-step series (max over tensors), as OneStep.summary writes it."""
    cross, floor = list(cross), list(floor)
    excess = max(c - f for c, f in zip(cross, floor)) - SLACK
    return {"median": float(pd.Series(cross).median()), "max": max(cross),
            "floor_median": float(pd.Series(floor).median()),
            "max_excess": excess, "cross64_max": 1e-16, "per_tensor_median": {}, "ties": sum(m < TIE for m in margins),
            "min_margin": min(margins), "outliers": outliers or {},
            "series": {"cross": cross, "floor": floor, "torch_floor": [f / 2 for f in floor],
                       "keras_floor": [f / 2 for f in floor], "margin": list(margins)}}


def new_record(row, column, dtype="float32", verdict="exact", *, cross=(1e-7, 2e-7, 1e-7, 3e-7),
               floor=(2e-7, 3e-7, 2e-7, 4e-7), margins=(1.0, 1e-9, 1.0, 1e-3), outliers=None,
               trajectory=(1e-8, 2e-8, 4e-6, 3e-5), envelope=(1e-8, 5e-7, 6e-6, 2e-4), study=False, extra=False,
               model="mlp", dataset="article", optimizer=None, seed=0):
    """A record in the current format: float32 with one-step data, trajectory and envelope; float64 without."""
    optimizer = optimizer or {"name": "adam", "lr": None, "momentum": 0.0}
    one = onestep(cross, floor, margins, outliers) if dtype == "float32" else None
    rec = parity_record(row, column, dtype, max(trajectory), verdict)
    rec["case"].update(model=model, dataset=dataset, seed=seed, optimizer=optimizer, recipe="penalty",
                       keras_config="l2")
    rec.update(key=f"{row}{column}{dtype}{seed}", steps=len(trajectory), study=study, extra=extra,
               score=one["median"] if one else max(trajectory), trajectory=list(trajectory),
               envelope=list(envelope) if dtype == "float32" else None, onestep=one, machine={"cpu": "test"})
    return rec


MOMENTUM = {"name": "sgd", "lr": 0.01, "momentum": 0.9}


def study(model="cnn", optimizer="momentum", dataset="article", seeds=(0, 1), **kw):
    spec = {"momentum": MOMENTUM, "sgd": {"name": "sgd", "lr": 0.01}, "adam": {"name": "adam"}}[optimizer]
    return [new_record(f"{model} / {optimizer} / {dataset}", f"seed {s}", study=True, model=model, dataset=dataset,
                       optimizer=spec, seed=s, **kw) for s in seeds]


def two_seed_article():
    """Keras l2 accuracies 0.9 / 0.8, torch penalty 0.7 / 0.6, at λ = 0.01 and λ = 0."""
    out = []
    for l2 in (0.01, 0.0):
        for seed, acc in ((0, 0.9), (1, 0.8)):
            out.append(record(l2=l2, seed=seed, test_accuracy=acc, reg_sq=4.0 + 5 * seed))
            out.append(record(framework="torch", regularization="penalty", l2=l2, seed=seed,
                              test_accuracy=acc - 0.2, reg_sq=1.0))
    return out


def cells(markdown: str) -> list[list[str]]:
    """The rows of every Markdown table in the text, as stripped cell strings."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in markdown.splitlines() if line.startswith("|")]


def keys(records):
    return {r["key"] for r in records}
