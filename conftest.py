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
def _jax_compilation_cache(tmp_path_factory):
    """A persistent JAX compilation cache for this test session, in its temporary folder: every JAX
    process the tests start (probes, Keras-on-JAX workers, Ray's workers) inherits it, and the same train
    step compiled by one is loaded by the next. Every entry is kept (min compile time 0, no size floor):
    the steps here compile in well under JAX's default 1 s threshold. Under pytest-xdist the workers
    share their run's folder (their base temps are its subfolders). Set before any test starts a
    process; this process itself imports no JAX on import."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "jax-cache"
    folder.mkdir(exist_ok=True)
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")


@pytest.fixture(scope="session", autouse=True)
def _fixed_threads():
    """Both frameworks get THREADS threads, set once before either runs an op."""
    from keras_impl.seeding import set_threads as keras_threads
    from torch_impl.seeding import set_threads as torch_threads

    keras_threads(THREADS)
    torch_threads(THREADS)


@pytest.fixture(autouse=True)
def _threads_restored(_fixed_threads):
    """A test that runs ``l2compare port`` or ``verify`` in this process lets the command fix this process's
    pools and thread variables to its own ``--threads`` (as it must for a user); put them back afterwards, so
    that every later test runs with THREADS (``make test-cpus``' 2-thread run checks it at the end,
    tests/test_machine.py). Only torch's intra-op pool can change after the first op; TensorFlow's are fixed."""
    yield
    import sys

    environment.configure(THREADS)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != THREADS:
        torch.set_num_threads(THREADS)


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

