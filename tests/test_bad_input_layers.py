"""Bad input to the layers that moved into Rust (normalisation, dropout, Embedding, the
recurrent cells and sequences, attention, ConvTranspose, Upsample, PixelShuffle, the
combinators, Scale, Bilinear, Maxout) and to the losses, the rules and the mode
functions: a ValueError naming the shapes or a TypeError naming the type, never a Rust
panic (pyo3's PanicException), never an abort, never a silently wrong number. A
hypothesis sweep perturbs each layer's good input (rank, sizes, zero-size dims, dtype,
memory layout); targeted cases pin the messages; where bad-looking input is legal (NaN,
transposed arrays, float64 into a float32 layer) the result is checked against numpy.
Every test runs on the CPU and, when a wgpu adapter exists (Mesa's lavapipe in CI), on
the GPU with the model and inputs moved there."""
import os
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import flux_rs as fx
from flux_rs import _core

# this extension's pyo3 PanicException (made a RuntimeError subclass by flux_rs's panic net)
PANIC = next(c for c in RuntimeError.__subclasses__() if c.__name__ == "PanicException" and c.__module__ == "flux_rs")

GPU = fx.gpu_available()
DEVICES = ["cpu", pytest.param("gpu", marks=pytest.mark.skipif(
    not GPU, reason=f"no GPU adapter: {_core._gpu_unavailable_reason()}"))]
# IndexError (an index out of range, as Python's own) is the one other clean refusal
CLEAN = (ValueError, TypeError, IndexError)


def on(dev, obj):
    """``obj`` (a model, or a numpy array / Tensor input) on device ``dev``."""
    if dev == "cpu":
        return obj
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind != "f":
            return obj  # integer indices and boolean masks stay host arrays
        obj = fx.tensor(obj)
    return fx.gpu(obj)


def shape_named(msg: str, shape) -> bool:
    """Whether ``msg`` names ``shape`` as Python writes it, ``(2, 3)``/``(3,)``, or as
    Rust does, ``[2, 3]``."""
    shape = tuple(int(d) for d in shape)
    inner = ", ".join(str(d) for d in shape)
    return f"({inner})" in msg or f"({inner},)" in msg or f"[{inner}]" in msg


def clean_error(f, exc=CLEAN, shapes=(), words=()):
    """Call ``f``; it must raise ``exc`` (never a panic), whose message names each of
    ``shapes`` and matches each regex in ``words``. Returns the exception."""
    try:
        f()
    except PANIC as e:  # a RuntimeError subclass here: checked before anything else
        pytest.fail(f"Rust panic instead of a clean error: {e}")
    except exc as e:
        msg = str(e)
        for s in shapes:
            assert shape_named(msg, s), f"message does not name shape {tuple(s)}: {msg!r}"
        for w in words:
            assert re.search(w, msg), f"message does not match {w!r}: {msg!r}"
        return e
    except BaseException as e:  # noqa: BLE001
        pytest.fail(f"expected {exc}, got {type(e).__name__}: {e}")
    pytest.fail(f"no error raised, expected {exc}")


def no_panic(f):
    """Call ``f``: it may return or raise ValueError/TypeError, nothing else. Returns
    (result, None) or (None, exception)."""
    try:
        return f(), None
    except PANIC as e:
        pytest.fail(f"Rust panic: {e}")
    except CLEAN as e:
        return None, e
    except BaseException as e:  # noqa: BLE001
        pytest.fail(f"{type(e).__name__} (not ValueError/TypeError): {e}")


def rnd(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def arr(y):
    """A layer's output (or its first element) as a numpy float64 array, from any device."""
    if isinstance(y, tuple):
        y = y[0]
    return np.asarray(y, dtype=np.float64)  # a copy: a GPU tensor stays where it is


# ---- the layers, each with a good input shape ----------------------------------------------

LAYERS = {
    "Dense": (lambda: fx.Dense(3, 4), (2, 3)),
    "BatchNorm": (lambda: fx.BatchNorm(3), (4, 3)),
    "BatchNorm4d": (lambda: fx.BatchNorm(3), (2, 3, 2, 2)),
    "LayerNorm": (lambda: fx.LayerNorm(5), (3, 5)),
    "GroupNorm": (lambda: fx.GroupNorm(4, 2), (2, 4, 3)),
    "InstanceNorm": (lambda: fx.InstanceNorm(3, affine=True), (2, 3, 4)),
    "Dropout": (lambda: fx.Dropout(0.5, active=True), (3, 4)),
    "AlphaDropout": (lambda: fx.AlphaDropout(0.5, active=True), (3, 4)),
    "RNN": (lambda: fx.RNN(3, 4), (2, 5, 3)),
    "LSTM": (lambda: fx.LSTM(3, 4), (2, 5, 3)),
    "GRU": (lambda: fx.GRU(3, 4), (2, 5, 3)),
    "RNNCell": (lambda: fx.RNNCell(3, 4), (2, 3)),
    "LSTMCell": (lambda: fx.LSTMCell(3, 4), (2, 3)),
    "GRUCell": (lambda: fx.GRUCell(3, 4), (2, 3)),
    "MultiHeadAttention": (lambda: fx.MultiHeadAttention(8, nheads=2), (2, 5, 8)),
    "ConvTranspose": (lambda: fx.ConvTranspose((3, 3), 2, 4), (1, 2, 5, 5)),
    "Upsample": (lambda: fx.Upsample(scale=2), (1, 2, 3, 3)),
    "UpsampleBilinear": (lambda: fx.Upsample("bilinear", scale=2), (1, 2, 3, 3)),
    "PixelShuffle": (lambda: fx.PixelShuffle(2), (1, 8, 3, 3)),
    "SkipConnection": (lambda: fx.SkipConnection(fx.Dense(3, 3), lambda y, x: y + x), (2, 3)),
    "Parallel": (lambda: fx.Parallel(lambda a, b: a + b, fx.Dense(3, 2), fx.Dense(3, 2)), (2, 3)),
    "Maxout": (lambda: fx.Maxout(lambda: fx.Dense(3, 2), 3), (2, 3)),
    "Scale": (lambda: fx.Scale(3), (2, 3)),
    "Bilinear": (lambda: fx.Bilinear(3, 2), (5, 3)),
    "Embedding(onehot)": (lambda: fx.Embedding(6, 3), (2, 6)),
}

# dimension that holds the features/channels a layer is built for (its size is fixed)
FEATURE_DIM = {"Dense": -1, "BatchNorm": 1, "BatchNorm4d": 1, "LayerNorm": -1, "GroupNorm": 1, "InstanceNorm": 1,
               "RNN": -1, "LSTM": -1, "GRU": -1, "RNNCell": -1, "LSTMCell": -1, "GRUCell": -1,
               "MultiHeadAttention": -1, "ConvTranspose": 1, "PixelShuffle": 1, "SkipConnection": -1,
               "Parallel": -1, "Maxout": -1, "Scale": -1, "Bilinear": -1, "Embedding(onehot)": -1}


def _wrong(n):
    return n + 1 if n != 4 else 5  # a size that differs from n and from the layers' other sizes


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name", sorted(FEATURE_DIM))
def test_a_wrong_feature_size_is_a_value_error_naming_the_shape(name, dev):
    make, shape = LAYERS[name]
    m = on(dev, make())
    bad = list(shape)
    d = FEATURE_DIM[name]
    bad[d] = _wrong(bad[d])
    if name == "PixelShuffle":
        bad[1] = 7  # channels not divisible by r² = 4
    x = on(dev, rnd(*bad))
    clean_error(lambda: m(x), ValueError, shapes=[bad])


# wrong ranks: every layer refuses a 0-d input; the spatial layers need (batch, channels,
# spatial...) (1 to 3 spatial dims, as NNlib), the sequence layers exactly (batch, time, features)
MIN_RANK = ["ConvTranspose", "Upsample", "UpsampleBilinear", "PixelShuffle", "InstanceNorm"]
EXACT_RANK = ["RNN", "LSTM", "GRU", "MultiHeadAttention"]


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name", sorted(set(LAYERS) - {"Dropout", "AlphaDropout"}))  # those are elementwise
def test_a_scalar_input_is_refused(name, dev):
    make, _ = LAYERS[name]
    m = on(dev, make())
    x = on(dev, fx.tensor(np.float32(1.0)))
    clean_error(lambda: m(x))


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name", MIN_RANK + EXACT_RANK)
def test_a_wrong_rank_is_a_value_error_naming_the_shape(name, dev):
    make, shape = LAYERS[name]
    m = on(dev, make())
    bads = [shape[:2]] if name in MIN_RANK else [shape[:-1], shape + (2,)]
    if name == "ConvTranspose":
        bads.append(shape + (2,))  # a layer built for 2 spatial dims
    for bad in bads:
        x = on(dev, rnd(*bad))
        clean_error(lambda: m(x), ValueError, shapes=[bad])


# ---- the hypothesis sweep: perturbed shapes, dtypes and layouts -------------------------

DTYPES = [np.float32, np.float64, np.int64, np.int32, np.bool_, np.float16]


def _perturb(shape, data):
    """A shape near ``shape``: a dimension dropped, added, resized or zeroed."""
    shape = list(shape)
    kind = data.draw(st.sampled_from(["same", "drop", "add", "resize", "zero"]))
    if kind == "drop" and shape:
        del shape[data.draw(st.integers(0, len(shape) - 1))]
    elif kind == "add":
        shape.insert(data.draw(st.integers(0, len(shape))), data.draw(st.integers(0, 3)))
    elif kind == "resize" and shape:
        shape[data.draw(st.integers(0, len(shape) - 1))] = data.draw(st.integers(1, 9))
    elif kind == "zero" and shape:
        shape[data.draw(st.integers(0, len(shape) - 1))] = 0
    return tuple(shape)


def _expected_batch_dims(name, shape):
    """The leading dims a layer's output keeps from an input of ``shape`` it accepted."""
    if name in ("ConvTranspose", "Upsample", "UpsampleBilinear", "PixelShuffle"):
        return shape[:1]
    if name in ("RNN", "LSTM", "GRU", "MultiHeadAttention"):
        return shape[:-1]  # (batch, time) or an unbatched (time,)
    return shape[:-1] if FEATURE_DIM.get(name, -1) == -1 else shape[:1]


@pytest.mark.filterwarnings("ignore::UserWarning")  # the one-time float64 → float32 conversion warning
@pytest.mark.parametrize("dev", DEVICES)
@settings(max_examples=int(os.environ.get("FLUX_RS_SWEEP_EXAMPLES", 150)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(LAYERS)), data=st.data())
def test_perturbed_inputs_work_or_raise_cleanly(name, data, dev):
    make, good = LAYERS[name]
    shape = _perturb(good, data)
    dt = data.draw(st.sampled_from(DTYPES))
    layout = data.draw(st.sampled_from(["c", "fortran", "strided"]))
    x = (np.random.default_rng(0).normal(size=shape) * 3).astype(dt)
    if layout == "fortran":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = np.repeat(x, 2, axis=-1)[..., ::2] if x.ndim else x
    m = on(dev, make())
    if dev == "gpu":
        x = fx.gpu(fx.tensor(x))  # whatever its dtype
    y, err = no_panic(lambda: m(x))
    if err is not None:
        # a refusal names the input's shape (or the spatial part a convolution checks) or its dtype
        msg = str(err)
        named = any(shape_named(msg, shape[i:]) for i in range(len(shape))) or shape == ()
        assert named or np.dtype(dt).name in msg or isinstance(err, (TypeError, IndexError)), msg
        return
    ya = arr(y)
    assert ya.shape[:len(_expected_batch_dims(name, shape))] == _expected_batch_dims(name, shape), (shape, ya.shape)
    # a refused-looking layout gives the same numbers as a C-contiguous copy
    if layout != "c" and dt in (np.float32, np.float64) and "Dropout" not in name:
        y2 = m(on(dev, np.ascontiguousarray(np.asarray(x))))  # no randomness outside Dropout: the same layer again
        np.testing.assert_allclose(ya, arr(y2), rtol=1e-5, atol=1e-6)


# ---- numbers: legal-but-odd inputs against numpy --------------------------------------

def _dense_ref(m, x):
    return x.astype(np.float64) @ np.asarray(m.weight, np.float64).T + np.asarray(m.bias, np.float64)


@pytest.mark.parametrize("dev", DEVICES)
def test_transposed_and_strided_arrays_give_numpys_numbers(dev):
    m = fx.Dense(3, 4)
    x = rnd(3, 5).T  # a Fortran-ordered view
    ref = _dense_ref(m, x)
    mm = on(dev, m)
    np.testing.assert_allclose(arr(mm(on(dev, x))), ref, rtol=1e-5, atol=1e-6)
    xs = rnd(5, 6)[:, ::2]  # strided
    np.testing.assert_allclose(arr(mm(on(dev, xs))), _dense_ref(m, xs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dev", DEVICES)
def test_layernorm_of_a_transposed_array_matches_numpy(dev):
    x = rnd(5, 3).T
    m = on(dev, fx.LayerNorm(5))
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(arr(m(on(dev, x))), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dev", DEVICES)
def test_batchnorm_of_a_transposed_array_matches_numpy(dev):
    x = rnd(3, 6).T  # (6, 3): batch 6, channels 3
    m = on(dev, fx.BatchNorm(3))
    fx.trainmode_(m)
    ref = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    np.testing.assert_allclose(arr(m(on(dev, x))), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dev", DEVICES)
def test_nan_and_inf_propagate_through_the_layers(dev):
    x = rnd(4, 3)
    x[1, 0] = np.nan
    x[2, 1] = np.inf
    # a row-wise layer: only the poisoned rows are non-finite
    y = arr(on(dev, fx.LayerNorm(3))(on(dev, x)))
    assert np.isfinite(y[[0, 3]]).all() and np.isnan(y[1]).all() and not np.isfinite(y[2]).all()
    y = arr(on(dev, fx.Dense(3, 2))(on(dev, x)))
    assert np.isfinite(y[[0, 3]]).all() and np.isnan(y[1]).all()
    # batch statistics: one NaN poisons its whole channel, not the others
    y = arr(_bn_train(dev, x))
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 2]).all()
    # attention: a NaN key poisons every query that attends to it
    q = rnd(1, 3, 4)
    q[0, 1, 0] = np.nan
    y, a = on(dev, fx.MultiHeadAttention(4, nheads=2))(on(dev, q))
    assert np.isnan(arr(y)).all()


def _bn_train(dev, x):
    m = on(dev, fx.BatchNorm(3))
    fx.trainmode_(m)
    return m(on(dev, x))


@pytest.mark.parametrize("dev", DEVICES)
def test_float64_into_a_float32_layer_converts_with_the_same_numbers(dev):
    m = fx.Dense(3, 4)
    x = rnd(2, 3, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the one-time conversion warning may have been shown already
        y = arr(on(dev, m)(on(dev, x)))
    np.testing.assert_allclose(y, _dense_ref(m, x.astype(np.float32)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("dt", [np.int64, np.int32, np.bool_])
def test_integer_and_bool_inputs_to_float_layers_are_converted_or_refused(dev, dt):
    # Flux promotes integer input through the float weights; either that (exactly), or a TypeError
    m = fx.Dense(3, 2)
    x = np.array([[1, 0, 2], [0, 1, 1]]).astype(dt)
    xd = x if dev == "cpu" else fx.gpu(fx.tensor(x))
    y, err = no_panic(lambda: on(dev, m)(xd))
    if err is not None:
        assert isinstance(err, TypeError) and np.dtype(dt).name in str(err), err
    else:
        np.testing.assert_allclose(arr(y), _dense_ref(m, x.astype(np.float32)), rtol=1e-5, atol=1e-6)


# ---- zero-size dims ---------------------------------------------------------------------

@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name", ["Dense", "LayerNorm", "Scale", "Maxout", "Bilinear", "SkipConnection",
                                  "RNN", "LSTM", "GRU", "MultiHeadAttention", "ConvTranspose", "Upsample",
                                  "PixelShuffle", "Embedding(onehot)", "Dropout", "AlphaDropout"])
def test_an_empty_batch_gives_an_empty_output(name, dev):
    make, good = LAYERS[name]
    m = on(dev, make())
    x = np.zeros((0,) + good[1:], np.float32)
    y = no_panic(lambda: m(on(dev, x)))[0]
    assert y is not None, f"{name} refused an empty batch"
    assert arr(y).shape[0] == 0


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name", ["BatchNorm", "BatchNorm4d"])
def test_batchnorm_training_on_an_empty_batch_raises_and_keeps_its_statistics(name, dev):
    # the mean of no samples is NaN: it would silently poison the running statistics
    make, good = LAYERS[name]
    m = on(dev, make())
    fx.trainmode_(m)
    before = arr(m.μ), arr(m.σ2)
    x = on(dev, np.zeros((0,) + good[1:], np.float32))
    clean_error(lambda: m(x), ValueError, shapes=[(0,) + good[1:]])
    np.testing.assert_array_equal(arr(m.μ), before[0])
    np.testing.assert_array_equal(arr(m.σ2), before[1])


# ---- Embedding, onehot and class targets: out-of-range indices ------------------------

@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("idx", [[0, 6], [[1, 2], [3, 7]], [-7], [2**40]])
def test_embedding_out_of_range_index_is_an_index_error(idx, dev):
    m = on(dev, fx.Embedding(6, 3))
    clean_error(lambda: m(np.array(idx)), IndexError, words=[str(np.ravel(idx)[-1]), r"\b6 rows"])


@pytest.mark.parametrize("dev", DEVICES)
def test_embedding_negative_index_follows_python_or_raises(dev):
    m = on(dev, fx.Embedding(6, 3))
    y, err = no_panic(lambda: m(np.array([-1])))
    if err is None:  # Python indexing: -1 is the last row
        np.testing.assert_array_equal(arr(y)[0], arr(m.weight)[5])


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("bad, exc", [(np.array([0.5, 1.0]), ValueError), (np.array([True, False]), TypeError),
                                      (np.array(["a"]), TypeError), (np.zeros((2, 5), np.float32), ValueError)])
def test_embedding_bad_index_types(bad, exc, dev):
    m = on(dev, fx.Embedding(6, 3))
    clean_error(lambda: m(bad), exc)


@pytest.mark.parametrize("make", [lambda: fx.Embedding(-1, 3), lambda: fx.Embedding(3, -2),
                                  lambda: fx.Embedding(6, 3, padding_idx=6)])
def test_embedding_bad_constructor(make):
    clean_error(make, ValueError)


def test_onehotbatch_label_not_in_classes_is_a_value_error():
    clean_error(lambda: fx.onehotbatch([0, 3], range(3)), ValueError, words=["3"])
    clean_error(lambda: _core.onehot([0, 5], 3), ValueError, words=["5"])
    clean_error(lambda: _core.onehot([-1], 3), (ValueError, OverflowError, TypeError))


def test_onecold_needs_one_label_per_class():
    y = np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1]], np.float32)
    assert fx.onecold(y, "abc") == ["c", "a"]
    # two labels for three classes would map index 1 to the wrong label (and 2 to none)
    clean_error(lambda: fx.onecold(y, [1, 2]), ValueError, shapes=[(2, 3)], words=["2 classes"])
    clean_error(lambda: fx.onecold(y, "abcd"), ValueError, shapes=[(2, 3)])


@pytest.mark.parametrize("dev", DEVICES)
def test_crossentropy_with_a_target_of_the_wrong_shape(dev):
    yhat = on(dev, rnd(4, 3))
    for y in (np.array([0, 1, 2, 1]), rnd(4, 2), rnd(3, 4)):
        ys = on(dev, y.astype(np.float32))
        clean_error(lambda: fx.losses.logitcrossentropy(yhat, ys), ValueError, shapes=[(4, 3), y.shape])
        clean_error(lambda: fx.losses.crossentropy(yhat, ys), ValueError, shapes=[(4, 3), y.shape])


@pytest.mark.parametrize("labels, exc", [([0, 3], ValueError), ([4], ValueError), ([-1], ValueError),
                                         ([0.5], TypeError), ([True], TypeError)])
def test_ctc_bad_labels(labels, exc):
    # 3 classes + the blank (class 3): labels are 0..2
    clean_error(lambda: fx.losses.ctc_loss(rnd(5, 4), labels), exc)


def test_ctc_bad_logits():
    clean_error(lambda: fx.losses.ctc_loss(rnd(5), [0]), ValueError, shapes=[(5,)])
    clean_error(lambda: fx.losses.ctc_loss(rnd(3, 1), []), ValueError, shapes=[(3, 1)])  # only the blank
    # no time steps: a label sequence is impossible (inf), the empty one certain (0)
    assert fx.losses.ctc_loss(rnd(0, 4), [0]).item() == np.inf and fx.losses.ctc_loss(rnd(0, 4), []).item() == 0
    # more labels than time steps can hold: the likelihood is 0, the loss is inf, not NaN or a panic
    v = fx.losses.ctc_loss(rnd(2, 4), [0, 0, 0]).item()
    assert v == np.inf


# ---- the losses: shapes, dtypes, hyper-parameters ---------------------------------------

LOSSES = ["mae", "mse", "msle", "huber_loss", "crossentropy", "logitcrossentropy", "binarycrossentropy",
          "logitbinarycrossentropy", "kldivergence", "poisson_loss", "hinge_loss", "squared_hinge_loss",
          "dice_coeff_loss", "tversky_loss", "binary_focal_loss", "focal_loss", "siamese_contrastive_loss"]


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_size_mismatch_names_both_shapes(loss, dev):
    f = getattr(fx.losses, loss)
    for a, b in [((3, 4), (4, 3)), ((3, 4), (3, 4, 1)), ((3, 4), (3,)), ((2, 3), (0, 3))]:
        ya, yb = on(dev, rnd(*a, seed=1) ** 2 / 10), on(dev, rnd(*b, seed=2) ** 2 / 10)
        clean_error(lambda: f(ya, yb), ValueError, shapes=[a, b])


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_bad_argument_types(loss):
    f = getattr(fx.losses, loss)
    clean_error(lambda: f("abc", np.ones(3, np.float32)), TypeError, words=["str"])
    clean_error(lambda: f(np.ones(3, np.float32), None), TypeError, words=["None"])


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("loss", ["mse", "mae", "logitcrossentropy", "binarycrossentropy"])
def test_loss_of_a_float64_target_with_a_float32_prediction_gives_numpys_number(loss, dev):
    yhat, y = rnd(4, 3, seed=1), np.abs(rnd(4, 3, seed=2, dtype=np.float64)) / 4
    p = 1 / (1 + np.exp(-yhat.astype(np.float64)))
    ls = yhat - np.log(np.exp(yhat.astype(np.float64)).sum(-1, keepdims=True))
    ref = {"mse": ((yhat - y) ** 2).mean(), "mae": np.abs(yhat - y).mean(),
           "logitcrossentropy": -(y * ls).sum(-1).mean(),
           "binarycrossentropy": -(y * np.log(p + 1.1920929e-7) + (1 - y) * np.log(1 - p + 1.1920929e-7)).mean()}[loss]
    arg = p.astype(np.float32) if loss == "binarycrossentropy" else yhat
    v, err = no_panic(lambda: getattr(fx.losses, loss)(on(dev, arg), on(dev, y)))
    if err is None:
        assert abs(float(arr(v)) - ref) <= 1e-5 * max(1, abs(ref)), (float(arr(v)), ref)
    else:
        assert isinstance(err, TypeError) and "float64" in str(err), err


@pytest.mark.parametrize("make, exc", [
    (lambda: fx.losses.huber_loss(np.ones(2), np.ones(2), delta="1"), TypeError),
    (lambda: fx.losses.siamese_contrastive_loss(np.ones(2), np.ones(2), margin=-1.0), ValueError),
    (lambda: fx.losses.label_smoothing(np.ones((2, 2)), 1.5), ValueError),
    (lambda: fx.losses.label_smoothing(np.ones((2, 2)), 0.1, dims=3), ValueError),
    (lambda: fx.losses.mse(np.ones(2), np.ones(2), agg="median"), ValueError),
    (lambda: fx.losses.mse(np.ones(2), np.ones(2), agg=3), TypeError),
    (lambda: fx.losses.crossentropy(np.ones((2, 3)), np.ones((2, 3)), dims=5), ValueError),
])
def test_loss_bad_hyperparameters(make, exc):
    clean_error(make, exc)


def test_a_nan_hyperparameter_propagates():
    assert np.isnan(fx.losses.focal_loss(np.full((2, 3), 0.5), np.ones((2, 3)), gamma=float("nan")).item())
    assert np.isnan(fx.losses.huber_loss(np.zeros(2), np.ones(2), delta=float("nan")).item())


# ---- masks and cross attention --------------------------------------------------------

@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("mask", [np.ones((4, 4), bool), np.ones((4,), bool), np.ones((2, 3, 5, 5), bool),
                                  np.ones((5, 6), bool)])
def test_attention_mask_of_the_wrong_shape_names_it(mask, dev):
    m = on(dev, fx.MultiHeadAttention(8, nheads=2))
    x = on(dev, rnd(2, 5, 8))
    clean_error(lambda: m(x, mask=mask), ValueError, shapes=[mask.shape])


@pytest.mark.parametrize("dev", DEVICES)
def test_attention_mask_of_a_wrong_dtype(dev):
    m = on(dev, fx.MultiHeadAttention(8, nheads=2))
    x = on(dev, rnd(2, 5, 8))
    # a float mask is ambiguous: PyTorch's additive mask (0 keep, -inf mask) would read
    # inverted as a boolean one; refused, naming its dtype and pointing to bias=
    clean_error(lambda: m(x, mask=np.ones((5, 5), np.float32)), TypeError, words=["float32", "bias"])
    clean_error(lambda: m(x, mask=np.where(np.tril(np.ones((5, 5))), 0.0, -np.inf)), TypeError, words=["float64"])
    clean_error(lambda: m(x, mask="causal"), TypeError, words=["str"])
    clean_error(lambda: fx.dot_product_attention(x, x, x, mask=[[0.5]]), TypeError, words=["float64"])


def test_attention_tensor_mask_must_hold_zeros_and_ones():
    m = fx.MultiHeadAttention(8, nheads=2)
    x = rnd(2, 5, 8)
    causal = fx.make_causal_mask(x)
    clean_error(lambda: m(x, mask=fx.tensor(np.where(causal, 0.0, -np.inf))), ValueError, words=["0 and 1", "bias"])
    # a 0/1 Tensor is the boolean mask
    np.testing.assert_array_equal(arr(m(x, mask=fx.tensor(causal.astype(np.float32)))[1]), arr(m(x, mask=causal)[1]))


@pytest.mark.parametrize("dev", DEVICES)
def test_attention_boolean_mask_gives_numpys_numbers(dev):
    # the mask is honoured (masked keys get zero weight), whatever its integer/bool dtype
    m = fx.MultiHeadAttention(4, nheads=1)
    x = rnd(1, 3, 4)
    mask = fx.make_causal_mask(x)
    y_ref, a_ref = m(x, mask=mask)
    a = arr(a_ref)
    assert np.all(a[0, 0][~mask] == 0)
    for mk in (mask.astype(np.int64), mask.astype(np.uint8)):
        r, err = no_panic(lambda: on(dev, m)(on(dev, x), mask=mk))
        if err is None:
            np.testing.assert_allclose(arr(r[1]), a, rtol=1e-5, atol=1e-6)
        else:
            assert isinstance(err, TypeError), err


@pytest.mark.parametrize("dev", DEVICES)
def test_attention_fully_masked_row(dev):
    # a query that may attend to nothing: NaN (as NNlib's softmax of all -Inf) or a clean refusal, never a panic
    m = on(dev, fx.MultiHeadAttention(4, nheads=1))
    mask = np.ones((3, 3), bool)
    mask[1] = False
    no_panic(lambda: m(on(dev, rnd(1, 3, 4)), mask=mask))


@pytest.mark.parametrize("dev", DEVICES)
def test_cross_attention_mismatches_name_the_shapes(dev):
    m = on(dev, fx.MultiHeadAttention(8, nheads=2))
    q = on(dev, rnd(2, 5, 8))
    clean_error(lambda: m(q, on(dev, rnd(3, 4, 8))), ValueError, shapes=[(2, 5, 8), (3, 4, 8)])  # batch
    clean_error(lambda: m(q, on(dev, rnd(2, 4, 8)), on(dev, rnd(2, 6, 8))), ValueError, shapes=[(2, 4, 8), (2, 6, 8)])
    clean_error(lambda: m(q, on(dev, rnd(2, 4, 7))), ValueError, shapes=[(2, 4, 7)])
    # cross attention with a different kv length works
    y, a = m(q, on(dev, rnd(2, 4, 8)))
    assert y.shape == (2, 5, 8) and a.shape == (2, 2, 5, 4)


@pytest.mark.parametrize("dev", DEVICES)
def test_attention_bias_of_the_wrong_shape(dev):
    m = on(dev, fx.MultiHeadAttention(8, nheads=2))
    x = on(dev, rnd(2, 5, 8))
    clean_error(lambda: m(x, bias=on(dev, rnd(2, 2, 4, 5))), ValueError, shapes=[(2, 2, 4, 5)])


@pytest.mark.parametrize("dev", DEVICES)
def test_dot_product_attention_mismatches(dev):
    q, k, v = (on(dev, rnd(*s)) for s in [(1, 2, 4), (1, 3, 4), (1, 3, 4)])
    clean_error(lambda: fx.dot_product_attention(q, k, v, nheads=3), ValueError, words=["3"])
    clean_error(lambda: fx.dot_product_attention(q, on(dev, rnd(1, 3, 6)), v), ValueError, shapes=[(1, 3, 6)])
    clean_error(lambda: fx.dot_product_attention(q, k, on(dev, rnd(1, 2, 4))), ValueError, shapes=[(1, 2, 4)])


# ---- recurrent states -------------------------------------------------------------------

@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name", ["RNN", "GRU", "RNNCell", "GRUCell"])
def test_recurrent_state_of_the_wrong_shape(name, dev):
    make, good = LAYERS[name]
    m = on(dev, make())
    x = on(dev, rnd(*good))
    # (a cell's unbatched (4,) state broadcasts over the batch, as Flux's does)
    for s in [(2, 5), (3, 4), (5,) if name.endswith("Cell") else (2, 2, 4)]:
        h = on(dev, rnd(*s))
        clean_error(lambda: m(x, h), ValueError, shapes=[s])


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name", ["LSTM", "LSTMCell"])
def test_lstm_state_must_be_a_pair_of_the_right_shapes(name, dev):
    make, good = LAYERS[name]
    m = on(dev, make())
    x = on(dev, rnd(*good))
    h = on(dev, rnd(2, 4))
    clean_error(lambda: m(x, h), (TypeError, ValueError))
    clean_error(lambda: m(x, (h, on(dev, rnd(2, 5)))), ValueError, shapes=[(2, 5)])
    clean_error(lambda: m(x, (h, h, h)), (TypeError, ValueError))


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_recurrent_layers_with_zero_hidden_units(name, dev):
    # (B, T, 0) outputs and a zero input gradient, as numpy's empty products give; was a
    # Rust panic (slices cut into rows of zero units)
    m = on(dev, getattr(fx, name)(3, 0))
    x = on(dev, rnd(2, 5, 3) if not name.endswith("Cell") else rnd(2, 3))
    y = no_panic(lambda: m(x))[0]
    assert y is not None and arr(y).shape == ((2, 5, 0) if not name.endswith("Cell") else (2, 0))
    (gx,) = no_panic(lambda: fx.gradient(lambda x: (m(x)[0] if name.endswith("Cell") else m(x)).sum(), x))[0]
    np.testing.assert_array_equal(arr(gx), np.zeros(x.shape))


def test_a_panic_inside_a_gradient_leaves_no_tape_open():
    # a Rust panic crossing the user's loss (pyo3 resumes it in Rust) must still close the
    # tape: else every later gradient on this thread failed as "nested differentiation"
    m = fx.Dense(3, 2)
    x = rnd(4, 3)

    def loss(m):
        y = m(x).sum()
        _core._panic_for_test("inside a loss")
        return y

    with pytest.raises(PANIC):
        fx.gradient(loss, m)
    (g,) = fx.gradient(lambda m: m(x).sum(), m)
    np.testing.assert_allclose(arr(g.weight), np.tile(x.sum(0), (2, 1)), rtol=1e-5)


@pytest.mark.parametrize("make", [lambda: fx.RNN(-1, 3), lambda: fx.LSTM(3, -4), lambda: fx.GRUCell(0, -1),
                                  lambda: fx.RNN(3, 4, "tanh"), lambda: fx.RNN(2.5, 3)])
def test_recurrent_bad_constructor(make):
    clean_error(make)


# ---- constructors ------------------------------------------------------------------------

@pytest.mark.parametrize("make, words", [
    (lambda: fx.MultiHeadAttention(8, nheads=0), ["nheads"]),
    (lambda: fx.MultiHeadAttention(8, nheads=-2), ["nheads"]),
    (lambda: fx.MultiHeadAttention(7, nheads=2), ["divisible"]),
    (lambda: fx.MultiHeadAttention(8, nheads=2.0), ["nheads"]),
    (lambda: fx.MultiHeadAttention(-8, nheads=2), []),
    (lambda: fx.MultiHeadAttention(8, nheads=2, dropout_prob=1.5), ["1.5"]),
    (lambda: fx.BatchNorm(-3), ["chs", "-3"]),
    (lambda: fx.BatchNorm(3, momentum=-0.1), ["momentum"]),
    (lambda: fx.BatchNorm(3, eps=-1.0), ["eps"]),
    (lambda: fx.BatchNorm(3, "relu"), ["fx.relu"]),
    (lambda: fx.LayerNorm(-5), []),
    (lambda: fx.LayerNorm(0), []),
    (lambda: fx.GroupNorm(5, 2), ["5", "2"]),
    (lambda: fx.GroupNorm(4, 0), ["G", "positive"]),
    (lambda: fx.GroupNorm(4, -2), ["G", "positive"]),
    (lambda: fx.InstanceNorm(-1), ["chs"]),
    (lambda: fx.Dropout(-0.1), ["-0.1"]),
    (lambda: fx.Dropout(1.5), ["1.5"]),
    (lambda: fx.Dropout(float("nan")), ["nan"]),
    (lambda: fx.Dropout("0.5"), ["number", "'0.5'"]),
    (lambda: fx.AlphaDropout(1.5), ["1.5"]),
    (lambda: fx.ConvTranspose((3, 3), 2, 4, stride=0), ["stride"]),
    (lambda: fx.ConvTranspose((3, 3), 2, 4, stride=-1), ["stride"]),
    (lambda: fx.ConvTranspose((3, 3), 2, 4, pad=-1), ["pad"]),
    (lambda: fx.ConvTranspose((0, 3), 2, 4), []),
    (lambda: fx.ConvTranspose((3, 3), -2, 4), []),
    (lambda: fx.ConvTranspose((3, 3), 2, 4, dilation=0), ["dilation"]),
    (lambda: fx.Conv((3, 3), 2, 4, stride=0), ["stride"]),
    (lambda: fx.Conv((3, 3), 2, 4, dilation=(1, 0)), ["dilation"]),
    (lambda: fx.Conv((3, 3), 2, 4, "relu"), ["fx.relu"]),
    (lambda: fx.ConvTranspose((3, 3), 2, 4, "relu"), ["fx.relu"]),
    (lambda: fx.MaxPool((2, 2), stride=0), ["stride"]),
    (lambda: fx.LayerNorm(4, "tanh"), ["fx.tanh"]),
    (lambda: fx.LayerNorm(4, eps=float("nan")), ["eps"]),
    (lambda: fx.GroupNorm(4, 2, eps=-1e-5), ["eps"]),
    (lambda: fx.InstanceNorm(3, momentum=1.5), ["momentum"]),
    (lambda: fx.BatchNorm(2.5), ["chs"]),
    (lambda: fx.Scale(3, σ="relu"), ["fx.relu"]),
    (lambda: fx.Bilinear(3, 2, 5), ["5"]),
    (lambda: fx.RNNCell(3, 4, "tanh"), ["fx.tanh"]),
    (lambda: fx.Dense(-3, 4), []),
    (lambda: fx.Dense(3, 4, bias=np.zeros(5)), ["5"]),
    (lambda: fx.Upsample(scale=0), ["scale"]),
    (lambda: fx.Upsample("cubic", scale=2), ["cubic"]),
    (lambda: fx.Upsample(), ["scale|size"]),
    (lambda: fx.Upsample(scale=2, size=(4, 4)), ["scale|size"]),
    (lambda: fx.PixelShuffle(0), []),
    (lambda: fx.PixelShuffle(-2), []),
    (lambda: fx.Scale(0), []),
    (lambda: fx.Scale(-3), []),
    (lambda: fx.Bilinear(-3, 2), []),
    (lambda: fx.Maxout(), []),
    (lambda: fx.Parallel(lambda *y: y), []),
    (lambda: fx.Dense(3, 4, "relu"), ["fx.relu"]),
])
def test_bad_constructor_arguments(make, words):
    clean_error(make, words=words)


@pytest.mark.parametrize("dev", DEVICES)
def test_maxout_members_of_different_shapes_name_them(dev):
    m = on(dev, fx.Maxout(fx.Dense(3, 2), fx.Dense(3, 4)))
    clean_error(lambda: m(on(dev, rnd(5, 3))), ValueError, shapes=[(5, 2), (5, 4)])


@pytest.mark.parametrize("dev", DEVICES)
def test_parallel_with_the_wrong_number_of_inputs(dev):
    m = on(dev, fx.Parallel(lambda a, b: a + b, fx.Dense(3, 2), fx.Dense(3, 2)))
    x = on(dev, rnd(2, 3))
    clean_error(lambda: m(x, x, x), ValueError, words=["2 layers", "3 inputs"])


@pytest.mark.parametrize("dev", DEVICES)
def test_bilinear_mismatches_name_the_shapes(dev):
    m = on(dev, fx.Bilinear((3, 4), 2))
    clean_error(lambda: m(on(dev, rnd(5, 3)), on(dev, rnd(5, 5))), ValueError, shapes=[(5, 5)])
    clean_error(lambda: m(on(dev, rnd(5, 3)), on(dev, rnd(6, 4))), ValueError, shapes=[(5, 3), (6, 4)])


@pytest.mark.parametrize("dev", DEVICES)
def test_scale_with_trailing_dims_that_do_not_broadcast(dev):
    m = on(dev, fx.Scale(3, 4))
    clean_error(lambda: m(on(dev, rnd(2, 3, 5))), ValueError, shapes=[(2, 3, 5)])


@pytest.mark.parametrize("dev", DEVICES)
def test_dropout_dims_out_of_range(dev):
    m = on(dev, fx.Dropout(0.5, dims=5, active=True))
    clean_error(lambda: m(on(dev, rnd(2, 3))), ValueError, shapes=[(2, 3)])
    clean_error(lambda: fx.dropout(on(dev, rnd(2, 3)), 0.5, dims=-3), ValueError)


@pytest.mark.parametrize("dev", DEVICES)
def test_upsample_size_and_scale_on_a_wrong_rank(dev):
    clean_error(lambda: fx.upsample_nearest(on(dev, rnd(2, 3)), 2), ValueError, shapes=[(2, 3)])
    clean_error(lambda: fx.upsample_bilinear(on(dev, rnd(1, 1, 3, 3)), size=(0, 4)), ValueError,
                shapes=[(3, 3), (0, 4)])
    e = clean_error(lambda: fx.upsample_nearest(on(dev, rnd(1, 1, 3, 3)), 0.1), ValueError, shapes=[(3, 3), (0, 0)])
    assert "Scale(" not in str(e)  # Rust's Debug form of its settings is not for Python users
    e = clean_error(lambda: fx.maxpool(on(dev, rnd(1, 1, 4, 4)), (2, 2), stride=(0, 1)), ValueError, words=["stride"])
    assert "PoolSpec" not in str(e)
    e = clean_error(lambda: fx.conv(on(dev, rnd(1, 1, 4, 4)), on(dev, rnd(1, 1, 2, 2)), dilation=0), ValueError,
                    words=["dilation"])
    assert "ConvSpec" not in str(e)
    clean_error(lambda: fx.pixel_shuffle(on(dev, rnd(1, 8, 3)), 0), ValueError)


# ---- rules' hyper-parameters ----------------------------------------------------------

RULES = ["Descent", "Momentum", "Nesterov", "RMSProp", "Adam", "RAdam", "AdaMax", "OAdam", "AdaGrad", "AdaDelta",
         "AMSGrad", "NAdam", "AdamW", "AdaBelief", "Lion", "Rprop"]


@pytest.mark.parametrize("rule", RULES)
def test_rules_take_a_zero_learning_rate_and_refuse_negative_or_nan(rule):
    # Optimisers.jl: a negative eta is a DomainError, zero is allowed (this project also
    # refuses Descent's negative eta, which Optimisers.jl lets through: issue 15)
    R = getattr(fx, rule)
    if rule != "AdaDelta":  # AdaDelta has no learning rate: its first argument is rho
        R(0.0)
        clean_error(lambda: R(-0.1), ValueError, words=["eta", "-0.1", "negative"])
    # NaN is not "negative": the message says what is wrong with it
    clean_error(lambda: R(float("nan")), ValueError, words=["(?i)nan", "finite"])
    clean_error(lambda: R("0.1"), TypeError, words=["'0.1'"])


def test_hyperparameters_optimisers_jl_leaves_unchecked_stay_allowed():
    # Optimisers.jl validates eta only: a negative rho or weight decay is the user's call
    assert fx.Momentum(0.1, -0.5).rho == -0.5 and fx.WeightDecay(-1.0).lambda_ == -1.0


@pytest.mark.parametrize("make, exc", [(lambda: fx.Adam(0.1, (0.9,)), TypeError), (lambda: fx.AccumGrad(0), ValueError),
                                       (lambda: fx.Adam(0.1, "0.9"), TypeError)])
def test_other_bad_hyperparameters(make, exc):
    clean_error(make, exc)


# ---- the mode functions ---------------------------------------------------------------

@pytest.mark.parametrize("mode", ["train", 2, 0.5, [True]])
def test_testmode_with_a_bad_mode_raises(mode):
    m = fx.Chain(fx.Dense(2, 2), fx.Dropout(0.5))
    clean_error(lambda: fx.testmode_(m, mode), (ValueError, TypeError))
    clean_error(lambda: fx.trainmode_(m, mode), (ValueError, TypeError))
    assert m[1].active is None  # nothing was set before the refusal


def test_trainmode_names_itself_in_its_error():
    clean_error(lambda: fx.trainmode_(fx.Dropout(0.5), 1), ValueError, words=["^trainmode_ mode"])
    clean_error(lambda: fx.testmode_(fx.Dropout(0.5), 1), ValueError, words=["^testmode_ mode"])


@pytest.mark.parametrize("mode", [True, False, None, "auto"])
def test_testmode_accepts_flux_modes(mode):
    m = fx.Chain(fx.Dense(2, 2), fx.BatchNorm(2), fx.Dropout(0.5))
    assert fx.testmode_(m, mode) is m
    want = {True: False, False: True, None: None, "auto": None}[mode]
    assert m[1].active is want and m[2].active is want


def test_mode_functions_on_non_models():
    # leaves without a mode are left alone, Flux-like; nothing panics
    for x in (None, 3, np.ones(2), fx.zeros32(2), "abc"):
        no_panic(lambda: fx.testmode_(x))
        no_panic(lambda: fx.trainmode_(x))


# ---- a failure in the middle of training ---------------------------------------------

class _Boom(Exception):
    pass


def _train_model():
    return fx.Chain(fx.Dense(3, 5, fx.relu), fx.LayerNorm(5), fx.Dense(5, 2))


def _state_arrays(x):
    """Every Tensor and number of a model or an optimiser state tree (Leaf states included)."""
    from flux_rs._core import Leaf, Tensor
    from flux_rs._tree import children
    if isinstance(x, Tensor):
        return [arr(x)]
    if isinstance(x, (int, float, np.ndarray)) and not isinstance(x, bool):
        return [np.asarray(x, np.float64)]
    if isinstance(x, Leaf):
        return _state_arrays(x.state)
    if isinstance(x, (tuple, list)):
        return [a for v in x for a in _state_arrays(v)]
    return [a for _, v in (children(x) or ()) for a in _state_arrays(v)]


def _same_tree(a, b):
    xa, xb = _state_arrays(a), _state_arrays(b)
    assert len(xa) == len(xb) and len(xa) > 0
    for u, v in zip(xa, xb):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("how", ["python", "shape"])
@pytest.mark.parametrize("rule", [lambda: fx.Adam(0.01), lambda: fx.Momentum(0.1),
                                  lambda: fx.OptimiserChain(fx.ClipNorm(1.0), fx.AdamW(0.01))])
def test_an_exception_on_batch_k_keeps_every_earlier_update(rule, how, dev):
    import copy
    k = 3  # the third batch (index 2) fails
    data = [(rnd(4, 3, seed=i), rnd(4, 2, seed=100 + i)) for i in range(6)]
    if how == "shape":
        data[k - 1] = (rnd(4, 7, seed=k), data[k - 1][1])  # a layer refuses it: ValueError from Rust
    m0 = _train_model()
    m_ref, m = on(dev, copy.deepcopy(m0)), on(dev, copy.deepcopy(m0))
    st_ref, st = fx.setup(rule(), m_ref), fx.setup(rule(), m)
    data = [tuple(on(dev, a) for a in d) for d in data]
    fx.train_(lambda m, x, y: fx.losses.mse(m(x), y), m_ref, data[:k - 1], st_ref, progress=False)

    seen = []

    def loss(m, x, y):
        seen.append(len(seen))
        if how == "python" and len(seen) == k:
            raise _Boom("batch k")
        return fx.losses.mse(m(x), y)

    with pytest.raises(_Boom if how == "python" else ValueError):
        fx.train_(loss, m, data, st, progress=False)
    assert len(seen) == k
    _same_tree(m, m_ref)
    _same_tree(st, st_ref)
    # and training goes on from there, as if batch k had been left out
    rest = data[k:]
    fx.train_(lambda m, x, y: fx.losses.mse(m(x), y), m_ref, rest, st_ref, progress=False)
    fx.train_(lambda m, x, y: fx.losses.mse(m(x), y), m, rest, st, progress=False)
    _same_tree(m, m_ref)
    _same_tree(st, st_ref)
