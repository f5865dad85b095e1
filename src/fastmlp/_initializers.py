"""Initial weights: each layer's W drawn from one generator, layer by layer; biases zero (norms: scale 1, shift 0)."""

import math

import numpy as np

from ._registry import ACTIVATIONS
from ._validation import choice, real

INITS = ("auto", "he", "glorot", "normal")


def check_init(init, init_scale):
    """(init, init_scale) checked; init_scale belongs to init="normal" only."""
    choice(init, "init", INITS)
    if init_scale is not None:
        if init != "normal":
            raise ValueError(f"init_scale applies to init='normal' only, not init={init!r}")
        init_scale = real(init_scale, "init_scale", positive=True)
    return init, init_scale


def initial_params(net, init, init_scale, rng, dtype):
    """A new flat parameter vector for `net`, drawn from the numpy Generator `rng`.

    "normal": W = rng.standard_normal((n_in, n_out)) * init_scale (default 0.1), the seed's.
    "he": Kaiming normal, std = sqrt(2 / ((1 + slope^2) n_in)) with Leaky ReLU's slope
    counted (PyTorch's calculate_gain). "glorot": uniform in +-sqrt(6 / (n_in + n_out)).
    "auto": for each layer, the family the registry gives the activation it feeds (Glorot
    at the output).
    """
    flat = np.zeros(net.param_count(), dtype=dtype)
    for l, W in enumerate(net.unflatten(flat)[0]):
        n_in, n_out = W.shape
        feeds = net.activations[l] if l < len(net.activations) else None
        family = init if init != "auto" else ACTIVATIONS.get(feeds, "glorot")
        if family == "normal":
            W[...] = rng.standard_normal((n_in, n_out)) * (0.1 if init_scale is None else init_scale)
        elif family == "he":
            slope = net.negative_slope if feeds == "leaky_relu" else 0.0
            W[...] = rng.standard_normal((n_in, n_out)) * math.sqrt(2.0 / ((1.0 + slope**2) * n_in))
        else:
            bound = math.sqrt(6.0 / (n_in + n_out))
            W[...] = rng.uniform(-bound, bound, (n_in, n_out))
    net.initial_norms(flat)     # gamma and running variances 1, beta and running means 0
    return flat
