"""Sixteen real-world Keras architectures with L2 (nested backbones, attention and masks among them),
small enough to verify in seconds.

Each builder is modelled on a public Keras example of the kind people port (named in its
docstring), written for this project at toy size: the layers, the regularizers and the graph
shape are the example's; the widths are not. ``build(name, dtype)`` returns a compiled-free
Keras model with every layer in ``dtype``.
"""
from __future__ import annotations

import keras
from keras import layers as kl
from keras import regularizers


def _l2(lam=1e-3):
    return regularizers.l2(lam)


def cifar_resnet(d):
    """The Keras CIFAR-10 ResNet v1 example: conv-BN-ReLU, residual Add with a 1x1 projection, L2 1e-4."""
    x = i = keras.Input((12, 12, 3), dtype=d)
    x = kl.Conv2D(8, 3, padding="same", kernel_regularizer=_l2(1e-4), dtype=d)(x)
    x = kl.Activation("relu", dtype=d)(kl.BatchNormalization(dtype=d)(x))
    for filters, stride in ((8, 1), (12, 2)):
        y = kl.Conv2D(filters, 3, strides=stride, padding="same", kernel_regularizer=_l2(1e-4), dtype=d)(x)
        y = kl.Activation("relu", dtype=d)(kl.BatchNormalization(dtype=d)(y))
        y = kl.BatchNormalization(dtype=d)(kl.Conv2D(filters, 3, padding="same", kernel_regularizer=_l2(1e-4),
                                                     dtype=d)(y))
        if stride != 1:
            x = kl.Conv2D(filters, 1, strides=stride, padding="same", kernel_regularizer=_l2(1e-4), dtype=d)(x)
        x = kl.Activation("relu", dtype=d)(kl.Add(dtype=d)([x, y]))
    x = kl.AveragePooling2D(2, dtype=d)(x)
    x = kl.Flatten(dtype=d)(x)
    return keras.Model(i, kl.Dense(10, activation="softmax", kernel_initializer="he_normal", dtype=d)(x),
                       name="cifar_resnet")


def vgg_small(d):
    """A VGG-style CIFAR net with weight decay on every conv and dense kernel, and Dropout."""
    m = keras.Sequential([keras.Input((12, 12, 3), dtype=d)], name="vgg_small")
    for filters in (8, 16):
        m.add(kl.Conv2D(filters, 3, padding="same", activation="relu", kernel_regularizer=_l2(5e-4), dtype=d))
        m.add(kl.Conv2D(filters, 3, padding="same", activation="relu", kernel_regularizer=_l2(5e-4), dtype=d))
        m.add(kl.MaxPooling2D(2, dtype=d))
    m.add(kl.Flatten(dtype=d))
    m.add(kl.Dense(16, activation="relu", kernel_regularizer=_l2(5e-4), dtype=d))
    m.add(kl.Dropout(0.5, dtype=d))
    m.add(kl.Dense(10, activation="softmax", dtype=d))
    return m


def densenet_tiny(d):
    """DenseNet: BN-ReLU-Conv composite functions, a dense block that Concatenates every output,
    and a transition with a 1x1 conv and AveragePooling2D; L2 1e-4 on conv kernels."""
    x = i = keras.Input((10, 10, 3), dtype=d)
    x = kl.Conv2D(6, 3, padding="same", use_bias=False, kernel_regularizer=_l2(1e-4), dtype=d)(x)
    for _ in range(2):
        y = kl.Activation("relu", dtype=d)(kl.BatchNormalization(epsilon=1.001e-5, dtype=d)(x))
        y = kl.Conv2D(4, 3, padding="same", use_bias=False, kernel_regularizer=_l2(1e-4), dtype=d)(y)
        x = kl.Concatenate(dtype=d)([x, y])
    x = kl.Activation("relu", dtype=d)(kl.BatchNormalization(epsilon=1.001e-5, dtype=d)(x))
    x = kl.Conv2D(8, 1, use_bias=False, kernel_regularizer=_l2(1e-4), dtype=d)(x)
    x = kl.AveragePooling2D(2, strides=2, dtype=d)(x)
    x = kl.GlobalAveragePooling2D(dtype=d)(x)
    return keras.Model(i, kl.Dense(5, activation="softmax", kernel_regularizer=_l2(1e-4), dtype=d)(x),
                       name="densenet_tiny")


def mobilenet_tiny(d):
    """MobileNet v1: depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU6, strided; L2 4e-5."""
    x = i = keras.Input((12, 12, 3), dtype=d)
    x = kl.Conv2D(8, 3, strides=2, padding="same", use_bias=False, kernel_regularizer=_l2(4e-5), dtype=d)(x)
    x = kl.ReLU(6.0, dtype=d)(kl.BatchNormalization(dtype=d)(x))
    for filters, stride in ((12, 1), (16, 2)):
        x = kl.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                               depthwise_regularizer=_l2(4e-5), dtype=d)(x)
        x = kl.ReLU(6.0, dtype=d)(kl.BatchNormalization(dtype=d)(x))
        x = kl.Conv2D(filters, 1, use_bias=False, kernel_regularizer=_l2(4e-5), dtype=d)(x)
        x = kl.ReLU(6.0, dtype=d)(kl.BatchNormalization(dtype=d)(x))
    x = kl.GlobalAveragePooling2D(dtype=d)(x)
    x = kl.Dropout(1e-3, dtype=d)(x)
    return keras.Model(i, kl.Dense(6, activation="softmax", dtype=d)(x), name="mobilenet_tiny")


def eegnet(d):
    """EEGNet (Lawhern et al., the arl-eegmodels Keras code): temporal Conv2D, BN, DepthwiseConv2D
    across electrodes, BN, ELU, AveragePooling2D, Dropout, SeparableConv2D, Flatten, Dense; L2 on the
    classifier (the original uses max-norm constraints, which the porter refuses: left out here)."""
    chans, samples = 4, 32
    x = i = keras.Input((chans, samples, 1), dtype=d)
    x = kl.Conv2D(4, (1, 8), padding="same", use_bias=False, dtype=d)(x)
    x = kl.BatchNormalization(dtype=d)(x)
    x = kl.DepthwiseConv2D((chans, 1), use_bias=False, depth_multiplier=2, depthwise_regularizer=_l2(1e-3),
                           dtype=d)(x)
    x = kl.Activation("elu", dtype=d)(kl.BatchNormalization(dtype=d)(x))
    x = kl.Dropout(0.25, dtype=d)(kl.AveragePooling2D((1, 4), dtype=d)(x))
    x = kl.SeparableConv2D(8, (1, 4), use_bias=False, padding="same", pointwise_regularizer=_l2(1e-3), dtype=d)(x)
    x = kl.Activation("elu", dtype=d)(kl.BatchNormalization(dtype=d)(x))
    x = kl.Flatten(dtype=d)(kl.AveragePooling2D((1, 4), dtype=d)(x))
    return keras.Model(i, kl.Dense(3, activation="softmax", kernel_regularizer=_l2(0.25), dtype=d)(x), name="eegnet")


def unet_tiny(d):
    """The keras.io U-Net shape: conv blocks, MaxPooling2D down, Conv2DTranspose and UpSampling2D up,
    Concatenate skips, a 1x1 sigmoid output trained with MSE here; L2 on every conv kernel."""
    i = keras.Input((8, 8, 2), dtype=d)
    c1 = kl.Conv2D(4, 3, padding="same", activation="relu", kernel_regularizer=_l2(), dtype=d)(i)
    p1 = kl.MaxPooling2D(2, dtype=d)(c1)
    c2 = kl.Conv2D(8, 3, padding="same", activation="relu", kernel_regularizer=_l2(), dtype=d)(p1)
    p2 = kl.MaxPooling2D(2, dtype=d)(c2)
    b = kl.Conv2D(8, 3, padding="same", activation="relu", kernel_regularizer=_l2(), dtype=d)(p2)
    u2 = kl.Conv2DTranspose(8, 2, strides=2, padding="same", kernel_regularizer=_l2(), dtype=d)(b)
    c3 = kl.Conv2D(8, 3, padding="same", activation="relu", dtype=d)(kl.Concatenate(dtype=d)([u2, c2]))
    u1 = kl.UpSampling2D(2, dtype=d)(c3)
    c4 = kl.Conv2D(4, 3, padding="same", activation="relu", dtype=d)(kl.Concatenate(dtype=d)([u1, c1]))
    return keras.Model(i, kl.Conv2D(1, 1, activation="sigmoid", dtype=d)(c4), name="unet_tiny")


def resnet1d(d):
    """A 1-D ResNet for time-series classification (the keras.io / Fawaz et al. FCN-ResNet): Conv1D
    blocks with BN and ReLU, a residual Add with a 1x1 shortcut, GlobalAveragePooling1D."""
    x = i = keras.Input((24, 2), dtype=d)
    y = x
    for k in (7, 5, 3):
        y = kl.Conv1D(6, k, padding="same", kernel_regularizer=_l2(1e-4), dtype=d)(y)
        y = kl.Activation("relu", dtype=d)(kl.BatchNormalization(dtype=d)(y))
    shortcut = kl.BatchNormalization(dtype=d)(kl.Conv1D(6, 1, padding="same", dtype=d)(x))
    y = kl.Activation("relu", dtype=d)(kl.Add(dtype=d)([shortcut, y]))
    y = kl.MaxPooling1D(2, dtype=d)(y)
    y = kl.GlobalAveragePooling1D(dtype=d)(y)
    return keras.Model(i, kl.Dense(4, activation="softmax", dtype=d)(y), name="resnet1d")


def ts_convformer(d):
    """The keras.io time-series Transformer's encoder, with its attention left out (MultiHeadAttention
    is refused by the porter): LayerNormalization, a Conv1D(1) feed-forward pair with Dropout, the
    residual Adds, GlobalAveragePooling1D(channels_first) replaced by Permute + GlobalAveragePooling1D."""
    x = i = keras.Input((16, 3), dtype=d)
    for _ in range(2):
        y = kl.LayerNormalization(epsilon=1e-6, dtype=d)(x)
        y = kl.Conv1D(4, 1, activation="relu", kernel_regularizer=_l2(1e-4), dtype=d)(y)
        y = kl.Dropout(0.1, dtype=d)(y)
        y = kl.Conv1D(3, 1, kernel_regularizer=_l2(1e-4), dtype=d)(y)
        x = kl.Add(dtype=d)([x, y])
    x = kl.GlobalAveragePooling1D(dtype=d)(kl.Permute((2, 1), dtype=d)(x))
    x = kl.Dense(8, activation="relu", kernel_regularizer=_l2(1e-4), dtype=d)(x)
    return keras.Model(i, kl.Dense(2, activation="softmax", dtype=d)(x), name="ts_convformer")


def lstm_text(d):
    """The keras.io LSTM text classifier: Embedding, two stacked LSTMs, Dense; L2 on the embeddings,
    on both LSTMs' kernels, recurrent kernels and biases."""
    i = keras.Input((7,), dtype="int32")
    x = kl.Embedding(20, 5, embeddings_regularizer=_l2(1e-4), dtype=d)(i)
    x = kl.LSTM(4, return_sequences=True, kernel_regularizer=_l2(), recurrent_regularizer=_l2(),
                bias_regularizer=_l2(), dtype=d)(x)
    x = kl.LSTM(4, kernel_regularizer=_l2(), dtype=d)(x)
    return keras.Model(i, kl.Dense(3, activation="softmax", dtype=d)(x), name="lstm_text")


def gru_bidirectional(d):
    """The keras.io bidirectional text classifier with GRUs: Embedding, Bidirectional(GRU), Dense."""
    i = keras.Input((6,), dtype="int32")
    x = kl.Embedding(15, 4, dtype=d)(i)
    x = kl.Bidirectional(kl.GRU(3, return_sequences=True, kernel_regularizer=_l2(),
                                recurrent_regularizer=_l2(), dtype=d), dtype=d)(x)
    x = kl.Bidirectional(kl.GRU(3, reset_after=False, dtype=d), merge_mode="sum", dtype=d)(x)
    return keras.Model(i, kl.Dense(2, activation="softmax", dtype=d)(x), name="gru_bidirectional")


def recommender(d):
    """The keras.io collaborative-filtering recommender as a two-tower net: user and movie Embeddings
    with embeddings_regularizer L2(1e-6), multiplied (the dot product's terms), concatenated with
    their biases, and a Dense scorer trained with MSE."""
    user, movie = keras.Input((1,), dtype="int32", name="user"), keras.Input((1,), dtype="int32", name="movie")
    u = kl.Flatten(dtype=d)(kl.Embedding(12, 4, embeddings_regularizer=_l2(1e-6), dtype=d)(user))
    m = kl.Flatten(dtype=d)(kl.Embedding(9, 4, embeddings_regularizer=_l2(1e-6), dtype=d)(movie))
    ub = kl.Flatten(dtype=d)(kl.Embedding(12, 1, dtype=d)(user))
    mb = kl.Flatten(dtype=d)(kl.Embedding(9, 1, dtype=d)(movie))
    x = kl.Concatenate(dtype=d)([kl.Multiply(dtype=d)([u, m]), ub, mb])
    return keras.Model([user, movie], kl.Dense(1, activation="sigmoid", dtype=d)(x), name="recommender")


def regularized_mlp(d):
    """A tabular MLP with every regularizer kind: L1L2 kernels, an activity regularizer, GaussianNoise
    on the input, BatchNormalization with gamma/beta regularizers, LeakyReLU."""
    m = keras.Sequential([keras.Input((10,), dtype=d),
                          kl.GaussianNoise(0.1, dtype=d),
                          kl.Dense(8, kernel_regularizer=regularizers.l1_l2(1e-4, 1e-3),
                                   activity_regularizer=regularizers.l2(1e-3), dtype=d),
                          kl.BatchNormalization(gamma_regularizer=_l2(1e-3), beta_regularizer=_l2(1e-3), dtype=d),
                          kl.LeakyReLU(dtype=d),
                          kl.Dense(3, activation="softmax", bias_regularizer=regularizers.l1(1e-3), dtype=d)],
                         name="regularized_mlp")
    return m


def lenet5(d):
    """LeNet-5 in Keras: tanh convolutions, AveragePooling2D subsampling, Dense 120-84, softmax."""
    return keras.Sequential([keras.Input((16, 16, 1), dtype=d),
                             kl.Conv2D(6, 5, activation="tanh", padding="same", kernel_regularizer=_l2(), dtype=d),
                             kl.AveragePooling2D(2, dtype=d),
                             kl.Conv2D(8, 5, activation="tanh", kernel_regularizer=_l2(), dtype=d),
                             kl.AveragePooling2D(2, dtype=d),
                             kl.Flatten(dtype=d),
                             kl.Dense(12, activation="tanh", kernel_regularizer=_l2(), dtype=d),
                             kl.Dense(10, activation="softmax", dtype=d)], name="lenet5")


BUILDERS = {f.__name__: f for f in (cifar_resnet, vgg_small, densenet_tiny, mobilenet_tiny, eegnet, unet_tiny,
                                     resnet1d, ts_convformer, lstm_text, gru_bidirectional, recommender,
                                     regularized_mlp, lenet5)}


def build(name: str, dtype: str = "float64") -> keras.Model:
    """The model with the layer names a fresh Keras session gives it ("conv2d", "conv2d_1", ...), whatever
    was built before in this process: reports and records then name the same tensors every time."""
    import collections

    from keras.src.backend.common import global_state

    saved = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        return BUILDERS[name](dtype)
    finally:
        global_state.set_global_attribute("object_name_uids", saved)


def transformer_text(d):
    """keras.io "Text classification with Transformer", functional: token and position Embeddings
    (positions as cumsum(ones_like(tokens)) − 1, since ops.arange would be a constant), a
    MultiHeadAttention encoder block with residuals and LayerNormalization(1e-6), a ReLU feed-forward,
    GlobalAveragePooling1D; L2 on the four attention projections and the feed-forward kernels."""
    i = keras.Input((6,), dtype="int32")
    positions = keras.ops.cumsum(keras.ops.ones_like(i), axis=1) - 1
    # L2 on both embeddings makes their gradients dense (Keras's Adam treats a sparse one per lookup).
    x = kl.Add(dtype=d)([kl.Embedding(20, 8, embeddings_regularizer=_l2(1e-4), dtype=d)(i),
                         kl.Embedding(6, 8, embeddings_regularizer=_l2(1e-4), dtype=d)(positions)])
    a = kl.MultiHeadAttention(2, 4, kernel_regularizer=_l2(), bias_regularizer=_l2(), dtype=d)(x, x)
    x = kl.LayerNormalization(epsilon=1e-6, dtype=d)(kl.Add(dtype=d)([x, a]))
    f = kl.Dense(8, dtype=d)(kl.Dense(16, activation="relu", kernel_regularizer=_l2(), dtype=d)(x))
    x = kl.LayerNormalization(epsilon=1e-6, dtype=d)(kl.Add(dtype=d)([x, f]))
    x = kl.GlobalAveragePooling1D(dtype=d)(x)
    return keras.Model(i, kl.Dense(2, activation="softmax", dtype=d)(x), name="transformer_text")


def lstm_masked(d):
    """The keras.io LSTM text classifier over padded sequences: Embedding(mask_zero=True), whose mask
    the Bidirectional LSTM and the LSTM after it carry (index 0 is padding, gaps included)."""
    i = keras.Input((5,), dtype="int32")   # short: the masked step loop runs in Python, step by step
    x = kl.Embedding(20, 4, mask_zero=True, embeddings_regularizer=_l2(1e-4), dtype=d)(i)
    x = kl.Bidirectional(kl.LSTM(3, return_sequences=True, kernel_regularizer=_l2(), recurrent_regularizer=_l2(),
                                 dtype=d), dtype=d)(x)
    x = kl.LSTM(3, kernel_regularizer=_l2(), dtype=d)(x)
    return keras.Model(i, kl.Dense(3, activation="softmax", dtype=d)(x), name="lstm_masked")


BUILDERS.update({f.__name__: f for f in (transformer_text, lstm_masked)})   # attention, masks (issue 20)


def transfer_backbone(d):
    """The keras.io transfer-learning pattern ("Transfer learning & fine-tuning"): a backbone model, here a
    MobileNet-style body (conv, BN, ReLU6, depthwise), called as a layer with ``training=False``, then
    global pooling, Dropout and a new L2-regularized head. Keras 3.15's ``fit`` overrides the recorded
    ``training=False`` (functional.operation_fn), so the backbone's BatchNorm trains; the port follows."""
    body = mobilenet_tiny(d)
    backbone = keras.Model(body.inputs, body.layers[-4].output, name="backbone")   # up to the last ReLU6
    i = keras.Input((12, 12, 3), dtype=d)
    x = backbone(i, training=False)
    x = kl.GlobalAveragePooling2D(dtype=d)(x)
    x = kl.Dropout(0.2, dtype=d)(x)
    out = kl.Dense(4, activation="softmax", kernel_regularizer=_l2(1e-3), bias_regularizer=_l2(1e-3), dtype=d)(x)
    return keras.Model(i, out, name="transfer_backbone")


BUILDERS[transfer_backbone.__name__] = transfer_backbone   # nested models (issue 20)
