"""Data sets shared by both frameworks.

Every loader returns the same thing, so the Keras and PyTorch sides can never
disagree about the input: float32 images in [0, 1] of shape (N, 28, 28, 1)
(channels-last, Keras's layout) and int64 labels in 0..9 of shape (N,).

Names accepted by :func:`load`:

- ``digits`` (default, offline): scikit-learn's bundled 8×8 digits, resampled
  to 28×28, with a fixed stratified split.
- ``article``: the source article's random data (x ~ U[0,1), uniform labels).
- ``mnist`` / ``fashion_mnist``: read from the Keras cache directory, exactly
  where ``keras.datasets`` keeps them, downloaded there if missing.
- ``npz:PATH``: a file in ``keras.datasets`` .npz format.

Plain NumPy/SciPy on purpose: this module never imports a framework.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import struct
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)  # (H, W, C): channels-last, as Keras models expect
FLAT_SIZE = 28 * 28

# keras.datasets origins; the cache layout below mirrors keras.utils.get_file
# so a cache filled by Keras is reused here and vice versa.
_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
MNIST_URL = _KERAS_ORIGIN + "mnist.npz"
FASHION_URL = _KERAS_ORIGIN
FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
DOWNLOAD_TIMEOUT_S = 30

ARTICLE_SAMPLES = 1000  # the article's 1000 random samples (and as many held out)
DIGITS_TEST_SIZE = 0.2
DIGITS_SPLIT_SEED = 0  # fixed: the split is part of the data set, not of a run


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
        return _load_npz(name[len(NPZ_PREFIX):], name=name)
    if name == "digits":
        return _copy(_digits())
    if name == "article":
        return _article(seed)
    if name == "mnist":
        return _mnist()
    return _fashion_mnist()


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


# --------------------------------------------------------------------------- Keras cache


def keras_cache_dir() -> Path:
    """Where keras.datasets caches files: $KERAS_HOME/datasets or ~/.keras/datasets."""
    home = os.environ.get("KERAS_HOME")
    base = Path(home) if home else Path.home() / ".keras"
    return base / "datasets"


def _download(url: str, dest: Path) -> None:
    """Download `url` to `dest` atomically (temp file, then os.replace).

    A half-finished download never appears at `dest`, so an interrupted run
    cannot leave a corrupt cache behind. Tests monkeypatch this function.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
            url, timeout=DOWNLOAD_TIMEOUT_S
        ) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached(name: str, relpath: str, url: str) -> Path:
    """Path of a cached file, downloading it first if needed."""
    dest = keras_cache_dir() / relpath
    if dest.is_file():
        return dest
    try:
        _download(url, dest)
    except Exception as exc:  # offline, DNS, HTTP 404, disk full: all the same to the user
        raise DatasetError(
            f"{name}: not cached at {dest} and download from {url} failed "
            f"({type(exc).__name__}: {exc}); put the file there, "
            f"or use 'digits' (offline) or npz:PATH"
        ) from exc
    return dest


def _mnist() -> Dataset:
    path = _cached("mnist", "mnist.npz", MNIST_URL)
    return _load_npz(path, name="mnist")


def _fashion_mnist() -> Dataset:
    arrays = []
    for fname in FASHION_FILES:
        path = _cached("fashion_mnist", f"fashion-mnist/{fname}", FASHION_URL + fname)
        arrays.append(_read_idx_gz(path, name="fashion_mnist"))
    y_train, x_train, y_test, x_test = arrays  # FASHION_FILES order
    return _from_arrays("fashion_mnist", str(keras_cache_dir() / "fashion-mnist"),
                        x_train, y_train, x_test, y_test)


# --------------------------------------------------------------------------- IDX

# IDX type codes (third magic byte) → big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(buf: bytes) -> np.ndarray:
    """Parse an IDX file (the MNIST format) into an array of native byte order.

    Layout: magic = 0x00 0x00 <type code> <ndim>, then ndim big-endian uint32
    dimensions, then the data, big-endian, C order. Raises ValueError if the
    header is wrong or the data length does not match the dimensions.
    """
    if len(buf) < 4:
        raise ValueError(f"too short for an IDX header ({len(buf)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", buf[:4])
    if zero != 0 or code not in _IDX_DTYPES:
        raise ValueError(f"bad IDX magic number 0x{buf[:4].hex()}")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError(f"IDX header truncated (expected {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", buf[4:header])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(buf) - header != expected:
        raise ValueError(
            f"IDX data is {len(buf) - header} bytes, dimensions {dims} need {expected}"
        )
    data = np.frombuffer(buf, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _read_idx_gz(path: Path, *, name: str) -> np.ndarray:
    try:
        return parse_idx(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, ValueError) as exc:
        raise DatasetError(
            f"{name}: cannot read {path} ({exc}); delete it to download it again"
        ) from exc


# --------------------------------------------------------------------------- npz

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _load_npz(path: str | Path, *, name: str) -> Dataset:
    """Load a keras.datasets-style .npz (x_train, y_train, x_test, y_test)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{name}: file {path} not found; give an existing .npz file")
    try:
        # allow_pickle=False: a data file must not be able to run code.
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise DatasetError(f"{name}: {path} is a single array, not an .npz archive "
                               f"with {', '.join(_NPZ_KEYS)}")
        with loaded as npz:
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            if missing:
                raise DatasetError(
                    f"{name}: {path} lacks {', '.join(missing)}; "
                    f"it needs arrays {', '.join(_NPZ_KEYS)}"
                )
            arrays = [npz[k] for k in _NPZ_KEYS]
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{name}: cannot read {path} as .npz ({exc})") from exc
    return _from_arrays(name, str(path), *arrays)


def _from_arrays(name: str, source: str, x_train, y_train, x_test, y_test) -> Dataset:
    """Validate and convert raw arrays to the common format."""
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
