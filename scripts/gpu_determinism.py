"""Is a run bit-reproducible on this machine's GPU? Run it twice per setting and compare the records.

Usage: python scripts/gpu_determinism.py [OUT.json] [--columns keras_jax,keras_torch,torch]
                                         [--models mlp,cnn] [--epochs 3]

One command covers every framework column that can use CUDA: native torch (``torch``) and Keras 3
on its JAX and torch backends (``keras_jax``, ``keras_torch``), the default; ``keras`` (TensorFlow,
CPU-only with this project's tensorflow-cpu) runs when named. The workers put a run on the GPU when
their backend sees one (Keras's JAX backend needs a CUDA jaxlib, ``jax[cuda12]``, not ``jax[cpu]``).
On a CPU-only machine it runs all the same (device "cpu"): a smoke test, whose pairs repeat bit
for bit.

Each column runs in processes of its own (Keras picks its backend at import), one per determinism
setting, as the switches must be set before the framework starts. With determinism on:
torch and Keras's torch backend: ``torch.use_deterministic_algorithms(True)`` and
``CUBLAS_WORKSPACE_CONFIG=:4096:8``; JAX: ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` (appended to
any XLA_FLAGS already set); TensorFlow: ``tf.config.experimental.enable_op_determinism()``.
Off: none of these (an XLA_FLAGS of the caller's own is kept). As in the suite's workers, one
thread per math library, and JAX confined to one core (``Column.pin_cores``).

For each column, model and setting, the same spec (Adam, λ = 0.01 as the model's penalty, seed 0,
the digits data) trains twice in one process; the JSON printed (and written to OUT) gives the
machine (device, GPU name, versions), each column's facts, and per pair, under keys such as
"keras_jax / cnn, deterministic=True": whether the final weight norms and per-epoch losses were
identical, the largest absolute difference between them, and the device the run reported.
An unknown column or model is one line on stderr and exit code 2; a pair that raised (a kernel
with no deterministic implementation, say) is recorded with its error, and the exit code is 1.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import multiprocessing
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, when not installed

from l2compare.core import columns, environment
from l2compare.core.names import MODELS
from l2compare.core.spec import OptimizerSpec, RunSpec, SpecError, choice
from l2compare.engine import workers

DEFAULT_COLUMNS = ("keras_jax", "keras_torch", "torch")
THREADS = 1
XLA_DETERMINISM = "--xla_gpu_deterministic_ops=true"  # XLA's DebugOptions flag (jaxlib 0.10.2 has it)


# ------------------------------------------------------------ in a column's process

_RUN = None  # the column's Run, made by _setup


def _init(name: str, env: dict[str, str]) -> None:
    """The setting's variables, then the process set up as a run worker's (``l2compare.engine.workers.serve``:
    the column's environment, one thread, JAX confined to a core of its own, the framework imported)."""
    environment.configure(THREADS, env)
    workers.serve((columns.get(name),), THREADS, 0)


def _gpu_name(backend: str) -> str | None:
    """The GPU the backend sees, or None."""
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else None
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform in ("gpu", "cuda", "rocm")]
        return gpus[0].device_kind if gpus else None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name) if gpus else None
    return None


def _setup(name: str, deterministic: bool) -> dict:
    """Import the column's framework, fix its threads, turn determinism on if asked: its facts."""
    global _RUN
    _RUN = workers.served(name)
    backend = _RUN.backend()
    switched = []
    if deterministic:
        if backend == "torch":   # native torch, or Keras's torch backend: the same switch
            import torch

            torch.use_deterministic_algorithms(True)
            switched.append("torch.use_deterministic_algorithms(True)")
        elif backend == "tensorflow":
            from keras_impl import seeding

            seeding.enable_determinism()
            switched.append("tf.config.experimental.enable_op_determinism()")
        # jax: XLA_FLAGS, set before JAX started (determinism_env)
        switched += [f"{k}={os.environ[k]}" for k in ("CUBLAS_WORKSPACE_CONFIG", "XLA_FLAGS") if k in os.environ]
    return {"backend": backend, "device": _RUN.device(), "gpu": _gpu_name(backend), "versions": _RUN.versions(),
            "determinism": switched}


def _twice(spec_dict: dict) -> list[dict]:
    """Two runs of the spec: what the comparison reads of each."""
    out = []
    for _ in range(2):
        record = _RUN.run(spec_dict)
        out.append({k: record[k] for k in ("norms", "history", "device", "status", "diverged")})
    return out


# ------------------------------------------------------------ in this process (no framework imported)

def spec_for(column: str, model: str, epochs: int) -> RunSpec:
    """The spec a column trains: λ as the model's penalty, in the column's own vocabulary."""
    regularization = "l2" if columns.get(column).framework == "keras" else "penalty"
    return RunSpec(model=model, framework=column, regularization=regularization, epochs=epochs, seed=0,
                   optimizer=OptimizerSpec("adam"))


def determinism_env(column: str, deterministic: bool) -> dict[str, str]:
    """The variables a column's process needs, before its framework starts, for the setting."""
    if not deterministic:
        return {}
    backend = columns.get(column).backend
    if backend == "torch":   # cuBLAS's deterministic workspace, which use_deterministic_algorithms requires on CUDA
        return {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    if backend == "jax":     # XLA reads it once, when JAX starts; it rejects a flag it does not know
        flags = os.environ.get("XLA_FLAGS", "")
        return {"XLA_FLAGS": flags if XLA_DETERMINISM in flags.split() else f"{flags} {XLA_DETERMINISM}".strip()}
    return {}


def compare(a: dict, b: dict) -> tuple[bool, float | None]:
    """(identical, largest absolute difference) over the final norms and the per-epoch losses.
    NaN equals NaN; a difference that is not finite (NaN against a number, runs of unequal
    length) is None, and not identical."""
    if a["norms"].keys() != b["norms"].keys() or len(a["history"]) != len(b["history"]):
        return False, None
    pairs = [(a["norms"][k], b["norms"][k]) for k in a["norms"]]
    pairs += [(x["loss"], y["loss"]) for x, y in zip(a["history"], b["history"])]
    identical, largest = True, 0.0
    for x, y in pairs:
        x, y = (math.nan if v is None else float(v) for v in (x, y))
        if math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            identical = False
            diff = abs(x - y)
            if not math.isfinite(diff):
                return False, None
            largest = max(largest, diff)
    return identical, largest


def _error(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())  # one line


def measure(column_names, models, epochs: int, progress=None) -> dict:
    """The JSON: machine facts, each column's, and one entry per column, model and setting."""
    context = multiprocessing.get_context("spawn")
    facts: dict[str, dict] = {}
    pairs: dict[str, dict] = {}
    for name in column_names:
        for deterministic in (False, True):
            env = determinism_env(name, deterministic)   # the column's own: workers.serve
            keys = [f"{name} / {model}, deterministic={deterministic}" for model in models]
            try:
                with cf.ProcessPoolExecutor(1, mp_context=context, initializer=_init,
                                            initargs=(name, env)) as pool:
                    got = pool.submit(_setup, name, deterministic).result()
                    switched = got.pop("determinism")
                    facts.setdefault(name, got)
                    if deterministic:   # what deterministic=True set in this column's process
                        facts[name]["determinism"] = switched
                    for model, key in zip(models, keys):
                        try:
                            a, b = pool.submit(_twice, spec_for(name, model, epochs).to_dict()).result()
                        except cf.process.BrokenProcessPool:
                            raise
                        except Exception as exc:  # this pair only (a kernel with no deterministic version, say)
                            pairs[key] = {"error": _error(exc)}
                        else:
                            identical, largest = compare(a, b)
                            pairs[key] = {"identical": identical, "max_diff": largest, "device": a["device"]}
                            if "diverged" in (a["status"], b["status"]):
                                pairs[key]["diverged"] = a["diverged"] or b["diverged"]
                        if progress:
                            progress(key, pairs[key])
            except Exception as exc:  # the process could not start its framework, or died
                for key in keys:
                    if key not in pairs:
                        pairs[key] = {"error": _error(exc)}
                        if progress:
                            progress(key, pairs[key])
    return {**machine(facts), "epochs": epochs, "columns": facts, **pairs}


def machine(facts: dict[str, dict]) -> dict:
    """The top-level facts: "cuda" where any column ran on a GPU, the GPU's name, the versions."""
    seen = list(facts.values())
    versions: dict[str, str] = {}
    for f in seen:
        versions.update(f["versions"])
    out = {"device": "cuda" if any(f["device"] in ("gpu", "cuda") for f in seen) else "cpu",
           "gpu": next((f["gpu"] for f in seen if f["gpu"]), None), "versions": versions}
    if "torch" in versions:
        out["torch"] = versions["torch"]  # where the first version of this file put it
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own also prints the usage)
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse(argv):
    parser = _Parser(prog="gpu_determinism.py", description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="also write the JSON here")
    parser.add_argument("--columns", default=",".join(DEFAULT_COLUMNS),
                        help=f"framework columns, comma-separated (default: {','.join(DEFAULT_COLUMNS)}; "
                             f"allowed: {', '.join(columns.names())})")
    parser.add_argument("--models", default="mlp,cnn", help=f"comma-separated (allowed: {', '.join(MODELS)})")
    parser.add_argument("--epochs", default="3", help="epochs per run (default 3)")
    args = parser.parse_args(argv)
    try:
        args.columns = [c.strip() for c in args.columns.split(",") if c.strip()]
        args.models = [m.strip() for m in args.models.split(",") if m.strip()]
        if not args.columns or not args.models:
            raise SpecError("--columns and --models each need at least one name")
        for name in args.columns:
            choice("column", name, columns.names())
        for name in args.models:
            choice("model", name, MODELS)
        if not args.epochs.isdigit() or int(args.epochs) < 1:
            raise SpecError(f"--epochs: expected a whole number >= 1, got {args.epochs}")
        args.epochs = int(args.epochs)
    except SpecError as exc:
        parser.error(str(exc))
    return args


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)

    def progress(key, entry):
        what = entry.get("error") or f"identical={entry['identical']} max_diff={entry['max_diff']} ({entry['device']})"
        print(f"{key}: {what}", file=sys.stderr, flush=True)

    results = measure(args.columns, args.models, args.epochs, progress)
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if any(isinstance(v, dict) and "error" in v for v in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
