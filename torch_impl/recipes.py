"""The ways to write Keras's L2 in PyTorch, each built from the model's L2 coefficients.

A recipe says, per tensor (canonical name, "hidden/kernel"), what is done to it:

* ``penalty``   — add Σ λ·Σw² to the loss (exact for Keras ``l2``, any optimizer);
* ``coupled``   — gradient += 2λ·w on the regularized tensors only: torch's own
  ``weight_decay=2λ`` in a parameter group (exact for Keras ``l2``);
* ``decoupled`` — w −= lr·wd·w before each step (what Keras's optimizer
  ``weight_decay`` does; torch AdamW is this for Adam). With an optimizer
  ``weight_decay`` it decays every tensor but the excluded ones, as Keras does;
  without one it decays the regularized tensors by 2λ, the closest decoupled
  analogue of ``l2`` (and not equal to it except for plain SGD);
* mistakes: ``naive_wd`` (``weight_decay=λ`` on all parameters: half the strength,
  and biases decayed) and ``naive_adamw`` (``AdamW(weight_decay=λ)`` standing in for L2).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from l2compare.core.names import TORCH_RECIPES
from torch_impl import l2 as l2_module
from torch_impl.weights import named_variables


def _check(name: str) -> None:
    if name not in TORCH_RECIPES:
        raise ValueError(f"unknown torch recipe {name!r}; allowed: {', '.join(TORCH_RECIPES)}")


def model_l2(regularization: str, l2: float) -> float:
    """λ for the Keras placement the torch model carries (mirror: keras_impl.recipes.model_l2).

    Every recipe is compared against Keras ``l2`` at λ, so every recipe but ``none`` carries it:
    the history reports Keras's penalty whatever the recipe minimizes.
    """
    _check(regularization)
    return 0.0 if regularization == "none" else l2


@dataclass(frozen=True)
class Recipe:
    """Per tensor (canonical name): λ in the loss penalty, coupled decay c (g += c·w), decoupled decay wd."""

    name: str
    penalty: dict[str, float] = field(default_factory=dict)
    coupled: dict[str, float] = field(default_factory=dict)
    decoupled: dict[str, float] = field(default_factory=dict)


def build(name: str, model: nn.Module, *, l2: float = 0.0, weight_decay: float | None = None,
          exclude_bias: bool = False) -> Recipe:
    """The recipe ``name`` for ``model`` (whose ``l2_coefficients`` say where Keras puts L2).

    ``l2`` is the λ the naive recipes use; ``weight_decay``/``exclude_bias`` mirror a Keras
    optimizer's ``weight_decay`` and ``exclude_from_weight_decay(var_names=["bias"])``.
    """
    _check(name)
    coefs = l2_module.coefficients(model)
    everything = [n for n, p in named_variables(model) if p.requires_grad]
    if name == "penalty":
        return Recipe(name, penalty=coefs)
    if name == "coupled":
        return Recipe(name, coupled={n: 2.0 * lam for n, lam in coefs.items()})
    if name == "decoupled":
        if weight_decay is None:
            return Recipe(name, decoupled={n: 2.0 * lam for n, lam in coefs.items()})
        keep = [n for n in everything if not (exclude_bias and n.endswith("bias"))]
        return Recipe(name, decoupled={n: float(weight_decay) for n in keep if weight_decay})
    if name == "naive_wd":
        return Recipe(name, coupled={n: float(l2) for n in everything if l2})
    if name == "naive_adamw":
        return Recipe(name, decoupled={n: float(l2) for n in everything if l2})
    return Recipe(name)


def for_optimizer(name: str, model: nn.Module, spec, *, l2: float, adamw_default: float) -> Recipe:
    """``build`` for an optimizer spec (l2compare.core.spec.OptimizerSpec).

    AdamW decays every tensor (bar the excluded) whatever else the port does, as its Keras
    and torch classes do; ``adamw_default`` is the weight decay used when the spec sets none
    (Keras 0.004, torch 0.01).
    """
    wd = spec.weight_decay
    if spec.name == "adamw" and wd is None:
        wd = adamw_default
    recipe = build(name, model, l2=l2, weight_decay=wd if name == "decoupled" else None,
                   exclude_bias=spec.exclude_bias)
    if spec.name != "adamw" or name in ("decoupled", "naive_adamw"):
        return recipe
    everything = build("decoupled", model, weight_decay=wd, exclude_bias=spec.exclude_bias).decoupled
    return Recipe(recipe.name, penalty=recipe.penalty, coupled=recipe.coupled,
                  decoupled={**everything, **recipe.decoupled})
