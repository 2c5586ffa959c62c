"""Run specs: validation names the bad value; keys are stable, field- and code-sensitive."""
import pytest

from l2compare.core import spec as spec_module
from l2compare.core.spec import OptimizerSpec, RunSpec, SpecError


@pytest.mark.parametrize("changes,message", [
    ({"model": "resnet"}, "unknown model 'resnet'; allowed: mlp, cnn, mlp_bias"),
    ({"framework": "jax"}, "unknown framework column 'jax'; allowed: keras, keras_jax, keras_torch, torch"),
    ({"regularization": "penalty"}, "unknown keras regularization 'penalty'; allowed: l2, wd, none"),
    ({"l2": -0.1}, "l2 (λ) must be a finite number >= 0, got -0.1"),
    ({"l2": float("nan")}, "l2 (λ) must be a finite number >= 0"),
    ({"epochs": 0}, "epochs must be a whole number >= 1, got 0"),
    ({"dtype": "float16"}, "unknown dtype 'float16'"),
    ({"seed": -1}, "seed must be a whole number >= 0"),
])
def test_bad_values_are_named(changes, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunSpec(**changes)


def test_optimizer_validation():
    with pytest.raises(SpecError, match="momentum applies to sgd only"):
        OptimizerSpec("adam", momentum=0.9)
    with pytest.raises(SpecError, match="beta_2 must be < 1"):
        OptimizerSpec("adam", beta_2=1.0)
    assert OptimizerSpec("sgd", momentum=0.9).label == "momentum"


def test_unknown_keys_are_errors_and_round_trip_is_exact():
    spec = RunSpec(model="cnn", framework="torch", regularization="coupled", optimizer=OptimizerSpec("sgd", lr=0.1))
    assert RunSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(SpecError, match=r"unknown run spec key\(s\) \['lambda'\]"):
        RunSpec.from_dict({**spec.to_dict(), "lambda": 0.1})
    with pytest.raises(SpecError, match=r"unknown optimizer key\(s\) \['eps'\]"):
        RunSpec.from_dict({**spec.to_dict(), "optimizer": {"name": "adam", "eps": 1e-8}})


def test_key_is_stable_and_sensitive_to_every_field_and_to_the_code(monkeypatch):
    base = RunSpec()
    assert base.key == RunSpec().key
    assert len({base.key, base.replace(seed=1).key, base.replace(l2=0.1).key,
                base.replace(optimizer=OptimizerSpec("adam", epsilon=1e-8)).key}) == 4
    before = base.key
    monkeypatch.setattr(spec_module, "code_fingerprint", lambda: "other-code")
    assert RunSpec().key != before  # a record made by other code is not reused
