"""Optimiser state trees a person can read (issue 16, item 4): a compact repr of Leaf
with arrays summarised and numbers in the parameter's precision, dir() and tab
completion on state trees, and Leaf.state handing out the same live arrays across
update_ (as Optimisers.jl mutates them in place)."""
import rlcompleter

import numpy as np

import flux_rs as fx

ADAM = "Adam(eta=0.001, beta=(0.9, 0.999), epsilon=1e-08)"


def model32():
    return {"w": fx.tensor(np.zeros((3, 4), np.float32)), "b": fx.tensor(np.array([1.0, 2.0], np.float32))}


def test_leaf_repr_snapshot():
    st = fx.setup(fx.Adam(), model32())
    assert repr(st["b"]) == f"Leaf({ADAM}, (Float32[0.0, 0.0], Float32[0.0, 0.0], (0.9, 0.999)))"
    assert repr(st["w"]) == f"Leaf({ADAM}, (Float32[0.0, 0.0 … 0.0] (3, 4), Float32[0.0, 0.0 … 0.0] (3, 4), (0.9, 0.999)))"


def test_leaf_repr_after_a_step_prints_float32_numbers_as_float32():
    m = model32()
    st = fx.setup(fx.Adam(), m)
    fx.update_(st, m, {"w": np.arange(12.0).reshape(3, 4), "b": np.array([1.0, 2.0])})
    # βt = 0.9·0.9 in float32 prints as numpy prints a float32 (not 0.8099999427795410)
    assert str(np.float32(0.9) * np.float32(0.9)) == "0.80999994"
    assert repr(st["b"]) == (f"Leaf({ADAM}, (Float32[0.100000024, 0.20000005], Float32[0.0009999871, 0.0039999485], "
                             "(0.80999994, 0.99800104)))")
    assert repr(st["w"]) == (f"Leaf({ADAM}, (Float32[0.0, 0.100000024 … 1.1000003] (3, 4), "
                             "Float32[0.0, 0.0009999871 … 0.12099844] (3, 4), (0.80999994, 0.99800104)))")
    # each number is what numpy prints for that float32
    mt, vt, (b1, b2) = (st["w"].state[0].numpy().ravel(), st["w"].state[1].numpy().ravel(), st["w"].state[2])
    f = lambda v: str(np.float32(v))
    assert repr(st["w"]).endswith(f"(Float32[{f(mt[0])}, {f(mt[1])} … {f(mt[-1])}] (3, 4), "
                                  f"Float32[{f(vt[0])}, {f(vt[1])} … {f(vt[-1])}] (3, 4), ({f(b1)}, {f(b2)})))")
    assert "0.8999999761581421" not in repr(fx.setup(fx.Adam(), model32()))


def test_leaf_repr_float64_stateless_frozen_and_chains():
    m = {"w": fx.tensor(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))}
    st = fx.setup(fx.Momentum(0.1), m)
    fx.update_(st, m, {"w": np.array([1.0, 0.0, 0.0, 0.0, 3.0])})
    assert repr(st["w"]) == "Leaf(Momentum(eta=0.1, rho=0.9), Float64[0.1, 0.0 … 0.30000000000000004] (5,))"
    st = fx.setup(fx.Descent(), {"w": fx.tensor(np.ones(2))})
    fx.freeze_(st)
    assert repr(st["w"]) == "Leaf(Descent(0.1), None, frozen=True)"
    st = fx.setup(fx.OptimiserChain(fx.AccumGrad(2), fx.Descent()), {"w": fx.tensor(np.ones((2, 2)))})
    assert repr(st["w"]) == "Leaf(OptimiserChain(AccumGrad(n=2), Descent(0.1)), ((Float64[0.0, 0.0, 0.0, 0.0] (2, 2), 1), None))"


def test_state_tree_repr_is_compact():
    mlp = fx.Chain(fx.Dense(784, 32, fx.relu), fx.Dense(32, 10))
    text = repr(fx.setup(fx.Adam(), mlp))
    # four leaves, each a rule and three summarised parts (the full dump was 3 KB on a
    # 2-layer MLP and grows with the model; this does not)
    assert text.count("Leaf(") == 4 and len(text) < 1200, text
    assert text.count("(32, 784)") == 2 and text.count("(10, 32)") == 2


def test_dir_lists_the_models_fields_for_tab_completion():
    st = fx.setup(fx.Adam(), fx.Chain(fx.Dense(2, 3), fx.Dense(3, 1)))
    assert "layers" in dir(st)
    assert {"weight", "bias"} <= set(dir(st.layers[0]))
    assert "_asdict" in dir(st)  # the methods are still there
    c = rlcompleter.Completer({"st": st})
    assert c.complete("st.lay", 0) == "st.layers"
    c = rlcompleter.Completer({"d": st.layers[1]})
    options = {c.complete("d.", i) for i in range(40)} - {None}
    assert {"d.weight", "d.bias"} <= options
    assert {"rule", "state", "frozen"} <= set(dir(st.layers[0].weight))


def test_gradient_nodes_complete_too():
    m = fx.Dense(2, 1)
    g = fx.gradient(lambda m: m(np.ones((1, 2), np.float32)).sum(), m)[0]
    assert {"weight", "bias"} <= set(dir(g))


def test_leaf_state_is_the_same_live_objects_across_update_():
    m = fx.Dense(2, 3)
    st = fx.setup(fx.Adam(0.1), m)
    before = st.weight.state
    mt, vt, _ = before
    assert st.weight.state[0] is mt and st.weight.state[1] is vt
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 3), np.float32)
    loss = lambda m: fx.losses.mse(m(x), y)
    seen, ref = [], np.zeros((3, 2))
    for _ in range(3):
        g = fx.gradient(loss, m)[0]
        ref = 0.9 * ref + 0.1 * g.weight.numpy().astype(np.float64)
        fx.update_(st, m, g)
        after = st.weight.state
        assert after[0] is mt and after[1] is vt  # the same Tensors, stepped in place
        seen.append(mt.numpy().copy())
        # the handle taken before the steps holds Adam's first moment of these gradients
        np.testing.assert_allclose(mt.numpy(), ref, rtol=1e-5, atol=1e-7)
    assert not np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[1], seen[2])


def test_live_state_matches_a_leaf_that_was_never_read():
    """Reading leaf.state changes nothing about the steps."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2))
    ma, mb = {"w": fx.tensor(w)}, {"w": fx.tensor(w)}
    sa, sb = fx.setup(fx.Adam(0.05), ma), fx.setup(fx.Adam(0.05), mb)
    held = sa["w"].state
    for _ in range(4):
        g = {"w": rng.normal(size=(3, 2))}
        fx.update_(sa, ma, g)
        fx.update_(sb, mb, g)
    np.testing.assert_array_equal(ma["w"].numpy(), mb["w"].numpy())
    for a, b in zip(held[:2], sb["w"].state[:2]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert sa["w"].state[2] == sb["w"].state[2]


def test_frozen_pure_update_and_replaced_state_keep_handles_right():
    m = {"w": fx.tensor(np.zeros(2))}
    st = fx.setup(fx.Momentum(0.1), m)
    v = st["w"].state
    assert st["w"].state is v  # Momentum's state is one array: the very same object
    fx.update_(st, m, {"w": np.array([1.0, 2.0])})
    np.testing.assert_allclose(v.numpy(), [0.1, 0.2])
    st2, _ = fx.update(st, m, {"w": np.array([1.0, 2.0])})  # pure: the held state does not move
    np.testing.assert_allclose(v.numpy(), [0.1, 0.2])
    assert st2["w"].state is not v
    np.testing.assert_allclose(st2["w"].state.numpy(), [0.19, 0.38])
    fx.freeze_(st)
    fx.update_(st, m, {"w": np.array([1.0, 2.0])})
    np.testing.assert_allclose(v.numpy(), [0.1, 0.2])
    fx.thaw_(st)
    fx.adjust_(st, 1.0)  # a new rule keeps the state and its handles
    assert st["w"].state is v
    st["w"].state = np.array([5.0, 5.0])  # replacing the state gives new handles
    assert st["w"].state is not v and st["w"].state.tolist() == [5.0, 5.0]
    fx.update_(st, m, {"w": np.array([0.0, 0.0])})
    np.testing.assert_allclose(st["w"].state.numpy(), [4.5, 4.5])
    np.testing.assert_allclose(v.numpy(), [0.1, 0.2])


def test_held_state_survives_checkpoints_and_copies():
    import os
    import tempfile
    m = {"w": fx.tensor(np.ones(3))}
    st = fx.setup(fx.Adam(0.1), m)
    mt = st["w"].state[0]
    fx.update_(st, m, {"w": np.array([1.0, -1.0, 2.0])})
    p = os.path.join(tempfile.mkdtemp(), "s.safetensors")
    fx.save(p, st)
    back = fx.load(p)
    np.testing.assert_array_equal(back["w"].state[0].numpy(), mt.numpy())
    cp = fx.adjust(st, 0.5)  # a copy: its arrays are its own
    fx.update_(st, m, {"w": np.array([1.0, 1.0, 1.0])})
    assert not np.array_equal(cp["w"].state[0].numpy(), mt.numpy())
    np.testing.assert_array_equal(back["w"].state[0].numpy(), cp["w"].state[0].numpy())
