"""Measure JAX/XLA on this CPU; run as a script, one JSON line out (KERAS_BACKEND=jax is set here).

``python comparisons/jax_probe.py threads [--pin N] [--xla-flags] [--seconds S]``
    How many cores XLA's CPU client uses: a jitted chain of 1024² float32 matmuls, run for S seconds
    after compiling; process CPU time over wall time, and the CPU time each thread spent (by name,
    from /proc). ``--pin N`` confines the process to N cores (``l2compare.core.environment.pin_cores(N, 0)``)
    before JAX is imported; ``--xla-flags`` sets XLA_FLAGS to the single-thread flags first.
    (comparisons/test_jax_threads.py)

``python comparisons/jax_probe.py xla [--cases mlp_sgd,mlp_adam,cnn_sgd,cnn_adam] [--pin N]``
    One optimizer step of a small L2-regularized Keras model, compiled with ``jit_compile=True`` (XLA,
    the JAX backend's "auto") and with ``jit_compile=False`` (op by op), from the same weights on the
    same batch: how far the two steps' weights are apart, in float32 ulps. (comparisons/test_xla.py)
"""
import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l2compare.core.environment import pin_cores

# The flags people pass to make XLA's CPU client single-threaded.
SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _thread_times() -> dict[str, tuple[str, float, float]]:
    """Each thread of this process: its name, the CPU seconds it has run and the seconds it has waited,
    runnable, for a core (Linux /proc/<tid>/schedstat; {} elsewhere)."""
    out = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                ran, waited = (int(v) / 1e9 for v in f.read().split()[:2])
        except (OSError, ValueError):
            continue
        out[tid] = (name, ran, waited)
    return out


def _machine_busy() -> float | None:
    """CPU seconds the whole machine has been busy, all cores together, the hypervisor's steal included
    (Linux /proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def threads(args) -> dict:
    pinned = pin_cores(args.pin, 0) if args.pin else None
    if args.xla_flags:
        os.environ["XLA_FLAGS"] = SINGLE_THREAD_FLAGS
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (1024, 1024)) / 32.0

    @jax.jit
    def chain(x):
        for _ in range(8):
            x = jnp.tanh(x @ a)
        return x

    x = chain(a).block_until_ready()    # compile outside the measured window
    before, busy0 = _thread_times(), _machine_busy()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    calls = 0
    while time.perf_counter() - wall0 < args.seconds:
        x = chain(x).block_until_ready()
        calls += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    after, busy1 = _thread_times(), _machine_busy()
    zero = ("", 0.0, 0.0)
    ran = {t: after[t][1] - before.get(t, zero)[1] for t in after}
    waited = sum(after[t][2] - before.get(t, zero)[2] for t in after)
    busy = sorted(((seconds, after[t][0]) for t, seconds in ran.items()), reverse=True)
    names: dict[str, int] = {}
    for name, _, _ in after.values():
        names[name] = names.get(name, 0) + 1
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"mode": "threads", "pinned": list(pinned) if pinned else None, "xla_flags": os.environ.get("XLA_FLAGS"),
            "affinity": affinity, "cpu_count": os.cpu_count(), "calls": calls, "wall": wall, "cpu": cpu,
            "ratio": cpu / wall, "waited": waited,
            # Cores this process's threads asked for: running or runnable and waiting (load cannot lower it).
            "demand": (sum(ran.values()) + waited) / wall if after else None,
            # Cores everything else on the machine used meanwhile (load that would lower ``ratio``).
            "others": (busy1 - busy0 - cpu) / wall if busy0 is not None else None, "threads": len(after), "thread_names": names,
            "busy": [[name, round(seconds, 3)] for seconds, name in busy if seconds > 0]}


def xla(args) -> dict:
    """One optimizer step from the same weights on the same batch, compiled by XLA (jit_compile=True) and
    op by op (jit_compile=False), for each case; and the XLA step once more, to show it repeats."""
    pinned = pin_cores(args.pin, 0) if args.pin else None
    import keras
    import numpy as np

    def build(kind: str):
        l2 = keras.regularizers.l2(0.01)
        if kind == "mlp":
            layers = [keras.Input((64,)), keras.layers.Dense(64, activation="relu", kernel_regularizer=l2),
                      keras.layers.Dense(10, activation="softmax", kernel_regularizer=l2)]
        else:  # a small CNN on 8×8 images
            layers = [keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu", kernel_regularizer=l2),
                      keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax", kernel_regularizer=l2)]
        return keras.Sequential(layers)

    def step(kind, opt, start, x, y, jit):
        model = build(kind)
        model.set_weights(start)
        optimizer = keras.optimizers.SGD(0.01) if opt == "sgd" else keras.optimizers.Adam(0.01)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=jit)
        model.train_on_batch(x, y)
        return np.concatenate([np.asarray(w, np.float32).ravel() for w in model.get_weights()])

    out = {"mode": "xla", "backend": keras.backend.backend(), "pinned": list(pinned) if pinned else None, "cases": {}}
    for case in args.cases.split(","):
        kind, opt = case.split("_")
        rng = np.random.default_rng(0)
        shapes = [tuple(w.shape) for w in build(kind).weights]
        start = [(rng.normal(size=s) * (0.3 if len(s) > 1 else 0.1)).astype("float32") for s in shapes]
        x = rng.random((32, 64) if kind == "mlp" else (32, 8, 8, 1)).astype("float32")
        y = rng.integers(0, 10, 32)
        w0 = np.concatenate([w.ravel() for w in start])
        xla_w, again, eager_w = step(kind, opt, start, x, y, True), step(kind, opt, start, x, y, True), \
            step(kind, opt, start, x, y, False)
        diff = np.abs(xla_w - eager_w)
        # Two units: ulps of the weight after the step, and ulps of the larger of the weight before and
        # after (the scale of w − step: where a weight crosses or nears zero, a step one ulp apart is
        # many ulps of the small result).
        ulps_after = diff / np.spacing(np.abs(eager_w))
        ulps_scale = diff / np.spacing(np.maximum(np.abs(w0), np.abs(eager_w)))
        worst = int(np.argmax(ulps_after))
        out["cases"][case] = {
            "n": int(diff.size), "differ": int((diff > 0).sum()), "frac": float((diff > 0).mean()),
            "max_abs": float(diff.max()), "max_ulps": float(ulps_scale.max()), "max_ulps_after": float(ulps_after.max()),
            "worst_after": {"w_before": float(w0[worst]), "w_after": float(eager_w[worst]),
                            "ulps": float(ulps_after[worst])},
            "repeats": bool(np.array_equal(xla_w, again)), "moved": float(np.abs(eager_w - w0).max()),
            "xla_sha": hashlib.sha256(xla_w.tobytes()).hexdigest()[:16],
            "eager_sha": hashlib.sha256(eager_w.tobytes()).hexdigest()[:16]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("threads", "xla"))
    parser.add_argument("--pin", type=int, default=0, help="confine the process to N cores before JAX starts")
    parser.add_argument("--xla-flags", action="store_true", help=f"set XLA_FLAGS={SINGLE_THREAD_FLAGS!r} first")
    parser.add_argument("--cases", default="mlp_sgd,mlp_adam", help="xla: model_optimizer pairs, mlp|cnn _ sgd|adam")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the measured window (threads)")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(json.dumps(threads(args) if args.mode == "threads" else xla(args)))


if __name__ == "__main__":
    main()
