"""The one format every data set loader returns.

The Keras and PyTorch sides must never disagree about the input, so every
loader hands back the same thing:

- images: float32 in [0, 1], shape (N, 28, 28, 1), channels-last (Keras's
  layout);
- labels: int64 in 0..9, shape (N,), one per image.

Raw arrays from files become this format only through :func:`from_arrays`,
which checks them and says in one line what is wrong.

Plain NumPy on purpose: this module never imports a framework.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)  # (H, W, C): channels-last, as Keras models expect
FLAT_SIZE = 28 * 28


class DatasetError(ValueError):
    """A data set cannot be loaded; the message is one line saying what to do."""


@dataclass(frozen=True, eq=False)  # eq=False: `==` on arrays is ambiguous
class Dataset:
    """A train/test split. Images (N, 28, 28, 1) float, labels (N,) int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @staticmethod
    def flat(x: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) → (N, 784) in C order, i.e. Keras Flatten's H,W,C order."""
        return np.reshape(x, (len(x), FLAT_SIZE))

    @staticmethod
    def images(x: np.ndarray) -> np.ndarray:
        """(N, 784), (N, 28, 28) or (N, 28, 28, 1) → (N, 28, 28, 1)."""
        return np.reshape(x, (len(x), *IMAGE_SHAPE))

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES

    def astype(self, dtype) -> "Dataset":
        """A copy with images in float32 or float64 (labels stay int64)."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise DatasetError(
                f"{self.name}: images can be float32 or float64, not {dtype}"
            )
        return dataclasses.replace(
            self,
            x_train=self.x_train.astype(dtype, copy=True),
            y_train=self.y_train.copy(),
            x_test=self.x_test.astype(dtype, copy=True),
            y_test=self.y_test.copy(),
        )


# --------------------------------------------------------------------------- raw arrays


def from_arrays(name: str, source: str, x_train, y_train, x_test, y_test) -> Dataset:
    """Validate and convert raw arrays to the common format.

    `name` and `source` (a file or folder) only go into error messages, so the
    user learns which data set and which file to fix.
    """
    x_train = _images(x_train, name=name, source=source, key="x_train")
    x_test = _images(x_test, name=name, source=source, key="x_test")
    y_train = _labels(y_train, len(x_train), name=name, source=source, key="y_train")
    y_test = _labels(y_test, len(x_test), name=name, source=source, key="y_test")
    return Dataset(name, x_train, y_train, x_test, y_test)


def _images(x: np.ndarray, *, name: str, source: str, key: str) -> np.ndarray:
    """Any accepted image array → float32 (N, 28, 28, 1) in [0, 1]."""

    def fail(problem: str) -> DatasetError:
        return DatasetError(f"{name}: {key} in {source} {problem}")

    x = np.asarray(x)
    accepted = x.ndim == 2 and x.shape[1:] == (FLAT_SIZE,)
    accepted |= x.ndim == 3 and x.shape[1:] == IMAGE_SHAPE[:2]
    accepted |= x.ndim == 4 and x.shape[1:] == IMAGE_SHAPE
    if not accepted or len(x) == 0:
        raise fail(f"has shape {x.shape}; use (N,28,28), (N,28,28,1) or (N,784) with N > 0")
    if x.dtype == np.uint8:
        # keras.datasets convention: raw 0..255 pixels.
        x = x.astype(np.float32) / np.float32(255)
    elif np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise fail("contains NaN or infinity; images must be finite")
        if x.min() < 0 or x.max() > 1:
            raise fail(f"has values in [{x.min():g}, {x.max():g}]; floats must be in [0, 1]")
        x = x.astype(np.float32)
    else:
        raise fail(f"has dtype {x.dtype}; use uint8 (0..255) or floats in [0, 1]")
    return np.ascontiguousarray(x.reshape(len(x), *IMAGE_SHAPE))


def _labels(y: np.ndarray, n: int, *, name: str, source: str, key: str) -> np.ndarray:
    """Integer labels in 0..9 → int64 (N,), one per image."""

    def fail(problem: str) -> DatasetError:
        return DatasetError(f"{name}: {key} in {source} {problem}")

    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # (N, 1) column vectors are common
        y = y[:, 0]
    if y.shape != (n,):
        raise fail(f"has shape {y.shape}; need ({n},), one label per image")
    if not np.issubdtype(y.dtype, np.integer):
        raise fail(f"has dtype {y.dtype}; labels must be integers 0..9")
    if y.min() < 0 or y.max() >= NUM_CLASSES:
        raise fail(f"has labels in {y.min()}..{y.max()}; allowed are 0..{NUM_CLASSES - 1}")
    return y.astype(np.int64)
