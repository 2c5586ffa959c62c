"""Data sets read from files: MNIST and Fashion-MNIST in the Keras cache, and
``.npz`` files in ``keras.datasets`` format.

MNIST and Fashion-MNIST are read from the Keras cache directory, exactly where
``keras.datasets`` keeps them, and downloaded there if missing.

Every loader returns the common format of :mod:`l2compare.core.data.format`. Plain NumPy on
purpose: this module never imports a framework.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from l2compare.core.data.format import Dataset, DatasetError, from_arrays

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


# --------------------------------------------------------------------------- Keras cache


def keras_cache_dir() -> Path:
    """Where keras.datasets caches files: $KERAS_HOME/datasets or ~/.keras/datasets."""
    home = os.environ.get("KERAS_HOME")
    base = Path(home) if home else Path.home() / ".keras"
    return base / "datasets"


def _download(url: str, dest: Path) -> None:
    """Download `url` to `dest` atomically (temp file, then os.replace).

    A half-finished download never appears at `dest`, so an interrupted run
    cannot leave a corrupt cache behind. Tests monkeypatch this function
    (here, in l2compare.core.data.files: `_cached` looks it up in this module).
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


def load_mnist() -> Dataset:
    """MNIST from the Keras cache (``mnist.npz``), downloaded there if missing."""
    path = _cached("mnist", "mnist.npz", MNIST_URL)
    return load_npz(path, name="mnist")


def load_fashion_mnist() -> Dataset:
    """Fashion-MNIST from the Keras cache (four gzipped IDX files), downloaded if missing."""
    arrays = []
    for fname in FASHION_FILES:
        path = _cached("fashion_mnist", f"fashion-mnist/{fname}", FASHION_URL + fname)
        arrays.append(_read_idx_gz(path, name="fashion_mnist"))
    y_train, x_train, y_test, x_test = arrays  # FASHION_FILES order
    return from_arrays("fashion_mnist", str(keras_cache_dir() / "fashion-mnist"),
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


def load_npz(path: str | Path, *, name: str) -> Dataset:
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
    return from_arrays(name, str(path), *arrays)
