"""What the seed's XOR fit costs right after an idle pause, piece by piece (issue 12).

After a second of sleep the code and data a call touches have left the caches, so the
first call pays for bringing them back. `jax_compare.py --jobs xor` times the whole
5000-epoch fit that way beside a numba loop; this script splits fastmlp's side, each
piece timed once after its own pause, the pieces in turn, medians over the rounds:

- ``empty``: an empty Python function (the timer and the wake-up alone)
- ``_train(epochs=0)``, ``_train(epochs=1)``: the compiled loop's entry, arguments made once
  beforehand (its array checks, plan, optimizer copy and buffer; then one epoch)
- ``fit(epochs=1)``: the whole fit path (checks, runs, history) with one epoch
- ``fit(epochs=5000)``: the benchmark's fit
- ``numba epochs=1``: the numba loop of jax_compare with one epoch (numba installed)

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/idle_cost.py [ROUNDS] [PAUSE]

Timings on a shared machine move by tens of microseconds between runs: compare builds
by running this for each, alternately, more than once.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _jaxjobs as jj  # noqa: E402
import test_bench_xor as xor_bench  # noqa: E402
from _common import fastmlp, xor_data  # noqa: E402
from jax_compare import SLOPE  # noqa: E402

from fastmlp import _core, _training  # noqa: E402


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    pause = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    X, y = xor_data()
    net = fastmlp.MLP([2, 4, 1], activation="leaky_relu", output="sigmoid", loss="bce", init="normal",
                      init_scale=0.1, seed=42, dtype="float64", backend="cython")
    net.fit(X, y, epochs=1, lr=xor_bench.LR)
    run, Y = net._run, y.reshape(-1, 1).astype(np.float64)
    params = net.params_.copy()

    def train(epochs):
        losses = np.empty(max(epochs, 1))
        return lambda: _core._train(_training.CHECKED, net._net, params, X, Y, None, run.optimizer, run.state,
                                    losses, epochs, len(X), None, None, None, 1)

    pieces = {
        "empty": lambda: None,
        "_train(epochs=0)": train(0),
        "_train(epochs=1)": train(1),
        "fit(epochs=1)": lambda: net.fit(X, y, epochs=1, lr=xor_bench.LR),
        f"fit(epochs={xor_bench.EPOCHS})": lambda: net.fit(X, y, epochs=xor_bench.EPOCHS, lr=xor_bench.LR),
    }
    if jj.numba_xor is not None:
        W1, b1, W2, b2 = jj.fastmlp_params(net)
        args = (X, y, W1, b1, W2.reshape(-1, 1), b2, 1, xor_bench.LR, SLOPE)
        pieces["numba epochs=1"] = lambda: jj.numba_xor(*args)
    for fn in pieces.values():      # compiled, imported, warm once
        fn()
        fn()
    times = {name: [] for name in pieces}
    for _ in range(rounds):
        for name, fn in pieces.items():
            times[name].append(jj.after_pause(fn, pause))
    print(f"fastmlp from {os.path.dirname(fastmlp.__file__)}; each call right after {pause:g} s idle; "
          f"median (min-max) of {rounds} rounds, microseconds")
    for name, values in times.items():
        v = np.array(values) * 1e6
        print(f"  {name:20s} {np.median(v):7.0f}  ({v.min():.0f}-{v.max():.0f})")


if __name__ == "__main__":
    main()
