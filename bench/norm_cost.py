"""What batch and layer normalization cost on the medium job, in fastmlp and in PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTMLP_BLAS=scipy python bench/norm_cost.py [--rounds 5]

The job: 784-256-256-1, float32, batches of 128, one epoch over 8192 rows, no shuffling,
Leaky ReLU, SGD at lr 0.01; the norm (if any) between each hidden layer's product and its
activation. fastmlp's epoch alone (a warm start from the same weights each call); PyTorch's
same steps with `BatchNorm1d`/`LayerNorm` at its default threads. Each (system, norm) runs
in its own process, rounds interleaved; the table gives each one's median over the rounds
and its ratio to the same system without a norm (issue 23: batch norm at most 1.3x).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, statistics, sys, time
import numpy as np
system, norm, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
norm = None if norm == "none" else norm
rng = np.random.default_rng(2)
X = rng.standard_normal((8192, 784)).astype(np.float32)
w = rng.standard_normal(784)
y = ((X @ w > 0) ^ (rng.random(8192) < 0.1)).astype(np.float32).reshape(-1, 1)
if system == "fastmlp":
    import fastmlp
    net = fastmlp.MLP([784, 256, 256, 1], seed=0, dtype=np.float32, backend="cython", norm=norm)
    net.fit(X, y, epochs=1, lr=0.01, batch_size=128, shuffle=False)
    initial = net.params_.copy()
    def run():
        net.params_[...] = initial
        net.fit(X, y, epochs=1, lr=0.01, batch_size=128, shuffle=False, warm_start=True)
else:
    import torch
    layers = []
    for a, b in ((784, 256), (256, 256)):
        layers.append(torch.nn.Linear(a, b))
        if norm == "batch":
            layers.append(torch.nn.BatchNorm1d(b))
        elif norm == "layer":
            layers.append(torch.nn.LayerNorm(b))
        layers.append(torch.nn.LeakyReLU(0.01))
    layers.append(torch.nn.Linear(256, 1))
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    def run():
        for s in range(0, 8192, 128):
            opt.zero_grad()
            loss_fn(model(Xt[s:s + 128]), yt[s:s + 128]).backward()
            opt.step()
run()
times = []
for _ in range(calls):
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
print(json.dumps(statistics.median(times)))
"""

NORMS = ("none", "batch", "layer")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--systems", default="fastmlp,torch")
    args = parser.parse_args()
    systems = args.systems.split(",")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    runs = [(s, n) for s in systems for n in NORMS]
    times = {run: [] for run in runs}
    for r in range(args.rounds):
        for system, norm in runs if r % 2 == 0 else runs[::-1]:
            out = subprocess.run([sys.executable, "-c", CHILD, system, norm, str(args.calls)], env=env,
                                 capture_output=True, text=True, check=True)
            times[system, norm].append(json.loads(out.stdout))
    print(f"{'system':10} {'norm':6} {'median ms':>10}  ratio to no norm")
    for system, norm in runs:
        med = statistics.median(times[system, norm])
        base = statistics.median(times[system, "none"])
        print(f"{system:10} {norm:6} {med * 1e3:10.1f}  {med / base:.2f}")


if __name__ == "__main__":
    main()
