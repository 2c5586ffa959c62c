"""The corpus: every real-world Keras architecture in it (sixteen, nested backbones, attention and masks
included), each ported, its file checked in a fresh process, and verified against Keras's ``fit`` in float64 for
20 steps with Adam and SGD+momentum."""
import numpy as np
import pytest

from comparisons import portcheck
from l2compare.porter.verify import corpus
from l2compare.porter import keras_to_torch
from l2compare.porter.verify.runner import verify

NAMES = sorted(corpus.BUILDERS)


def _inputs(km, n: int, rng) -> list:
    """Random inputs: floats in [0, 1), or token ids below the smallest vocabulary in the corpus (9)."""
    xs = []
    for t in km.inputs:
        shape = (n, *t.shape[1:])
        if "int" in str(t.dtype):
            xs.append(rng.integers(0, 9, shape).astype(str(t.dtype)))
        else:
            xs.append(rng.random(shape).astype(str(t.dtype)))
    return xs if len(xs) > 1 else xs[0]


def test_the_corpus_holds_at_least_twelve_architectures_each_from_a_public_example():
    assert len(NAMES) >= 12
    for name, build in corpus.BUILDERS.items():
        assert build.__doc__ and len(build.__doc__) > 60, f"{name}: say which public example it follows"


@pytest.mark.parametrize("name", NAMES)
def test_the_generated_file_runs_alone_and_matches_keras(name, keras_seed, tmp_path):
    keras_seed(20)
    km = corpus.build(name, "float64")
    x = _inputs(km, 5, np.random.default_rng(0))
    source = portcheck.assert_standalone(km, x, tmp_path)
    tm = portcheck.assert_forward(km, x)
    # Keras's layer names are the attribute names, and every regularized tensor has its term.
    for penalty in tm.port.penalties:
        assert f"model.{penalty.key}" in source.split("def l2_penalty")[1]
    fresh = corpus.build(name, "float64")   # never called: its losses are the weight regularizers alone
    assert len({p.keras for p in keras_to_torch(fresh).port.penalties}) == len(fresh.losses)


# Keras's Adam squares an Embedding's sparse gradient per lookup when no embeddings_regularizer makes it
# dense (v gets Σgᵢ², not (Σgᵢ)²: comparisons/test_keras_sparse_adam.py); torch's dense Adam cannot.
SPARSE_ADAM = {"gru_bidirectional", "recommender"}


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
@pytest.mark.parametrize("name", NAMES)
def test_verified_against_keras_fit_in_float64(name, optimizer, keras_seed):
    keras_seed(21)
    km = corpus.build(name, "float32")
    records = {r["recipe"]: r for r in verify(km, optimizer=optimizer, steps=20, dtypes=("float64",))}
    assert all(r["steps"] == 20 for r in records.values())
    if optimizer == "adam" and name in SPARSE_ADAM:
        for recipe in ("penalty", "coupled"):
            r = records[recipe]
            assert r["verdict"] != "exact" and r["sparse_adam"], r
            # Only the sparse embeddings (weights or their Adam slots, "embedding.weight:velocity") part at step 1;
            # the rest follow from them.
            parted = {t.split(":")[0] for t in r["first_divergence"]["tensors"]}
            assert r["first_divergence"]["step"] == 1 and parted <= set(r["sparse_adam"]), r["first_divergence"]
        return
    for recipe in ("penalty", "coupled"):
        r = records[recipe]
        assert r["verdict"] == "exact", (f"{name} {optimizer} {recipe}: {r['verdict']}, max |Δw| {r['max_dw']:.3g} "
                                         f"in {r['worst_tensor']} at step {r['worst_step']}; notes {r['notes']}")
    # The stock torch optimizer: SGD momentum is the same computation, Adam is not (ε's placement).
    assert (records["stock"]["verdict"] == "exact") == (optimizer == "momentum"), records["stock"]
