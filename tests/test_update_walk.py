"""fx.update_'s walk over state, model and gradient together (src/tree.rs): every shape
of tree, keys matched by name whatever their order, ``@fx.layer(trainable=...)``
respected, tied parameters stepped once with the summed gradient, clear errors."""
import collections

import numpy as np
import pytest

import flux_rs as fx


def t(*v):
    return fx.tensor(np.array(v, dtype=np.float64))


def test_dict_model_with_gradient_keys_in_another_order_and_numpy_gradients():
    m = {"a": t(1.0, 2.0), "b": t(3.0), "c": "not a tensor"}
    st = fx.setup(fx.Descent(0.5), m)
    fx.update_(st, m, {"b": np.array([2.0]), "a": np.array([2.0, 4.0])})
    assert m["a"].tolist() == [0.0, 0.0] and m["b"].tolist() == [2.0]


def test_list_tuple_and_namedtuple_models():
    NT = collections.namedtuple("NT", "w b")
    m = [NT(t(1.0), t(2.0)), (t(3.0), t(4.0))]
    st = fx.setup(fx.Descent(1.0), m)
    (g,) = fx.gradient(lambda m: (m[0].w * 2).sum() + (m[1][1] * 3).sum(), m)
    fx.update_(st, m, g)
    assert [m[0].w.item(), m[0].b.item(), m[1][0].item(), m[1][1].item()] == [-1.0, 2.0, 3.0, 1.0]


@fx.layer(trainable=("w",))
class Affine:
    def __init__(self):
        self.w, self.b = t(1.0, 1.0), t(5.0)


def test_trainable_restriction_holds_even_with_a_gradient_for_the_other_field():
    m = Affine()
    st = fx.setup(fx.Descent(1.0), m)
    (g,) = fx.gradient(lambda m: (m.w * 3).sum() + (m.b * 7).sum(), m)
    assert g.b is not None  # the gradient exists ...
    fx.update_(st, m, g)
    assert m.w.tolist() == [-2.0, -2.0] and m.b.tolist() == [5.0]  # ... but b does not train


def test_tied_parameter_steps_once_with_the_summed_gradient():
    w = t(1.0)
    m = {"p": w, "q": w}
    st = fx.setup(fx.Descent(1.0), m)
    assert st["p"] is st["q"]  # one Leaf
    fx.update_(st, m, {"p": np.array([2.0]), "q": np.array([3.0])})
    assert w.tolist() == [-4.0]  # 1 − (2 + 3), one step


def test_none_gradient_and_frozen_leaf_leave_parameters_alone():
    m = fx.Chain(fx.Dense(2, 2), fx.Dense(2, 1))
    st = fx.setup(fx.Adam(0.1), m)
    before = [p.numpy().copy() for p in fx.trainables(m)]
    fx.freeze_(st.layers[0])
    (g,) = fx.gradient(lambda m: m(fx.ones32(3, 2)).sum(), m)
    fx.update_(st, m, g)
    after = [p.numpy() for p in fx.trainables(m)]
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert not np.array_equal(before[2], after[2])
    st2 = fx.setup(fx.Descent(1.0), m)
    w = m.layers[1].weight.numpy().copy()
    fx.update_(st2, m, fx.Node("Chain", ("layers",), ((None, None),)))
    assert np.array_equal(m.layers[1].weight.numpy(), w)


def test_state_from_another_model_names_the_place():
    st = fx.setup(fx.Descent(0.1), {"w": t(1.0)})
    with pytest.raises(TypeError, match=r"Leaf at w but the model has str there"):
        fx.update_(st, {"w": "oops"}, {"w": np.array([1.0])})
    st = fx.setup(fx.Descent(0.1), fx.Chain(fx.Dense(2, 2)))
    g = fx.gradient(lambda m: m(fx.ones32(1, 2)).sum(), fx.Chain(fx.Dense(2, 2)))[0]
    with pytest.raises(ValueError, match=r"state has layers\[0\]\.weight but the model at layers\[0\] has only 'layers'"):
        fx.update_(st, fx.Chain(fx.Chain()), g)


def test_gradient_of_the_wrong_shape_is_a_value_error_and_nothing_moves():
    m = {"a": t(1.0, 2.0), "b": t(3.0)}
    st = fx.setup(fx.Descent(1.0), m)
    with pytest.raises(ValueError, match=r"gradient of shape \[3\] does not match parameter of shape \[2\]"):
        fx.update_(st, m, {"b": np.array([1.0]), "a": np.array([1.0, 1.0, 1.0])})
    assert m["a"].tolist() == [1.0, 2.0] and m["b"].tolist() == [3.0]


def test_trainable_declared_after_instances_were_walked_is_respected():
    class Late:
        def __init__(self):
            self.w, self.b = t(1.0), t(5.0)

    m = Late()
    old_state = fx.setup(fx.Descent(1.0), m)  # walks Late (and registers it) before it is marked
    fx.layer(trainable=("w",))(Late)
    # a state made before the mark has a Leaf for b, which is no longer trainable: refused
    with pytest.raises(TypeError, match=r"Leaf at b but the model has NoneType there"):
        fx.update_(old_state, m, {"w": np.array([1.0]), "b": np.array([1.0])})
    st = fx.setup(fx.Descent(1.0), m)
    fx.update_(st, m, {"w": np.array([1.0]), "b": np.array([1.0])})
    assert m.w.tolist() == [0.0] and m.b.tolist() == [5.0]


def test_a_parameter_may_be_its_own_gradient():
    # torch allows p.grad = p; the step reads the old values (no panic, no aliasing)
    m = {"w": t(1.0, 2.0)}
    st = fx.setup(fx.Descent(0.1), m)
    fx.update_(st, m, {"w": m["w"]})
    assert np.allclose(m["w"].tolist(), [0.9, 1.8])
