"""fx.gradient's single walk over the arguments (with its per-type fast path) gives
the same gradient trees as Flux's semantics: private fields skipped, tied tensors
counted once, cycles cut, models changed between calls seen afresh."""
import numpy as np

import flux_rs as fx
from flux_rs._tree import Node


class Model:
    def __init__(self):
        self.w = fx.tensor(np.array([1.0, 2.0]))
        self.parts = [fx.tensor(np.array([3.0])), {"b": fx.tensor(np.array([4.0])), "name": "x"}]
        self._cache = fx.tensor(np.array([5.0]))  # private: not walked, no gradient
        self.act = np.tanh


def loss(m):
    return (m.w * m.w).sum() + (m.parts[0] * 3).sum() + m.parts[1]["b"].sum() + m._cache.sum()


def test_structure_of_an_object_tree():
    for _ in range(2):  # the second call takes the per-type fast path
        (g,) = fx.gradient(loss, Model())
        assert isinstance(g, Node) and g._fields == ("w", "parts", "act")
        assert np.asarray(g.w).tolist() == [2.0, 4.0]
        assert isinstance(g.parts, list) and np.asarray(g.parts[0]).tolist() == [3.0]
        assert g.parts[1] == {"b": g.parts[1]["b"], "name": None}
        assert np.asarray(g.parts[1]["b"]).tolist() == [1.0]
        assert g.act is None


def test_tied_cycle_and_changed_model():
    m = Model()
    m.parts[0] = m.w  # tied: whole gradient at the first place, None at the second
    m.me = m  # a cycle is cut
    (g,) = fx.gradient(lambda m: (m.w * m.parts[0]).sum(), m)
    assert np.asarray(g.w).tolist() == [2.0, 4.0]
    assert g.parts is None  # its only tensor is the tied one, already counted
    assert g.me is None
    m.extra = fx.tensor(np.array([7.0]))  # a field added after the first walk is seen
    (g,) = fx.gradient(lambda m: (m.extra * 2).sum(), m)
    assert np.asarray(g.extra).tolist() == [2.0] and g.w is None


def test_tuples_and_floats():
    g = fx.gradient(lambda t, s: (t[0] * s).sum() + t[1].sum(), (fx.tensor(np.array([1.0, 2.0])), fx.tensor(np.array([1.0]))), 3.0)
    assert isinstance(g[0], tuple) and np.asarray(g[0][0]).tolist() == [3.0, 3.0] and np.asarray(g[0][1]).tolist() == [1.0]
    assert g[1] == 3.0


class Bag(dict):
    """A dict subclass with instance attributes: walked as a dict, never as an object."""


def test_container_subclass_is_not_taken_for_a_plain_object():
    # empty dict part and empty __dict__: children() and a __dict__ walk agree here
    assert fx.gradient(lambda b: fx.tensor(np.array([0.0])).sum(), Bag()) == (None,)
    full = Bag(w=fx.tensor(np.array([2.0])))
    full.note = "x"
    (g,) = fx.gradient(lambda b: (b["w"] * 3).sum(), full)
    assert isinstance(g, dict) and np.asarray(g["w"]).tolist() == [3.0]
