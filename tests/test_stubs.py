"""python/flux_rs/_core.pyi lists exactly what the compiled module exports, with its
current signatures (regenerate with `python scripts/gen_stubs.py > python/flux_rs/_core.pyi`)."""
import ast
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def test_stubs_are_current_and_parse():
    import gen_stubs
    buf = io.StringIO()
    gen_stubs.main(buf)
    stub = (ROOT / "python" / "flux_rs" / "_core.pyi").read_text()
    ast.parse(stub)
    assert stub == buf.getvalue(), "stale _core.pyi: run `python scripts/gen_stubs.py > python/flux_rs/_core.pyi`"


def test_every_export_has_a_docstring():
    import flux_rs._core as core
    missing = [n for n in dir(core) if not n.startswith("_") and not (getattr(core, n).__doc__ or "").strip()]
    assert not missing, f"bindings without docstrings: {missing}"
