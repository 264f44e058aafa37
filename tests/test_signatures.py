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
    assert "Adam(eta: float = 0.001, beta: tuple[float, float] = (0.9, 0.999), epsilon: float = 1e-08)" in page


def test_keyword_spellings():
    assert fx.RMSProp(centered=True) == fx.RMSProp(centred=True)
    assert fx.MixedPrecision("float32", fx.Adam()) == fx.MixedPrecision(fx.Adam(), "float32")
    with pytest.raises(TypeError):
        fx.Adam(zeta=1)
    with pytest.raises(TypeError, match="centered"):
        fx.RMSProp(centered="yes")


# ---- layers and losses -----------------------------------------------------------------

LAYERS = ("Chain Dense Conv ConvTranspose DepthwiseConv MaxPool MeanPool GlobalMaxPool GlobalMeanPool AdaptiveMaxPool "
          "AdaptiveMeanPool Upsample PixelShuffle BatchNorm LayerNorm GroupNorm InstanceNorm Dropout AlphaDropout "
          "Embedding Scale Bilinear SkipConnection Parallel Maxout RNN LSTM GRU RNNCell LSTMCell GRUCell "
          "MultiHeadAttention").split()


@pytest.mark.parametrize("name", LAYERS)
def test_layer_has_signature_and_example(name):
    o = getattr(fx, name)
    assert ">>> " in (inspect.getdoc(o) or ""), name
    sig = inspect.signature(o)
    assert str(sig) != "(*args, **kwargs)"
    assert any(p.kind is not p.VAR_KEYWORD for p in sig.parameters.values()) or name.startswith("Global")


TYPED_LAYERS = ("Dense Conv ConvTranspose MaxPool MeanPool AdaptiveMaxPool AdaptiveMeanPool Upsample PixelShuffle "
                "BatchNorm InstanceNorm GroupNorm LayerNorm Dropout AlphaDropout Embedding Scale Bilinear "
                "SkipConnection Parallel Maxout MultiHeadAttention RNN LSTM GRU RNNCell LSTMCell GRUCell").split()


@pytest.mark.parametrize("name", TYPED_LAYERS)
def test_layer_signature_is_typed(name):
    sig = inspect.signature(getattr(fx, name), eval_str=True)
    assert sig.return_annotation is None
    assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), sig


@pytest.mark.parametrize("name", fx.losses.__all__)
def test_loss_is_typed_with_example(name):
    f = getattr(fx.losses, name)
    assert ">>> " in (inspect.getdoc(f) or "")
    sig = inspect.signature(f, eval_str=True)
    assert sig.return_annotation is fx.Tensor
    assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), sig


# ---- ASCII spellings of the Unicode keywords -----------------------------------------------

@pytest.mark.parametrize("cls", [fx.BatchNorm, fx.InstanceNorm, lambda c, *a, **k: fx.GroupNorm(c, 1, *a, **k)])
def test_norm_ascii_keywords(cls):
    a = cls(2, fx.relu, initβ=fx.ones32, initγ=fx.zeros32, affine=True)
    b = cls(2, lambda_=fx.relu, init_beta=fx.ones32, init_gamma=fx.zeros32, affine=True)
    assert a.λ is b.λ is fx.relu
    assert a.β.tolist() == b.β.tolist() == [1.0, 1.0] and a.γ.tolist() == b.γ.tolist() == [0.0, 0.0]
    x = fx.randn32(3, 2, 4)
    assert a(x).tolist() == b(x).tolist()
    with pytest.raises(TypeError, match="initβ and its ASCII spelling init_beta"):
        cls(2, initβ=fx.ones32, init_beta=fx.ones32)
    with pytest.raises(TypeError, match="λ and its ASCII spelling lambda_"):
        cls(2, fx.relu, lambda_=fx.relu)


def test_other_ascii_keywords():
    assert fx.LayerNorm(3, lambda_=fx.relu).λ is fx.LayerNorm(3, fx.relu).λ is fx.relu
    x = fx.tensor([-1.0, 2.0])
    assert fx.elu(x, alpha=0.5).tolist() == fx.elu(x, 0.5).tolist() != fx.elu(x).tolist()
    y = fx.onehotbatch([1, 0], [0, 1])
    assert fx.losses.label_smoothing(y, alpha=0.2).tolist() == fx.losses.label_smoothing(y, 0.2).tolist()
    with pytest.raises(TypeError, match="needs α"):
        fx.losses.label_smoothing(y)
    assert fx.Scale(2, sigma=fx.relu).σ is fx.relu
    assert fx.AdamW(lambda_=0.1).lambda_ == 0.1


def test_every_unicode_keyword_has_an_ascii_spelling():
    """Every public callable whose signature has a non-ASCII keyword (one that can be
    passed by name) also takes its ASCII spelling, unless Flux accepts and ignores it."""
    import unicodedata
    spelling = {"λ": "lambda_", "initβ": "init_beta", "initγ": "init_gamma", "α": "alpha", "σ": "sigma"}
    nf = lambda s: unicodedata.normalize("NFKC", s)  # Python's identifiers: ϵ is ε
    ignored = {("tversky_loss", "β"), ("focal_loss", nf("ϵ")), ("focal_loss", "γ")}  # Flux ignores these too
    positional = {"σ", "ŷ"}  # Flux's positional arguments (Dense(2, 3, relu)), never passed by name
    missing, checked = [], 0
    for ns in (fx, fx.losses):
        for name in ns.__all__:
            o = getattr(ns, name)
            if not callable(o) or isinstance(o, type) and issubclass(o, fx.Rule):
                continue
            try:
                ps = inspect.signature(o).parameters
            except (TypeError, ValueError):
                continue
            for p in ps.values():
                if p.name.isascii() or (name, p.name) in ignored:
                    continue
                if p.name in positional and p.kind is p.POSITIONAL_OR_KEYWORD:
                    continue
                checked += 1
                alias = ps.get(spelling.get(p.name, "?"))
                if alias is None or alias.kind is not alias.KEYWORD_ONLY:
                    missing.append(f"{name}({p.name})")
    assert not missing, missing
    assert checked >= 10  # λ, initβ, initγ of four norms, elu's and label_smoothing's α, Scale's σ


# ---- mypy --strict ---------------------------------------------------------------------------

@pytest.mark.slow
def test_mypy_strict_on_examples_and_a_bad_script(tmp_path):
    """examples/ pass `mypy --strict` with the package's py.typed; a script with wrong
    argument types fails it, naming them."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    assert (root / "python" / "flux_rs" / "py.typed").exists()
    bad = tmp_path / "bad_script.py"
    bad.write_text("import flux_rs as fx\n\n"
                   "opt = fx.Adam(eta='fast')\n"
                   "loss = fx.losses.mse([1.0], [2.0], agg=3)\n"
                   "n: int = fx.losses.mse([1.0], [2.0])\n")
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
                        "--config-file", str(root / "pyproject.toml"),
                        str(root / "examples"), str(bad)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    errors = [l for l in r.stdout.splitlines() if ": error:" in l]
    assert all(l.startswith("bad_script.py:") for l in errors), r.stdout
    assert [l.split(":")[1] for l in errors] == ["3", "4", "5"], r.stdout
    assert 'Argument "eta" to "Adam" has incompatible type "str"' in r.stdout
