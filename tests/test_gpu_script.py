"""scripts/gpu_determinism.py on this CPU machine: a smoke test of the GPU check's one command.

Every pair repeats bit for bit on CPU, so each must come back identical with max_diff 0.0.
Keras on torch and torch take about 20 s; Keras on JAX about 16 s more, so it is opt-in
(``pytest -m slow``).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_determinism.py"
BACKEND = {"keras": "tensorflow", "keras_jax": "jax", "keras_torch": "torch", "torch": "torch"}
SWITCH = {"torch": "torch.use_deterministic_algorithms(True)", "jax": "XLA_FLAGS=--xla_gpu_deterministic_ops=true"}


@pytest.mark.parametrize("group", [("keras_torch", "torch"), pytest.param(("keras_jax",), marks=pytest.mark.slow)],
                         ids=",".join)
def test_cpu_run_repeats_bit_for_bit(tmp_path, group):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), "--columns", ",".join(group), "--models", "mlp",
                           "--epochs", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == results   # OUT holds what was printed
    assert results["device"] == "cpu" and results["gpu"] is None and results["epochs"] == 1
    assert results["versions"]["numpy"] and ("torch" in results) == ("torch" in results["versions"])
    assert list(results["columns"]) == list(group)
    for name, facts in results["columns"].items():
        assert facts["device"] == "cpu" and facts["gpu"] is None and facts["backend"] == BACKEND[name]
        assert SWITCH[facts["backend"]] in facts["determinism"]
    pairs = {k: v for k, v in results.items() if " / " in k}
    assert list(pairs) == [f"{c} / mlp, deterministic={d}" for c in group for d in (False, True)]
    for key, entry in pairs.items():
        assert entry == {"identical": True, "max_diff": 0.0, "device": "cpu"}, key
    assert len(proc.stderr.strip().splitlines()) == len(pairs)   # one progress line per pair


@pytest.mark.parametrize("argv,message", [
    (["--columns", "torch,kerass"], "unknown column 'kerass'; allowed: keras, keras_jax, keras_torch, torch"),
    (["--models", "mlp,vgg"], "unknown model 'vgg'; allowed: mlp, cnn, mlp_bias"),
    (["--epochs", "0"], "--epochs: expected a whole number >= 1, got 0"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message):
    proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"gpu_determinism.py: error: {message}\n"


def test_compare_reads_norms_and_losses():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_determinism as script
    finally:
        sys.path.remove(str(SCRIPT.parent))
    run = {"norms": {"w": 1.0}, "history": [{"loss": 0.5}, {"loss": float("nan")}]}
    assert script.compare(run, run) == (True, 0.0)   # NaN where both have it is the same
    assert script.compare(run, {**run, "norms": {"w": 1.25}}) == (False, 0.25)
    assert script.compare(run, {**run, "history": [{"loss": 0.5}, {"loss": 0.1}]}) == (False, None)
    assert script.compare(run, {**run, "history": run["history"][:1]}) == (False, None)
