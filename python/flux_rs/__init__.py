"""flux_rs: the training API of Flux.jl and Optimisers.jl for Python, computed in Rust.

>>> import flux_rs as fx, numpy as np
>>> model = fx.Chain(fx.Dense(2, 8, fx.relu), fx.Dense(8, 1))
>>> opt_state = fx.setup(fx.Adam(0.01), model)
>>> x, y = np.random.rand(16, 2).astype("float32"), np.random.rand(16, 1).astype("float32")
>>> losses = fx.train_(lambda m, x, y: fx.losses.mse(m(x), y), model, [(x, y)] * 3, opt_state, progress=False)
>>> len(losses)
3
"""
from . import _core, losses, optimise, schedules
from ._autodiff import WithGradient, gradient, withgradient
from ._core import Leaf, Tensor, cat, maximum, minimum, stack, tensor
from ._tree import Node, layer
from .attention import MultiHeadAttention, dot_product_attention, make_causal_mask
from .activations import elu, gelu, identity, leakyrelu, logsoftmax, relu, sigmoid, softmax, softplus, swish, tanh, σ
from .conv import (AdaptiveMaxPool, AdaptiveMeanPool, Conv, ConvTranspose, DepthwiseConv, GlobalMaxPool, GlobalMeanPool,
                   MaxPool, MeanPool, PixelShuffle, SamePad, Upsample, conv, conv_transpose, maxpool, meanpool,
                   pixel_shuffle, upsample_bilinear, upsample_nearest)
from .basic import Bilinear, Embedding, Maxout, Parallel, Scale, SkipConnection, clamp, gather, scatter, split, where
from .data import DataLoader
from .implicit import Grads, Optimiser, Params, epochs, params, stop, throttle
from .init import (Rng, glorot_normal, glorot_uniform, identity_init, kaiming_normal, kaiming_uniform, lecun_normal,
                   ones, ones32, orthogonal, rand, rand32, randn, randn32, seed, sparse_init, truncated_normal, zeros,
                   zeros32)
from .layers import Chain, Dense, flatten, show
from .normalise import (AlphaDropout, BatchNorm, Dropout, GroupNorm, InstanceNorm, LayerNorm, alpha_dropout, dropout,
                        testmode_, trainmode_)
from .optimise import (AdaBelief, AdaDelta, AdaGrad, AdaMax, Adam, AdamW, AMSGrad, ClipGrad, ClipNorm, Descent, Lion,
                       Momentum, NAdam, Nesterov, OAdam, RAdam, RMSProp, Rprop, Rule, SignDecay, WeightDecay, setup,
                       update, update_, OptimiserChain, AccumGrad, MixedPrecision, adjust_, adjust, freeze_, thaw_,
                       clip_norm_)
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .serialization import CheckpointError, load, loadmodel_, save, state
from .train import NonFiniteGradientError, NonFiniteLossError, train_
from .utils import cpu, gpu, gpu_available, onecold, onehotbatch, trainables

__version__ = _core.__version__

__all__ = [
    "Tensor", "tensor", "cat", "stack", "maximum", "minimum", "Node", "layer",
    "gradient", "withgradient", "WithGradient",
    "Chain", "Dense", "flatten",
    "Conv", "ConvTranspose", "DepthwiseConv", "SamePad", "MaxPool", "MeanPool", "GlobalMaxPool", "GlobalMeanPool",
    "AdaptiveMaxPool", "AdaptiveMeanPool", "Upsample", "PixelShuffle", "conv", "conv_transpose", "maxpool", "meanpool",
    "upsample_nearest", "upsample_bilinear", "pixel_shuffle", "show",
    "BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "Dropout", "AlphaDropout", "dropout", "alpha_dropout",
    "trainmode_", "testmode_", "Embedding", "Scale", "Bilinear", "SkipConnection", "Parallel", "Maxout",
    "gather", "scatter", "where", "clamp", "split",
    "identity", "relu", "leakyrelu", "sigmoid", "σ", "tanh", "elu", "gelu", "swish", "softplus", "softmax", "logsoftmax",
    "seed", "Rng", "glorot_uniform", "glorot_normal", "kaiming_uniform", "kaiming_normal",
    "zeros", "ones", "rand", "randn", "zeros32", "ones32", "rand32", "randn32",
    "truncated_normal", "lecun_normal", "orthogonal", "sparse_init", "identity_init",
    "state", "loadmodel_", "save", "load", "CheckpointError",
    "losses", "optimise", "Rule", "Leaf", "setup", "update_", "update",
    "Descent", "Momentum", "Nesterov", "Rprop", "RMSProp", "Adam", "RAdam", "AdaMax", "OAdam", "AdaGrad",
    "AdaDelta", "AMSGrad", "NAdam", "AdamW", "AdaBelief", "Lion", "WeightDecay", "SignDecay", "ClipGrad", "ClipNorm",
    "OptimiserChain", "AccumGrad", "MixedPrecision", "adjust_", "adjust", "freeze_", "thaw_", "clip_norm_", "schedules",
    "DataLoader", "train_", "NonFiniteLossError", "NonFiniteGradientError", "onehotbatch", "onecold", "trainables", "gpu", "cpu", "gpu_available",
    "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "MultiHeadAttention", "dot_product_attention",
    "make_causal_mask",
    "params", "Params", "Grads", "throttle", "stop", "epochs", "Optimiser",
]
