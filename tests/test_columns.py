"""A framework column is one registry entry: registered here, and nowhere else, a column that
reuses the Keras worker under a new name shows up in `l2compare list`, runs through the engine
(in a worker process that never saw this registration), and gets its own side in a table."""
from __future__ import annotations

import pytest

from l2compare.core import columns
from l2compare.core.columns import Column
from l2compare.core.spec import OptimizerSpec, RunSpec, SpecError

COPY = Column("keras_copy", "keras", "tensorflow", "keras_impl.worker", "Keras copy",
              "the Keras column again, under another name (a test)", env={"KERAS_BACKEND": "tensorflow"})


@pytest.fixture
def keras_copy():
    columns.register(COPY)
    try:
        yield COPY
    finally:
        columns.unregister(COPY.name)


def test_unregistered_columns_are_refused():
    with pytest.raises(SpecError, match="unknown framework column 'keras_copy'; allowed: keras, keras_jax, keras_torch, torch"):
        RunSpec(framework="keras_copy")


def test_a_new_column_shows_in_list_in_a_run_and_in_a_table(keras_copy, tmp_path, capsys):
    from l2compare import cli, pipeline

    assert cli.main(["list"]) == 0
    assert "keras_copy" in capsys.readouterr().out

    common = dict(model="mlp", regularization="l2", l2=0.01, optimizer=OptimizerSpec("adam"), dataset="article",
                  epochs=1, seed=0)
    specs = [RunSpec(framework=name, **common) for name in ("keras", "keras_copy")]
    assert pipeline.compare(specs, tmp_path, progress=False) == 0
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert {"keras", "keras_copy"} <= set(rows)

    from l2compare.engine.store import RunStore
    from l2compare.reports import frames, tables

    stored = RunStore(tmp_path / "runs.jsonl").records()
    records = {r["framework"]: r for r in stored}
    assert set(records) == {"keras", "keras_copy"}
    # The article's side-by-side table gets a side for it, labelled from the registry.
    markdown = tables.article_markdown(tables.article_table(frames.runs_frame(stored)))
    assert "(Keras copy l2)" in markdown and "(Keras l2)" in markdown
    # The same worker, the same spec but for the column's name: the same numbers, bit for bit.
    assert records["keras_copy"]["norms"] == records["keras"]["norms"]
    assert records["keras_copy"]["backend"] == "tensorflow"


def test_a_column_with_another_environment_gets_a_process_of_its_own():
    """Columns whose environments disagree (two Keras backends) must not share a worker process."""
    from l2compare.engine.workers import _agree

    jax_like = Column("keras_other", "keras", "jax", "keras_impl.worker", "Keras other", env={"KERAS_BACKEND": "jax"})
    assert _agree(columns.get("keras"), columns.get("torch"))
    assert not _agree(columns.get("keras"), jax_like)
