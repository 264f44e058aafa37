"""Moving whole trees between devices: ``fx.gpu`` / ``fx.cpu`` move every Tensor of a
model (parameters and non-trainable state such as BatchNorm's running statistics, in
nested containers and custom objects), of the optimiser state from ``fx.setup``
(moments, step counters held as tensors, chains, MixedPrecision's inner state) and of a
batch (tuples, lists, dicts, nested); values survive the round trip. Recurrent layers'
``initialstates`` are made on the model's device; a checkpoint of a GPU BatchNorm model
loads onto the device of the model it is loaded into. Runs on any wgpu adapter (Mesa's
lavapipe in CI); skips, saying why, only when none can be had."""
import copy

import numpy as np
import pytest

import flux_rs as fx
from flux_rs import _core
from flux_rs._core import Leaf
from flux_rs._tree import tensors, values_of

pytestmark = pytest.mark.skipif(not fx.gpu_available(), reason=f"no GPU adapter: {_core._gpu_unavailable_reason()}")


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


class Custom:
    """A user's own layer: Tensors in attributes, a list and a dict, a non-trainable one."""

    def __init__(self):
        self.w = fx.tensor(rand(3, 3, seed=1))
        self.blocks = [fx.Dense(3, 3), {"scale": fx.tensor(rand(3, seed=2))}]
        self.buffer = fx.tensor(np.zeros(3, np.float32))

    def __call__(self, x):
        return self.blocks[0](x @ self.w) * self.blocks[1]["scale"] + self.buffer


def model():
    return fx.Chain(fx.Conv((3, 3), 2, 4, pad=1), fx.BatchNorm(4, fx.relu),
                    fx.SkipConnection(fx.Chain(fx.InstanceNorm(4, affine=True, track_stats=True)), lambda y, x: y + x),
                    fx.GlobalMeanPool(), fx.flatten, fx.Parallel(lambda a, b: a + b, fx.Dense(4, 3), fx.Dense(4, 3)),
                    Custom(), fx.LayerNorm(3))


def all_tensors(tree):
    """The tree's Tensors, those inside optimiser Leafs' states included."""
    return tensors(tree) + [t for leaf in values_of(tree, Leaf) for t in tensors(leaf.state)]


def on(device, tree):
    """The devices of the tree's tensors that are not on ``device``."""
    ts = all_tensors(tree)
    assert ts, "the tree holds tensors"
    return [t.device for t in ts if t.device != device]


def test_gpu_and_cpu_move_every_tensor_of_a_model_and_keep_its_values():
    m = model()
    before = [np.asarray(t).copy() for t in tensors(m)]
    assert fx.gpu(m) is m
    assert on("gpu", m) == [], "some tensors stayed on the CPU"
    # the running statistics (not trainable) moved as well
    assert m.layers[1].μ.device == "gpu" and m.layers[1].σ2.device == "gpu"
    assert m.layers[2].layers.layers[0].μ.device == "gpu"
    assert m.layers[6].buffer.device == "gpu" and m.layers[6].blocks[1]["scale"].device == "gpu"
    assert fx.cpu(m) is m
    assert on("cpu", m) == []
    for a, b in zip(before, tensors(m)):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_a_model_moved_to_the_gpu_trains_and_runs_in_test_mode_as_on_the_cpu():
    x = rand(4, 2, 5, 5, seed=3)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    out = {}
    m0 = model()
    for dev in ("cpu", "gpu"):
        m = copy.deepcopy(m0)
        # plain descent: the step is linear in the gradient (Adam's first step is ±η
        # wherever a gradient is nonzero, so rounding noise on a gradient that is zero
        # in exact arithmetic, as a bias before BatchNorm's, would flip whole steps)
        st = fx.setup(fx.Descent(0.1), m)
        data = [(x, y)]
        if dev == "gpu":
            fx.gpu(m), fx.gpu(st)
            data = fx.gpu(data)
        loss = lambda m, a, b: fx.losses.logitcrossentropy(m(a), b)
        fx.train_(loss, m, data, st, progress=False)
        fx.testmode_(m)
        out[dev] = (m(data[0][0]), m)
    yc, yg = out["cpu"][0], out["gpu"][0]
    assert yg.device == "gpu" and on("gpu", out["gpu"][1]) == []
    np.testing.assert_allclose(np.asarray(yg), np.asarray(yc), rtol=1e-5, atol=1e-5 * np.abs(np.asarray(yc)).max())
    # within 1e-5 relative plus 1e-5 of the model's largest value: the conv bias before
    # BatchNorm has an exactly-zero gradient, so after the step it holds rounding only
    cpu_ts, gpu_ts = tensors(out["cpu"][1]), tensors(out["gpu"][1])
    top = max(np.abs(np.asarray(a)).max() for a in cpu_ts)
    assert len(cpu_ts) == len(gpu_ts)
    for a, b in zip(cpu_ts, gpu_ts):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5 * top)


@pytest.mark.parametrize("rule", [fx.Adam(0.01), fx.OptimiserChain(fx.ClipNorm(1.0), fx.AdamW(0.01)), fx.Rprop(),
                                  fx.AccumGrad(2), fx.MixedPrecision(fx.Momentum(), master="float32")], ids=repr)
def test_the_optimiser_state_from_setup_moves_whole(rule):
    m = fx.Chain(fx.Dense(3, 4), fx.BatchNorm(4), fx.Dense(4, 2))
    st = fx.setup(rule, m)
    assert fx.gpu(st) is st
    assert on("gpu", st) == [], "part of the optimiser state stayed on the CPU"
    fx.cpu(st)
    assert on("cpu", st) == []
    # set up on a GPU model, the state starts on the GPU
    fx.gpu(m)
    assert on("gpu", fx.setup(rule, m)) == []


def test_mixed_precisions_float64_master_stays_on_the_host():
    """The GPU computes in float32, so a float64 master copy (MixedPrecision's default)
    stays in host memory when its state is moved; its steps still update a GPU model."""
    m = fx.gpu(fx.Dense(3, 2))
    st = fx.gpu(fx.setup(fx.MixedPrecision(fx.Momentum()), m))
    master = all_tensors(st)
    assert master and all(t.dtype == np.float64 and t.device == "cpu" for t in master)
    fx.update_(st, m, {"weight": fx.gpu(fx.ones32(2, 3)), "bias": None})
    assert m.weight.device == "gpu"


def test_batches_in_nested_containers_move_and_come_back():
    batch = {"x": (np.ones((2, 3)), [fx.tensor(rand(2, 2)), {"deep": rand(4)}]), "y": fx.tensor([1.0, 2.0]),
             "ids": np.array([1, 0]), "name": "batch 1"}
    g = fx.gpu(batch)
    assert g["x"][0].device == "gpu" and g["x"][0].dtype == np.float32
    assert g["x"][1][0].device == "gpu" and g["x"][1][1]["deep"].device == "gpu" and g["y"].device == "gpu"
    assert g["ids"] is batch["ids"] and g["name"] == "batch 1"  # integer arrays and strings stay as they are
    assert isinstance(g["x"], tuple) and isinstance(g["x"][1], list)
    c = fx.cpu(g)
    assert on("cpu", c) == []
    np.testing.assert_array_equal(np.asarray(c["x"][1][1]["deep"]), batch["x"][1][1]["deep"])


@pytest.mark.parametrize("cell", ["RNNCell", "LSTMCell", "GRUCell"])
def test_initialstates_are_made_on_the_models_device(cell):
    c = fx.gpu(getattr(fx, cell)(3, 4))
    for shape in ((2, 3), (3,)):
        x = fx.gpu(fx.tensor(rand(*shape)))
        s = c.initialstates(x)
        for t in (s if isinstance(s, tuple) else (s,)):
            assert t.device == "gpu" and t.shape == shape[:-1] + (4,)
            np.testing.assert_array_equal(np.asarray(t), 0.0)
        y, _ = c(x, s)  # the state joins the GPU input without a mixed-device error
        assert y.device == "gpu"
    assert getattr(fx, cell)(3, 4).initialstates(fx.tensor(rand(2, 3))).__class__ in (fx.Tensor, tuple)


def test_a_checkpoint_of_a_gpu_batchnorm_model_loads_onto_the_device_of_the_model(tmp_path):
    m = fx.gpu(fx.Chain(fx.Dense(3, 4), fx.BatchNorm(4, fx.relu), fx.Dense(4, 2)))
    fx.gradient(lambda m: m(fx.gpu(fx.tensor(rand(5, 3)))).sum(), m)  # a training pass moves μ, σ2
    assert not np.allclose(np.asarray(m.layers[1].μ), 0.0)
    p = tmp_path / "bn.safetensors"
    fx.save(p, {"model": m})
    saved = fx.load(p)["model"]
    for dev in ("gpu", "cpu"):
        m2 = fx.Chain(fx.Dense(3, 4), fx.BatchNorm(4, fx.relu), fx.Dense(4, 2))
        if dev == "gpu":
            fx.gpu(m2)
        fx.loadmodel_(m2, saved)
        assert on(dev, m2) == [], f"loading moved tensors off the {dev}"
        for a, b in zip(tensors(m), tensors(m2)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        fx.testmode_(m), fx.testmode_(m2)
        x = rand(2, 3, seed=5)
        np.testing.assert_array_equal(np.asarray(m2(fx.gpu(fx.tensor(x)) if dev == "gpu" else fx.tensor(x))),
                                      np.asarray(m(fx.gpu(fx.tensor(x)))))
        fx.trainmode_(m)


def test_an_op_mixing_a_gpu_model_and_a_cpu_input_names_both_devices():
    m = fx.gpu(fx.BatchNorm(3))
    with pytest.raises(ValueError, match="(?s)(cpu.*gpu|gpu.*cpu)") as e:
        m(fx.tensor(rand(2, 3)))
    assert "fx.gpu" in str(e.value), "the Python remedy, not Rust's"
    with pytest.raises(ValueError, match=r"(?s)(cpu.*gpu|gpu.*cpu).*fx\.gpu or fx\.cpu"):
        fx.gpu(fx.Dense(2, 2))(np.ones((3, 2), np.float32))  # host input into a GPU layer
    with pytest.raises(ValueError, match="(?s)(cpu.*gpu|gpu.*cpu)"):
        fx.gpu(fx.tensor(rand(2, 3))) @ fx.tensor(rand(3, 2))


def test_a_float64_model_and_its_state_move_to_the_gpu_as_float32():
    m = {"w": fx.tensor(np.ones((2, 3)))}  # float64
    st = fx.setup(fx.Adam(0.1), m)
    fx.gpu(m), fx.gpu(st)
    assert m["w"].dtype == np.float32 and on("gpu", st) == []
    assert all(t.dtype == np.float32 for t in all_tensors(st))
    fx.update_(st, m, {"w": fx.gpu(fx.tensor(np.ones((2, 3), np.float32)))})
    np.testing.assert_allclose(np.asarray(m["w"]), 0.9, rtol=1e-6)  # Adam's first step: η
    fx.cpu(m), fx.cpu(st)
    assert on("cpu", st) == [] and m["w"].device == "cpu"


def test_an_epoch_of_a_batchnorm_cnn_from_a_gpu_dataloader_reads_back_only_the_losses():
    """Running statistics update on the GPU and batches arrive there: per step, one
    4-byte read (the loss)."""
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(12, 2, 5, 5)).astype(np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, 12)]
    m = fx.gpu(model())
    st = fx.setup(fx.Adam(0.01), m)
    data = fx.DataLoader((x, y), batchsize=4, device="gpu")
    loss = lambda m, a, b: fx.losses.logitcrossentropy(m(a), b)
    fx.train_(loss, m, data, st, progress=False)  # the first epoch compiles the kernels
    mu0 = np.asarray(m.layers[1].μ).copy()
    r0, b0 = _core._gpu_reads()
    losses = fx.train_(loss, m, data, st, progress=False)
    r1, b1 = _core._gpu_reads()
    assert len(losses) == 3 and (r1 - r0, b1 - b0) == (3, 12)
    assert not np.array_equal(np.asarray(m.layers[1].μ), mu0), "the running mean moved on the GPU"
    assert on("gpu", m) == [] and on("gpu", st) == []


def test_update_names_a_state_or_gradient_left_on_the_other_device():
    # the usual slip: fx.setup on the CPU model, then fx.gpu(model) without the state
    m = fx.Dense(3, 2)
    st = fx.setup(fx.Adam(), m)
    mg = fx.gpu(m)
    x = fx.gpu(fx.tensor(rand(4, 3)))
    g = fx.gradient(lambda mm: (mm(x) ** 2).sum(), mg)[0]
    before = np.array(mg.weight).copy()
    with pytest.raises(ValueError, match=r"optimiser state is on the cpu but its parameter of shape \(2, 3\) is on the gpu.*fx\.gpu\(state\)"):
        fx.update_(st, mg, g)
    np.testing.assert_array_equal(np.array(mg.weight), before)  # nothing stepped
    fx.update_(fx.gpu(st), mg, g)  # the remedy the message names works
    assert not np.array_equal(np.array(mg.weight), before)
    # a GPU state and model, the gradient of a CPU copy of the model (fx.gpu moves in place)
    mc = fx.Dense(3, 2)
    gc = fx.gradient(lambda mm: (mm(rand(4, 3)) ** 2).sum(), mc)[0]
    with pytest.raises(ValueError, match=r"gradient is on the cpu but its parameter of shape \(2, 3\) is on the gpu"):
        fx.update_(fx.setup(fx.Adam(), mg), mg, gc)
