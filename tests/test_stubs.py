"""python/flux_rs/_core.pyi lists exactly what the compiled module exports, with its
current signatures, real return types and whole docstrings (regenerate with
`python scripts/gen_stubs.py > python/flux_rs/_core.pyi`), and mypy's stubtest finds no
drift between the stub and the module."""
import ast
import inspect
import io
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "python" / "flux_rs" / "_core.pyi"
sys.path.insert(0, str(ROOT / "scripts"))


def test_stubs_are_current_and_parse():
    import gen_stubs
    buf = io.StringIO()
    gen_stubs.main(buf)
    stub = STUB.read_text()
    ast.parse(stub)
    assert stub == buf.getvalue(), "stale _core.pyi: run `python scripts/gen_stubs.py > python/flux_rs/_core.pyi`"


def test_every_export_has_a_docstring():
    import flux_rs._core as core
    missing = [n for n in dir(core) if not n.startswith("_") and not (getattr(core, n).__doc__ or "").strip()]
    assert not missing, f"bindings without docstrings: {missing}"


def _stub_functions():
    tree = ast.parse(STUB.read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_stub_docstrings_are_whole():
    import flux_rs._core as core
    funcs = _stub_functions()
    assert funcs
    for name, node in funcs.items():
        assert ast.get_docstring(node) == inspect.getdoc(getattr(core, name)), name


def test_stub_return_types_are_real():
    funcs = _stub_functions()
    anys = [n for n, f in funcs.items() if ast.unparse(f.returns) == "Any"]
    # the pure interface's state is whatever the rule keeps (arrays, numbers, tuples, None)
    assert anys == ["rule_init"]
    assert ast.unparse(funcs["dot_product_attention"].returns) == "tuple[Tensor, Tensor]"
    assert ast.unparse(funcs["tensor"].returns) == "Tensor"


def test_gen_stubs_refuses_a_binding_without_a_return_type():
    import gen_stubs
    with pytest.raises(KeyError, match="no return type for made_up"):
        gen_stubs.ret("made_up", "made_up")


def test_stubtest_finds_no_drift():
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "--ignore-disjoint-bases",
                        "--allowlist", str(ROOT / "scripts" / "stubtest_allowlist.txt"), "flux_rs._core"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
