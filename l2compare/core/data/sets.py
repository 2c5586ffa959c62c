"""Data sets shared by both frameworks, by name.

Every loader returns the common format described in :mod:`l2compare.core.data.format`, so
the Keras and PyTorch sides can never disagree about the input.

Names accepted by :func:`load`:

- ``digits`` (default, offline): scikit-learn's bundled 8×8 digits, resampled
  to 28×28, with a fixed stratified split.
- ``article``: the source article's random data (x ~ U[0,1), uniform labels).
- ``mnist`` / ``fashion_mnist``: read from the Keras cache directory, exactly
  where ``keras.datasets`` keeps them, downloaded there if missing
  (:mod:`l2compare.core.data.files`).
- ``npz:PATH``: a file in ``keras.datasets`` .npz format (:mod:`l2compare.core.data.files`).

The format and the file loaders live in their own modules; the names users
import (``Dataset``, ``DatasetError``, ``keras_cache_dir``, ...) are re-exported
here so ``from l2compare.core.data.sets import ...`` stays the one entry point.

Plain NumPy/SciPy on purpose: this module never imports a framework.
"""

from __future__ import annotations

import functools

import numpy as np

from l2compare.core.data.files import keras_cache_dir, load_fashion_mnist, load_mnist, load_npz
from l2compare.core.data.format import IMAGE_SHAPE, NUM_CLASSES, Dataset, DatasetError

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "NUM_CLASSES",
    "IMAGE_SHAPE",
    "keras_cache_dir",
    "load",
    "validate_name",
]

DATASETS = ("digits", "article", "mnist", "fashion_mnist")
NPZ_PREFIX = "npz:"

ARTICLE_SAMPLES = 1000  # the article's 1000 random samples (and as many held out)
DIGITS_TEST_SIZE = 0.2
DIGITS_SPLIT_SEED = 0  # fixed: the split is part of the data set, not of a run


# --------------------------------------------------------------------------- names


def validate_name(name: str) -> str:
    """Return `name` if :func:`load` accepts it, else raise DatasetError.

    Cheap (loads nothing), so the CLI can reject a typo before starting work.
    """
    if isinstance(name, str) and name.startswith(NPZ_PREFIX):
        if not name[len(NPZ_PREFIX):].strip():
            raise DatasetError(f"{name!r}: give a file after 'npz:', e.g. npz:data/my.npz")
        return name
    if name not in DATASETS:
        allowed = ", ".join(DATASETS)
        raise DatasetError(f"unknown data set {name!r}: use one of {allowed}, or npz:PATH")
    return name


def load(name: str = "digits", *, seed: int = 0) -> Dataset:
    """Load a data set by name; `seed` only affects ``article``.

    Returns fresh arrays on every call, so callers may modify them freely.
    """
    validate_name(name)
    if name.startswith(NPZ_PREFIX):
        return load_npz(name[len(NPZ_PREFIX):], name=name)
    if name == "digits":
        return _copy(_digits())
    if name == "article":
        return _article(seed)
    if name == "mnist":
        return load_mnist()
    return load_fashion_mnist()


def _copy(ds: Dataset) -> Dataset:
    # The cached Dataset must stay pristine even if a caller normalizes in place.
    return ds.astype(np.float32)


# --------------------------------------------------------------------------- digits


@functools.lru_cache(maxsize=1)
def _digits() -> Dataset:
    """sklearn's 1797 8×8 digits (0..16) as 28×28 [0,1] images, fixed split."""
    # Imported here: scikit-learn and scipy.ndimage are slow to import and only
    # this loader needs them.
    from scipy import ndimage
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    images = raw.images.astype(np.float64) / 16.0  # (1797, 8, 8), values 0..16
    # Bilinear (order=1) resampling cannot overshoot like a cubic spline would;
    # the clip only removes rounding noise.
    zoomed = ndimage.zoom(images, (1, 28 / 8, 28 / 8), order=1)  # (1797, 28, 28)
    x = np.clip(zoomed, 0.0, 1.0).astype(np.float32)[..., np.newaxis]
    y = raw.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    return Dataset("digits", x_train, y_train, x_test, y_test)


# --------------------------------------------------------------------------- article


def _article(seed: int) -> Dataset:
    """The article's random data: x ~ U[0,1), labels uniform in 0..9."""
    rng = np.random.default_rng(seed)

    def draw() -> tuple[np.ndarray, np.ndarray]:
        # Drawn directly in float32: casting float64 draws would round some
        # values just below 1 up to exactly 1.0, leaving [0, 1).
        x = rng.random((ARTICLE_SAMPLES, *IMAGE_SHAPE), dtype=np.float32)
        y = rng.integers(0, NUM_CLASSES, size=ARTICLE_SAMPLES, dtype=np.int64)
        return x, y

    x_train, y_train = draw()
    x_test, y_test = draw()  # held out, drawn the same way after the training set
    return Dataset("article", x_train, y_train, x_test, y_test)
