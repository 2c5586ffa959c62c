"""verify's timing rows: the child's wall time and peak memory (``l2compare.porter.verify.timing``) and their
section in results/verify.md (``l2compare.reports.verify_report.timing_markdown``)."""
import sys

from l2compare.porter.verify.timing import timed
from l2compare.reports.verify_report import showcase_markdown, timing_markdown

RECORD = {"application": "ResNet50", "input": "224×224", "parameters": 23608202, "batch_size": 8, "steps": 3,
          "optimizer": "momentum", "threads": 2, "exit": 0, "wall_s": 466.4, "peak_gb": 12.55,
          "verdicts": {"float64 penalty": "exact", "float32 penalty": "exact"},
          "machine": {"cpu": "AMD EPYC", "cores": 2}}


def test_timed_reports_the_childs_exit_code_and_its_own_peak_memory():
    code, wall, peak = timed([sys.executable, "-c", "import sys; x = bytearray(300 * 2**20); sys.exit(3)"])
    assert code == 3 and wall > 0
    assert 0.29 < peak < 0.5, peak   # the child's 300 MiB, not this (test worker) process's size


def test_the_timing_section_shows_each_record():
    text = timing_markdown([RECORD])
    assert "## Timing on real backbones" in text
    row = next(line for line in text.splitlines() if line.startswith("| ResNet50"))
    for cell in ("224×224", "23.6 M", "7.8 min", "12.6 GB", "float64 penalty: exact, float32 penalty: exact",
                 "AMD EPYC, 2 cores"):
        assert cell in row, (cell, row)


def test_verify_md_has_the_timing_section_only_when_there_are_records():
    assert "Timing" not in showcase_markdown([])
    assert "## Timing on real backbones" in showcase_markdown([], [RECORD])
