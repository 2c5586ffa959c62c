"""``l2compare.porter.modelfile``: reading a .keras file safely (verify's and port's way in)."""
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from keras import layers

from l2compare.porter import PortError, modelfile
from comparisons.verify_models import small_cnn


# --- reading .keras files -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A good .keras file, and a truncated copy."""
    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    good = folder / "cnn.keras"
    small_cnn().save(good)
    truncated = folder / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return good, truncated


def test_a_good_file_loads_with_its_weights(saved):
    good, _ = saved
    model = modelfile.load(good)
    keras.utils.set_random_seed(0)
    assert [w.shape for w in model.weights] == [w.shape for w in small_cnn().weights]
    reloaded = keras.saving.load_model(good, compile=False)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.weights, reloaded.weights))


def test_bad_files_are_refused_in_one_line_naming_the_file(saved, tmp_path):
    _, truncated = saved
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    other_zip = tmp_path / "other.keras"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("readme.txt", "hello")
    h5 = tmp_path / "old.h5"
    h5.write_bytes(b"\x89HDF\r\n")
    cases = [(tmp_path / "missing.keras", "no such file"), (text, "not a .keras file (not a zip archive"),
             (truncated, "not a .keras file (not a zip archive"), (other_zip, "a zip archive, but not a Keras model"),
             (h5, "the legacy HDF5 format"), (tmp_path, "is a folder")]
    for path, message in cases:
        with pytest.raises(PortError) as info:
            modelfile.load(path)
        assert str(info.value).startswith(f"{path}: ") and message in str(info.value), str(info.value)
        assert "\n" not in str(info.value)


CUSTOM = """
import keras
@keras.saving.register_keras_serializable(package="l2compare_test")
class MyLayer(keras.layers.Layer):
    def call(self, x):
        return 2 * x
"""


def test_a_custom_layer_is_refused_registered_or_not(tmp_path):
    namespace = {}
    exec(CUSTOM, namespace)
    try:
        model = keras.Sequential([keras.Input((4,)), namespace["MyLayer"](), layers.Dense(2)], name="custom")
        path = tmp_path / "custom.keras"
        model.save(path)
        with pytest.raises(PortError, match=r"custom\.keras: unknown layer 'MyLayer' .*cannot be ported"):
            modelfile.load(path)   # still registered in this process: refused all the same
    finally:
        keras.saving.get_custom_objects().pop("l2compare_test>MyLayer", None)
    # A fresh process, where the class was never defined.
    code = ("from l2compare.porter import modelfile, PortError\n"
            f"try:\n    modelfile.load({str(path)!r})\nexcept PortError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "unknown layer 'MyLayer'" in done.stdout and "cannot be ported" in done.stdout, done.stderr[-2000:]


def test_a_lambda_layer_is_refused_without_running_its_code(tmp_path):
    model = keras.Sequential([keras.Input((3,)), layers.Lambda(lambda x: x + 1), layers.Dense(2)], name="with_lambda")
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(PortError, match=r"Lambda layer 'lambda.*' holds Python code.*cannot be ported"):
        modelfile.load(path)
