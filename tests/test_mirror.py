"""keras_impl and torch_impl mirror each other: the same modules, the same public functions
with the same signatures, so that a reader can put them side by side (DESIGN.md).

What exists on one side only is listed below with the reason; anything else that drifts
fails here.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

keras_impl = pytest.importorskip("keras_impl")
torch_impl = pytest.importorskip("torch_impl")

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT / "keras_impl").glob("*.py") if p.stem != "__init__")

# Public functions one framework needs and the other has no counterpart for.
SIDE_ONLY = {
    ("keras_impl", "l2", "l2_of"): "reads λ off a Keras regularizer object; torch has no regularizer objects",
    ("torch_impl", "l2", "terms"): "resolves (parameter, λ) pairs once per fit; Keras adds its own penalties",
    ("torch_impl", "l2", "penalty_of"): "the fused penalty over those pairs; Keras adds its own penalties",
    ("keras_impl", "train", "compile_model"): "Keras trains a compiled model; torch has no compile step",
    ("keras_impl", "train", "jit_compile_used"): "whether that compile step uses XLA; torch has no compile step",
    ("torch_impl", "recipes", "build"): "a torch recipe as parameter groups; Keras configs are layer arguments",
    ("torch_impl", "recipes", "for_optimizer"): "the same, for an optimizer spec (AdamW decays everything)",
    ("torch_impl", "optim", "stock_optimizer"): "torch.optim's own classes (native mode); Keras's are the reference",
    ("torch_impl", "weights", "canonical_name"): "torch parameter name -> Keras's; Keras's names are canonical",
    ("torch_impl", "weights", "torch_name"): "Keras's name -> torch's parameter name",
    ("torch_impl", "weights", "to_canonical"): "torch layout -> Keras's; Keras's layout is canonical",
    ("torch_impl", "weights", "from_canonical"): "Keras's layout -> torch's",
    ("torch_impl", "worker", "keras_lambda"): "λ rounded as TensorFlow rounds it, for parity mode; Keras does it itself",
    ("torch_impl", "optim", "hyperparameters_of"): "hyperparameters cast as a given Keras backend casts them; "
                                                   "Keras does it itself",
    ("torch_impl", "optim", "keras_float"): "one hyperparameter, cast so; Keras does it itself",
}


def _functions(package, module_name: str) -> dict[str, inspect.Signature]:
    module = __import__(f"{package.__name__}.{module_name}", fromlist=["_"])
    return {name: inspect.signature(obj) for name, obj in vars(module).items()
            if inspect.isfunction(obj) and not name.startswith("_") and obj.__module__ == module.__name__}


def _shape(signature: inspect.Signature) -> list[tuple]:
    """Parameter names, kinds and defaults: what a caller sees (annotations may name each framework's types)."""
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_the_same_module_names():
    torch_modules = sorted(p.stem for p in (ROOT / "torch_impl").glob("*.py") if p.stem != "__init__")
    assert MODULES == torch_modules


@pytest.mark.parametrize("module", MODULES)
def test_the_same_functions_with_the_same_signatures(module):
    keras_side, torch_side = _functions(keras_impl, module), _functions(torch_impl, module)
    for package, mine, theirs in (("keras_impl", keras_side, torch_side), ("torch_impl", torch_side, keras_side)):
        for name in sorted(set(mine) - set(theirs)):
            assert (package, module, name) in SIDE_ONLY, (
                f"{package}.{module}.{name} has no mirror in the other package; add it there, or list it in "
                "SIDE_ONLY with the reason")
    for name in sorted(set(keras_side) & set(torch_side)):
        assert _shape(keras_side[name]) == _shape(torch_side[name]), (
            f"{module}.{name}: keras_impl{keras_side[name]} vs torch_impl{torch_side[name]}")


def test_side_only_entries_exist():
    """A stale SIDE_ONLY entry would let a later mirror drift through unseen."""
    for package, module, name in SIDE_ONLY:
        assert name in _functions(keras_impl if package == "keras_impl" else torch_impl, module), (package, module, name)


def test_the_two_training_runs_implement_the_same_template():
    from l2compare.core.training import TrainingRun
    from keras_impl.worker import Run as KerasRun
    from torch_impl.worker import Run as TorchRun

    assert issubclass(KerasRun, TrainingRun) and issubclass(TorchRun, TrainingRun)
    assert not KerasRun.__abstractmethods__ and not TorchRun.__abstractmethods__
    hooks = sorted(TrainingRun.__abstractmethods__)
    for hook in hooks:
        assert _shape(inspect.signature(getattr(KerasRun, hook))) == _shape(inspect.signature(getattr(TorchRun, hook))), hook
    # Neither side overrides the template itself: it is written once.
    for method in ("prepare", "train", "initial_weights", "run", "timed"):
        assert getattr(KerasRun, method) is getattr(TrainingRun, method) is getattr(TorchRun, method)


def test_the_check_can_fail():
    import inspect as _inspect

    def a(model, spec, regularization): ...

    def b(model, regularization, spec): ...

    assert _shape(_inspect.signature(a)) != _shape(_inspect.signature(b))


def test_one_fit_result():
    from l2compare.core.training import FitResult
    from keras_impl import train as keras_train
    from torch_impl import train as torch_train

    assert keras_train.FitResult is FitResult is torch_train.FitResult
