"""The ``l2compare`` command: run experiments, rebuild reports, compare a configuration of your own,
port a .keras file of your own to PyTorch and verify that its port trains like it.

User mistakes (an unknown model, recipe or data set, a negative λ, zero epochs...)
end with one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from l2compare.core import columns
from l2compare.core.data.sets import DATASETS, DatasetError, load
from l2compare.core.names import DTYPES, KERAS_CONFIGS, MODELS, MODES, OPTIMIZERS, TORCH_RECIPES
from l2compare.core.spec import SpecError
from l2compare import cli_store
from l2compare.engine import experiments
from l2compare.engine.files import FileFault
from l2compare.engine.store_format import StoreError
from l2compare import __version__
# UsageError is defined beside port and verify, which raise it too: one class for every command.
from l2compare.cli_args import _dataset, _frameworks, _lambda, _positive_int, _seeds
from l2compare.cli_port import UsageError, add_verify_parser, cmd_port, cmd_verify

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="l2compare", description="Compare L2 regularization in Keras and PyTorch, side by side.")
    parser.add_argument("--version", action="version", version=f"l2compare {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p, seeds_default="3"):
        p.add_argument("--dataset", type=_dataset, default="digits",
                       help=f"{', '.join(DATASETS)} or npz:PATH (default: digits, embedded, offline)")
        p.add_argument("--seeds", type=_seeds, default=_seeds(seeds_default), help="a count (3) or a list (0,5,7)")
        p.add_argument("--epochs", type=_positive_int, default=10)
        p.add_argument("--out", type=Path, default=Path("results"), help="results folder (default: results)")
        p.add_argument("--threads", type=_positive_int, default=1, help="threads per framework worker (same for both)")
        p.add_argument("--force", action="store_true", help="rerun runs already recorded")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    every_column = ",".join(columns.names())
    run = sub.add_parser("run", help="run experiments and write their tables and plots")
    run.add_argument("experiments", nargs="+", metavar="EXPERIMENT",
                     help=f"{', '.join(experiments.NAMES)}, or all (all but sweep_large)")
    run.add_argument("--frameworks", default=every_column,
                     help=f"comma-separated framework columns to run (`l2compare list`; default all: {every_column}); "
                          "parity: the Keras backends' grids")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local worker processes (default), or Ray tasks on a cluster (--address)")
    run.add_argument("--address", default=None,
                     help="with --executor ray: the cluster to join (default: RAY_ADDRESS, else a local Ray instance "
                          "started and stopped by this run)")
    common(run)

    plan = sub.add_parser("plan", help="how many runs an invocation of `run` would execute and reuse, and its "
                                       "core-hours (from the bench records)")
    plan.add_argument("experiments", nargs="+", metavar="EXPERIMENT", help=f"{', '.join(experiments.NAMES)}, or all")
    plan.add_argument("--frameworks", default=every_column, help="as for run")
    common(plan)

    report = sub.add_parser("report", help="rebuild tables and plots from the recorded runs")
    report.add_argument("--out", type=Path, default=Path("results"))

    sub.add_parser("list", help="list experiments, models, recipes and data sets")

    bench = sub.add_parser("bench", help="time the suite's training loops against minimal ones; write bench.md")
    bench.add_argument("--out", type=Path, default=Path("results"))
    bench.add_argument("--repeats", type=_positive_int, default=7)
    bench.add_argument("--epochs", type=_positive_int, default=3, help="timed epochs per measurement")
    bench.add_argument("--models", default="mlp,cnn", help="comma-separated models")
    bench.add_argument("--threads", type=_positive_int, default=1)
    bench.add_argument("--frameworks", default=every_column,
                       help="comma-separated framework columns to time (default all); the others' records are kept")

    compare = sub.add_parser("compare", help="one configuration of your own: Keras config vs torch recipes")
    compare.add_argument("--model", choices=MODELS, default="mlp")
    compare.add_argument("--l2", type=_lambda, default=0.01, help="λ (default 0.01)")
    compare.add_argument("--keras", choices=KERAS_CONFIGS, default="l2", help="Keras config (default l2)")
    compare.add_argument("--recipes", default="penalty", help=f"comma-separated: {', '.join(TORCH_RECIPES)}")
    compare.add_argument("--frameworks", default="keras,torch",
                         help="comma-separated framework columns (`l2compare list`; default keras,torch): Keras "
                              "columns run --keras, torch columns each of --recipes")
    compare.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    compare.add_argument("--lr", type=_lambda, default=None)
    compare.add_argument("--momentum", type=_lambda, default=0.0)
    compare.add_argument("--weight-decay", type=_lambda, default=None)
    compare.add_argument("--mode", choices=MODES, default="native")
    compare.add_argument("--dtype", choices=DTYPES, default="float32")
    compare.add_argument("--batch-size", type=_positive_int, default=32)
    common(compare, seeds_default="1")

    port = sub.add_parser("port", help="write the PyTorch port of a .keras model: a standalone .py file and its "
                                       "weights")
    port.add_argument("model", type=Path, metavar="MODEL.keras")
    port.add_argument("-o", "--out", type=Path, default=None,
                      help="the .py file to write (default: <model>_torch.py in the current folder)")

    add_verify_parser(sub, _positive_int)   # l2compare.cli_port: verify's options live beside the command
    cli_store.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, SpecError, DatasetError) as exc:
        print(f"l2compare: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StoreError, FileFault) as exc:  # the user's files or disk, not a bug: one line, no traceback
        print(f"l2compare: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nl2compare: interrupted; every finished run is saved — run the same command again to resume.",
              file=sys.stderr)
        return 130


def _experiment_names(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in experiments.NAMES and n != "all"]
    if unknown:
        raise UsageError(f"unknown experiment {unknown[0]!r}; allowed: {', '.join(experiments.NAMES)}, all")
    expanded = [n for name in names for n in (experiments.ALL if name == "all" else (name,))]
    return list(dict.fromkeys(expanded))


def _check_data(name: str) -> None:
    if name != "digits":  # digits ships with scikit-learn; others may need a file or a download
        load(name)


def _check_out(out: Path) -> None:
    """The results folder exists (made if need be) and takes files: checked before any run
    starts, so that a bad --out is one line now, not a traceback after the first run."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Writing a file is the only reliable test: os.access says yes to root on a read-only mount.
        with tempfile.NamedTemporaryFile(dir=out, prefix=".tmp.write-check."):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"--out {out}: cannot create or write the results folder ({reason})") from None


def cmd_run(args) -> int:
    from l2compare import pipeline

    names = _experiment_names(args.experiments)
    _check_data(args.dataset)
    _check_out(args.out)
    if args.address and args.executor != "ray":
        raise UsageError("--address joins a Ray cluster: use it with --executor ray")
    settings = _settings(args)
    return pipeline.run_and_report(names, settings, args.out, threads=args.threads, force=args.force,
                                    progress=not args.no_progress, executor=args.executor, address=args.address)


def _settings(args) -> experiments.Settings:
    frameworks = tuple(c.name for c in _frameworks(args.frameworks))
    return experiments.Settings(dataset=args.dataset, seeds=args.seeds, epochs=args.epochs, frameworks=frameworks)


def cmd_plan(args) -> int:
    from l2compare.engine import planning, workers

    names = _experiment_names(args.experiments)
    _check_data(args.dataset)
    result = planning.plan(names, _settings(args), args.out, threads=args.threads)
    print(planning.describe(result, workers_here=workers.default_workers(args.threads)))
    return 0


def cmd_report(args) -> int:
    from l2compare import pipeline

    written = pipeline.report(args.out)
    print(f"wrote {len(written)} files under {args.out}/")
    return 0


def cmd_list(args) -> int:
    print("experiments:")
    for name, (description, _) in experiments.EXPERIMENTS.items():
        print(f"  {name:8s} {description}")
    print("  parity   verdict table: Keras config × optimizer against every torch recipe, float32 and float64")
    print("framework columns:")
    for column in columns.all_columns():
        print(f"  {column.name:8s} {column.description or column.label} (backend {column.backend})")
    print(f"models:        {', '.join(MODELS)}")
    print(f"Keras configs: {', '.join(KERAS_CONFIGS)}")
    print(f"torch recipes: {', '.join(TORCH_RECIPES)}")
    print(f"optimizers:    {', '.join(OPTIMIZERS)}")
    print(f"data sets:     {', '.join(DATASETS)}, npz:PATH")
    return 0


def cmd_bench(args) -> int:
    from l2compare.engine import bench_jobs as bench
    from l2compare.reports import bench_table as bench_report

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    for m in models:
        if m not in MODELS:
            raise UsageError(f"unknown model {m!r}; allowed: {', '.join(MODELS)}")
    start = time.perf_counter()
    frameworks = [c.name for c in _frameworks(args.frameworks)]
    records = bench.run(args.out, repeats=args.repeats, epochs=args.epochs, threads=args.threads, models=models,
                        frameworks=frameworks)
    path = bench_report.write(args.out, records)
    if (args.out / "runs.jsonl").exists():  # index bench.md in results/README.md
        from l2compare import pipeline

        pipeline.report(args.out)
    print(path.read_text())
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s")
    return 0


def cmd_compare(args) -> int:
    from l2compare import pipeline
    from l2compare.core.spec import OptimizerSpec, RunSpec

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    for r in recipes:
        if r not in TORCH_RECIPES:
            raise UsageError(f"unknown torch recipe {r!r}; allowed: {', '.join(TORCH_RECIPES)}")
    _check_data(args.dataset)
    _check_out(args.out)
    optimizer = OptimizerSpec(args.optimizer, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    common = dict(model=args.model, l2=args.l2, optimizer=optimizer, mode=args.mode, dataset=args.dataset,
                  epochs=args.epochs, batch_size=args.batch_size, dtype=args.dtype)
    frameworks = _frameworks(args.frameworks)
    specs = []
    for seed in args.seeds:
        for column in frameworks:
            regularizations = [args.keras] if column.framework == "keras" else recipes
            specs += [RunSpec(framework=column.name, regularization=r, seed=seed, **common) for r in regularizations]
    return pipeline.compare(specs, args.out, threads=args.threads, force=args.force, progress=not args.no_progress)


COMMANDS = {"run": cmd_run, "plan": cmd_plan, "report": cmd_report, "list": cmd_list, "compare": cmd_compare,
            "bench": cmd_bench, "port": cmd_port, "verify": cmd_verify, "store": cli_store.cmd_store}

if __name__ == "__main__":
    sys.exit(main())
