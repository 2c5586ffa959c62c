"""What every data set loader must return (the common format of l2compare.core.data.format)."""
import numpy as np

from l2compare.core.data.sets import Dataset


def assert_common_format(ds: Dataset, n_train: int, n_test: int) -> None:
    assert ds.x_train.shape == (n_train, 28, 28, 1)
    assert ds.x_test.shape == (n_test, 28, 28, 1)
    assert ds.y_train.shape == (n_train,)
    assert ds.y_test.shape == (n_test,)
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == ds.y_test.dtype == np.int64
