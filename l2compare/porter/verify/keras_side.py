"""verify's Keras side: Keras's own train step on the copy (``KerasSide``), with Keras's default hyperparameters, and
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

import weakref

import keras
import numpy as np

from l2compare.porter.convert import keras_to_torch
from l2compare.porter.verify.data import clone_in, copy_weights, layers_of

# Keras 3's defaults (a test checks them against Keras's own): both sides get these numbers.
HYPERPARAMETERS = {
    "adam": {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "adamw": {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 0.004},
    "sgd": {"learning_rate": 0.01},
    "momentum": {"learning_rate": 0.01, "momentum": 0.9},
}

SPARSE_SQUARING = ("adam", "adamw")   # the optimizers whose v sums squared slices (above)


# The optimizer's per-variable slots, by Keras's own names (keras_impl.optim names them the same).
_SLOTS = {"sgd": {"momentum": "momentums"}, "adam": {"momentum": "_momentums", "velocity": "_velocities"}}


def keras_optimizer(name: str):
    cls = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD,
           "momentum": keras.optimizers.SGD}[name]
    return cls(**HYPERPARAMETERS[name])


def _numpy(variable) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(variable), copy=True)


class KerasSide:
    """The copy of the user's model in one dtype with its optimizer, compiled once: Keras's own train
    step (the function ``fit`` runs, through ``train_on_batch``), traced once and then stepped from any
    state. ``snapshot``/``restore`` move every model and optimizer variable (weights, BatchNorm's moving
    statistics, slots, the iteration count); ``flat`` reads them in the port's layout."""

    def __init__(self, model, dtype: str):
        from keras_impl.train import precision

        self.dtype, self.precision, self.source = dtype, precision, weakref.ref(model)
        self.clone, self.notes = clone_in(model, dtype)
        self.tm = keras_to_torch(self.clone)
        self.port = self.tm.port

    def compile(self, optimizer: str, loss: str, x: list, y, batch_size: int) -> None:
        """Compile with ``optimizer`` (Keras's defaults) and trace the train step on the first batch (the
        state is restored after it)."""
        with self.precision(self.dtype):  # optimizer and metric variables (lr, the loss tracker) in the model's dtype
            self.optimizer = keras_optimizer(optimizer)
            # jit_compile=False: XLA may reorder arithmetic; we compare against Keras's plain TF graph.
            self.clone.compile(optimizer=self.optimizer, loss=loss, jit_compile=False)
            # Built here, not inside the first step: an optimizer that creates its variables while the
            # step is traced makes TensorFlow trace the whole step a second time (MobileNetV2: 48 s → 23 s).
            self.optimizer.build(self.clone.trainable_variables)
        kind = "sgd" if isinstance(self.optimizer, keras.optimizers.SGD) else "adam"
        lists = {slot: getattr(self.optimizer, attr) for slot, attr in _SLOTS[kind].items()
                 if getattr(self.optimizer, attr, None)}
        self.trainable = list(self.clone.trainable_variables)
        # {slot: the slot variable of each trainable variable, in the order of self.trainable}
        self.slots = {slot: [values[self.optimizer._get_variable_index(v)] for v in self.trainable]
                      for slot, values in lists.items()}
        start = self.snapshot()
        self.step([a[:batch_size] for a in x], y[:batch_size])
        self.restore(start)

    def reset(self) -> None:
        """Back to the user's model's current weights and a fresh optimizer (no steps, zero slots)."""
        copy_weights(self.source(), self.clone)
        for v in self._state_variables():
            v.assign(np.zeros(v.shape, keras.backend.standardize_dtype(v.dtype)))

    def _state_variables(self) -> list:
        """The optimizer's state: its iteration count and slots. Not its hyperparameter variables (the
        learning rate): a float32 side's would bring float32's rounding of lr into a float64 step."""
        return [self.optimizer.iterations] + [v for values in self.slots.values() for v in values]

    def snapshot(self) -> tuple[list, list]:
        return [_numpy(v) for v in self.clone.variables], [_numpy(v) for v in self._state_variables()]

    def restore(self, snapshot) -> None:
        """Set every variable to ``snapshot`` (another KerasSide's, of any dtype: cast to this one's)."""
        for variables, values in zip((self.clone.variables, self._state_variables()), snapshot):
            for v, value in zip(variables, values):
                v.assign(np.asarray(value).astype(keras.backend.standardize_dtype(v.dtype)))

    @property
    def iterations(self) -> int:
        return int(keras.ops.convert_to_numpy(self.optimizer.iterations))

    def step(self, x: list, y) -> float:
        """One training step on one batch; the loss Keras logs for it (data + penalties)."""
        with self.precision(self.dtype):
            logs = self.clone.train_on_batch(x if len(x) > 1 else x[0], y, return_dict=True)
        return float(logs["loss"])

    def flat(self, keys, trainable_keys, snapshot=None) -> dict[str, np.ndarray]:
        """The weights and buffers (``keys``) and optimizer slots ("key:slot", for ``trainable_keys``) in the
        port's layout, now or of ``snapshot``: gathered through the port's layout moves (``_layout``), or,
        where those are not plain moves, read through the port's own weight readers (each slot standing in
        for its variable for a moment)."""
        layout = self._layout(keys)
        if layout is not None:
            return self._gather(layout, snapshot or self.snapshot(), keys, trainable_keys)
        if snapshot is not None:
            self.restore(snapshot)
        state = self.port.state()
        out = {k: state[k] for k in keys}
        saved = [_numpy(v) for v in self.trainable]
        try:
            for slot, values in self.slots.items():
                for v, s in zip(self.trainable, values):
                    v.assign(s)
                state = self.port.state()
                out.update({f"{k}:{slot}": state[k] for k in trainable_keys})
        finally:
            for v, value in zip(self.trainable, saved):
                v.assign(value)
        return out

    def _layout(self, keys):
        """{key: the index of each of its elements in the model's float variables, flattened one after the
        other}, found once by giving every element its own index and reading the port; None if the port's
        readers do more than move elements (or float32 cannot hold the indices exactly)."""
        if getattr(self, "_layout_of", False) is not False:
            return self._layout_of
        variables = list(self.clone.variables)
        floats = [i for i, v in enumerate(variables) if "float" in keras.backend.standardize_dtype(v.dtype)]
        saved = [_numpy(variables[i]) for i in floats]
        sizes = [a.size for a in saved]
        self._layout_of, self._floats = None, floats
        if sum(sizes) + 1 < 2 ** np.finfo(saved[0].dtype if saved else np.float64).nmant:
            offset = 1   # 0 would be a zero the reader made up
            try:
                for i, a in zip(floats, saved):
                    variables[i].assign(np.arange(offset, offset + a.size, dtype=a.dtype).reshape(a.shape))
                    offset += a.size
                probe = self.port.state()
            finally:
                for i, a in zip(floats, saved):
                    variables[i].assign(a)
            layout = {}
            for k in keys:
                index = np.asarray(probe[k]).astype(np.int64) - 1
                if not (index >= 0).all() or not np.array_equal(index + 1, probe[k]):
                    return None
                layout[k] = index
            real = self.port.state()
            whole = np.concatenate([a.ravel() for a in saved]) if saved else np.zeros(0)
            if all(np.array_equal(whole[layout[k]], real[k]) for k in keys):
                self._layout_of = layout
        return self._layout_of

    def _gather(self, layout, snapshot, keys, trainable_keys) -> dict[str, np.ndarray]:
        values, state = snapshot
        whole = np.concatenate([np.asarray(values[i]).ravel() for i in self._floats])
        out = {k: whole[layout[k]] for k in keys}
        position = {id(self.clone.variables[i]): n for n, i in enumerate(self._floats)}
        segments = [np.asarray(values[i]).ravel() for i in self._floats]
        at = 1   # state[0] is the iteration count; then each slot's values in the order of self.trainable
        for slot, variables in self.slots.items():
            parts = [np.zeros_like(seg) for seg in segments]
            for v, value in zip(self.trainable, state[at:at + len(variables)]):
                parts[position[id(v)]] = np.asarray(value).ravel()
            at += len(variables)
            whole = np.concatenate(parts)
            out.update({f"{k}:{slot}": whole[layout[k]] for k in trainable_keys})
        return out


# The Keras sides of the last few configurations: tracing Keras's train step is most of verify's time on a
# deep net (MobileNetV2: 23 s per dtype), and a configuration is often verified again (other recipes, dtypes,
# a fixed port, a test's mistakes). [(configuration, the user's model (weak), KerasSide)]
_SIDES: list = []
_KEEP = 4


def keras_side(model, dtype: str, optimizer: str, loss: str, x: list, y, batch_size: int) -> KerasSide:
    """A KerasSide of ``model`` compiled and traced for this configuration: built on first use, then reused
    (reset to the model's current weights and a fresh optimizer)."""
    key = (id(model), dtype, optimizer, loss, batch_size, tuple((a.shape[1:], a.dtype.str) for a in x),
           (y.shape[1:], y.dtype.str), tuple(layer.trainable for layer in layers_of(model)))   # a layer frozen since
    for k, side in _SIDES:
        if k == key and side.source() is model:
            side.reset()
            return side
    side = KerasSide(model, dtype)
    side.compile(optimizer, loss, x, y, batch_size)
    _SIDES.append((key, side))
    del _SIDES[:-_KEEP]
    return side


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
