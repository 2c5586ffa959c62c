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


def xla_isa() -> dict:
    """Which instructions XLA's CPU code generator may use in this process: the host's (Linux
    /proc/cpuinfo flags) under XLA's own cap (``XLA_FLAGS=--xla_cpu_max_isa=SSE4_2|AVX|AVX2|AVX512...``)."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = set(next((line for line in f if line.startswith("flags")), ":").split(":", 1)[1].split())
    except OSError:
        pass
    cap = next((word.split("=", 1)[1] for word in os.environ.get("XLA_FLAGS", "").split()
                if word.startswith("--xla_cpu_max_isa=")), None)
    # FMA3 arrives with AVX2 on every x86 CPU that has both; XLA's AVX2 level is the first that emits it.
    capped_below_fma = cap is not None and cap.upper() in ("SSE4_2", "AVX")
    return {"max_isa": cap, "host_fma": "fma" in flags, "avx512f": "avx512f" in flags,
            "fma": "fma" in flags and not capped_below_fma}


def xla(args) -> dict:
    """One optimizer step from the same weights on the same batch, compiled by XLA (jit_compile=True) and
    op by op (jit_compile=False), for each case; the XLA step once more, to show it repeats; op by op
    again on the batch in reverse order (the same step, its batch sums in another float32 order); and,
    last, the same step in float64 (JAX's x64 mode): the exact step the float32 ones round."""
    pinned = pin_cores(args.pin, 0) if args.pin else None
    import keras
    import numpy as np

    def build(kind: str, dtype: str):
        # float64: λ as float32 holds it, as the float32 model applies it (a float32 multiply).
        l2 = keras.regularizers.l2(0.01 if dtype == "float32" else float(np.float32(0.01)))
        dense = dict(kernel_regularizer=l2, dtype=dtype)
        if kind == "mlp":
            layers = [keras.Input((64,), dtype=dtype), keras.layers.Dense(64, activation="relu", **dense),
                      keras.layers.Dense(10, activation="softmax", **dense)]
        else:  # a small CNN on 8×8 images
            layers = [keras.Input((8, 8, 1), dtype=dtype), keras.layers.Conv2D(8, 3, activation="relu", **dense),
                      keras.layers.Flatten(dtype=dtype), keras.layers.Dense(10, activation="softmax", **dense)]
        return keras.Sequential(layers)

    def step(kind, opt, start, x, y, jit, dtype="float32"):
        model = build(kind, dtype)
        model.set_weights([w.astype(dtype) for w in start])
        if opt == "sgd":   # the float32 run's lr is a float32 variable: the float64 step gets its value
            optimizer = keras.optimizers.SGD(0.01 if dtype == "float32" else float(np.float32(0.01)))
        else:   # Adam with every constant exact in float32, (1 − β2)^½ / (1 − β1) included: else its float32
            # rounding (1 − β2 cast first: 1.3e-5 relative) moves every weight alike, XLA's and op by op's
            optimizer = keras.optimizers.Adam(2**-7, beta_1=0.875, beta_2=1 - 2**-8, epsilon=2**-23)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=jit)
        model.train_on_batch(x.astype(dtype), y)
        return np.concatenate([np.asarray(w, np.float64).ravel() for w in model.get_weights()])

    out = {"mode": "xla", "backend": keras.backend.backend(), "pinned": list(pinned) if pinned else None,
           "isa": xla_isa(), "cases": {}}
    inputs, steps = {}, {}
    for case in args.cases.split(","):
        kind, opt = case.split("_")
        rng = np.random.default_rng(0)
        shapes = [tuple(w.shape) for w in build(kind, "float32").weights]
        start = [(rng.normal(size=s) * (0.3 if len(s) > 1 else 0.1)).astype("float32") for s in shapes]
        x = rng.random((32, 64) if kind == "mlp" else (32, 8, 8, 1)).astype("float32")
        y = rng.integers(0, 10, 32)
        inputs[case] = (kind, opt, start, x, y)
        steps[case] = {"xla": step(kind, opt, start, x, y, True), "again": step(kind, opt, start, x, y, True),
                       "eager": step(kind, opt, start, x, y, False),
                       "reordered": step(kind, opt, start, x[::-1].copy(), y[::-1].copy(), False)}
    import jax

    jax.config.update("jax_enable_x64", True)   # only now: x64 changes how JAX traces float32 code too
    for case, (kind, opt, start, x, y) in inputs.items():
        s, exact = steps[case], step(kind, opt, start, x, y, False, "float64")
        w0 = np.concatenate([w.ravel() for w in start]).astype(np.float64)
        xla_w, eager_w = s["xla"], s["eager"]
        # Units: float32 ulps of the larger of the weight before and after the step, the scale of
        # w − step (where a weight crosses or nears zero, a step one ulp apart is many ulps of the small
        # result); and, for the record, ulps of the result alone.
        scale = np.spacing(np.maximum(np.abs(w0), np.abs(eager_w)).astype(np.float32)).astype(np.float64)
        diff = np.abs(xla_w - eager_w)
        rounded = exact.astype(np.float32).astype(np.float64)   # the exact step, correctly rounded

        def error(w) -> dict:
            """One float32 step against the exact one: the worst ulps of scale, and the weights that are
            not the correctly rounded exact weight."""
            return {"max_ulps": float((np.abs(w - exact) / scale).max()), "misrounded": int((w != rounded).sum())}

        out["cases"][case] = {
            "n": int(diff.size), "differ": int((diff > 0).sum()), "max_abs": float(diff.max()),
            "max_ulps": float((diff / scale).max()),
            "max_ulps_after": float((diff / np.spacing(np.abs(eager_w).astype(np.float32))).max()),
            "error": {name: error(s[name]) for name in ("xla", "eager", "reordered")},
            "repeats": bool(np.array_equal(xla_w, s["again"])), "moved": float(np.abs(eager_w - w0).max()),
            "xla_sha": hashlib.sha256(xla_w.astype(np.float32).tobytes()).hexdigest()[:16],
            "eager_sha": hashlib.sha256(eager_w.astype(np.float32).tobytes()).hexdigest()[:16]}
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
