"""An independent float64 transcription of spec/optimisers.md §3, for the tests.

Written from the spec's formulas (not from the Rust code). ``ref_init(rule, x)`` and
``ref_apply(rule, state, x, g) -> (state, dx or None)`` use the same state layout as
``fx.optimise.init``/``apply`` so the two can be compared part by part. With
``f32=True`` the same formulas are evaluated in float32 numpy arithmetic, hyperparameters
converted to float32 first: spec §1.2 says a rule computes in the parameter's precision
(which matters where a formula is ill-conditioned, e.g. RAdam's rectification or the
centred RMSProp's s - c²).
"""
import numpy as np


def _h(v, f32):
    return np.float32(v) if f32 else float(v)


def _dt(f32):
    return np.float32 if f32 else np.float64


def _pnorm(g, p):
    a = np.abs(g)
    if p == 2:
        return np.sqrt(np.sum(a * a))
    if p == 1:
        return np.sum(a)
    if p == np.inf:
        return np.max(a)
    if p == -np.inf:
        return np.min(a)
    if p == 0:
        return float(np.count_nonzero(a))
    return np.sum(a ** p) ** (1 / p)


def ref_init(rule, x, f32=False):
    n = type(rule).__name__
    z = np.zeros(np.shape(x), _dt(f32))
    if n in ("Descent", "WeightDecay", "SignDecay", "ClipGrad", "ClipNorm"):
        return None
    if n in ("Momentum", "Nesterov", "Lion"):
        return z
    if n == "Rprop":
        return (z, np.full(z.shape, _h(rule.eta, f32), z.dtype))
    if n == "RMSProp":
        return (z, z.copy() if rule.centred else None)
    bt = tuple(_h(b, f32) for b in getattr(rule, "beta", (0, 0)))
    if n in ("Adam", "AdaMax", "NAdam", "AdamW", "AdaBelief"):
        return (z, z.copy(), bt)
    if n == "RAdam":
        return (z, z.copy(), bt, 1)
    if n == "OAdam":
        return (z, z.copy(), bt, z.copy())
    if n == "AdaGrad":
        return np.full(z.shape, _h(rule.epsilon, f32), z.dtype)
    if n == "AdaDelta":
        return (z, z.copy())
    if n == "AMSGrad":
        e = _h(rule.epsilon, f32)
        return tuple(np.full(z.shape, e, z.dtype) for _ in range(3))
    if n == "OptimiserChain":
        return tuple(ref_init(r, x, f32) for r in rule.opts)
    if n == "AccumGrad":
        return (z, 1)
    if n == "MixedPrecision":
        xt = np.asarray(x, np.float64).copy()
        return (xt, ref_init(rule.rule, xt, False))
    raise KeyError(f"the reference implementation has no rule named {n!r}")


def ref_apply(rule, st, x, g, f32=False):
    """One step: ``(new_state, dx)``; dx is None when no step is made."""
    n = type(rule).__name__
    x = np.asarray(x, _dt(f32))
    g = np.asarray(g, _dt(f32))
    h = lambda v: _h(v, f32)  # noqa: E731
    if n == "Descent":
        return None, h(rule.eta) * g
    if n == "Momentum":
        v = h(rule.rho) * st + h(rule.eta) * g
        return v, v
    if n == "Nesterov":
        rho, eta = h(rule.rho), h(rule.eta)
        dx = -(rho ** 2) * st + (1 + rho) * eta * g
        return rho * st - eta * g, dx
    if n == "Rprop":
        gp, step = st
        (lo, hi), (smin, smax) = (h(v) for v in rule.ell), (h(v) for v in rule.gamma)
        p = gp * g
        step = np.where(p > 0, np.minimum(step * hi, smax), np.where(p < 0, np.maximum(step * lo, smin), step))
        gn = np.where(p < 0, 0, g).astype(g.dtype)
        return (gn, step), step * np.sign(gn)
    if n == "RMSProp":
        rho, eta, eps = h(rule.rho), h(rule.eta), h(rule.epsilon)
        s, c = st
        s = rho * s + (1 - rho) * (g * g)
        if rule.centred:
            c = rho * c + (1 - rho) * g
            return (s, c), g * eta / (np.sqrt(s - c * c) + eps)
        return (s, None), g * eta / (np.sqrt(s) + eps)
    if n == "AdaGrad":
        acc = st + g * g
        return acc, g * h(rule.eta) / (np.sqrt(acc) + h(rule.epsilon))
    if n == "AdaDelta":
        rho, eps = h(rule.rho), h(rule.epsilon)
        acc, dacc = st
        acc = rho * acc + (1 - rho) * (g * g)
        dx = g * np.sqrt(dacc + eps) / np.sqrt(acc + eps)
        return (acc, rho * dacc + (1 - rho) * (dx * dx)), dx
    if n == "AMSGrad":
        (b1, b2), eta, eps = (h(b) for b in rule.beta), h(rule.eta), h(rule.epsilon)
        m, v, vh = st
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (g * g)
        vh = np.maximum(vh, v)
        return (m, v, vh), eta * m / (np.sqrt(vh) + eps)
    if n == "Lion":
        (b1, b2), eta = (h(b) for b in rule.beta), h(rule.eta)
        m = b2 * g + (1 - b2) * st
        return m, eta * np.sign((b2 - b1) * g + b1 * m)
    if n == "WeightDecay":
        return None, g + h(rule.lambda_) * x
    if n == "SignDecay":
        return None, g + h(rule.lambda_) * np.sign(x)
    if n == "ClipGrad":
        d = h(rule.delta)
        return None, np.clip(g, -d, d)
    if n == "ClipNorm":
        nrm = _pnorm(g, rule.p)
        if rule.throw and not np.isfinite(nrm):
            raise ValueError("non-finite norm")
        with np.errstate(divide="ignore", invalid="ignore"):
            # Julia's T(min(ω / n, 1)): ω is a Float64, so the division is in float64; 0/0 is NaN
            lam = g.dtype.type(np.minimum(np.float64(rule.omega) / np.float64(nrm), 1.0))
        return None, g * lam
    if n == "OptimiserChain":
        out = list(st)
        for i, r in enumerate(rule.opts):
            out[i], g = ref_apply(r, st[i], x, g, f32)
            if g is None:
                return tuple(out), None
        return tuple(out), g
    if n == "AccumGrad":
        acc, c = st
        acc = g / rule.n if c == 1 else acc + g / rule.n
        if c == rule.n:
            return (acc, 1), acc
        return (acc, c + 1), None
    if n == "MixedPrecision":
        xt, inner = st
        inner, d = ref_apply(rule.rule, inner, xt, g, False)
        xt = xt - d if d is not None else xt
        # dx in float64, so that x - dx is the master copy (rounded once, by the caller)
        return (xt, inner), x.astype(np.float64) - xt
    # the Adam family: m, v and βt = (β1^t, β2^t) before this step
    (b1, b2), eta, eps = (h(b) for b in rule.beta), h(rule.eta), h(rule.epsilon)
    m, v, (b1t, b2t) = st[0], st[1], st[2]
    m = b1 * m + (1 - b1) * g
    nbt = (h(b1t * b1), h(b2t * b2))  # βt is kept in the parameter's precision (§1.2)
    if n == "AdaMax":
        u = np.maximum(b2 * v, np.abs(g))
        return (m, u, nbt), (eta / (1 - b1t)) * m / (u + eps)
    if n == "AdaBelief":
        s = b2 * v + (1 - b2) * (g - m) ** 2 + eps
        return (m, s, nbt), eta * (m / (1 - b1t)) / (np.sqrt(s / (1 - b2t)) + eps)
    v = b2 * v + (1 - b2) * (g * g)
    mh, vh = m / (1 - b1t), v / (1 - b2t)
    if n == "Adam":
        return (m, v, nbt), eta * mh / (np.sqrt(vh) + eps)
    if n == "NAdam":
        num = b1 * m / (1 - b1 * b1t) + (1 - b1) * g / (1 - b1t)
        return (m, v, nbt), eta * num / (np.sqrt(v * b2 / (1 - b2t)) + eps)
    if n == "AdamW":
        a = mh / (np.sqrt(vh) + eps)
        lam = h(rule.lambda_)
        dx = eta * (a + lam * x) if rule.couple else eta * a + lam * x
        return (m, v, nbt), dx
    if n == "OAdam":
        term = eta * mh / (np.sqrt(vh) + eps)
        return (m, v, nbt, term), 2 * term - st[3]
    if n == "RAdam":
        t = st[3]
        t = _dt(f32)(t)
        rinf = 2 / (1 - b2) - 1
        rt = rinf - 2 * t * b2t / (1 - b2t)
        if rt > 4:
            r = np.sqrt((rt - 4) * (rt - 2) * rinf / ((rinf - 4) * (rinf - 2) * rt))
            dx = eta * r * mh / (np.sqrt(vh) + eps)
        else:
            dx = eta * mh
        return (m, v, nbt, int(t) + 1), dx
    raise KeyError(f"the reference implementation has no rule named {n!r}")


# ---- the reference itself against the spec's golden vectors (§7) ----------------------
# (so that agreement between Rust and this file means agreement with the spec)

import pytest  # noqa: E402

import flux_rs as fx  # noqa: E402

_X0 = [1.0, -2.0, 3.0]
_GS = [[0.1, -0.2, 0.3], [-0.5, 0.4, 0.0], [1.0, 1.0, -1.0]]
GOLDEN = [
    (lambda: fx.Descent(), [[0.99, -1.98, 2.97], [1.04, -2.02, 2.97], [0.94, -2.12, 3.07]]),
    (lambda: fx.Nesterov(), [[0.99981, -1.99962, 2.99943], [1.000679, -2.000218, 2.999187],
                             [0.9991111, -2.0022962, 3.0008683]]),
    (lambda: fx.Rprop(), [[0.999, -1.999, 2.999], [0.999, -1.999, 2.999], [0.9985, -1.9995, 3.0]]),
    (lambda: fx.RMSProp(centred=True), [[0.9966666677777775, -1.9966666672222222, 2.996666667037037],
                                        [0.9998795283044738, -1.9995597539236585, 2.996666667037037],
                                        [0.9969846647617996, -2.0026712921192535, 2.9998045712910755]]),
    (lambda: fx.Adam(), [[0.9990000001, -1.99900000005, 2.9990000000333334],
                         [0.9995983542655233, -1.9993661035654602, 2.9983299418107916],
                         [0.999239213447222, -2.000064792343279, 2.9987931674833987]]),
    (lambda: fx.RAdam(), [[0.9999, -1.9998, 2.9997], [1.0001157894736843, -1.9999157894736843, 2.9995578947368418],
                          [0.999882948145271, -2.0003578558943484, 2.9998372305301997]]),
    (lambda: fx.AdaMax(), [[0.9990000001, -1.99900000005, 2.9990000000333334],
                           [0.9994315790387368, -1.9992894737269735, 2.998525841680259],
                           [0.9991987377126519, -1.999731540143217, 2.9988051774708238]]),
    (lambda: fx.OAdam(), [[0.9980000002, -1.9980000001, 2.9980000000666664],
                          [1.000625092865927, -2.000245399709379, 2.998031355870571],
                          [0.9984995029059381, -2.0016174886664095, 3.000195791738782]]),
    (lambda: fx.AdaGrad(), [[0.9000000599999515, -1.9000000174999963, 2.9000000088888878],
                            [0.9980581237602346, -1.98944273236392, 2.9000000088888878],
                            [0.9089710442699308, -2.0807298240677516, 2.995782636054202]]),
    (lambda: fx.AdaDelta(), [[0.9996837738151101, -1.999683772629267, 2.999683772409665],
                             [1.0001231474070253, -2.0000878332914738, 2.999683772409665],
                             [0.9995657979573399, -2.0006358233157817, 3.0001045930601142]]),
    (lambda: fx.AMSGrad(), [[0.9968393078603917, -1.9968381235768908, 2.9968379002159624],
                            [0.9993820179379556, -1.9983938747316425, 2.9939920104103286],
                            [0.9976041936677823, -2.0018525335123316, 2.9962850751424766]]),
    (lambda: fx.NAdam(), [[0.9985255785417918, -1.9985255784680338, 2.9985255784434477],
                          [0.9996333920594352, -1.9994226798536088, 2.9981025626167566],
                          [0.9988091093952356, -2.000501954810358, 2.9990434840349325]]),
    (lambda: fx.AdamW(lambda_=0.1, couple=False), [[0.8990000001, -1.79900000005, 2.699000000033333],
                                                   [0.8096983542555234, -1.6194661035604603, 2.428429941807458],
                                                   [0.7283693780116697, -1.4582181819822333, 2.1860501732993196]]),
    (lambda: fx.AdaBelief(), [[0.9988888888888957, -1.9988888888888907, 2.9988888888888896],
                              [0.9995411776428431, -1.9992799498660287, 2.998148078246073],
                              [0.9991562033527395, -2.000065200685526, 2.9986501199535374]]),
    (lambda: fx.Lion(), [[0.999, -1.999, 2.999], [1.0, -2.0, 2.998], [0.999, -2.001, 2.999]]),
    (lambda: fx.SignDecay(), [[0.899, -1.799, 2.699], [1.398, -2.198, 2.698], [0.397, -3.197, 3.697]]),
    (lambda: fx.ClipNorm(0.5, 1), [[0.9166666666666666, -1.8333333333333333, 2.75],
                                   [1.1944444444444444, -2.0555555555555554, 2.75],
                                   [1.0277777777777777, -2.222222222222222, 2.9166666666666665]]),
    (lambda: fx.OptimiserChain(fx.WeightDecay(0.1), fx.Adam(0.01)),
     [[0.9900000004999999, -1.99000000025, 2.9900000001666664], [0.9936703327599067, -1.9873559274772667, 2.9806830933995925],
      [0.9888245877104587, -1.9919377221559942, 2.9803330169034385]]),
    (lambda: fx.OptimiserChain(fx.AccumGrad(2), fx.Descent(0.1)), [[1.0, -2.0, 3.0], [1.02, -2.01, 2.985], [1.02, -2.01, 2.985]]),
]


@pytest.mark.parametrize("make,expect", GOLDEN, ids=[repr(m()) for m, _ in GOLDEN])
@pytest.mark.parametrize("who", ["reference", "flux_rs"])
def test_golden_vectors(make, expect, who):
    rule = make()
    x = np.array(_X0)
    st = ref_init(rule, x) if who == "reference" else fx.optimise.init(rule, x)
    for g, want in zip(_GS, expect):
        st, dx = (ref_apply if who == "reference" else fx.optimise.apply)(rule, st, x, np.array(g))
        if dx is not None:
            x = x - dx
        np.testing.assert_allclose(x, want, rtol=1e-12, atol=1e-15)
