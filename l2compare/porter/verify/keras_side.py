"""verify's Keras side: Keras's own ``fit`` on the copy, with Keras's default hyperparameters, and
what Keras's TensorFlow optimizers do with a sparse gradient.

An Embedding's gradient on the TensorFlow backend is a ``tf.IndexedSlices`` (one row per looked-up
index, a repeated index repeated) unless an ``embeddings_regularizer`` adds a dense term to it.
Keras's Adam and AdamW (``keras/src/optimizers/adam.py`` ``update_step``) then square the slices
before they are summed: ``ops.square(gradient)`` keeps the slices, and ``ops.subtract(.., v)``
densifies them (``keras/src/backend/tensorflow/sparse.py``, ``elementwise_binary_union``), so

    m ← β1·m + (1−β1)·Σᵢ gᵢ          (the summed, dense gradient, as dense Adam)
    v ← β2·v + (1−β2)·Σᵢ gᵢ²         (dense Adam: (Σᵢ gᵢ)²)
    w ← w − α·m/(√v + ε)             on every row, as dense Adam

where gᵢ are the gradient slices of the rows' occurrences in the batch. It is not lazy: a row absent
from a batch has its m and v decayed and moves like any row. Only a row looked up more than once in
a batch is updated differently from dense Adam (comparisons/test_keras_sparse_adam.py pins this).
torch's Adam, on the dense gradient of ``nn.Embedding``, cannot follow it. SGD, with or without
momentum, sums the same terms (``scatter_sub`` per occurrence, or a densified ``lr·gᵢ``): equal to
dense SGD up to rounding.
"""
from __future__ import annotations

import keras
import numpy as np

from l2compare.porter.verify.data import layers_of

# Keras 3's defaults (a test checks them against Keras's own): both sides get these numbers.
HYPERPARAMETERS = {
    "adam": {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "adamw": {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 0.004},
    "sgd": {"learning_rate": 0.01},
    "momentum": {"learning_rate": 0.01, "momentum": 0.9},
}

SPARSE_SQUARING = ("adam", "adamw")   # the optimizers whose v sums squared slices (above)


class _Capture(keras.callbacks.Callback):
    """The port's view of Keras's weights and buffers after every batch, and Keras's logged loss."""

    def __init__(self, read, keys):
        super().__init__()
        self.read, self.keys = read, keys
        self.states, self.losses = [], []

    def on_train_batch_end(self, batch, logs=None):
        state = self.read()
        self.states.append({k: state[k] for k in self.keys})
        self.losses.append(float((logs or {}).get("loss", np.nan)))


def keras_optimizer(name: str):
    cls = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
           "momentum": keras.optimizers.SGD}[name]
    return cls(**HYPERPARAMETERS[name])


def keras_fit(model, port, keys, x, y, loss, optimizer, batch_size, dtype):
    from keras_impl.train import precision

    capture = _Capture(port.state, keys)
    with precision(dtype):  # optimizer and metric variables (lr, the loss tracker) in the model's dtype
        # jit_compile=False: XLA may reorder arithmetic; we compare against Keras's plain TF graph.
        model.compile(optimizer=keras_optimizer(optimizer), loss=loss, jit_compile=False)
        model.fit(x if len(x) > 1 else x[0], y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                  callbacks=[capture])
    return capture.states, capture.losses


def sparse_embeddings(model) -> list:
    """The Embeddings Keras trains with a sparse gradient: trainable, with no embeddings_regularizer."""
    return [layer for layer in layers_of(model) if isinstance(layer, keras.layers.Embedding)
            and layer.trainable and layer.embeddings_regularizer is None]


def sparse_note(keys: list[str]) -> str:
    """The record's note for an Adam or AdamW run that meets a sparse gradient in ``keys``."""
    names, verb = ", ".join(keys), "is" if len(keys) == 1 else "are"
    return (f"{names}: an Embedding without embeddings_regularizer gets a sparse gradient in Keras (TensorFlow), "
            "and Keras's Adam adds each lookup's squared gradient to v (Σ gᵢ²; dense Adam: (Σ gᵢ)²): torch's dense "
            f"Adam cannot follow it, so {names} {verb} not exact wherever a batch repeats an index, and the other "
            "tensors differ from the step after (they train on Keras's embedding)")
