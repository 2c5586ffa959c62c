"""PORTING.md's keras.applications section: read from applications.csv, every row shown, a damaged table named."""
import pandas as pd
import pytest

from l2compare.reports.porting import applications


def test_the_section_shows_every_measured_application(tmp_path):
    csv = tmp_path / "applications.csv"
    pd.DataFrame([{"application": "MobileNet", "family": "MobileNet", "parameters": 3239114, "float64_forward": "4.89e-16",
                   "float32_forward": "2.53e-07", "float32_bound": "1e-05", "penalty": "0", "port_s": "0.43"},
                  {"application": "ConvNeXtXLarge", "family": "ConvNeXt", "parameters": 348147968,
                   "float64_forward": None, "float32_forward": "3e-07", "float32_bound": "1e-05", "penalty": None,
                   "port_s": "40.1"}]).to_csv(csv, index=False)
    text = applications.section(csv, 11)
    assert text.startswith("## 11. Every keras.applications model") and "The 2 keras.applications models" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "application" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["MobileNet", "ConvNeXtXLarge"]
    assert "4.89e-16" in rows[0] and "—" in rows[1]   # not measured in float64: a dash, not a number


def test_no_table_no_section_and_a_damaged_table_is_named(tmp_path):
    assert applications.section(tmp_path / "applications.csv", 11) == ""
    (tmp_path / "applications.csv").write_text("application,parameters\nVGG16,1\n")
    with pytest.raises(ValueError, match="applications.csv: columns .*float64_forward"):
        applications.section(tmp_path / "applications.csv", 11)
