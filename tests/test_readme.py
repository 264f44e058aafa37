"""The README's Python tour runs as written."""
import re
from pathlib import Path


def test_readme_tour_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)
    assert code, "README has no python block"
    ns: dict = {}
    exec(code[0], ns)
    assert len(ns["losses"]) == 4 and all(l == l for l in ns["losses"])
    assert ns["grads"][0].layers[0].weight.shape == (256, 784)
