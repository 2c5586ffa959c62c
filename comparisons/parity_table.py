"""The verdict table: Keras configuration × optimizer (rows) against torch recipes (columns).

Each cell is one parity run (``comparisons.parity``) in float32 and one in float64;
every cell is stored as a record in ``results/parity.jsonl`` (keyed by a hash of
the case), so the table is rebuilt from records and an interrupted build resumes.
``run_cases`` imports both frameworks: the CLI calls it in a worker process.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from comparisons.parity import PRESETS, ParityCase, preset_optimizer

MODEL = "mlp"
# (Keras config, optimizer label, exclude biases from weight decay)
ROWS = (
    ("l2", "sgd", False), ("l2", "momentum", False), ("l2", "adam", False),
    ("wd", "sgd", False), ("wd", "momentum", False), ("wd", "adam", False), ("wd", "adamw", False),
    ("wd", "adamw", True),
)
# Columns: the recipes on Keras-exact optimizers, then `stock_torch`: the row's exact recipe
# (penalty for l2, decoupled for wd) on torch.optim's own classes at Keras's hyperparameters.
COLUMNS = ("penalty", "coupled", "decoupled", "naive_wd", "naive_adamw", "stock_torch")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Cell:
    row: str
    column: str
    dtype: str
    case: ParityCase

    @property
    def key(self) -> str:
        blob = json.dumps(asdict(self.case), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def row_label(config: str, optimizer: str, exclude_bias: bool) -> str:
    return f"{config} / {optimizer}" + (" (biases excluded)" if exclude_bias else "")


def cells() -> list[Cell]:
    out = []
    # Row, then dtype, then column: consecutive cells share one cached Keras trajectory.
    for config, label, exclude_bias in ROWS:
        for dtype in DTYPES:
            for column in COLUMNS:
                preset = PRESETS[dtype]
                changes = {"exclude_bias": exclude_bias}
                if config == "wd":
                    changes["weight_decay"] = preset["weight_decay"]
                optimizer = preset_optimizer(label, dtype, **changes)
                stock = column == "stock_torch"
                recipe = ("penalty" if config == "l2" else "decoupled") if stock else column
                case = ParityCase(model=MODEL, keras_config=config, recipe=recipe, optimizer=optimizer,
                                  l2=preset["l2"], dtype=dtype, torch_optimizer="torch" if stock else "keras",
                                  # stock torch Adam at Keras's ε: the placement of ε is what differs
                                  torch_epsilon=optimizer.epsilon or 1e-7)
                out.append(Cell(row_label(config, label, exclude_bias), column, dtype, case))
    return out


def run_cell(cell: Cell) -> dict:
    """One parity run -> its record (plain JSON types)."""
    import keras
    import torch

    from comparisons.parity import run
    from comparisons.records import git_commit, json_safe

    result = run(cell.case)
    tensor, step, _ = result.worst_tensor()
    return json_safe({
        "key": cell.key, "row": cell.row, "column": cell.column, "dtype": cell.dtype,
        "case": asdict(cell.case), "steps": result.steps, "worst": result.worst, "worst_tensor": tensor,
        "worst_step": step, "per_tensor": dict(zip(result.tensors, result.max_dw.max(0).tolist())),
        "loss_diff": result.loss_diff["loss"], "verdict": result.verdict,
        "versions": {"keras": keras.__version__, "torch": torch.__version__}, "commit": git_commit(),
    })
