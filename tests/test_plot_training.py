"""examples/plot_training.py: trains the MNIST MLP on the shipped subset and saves a PNG
of the loss and accuracy per epoch (run here with small settings; needs matplotlib, the
`plot` extra, which scripts/setup.sh installs)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_plot_training_saves_a_png_of_each_epoch(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the plot example needs the `plot` extra (matplotlib)")
    import matplotlib.image

    spec = importlib.util.spec_from_file_location("plot_training", ROOT / "examples" / "plot_training.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "training.png"
    history = example.main(["--epochs", "3", "--limit", "3000", "--out", str(out)])

    assert [len(v) for v in history.values()] == [3, 3, 3]
    assert history["loss"][2] < history["loss"][0]           # it learns
    assert history["test_acc"][2] > 0.8                       # 3,000 images, 3 epochs: about 0.9
    assert "epoch 3: mean loss" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(out)
    assert img.shape[:2] == (350, 900)                        # figsize (9, 3.5) at 100 dpi
    assert img[..., :3].std() > 0.05                          # not a blank canvas
