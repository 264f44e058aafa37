"""fx.losses: the reference values of spec flux_training.md §8 (Flux's test/losses.jl,
translated to the class-last layout: Julia's (classes, samples) matrices are transposed),
central-difference gradient checks in float64, dtype preservation, size checks."""
import itertools
import math

import numpy as np
import pytest

import flux_rs as fx

L = fx.losses


def val(t):
    return float(t.item())


# ---- reference values (spec §8) ---------------------------------------------------------

Y = np.array([1.0, 1.0, 0.0, 0.0])
YH = np.array([0.9, 0.1, 0.1, 0.9])


def test_mse_mae_huber():
    assert val(L.mse(YH, Y)) == pytest.approx(0.41, abs=1e-12)
    assert val(L.mae(YH, Y)) == pytest.approx(0.5, abs=1e-12)
    assert val(L.huber_loss(YH, Y)) == pytest.approx(0.205, abs=1e-12)


def test_msle():
    v = L.msle(np.array([345.0, 332.0, 789.0]), np.array([123.0, 456.0, 789.0]))
    assert val(v) == pytest.approx(0.38813985859136585, rel=1e-12)


# y = onehotbatch([1,1,0,0], 0:1) as rows; ŷ rows
Y_OH = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
YH_P = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])


def test_crossentropy_and_logit():
    assert val(L.crossentropy(YH_P, Y_OH)) == pytest.approx(1.203972804325936, rel=1e-12)
    assert val(L.logitcrossentropy(np.log(YH_P), Y_OH)) == pytest.approx(1.203972804325936, rel=1e-12)


def test_label_smoothing():
    out = L.label_smoothing(np.array([[0.0, 1.0]]), 0.2)
    np.testing.assert_allclose(np.asarray(out), [[0.1, 0.9]], rtol=1e-12)
    # binary labels (Flux's dims = 0): y(1 − α) + α/2
    np.testing.assert_allclose(np.asarray(L.label_smoothing(np.array([0.0, 1.0]), 0.2, dims=0)), [0.1, 0.9])
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="α"):
            L.label_smoothing(np.array([0.0, 1.0]), bad)


def test_kldivergence():
    # Julia y = [1 2 3] (1×3, dims=1): three samples of one class each → shape (3, 1)
    y = np.array([[1.0], [2.0], [3.0]])
    yh = np.array([[4.0], [5.0], [6.0]])
    assert val(L.kldivergence(yh, y)) == pytest.approx(-1.7661057888493457, rel=1e-12)
    assert val(L.kldivergence(y, y)) == pytest.approx(0.0, abs=1e-12)


def test_hinge():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert val(L.hinge_loss(y, 0.5 * y)) == pytest.approx(0.125)
    assert val(L.squared_hinge_loss(y, 0.5 * y)) == pytest.approx(0.0625)
    yh = np.array([5.0, 6.0, 7.0, 8.0])
    assert val(L.hinge_loss(yh, 0.5 * y)) == 0.0
    assert val(L.squared_hinge_loss(yh, 0.5 * y)) == 0.0


def test_poisson():
    y, yh = np.array([0.1, 0.2, 0.3]), np.array([0.4, 0.5, 0.6])
    assert val(L.poisson_loss(yh, y)) == pytest.approx(0.6278353988097339, rel=1e-12)
    assert val(L.poisson_loss(y, y)) == pytest.approx(0.5044459776946685, rel=1e-12)


def test_dice_tversky():
    y, yh = np.array([1.0, 0.5, 0.3, 2.4]), np.array([0.0, 1.4, 0.5, 1.2])
    assert val(L.dice_coeff_loss(yh, y)) == pytest.approx(0.28, rel=1e-12)
    assert val(L.tversky_loss(yh, y)) == pytest.approx(-0.06772009029345383, rel=1e-12)
    assert val(L.tversky_loss(yh, y, beta=0.8)) == pytest.approx(-0.09490740740740744, rel=1e-12)
    assert val(L.tversky_loss(y, y)) == pytest.approx(-0.5576923076923075, rel=1e-12)


def test_binary_focal():
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]).T
    yh = np.array([[0.268941, 0.5, 0.268941], [0.731059, 0.5, 0.731059]]).T
    assert val(L.binary_focal_loss(yh, y)) == pytest.approx(0.0728675615927385, rel=1e-9)
    y1, yh1 = np.array([[1.0, 0.0], [0.0, 1.0]]).T, np.array([[0.6, 0.3], [0.4, 0.7]]).T
    assert val(L.binary_focal_loss(yh1, y1)) == pytest.approx(0.05691642237852222, rel=1e-9)
    # γ = 0 is binarycrossentropy
    assert val(L.binary_focal_loss(yh1, y1, gamma=0)) == pytest.approx(val(L.binarycrossentropy(yh1, y1)), rel=1e-12)


def test_focal():
    y = np.array([[1, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 0, 1, 0, 0]], dtype=np.float32).T
    logits = np.arange(-7, 8, dtype=np.float32).reshape(5, 3)  # Julia reshape(-7:7, 3, 5), transposed
    yh = fx.softmax(fx.tensor(logits), dims=-1)
    out = L.focal_loss(yh, y)
    assert out.dtype == np.float32
    assert val(out) == pytest.approx(1.1277571935622628, rel=1e-5)  # float32 softmax and loss
    yh1 = np.array([[0.4, 0.2], [0.5, 0.5], [0.1, 0.3]]).T
    y1 = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]).T
    assert val(L.focal_loss(yh1, y1)) == pytest.approx(0.45990566879720157, rel=1e-12)
    assert val(L.focal_loss(yh1, y1, gamma=0)) == pytest.approx(val(L.crossentropy(yh1, y1)), rel=1e-12)


def test_siamese():
    yh = np.array([[0.4, 0.2], [0.5, 0.5], [0.1, 0.3]])
    y = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    for m, ref in [(1, 0.2333333333333333), (0.5, 0.1), (1.5, 0.5333333333333333), (0, 0.09166666666666667)]:
        assert val(L.siamese_contrastive_loss(yh, y, margin=m)) == pytest.approx(ref, rel=1e-12)
    yh2, y2 = np.array([0.6, 0.4, 0.1, 0.2, 0.7]), np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    assert val(L.siamese_contrastive_loss(yh2, y2)) == pytest.approx(0.212, rel=1e-12)
    with pytest.raises(ValueError, match="margin"):
        L.siamese_contrastive_loss(yh, y, margin=-0.5)


def test_binarycrossentropy_values():
    yh, y = np.array([0.2, 0.7, 0.999]), np.array([0.0, 1.0, 1.0])
    ref = np.mean(-(y * np.log(yh + 2.220446049250313e-16) + (1 - y) * np.log(1 - yh + 2.220446049250313e-16)))
    assert val(L.binarycrossentropy(yh, y)) == pytest.approx(ref, rel=1e-12)
    # logit form equals BCE of the sigmoid
    x = np.array([-3.0, 0.5, 2.0])
    ref2 = np.mean(-(y * np.log(1 / (1 + np.exp(-x))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-x)))))
    assert val(L.logitbinarycrossentropy(x, y)) == pytest.approx(ref2, rel=1e-12)


# ---- ctc -------------------------------------------------------------------------------

def ctc_brute(logits, labels):
    """−log Σ over every path of length T that collapses to `labels` (blank = last)."""
    t_len, c = logits.shape
    lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    blank = c - 1
    total = 0.0
    for path in itertools.product(range(c), repeat=t_len):
        out, prev = [], None
        for k in path:
            if k != prev and k != blank:
                out.append(k)
            prev = k
        if out == list(labels):
            total += math.exp(sum(lp[t, k] for t, k in enumerate(path)))
    return -math.log(total)


def test_ctc_nnlib_reference():
    # NNlib's test: x = [1. 2. 3.; 2. 1. 1.; 3. 3. 2.] (classes × time), y = [1, 2]
    x = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 1.0], [3.0, 3.0, 2.0]]).T
    assert val(L.ctc_loss(x, [0, 1])) == pytest.approx(3.6990738275138035, rel=1e-12)
    (g,) = fx.gradient(lambda x: L.ctc_loss(x, [0, 1]), x)
    ref = np.array([[-0.317671, -0.427729, 0.665241], [0.244728, -0.0196172, -0.829811],
                    [0.0729422, 0.447346, 0.16457]]).T
    np.testing.assert_allclose(np.asarray(g), ref, atol=1e-5)


@pytest.mark.parametrize("t_len,c,labels", [(4, 3, [0, 1]), (5, 3, [1, 1]), (4, 4, [2]), (3, 2, []), (5, 4, [0, 2, 0])])
def test_ctc_matches_brute_force_and_gradcheck(t_len, c, labels):
    rng = np.random.default_rng(t_len * 10 + c)
    x = rng.normal(size=(t_len, c))
    assert val(L.ctc_loss(x, labels)) == pytest.approx(ctc_brute(x, labels), rel=1e-10)
    gradcheck(lambda a: L.ctc_loss(a, labels), x)


def test_ctc_errors_and_infeasible():
    with pytest.raises(ValueError, match="blank"):
        L.ctc_loss(np.zeros((3, 3)), [2])
    with pytest.raises(ValueError, match="shape"):
        L.ctc_loss(np.zeros(3), [0])
    with pytest.raises(TypeError):
        L.ctc_loss(np.zeros((3, 3)), [0.5])
    # two equal labels need a blank between them: 2 steps cannot emit "a a"
    assert math.isinf(val(L.ctc_loss(np.zeros((2, 3)), [0, 0])))
    assert L.ctc_loss(np.zeros((3, 3), dtype=np.float32), [0]).dtype == np.float32


# ---- gradient checks -------------------------------------------------------------------

def gradcheck(f, x, eps=1e-6, rtol=1e-5, atol=1e-7):
    """Central differences of the scalar f at float64 x against fx.gradient."""
    x = np.asarray(x, dtype=np.float64)
    (g,) = fx.gradient(f, fx.tensor(x))
    g = np.asarray(g)
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = (val(f(fx.tensor(xp))) - val(f(fx.tensor(xm)))) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=rtol, atol=atol)


R = np.random.default_rng(7)
P = R.uniform(0.1, 0.9, size=(3, 4))             # probabilities
T01 = (R.uniform(size=(3, 4)) > 0.5).astype(float)
SOFT = R.dirichlet(np.ones(4), size=3)            # rows sum to 1
REAL = R.normal(size=(3, 4))
POS = R.uniform(0.5, 2.0, size=(3, 4))
PM1 = np.where(R.uniform(size=(3, 4)) > 0.5, 1.0, -1.0)

CASES = {
    "mae": (lambda a: L.mae(a, REAL + 0.3), REAL),
    "mse": (lambda a: L.mse(a, REAL + 0.3), REAL),
    "msle": (lambda a: L.msle(a, POS[::-1].copy()), POS),
    "huber_loss": (lambda a: L.huber_loss(a, REAL * 0.0, delta=0.7), REAL),
    "crossentropy": (lambda a: L.crossentropy(a, SOFT), P),
    "logitcrossentropy": (lambda a: L.logitcrossentropy(a, SOFT), REAL),
    "binarycrossentropy": (lambda a: L.binarycrossentropy(a, T01), P),
    "logitbinarycrossentropy": (lambda a: L.logitbinarycrossentropy(a, T01), REAL),
    "kldivergence": (lambda a: L.kldivergence(a, SOFT), P),
    "poisson_loss": (lambda a: L.poisson_loss(a, POS[::-1].copy()), POS),
    "hinge_loss": (lambda a: L.hinge_loss(a, PM1), REAL * 0.5),
    "squared_hinge_loss": (lambda a: L.squared_hinge_loss(a, PM1), REAL * 0.5),
    "dice_coeff_loss": (lambda a: L.dice_coeff_loss(a, T01), P),
    "tversky_loss": (lambda a: L.tversky_loss(a, T01), P),
    "binary_focal_loss": (lambda a: L.binary_focal_loss(a, T01), P),
    "binary_focal_loss_g1.5": (lambda a: L.binary_focal_loss(a, T01, gamma=1.5), P),
    "focal_loss": (lambda a: L.focal_loss(a, SOFT), P),
    "siamese_contrastive_loss": (lambda a: L.siamese_contrastive_loss(a, T01, margin=1.2), P),
    "crossentropy_sum_dims0": (lambda a: L.crossentropy(a, SOFT, dims=0, agg="sum"), P),
    "mse_callable_agg": (lambda a: L.mse(a, REAL[::-1].copy(), agg=lambda t: (t * t).sum()), REAL),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name):
    f, x = CASES[name]
    gradcheck(f, x)


# ---- dtype, sizes, agg, stability --------------------------------------------------------

def _all_calls(dtype):
    p, t, s = P.astype(dtype), T01.astype(dtype), SOFT.astype(dtype)
    r = REAL.astype(dtype)
    return {
        "mae": lambda a: L.mae(a, r), "mse": lambda a: L.mse(a, r), "msle": lambda a: L.msle(a, p),
        "huber_loss": lambda a: L.huber_loss(a, r), "crossentropy": lambda a: L.crossentropy(a, s),
        "logitcrossentropy": lambda a: L.logitcrossentropy(a, s),
        "binarycrossentropy": lambda a: L.binarycrossentropy(a, t),
        "logitbinarycrossentropy": lambda a: L.logitbinarycrossentropy(a, t),
        "kldivergence": lambda a: L.kldivergence(a, s), "poisson_loss": lambda a: L.poisson_loss(a, p),
        "hinge_loss": lambda a: L.hinge_loss(a, t), "squared_hinge_loss": lambda a: L.squared_hinge_loss(a, t),
        "dice_coeff_loss": lambda a: L.dice_coeff_loss(a, t), "tversky_loss": lambda a: L.tversky_loss(a, t),
        "binary_focal_loss": lambda a: L.binary_focal_loss(a, t), "focal_loss": lambda a: L.focal_loss(a, s),
        "siamese_contrastive_loss": lambda a: L.siamese_contrastive_loss(a, t),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved_in_value_and_gradient(dtype):
    x = P.astype(dtype)
    for name, f in _all_calls(dtype).items():
        out = f(fx.tensor(x))
        assert out.dtype == dtype, name
        (g,) = fx.gradient(f, fx.tensor(x))
        assert g.dtype == dtype, name
    # a float64 target does not promote a float32 prediction
    assert L.mse(P.astype(np.float32), P).dtype == np.float32
    xt = np.zeros((2, 3), dtype)
    assert L.ctc_loss(xt, [0]).dtype == dtype


@pytest.mark.parametrize("name", sorted(_all_calls(np.float64)))
def test_size_mismatch_names_both_shapes(name):
    fn = getattr(L, name)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(4, 3\)"):
        fn(P, P.T.copy())


def test_scalar_target_allowed():
    assert val(L.mse(np.array([1.0, 3.0]), 1.0)) == pytest.approx(2.0)


def test_agg_variants():
    a, b = REAL, REAL + 0.5
    per = np.asarray(L.mse(a, b, agg="none"))
    assert per.shape == a.shape
    assert val(L.mse(a, b, agg="sum")) == pytest.approx(per.sum())
    assert val(L.mse(a, b, agg=lambda t: t.sum() * 2)) == pytest.approx(2 * per.sum())
    # per-sample losses keep the batch shape
    assert L.crossentropy(P, SOFT, agg="none").shape == (3,)
    assert L.logitcrossentropy(REAL, SOFT, agg="none").shape == (3,)
    with pytest.raises(ValueError, match="agg"):
        L.mse(a, b, agg="median")
    with pytest.raises(TypeError):
        L.mse(a, b, agg=3)


def test_numerical_stability():
    x = np.array([-1000.0, 1000.0, 0.0], dtype=np.float32)
    y = np.array([1.0, 0.0, 1.0], dtype=np.float32)
    v = val(L.logitbinarycrossentropy(x, y))
    assert v == pytest.approx((1000.0 + 1000.0 + math.log(2)) / 3, rel=1e-5)
    (g,) = fx.gradient(lambda a: L.logitbinarycrossentropy(a, y), x)
    assert np.all(np.isfinite(np.asarray(g)))
    big = np.array([[1000.0, 0.0], [0.0, -1000.0]], dtype=np.float32)
    assert np.isfinite(val(L.logitcrossentropy(big, np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32))))
    # crossentropy with zero probability where the target is 0: xlogy keeps it finite
    assert np.isfinite(val(L.crossentropy(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]), eps=0.0)))
    (g,) = fx.gradient(lambda a: L.crossentropy(a, np.array([[1.0, 0.0]]), eps=0.0), np.array([[1.0, 0.0]]))
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("agg", ["mean", "sum"])
def test_mse_fused_gradient_for_both_arguments(dtype, agg):
    # mean and sum take one fused kernel (rust/src/nn/losses.rs): check both gradients
    # against the closed form, and the value against the unreduced losses
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((3, 5)).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)
    val, (ga, gb) = fx.withgradient(lambda p, q: L.mse(p, q, agg=agg), a, b)
    k = (2.0 / a.size) if agg == "mean" else 2.0
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(ga), k * (a - b), rtol=tol, atol=tol)
    np.testing.assert_allclose(np.asarray(gb), -k * (a - b), rtol=tol, atol=tol)
    per = np.asarray(L.mse(a, b, agg="none")).astype(np.float64)
    assert val.dtype == dtype
    assert val.item() == pytest.approx(per.mean() if agg == "mean" else per.sum(), rel=tol)
