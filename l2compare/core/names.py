"""Every list of names the suite uses, written once. Imports nothing.

Models, Keras configurations, torch recipes, optimizers, modes, dtypes, and which tensors
each Keras model regularizes (by canonical name, "layer/kernel" | "layer/bias"; torch's
parameter names are derived from these by ``torch_impl.weights.torch_name``). Framework
columns are a registry of their own: ``l2compare.core.columns``.
"""
from __future__ import annotations

# The article's three models (DESIGN.md).
MODELS = ("mlp", "cnn", "mlp_bias")
# What the Keras user wrote.
KERAS_CONFIGS = ("l2", "wd", "none")
# How the PyTorch port is written (see torch_impl/recipes.py). The first five are the ports
# the experiments compare; `none` trains with no regularization at all.
TORCH_RECIPES = ("penalty", "coupled", "decoupled", "naive_wd", "naive_adamw", "none")
PORTS = TORCH_RECIPES[:-1]
OPTIMIZERS = ("sgd", "adam", "adamw")
MODES = ("native", "parity")
DTYPES = ("float32", "float64")

# The tensors the article's Keras models regularize, by canonical name: the `l2` placement of
# keras_impl/models.py, and the tensors whose Σw² every record reports, whatever its λ or recipe.
REGULARIZED = {
    "mlp": ("hidden/kernel",),
    "mlp_bias": ("hidden/kernel", "hidden/bias", "out/bias"),
    "cnn": ("conv1/kernel", "conv2/kernel"),
}
assert set(REGULARIZED) == set(MODELS)

# Each framework's reference: the configuration a Keras user writes (`l2`) and its exact port
# (`penalty`), the pair the article, sweep and headline tables put side by side.
REFERENCE = {"keras": "l2", "torch": "penalty"}


def regularizations(framework: str) -> tuple[str, ...]:
    """The vocabulary of ``framework``'s regularization: Keras configs or torch recipes."""
    return KERAS_CONFIGS if framework == "keras" else TORCH_RECIPES

