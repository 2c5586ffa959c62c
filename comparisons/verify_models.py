"""Small Keras models for the verify tests: the article-like CNN, and a real-ish one with BatchNormalization
and depthwise convolutions (MobileNetV2's inverted residual block in miniature)."""
import keras
from keras import layers, regularizers


def small_cnn(dtype="float32", dropout=0.0, name="small_cnn"):
    d = dict(dtype=dtype)
    stack = [keras.Input((8, 8, 1), dtype=dtype),
             layers.Conv2D(4, 3, activation="relu", kernel_regularizer=regularizers.l2(1e-3), **d),
             layers.MaxPooling2D(2, **d),
             layers.Flatten(**d)]
    if dropout:
        stack.append(layers.Dropout(dropout, **d))
    stack.append(layers.Dense(5, activation="softmax", kernel_regularizer=regularizers.l2(1e-2),
                              bias_regularizer=regularizers.l2(1e-3), **d))
    return keras.Sequential(stack, name=name)


def inverted_residual(lam=1e-2, seed=0, name="inverted_residual"):
    """Conv–BN–ReLU6, then expand 1×1–BN–ReLU6, depthwise 3×3–BN–ReLU6, project 1×1–BN, a residual Add,
    global average pooling and a softmax Dense; L2 ``lam`` on every kernel (depthwise included), as in
    MobileNetV2 with L2 added. No bias before a BatchNormalization (MobileNetV2 has none)."""
    keras.utils.set_random_seed(seed)
    l2 = regularizers.l2(lam)
    x = inp = keras.Input((10, 10, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, kernel_regularizer=l2, name="stem")(x)
    x = layers.ReLU(6.0)(layers.BatchNormalization(name="stem_bn")(x))
    y = layers.Conv2D(16, 1, use_bias=False, kernel_regularizer=l2, name="expand")(x)
    y = layers.ReLU(6.0)(layers.BatchNormalization(name="expand_bn")(y))
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False, depthwise_regularizer=l2, name="depthwise")(y)
    y = layers.ReLU(6.0)(layers.BatchNormalization(name="depthwise_bn")(y))
    y = layers.Conv2D(8, 1, use_bias=False, kernel_regularizer=l2, name="project")(y)
    y = layers.BatchNormalization(name="project_bn")(y)
    x = layers.Add()([x, y])
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(4, activation="softmax", kernel_regularizer=l2, name="head")(x)
    return keras.Model(inp, out, name=name)


def nested_backbone(lam=1e-2, seed=0, name="nested_backbone"):
    """``inverted_residual``'s layers as a backbone model used as a layer (as keras.applications models are
    fine-tuned), with a Dense head of its own outside."""
    inner = inverted_residual(lam, seed, name="backbone")
    features = keras.Model(inner.input, inner.get_layer("head").input, name="backbone")
    inp = keras.Input((10, 10, 3))
    out = layers.Dense(4, activation="softmax", kernel_regularizer=regularizers.l2(lam), name="top")(features(inp))
    return keras.Model(inp, out, name=name)
