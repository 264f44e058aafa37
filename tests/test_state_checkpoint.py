"""fx.state / fx.loadmodel_ (spec §5) and checkpoints (fx.save / fx.load): round trips,
bit-exact resume of training, fault tolerance (a killed save, truncated, bit-flipped and
garbage files), wrong structures, and interchange with PyTorch through safetensors."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import flux_rs as fx


def arr(t):
    return np.asarray(t)


def mlp(seed=0):
    fx.seed(seed)
    return fx.Chain(fx.Dense(3, 8, fx.relu), fx.Dense(8, 2))


# ---- state / loadmodel_ ------------------------------------------------------------------

def test_state_structure():
    m = fx.Chain(fx.Dense(1, 2, fx.tanh, init=fx.ones32), fx.Dense(2, 1, init=fx.ones32, bias=False))
    s = fx.state(m)
    assert s.layers[0].weight.tolist() == [[1.0], [1.0]]
    assert s.layers[0].bias.tolist() == [0.0, 0.0]
    assert s.layers[0].σ is None and s.layers[1].bias is False
    assert s.layers[0].weight is not m[0].weight  # a snapshot…
    fx.loadmodel_(m, fx.state(fx.Chain(fx.Dense(1, 2, init=fx.zeros32), fx.Dense(2, 1, bias=False))))
    assert s.layers[0].weight.tolist() == [[1.0], [1.0]]  # …unchanged when the model changes


def test_loadmodel_in_place_keeps_identity_and_dtype():
    a, b = mlp(1), mlp(2)
    ids = [id(b[0].weight), id(b[0].bias), id(b[1].weight)]
    out = fx.loadmodel_(b, fx.state(a))
    assert out is b
    assert [id(b[0].weight), id(b[0].bias), id(b[1].weight)] == ids
    for la, lb in zip(a, b):
        assert np.array_equal(arr(la.weight), arr(lb.weight))
    # float64 source into a float32 model keeps float32
    s = fx.state(a)
    w64 = {"layers": ({"weight": arr(s.layers[0].weight).astype(np.float64), "bias": arr(s.layers[0].bias),
                       "σ": None}, fx.state(a[1]))}
    fx.loadmodel_(b, w64)
    assert b[0].weight.dtype == np.float32
    # model to model works too
    c = mlp(3)
    fx.loadmodel_(c, a)
    assert np.array_equal(arr(c[1].bias), arr(a[1].bias))


def test_loadmodel_errors_name_the_path():
    a = fx.Chain(fx.Dense(3, 8), fx.Dense(8, 2))
    with pytest.raises(ValueError, match=r"layers\.1\.weight.*\(4, 8\).*\(2, 8\)"):
        fx.loadmodel_(a, fx.state(fx.Chain(fx.Dense(3, 8), fx.Dense(8, 4))))
    with pytest.raises(ValueError, match=r"layers\.2"):
        fx.loadmodel_(a, fx.state(fx.Chain(fx.Dense(3, 8), fx.Dense(8, 2), fx.Dense(2, 2))))
    with pytest.raises(ValueError, match=r"layers\.0\.(weight|kernel)"):
        fx.loadmodel_({"layers": [{"weight": fx.zeros32(2, 2)}]}, {"layers": [{"kernel": np.zeros((2, 2))}]})
    with pytest.raises(ValueError, match=r"layers\.0\.bias"):
        fx.loadmodel_(fx.Chain(fx.Dense(2, 2)), {"layers": ({"weight": np.zeros((2, 2)), "bias": "x", "σ": None},)})


def test_loadmodel_bias_false_convention():
    d = fx.Dense(2, 3)
    d.bias = fx.ones32(3)
    fx.loadmodel_(d, {"weight": np.ones((3, 2)), "bias": False, "σ": None})
    assert d.bias.tolist() == [0.0, 0.0, 0.0]
    nb = fx.Dense(2, 3, bias=False)
    fx.loadmodel_(nb, {"weight": np.ones((3, 2)), "bias": np.zeros(3), "σ": None})
    with pytest.raises(ValueError, match="bias"):
        fx.loadmodel_(nb, {"weight": np.ones((3, 2)), "bias": np.ones(3), "σ": None})


def test_loadmodel_tied():
    w = fx.randn32(2, 2)
    model = {"a": w, "b": w}
    fx.loadmodel_(model, {"a": np.eye(2), "b": np.eye(2)})
    assert w.tolist() == [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match="tied"):
        fx.loadmodel_(model, {"a": np.eye(2), "b": np.zeros((2, 2))})


# ---- save / load round trips ---------------------------------------------------------------

def test_roundtrip_model_and_opt_state(tmp_path):
    m = mlp(4)
    st = fx.setup(fx.Adam(0.01), m)
    x, y = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32), np.zeros((5, 2), np.float32)
    for _ in range(3):
        g = fx.gradient(lambda m: fx.losses.mse(m(x), y), m)[0]
        fx.update_(st, m, g)
    fx.freeze_(st.layers[1].bias)
    p = tmp_path / "ck.safetensors"
    fx.save(p, {"model": m, "opt": st, "epoch": 3, "note": "hi", "lr": 0.1, "flag": True, "none": None})
    back = fx.load(p)
    assert back["epoch"] == 3 and back["note"] == "hi" and back["lr"] == 0.1 and back["flag"] is True
    assert back["none"] is None
    assert back["model"].layers[0].weight.dtype == np.float32
    m2 = mlp(5)
    fx.loadmodel_(m2, back["model"])
    for la, lb in zip(m, m2):
        assert np.array_equal(arr(la.weight), arr(lb.weight)) and np.array_equal(arr(la.bias), arr(lb.bias))
    leaf, leaf2 = st.layers[0].weight, back["opt"].layers[0].weight
    assert isinstance(leaf2, fx.Leaf) and leaf2.rule == leaf.rule
    mt, vt, betas = leaf.state
    mt2, vt2, betas2 = leaf2.state
    assert np.array_equal(arr(mt), arr(mt2)) and np.array_equal(arr(vt), arr(vt2)) and betas == betas2
    assert back["opt"].layers[1].bias.frozen is True and back["opt"].layers[0].bias.frozen is False


def test_roundtrip_ties_rng_numpy_and_nested_rules(tmp_path):
    w = fx.randn(3)
    r = fx.Rng(7)
    r.permutation(5)
    rule = fx.OptimiserChain(fx.ClipGrad(1.0), fx.Momentum(0.1))
    tree = {"a": w, "b": [w, (1, 2.5)], "np": np.arange(6, dtype=np.int64).reshape(2, 3), 3: "int key",
            "rng": r, "st": fx.setup(rule, {"w": w})}
    p = tmp_path / "t.safetensors"
    fx.save(p, tree)
    b = fx.load(p)
    assert b["a"] is b["b"][0] and b["a"].dtype == np.float64 and b["a"].tolist() == w.tolist()
    assert b["b"][1] == (1, 2.5) and isinstance(b["b"], list)
    assert b["np"].dtype == np.int64 and b["np"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert b[3] == "int key"
    assert b["rng"].permutation(10) == r.permutation(10)
    assert b["st"]["w"].rule == rule


def test_foreign_safetensors_file_loads_as_nested_dicts(tmp_path):
    p = tmp_path / "f.safetensors"
    fx.save(p, {"x": fx.ones32(2)})  # then rewrite without our metadata, as another tool would
    import json
    import struct
    hdr = {"layers.0.weight": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]},
           "layers.0.bias": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    data = np.array([1, 2, 3], np.float32).tobytes()
    p.write_bytes(struct.pack("<Q", len(h)) + h + data)
    t = fx.load(p)
    assert t["layers"]["0"]["weight"].tolist() == [[1.0, 2.0]]
    d = fx.Chain(fx.Dense(2, 1))
    fx.loadmodel_(d, t)
    assert d[0].bias.tolist() == [3.0]


# ---- resume: bit for bit ----------------------------------------------------------------------

def _data():
    rng = np.random.default_rng(42)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.3]], np.float32)).astype(np.float32)
    return x, y


def _loss(m, x, y):
    return fx.losses.mse(m(x), y)


def test_resume_is_bit_exact(tmp_path):
    x, y = _data()
    # straight: two epochs
    m = mlp(10)
    st = fx.setup(fx.Adam(0.01), m)
    loader = fx.DataLoader((x, y), batchsize=16, shuffle=True, rng=123)
    for _ in range(2):
        fx.train_(_loss, m, loader, st, progress=False)
    # one epoch, save, load into fresh objects, one more epoch
    m1 = mlp(10)
    st1 = fx.setup(fx.Adam(0.01), m1)
    loader1 = fx.DataLoader((x, y), batchsize=16, shuffle=True, rng=123)
    fx.train_(_loss, m1, loader1, st1, progress=False)
    p = tmp_path / "resume.safetensors"
    fx.save(p, {"model": m1, "opt": st1, "rng": loader1.rng})
    del m1, st1, loader1
    ck = fx.load(p)
    m2 = fx.loadmodel_(mlp(99), ck["model"])
    st2 = ck["opt"]
    loader2 = fx.DataLoader((x, y), batchsize=16, shuffle=True, rng=ck["rng"])
    fx.train_(_loss, m2, loader2, st2, progress=False)
    for la, lb in zip(m, m2):
        assert arr(la.weight).tobytes() == arr(lb.weight).tobytes()
        assert arr(la.bias).tobytes() == arr(lb.bias).tobytes()
    for path in [("layers", 0, "weight"), ("layers", 1, "bias")]:
        a, b = st, st2
        for k in path:
            a, b = a[k], b[k]
        (ma, va, ba), (mb, vb, bb) = a.state, b.state
        assert arr(ma).tobytes() == arr(mb).tobytes() and arr(va).tobytes() == arr(vb).tobytes() and ba == bb


# ---- faults ------------------------------------------------------------------------------

def _small_ck(tmp_path):
    p = tmp_path / "c.safetensors"
    m = mlp(1)
    fx.save(p, {"model": m, "opt": fx.setup(fx.Adam(), m)})
    return p


def test_truncated_files_raise(tmp_path):
    p = _small_ck(tmp_path)
    raw = p.read_bytes()
    for n in [0, 4, 8, 20, len(raw) // 2, len(raw) - 1]:
        q = tmp_path / f"t{n}.safetensors"
        q.write_bytes(raw[:n])
        with pytest.raises(fx.CheckpointError):
            fx.load(q)
    assert issubclass(fx.CheckpointError, ValueError)


def test_bit_flips_raise(tmp_path):
    p = _small_ck(tmp_path)
    raw = bytearray(p.read_bytes())
    hlen = int.from_bytes(raw[:8], "little")
    rng = np.random.default_rng(0)
    positions = sorted(set([0, 3, 9, 8 + hlen // 2, 8 + hlen - 1, 8 + hlen, len(raw) - 1]
                           + list(rng.integers(8, len(raw), size=40))))
    for pos in positions:
        for bit in (0, 5):
            bad = bytearray(raw)
            bad[pos] ^= 1 << bit
            q = tmp_path / "flip.safetensors"
            q.write_bytes(bytes(bad))
            with pytest.raises(fx.CheckpointError):
                fx.load(q)


def test_garbage_and_missing(tmp_path):
    q = tmp_path / "g.safetensors"
    q.write_bytes(os.urandom(4096))
    with pytest.raises(fx.CheckpointError):
        fx.load(q)
    q.write_bytes(b"\x80\x04\x95pickle-looking bytes")
    with pytest.raises(fx.CheckpointError):
        fx.load(q)
    with pytest.raises(OSError):
        fx.load(tmp_path / "does-not-exist.safetensors")


def test_wrong_structure_load_names_path(tmp_path):
    p = tmp_path / "m.safetensors"
    fx.save(p, fx.Chain(fx.Dense(3, 8), fx.Dense(8, 2)))
    with pytest.raises(ValueError, match=r"layers\.1\.weight.*\(2, 8\).*\(3, 8\)"):
        fx.loadmodel_(fx.Chain(fx.Dense(3, 8), fx.Dense(8, 3)), fx.load(p))
    with pytest.raises(ValueError, match=r"layers\.1"):
        fx.loadmodel_(fx.Chain(fx.Dense(3, 8)), fx.load(p))


CHILD = textwrap.dedent("""
    import sys, flux_rs as fx
    path = sys.argv[1]
    big = fx.Chain(*[fx.Dense(1024, 1024) for _ in range(12)])   # ~50 MB per save
    print("ready", flush=True)
    i = 0
    while True:
        fx.save(path, {"model": big, "i": i})
        i += 1
""")


def test_killed_save_leaves_previous_checkpoint(tmp_path):
    p = tmp_path / "live.safetensors"
    m = mlp(2)
    fx.save(p, {"model": m, "i": -1})
    before = p.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(p)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        # kill during a write: poll until a temporary file exists, then kill at once
        deadline = time.time() + 30
        while time.time() < deadline and not any(f.name.startswith(".live") for f in tmp_path.iterdir()):
            time.sleep(0.005)
        assert any(f.name.startswith(".live") for f in tmp_path.iterdir()), "the child never started a save"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ck = fx.load(p)  # the old file or a complete new one, never a torn one
    if ck["i"] == -1:
        assert p.read_bytes() == before
        fx.loadmodel_(mlp(3), ck["model"])
    else:
        assert len(ck["model"].layers) == 12


# ---- PyTorch interchange ------------------------------------------------------------------

def test_torch_interchange(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    m = fx.Chain(fx.Dense(4, 8, fx.relu), fx.Dense(8, 3))
    p = tmp_path / "m.safetensors"
    fx.save(p, m)
    sd = st_torch.load_file(str(p))
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net.load_state_dict({"0.weight": sd["layers.0.weight"], "0.bias": sd["layers.0.bias"],
                         "2.weight": sd["layers.1.weight"], "2.bias": sd["layers.1.bias"]})
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), arr(m(x)), rtol=1e-5, atol=1e-6)
    # and back: torch writes, flux_rs reads
    with torch.no_grad():
        for prm in net.parameters():
            prm.mul_(2)
    q = tmp_path / "t.safetensors"
    sdn = net.state_dict()
    st_torch.save_file({"layers.0.weight": sdn["0.weight"], "layers.0.bias": sdn["0.bias"],
                        "layers.1.weight": sdn["2.weight"], "layers.1.bias": sdn["2.bias"]}, str(q))
    t = fx.load(q)
    m2 = fx.Chain(fx.Dense(4, 8, fx.relu), fx.Dense(8, 3))
    fx.loadmodel_(m2, t)
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), arr(m2(x)), rtol=1e-5, atol=1e-6)


def test_safetensors_package_reads_and_writes_our_layout(tmp_path):
    st_np = pytest.importorskip("safetensors.numpy")
    m = fx.Chain(fx.Dense(4, 8, fx.relu), fx.Dense(8, 3))
    p = tmp_path / "m.safetensors"
    fx.save(p, m)
    sd = st_np.load_file(str(p))
    assert sorted(sd) == ["layers.0.bias", "layers.0.weight", "layers.1.bias", "layers.1.weight"]
    assert sd["layers.0.weight"].shape == (8, 4) and sd["layers.0.weight"].dtype == np.float32
    assert np.array_equal(sd["layers.1.weight"], arr(m[1].weight))
    q = tmp_path / "n.safetensors"
    st_np.save_file({k: v * 2 for k, v in sd.items()}, str(q))
    m2 = fx.loadmodel_(fx.Chain(fx.Dense(4, 8, fx.relu), fx.Dense(8, 3)), fx.load(q))
    assert np.array_equal(arr(m2[0].weight), 2 * arr(m[0].weight))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layernorm_checkpoint_moves_between_rust_and_python(tmp_path, dtype):
    """A LayerNorm's parameters have the same paths in Rust (`Module::parameters`) as in
    Python and Flux (`diag.scale`, `diag.bias`): a file saved by the Rust layer with
    `flux_core::io::save` loads into the Python layer, and one saved by `fx.save` loads
    into the Rust layer by name, with the same output bits either way."""
    from flux_rs import _core
    rng = np.random.default_rng(5)
    t = lambda *s: fx.tensor(rng.normal(size=s), dtype)  # noqa: E731
    bits = lambda a: np.asarray(a).tobytes()  # noqa: E731
    x = t(3, 2, 4)
    # Rust → Python
    g, b = t(2, 4), t(2, 4)
    rust_file = str(tmp_path / "rust.safetensors")
    want, _, _ = _core._module_forward("LayerNorm", x, False, size=[2, 4], gamma=g, beta=b, save_to=rust_file)
    assert sorted(n for n, _ in _core.load_safetensors(rust_file)[0]) == ["diag.bias", "diag.scale"]
    ln = fx.LayerNorm((2, 4))
    ln.diag.scale, ln.diag.bias = t(2, 4), t(2, 4)
    fx.loadmodel_(ln, fx.load(rust_file))
    assert bits(ln.diag.scale) == bits(g) and bits(ln.diag.bias) == bits(b)
    assert bits(ln(x)) == bits(want)
    # Python → Rust (the Rust layer starts from other values, then loads the file by name)
    py = fx.LayerNorm((2, 4))
    py.diag.scale, py.diag.bias = t(2, 4), t(2, 4)
    py_file = str(tmp_path / "py.safetensors")
    fx.save(py_file, py)
    got, _, _ = _core._module_forward("LayerNorm", x, False, size=[2, 4], gamma=t(2, 4), beta=t(2, 4), load_from=py_file)
    assert bits(got) == bits(py(x))
    assert bits(got) != bits(want)


@pytest.mark.parametrize("kind", ["BatchNorm", "InstanceNorm", "GroupNorm"])
def test_norm_checkpoint_moves_between_rust_and_python(tmp_path, kind):
    """BatchNorm, InstanceNorm and GroupNorm name their parameters `β`, `γ` and their
    running statistics `μ`, `σ2` in Rust (`Module::parameters`, `Module::buffers`) as in
    Python and Flux: a file saved by the Rust layer loads into the Python layer, and one
    saved by `fx.save` loads into the Rust layer by name, with the same output bits."""
    from flux_rs import _core
    rng = np.random.default_rng(11)
    t = lambda *s: fx.tensor(rng.normal(size=s), "float32")  # noqa: E731
    pos = lambda *s: fx.tensor(rng.uniform(0.5, 2.0, size=s), "float32")  # noqa: E731
    bits = lambda a: np.asarray(a).tobytes()  # noqa: E731
    make = {"BatchNorm": lambda: fx.BatchNorm(4), "GroupNorm": lambda: fx.GroupNorm(4, 2),
            "InstanceNorm": lambda: fx.InstanceNorm(4, affine=True, track_stats=True)}[kind]
    tracked = kind != "GroupNorm"
    stats = (lambda: dict(running_mean=t(4), running_var=pos(4))) if tracked else dict  # noqa: E731
    kw = dict(chs=4, groups=2 if kind == "GroupNorm" else 1)
    x = t(3, 4, 5)
    # Rust → Python (inference: the running statistics normalise)
    g, b, st = t(4), t(4), stats()
    rust_file = str(tmp_path / "rust.safetensors")
    want, _, _ = _core._module_forward(kind, x, False, gamma=g, beta=b, save_to=rust_file, **kw, **st)
    assert sorted(n for n, _ in _core.load_safetensors(rust_file)[0]) == sorted(["β", "γ"] + ["μ", "σ2"] * tracked)
    py = make()
    fx.loadmodel_(py, fx.load(rust_file))
    assert bits(py.γ) == bits(g) and bits(py.β) == bits(b)
    if tracked:
        assert bits(py.μ) == bits(st["running_mean"]) and bits(py.σ2) == bits(st["running_var"])
    assert bits(py(x)) == bits(want)
    # Python → Rust (the Rust layer starts from other values, then loads the file by name)
    py = make()
    py.γ, py.β = t(4), t(4)
    if tracked:
        py.μ, py.σ2 = t(4), pos(4)
    py_file = str(tmp_path / "py.safetensors")
    fx.save(py_file, py)
    got, _, _ = _core._module_forward(kind, x, False, gamma=t(4), beta=t(4), load_from=py_file, **kw, **stats())
    assert bits(got) == bits(py(x))
    assert bits(got) != bits(want)
