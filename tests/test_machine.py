"""l2compare.core.machine: every record says which machine, which dispatch and which threads made it."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from l2compare.core import machine
from l2compare.reports import provenance

PROVENANCE_KEYS = {"arch", "cpu", "cores", "isa_caps", "threads", "platform", "python"}
THREADS = int(os.environ.get("L2COMPARE_THREADS", "1"))  # what conftest.py gave both frameworks


def test_provenance_keys_and_types():
    facts = machine.provenance()
    assert set(facts) == PROVENANCE_KEYS
    assert facts["cpu"] and isinstance(facts["cpu"], str)
    assert facts["cores"] == os.cpu_count()
    assert set(facts["isa_caps"]) <= set(machine.ISA_CAPS)
    assert set(facts["threads"]) <= set(machine.THREAD_VARS)


def test_isa_caps_and_threads_hold_exactly_the_variables_that_are_set(monkeypatch):
    for name in machine.ISA_CAPS + machine.THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    assert machine.provenance()["isa_caps"] == {} and machine.provenance()["threads"] == {}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    facts = machine.provenance()
    assert facts["isa_caps"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert facts["threads"] == {"MKL_NUM_THREADS": "3"}


def test_cpu_model_falls_back_without_proc_cpuinfo(monkeypatch):
    def no_file(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(machine, "open", no_file, raising=False)
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    assert machine.cpu_model() == machine.platform.machine()


def test_machine_module_imports_no_framework():
    code = ("import sys, l2compare.core.machine as m; m.provenance(); "
            "print(sorted(f for f in ('torch', 'tensorflow', 'keras') if f in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_parity_record_reads_both_frameworks():
    torch = pytest.importorskip("torch")
    from l2compare.parity import grid as parity_table

    details = parity_table.machine()
    assert set(details) == PROVENANCE_KEYS | {"torch_cpu_capability", "torch_threads", "torch_interop_threads",
                                              "tf_intra_op_threads", "tf_inter_op_threads", "jit_compile", "versions"}
    assert details["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(details["versions"]) == {"torch", "keras", "tensorflow", "numpy"}


def test_the_workers_machine_functions_mirror_each_other():
    keras_worker = pytest.importorskip("keras_impl.worker")
    torch_worker = pytest.importorskip("torch_impl.worker")
    keras_facts, torch_facts = keras_worker.machine(), torch_worker.machine()
    assert set(keras_facts) == PROVENANCE_KEYS | {"tf_intra_op_threads", "tf_inter_op_threads", "jit_compile", "versions"}
    assert keras_facts["jit_compile"] is False   # TensorFlow: told not to (keras_impl.train.compile_model)
    assert set(torch_facts) == PROVENANCE_KEYS | {"torch_cpu_capability", "torch_threads", "torch_interop_threads",
                                                  "versions"}
    assert keras_facts["versions"] == keras_worker.versions() and torch_facts["versions"] == torch_worker.versions()


def test_a_torch_run_record_carries_the_machine():
    torch = pytest.importorskip("torch")
    from l2compare.core.records import finish
    from l2compare.core.spec import RunSpec
    from torch_impl import worker

    spec = RunSpec(model="mlp", framework="torch", regularization="penalty", epochs=1, dataset="article")
    record = finish(spec, worker.Run().run(spec.to_dict()))
    facts = record["machine"]
    assert PROVENANCE_KEYS <= set(facts)
    assert facts["arch"] == machine.platform.machine()
    assert facts["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert facts["torch_threads"] == THREADS
    assert "Machine: " + facts["cpu"] in provenance.machine([record])
    assert f"torch dispatched {facts['torch_cpu_capability']} kernels" in provenance.machine([record])


def test_the_test_session_runs_as_configured():
    """conftest.py fixed both frameworks' threads, and an emulated CPU (``make test-cpus``) took effect."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("tensorflow")
    assert torch.get_num_threads() == THREADS
    assert tf.config.threading.get_intra_op_parallelism_threads() == THREADS
    assert tf.config.threading.get_inter_op_parallelism_threads() == THREADS
    if "L2COMPARE_THREADS" in os.environ:
        # conftest only sets these when unset (setdefault); `make test-cpus` sets them all explicitly
        for var in machine.THREAD_VARS:
            assert os.environ[var] == str(THREADS), f"{var}={os.environ[var]} but L2COMPARE_THREADS={THREADS}"
    wanted = os.environ.get("ATEN_CPU_CAPABILITY")
    if wanted:
        assert torch.backends.cpu.get_cpu_capability() == wanted.upper()


def test_report_describes_old_and_new_records():
    assert provenance.machine([]) == "Machine: not recorded (CPU model and dispatch not recorded)."
    assert provenance.machine([{"machine": "x86_64"}, {}]).startswith("Machine: x86_64 (CPU model")
    torch_side = {"machine": {"arch": "x86_64", "cpu": "Some CPU", "cores": 4, "isa_caps": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
                              "threads": {"OMP_NUM_THREADS": "1"}, "torch_cpu_capability": "AVX2", "torch_threads": 1,
                              "torch_interop_threads": 1}}
    keras_side = {"machine": {"arch": "x86_64", "cpu": "Some CPU", "cores": 4, "isa_caps": {"TF_ENABLE_ONEDNN_OPTS": "0"},
                              "threads": {"OMP_NUM_THREADS": "1"}, "tf_intra_op_threads": 1, "tf_inter_op_threads": 1}}
    text = provenance.machine([{"machine": "x86_64"}, torch_side, keras_side])
    assert text == ("Machine: Some CPU (4 cores, x86_64); torch dispatched AVX2 kernels (ATen CPU capability); "
                    "ISA caps set: ONEDNN_MAX_CPU_ISA=AVX2, TF_ENABLE_ONEDNN_OPTS=0; "
                    "threads: torch 1 (inter-op 1), TensorFlow intra-op 1 / inter-op 1, OMP_NUM_THREADS=1.")
