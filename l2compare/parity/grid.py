"""The verdict table: Keras configuration × optimizer (rows) against torch recipes (columns).

Each cell is one parity run (``l2compare.parity.runner``) in float32 and one in float64;
every cell is stored as a record in ``results/parity.jsonl`` (keyed by a hash of
the case), so the table is rebuilt from records and an interrupted build resumes.
``run_cell`` imports both frameworks: the CLI calls it in a worker process.

Beside the grid, a float32 agreement study (``study_cells``): the exact recipe (`penalty`)
against Keras `l2` over seeds, data sets, models and optimizers, to report float32 agreement
as a distribution rather than one seed's number.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from l2compare.core import columns
from l2compare.core.spec import code_fingerprint, keyed
from l2compare.parity.cases import PRESETS, ParityCase, keras_columns, preset_optimizer
from l2compare.parity.runner import OUTLIER, SLACK

# (model, Keras config, optimizer label, exclude biases from weight decay). mlp regularizes the
# first kernel only; mlp_bias adds bias regularizers (kernel and bias on the first Dense, bias on the output).
ROWS = (
    ("mlp", "l2", "sgd", False), ("mlp", "l2", "momentum", False), ("mlp", "l2", "adam", False),
    ("mlp_bias", "l2", "sgd", False), ("mlp_bias", "l2", "momentum", False), ("mlp_bias", "l2", "adam", False),
    ("mlp", "wd", "sgd", False), ("mlp", "wd", "momentum", False), ("mlp", "wd", "adam", False),
    ("mlp", "wd", "adamw", False), ("mlp", "wd", "adamw", True),
)
# Mistakes outside the grid (their own records, `extra: true`), in the float32 article setting
# and in float64: λ instead of 2λ, no Flatten permutation. (A constant torch ε is the grid's
# `stock_torch` column on the Adam rows.)
EXTRAS = {
    "lambda_not_2lambda": dict(model="mlp", recipe="coupled", opt="adam", torch_l2_scale=0.5),
    "no_flatten_permutation": dict(model="cnn", recipe="penalty", opt="adam", flatten="torch"),
}
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
    extra: bool = False
    study: bool = False

    @property
    def key(self) -> str:
        return keyed(asdict(self.case))


def row_label(model: str, config: str, optimizer: str, exclude_bias: bool) -> str:
    what = {"l2": "l2 on kernels+biases" if model == "mlp_bias" else "l2 on kernels", "wd": "weight_decay"}[config]
    return f"{what} / {optimizer}" + (" (biases excluded)" if exclude_bias else "")


def extra_cells() -> list[Cell]:
    out = []
    for name, settings in EXTRAS.items():
        for dtype in DTYPES:
            preset = PRESETS[dtype]
            kw = dict(settings)
            optimizer = preset_optimizer(kw.pop("opt"), dtype)
            case = ParityCase(keras_config="l2", optimizer=optimizer, l2=preset["l2"], dtype=dtype,
                              torch_epsilon=optimizer.epsilon or 1e-7, **kw)
            out.append(Cell(f"l2 on kernels / adam ({case.model})", name, dtype, case, extra=True))
    return out


def cells(keras_column: str = "keras") -> list[Cell]:
    """The grid with Keras on ``keras_column``'s backend; on TensorFlow (the reference), with the
    other mistakes (``extra_cells``) too."""
    out = []
    # Row, then dtype, then column: consecutive cells share one cached Keras trajectory.
    for model, config, label, exclude_bias in ROWS:
        for dtype in DTYPES:
            for column in COLUMNS:
                preset = PRESETS[dtype]
                changes = {"exclude_bias": exclude_bias}
                if config == "wd":
                    changes["weight_decay"] = preset["weight_decay"]
                optimizer = preset_optimizer(label, dtype, **changes)
                stock = column == "stock_torch"
                recipe = ("penalty" if config == "l2" else "decoupled") if stock else column
                case = ParityCase(model=model, keras_config=config, recipe=recipe, optimizer=optimizer,
                                  l2=preset["l2"], dtype=dtype, torch_optimizer="torch" if stock else "keras",
                                  # stock torch Adam at Keras's ε: the placement of ε is what differs
                                  torch_epsilon=optimizer.epsilon or 1e-7, keras_column=keras_column)
                out.append(Cell(row_label(model, config, label, exclude_bias), column, dtype, case))
    return out + extra_cells() if keras_column == columns.PARITY_SOURCE else out


# The float32 agreement study: the exact recipe over seeds × data sets × models × optimizers.
STUDY = {"seeds": range(5), "datasets": ("article", "digits"), "models": ("mlp", "cnn", "mlp_bias"),
         "optimizers": ("sgd", "momentum", "adam")}


def study_cells() -> list[Cell]:
    out = []
    for dataset in STUDY["datasets"]:
        for model in STUDY["models"]:
            for label in STUDY["optimizers"]:
                for seed in STUDY["seeds"]:
                    case = ParityCase(model=model, optimizer=preset_optimizer(label, "float32"),
                                      l2=PRESETS["float32"]["l2"], dataset=dataset, seed=seed)
                    out.append(Cell(f"{model} / {label} / {dataset}", f"seed {seed}", "float32", case, study=True))
    return out


def machine() -> dict:
    """The machine facts of a process that runs both frameworks (a parity worker): each worker's
    ``machine()``, merged, with both frameworks' versions (Keras's backend's among them)."""
    from keras_impl import worker as keras_worker
    from torch_impl import worker as torch_worker

    keras_facts, torch_facts = keras_worker.machine(), torch_worker.machine()
    return {**keras_facts, **torch_facts, "versions": {**keras_facts["versions"], **torch_facts["versions"]}}


def backend_cells(names: tuple[str, ...] | None = None) -> list[Cell]:
    """The grid once more for each other Keras backend (every one, or the Keras columns named):
    which torch recipe reproduces Keras on JAX, on torch."""
    names = keras_columns() if names is None else names
    return [cell for name in names if name != columns.PARITY_SOURCE for cell in cells(name)]


def all_cells(frameworks: tuple[str, ...] | None = None) -> list[Cell]:
    """The grid, the other mistakes and the float32 study on TensorFlow, and the grid on each other
    Keras backend (of ``frameworks``, every registered one by default): every cell `l2compare run
    parity` records."""
    names = keras_columns() if frameworks is None else tuple(n for n in frameworks if n in keras_columns())
    return cells() + study_cells() + backend_cells(names)


def run_cells(group: list[Cell], initial: dict | None = None) -> list[dict]:
    """In a worker process: the records of cells that share one Keras side; ``initial``, where
    that side runs on another backend than TensorFlow, is TensorFlow's initial weights for it."""
    from l2compare.parity.cases import keras_side
    from l2compare.parity.sides import give_initial

    if initial is not None:
        give_initial(keras_side(group[0].case), initial)
    return [run_cell(cell) for cell in group]


def source_initial(cell: Cell) -> dict:
    """In the Keras-on-TensorFlow worker: the initial weights the cell's Keras side starts from."""
    from l2compare.parity.cases import keras_side
    from l2compare.parity.sides import source_initial as initial_of

    return initial_of(keras_side(cell.case))


def run_cell(cell: Cell) -> dict:
    """One parity run -> its record (plain JSON types)."""
    import keras

    from l2compare.parity.runner import run
    from l2compare.core.records import git_commit, json_safe

    result = run(cell.case)
    facts = machine()
    tensor, step, _ = result.worst_tensor()
    one = result.onestep.summary(SLACK, OUTLIER) if result.onestep is not None else None
    return json_safe({
        "key": cell.key, "row": cell.row, "column": cell.column, "dtype": cell.dtype, "extra": cell.extra,
        "study": cell.study, "case": asdict(cell.case), "steps": result.steps,
        # the number the verdict follows from: float32, the median one-step difference (of max |w|);
        # float64, the trajectory's max |Δw|
        "score": one["median"] if one else result.worst,
        "worst": result.worst, "worst_tensor": tensor, "worst_step": step,
        "per_tensor": dict(zip(result.tensors, result.max_dw.max(0).tolist())),
        "trajectory": result.max_dw.max(1).tolist(),
        "envelope": result.envelope.max(1).tolist() if result.envelope is not None else None,
        "onestep": one, "loss_diff": result.loss_diff["loss"], "verdict": result.verdict,
        "keras_column": cell.case.keras_column, "backend": keras.backend.backend(),
        "versions": facts["versions"], "commit": git_commit(), "code": code_fingerprint(), "machine": facts,
    })
