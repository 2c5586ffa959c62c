"""Tests for l2compare.core.data.sets, l2compare.core.data.format and l2compare.core.data.files.

No network: `l2compare.core.data.files._download` (the one `_cached` calls) is always monkeypatched.
"""

from __future__ import annotations


import numpy as np
import pytest

from l2compare.core.data import sets as data, files as data_files, format as dataset
from l2compare.core.data.sets import Dataset, DatasetError
from data_checks import assert_common_format


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
