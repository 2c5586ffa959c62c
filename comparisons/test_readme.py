"""The README's Python examples run as written (the README is the contract with new users)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(after: str) -> str:
    text = README.read_text()
    return re.search(r"```python\n(.*?)```", text[text.index(after):], re.S).group(1)


@pytest.mark.parametrize("section", ["## Porting with the Python API"])
def test_readme_python_example_runs(section):
    exec(compile(_block(section), f"README.md ({section})", "exec"), {})
