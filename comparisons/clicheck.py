"""Shared by the CLI tests of ``verify`` and ``verify --torch``: what a user mistake looks like on the command line,
and the tiny model both verify."""


def assert_one_line_error(capsys, message: str) -> None:
    """The command printed ``l2compare: error: ...`` holding ``message`` on one stderr line, no traceback, nothing
    on stdout (the caller checks the exit code)."""
    captured = capsys.readouterr()
    assert captured.err.startswith("l2compare: error: ") and message in captured.err, captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    assert captured.out == ""


def save_tiny_bn(path, optimizer=None) -> None:
    """A tiny CNN with L2 on its kernels and a BatchNorm (``tiny_bn``, seed 0), saved to ``path``; compiled with
    ``optimizer`` first, if given (the file then carries it)."""
    import keras
    from keras import layers, regularizers

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(3, 3, use_bias=False,
                                                                    kernel_regularizer=regularizers.l2(1e-3)),
                              layers.BatchNormalization(), layers.ReLU(), layers.Flatten(),
                              layers.Dense(4, activation="softmax", kernel_regularizer=regularizers.l2(1e-2))],
                             name="tiny_bn")
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.save(path)
