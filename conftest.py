"""Test configuration shared by tests/ and comparisons/.

The same fixed thread count in both frameworks, one seeding helper per framework. The
environment is set before any framework is imported, through the function every process
that runs a framework uses (``l2compare.core.environment.configure``).
"""
import os

from l2compare.core import environment

THREADS = int(os.environ.get("L2COMPARE_THREADS", "1"))
environment.configure(THREADS)

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _fixed_threads():
    """Both frameworks get THREADS threads, set once before either runs an op."""
    from keras_impl.seeding import set_threads as keras_threads
    from torch_impl.seeding import set_threads as torch_threads

    keras_threads(THREADS)
    torch_threads(THREADS)


@pytest.fixture
def keras_seed():
    """Call with a seed to seed Python, NumPy and Keras's backend."""
    from keras_impl.seeding import seed_everything

    return seed_everything


@pytest.fixture
def torch_seed():
    """Call with a seed to seed Python, NumPy and torch."""
    from torch_impl.seeding import seed_everything

    return seed_everything
