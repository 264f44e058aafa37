"""The public API is discoverable: every optimisation rule has an explicit signature
whose defaults are the Rust defaults (`flux_core::optim::defaults`, the one place they
are written) and a docstring with its formula, its fields and an example."""
import inspect

import pytest

import flux_rs as fx
from flux_rs import _core

RUST = _core.rule_defaults()
RULES = sorted(RUST)
PY_NAME = {"lambda": "lambda_"}


def test_every_rule_is_listed():
    assert len(RULES) == 23
    assert set(RULES) <= set(fx.__all__)
    assert all(issubclass(getattr(fx, n), fx.Rule) for n in RULES)


@pytest.mark.parametrize("name", RULES)
def test_signature_defaults_are_the_rust_defaults(name):
    sig = inspect.signature(getattr(fx, name), eval_str=True)
    params = {k: p for k, p in sig.parameters.items()}
    for k, v in RUST[name].items():
        p = params[PY_NAME.get(k, k)]
        if p.kind is inspect.Parameter.VAR_POSITIONAL:  # OptimiserChain(*opts): () by default
            assert v == () and getattr(fx, name)().opts == ()
            continue
        assert p.default == v, (name, k)
        assert type(p.default) is type(v)
        assert p.annotation is not inspect.Parameter.empty, (name, k)
    # and a rule built with no arguments holds exactly those values
    if name not in ("AccumGrad", "MixedPrecision"):
        r = getattr(fx, name)()
        assert {k: getattr(r, PY_NAME.get(k, k)) for k in RUST[name]} == RUST[name]


@pytest.mark.parametrize("name", RULES)
def test_signature_is_explicit_and_typed(name):
    sig = inspect.signature(getattr(fx, name), eval_str=True)
    assert str(sig) != "(*args, **kwargs)"
    assert sig.return_annotation is None
    for p in sig.parameters.values():
        assert p.annotation is not inspect.Parameter.empty, (name, p.name)


def test_annotation_types():
    ann = {k: p.annotation for k, p in inspect.signature(fx.AdamW, eval_str=True).parameters.items()}
    assert ann == {"eta": float, "beta": tuple[float, float], "lambda_": float, "epsilon": float, "couple": bool}
    assert inspect.signature(fx.AccumGrad, eval_str=True).parameters["n"].annotation is int
    assert inspect.signature(fx.AccumGrad).parameters["n"].default is inspect.Parameter.empty


@pytest.mark.parametrize("name", RULES)
def test_docstring_has_formula_fields_and_example(name):
    doc = inspect.getdoc(getattr(fx, name))
    assert doc and ">>> " in doc, name
    fields = [PY_NAME.get(k, k) for k in RUST[name]]
    for f in fields:
        assert f"{f}:" in doc, (name, f)
    if fields:
        assert "Fields:" in doc
    if name not in ("OptimiserChain", "AccumGrad", "MixedPrecision"):
        assert "dx′" in doc, name  # the step's formula


def test_help_shows_signature_and_doc():
    text = inspect.getdoc(fx.Adam) or ""
    assert "√(v/(1 − β₂ᵗ))" in text
    import pydoc
    page = pydoc.render_doc(fx.Adam, renderer=pydoc.plaintext)
    assert "eta: 'float' = 0.001" in page or "eta: float = 0.001" in page


def test_keyword_spellings():
    assert fx.RMSProp(centered=True) == fx.RMSProp(centred=True)
    assert fx.MixedPrecision("float32", fx.Adam()) == fx.MixedPrecision(fx.Adam(), "float32")
    with pytest.raises(TypeError):
        fx.Adam(zeta=1)
    with pytest.raises(TypeError, match="centered"):
        fx.RMSProp(centered="yes")
