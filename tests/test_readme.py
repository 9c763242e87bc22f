"""The README's first example runs as written, and the README stays short with its commands up front."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def first_example() -> str:
    text = README.read_text()
    after = text[text.index("## A first example"):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_the_first_example_runs_as_written(tmp_path):
    run = subprocess.run([sys.executable, "-c", first_example()], capture_output=True, text=True, cwd=tmp_path,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rmse = float(re.search(r"RMSE in the cloud ([0-9.]+) K", run.stdout).group(1))
    assert rmse < 0.5, run.stdout  # a smooth field: far better than its 2.4 K spread of values
    assert "K" in run.stdout.splitlines()[-1] and "field-normal" in run.stdout


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150
    first = "\n".join(lines[:50])
    assert ".venv/bin/geonp demo" in first and ".venv/bin/python -m pytest" in first
    for link in re.findall(r"\]\(([^)#]+)\)", README.read_text()):
        assert (README.parent / link).exists(), link
