"""Run specs: frozen, validated, serializable, hashed. The one contract every run shares.

A ``RunSpec`` is self-contained: any worker, on any machine, can execute it from
its dict form and the result is recorded under ``spec.key`` (a hash of the spec).
Unknown keys and bad values are errors that name the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from l2compare.core import columns
from l2compare.core.names import DTYPES, KERAS_CONFIGS, MODELS, MODES, OPTIMIZERS, TORCH_RECIPES, regularizations

__all__ = ["DTYPES", "KERAS_CONFIGS", "MODELS", "MODES", "OPTIMIZERS", "TORCH_RECIPES", "OptimizerSpec", "RunSpec",
           "SpecError", "choice", "keyed", "code_fingerprint", "source_fingerprint"]


# The source that decides what a run computes. Its hash is part of every run key, so that a
# recorded run is reused only by the same code: after a change to training code, `make results`
# reruns what it affects instead of silently serving stale records. Packages are found through the
# import system (an installed wheel and a checkout hash the same way) and read recursively; the
# engine's workers decide which initial weights a parity-mode run starts from, so they count too.
FINGERPRINTED = ("l2compare.core", "keras_impl", "torch_impl", "l2compare.parity", "l2compare.engine.workers")


def source_files(name: str) -> list[tuple[str, Path]]:
    """Every ``.py`` file of module or package ``name``, as (path named from ``name``, file)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None and not spec.submodule_search_locations:
        raise RuntimeError(f"code fingerprint: {name!r} cannot be found by the import system")
    if spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0])
        files = sorted(root.rglob("*.py"))
    else:
        root, files = Path(spec.origin).parent, [Path(spec.origin)]
    if not files:
        raise RuntimeError(f"code fingerprint: {name!r} ({root}) holds no .py files")
    return [(f"{name}/{path.relative_to(root).as_posix()}", path) for path in files]


def source_fingerprint(*names: str) -> str:
    """A short hash of the source of the named modules and packages: relative paths and bytes."""
    digest = hashlib.sha256()
    for name in names:
        for relative, path in source_files(name):
            digest.update(relative.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    return source_fingerprint(*FINGERPRINTED)


def keyed(payload: dict) -> str:
    """Stable hash of ``payload`` and the code fingerprint: a store key."""
    blob = json.dumps({"spec": payload, "code": code_fingerprint()}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class SpecError(ValueError):
    """A spec with a bad value; the message names it and what is allowed."""


def choice(what: str, value, allowed) -> None:
    if value not in allowed:
        raise SpecError(f"unknown {what} {value!r}; allowed: {', '.join(map(str, allowed))}")


def _finite_nonneg(what: str, value) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise SpecError(f"{what} must be a finite number >= 0, got {value!r}")


def _positive_int(what: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{what} must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer and the hyperparameters the user set; None means that framework's default.

    ``momentum`` applies to sgd only. ``weight_decay`` is the optimizer's own argument
    (Keras config ``wd``; AdamW's default when None). ``exclude_bias`` mirrors
    Keras's ``exclude_from_weight_decay(var_names=["bias"])``.
    """

    name: str = "adam"
    lr: float | None = None
    momentum: float = 0.0
    beta_1: float | None = None
    beta_2: float | None = None
    epsilon: float | None = None
    weight_decay: float | None = None
    exclude_bias: bool = False

    def __post_init__(self):
        choice("optimizer", self.name, OPTIMIZERS)
        for what in ("lr", "momentum", "beta_1", "beta_2", "epsilon", "weight_decay"):
            _finite_nonneg(what, getattr(self, what))
        if self.lr is not None and self.lr == 0:
            raise SpecError("lr must be > 0")
        if self.momentum and self.name != "sgd":
            raise SpecError(f"momentum applies to sgd only, not {self.name!r}")
        for what in ("beta_1", "beta_2", "momentum"):
            value = getattr(self, what)
            if value is not None and value >= 1:
                raise SpecError(f"{what} must be < 1, got {value!r}")

    @property
    def label(self) -> str:
        """Short name used in tables: sgd, momentum, adam, adamw."""
        return "momentum" if self.name == "sgd" and self.momentum else self.name


@dataclass(frozen=True)
class RunSpec:
    """One training run of one framework.

    ``framework`` is a framework column (``l2compare.core.columns``: keras, torch, ...). ``regularization``
    is a Keras config (l2, wd, none) in a Keras column, a torch recipe (penalty, coupled,
    decoupled, naive_wd, naive_adamw, none) in a torch column.
    ``l2`` is λ; with ``l2 == 0`` the model has no regularizer (the article's baseline).
    """

    model: str = "mlp"
    framework: str = "keras"
    regularization: str = "l2"
    l2: float = 0.01
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    mode: str = "native"
    dataset: str = "digits"
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self):
        choice("model", self.model, MODELS)
        choice("framework column", self.framework, columns.names())
        choice(f"{self.framework} regularization", self.regularization,
               regularizations(columns.get(self.framework).framework))
        _finite_nonneg("l2 (λ)", self.l2)
        choice("mode", self.mode, MODES)
        choice("dtype", self.dtype, DTYPES)
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpecError(f"seed must be a whole number >= 0, got {self.seed!r}")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise SpecError(f"dataset must be a name, got {self.dataset!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunSpec":
        data = dict(data)
        _known("run spec", data, cls)
        opt = data.pop("optimizer", {})
        if isinstance(opt, dict):
            _known("optimizer", opt, OptimizerSpec)
            opt = OptimizerSpec(**opt)
        return cls(optimizer=opt, **data)

    @property
    def key(self) -> str:
        """Stable hash of everything that defines the run, code included (the store's key)."""
        return keyed(self.to_dict())

    def replace(self, **changes) -> "RunSpec":
        return dataclasses.replace(self, **changes)


def _known(what: str, data: dict, cls) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(f"unknown {what} key(s) {unknown}; allowed: {', '.join(sorted(names))}")
