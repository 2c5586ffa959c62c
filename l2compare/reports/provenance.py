"""Where the numbers came from, for results/README.md: record counts, seeds, versions, commit, machine."""
from __future__ import annotations

import pandas as pd

from l2compare.reports.tables import distinct as _distinct


def provenance(df: pd.DataFrame, runs: list[dict], parity: list[dict]) -> str:
    """One paragraph: how many records, which seeds, epochs, data sets, versions, commits and machine."""
    records = runs + parity
    versions: dict[str, list[str]] = {}
    for r in records:
        for package, version in (r.get("versions") or {}).items():
            versions.setdefault(package, [])
            if version not in versions[package]:
                versions[package].append(version)
    listed = "; ".join(f"{k} {', '.join(v)}" for k, v in sorted(versions.items())) or "—"
    return (f"Generated from {len(runs)} run records (seeds {_distinct(sorted(set(df['seed'])))}; "
            f"epochs {_distinct(sorted(set(df['epochs'])))}; data set {_distinct(df['dataset'])}) "
            f"and {len(parity)} parity records. Versions: {listed}. "
            f"Commit: {_distinct(r.get('commit') for r in records)}. {machine(records)}")


MACHINE_COLUMNS = ["arch", "cpu", "cores", "torch_cpu_capability", "torch_threads", "torch_interop_threads",
                   "tf_intra_op_threads", "tf_inter_op_threads"]


def machine(records: list[dict]) -> str:
    """Which machine made the numbers: CPU, the ISA level torch dispatched, ISA caps, thread counts.

    From each record's ``machine`` (``l2compare.core.machine``); records older than that carry only the
    architecture as a string, or nothing, and are described as far as they go.
    """
    rows, caps, env_threads = [], {}, {}
    for r in records:
        m = r.get("machine")
        m = {"arch": m} if isinstance(m, str) else m if isinstance(m, dict) else {}
        rows.append(m)
        for name, value in (m.get("isa_caps") or {}).items():
            caps.setdefault(f"{name}={value}", None)
        for name, value in (m.get("threads") or {}).items():
            env_threads.setdefault(f"{name}={value}", None)
    df = pd.DataFrame(rows).reindex(columns=MACHINE_COLUMNS)

    def distinct(column: str) -> str:
        values = df[column].dropna()
        return _distinct(values.astype(int) if column not in ("arch", "cpu", "torch_cpu_capability") else values)

    if df["cpu"].isna().all():
        arch = distinct("arch")
        return f"Machine: {arch if arch != '—' else 'not recorded'} (CPU model and dispatch not recorded)."
    cores = distinct("cores")
    parts = [f"Machine: {distinct('cpu')} ({cores} {'core' if cores == '1' else 'cores'}, {distinct('arch')})"]
    if df["torch_cpu_capability"].notna().any():
        parts.append(f"torch dispatched {distinct('torch_cpu_capability')} kernels (ATen CPU capability)")
    parts.append(f"ISA caps set: {', '.join(caps) or 'none'}")
    threads = []
    if df["torch_threads"].notna().any():
        threads.append(f"torch {distinct('torch_threads')} (inter-op {distinct('torch_interop_threads')})")
    if df["tf_intra_op_threads"].notna().any():  # 0: TensorFlow's default, one per core
        threads.append(f"TensorFlow intra-op {distinct('tf_intra_op_threads')} / "
                       f"inter-op {distinct('tf_inter_op_threads')}")
    threads += env_threads
    parts.append(f"threads: {', '.join(threads) or 'not recorded'}")
    return "; ".join(parts) + "."
