"""Legacy ``.h5`` model files: ported where Keras builds them without running code from the file
(``l2compare.porter.modelfile.check_h5``), refused with the case named otherwise."""
import keras
import numpy as np
import pytest
from keras import layers
from keras import regularizers as R

from comparisons import portcheck
from l2compare.porter import PortError, keras_to_torch, modelfile


def test_a_legacy_h5_model_ports_with_its_regularizers(tmp_path, keras_seed):
    keras_seed(30)
    inp = keras.Input((6,), dtype="int32")
    x = layers.Embedding(9, 4, embeddings_regularizer=R.L2(1e-3), name="emb")(inp)
    x = layers.LSTM(3, kernel_regularizer=R.L2(2e-3), name="rnn")(x)
    km = keras.Model(inp, layers.Dense(2, activation="softmax", kernel_regularizer=R.L1(1e-3), name="out")(x),
                     name="legacy")
    path = tmp_path / "legacy.h5"
    km.save(path)
    loaded = modelfile.load(path)
    tokens = np.array([[1, 2, 0, 3, 0, 0], [4, 5, 6, 7, 8, 1]], "int32")
    tm = portcheck.assert_forward(loaded, tokens)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(tokens)), keras.ops.convert_to_numpy(km(tokens)))
    assert [(p.keras, p.kind) for p in tm.port.penalties] == [
        ("emb/embeddings", "l2"), ("rnn/kernel", "l2"), ("out/kernel", "l1")]


def test_legacy_h5_refusals_name_the_case(tmp_path):
    model = keras.Sequential([keras.Input((3,)), layers.Lambda(lambda x: x + 1), layers.Dense(2)], name="lam")
    with_lambda = tmp_path / "lambda.h5"
    model.save(with_lambda)
    weights = tmp_path / "dense.weights.h5"
    keras.Sequential([keras.Input((3,)), layers.Dense(2)]).save_weights(weights)
    text = tmp_path / "notes.h5"
    text.write_text("not a model")
    # A masked model's graph records keras.ops nodes (NotEqual for Embedding's mask), which Keras's
    # legacy HDF5 loader does not know: Keras's own refusal, passed on in one line.
    inp = keras.Input((4,), dtype="int32")
    masked = tmp_path / "masked.h5"
    keras.Model(inp, layers.LSTM(2)(layers.Embedding(5, 3, mask_zero=True)(inp))).save(masked)
    cases = [(with_lambda, "Lambda layer 'lambda.*' holds Python bytecode"), (weights, "a weights-only file"),
             (text, "not an HDF5 file"), (masked, "Keras cannot load this model .Unknown layer: 'NotEqual'")]
    for path, message in cases:
        with pytest.raises(PortError, match=f"^{path}: {message}"):
            modelfile.load(path)
    # From Python the same model ports: its Lambda is traced into keras.ops (l2compare.porter.tracing).
    assert " + 1" in keras_to_torch(model).port.source.split("def forward")[1].split("def l2_penalty")[0]
