"""PORTING.md's keras.applications section: read from applications.csv, every row shown, a damaged table named."""
import pandas as pd
import pytest

from l2compare.reports.porting import applications


def test_the_section_shows_every_measured_application(tmp_path):
    csv = tmp_path / "applications.csv"
    pd.DataFrame([{"application": "MobileNet", "family": "MobileNet", "parameters": 3239114, "float64_forward": "4.89e-16",
                   "float64_bound": "1e-12", "float32_forward": "2.53e-07", "float32_bound": "1e-05", "penalty": "0", "port_s": "0.43"},
                  {"application": "ConvNeXtXLarge", "family": "ConvNeXt", "parameters": 348147968,
                   "float64_forward": "not run", "float64_bound": "1e-12", "float32_forward": "3e-07",
                   "float32_bound": "1e-05", "penalty": "1.5e-07", "port_s": "40.1"},
                  {"application": "EfficientNetV2L", "family": "EfficientNetV2", "parameters": 117759658,
                   "float64_forward": "0.601", "float64_bound": "1.71e-09", "float32_forward": "0.961",
                   "float32_bound": "1.93", "penalty": "0", "port_s": "6.19"}]).to_csv(csv, index=False)
    text = applications.section(csv, 11)
    assert text.startswith("## 11. Every keras.applications model") and "3 keras.applications models" in text
    assert "2 of 3 are exact" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "application" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["MobileNet", "ConvNeXtXLarge", "EfficientNetV2L"]
    assert "4.89e-16" in rows[0] and "not run" in rows[1]
    # a float64 difference past its bound is not exact, whatever the float32 columns say
    assert [r.split("|")[-2].strip() for r in rows] == ["exact", "exact", "**not exact**"]


def test_no_table_no_section_and_a_damaged_table_is_named(tmp_path):
    assert applications.section(tmp_path / "applications.csv", 11) == ""
    (tmp_path / "applications.csv").write_text("application,parameters\nVGG16,1\n")
    with pytest.raises(ValueError, match="applications.csv: columns .*float64_forward"):
        applications.section(tmp_path / "applications.csv", 11)
