"""``l2compare verify`` without ``--optimizer`` trains what the .keras file was compiled with, and says in one note
where the file's settings differ from those verify trains (l2compare/cli_compiled.py). The configs below are the
``compile_config`` Keras 3.15 writes (learning rates stored through float32, as Keras stores them)."""
import pytest

from l2compare.cli_compiled import choose, compiled_optimizer

# verify's settings (l2compare.porter.verify.keras_side.HYPERPARAMETERS, which imports Keras; restated here so this
# test stays framework-free: test_verify_cli checks the CLI against the real ones)
SETTINGS = {
    "adam": {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "adamw": {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 0.004},
    "sgd": {"learning_rate": 0.01},
    "momentum": {"learning_rate": 0.01, "momentum": 0.9},
}
OFF = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False,
       "ema_momentum": 0.99, "ema_overwrite_frequency": None, "loss_scale_factor": None,
       "gradient_accumulation_steps": None}


def compiled(cls: str, **config) -> dict:
    return {"compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": cls,
                                             "config": {"name": cls.lower(), "learning_rate": config.pop("learning_rate"),
                                                        **OFF, **config}, "registered_name": None},
                               "loss": "mse"}}


def sgd(lr=0.009999999776482582, momentum=0.0, **more):
    return compiled("SGD", **{"learning_rate": lr, "momentum": momentum, "nesterov": False, **more})


def adam(lr=0.0010000000474974513, **more):
    return compiled("Adam", **{"learning_rate": lr, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07,
                               "amsgrad": False, **more})


def test_an_uncompiled_model_trains_the_default_or_what_is_asked_without_a_note():
    for config in ({}, {"compile_config": {}}, {"compile_config": None}):
        assert compiled_optimizer(config) == (None, {})
        assert choose(config, None, SETTINGS) == ("adam", None)
        assert choose(config, "momentum", SETTINGS) == ("momentum", None)


@pytest.mark.parametrize("config,trained", [
    (adam(), "adam"), (sgd(), "sgd"), (sgd(momentum=0.9), "momentum"),
    (compiled("AdamW", learning_rate=0.0010000000474974513, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=False,
              **{**OFF, "weight_decay": 0.004}), "adamw"),
    ({"compile_config": {"optimizer": "sgd"}}, "sgd"),       # compiled with a name: Keras's defaults
    ({"compile_config": {"optimizer": "Adam"}}, "adam"),
])
def test_the_compiled_optimizer_at_verifys_settings_is_trained_without_a_note(config, trained):
    assert choose(config, None, SETTINGS) == (trained, None)


def test_other_settings_are_trained_at_verifys_and_the_note_shows_both():
    trained, note = choose(sgd(lr=0.05000000074505806, momentum=0.8), None, SETTINGS)
    assert trained == "momentum"
    assert note == ("compiled with SGD(learning_rate=0.05, momentum=0.8); verify trains momentum at "
                    "learning_rate=0.01, momentum=0.9")
    trained, note = choose(adam(weight_decay=0.01), None, SETTINGS)   # Adam's decoupled decay: verify's Adam has none
    assert trained == "adam" and note.startswith("compiled with Adam(learning_rate=0.001, weight_decay=0.01, ")


def test_an_optimizer_verify_does_not_train_falls_back_to_the_default_and_says_why():
    for config, why in ((compiled("RMSprop", learning_rate=0.001, rho=0.9), "a class verify does not train"),
                        (sgd(momentum=0.9, clipnorm=1.0), "clipnorm set"),
                        (adam(amsgrad=True), "amsgrad set"),
                        (sgd(lr={"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
                                 "config": {}}), "a learning-rate schedule")):
        trained, note = choose(config, None, SETTINGS)
        assert trained == "adam" and f"({why}); verify trains adam at learning_rate=0.001" in note, note
        assert note.endswith("(its default; see --optimizer)")
    assert "ExponentialDecay" in choose(sgd(lr={"class_name": "ExponentialDecay"}), None, SETTINGS)[1]


def test_optimizer_given_on_the_command_line_wins_and_the_note_says_so():
    assert choose(sgd(momentum=0.9), "adam", SETTINGS) == (
        "adam", "compiled with SGD(learning_rate=0.01, momentum=0.9); verify trains adam, as --optimizer asks")
    assert choose(sgd(momentum=0.9), "momentum", SETTINGS) == ("momentum", None)
    trained, note = choose(compiled("Lion", learning_rate=1e-4), "sgd", SETTINGS)
    assert trained == "sgd" and note.endswith("verify trains sgd at learning_rate=0.01")
