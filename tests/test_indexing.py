"""Indexing a Tensor follows numpy exactly (issue 15): random index expressions over
random shapes give numpy's values and shape, or an IndexError where numpy raises one."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flux_rs as fx


def _slices(n):
    bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
    step = st.one_of(st.none(), st.integers(-3, 3).filter(lambda s: s != 0))
    return st.builds(slice, bound, bound, step)


@st.composite
def _case(draw):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    n = max(max(shape, default=1), 1)
    item = st.one_of(
        st.integers(-n - 1, n),
        _slices(n),
        st.just(None),
        st.just(Ellipsis),
        st.booleans(),
        st.lists(st.integers(-n - 1, n), max_size=4),                               # 1-d integer arrays
        st.lists(st.lists(st.integers(-n, n - 1), min_size=2, max_size=2), min_size=1, max_size=2)
        .map(lambda v: np.array(v)),                                                # 2-d integer arrays
        st.lists(st.booleans(), max_size=5),                                        # boolean masks
    )
    key = draw(st.one_of(item, st.lists(item, max_size=5).map(tuple)))
    if draw(st.booleans()) and shape:
        # a mask over the leading dims, of the right shape (mismatched ones come above)
        k = draw(st.integers(1, len(shape)))
        key = (np.array(draw(st.lists(st.booleans(), min_size=int(np.prod(shape[:k])),
                                      max_size=int(np.prod(shape[:k]))))).reshape(shape[:k]),)
    return a, key


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_case())
def test_indexing_matches_numpy(case):
    a, key = case
    try:
        want = a[key]
    except IndexError:
        with pytest.raises(IndexError):
            fx.tensor(a)[key]
        return
    except (ValueError, TypeError):  # numpy's own refusals of odd keys (e.g. ragged lists)
        with pytest.raises((IndexError, ValueError, TypeError)):
            fx.tensor(a)[key]
        return
    got = np.asarray(fx.tensor(a)[key])
    assert got.shape == np.shape(want), (key, got.shape, np.shape(want))
    np.testing.assert_array_equal(got, want)


def test_the_issue_repros():
    t = fx.tensor([1.0, 2.0, 3.0])
    assert fx.tensor([1.0, 2.0, 3.0])[[True, False, True]].tolist() == [1.0, 3.0]
    a = np.arange(24.0).reshape(2, 3, 4)
    got = fx.tensor(a)[0, :, [1, 3]]
    assert got.shape == (2, 3)  # numpy: advanced dims first when split by a slice
    np.testing.assert_array_equal(np.asarray(got), a[0, :, [1, 3]])
    assert t[::-1].tolist() == [3.0, 2.0, 1.0]
    assert t[None, ..., None].shape == (1, 3, 1)
    assert fx.zeros(0, 3)[:, [0, 2]].shape == (0, 2)
    for bad in (3, -4, [0, 5], (0, 0), 1.5, "a", (Ellipsis, Ellipsis), [True, False]):
        with pytest.raises(IndexError):
            t[bad]


def test_gradient_flows_through_advanced_indexing():
    x = fx.tensor(np.arange(12.0).reshape(3, 4))
    g = fx.gradient(lambda x: (x[[0, 0, 2], 1:3] * 2.0).sum(), x)[0]
    want = np.zeros((3, 4))
    want[0, 1:3] = 4.0
    want[2, 1:3] = 2.0
    np.testing.assert_array_equal(np.asarray(g), want)
    g = fx.gradient(lambda x: x[x.numpy() > 5].sum(), x)[0]
    np.testing.assert_array_equal(np.asarray(g), (np.arange(12.0).reshape(3, 4) > 5).astype(float))
