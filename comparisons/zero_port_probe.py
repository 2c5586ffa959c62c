"""The zero-port route, measured: run with KERAS_BACKEND=torch (one JSON line out).

A Keras model on the torch backend is an nn.Module. Three ways to train it with its two L2
regularizers, from the same weights on the same batches, float64, plain SGD:
  fit      Keras's own ``fit`` on the torch backend;
  zero     a torch loop: ``torch.optim.SGD(model.parameters())``, loss = Keras's loss + ``sum(model.losses)``;
  port     the hand port (``porter.keras_to_torch``), loss + ``l2_penalty``, Keras-exact SGD.
"""
import json

import keras
import numpy as np
import torch

keras.config.set_floatx("float64")
STEPS, BATCH, LR = 20, 8, 0.05


def build():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((6,)),
                             keras.layers.Dense(5, activation="tanh", kernel_regularizer=keras.regularizers.l2(1e-2)),
                             keras.layers.Dense(3, activation="softmax", kernel_regularizer=keras.regularizers.l2(1e-3))])


def weights(model) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(w.value)) for w in model.weights]


rng = np.random.default_rng(0)
x, y = rng.random((STEPS * BATCH, 6)), rng.integers(0, 3, STEPS * BATCH)
loss_fn = keras.losses.SparseCategoricalCrossentropy()

fit = build()
start = weights(fit)
fit.compile(optimizer=keras.optimizers.SGD(learning_rate=LR), loss=loss_fn)
fit.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

zero = build()
optimizer = torch.optim.SGD(zero.parameters(), lr=LR)
for i in range(STEPS):
    xb, yb = torch.from_numpy(x[i * BATCH:(i + 1) * BATCH]), torch.from_numpy(y[i * BATCH:(i + 1) * BATCH])
    optimizer.zero_grad()
    loss = loss_fn(yb, zero(xb)) + sum(zero.losses)
    loss.backward()
    optimizer.step()

from l2compare.porter import keras_to_torch
from torch_impl.optim import KerasSGD  # noqa: E402

port = keras_to_torch(build())
sgd = KerasSGD(port.parameters(), lr=LR)
for i in range(STEPS):
    xb, yb = torch.from_numpy(x[i * BATCH:(i + 1) * BATCH]), torch.from_numpy(y[i * BATCH:(i + 1) * BATCH])
    sgd.zero_grad()
    loss = torch.nn.functional.cross_entropy(port(xb), yb) + port.source_module.l2_penalty(port)
    loss.backward()
    sgd.step()
port_weights = [p.detach().numpy().T if p.ndim == 2 else p.detach().numpy() for p in port.parameters()]


def max_diff(a, b):
    return max(float(np.abs(u - v).max()) for u, v in zip(a, b))


print(json.dumps({"is_module": isinstance(zero, torch.nn.Module), "moved": max_diff(start, weights(fit)),
                  "zero_vs_fit": max_diff(weights(zero), weights(fit)),
                  "port_vs_fit": max_diff(port_weights, weights(fit)),
                  "lambdas": [p.lam for p in port.port.penalties]}))
