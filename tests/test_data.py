"""Tests for l2compare.core.data.sets, l2compare.core.data.format and l2compare.core.data.files.

No network: `l2compare.core.data.files._download` (the one `_cached` calls) is always monkeypatched.
"""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from l2compare.core.data import sets as data, files as data_files, format as dataset
from l2compare.core.data.sets import Dataset, DatasetError


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache; any download attempt fails the test loudly."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def no_network(url, dest):
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(data_files, "_download", no_network)
    return tmp_path / "keras" / "datasets"


def assert_common_format(ds: Dataset, n_train: int, n_test: int) -> None:
    assert ds.x_train.shape == (n_train, 28, 28, 1)
    assert ds.x_test.shape == (n_test, 28, 28, 1)
    assert ds.y_train.shape == (n_train,)
    assert ds.y_test.shape == (n_test,)
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == ds.y_test.dtype == np.int64


# ------------------------------------------------------------------ digits


def test_digits_shapes_range_and_dtype():
    ds = data.load("digits")
    assert ds.name == "digits"
    assert_common_format(ds, 1437, 360)  # 1797 images, 20% → ceil(359.4) = 360 test
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0  # 0..16 scaled, 16 present
    assert set(ds.y_train) == set(ds.y_test) == set(range(10))


def test_digits_split_is_stratified():
    from sklearn.datasets import load_digits

    ds = data.load("digits")
    totals = np.bincount(load_digits().target, minlength=10)
    test_counts = np.bincount(ds.y_test, minlength=10)
    train_counts = np.bincount(ds.y_train, minlength=10)
    np.testing.assert_array_equal(train_counts + test_counts, totals)
    assert np.all(np.abs(test_counts - 0.2 * totals) <= 1), test_counts


def test_digits_split_is_fixed():
    ds = data.load("digits", seed=99)
    # Pinned: train_test_split(test_size=0.2, stratify=y, random_state=0).
    assert ds.y_test[:12].tolist() == [7, 6, 3, 7, 7, 3, 2, 8, 9, 3, 2, 6]
    assert ds.y_train[:12].tolist() == [3, 9, 1, 3, 1, 9, 4, 4, 2, 8, 3, 5]
    data._digits.cache_clear()  # a fresh computation gives the same split
    again = data.load("digits", seed=1)
    np.testing.assert_array_equal(again.y_test, ds.y_test)
    np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_digits_split_does_not_depend_on_seed_and_returns_copies():
    a = data.load("digits", seed=0)
    a.x_train[:] = -1  # a caller normalizing in place must not corrupt the cache
    b = data.load("digits", seed=123)
    c = data.load("digits")
    assert b.x_train.min() == 0.0
    np.testing.assert_array_equal(b.x_train, c.x_train)
    np.testing.assert_array_equal(b.y_train, c.y_train)
    np.testing.assert_array_equal(b.y_test, c.y_test)


# ------------------------------------------------------------------ article


def test_article_is_deterministic_per_seed():
    a, b = data.load("article", seed=7), data.load("article", seed=7)
    assert_common_format(a, 1000, 1000)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert 0.0 <= a.x_train.min() and a.x_train.max() < 1.0
    assert a.y_train.min() == 0 and a.y_train.max() == 9


def test_article_differs_across_seeds_and_between_splits():
    a, b = data.load("article", seed=0), data.load("article", seed=1)
    assert not np.array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_train, a.x_test)  # the held-out set is a new draw


# ------------------------------------------------------------------ Dataset


def test_flat_is_keras_hwc_order_and_images_inverts_it():
    x = np.arange(2 * 784, dtype=np.float32).reshape(2, 28, 28, 1)
    flat = Dataset.flat(x)
    assert flat.shape == (2, 784)
    assert flat[1, 3 * 28 + 5] == x[1, 3, 5, 0]
    np.testing.assert_array_equal(Dataset.images(flat), x)
    np.testing.assert_array_equal(Dataset.images(x[..., 0]), x)


def test_astype_and_num_classes():
    ds = data.load("article", seed=0)
    d64 = ds.astype(np.float64)
    assert d64.x_train.dtype == d64.x_test.dtype == np.float64
    assert d64.y_train.dtype == np.int64
    np.testing.assert_array_equal(d64.x_train, ds.x_train.astype(np.float64))
    d64.x_train[0] = 5  # a copy
    assert ds.x_train.max() < 1
    assert ds.num_classes == 10
    with pytest.raises(DatasetError, match="float32 or float64"):
        ds.astype(np.float16)


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


# ------------------------------------------------------------------ re-exports


def test_core_data_reexports_the_public_names():
    # What l2compare.cli, l2compare.core.training and users import must stay importable from l2compare.core.data.sets.
    from l2compare.core.data.sets import (DATASETS, IMAGE_SHAPE, NUM_CLASSES, Dataset, DatasetError, keras_cache_dir,
        load, validate_name)

    assert DATASETS == data.DATASETS and load is data.load and validate_name is data.validate_name
    assert Dataset is dataset.Dataset and DatasetError is dataset.DatasetError
    assert (NUM_CLASSES, IMAGE_SHAPE) == (dataset.NUM_CLASSES, dataset.IMAGE_SHAPE)
    assert keras_cache_dir is data_files.keras_cache_dir
    assert sorted(data.__all__) == sorted(
        ["DATASETS", "Dataset", "DatasetError", "NUM_CLASSES", "IMAGE_SHAPE",
         "keras_cache_dir", "load", "validate_name"])


# ------------------------------------------------------------------ names


@pytest.mark.parametrize("name", ["digits", "article", "mnist", "fashion_mnist", "npz:x.npz"])
def test_validate_name_accepts(name):
    assert data.validate_name(name) == name


@pytest.mark.parametrize("name", ["cifar10", "MNIST", "", "npz:", "npz:  "])
def test_validate_name_rejects(name):
    with pytest.raises(DatasetError) as info:
        data.validate_name(name)
    assert "\n" not in str(info.value)
    if not name.startswith("npz:"):
        assert str(info.value) == (
            f"unknown data set {name!r}: use one of digits, article, mnist, fashion_mnist, or npz:PATH"
        )


def test_load_rejects_unknown_name():
    with pytest.raises(DatasetError, match="unknown data set 'cifar10'"):
        data.load("cifar10")
