#!/usr/bin/env bash
# `make test-cpus`: rerun the cross-framework proofs (`pytest comparisons`, plus tests/test_machine.py,
# which checks that each setting took effect) as if on other CPUs and another thread count.
# A test that passes only on this machine's kernels is a defect (DESIGN.md).
#
# What each environment changes, measured on an AMD EPYC with AVX-512 (torch 2.13 / TF 2.21,
# TF_ENABLE_ONEDNN_OPTS=0 as the project sets it; XLA's caps: on one with AVX2 only) by hashing op
# outputs against the default run:
#   onednn-avx2   ONEDNN_MAX_CPU_ISA=AVX2: oneDNN's JIT kernels capped at AVX2 (default: avx512_core).
#                 torch float32 conv2d forward and backward (mkldnn: jit:avx512_core -> jit:avx2) and,
#                 despite TF_ENABLE_ONEDNN_OPTS=0, TensorFlow float32 matmul and conv (its Eigen
#                 contractions call oneDNN's sgemm) change bits. float64, and torch's matmul (MKL), do not.
#                 Joined by XLA_FLAGS=--xla_cpu_max_isa=AVX2, XLA's own cap (JAX; jaxlib's flag text:
#                 SSE4_2, AVX, AVX2, AVX512, AVX512_VNNI, AVX512_BF16, AMX, AMX_FP16): an AVX2 CPU for
#                 every library. Measured on an AVX2 host without AVX-512 (AMD EPYC, jaxlib 0.10.2), by
#                 hashing the weights after comparisons/jax_probe.py xla's steps: no change there (AVX2 is
#                 that host's own level); on an AVX-512 host it turns XLA's AVX-512 code into AVX2 code.
#   onednn-sse41  ONEDNN_MAX_CPU_ISA=SSE41: the same ops again, now on SSE4.1 (torch's convolution
#                 falls back to oneDNN's gemm-based one); bits differ from both of the above.
#                 Joined by XLA_FLAGS=--xla_cpu_max_isa=SSE4_2: on the AVX2 host, every JAX step's
#                 weights change bits, compiled (jit_compile=True) and op by op alike, and the two become
#                 the same bits (no FMA below AVX2; AVX alone measured the same as SSE4_2):
#                 comparisons/test_xla.py asserts each side of that per the ISA the probe reports.
#   aten-default  ATEN_CPU_CAPABILITY=default: ATen's non-vectorized kernels (torch reports DEFAULT;
#                 default here AVX512): elementwise and softmax kernels, e.g. log_softmax changes bits.
#                 Convolutions and matmuls (oneDNN, MKL) and TensorFlow are untouched.
#   aten-avx2     ATEN_CPU_CAPABILITY=avx2: ATen's AVX2 kernels; log_softmax differs from both AVX512
#                 and DEFAULT.
#   threads-2     2 threads in both frameworks (L2COMPARE_THREADS, read by conftest.py, which sets the
#                 OMP/MKL/OpenBLAS variables to it through l2compare.core.environment.configure):
#                 torch reductions (sum) and TensorFlow matmuls (float32 and float64) change bits.
# Not emulated: MKL_ENABLE_INSTRUCTIONS / MKL_DEBUG_CPU_TYPE changed nothing measurable here.
#
# The five runs share the two cores in three lanes started together: two lanes of two single-threaded
# runs each, and the 2-thread run beside them (alone afterwards it left part of a core idle whenever its
# pools waited on Python; each run's thread count is fixed, so sharing cores changes no result).
# Each run logs to its own file, printed at the end with its label; the script fails if any run
# fails, and its last line is a pytest-style total ("N passed ...") over all runs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/l2compare-test-cpus.XXXXXX")
ONE="L2COMPARE_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
TWO="L2COMPARE_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2"
declare -A ENVS=(
    [onednn-avx2]="$ONE ONEDNN_MAX_CPU_ISA=AVX2 XLA_FLAGS=--xla_cpu_max_isa=AVX2"
    [onednn-sse41]="$ONE ONEDNN_MAX_CPU_ISA=SSE41 XLA_FLAGS=--xla_cpu_max_isa=SSE4_2"
    [aten-default]="$ONE ATEN_CPU_CAPABILITY=default"
    [aten-avx2]="$ONE ATEN_CPU_CAPABILITY=avx2"
    [threads-2]="$TWO"
)
LANES=("onednn-avx2 aten-default" "onednn-sse41 aten-avx2" "threads-2")  # all three at once
ORDER=(onednn-avx2 onednn-sse41 aten-default aten-avx2 threads-2)

# One run: a clean slate for the dispatch variables (none inherited), then this environment's own.
run_one() {
    local name=$1 start=$SECONDS rc=0
    shift  # the rest: extra pytest arguments
    # shellcheck disable=SC2086  # ENVS values are word lists of VAR=value
    env -u ONEDNN_MAX_CPU_ISA -u DNNL_MAX_CPU_ISA -u ATEN_CPU_CAPABILITY -u XLA_FLAGS ${ENVS[$name]} \
        "$PYTHON" -m pytest comparisons tests/test_machine.py -q --basetemp="$LOGS/$name.tmp" "$@" \
        >"$LOGS/$name.log" 2>&1 || rc=$?
    echo "$rc" >"$LOGS/$name.rc"
    echo "[test-cpus] $name: exit $rc after $((SECONDS - start))s"
}

run_lane() {
    local name
    for name in $1; do run_one "$name" "${@:2}"; done
}

echo "[test-cpus] logs in $LOGS"
start=$SECONDS
run_lane "${LANES[0]}" "$@" & lane1=$!
run_lane "${LANES[1]}" "$@" & lane2=$!
run_lane "${LANES[2]}" "$@" & lane3=$!
wait "$lane1" "$lane2" "$lane3"
rm -rf "$LOGS"/*.tmp  # pytest's temporary directories; the logs stay

failed=()
for name in "${ORDER[@]}"; do
    echo
    echo "==================== $name: ${ENVS[$name]} ===================="
    cat "$LOGS/$name.log"
    [ "$(cat "$LOGS/$name.rc")" = 0 ] || failed+=("$name")
done

# Sum pytest's closing counts ("120 passed, 3 skipped, 12 deselected in 95.1s") over the runs.
total=$(for name in "${ORDER[@]}"; do tail -n 1 "$LOGS/$name.log"; done | "$PYTHON" -c '
import re, sys
counts = {}
for line in sys.stdin:
    for n, what in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)", line):
        what = "error" if what.startswith("error") else what
        counts[what] = counts.get(what, 0) + int(n)
order = ["failed", "error", "passed", "skipped", "xfailed", "xpassed", "deselected"]
print(", ".join(f"{counts[k]} {k}" for k in order if k in counts) or "no tests ran")')
echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "[test-cpus] FAILED in: ${failed[*]}"
    echo "==================== emulated CPUs: $total in $((SECONDS - start))s (${#ORDER[@]} environments, ${#failed[@]} failed) ===================="
    exit 1
fi
echo "==================== emulated CPUs: $total in $((SECONDS - start))s (${#ORDER[@]} environments passed) ===================="
