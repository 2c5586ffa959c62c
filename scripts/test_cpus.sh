#!/usr/bin/env bash
# `make test-cpus`: rerun the cross-framework proofs (`pytest comparisons`, plus tests/test_machine.py,
# which checks that each setting took effect) as if on other CPUs and another thread count.
# A test that passes only on this machine's kernels is a defect (DESIGN.md).
#
# Each environment is a CPU a user may have: every library capped at once, as a real CPU caps them.
# What each cap changes, measured by hashing op outputs against the default run (torch 2.13 / TF 2.21,
# TF_ENABLE_ONEDNN_OPTS=0 as the project sets it; oneDNN and ATen on an AMD EPYC with AVX-512, XLA on one
# with AVX2 only):
#   avx2-cpu   an AVX2 CPU without AVX-512 (Haswell to Zen 3):
#              ONEDNN_MAX_CPU_ISA=AVX2: oneDNN's JIT kernels capped at AVX2 (default there: avx512_core).
#                torch float32 conv2d forward and backward (mkldnn: jit:avx512_core -> jit:avx2) and,
#                despite TF_ENABLE_ONEDNN_OPTS=0, TensorFlow float32 matmul and conv (its Eigen
#                contractions call oneDNN's sgemm) change bits. float64, and torch's matmul (MKL), do not.
#              ATEN_CPU_CAPABILITY=avx2: ATen's AVX2 kernels; log_softmax differs from AVX512 and DEFAULT.
#              XLA_FLAGS=--xla_cpu_max_isa=AVX2, XLA's own cap (JAX; jaxlib's flag text: SSE4_2, AVX, AVX2,
#                AVX512, AVX512_VNNI, AVX512_BF16, AMX, AMX_FP16): on an AVX-512 host, AVX2 code.
#              On a host that is itself AVX2 without AVX-512 or AVX-VNNI (read from /proc/cpuinfo), these caps
#              are the host's own levels (measured on an AMD EPYC of that kind: no hash changes, torch reports
#              AVX2), so `make test` already ran this CPU and the run is skipped with a line saying so.
#   sse41-cpu  a CPU from before AVX2 (no FMA):
#              ONEDNN_MAX_CPU_ISA=SSE41: the same ops again, now on SSE4.1 (torch's convolution falls back
#                to oneDNN's gemm-based one); bits differ from both of the above.
#              ATEN_CPU_CAPABILITY=default: ATen's non-vectorized kernels (torch reports DEFAULT):
#                elementwise and softmax kernels, e.g. log_softmax changes bits.
#              XLA_FLAGS=--xla_cpu_max_isa=SSE4_2: every JAX step's weights change bits, compiled
#                (jit_compile=True) and op by op alike, and the two become the same bits (no FMA below AVX2;
#                AVX alone measured the same as SSE4_2): comparisons/test_xla.py asserts each side of that
#                per the ISA the probe reports.
#   threads-2  2 threads in both frameworks (L2COMPARE_THREADS, read by conftest.py, which sets the
#              OMP/MKL/OpenBLAS variables to it through l2compare.core.environment.configure):
#              torch reductions (sum) and TensorFlow matmuls (float32 and float64) change bits.
# Not emulated: MKL_ENABLE_INSTRUCTIONS / MKL_DEBUG_CPU_TYPE changed nothing measurable here.
# Until stop 23 the oneDNN and ATen caps ran as four environments of their own; joined, they are the CPUs
# that exist, and the run takes about half the time (each environment is ~20 CPU-minutes of pytest).
#
# The runs start together, one process each (two single-threaded, the 2-thread run beside them: each
# run's thread count is fixed, so sharing cores changes no result). Each run logs to its own file,
# printed at the end with its label; the script fails if any run fails, and its last line is a
# pytest-style total ("N passed ...") over all runs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/l2compare-test-cpus.XXXXXX")
ONE="L2COMPARE_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
TWO="L2COMPARE_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2"
declare -A ENVS=(
    [avx2-cpu]="$ONE ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 XLA_FLAGS=--xla_cpu_max_isa=AVX2"
    [sse41-cpu]="$ONE ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default XLA_FLAGS=--xla_cpu_max_isa=SSE4_2"
    [threads-2]="$TWO"
)
ORDER=(avx2-cpu sse41-cpu threads-2)

# The host's own CPU is an AVX2 one (avx2, and no avx512f, avx_vnni or amx flag): the avx2-cpu caps change
# nothing here, and `make test` ran it.
host_is_avx2_cpu() {
    local flags
    flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null) || return 1
    [[ " $flags " == *" avx2 "* ]] || return 1
    [[ " $flags " =~ \ (avx512f|avx_vnni|amx_[a-z0-9]+)\  ]] && return 1
    return 0
}
if [ -z "${TEST_CPUS_ALL:-}" ] && host_is_avx2_cpu; then
    SKIPPED=(avx2-cpu)
    ORDER=(sse41-cpu threads-2)
else
    SKIPPED=()
fi

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

echo "[test-cpus] logs in $LOGS"
for name in "${SKIPPED[@]}"; do
    echo "[test-cpus] $name: skipped: this host is that CPU (AVX2, no AVX-512 or AVX-VNNI), and make test ran it; TEST_CPUS_ALL=1 runs it anyway"
done
start=$SECONDS
pids=()
for name in "${ORDER[@]}"; do
    run_one "$name" "$@" & pids+=($!)
done
wait "${pids[@]}"
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
