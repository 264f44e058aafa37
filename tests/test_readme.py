"""The README's Python examples run as written."""
import re

import numpy as np
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2, "README lost its python examples"
    monkeypatch.chdir(tmp_path)  # the second block writes a checkpoint
    ns: dict = {}
    exec(blocks[0], ns)
    assert len(ns["losses"]) == 4 and all(l == l for l in ns["losses"])
    assert ns["grads"][0].layers[0].weight.shape == (256, 784)
    ns["logits"] = ns["model"](ns["x"])
    exec(blocks[1], ns)
    assert (tmp_path / "ckpt.safetensors").exists()
    assert ns["opt_state"].layers[0].weight.frozen
    assert len(ns["gs"][ns["ps"][0]].shape) == 2
    w = ns["model"].layers[0].weight.numpy().copy()
    exec(blocks[2], ns)  # a rule written in Python, and the property-test toolkit
    assert not np.array_equal(ns["model"].layers[0].weight.numpy(), w)
    assert type(ns["opt_state"].layers[0].weight.rule.opts[1]).__name__ == "SignMomentum"
    ns["test_rules_are_pure"]()
    ns["test_sign_momentum"]()
    exec(blocks[3], ns)  # data-parallel training (flux_rs.distributed), here a job of one rank
    assert len(ns["losses"]) == len(ns["loader"]) == 1 and (tmp_path / "model.safetensors").exists()  # 32 rows, batch 64
