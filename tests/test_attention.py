"""MultiHeadAttention: numpy reference, masks, gradients, torch, and a transformer
block whose loss falls."""
import numpy as np
import pytest

import flux_rs as fx
from conftest import numgrad


def ref_attention(q, k, v, H, mask=None):
    B, Lq, D = q.shape
    Lk, dv = k.shape[1], v.shape[2]
    hq, hv = D // H, dv // H
    qh = q.reshape(B, Lq, H, hq).transpose(0, 2, 1, 3)
    kh = k.reshape(B, Lk, H, hq).transpose(0, 2, 1, 3)
    vh = v.reshape(B, Lk, H, hv).transpose(0, 2, 1, 3)
    s = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(hq)
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    return (a @ vh).transpose(0, 2, 1, 3).reshape(B, Lq, dv), a


def mha64(dims, H, seed=0):
    return fx.MultiHeadAttention(dims, nheads=H, init=fx.glorot_uniform(dtype="float64"), rng=seed)


def test_forward_matches_reference_with_and_without_mask():
    m = mha64((6, (8, 4), 5), 2)
    rng = np.random.default_rng(0)
    q, kv = rng.normal(size=(2, 3, 6)), rng.normal(size=(2, 4, 6))
    P = lambda d: (np.asarray(d.weight))
    for mask in (None, np.tril(np.ones((3, 4), dtype=bool))):
        y, a = m(q, kv, mask=mask)
        ry, ra = ref_attention(q @ P(m.q_proj).T, kv @ P(m.k_proj).T, kv @ P(m.v_proj).T, 2, mask)
        np.testing.assert_allclose(np.asarray(a), ra, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(y), ry @ P(m.out_proj).T, rtol=1e-12, atol=1e-14)
    assert y.shape == (2, 3, 5) and a.shape == (2, 2, 3, 4)
    assert fx.make_causal_mask(q).tolist() == np.tril(np.ones((3, 3), bool)).tolist()


def test_gradients_match_finite_differences():
    m = mha64(4, 2, seed=3)
    x = np.random.default_rng(1).normal(size=(1, 3, 4))
    mask = fx.make_causal_mask(x)
    loss = lambda m: (m(x, mask=mask)[0] ** 2).sum()
    (g,) = fx.gradient(loss, m)
    for part in ("q_proj", "k_proj", "v_proj", "out_proj"):
        layer = getattr(m, part)
        w = layer.weight

        def f(v, layer=layer):
            layer.weight = fx.tensor(v)
            return loss(m).item()

        num = numgrad(f, np.asarray(w).copy())
        layer.weight = w
        np.testing.assert_allclose(np.asarray(getattr(g, part).weight), num, rtol=1e-5, atol=1e-8, err_msg=part)


def test_errors():
    with pytest.raises(ValueError, match="divisible"):
        fx.MultiHeadAttention(6, nheads=4)
    m = fx.MultiHeadAttention(4, nheads=2)
    with pytest.raises(ValueError, match=r"\(batch, len, dim\)"):
        m(np.ones((3, 4), dtype=np.float32))


def test_against_torch():
    torch = pytest.importorskip("torch")
    m = mha64(8, 2, seed=5)
    t = torch.nn.MultiheadAttention(8, 2, bias=False, batch_first=True).double()
    with torch.no_grad():
        t.in_proj_weight.copy_(torch.tensor(np.concatenate([np.asarray(m.q_proj.weight), np.asarray(m.k_proj.weight),
                                                            np.asarray(m.v_proj.weight)])))
        t.out_proj.weight.copy_(torch.tensor(np.asarray(m.out_proj.weight)))
    x = np.random.default_rng(2).normal(size=(2, 5, 8))
    y, a = m(x)
    ty, ta = t(*(torch.tensor(x),) * 3, average_attn_weights=False)
    np.testing.assert_allclose(np.asarray(y), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(a), ta.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_transformer_block_trains():
    # predict, at each position, the running mean of the sequence so far (needs causal attention)
    fx.seed(1)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(256, 6, 8)).astype(np.float32)
    Y = (np.cumsum(X, 1) / np.arange(1, 7)[None, :, None]).astype(np.float32)
    mask = fx.make_causal_mask(X)

    class Block:
        def __init__(self):
            self.attn = fx.MultiHeadAttention(8, nheads=2)
            self.ff = fx.Chain(fx.Dense(8, 32, fx.gelu), fx.Dense(32, 8))

        def __call__(self, x):
            h = x + self.attn(x, mask=mask)[0]
            return h + self.ff(h)

    m = Block()
    st = fx.setup(fx.Adam(3e-3), m)
    loader = fx.DataLoader((X, Y), batchsize=32, shuffle=True, rng=0)
    loss = lambda m, x, y: fx.losses.mse(m(x), y)
    first = np.mean(fx.train_(loss, m, loader, st, progress=False))
    for _ in range(15):
        last = np.mean(fx.train_(loss, m, loader, st, progress=False))
    assert last < 0.3 * first, (first, last)


def test_attention_dropout_acts_only_while_training():
    m = fx.MultiHeadAttention(4, nheads=2, dropout_prob=0.5, rng=0)
    x = np.random.default_rng(3).normal(size=(2, 5, 4)).astype(np.float32)
    y1, a1 = m(x)
    y2, _ = m(x)
    np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))  # inference: no dropout, deterministic
    fx.trainmode_(m)
    ys = [np.asarray(m(x)[0]) for _ in range(2)]
    assert not np.allclose(ys[0], ys[1]) and not np.allclose(ys[0], np.asarray(y1))  # dropped, differently each call
    fx.testmode_(m)
    np.testing.assert_array_equal(np.asarray(m(x)[0]), np.asarray(y1))
    with pytest.raises(ValueError):
        fx.MultiHeadAttention(4, nheads=2, dropout_prob=1.5)


# ---- the shells over Rust: one call, bit-identical to the Rust kernels -----------------

class _Counting:
    """Stands in for ``_core`` and records the name of every function called through it."""

    def __init__(self, core):
        self.core, self.calls = core, []

    def __getattr__(self, name):
        f = getattr(self.core, name)
        if not callable(f) or isinstance(f, type):
            return f

        def call(*a, **k):
            self.calls.append(name)
            return f(*a, **k)
        return call


def test_layer_and_function_are_one_rust_call(monkeypatch):
    from flux_rs import attention
    spy = _Counting(fx._core)
    monkeypatch.setattr(attention, "_core", spy)
    m = fx.MultiHeadAttention(8, nheads=2, bias=True, dropout_prob=0.1)
    q, kv = fx.randn32(2, 3, 8), fx.randn32(2, 4, 8)
    spy.calls.clear()
    m(q, kv, mask=np.ones((3, 4), bool))
    assert spy.calls == ["multihead_attention"]
    spy.calls.clear()
    fx.gradient(lambda m: m(q, kv)[0].sum(), m)  # training mode: dropout acts, still one call
    assert spy.calls == ["multihead_attention"]
    spy.calls.clear()
    fx.dot_product_attention(q, kv, kv, nheads=2, fdrop=m.attn_drop)
    assert spy.calls == ["dot_product_attention"]


@pytest.mark.parametrize("bias", [False, True])
def test_layer_is_bit_identical_to_the_rust_kernels(bias):
    # the shell's one call (Rust's nn::attention::MultiHeadAttention) against the same
    # parameters through the separate Rust kernels (Dense, fused attention, Dense)
    m = fx.MultiHeadAttention(((6, 5, 4), (8, 4), 3), nheads=2, bias=bias, rng=1)
    if bias:
        for d in (m.q_proj, m.k_proj, m.v_proj, m.out_proj):
            d.bias = fx.randn32(*d.bias.shape)
    rng = np.random.default_rng(4)
    q, k, v = (rng.normal(size=s).astype(np.float32) for s in ((2, 3, 6), (2, 7, 5), (2, 7, 4)))
    mask = rng.random((2, 1, 3, 7)) > 0.3
    mask[..., 0] = True
    sbias = rng.normal(size=(2, 3, 7)).astype(np.float32)
    y, a = m(q, k, v, sbias, mask=mask)
    core = fx._core
    bb = lambda d: d.bias if bias else None  # noqa: E731
    proj = lambda d, x: core.dense(x, d.weight, bb(d), "identity")  # noqa: E731
    ry, ra = core.dot_product_attention(proj(m.q_proj, q), proj(m.k_proj, k), proj(m.v_proj, v), 2, sbias, mask)
    ry = proj(m.out_proj, ry)
    assert np.array_equal(np.asarray(a), np.asarray(ra)) and np.array_equal(np.asarray(y), np.asarray(ry))
    assert y.shape == (2, 3, 3) and a.shape == (2, 2, 3, 7)


def test_dot_product_attention_bias_mask_and_gradients():
    rng = np.random.default_rng(5)
    q, k, v = (rng.normal(size=s) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 6)))
    bias = rng.normal(size=(2, 1, 5))  # broadcast over batch and queries
    mask = np.tril(np.ones((3, 5), bool))
    y, a = fx.dot_product_attention(q, k, v, bias, mask=mask, nheads=2)
    # reference: the bias added to the scaled scores, masked entries −∞
    B, H = 2, 2
    qh, kh, vh = (t.reshape(B, t.shape[1], H, -1).transpose(0, 2, 1, 3) for t in (q, k, v))
    s = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(2) + bias
    s = np.where(mask, s, -np.inf)
    ra = np.exp(s - s.max(-1, keepdims=True))
    ra /= ra.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(a), ra, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(y), (ra @ vh).transpose(0, 2, 1, 3).reshape(2, 3, 6), rtol=1e-12, atol=1e-14)
    # gradients of every input, the bias included, through both outputs
    loss = lambda q, k, v, b: (fx.dot_product_attention(q, k, v, b, mask=mask, nheads=2)[0] ** 2).sum() + \
        fx.dot_product_attention(q, k, v, b, mask=mask, nheads=2)[1].max()  # noqa: E731
    args = [q, k, v, bias]
    gs = fx.gradient(loss, *(fx.tensor(x) for x in args))
    for i, x in enumerate(args):
        def f(xi, i=i):
            a2 = list(args)
            a2[i] = xi
            return loss(*(fx.tensor(t) for t in a2)).item()
        np.testing.assert_allclose(np.asarray(gs[i]), numgrad(f, x), rtol=1e-5, atol=1e-7, err_msg=str(i))


def test_dot_product_attention_dropout_and_errors():
    q = np.random.default_rng(6).normal(size=(2, 3, 4)).astype(np.float32)
    drop = fx.Dropout(0.5, rng=3, active=True)
    y, a = fx.dot_product_attention(q, q, q, nheads=2, fdrop=drop)
    # the mask is the one fx.dropout draws from the same generator, applied to α
    m = np.asarray(fx.dropout(fx.ones32(2, 2, 3, 3), 0.5, rng=fx.Rng(3)))
    vh = q.reshape(2, 3, 2, 2).transpose(0, 2, 1, 3)
    want = ((np.asarray(a) * m) @ vh).transpose(0, 2, 1, 3).reshape(2, 3, 4)
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-6, atol=1e-7)
    y0, a0 = fx.dot_product_attention(q, q, q, nheads=2)
    assert np.array_equal(np.asarray(a0), np.asarray(a)) and not np.allclose(np.asarray(y0), np.asarray(y))
    with pytest.raises(TypeError, match="fdrop"):
        fx.dot_product_attention(q, q, q, fdrop=lambda a: a)
    with pytest.raises(ValueError, match="bias"):
        fx.dot_product_attention(q, q, q, np.ones((4, 4)))
    with pytest.raises(ValueError, match="mask"):
        fx.dot_product_attention(q, q, q, mask=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="divisible"):
        fx.dot_product_attention(q, q, q, nheads=3)
