"""fx.Node, the object nodes of gradient and state trees (a Rust class since round 2):
field and index access, immutability, equality (tensors by value), pickling, repr."""
import copy
import pickle

import numpy as np
import pytest

import flux_rs as fx


def test_access_by_field_and_position():
    n = fx.Node("Dense", ("weight", "bias"), (1, None))
    assert (n.weight, n.bias, n[0], n[-1], n["weight"], n[:1]) == (1, None, 1, None, 1, (1,))
    assert len(n) == 2 and list(n) == [1, None] and n._asdict() == {"weight": 1, "bias": None}
    assert (n._name, n._fields, n._values) == ("Dense", ("weight", "bias"), (1, None))
    with pytest.raises(AttributeError, match=r"Dense node has no field 'w'; fields are \('weight', 'bias'\)"):
        n.w
    with pytest.raises(IndexError):
        n[2]


def test_immutable_and_unhashable():
    n = fx.Node("A", ("x",), (1,))
    with pytest.raises(AttributeError, match="immutable"):
        n.x = 2
    with pytest.raises(AttributeError, match="immutable"):
        del n.x
    with pytest.raises(TypeError, match="unhashable"):
        hash(n)


def test_equality_compares_tensors_by_value():
    a = fx.Node("A", ("w", "b"), (fx.tensor(np.array([1.0, 2.0])), None))
    b = fx.Node("A", ["w", "b"], [fx.tensor(np.array([1.0, 2.0])), None])
    c = fx.Node("A", ("w", "b"), (fx.tensor(np.array([1.0, 3.0])), None))
    assert a == b and a != c and a != (a.w, None) and a != fx.Node("A", ("w", "c"), (a.w, None))


def test_pickle_copy_and_repr():
    n = fx.Node("Chain", ("layers",), ((fx.Node("Dense", ("weight",), (3,)), None),))
    for m in (pickle.loads(pickle.dumps(n)), copy.deepcopy(n), copy.copy(n)):
        assert m == n and type(m) is fx.Node
    assert repr(n) == "Chain(layers=(Dense(weight=3), None))"


def test_gradient_trees_are_nodes_named_after_the_layer():
    (g,) = fx.gradient(lambda m: m(fx.ones32(1, 2)).sum(), fx.Chain(fx.Dense(2, 1)))
    assert type(g) is fx.Node and g._name == "Chain" and g.layers[0]._name == "Dense"
    assert g.layers[0]._fields == ("weight", "bias", "σ") and g.layers[0].σ is None
