"""Tests for l2compare.core.data.files: MNIST and Fashion-MNIST in the Keras cache, downloads, npz files.

No network: `l2compare.core.data.files._download` (the one `_cached` calls) is always monkeypatched.
"""
from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from l2compare.core.data import sets as data, files as data_files
from l2compare.core.data.sets import Dataset, DatasetError
from data_checks import assert_common_format


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache; any download attempt fails the test loudly."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def no_network(url, dest):
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(data_files, "_download", no_network)
    return tmp_path / "keras" / "datasets"


# ------------------------------------------------------------------ mnist


def test_mnist_loads_from_keras_cache(keras_home):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    x_train[0, 0, 0], x_train[0, 0, 1] = 255, 0
    y_train = np.array([0, 1, 2, 9, 5], dtype=np.uint8)
    y_test = np.array([3, 4, 9], dtype=np.uint8)
    keras_home.mkdir(parents=True)
    np.savez(keras_home / "mnist.npz", x_train=x_train, y_train=y_train,
             x_test=x_test, y_test=y_test)

    ds = data.load("mnist")
    assert ds.name == "mnist"
    assert_common_format(ds, 5, 3)
    assert ds.x_train[0, 0, 0, 0] == 1.0 and ds.x_train[0, 0, 1, 0] == 0.0
    np.testing.assert_array_equal(ds.x_train[..., 0], x_train.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.x_test[..., 0], x_test.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.y_train, [0, 1, 2, 9, 5])
    np.testing.assert_array_equal(ds.y_test, [3, 4, 9])


def test_keras_cache_dir_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_files.keras_cache_dir() == tmp_path / ".keras" / "datasets"


# ------------------------------------------------------------------ fashion_mnist


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Independent IDX writer: magic 00 00 08 ndim, big-endian uint32 dims, bytes."""
    assert array.dtype == np.uint8
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def test_fashion_mnist_parses_gzipped_idx(keras_home):
    folder = keras_home / "fashion-mnist"
    x_train = np.arange(4 * 28 * 28, dtype=np.int64).reshape(4, 28, 28) % 256
    x_train = x_train.astype(np.uint8)
    x_test = np.full((2, 28, 28), 51, dtype=np.uint8)
    x_test[1, 27, 27] = 255
    y_train = np.array([9, 0, 3, 7], dtype=np.uint8)
    y_test = np.array([1, 8], dtype=np.uint8)
    write_idx_gz(folder / "train-images-idx3-ubyte.gz", x_train)
    write_idx_gz(folder / "train-labels-idx1-ubyte.gz", y_train)
    write_idx_gz(folder / "t10k-images-idx3-ubyte.gz", x_test)
    write_idx_gz(folder / "t10k-labels-idx1-ubyte.gz", y_test)

    ds = data.load("fashion_mnist")
    assert_common_format(ds, 4, 2)
    # Row-major pixel order survives: pixel (r, c) of image 0 is (r*28 + c) % 256.
    assert ds.x_train[0, 1, 2, 0] == np.float32(30) / np.float32(255)
    np.testing.assert_array_equal(ds.x_train[..., 0], x_train.astype(np.float32) / np.float32(255))
    assert ds.x_test[0, 0, 0, 0] == np.float32(0.2)  # 51 / 255
    assert ds.x_test[1, 27, 27, 0] == 1.0
    np.testing.assert_array_equal(ds.y_train, [9, 0, 3, 7])
    np.testing.assert_array_equal(ds.y_test, [1, 8])


def test_parse_idx_reads_big_endian_wider_types():
    values = np.array([[1, -2, 70000], [0, 5, -1]], dtype=np.int32)
    buf = struct.pack(">HBB", 0, 0x0C, 2) + struct.pack(">2I", 2, 3) + values.astype(">i4").tobytes()
    out = data_files.parse_idx(buf)
    np.testing.assert_array_equal(out, values)
    assert out.dtype == np.int32 and out.dtype.isnative


@pytest.mark.parametrize(
    "buf, problem",
    [
        (b"\x00\x01\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"\x00\x00", "need 3"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 3), "truncated"),
    ],
)
def test_parse_idx_rejects_bad_files(buf, problem):
    with pytest.raises(ValueError, match=problem):
        data_files.parse_idx(buf)


def test_corrupt_cached_idx_names_file(keras_home):
    folder = keras_home / "fashion-mnist"
    for fname in data_files.FASHION_FILES:
        write_idx_gz(folder / fname, np.zeros((1,), dtype=np.uint8))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"fashion_mnist: cannot read .*train-labels-idx1-ubyte\.gz"):
        data.load("fashion_mnist")


# ------------------------------------------------------------------ downloads


@pytest.mark.parametrize("name, url", [
    ("mnist", data_files.MNIST_URL),
    ("fashion_mnist", data_files.FASHION_URL + "train-labels-idx1-ubyte.gz"),
])
def test_offline_without_cache_raises_dataset_error(keras_home, monkeypatch, name, url):
    def offline(url, dest):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data_files, "_download", offline)
    with pytest.raises(DatasetError) as info:
        data.load(name)
    message = str(info.value)
    assert message.startswith(f"{name}: not cached at {keras_home}")
    assert url in message and "digits" in message and "npz:PATH" in message
    assert "\n" not in message


def test_no_network_patch_reaches_the_loaders(keras_home):
    # The fixture's patch must hit the `_download` the loaders really call:
    # with an empty cache, loading reaches it and fails with its message.
    for name in ("mnist", "fashion_mnist"):
        with pytest.raises(DatasetError, match="unexpected download"):
            data.load(name)
    assert not hasattr(data, "_download")  # no second copy a patch could miss


def test_missing_cache_is_downloaded_to_keras_path(keras_home, monkeypatch):
    calls = []

    def fake_download(url, dest):
        calls.append((url, dest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        np.savez(dest.with_suffix(".tmp.npz"), x_train=np.zeros((2, 784), np.uint8),
                 y_train=np.array([1, 2]), x_test=np.zeros((1, 784), np.uint8), y_test=np.array([3]))
        dest.with_suffix(".tmp.npz").rename(dest)

    monkeypatch.setattr(data_files, "_download", fake_download)
    ds = data.load("mnist")
    assert calls == [(data_files.MNIST_URL, keras_home / "mnist.npz")]
    assert_common_format(ds, 2, 1)
    data.load("mnist")  # now cached: no second download
    assert len(calls) == 1


def test_download_is_atomic(tmp_path):
    # file:// URLs go through the same urllib code path without any network.
    src = tmp_path / "src.bin"
    src.write_bytes(b"\x01\x02" * 1000)
    dest = tmp_path / "cache" / "sub" / "file.bin"
    data_files._download(src.as_uri(), dest)
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]

    dest2 = tmp_path / "cache" / "sub" / "missing.bin"
    with pytest.raises(OSError):
        data_files._download((tmp_path / "nope").as_uri(), dest2)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]  # no partial file left


# ------------------------------------------------------------------ npz:PATH


def save_npz(path: Path, **overrides) -> Path:
    arrays = {
        "x_train": np.full((4, 28, 28), 255, dtype=np.uint8),
        "y_train": np.array([0, 1, 2, 3]),
        "x_test": np.zeros((2, 28, 28), dtype=np.uint8),
        "y_test": np.array([4, 9]),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("shape", [(4, 28, 28), (4, 28, 28, 1), (4, 784)])
def test_npz_accepts_three_image_shapes(tmp_path, shape):
    x = np.linspace(0, 1, 4 * 784, dtype=np.float64).reshape(shape)
    path = save_npz(tmp_path / "d.npz", x_train=x)
    ds = data.load(f"npz:{path}")
    assert ds.name == f"npz:{path}"
    assert_common_format(ds, 4, 2)
    np.testing.assert_array_equal(Dataset.flat(ds.x_train), x.reshape(4, 784).astype(np.float32))
    assert ds.x_train[3, 27, 27, 0] == 1.0
    assert ds.x_test.max() == 0.0
    np.testing.assert_array_equal(ds.y_test, [4, 9])


def test_npz_uint8_is_scaled(tmp_path):
    path = save_npz(tmp_path / "d.npz", x_test=np.full((2, 28, 28, 1), 51, np.uint8))
    ds = data.load(f"npz:{path}")
    assert ds.x_train.min() == 1.0  # 255 / 255
    assert np.all(ds.x_test == np.float32(0.2))


@pytest.mark.parametrize(
    "overrides, problem",
    [
        ({"y_test": None}, r"lacks y_test"),
        ({"x_train": np.zeros((4, 28, 27), np.uint8)}, r"x_train .* has shape \(4, 28, 27\)"),
        ({"x_train": np.zeros((4, 28, 28, 3), np.uint8)}, r"x_train .* has shape \(4, 28, 28, 3\)"),
        ({"y_train": np.array([0, 1, 2, 10])}, r"y_train .* labels in 0\.\.10; allowed are 0\.\.9"),
        ({"y_train": np.array([0, 1, -1, 3])}, r"y_train .* labels in -1\.\.3"),
        ({"y_train": np.array([0, 1, 2])}, r"y_train .* shape \(3,\); need \(4,\)"),
        ({"y_train": np.array([0.0, 1, 2, 3])}, r"y_train .* labels must be integers"),
        ({"x_test": np.full((2, 784), 1.5)}, r"x_test .* floats must be in \[0, 1\]"),
        ({"x_test": np.full((2, 784), np.nan)}, r"x_test .* NaN"),
        ({"x_test": np.zeros((2, 784), np.int64)}, r"x_test .* dtype int64"),
    ],
)
def test_npz_bad_inputs_raise_dataset_error(tmp_path, overrides, problem):
    path = save_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(DatasetError, match=problem) as info:
        data.load(f"npz:{path}")
    assert str(info.value).startswith(f"npz:{path}: ")
    assert str(path) in str(info.value)


def test_npz_missing_file(tmp_path):
    path = tmp_path / "absent.npz"
    with pytest.raises(DatasetError, match=re.escape(f"npz:{path}: file {path} not found")):
        data.load(f"npz:{path}")


def test_npz_not_an_archive(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"definitely not a zip")
    with pytest.raises(DatasetError, match="cannot read"):
        data.load(f"npz:{junk}")
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DatasetError, match="not an .npz archive"):
        data.load(f"npz:{single}")
