"""``l2compare.porter.verify.runner``: training parity of a user's own model against its port, judged one step
at a time (the parity grid's judge). Mistakes on a real-ish model: test_verify_sensitivity.py; files:
test_verify_files.py; the command: test_verify_cli.py."""
import json
import re

import keras
import numpy as np
import pytest
from keras import layers, regularizers

from comparisons.verify_models import small_cnn
from l2compare.core.onestep import onestep_verdict, onestep_verdict64
from l2compare.porter import keras_to_torch
from l2compare.porter.verify import corpus
from l2compare.porter.verify import runner as verify_mod
from l2compare.porter.verify.runner import VerifyError, index_range, make_task, verify


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(0)
    return small_cnn()


def _by_recipe(records):
    return {r["recipe"]: r for r in records}


# --- training parity ----------------------------------------------------------------------------

def _exact(r) -> bool:
    return r["verdict"] == "exact"


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_penalty_and_coupled_are_exact_in_both_dtypes(cnn, optimizer):
    records = verify(cnn, optimizer=optimizer, steps=6)
    assert [(r["dtype"], r["recipe"]) for r in records] == [(d, r) for d in ("float64", "float32")
                                                              for r in ("penalty", "coupled", "stock")]
    got = {(r["dtype"], r["recipe"]): r for r in records}
    for (dtype, recipe), r in got.items():
        assert r["steps"] == 6 and len(r["onestep"]["per_step"]) == 6 and len(r["max_dw_per_step"]) == 6
        assert r["regularized"] == 3 and r["layers"] == ["Conv2D", "Dense", "Flatten", "MaxPooling2D"]
        if recipe != "stock":
            assert _exact(r) and r["first_divergence"] is None and r["left_out"] == [], r
            # what decided it: the one-step difference within what rounding allows, read off the record
            assert r["onestep"]["at_worst"] <= r["onestep"]["allowed_at_worst"]
    if optimizer == "adam":   # torch's Adam puts ε inside the bias correction: a finding, in both dtypes
        for dtype in ("float64", "float32"):
            stock = got[dtype, "stock"]
            assert not _exact(stock) and stock["onestep"]["max_excess"] > 0, stock
            assert any("ε inside" in n for n in stock["notes"])
    else:   # torch's momentum form differs from Keras's only in rounding
        assert _exact(got["float64", "stock"]) and _exact(got["float32", "stock"])


def test_a_port_mistake_is_caught_at_its_first_step(cnn):
    """Coupled weight decay λ instead of 2λ (the classic mistake), injected into the torch optimizer: not
    exact in either dtype, from step 1, on the regularized tensors only (the rest follow from step 2)."""
    def halved(run, model, optimizer):
        if optimizer is not None and run.recipe == "coupled":
            for group in optimizer.param_groups:
                group["coupled_weight_decay"] = group.get("coupled_weight_decay", 0.0) / 2

    got = {(r["dtype"], r["recipe"]): r for r in verify(cnn, optimizer="sgd", steps=4, recipes=("penalty", "coupled"),
                                                        hook=halved)}
    regularized = {p.key for p in keras_to_torch(cnn).port.penalties}
    for dtype in ("float64", "float32"):
        assert _exact(got[dtype, "penalty"]) and not _exact(got[dtype, "coupled"]), got[dtype, "coupled"]
        first = got[dtype, "coupled"]["first_divergence"]
        assert first["step"] == 1 and {t.split(":")[0] for t in first["tensors"]} <= regularized, first


def test_the_verdict_is_the_shared_judges(cnn):
    """The records' verdicts are l2compare.core.onestep's rules applied to the record's own numbers: float32
    against both floors + SLACK, float64 against 2⁻²⁹ × the floors + 1e-12 (synthetic OneSteps in
    test_onestep_rules)."""
    records = verify(cnn, optimizer="adam", steps=3, dtypes=("float32",), recipes=("penalty",))
    (r,) = records
    assert r["dtype"] == "float32" and "one step at a time" in r["rule"]
    assert r["verdict"] == ("exact" if r["onestep"]["max_excess"] <= 0 else "close")


def test_onestep_rules():
    from l2compare.core.onestep import FLOAT64_SHARE, SLACK, OneStep

    zeros = np.zeros((3, 2))
    floor = np.full((3, 2), 1e-7)

    def one(cross=zeros, cross64=zeros):
        return OneStep(["a", "b"], cross, floor / 2, floor / 2, cross64, np.full(3, np.inf))

    assert onestep_verdict(one(cross=floor + SLACK)) == "exact"
    assert onestep_verdict(one(cross=floor + 2 * SLACK)) == "close"
    assert onestep_verdict(one(cross=np.full((3, 2), 1e-3))) == "wrong"
    assert onestep_verdict(one(cross=np.where(np.eye(3, 2) > 0, np.nan, 0.0))) == "wrong"
    allowed64 = FLOAT64_SHARE * 1e-7 + 1e-12
    assert onestep_verdict64(one(cross64=np.full((3, 2), allowed64 * 0.99))) == "exact"
    assert onestep_verdict64(one(cross64=np.full((3, 2), allowed64 * 1.01))) == "close"
    assert onestep_verdict64(one(cross64=np.full((3, 2), 1e-3))) == "wrong"


def test_a_bias_before_batchnorm_is_left_out_and_named():
    """Its gradient is zero up to rounding; Adam turns that noise into lr-sized steps, differently in each
    framework, and the moving mean inherits it. Everything else stays exact, and the reason is in the record."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 2)), layers.Conv2D(4, 3, name="conv"),
                              layers.BatchNormalization(name="bn"), layers.ReLU(), layers.Flatten(),
                              layers.Dense(3, activation="softmax", kernel_regularizer=regularizers.l2(1e-2))],
                             name="conv_bn")
    got = {(r["dtype"], r["recipe"]): r for r in verify(model, optimizer="adam", steps=6)}
    for dtype in ("float64", "float32"):
        r = got[dtype, "penalty"]
        assert r["left_out"] == ["conv.bias", "bn.running_mean"] and _exact(r), r
        assert "zero up to rounding" in r["left_out_reasons"]["conv.bias"]
        assert r["left_out_reasons"]["bn.running_mean"] == "updated from conv.bias"
    # Left in, the noise would decide the float32 trajectory: Adam's ±lr steps on noise part the two bias walks.
    r = got["float32", "penalty"]
    assert r["left_out_max_dw"] > 1e-5 and r["max_dw_all"] == r["left_out_max_dw"]
    assert not _exact(got["float64", "stock"])


def test_thresholds_and_hyperparameters_are_the_projects_and_keras():
    from l2compare.parity import onestep as grid_onestep
    from l2compare.parity import runner
    from l2compare.core import onestep as judge
    from torch_impl.optim import KERAS_DEFAULTS

    # One judge for the parity grid and for a user's model (l2compare.core), not two copies that could drift.
    assert verify_mod.trajectory_verdict is runner.trajectory_verdict
    assert runner.onestep_verdict is judge.onestep_verdict and grid_onestep.OneStep is judge.OneStep
    for name, cls, extra in (("adam", keras.optimizers.Adam, {}), ("adamw", keras.optimizers.AdamW, {}),
                             ("sgd", keras.optimizers.SGD, {}), ("momentum", keras.optimizers.SGD, {"momentum": 0.9})):
        config = cls(**extra).get_config()
        for key, value in verify_mod.HYPERPARAMETERS[name].items():
            assert config[key] == pytest.approx(value, rel=1e-7), (name, key)
    assert KERAS_DEFAULTS["adamw"]["weight_decay"] == verify_mod.HYPERPARAMETERS["adamw"]["weight_decay"]


def test_dropout_is_turned_off_in_the_copy_and_the_model_is_untouched():
    keras.utils.set_random_seed(1)
    model = small_cnn(dropout=0.3, name="with_dropout")
    before = [w.numpy().copy() for w in model.weights]
    records = verify(model, optimizer="sgd", steps=4, dtypes=("float64",))
    assert all(r["verdict"] == "exact" for r in records), records
    assert any("dropout off for the comparison" in n and "0.3" in n for n in records[0]["notes"])
    assert model.layers[-2].rate == 0.3 and model.dtype_policy.name == "float32" and not model.compiled
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))


def test_regression_model_and_frozen_layer():
    """No softmax: MSE on random normal targets. A frozen layer stays frozen on the torch side too."""
    keras.utils.set_random_seed(2)
    inp = keras.Input((6,))
    hidden = layers.Dense(5, activation="tanh", kernel_regularizer=regularizers.l2(0.01), name="hidden")(inp)
    frozen = layers.Dense(4, name="frozen")
    out = layers.Dense(3, name="out")(frozen(hidden))
    frozen.trainable = False
    model = keras.Model(inp, out, name="regressor")
    records = verify(model, optimizer="adam", steps=6, dtypes=("float64",))
    got = _by_recipe(records)
    assert got["penalty"]["loss"] == "mean_squared_error"
    assert got["penalty"]["verdict"] == got["coupled"]["verdict"] == "exact", records


def test_random_indices_fit_each_inputs_own_embeddings():
    """The recommender's user ids index a 12-row table, its movie ids a 9-row one: each input is drawn
    below the smallest table it feeds (not the first Embedding's: Keras would raise, index out of range)."""
    keras.utils.set_random_seed(4)
    model = corpus.build("recommender", "float32")
    assert [index_range(model, i) for i in range(2)] == [12, 9]
    task = make_task(model, False, None, steps=5, batch_size=8, seed=0)
    user, movie = task.x
    assert 9 <= user.max() < 12 and movie.max() < 9 and min(user.min(), movie.min()) >= 0
    records = _by_recipe(verify(model, optimizer="momentum", steps=5, dtypes=("float64",)))
    assert records["penalty"]["verdict"] == records["coupled"]["verdict"] == "exact", records["penalty"]
    # Followed through the layers between, to the smallest of several tables; an input that feeds none: 0 to 9.
    ids, other = keras.Input((3,), dtype="int32"), keras.Input((2,), dtype="int32")
    flat = layers.Reshape((3,))(ids)
    out = layers.Concatenate()([layers.Flatten()(layers.Embedding(7, 2)(flat)),
                                layers.Flatten()(layers.Embedding(4, 2)(ids)), layers.Flatten()(other)])
    two = keras.Model([ids, other], out)
    assert [index_range(two, 0), index_range(two, 1)] == [4, verify_mod.INDEX_RANGE]


def _embedding_key(model) -> str:
    return f"{next(layer.name for layer in model.layers if isinstance(layer, layers.Embedding))}.weight"


def test_keras_sparse_adam_on_an_embedding_is_named_not_emulated():
    """gru_bidirectional's Embedding has no regularizer: Keras's Adam squares its sparse gradient per lookup
    (comparisons/test_keras_sparse_adam.py), which torch's dense Adam cannot follow. The embedding parts at
    step 1, alone; every record of the run says so. (SGD with momentum on embeddings is exact: the recommender.)"""
    keras.utils.set_random_seed(5)
    model = corpus.build("gru_bidirectional", "float32")
    key = _embedding_key(model)
    adam = verify(model, optimizer="adam", steps=3, recipes=("penalty", "coupled"))
    for r in adam:
        assert r["sparse_adam"] == [key] and any(n.startswith(f"{key}: ") and "Σ gᵢ²" in n for n in r["notes"]), r
    for r in adam:
        if r["recipe"] != "stock":   # stock Adam parts everywhere (ε's placement)
            first = r["first_divergence"]
            assert r["verdict"] != "exact" and first["step"] == 1, r
            assert {t.split(":")[0] for t in first["tensors"]} == {key}, first


def test_a_regularized_embedding_is_dense_and_exact_with_adam():
    keras.utils.set_random_seed(6)
    model = corpus.build("lstm_text", "float32")   # embeddings_regularizer L2: Keras's gradient is dense
    got = _by_recipe(verify(model, optimizer="adam", steps=4, dtypes=("float64",)))
    assert got["penalty"]["verdict"] == got["coupled"]["verdict"] == "exact" and got["penalty"]["sparse_adam"] == []


def test_given_data_is_checked_and_used(cnn):
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 8, 8, 1)), rng.integers(0, 5, 40)
    with pytest.raises(VerifyError, match=r"data x has shape \(40, 8, 9, 1\); the model 'small_cnn' takes "
                                          r"\(N, 8, 8, 1\)"):
        verify(cnn, data=(rng.random((40, 8, 9, 1)), y), dtypes=("float64",))
    with pytest.raises(VerifyError, match=r"data y has shape \(40, 3\); .* outputs \(N, 5\)"):
        verify(cnn, data=(x, rng.random((40, 3))), dtypes=("float64",))
    with pytest.raises(VerifyError, match="holds class 7; the model has 5 classes"):
        verify(cnn, data=(x, np.full(40, 7)), dtypes=("float64",))
    with pytest.raises(VerifyError, match="x has 40 samples and y has 39"):
        verify(cnn, data=(x, y[:39]), dtypes=("float64",))
    with pytest.raises(VerifyError, match="steps must be a whole number >= 1"):
        verify(cnn, steps=0)
    with pytest.raises(VerifyError, match="unknown optimizer 'rmsprop'"):
        verify(cnn, optimizer="rmsprop")
    with pytest.raises(VerifyError, match="fewer than one batch of 64"):
        verify(cnn, data=(x, y), batch_size=64)
    with pytest.raises(VerifyError, match=r"data x holds 64 NaN or infinite value\(s\); verify needs finite numbers"):
        verify(cnn, data=(np.where(np.arange(40)[:, None, None, None] == 3, np.nan, x), y))
    with pytest.raises(VerifyError, match="recipes must be among penalty, coupled, stock"):
        verify(cnn, recipes=("coupled", "decoupled"))
    records = verify(cnn, data=(x, y), optimizer="sgd", steps=20, dtypes=("float64",), recipes=("penalty",))
    assert records[0]["steps"] == 5 and records[0]["data"] == "given" and records[0]["verdict"] == "exact"
    assert any("data holds 40 samples: 5 steps of 8 (asked for 20)" in n for n in records[0]["notes"])


def test_records_are_json_and_the_report_renders(cnn, tmp_path):
    from l2compare.reports import verify_report

    records = verify(cnn, optimizer="sgd", steps=2, dtypes=("float64", "float32"))
    assert [(r["dtype"], r["recipe"]) for r in records][::3] == [("float64", "penalty"), ("float32", "penalty")]
    assert json.loads(json.dumps(records)) == records
    path = verify_report.write(records, tmp_path / "v.md", model_file="cnn.keras")
    text = path.read_text()
    assert text.startswith("# verify: `small_cnn` from `cnn.keras`") and re.search(r"\| float32 +\| coupled +\|", text)
    header = text.splitlines()[text.splitlines().index("## Verdicts") + 2]
    assert "\\|Δ\\|" in header   # a pipe in a cell is escaped
    assert "![|Δw| per step against the envelope](v.png)" in text and (tmp_path / "v.png").stat().st_size > 1000
    assert re.search(r"float32 +stock", verify_report.text_table(records))
    assert "a different computation" not in text   # every verdict is exact: nothing says otherwise


def test_keras_is_traced_once_per_configuration_and_reset_between_runs():
    """A second run of the same configuration reuses the traced Keras sides, reset to the model's weights and a
    fresh optimizer: the same records, bit for bit. Another optimizer is another configuration."""
    from l2compare.porter.verify import keras_side

    keras.utils.set_random_seed(7)
    cnn = small_cnn(name="traced_once")
    first = verify(cnn, optimizer="sgd", steps=2, recipes=("penalty",))
    sides = [id(side) for _, side in keras_side._SIDES]
    assert verify(cnn, optimizer="sgd", steps=2, recipes=("penalty",)) == first
    assert [id(side) for _, side in keras_side._SIDES] == sides
    verify(cnn, optimizer="momentum", steps=1, recipes=("penalty",))
    mine = sorted((key[1], key[2]) for key, side in keras_side._SIDES if side.source() is cnn)
    assert mine == [("float32", "momentum"), ("float32", "sgd"), ("float64", "momentum"), ("float64", "sgd")]


def test_many_rounding_driven_tensors_are_traced_together():
    """Past NAMED tensors driven by rounding, the buffers they feed are found in one forward pass, not one each."""
    from l2compare.porter.verify.torch_side import NAMED

    keras.utils.set_random_seed(8)
    stack = [keras.Input((4, 4, 2))]
    for i in range(NAMED + 1):
        stack += [layers.Conv2D(2, 1, name=f"c{i}"), layers.BatchNormalization(name=f"bn{i}")]
    model = keras.Sequential(stack + [layers.Flatten(), layers.Dense(3, activation="softmax")], name="biased")
    (r,) = verify(model, optimizer="adam", steps=1, dtypes=("float64",), recipes=("penalty",))
    reasons = r["left_out_reasons"]
    assert {f"c{i}.bias" for i in range(NAMED + 1)} <= set(reasons), reasons
    noise = [k for k, why in reasons.items() if "zero up to rounding" in why]   # the biases, and the betas before a conv
    assert reasons["bn0.running_mean"] == f"updated from one or more of the {len(noise)} tensors above driven by rounding"
