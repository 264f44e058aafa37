"""fx.Tensor: construction, numpy interop, operators with numpy broadcasting,
reductions, movement, indexing and errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import flux_rs as fx


def test_construction_and_dtypes():
    assert fx.tensor([1.0, 2.0]).dtype == np.float32
    assert fx.tensor(np.array([1.0, 2.0])).dtype == np.float64
    assert fx.tensor(np.array([1, 2], dtype=np.int64)).dtype == np.float32
    assert fx.tensor(np.array([1.0], dtype=np.float32), dtype="float64").dtype == np.float64
    t = fx.tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and len(t) == 2 and t.size == 6
    np.testing.assert_array_equal(np.asarray(t), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(t.numpy(), np.arange(6.0).reshape(2, 3))
    assert fx.tensor(3.5).item() == 3.5
    assert float(fx.tensor([2.0])) == 2.0


def test_tensor_is_a_copy_with_own_identity():
    a = np.array([1.0, 2.0])
    t = fx.tensor(a)
    a[0] = 100.0
    assert t.tolist() == [1.0, 2.0]
    u = fx.tensor(t)
    assert u is not t and u.tolist() == t.tolist()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="dict"):
        fx.tensor({"a": 1})
    with pytest.raises(TypeError, match="float32 or float64"):
        fx.tensor([1.0], dtype="int8")
    with pytest.raises(ValueError, match=r"\[2, 3\].*\[4\]|broadcast"):
        fx.tensor(np.ones((2, 3))) + fx.tensor(np.ones(4))
    with pytest.raises(ValueError, match="matmul"):
        fx.tensor(np.ones((2, 3))) @ fx.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="reshape"):
        fx.tensor(np.ones(6)).reshape(4, 2)
    with pytest.raises(IndexError):
        fx.tensor(np.ones(3))[5]
    with pytest.raises(ValueError, match="item"):
        fx.tensor(np.ones(3)).item()


shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)


@settings(max_examples=60, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4), st.sampled_from(["+", "-", "*", "/", "max"]))
def test_binary_ops_broadcast_like_numpy(shapes, op):
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 2.0, shapes.input_shapes[0])
    b = rng.uniform(0.5, 2.0, shapes.input_shapes[1])
    ta, tb = fx.tensor(a), fx.tensor(b)
    f = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "max": np.maximum}[op]
    got = fx.maximum(ta, tb) if op == "max" else {"+": ta + tb, "-": ta - tb, "*": ta * tb, "/": ta / tb}[op]
    assert got.shape == shapes.result_shape
    np.testing.assert_allclose(np.asarray(got), f(a, b), rtol=1e-14)


def test_scalars_and_numpy_on_either_side():
    t = fx.tensor(np.array([1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(2 * t + 1), [3.0, 5.0])
    np.testing.assert_allclose(np.asarray(1 - t), [0.0, -1.0])
    np.testing.assert_allclose(np.asarray(2 / t), [2.0, 1.0])
    np.testing.assert_allclose(np.asarray(t ** 2), [1.0, 4.0])
    np.testing.assert_allclose(np.asarray(2 ** t), [2.0, 4.0])
    r = np.array([10.0, 20.0]) + t  # numpy defers to the Tensor
    assert isinstance(r, fx.Tensor)
    np.testing.assert_allclose(np.asarray(r), [11.0, 22.0])
    assert (fx.tensor([1.0, 2.0]) * 2.0).dtype == np.float32  # Python scalars adopt the tensor's dtype
    assert (fx.tensor([1.0]) + fx.tensor(np.array([1.0]))).dtype == np.float64  # arrays promote


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float64, shapes, elements=st.floats(-10, 10)), st.data())
def test_reductions_match_numpy(a, data):
    t = fx.tensor(a)
    dims = data.draw(st.one_of(st.none(), st.lists(st.integers(0, max(a.ndim - 1, 0)), unique=True, max_size=a.ndim)))
    if a.ndim == 0:
        dims = None
    keep = data.draw(st.booleans())
    ax = None if dims is None else tuple(dims)
    for name, ref in [("sum", np.sum), ("mean", np.mean), ("max", np.max), ("min", np.min)]:
        if ax == () and name in ("max", "min"):
            continue
        got = getattr(t, name)(dims=ax, keepdims=keep)
        want = ref(a, axis=ax, keepdims=keep)
        assert got.shape == np.shape(want)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


def test_unary_methods_and_activations():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    t = fx.tensor(x)
    np.testing.assert_allclose(np.asarray(t.exp()), np.exp(x))
    np.testing.assert_allclose(np.asarray(abs(t)), np.abs(x))
    np.testing.assert_allclose(np.asarray(t.tanh()), np.tanh(x))
    np.testing.assert_allclose(np.asarray(fx.sigmoid(t)), [0.119202922, 0.3775406688, 0.5, 0.6224593312, 0.880797078], rtol=1e-9)
    np.testing.assert_allclose(np.asarray(fx.leakyrelu(t)), [-0.02, -0.005, 0, 0.5, 2])
    np.testing.assert_allclose(np.asarray(fx.elu(t)), [-0.8646647168, -0.3934693403, 0, 0.5, 2], rtol=1e-9)
    np.testing.assert_allclose(np.asarray(fx.gelu(t)), [-0.04540230591, -0.1542859902, 0, 0.3457140098, 1.954597694], rtol=1e-9)
    np.testing.assert_allclose(np.asarray(fx.swish(t)), [-0.238405844, -0.1887703344, 0, 0.3112296656, 1.761594156], rtol=1e-9)
    np.testing.assert_allclose(np.asarray(fx.softplus(t)), [0.126928011, 0.4740769842, 0.6931471806, 0.9740769842, 2.126928011], rtol=1e-9)
    np.testing.assert_allclose(np.asarray(fx.relu(t)), np.maximum(x, 0))
    np.testing.assert_allclose(np.asarray((t + 3).sqrt()), np.sqrt(x + 3))
    np.testing.assert_allclose(np.asarray((t + 3).log()), np.log(x + 3))


def test_softmax_is_stable_and_matches_numpy():
    x = np.array([[1000.0, 1001.0, 1002.0], [-5.0, 0.0, 5.0]])
    e = np.exp(x - x.max(-1, keepdims=True))
    want = e / e.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(fx.softmax(fx.tensor(x))), want, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fx.logsoftmax(fx.tensor(x))), np.log(want), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fx.softmax(fx.tensor(x), dims=0)).sum(0), [1, 1, 1])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2), st.booleans(), st.booleans())
def test_matmul_matches_numpy(m, k, n, batch, ta, tb):
    rng = np.random.default_rng(1)
    a = rng.normal(size=((batch,) if batch else ()) + ((k, m) if ta else (m, k)))
    b = rng.normal(size=(k, n) if not tb else (n, k))
    A, B = fx.tensor(a), fx.tensor(b)
    if ta:
        a = np.swapaxes(a, -1, -2)
        A = A.transpose(*range(A.ndim - 2), A.ndim - 1, A.ndim - 2)
    if tb:
        b, B = b.T, B.T
    np.testing.assert_allclose(np.asarray(A @ B), a @ b, rtol=1e-12, atol=1e-12)
    v = rng.normal(size=k)
    np.testing.assert_allclose(np.asarray(fx.tensor(v) @ B), v @ b, rtol=1e-12, atol=1e-12)


def test_movement_and_indexing():
    a = np.arange(24.0).reshape(2, 3, 4)
    t = fx.tensor(a)
    np.testing.assert_array_equal(np.asarray(t.reshape(4, -1)), a.reshape(4, -1))
    np.testing.assert_array_equal(np.asarray(t.transpose(2, 0, 1)), a.transpose(2, 0, 1))
    np.testing.assert_array_equal(np.asarray(t.T), a.T)
    for key in [0, -1, (1, 2), (slice(None), 1), (Ellipsis, 2), (slice(0, 2), slice(1, None, 2)), (None, 0),
                ([1, 0, 1],), (slice(None), [2, 0])]:
        np.testing.assert_array_equal(np.asarray(t[key]), a[key], err_msg=str(key))
    np.testing.assert_array_equal(np.asarray(fx.cat([t, t], 1)), np.concatenate([a, a], 1))
    np.testing.assert_array_equal(np.asarray(fx.stack([t, t], 0)), np.stack([a, a]))


def test_argmax_and_comparisons():
    a = np.array([[0.1, 0.7, 0.2], [0.9, 0.05, 0.05]])
    np.testing.assert_array_equal(fx.tensor(a).argmax(-1), [1, 0])
    np.testing.assert_array_equal(np.asarray(fx.tensor(a) > 0.15), (a > 0.15).astype(float))
    t = fx.tensor(a)
    assert t == t and not (t == fx.tensor(a))  # == is identity, so tensors work as dict keys
    assert len({t: 1, fx.tensor(a): 2}) == 2


def test_argmax_counts_nan_as_largest_like_julia_and_numpy():
    nan = float("nan")
    for dtype in (np.float32, np.float64):
        a = np.array([[1.0, nan, 3.0, nan], [nan, 0.0, 5.0, 1.0], [2.0, 7.0, 7.0, 1.0], [-np.inf, -np.inf, -np.inf, -np.inf]], dtype)
        got = np.asarray(fx.tensor(a).argmax(-1))
        np.testing.assert_array_equal(got, a.argmax(-1))
        np.testing.assert_array_equal(got, [1, 0, 1, 0])
    assert fx.onecold(fx.tensor([[0.2, nan, 0.9]]), ["a", "b", "c"]) == ["b"]


def test_copy_and_pickle_round_trip():
    import copy
    import pickle
    t = fx.tensor(np.array([1.0, 2.0]))
    c = copy.deepcopy(t)
    assert c is not t and c.tolist() == t.tolist()
    assert pickle.loads(pickle.dumps(t)).tolist() == [1.0, 2.0]
