"""Issue 26's speed table: every system timed in its own process, beside the chip's limit.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/speed.py [--jobs medium,medium10,medium64,small,xor,digits] [--rounds 3] [--quick] [--busy]

Jobs (data from ``_common.make_data``, settings from ``test_bench_*.py``; SGD, no shuffle):
  medium    784-256-256-1 float32, batch 128, 1 epoch on 8192 rows, lr 0.01
  medium10  the same, 10 epochs;  medium64: float64, 10 epochs
  small     32-64-64-1 float64, batch 32, 10 epochs on 4096 rows (the tabular job)
  xor       2-4-1 float64, 5000 full-batch epochs, lr 0.1 (the seed's job)
  digits    fastmlp.MLPClassifier against scikit-learn's MLPClassifier, same arguments
            (scikit-learn's defaults, random_state=0, max_iter = the epochs scikit-learn
            runs at its defaults, tol=0), each at its default threads

Systems: fastmlp (compiled backend, ``FASTMLP_BLAS=scipy``: SciPy's OpenBLAS; the medium and
small fits warm-started from the same weights each call, so the epochs alone are timed, as
for JAX and the floor), the GEMM floor (the job's products alone: ``_jaxjobs.ScipyFloor``,
through SciPy's OpenBLAS as fastmlp calls it, and ``_jaxjobs.NumpyFloor``, np.matmul),
JAX with the whole loop jitted (``_jaxjobs.jax_trainer``), PyTorch (``conftest.torch_fit``;
2 threads on the medium jobs, 1 on small), numba for XOR (``_jaxjobs.numba_xor``, warm),
scikit-learn for digits. The limit is the job's FLOPs (the floor's products) at the rate
``np.matmul`` reaches on a 2048^3 product of the job's dtype, measured in its own process.

Each round starts one process per job and system (the order reversed every other round);
a process builds its data, runs once untimed (JAX: compiles; numba: compiles) and reports
the median of several calls. The tables give the median over the rounds. The children's
environment has OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed (they pin OpenBLAS to an
older, slower kernel) and FASTMLP_BLAS=scipy. Missing JAX, torch or numba: their rows are
skipped. ``--busy`` adds, per round and job, the fastmlp process again while another
process spins on core 0, and (medium and small) fastmlp right after torch (2 threads)
trained one epoch of the same job in the same process.
"""

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COMMAND = "python bench/speed.py"
SLOPE = 0.01   # Leaky ReLU's negative slope, fastmlp's default
OPTIONAL = {"jax": "jax", "torch": "torch", "numba": "numba"}   # system -> the package it needs

# job -> (layer sizes, rows, batch, epochs, lr, dtype); XOR and digits are special cases
JOBS = {
    "medium": ([784, 256, 256, 1], 8192, 128, 1, 0.01, "float32"),
    "medium10": ([784, 256, 256, 1], 8192, 128, 10, 0.01, "float32"),
    "medium64": ([784, 256, 256, 1], 8192, 128, 10, 0.01, "float64"),
    "small": ([32, 64, 64, 1], 4096, 32, 10, 0.01, "float64"),
    "xor": ([2, 4, 1], 4, 4, 5000, 0.1, "float64"),
    "digits": (None, None, None, None, None, "float64"),
}
TITLES = {
    "medium": "medium 784-256-256-1, batch 128, float32, 1 epoch",
    "medium10": "medium, float32, 10 epochs",
    "medium64": "medium, float64, 10 epochs",
    "small": "small 32-64-64-1, batch 32, float64, 10 epochs",
    "xor": "XOR 2-4-1, 5000 full-batch epochs",
    "digits": "digits, MLPClassifier at scikit-learn's defaults",
}
SYSTEMS = {
    "medium": ["fastmlp", "floor", "floor-numpy", "jax", "torch"],
    "small": ["fastmlp", "floor", "floor-numpy", "jax", "torch"],
    "xor": ["fastmlp", "jax", "numba"],
    "digits": ["fastmlp", "sklearn"],
}
SYSTEMS["medium10"] = SYSTEMS["medium64"] = SYSTEMS["medium"]
CALLS = {"medium": 7, "medium10": 3, "medium64": 3, "small": 10, "xor": 30, "digits": 3}
NAMES = {"fastmlp": "fastmlp", "floor": "GEMM floor (SciPy ?gemm)", "floor-numpy": "GEMM floor (np.matmul)",
         "jax": "JAX jit whole loop", "torch": "PyTorch", "numba": "numba njit loop",
         "sklearn": "scikit-learn"}

# The goals: (job, text, ratio name, bound, at least (True) or at most (False))
GOALS = [
    ("medium", "JAX/fastmlp >= 1.15", "JAX/fastmlp", 1.15, True),
    ("medium10", "JAX/fastmlp >= 1.15", "JAX/fastmlp", 1.15, True),
    ("medium10", "fastmlp/limit <= 1.15", "fastmlp/limit", 1.15, False),
    ("medium64", "JAX/fastmlp >= 1.3", "JAX/fastmlp", 1.3, True),
    ("medium64", "fastmlp/limit <= 1.2", "fastmlp/limit", 1.2, False),
    ("small", "JAX/fastmlp >= 1.6", "JAX/fastmlp", 1.6, True),
    ("small", "fastmlp/limit <= 1.8", "fastmlp/limit", 1.8, False),
    ("xor", "numba/fastmlp >= 1.0", "numba/fastmlp", 1.0, True),
    ("digits", "sklearn/fastmlp >= 3", "sklearn/fastmlp", 3.0, True),
]
BUSY_GOAL, TORCH_GOAL = 2.3, 1.2


# ---------------------------------------------------------------- FLOPs


def job_flops(job):
    """2 M N K summed over the GEMM floor's products (per batch the L forward products, dW
    for every layer, dA for every layer but the first), times batches and epochs; None for
    the jobs without a limit (XOR, digits)."""
    if job in ("xor", "digits"):
        return None
    sizes, n, batch, epochs, _, _ = JOBS[job]
    pairs = list(zip(sizes[:-1], sizes[1:]))
    per_row = sum(2 * a * b for a, b in pairs) + sum(a * b for a, b in pairs[1:])
    return 2 * batch * per_row * (n // batch) * epochs


# ---------------------------------------------------------------- the children


def median_of_calls(run, calls, before=None):
    """One untimed call, then the median seconds of `calls` calls (`before` runs untimed
    ahead of each)."""
    run()
    times = []
    for _ in range(calls):
        if before is not None:
            before()
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def job_data(job):
    from _common import make_data, xor_data

    import numpy as np

    if job == "xor":
        return xor_data()
    sizes, n, _, _, _, dtype = JOBS[job]
    return make_data(n, sizes[0], seed=2 if job.startswith("medium") else 1, dtype=np.dtype(dtype))


def fastmlp_net(job):
    import fastmlp

    sizes, _, _, _, _, dtype = JOBS[job]
    if job == "xor":
        return fastmlp.MLP(sizes, activation="leaky_relu", output="sigmoid", loss="bce", init="normal",
                           init_scale=0.1, seed=42, dtype=dtype, backend="cython")
    return fastmlp.MLP(sizes, activation="leaky_relu", output="sigmoid", loss="bce", seed=0, dtype=dtype,
                       backend="cython")


def fastmlp_run(job, X, y):
    """The fit, warm-started from the same initial weights each call (the epochs alone); XOR
    afresh each call (its seed's weights are cached after the first draw), as engine_compare.py
    and jax_compare.py time it: warm starts would keep every call's 5000 losses in the
    model's history, whose growing list of floats cost ~0.1 ms a call in allocation."""
    _, _, batch, epochs, lr, _ = JOBS[job]
    net = fastmlp_net(job)
    initial = net.params_.copy()
    if job == "xor":
        return lambda: net.fit(X, y, epochs=epochs, lr=lr, batch_size=batch, shuffle=False)

    def run():
        net.params_[...] = initial
        net.fit(X, y, epochs=epochs, lr=lr, batch_size=batch, shuffle=False, warm_start=True)

    return run


def torch_epoch(job, X, y, threads):
    """One epoch of the job in PyTorch (conftest.torch_fit) with `threads` threads."""
    import torch
    from conftest import torch_fit

    torch.set_num_threads(threads)
    sizes, _, batch, _, lr, _ = JOBS[job]
    return lambda: torch_fit(torch, X, y, sizes, batch, 1, lr)


def system_run(system, job, X, y):
    """The zero-argument callable a child times."""
    sizes, n, batch, epochs, lr, dtype = JOBS[job]
    if system in ("fastmlp", "fastmlp-busy"):
        return fastmlp_run(job, X, y)
    if system in ("floor", "floor-numpy"):
        import _jaxjobs as jj

        floor = (jj.ScipyFloor if system == "floor" else jj.NumpyFloor)(X, sizes, batch, X.dtype)
        floor.run(1)
        floor.check()
        return lambda: floor.run(epochs)
    if system == "jax":
        import _jaxjobs as jj

        train = jj.jax_trainer(epochs, n // batch, lr, SLOPE)
        from _jaxjobs import fastmlp_params

        args = (jj.jax_params_from(fastmlp_params(fastmlp_net(job))), jj.jax.device_put(X), jj.jax.device_put(y))
        return lambda: jj.block(train(*args))
    if system == "torch":
        import torch
        from conftest import torch_fit

        torch.set_num_threads(2 if job.startswith("medium") else 1)
        return lambda: torch_fit(torch, X, y, sizes, batch, epochs, lr)
    if system == "numba":
        import _jaxjobs as jj

        W1, b1, W2, b2 = jj.fastmlp_params(fastmlp_net(job))
        args = (X, y, W1, b1, W2.reshape(-1, 1), b2, epochs, lr, SLOPE)
        return lambda: jj.numba_xor(*args)
    raise ValueError(f"no system {system!r} for job {job!r}")


def digits_run(system, epochs):
    """A digits fit of `system` (fastmlp or sklearn), `epochs` epochs."""
    import warnings

    from _common import scaled_split
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = scaled_split(X, y, 0)
    kw = dict(random_state=0, max_iter=epochs, tol=0.0)
    if system == "sklearn":
        from sklearn.neural_network import MLPClassifier

        est = MLPClassifier(**kw)
    else:
        import fastmlp

        est = fastmlp.MLPClassifier(backend="cython", **kw)
    return lambda: est.fit(X_train, y_train)


def digits_epochs():
    """The epochs scikit-learn's MLPClassifier runs on digits at its defaults, seed 0."""
    import warnings

    from _common import scaled_split
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = scaled_split(X, y, 0)
    return int(MLPClassifier(random_state=0).fit(X_train, y_train).n_iter_)


def matmul_rate(dtype, calls=5):
    """FLOP/s of the best of `calls` np.matmul calls on 2048^3 (after one untimed)."""
    import numpy as np

    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal((2048, 2048)).astype(dtype) for _ in range(2))
    C = np.empty_like(A)
    np.matmul(A, B, out=C)
    best = min(timed(lambda: np.matmul(A, B, out=C)) for _ in range(calls))
    return 2 * 2048 ** 3 / best


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def blas_info():
    """What the header says about the BLAS, from a child's view (its environment)."""
    import scipy.linalg  # noqa: F401  SciPy's OpenBLAS, which fastmlp's products call
    import threadpoolctl
    from _common import describe_pool

    import fastmlp
    import fastmlp._core  # noqa: F401

    lines = [f"fastmlp {fastmlp.__version__} from {os.path.dirname(fastmlp.__file__)}"]
    lines += ["threadpoolctl: " + describe_pool(p) for p in threadpoolctl.threadpool_info()]
    try:
        from fastmlp import _blas

        lines.append(f"fastmlp's compiled products call: {_blas.describe()}")
    except ImportError:
        pass
    return lines


def child(argv):
    """``--child WHAT JOB CALLS [EPOCHS]``: print one JSON result."""
    what, job, calls = argv[0], argv[1], int(argv[2])
    if what not in ("jax", "numba"):  # keep the other systems' processes free of them
        sys.modules.setdefault("jax", None)
        sys.modules.setdefault("numba", None)
    if what == "info":
        print(json.dumps({"lines": blas_info()}))
        return
    if what == "limit":
        print(json.dumps({"rate": matmul_rate(job)}))
        return
    if what == "digits-epochs":
        print(json.dumps({"epochs": digits_epochs()}))
        return
    before = None
    if job == "digits":
        run = digits_run("sklearn" if what == "sklearn" else "fastmlp", int(argv[3]))
    else:
        X, y = job_data(job)
        run = system_run(what.replace("-after-torch", ""), job, X, y)
        if what.endswith("-after-torch"):
            before = torch_epoch(job, X, y, 2)
    print(json.dumps({"seconds": median_of_calls(run, calls, before)}))


# ---------------------------------------------------------------- the parent


def child_env():
    """The children's environment: OpenBLAS free to pick its kernel, fastmlp's products on
    SciPy's OpenBLAS, and this process's fastmlp first on the path."""
    import fastmlp

    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["FASTMLP_BLAS"] = "scipy"
    src = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([src, HERE] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_child(env, what, job, calls, *extra):
    out = subprocess.run([sys.executable, os.path.join(HERE, "speed.py"), "--child", what, job, str(calls),
                          *map(str, extra)], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child {what} {job} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


SPIN = """
import os
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {0})
while True:
    pass
"""


class Spinner:
    """Another process spinning on core 0 (where affinity can be set) while the block runs."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", SPIN])
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        return False


def installed(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_line():
    """lscpu's model name and whether the CPU has AVX2 / AVX-512F."""
    model, flags = None, set()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "Flags":
                flags = set(value.split())
    except OSError:
        pass
    if model is None:
        from _common import cpu_model

        model = cpu_model()
    have = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in ("avx2", "avx512f"))
    return f"cpu: {model} ({os.cpu_count()} cores); {have}"


def print_header(env, systems):
    print(f"# {COMMAND}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(cpu_line())
    versions = [f"{p} {installed(p)}" for p in ("numpy", "scipy", "scikit-learn", "jax", "jaxlib", "torch", "numba")]
    print(", ".join(versions))
    for line in run_child(env, "info", "-", 0)["lines"]:
        print(line)
    print("children: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (they slow current OpenBLAS), FASTMLP_BLAS=scipy"
          + (f" (this shell had {', '.join(k for k in ('OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE') if k in os.environ)}"
             " set)" if any(k in os.environ for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")) else ""))
    skipped = sorted({s for s in systems if s in OPTIONAL and installed(OPTIONAL[s]) is None})
    if skipped:
        print(f"not installed, rows skipped: {', '.join(skipped)}")
    from _common import cpu_busy_line

    busy = cpu_busy_line()
    if busy:
        print(busy)


def plan(jobs, busy):
    """[(job, system)] for one round: every available system of every job, and with `busy`
    the fastmlp busy and after-torch rows."""
    rows = []
    for job in jobs:
        for system in SYSTEMS[job]:
            if system in OPTIONAL and installed(OPTIONAL[system]) is None:
                continue
            rows.append((job, system))
        if busy:
            rows.append((job, "fastmlp-busy"))
            if job != "xor" and job != "digits" and installed("torch"):
                rows.append((job, "fastmlp-after-torch"))
    return rows


def measure(env, jobs, rounds, quick, busy):
    """{(job, system): [seconds per round]} and {dtype: [FLOP/s per round]}."""
    rows = plan(jobs, busy)
    times = {row: [] for row in rows}
    dtypes = sorted({JOBS[j][5] for j in jobs if job_flops(j)})
    rates = {d: [] for d in dtypes}
    epochs = run_child(env, "digits-epochs", "digits", 0)["epochs"] if "digits" in jobs else None
    for r in range(rounds):
        for dtype in dtypes:
            rates[dtype].append(run_child(env, "limit", dtype, 0)["rate"])
        for job, system in rows if r % 2 == 0 else rows[::-1]:
            calls = 1 if quick else CALLS[job]
            extra = (epochs,) if job == "digits" else ()
            if system == "fastmlp-busy":
                with Spinner():
                    result = run_child(env, "fastmlp", job, calls, *extra)
            else:
                result = run_child(env, system, job, calls, *extra)
            times[job, system].append(result["seconds"])
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    return times, rates, epochs


def ratios(job, med, limit):
    """The issue's ratios for one job (those whose rows ran)."""
    out = {}
    f = med.get("fastmlp")
    pairs = [("JAX/fastmlp", med.get("jax"), f), ("fastmlp/limit", f, limit), ("fastmlp/floor", f, med.get("floor")),
             ("numba/fastmlp", med.get("numba"), f), ("sklearn/fastmlp", med.get("sklearn"), f)]
    for name, a, b in pairs:
        if a is not None and b:
            out[name] = a / b
    return out


def fmt_ms(seconds):
    """Milliseconds with three significant digits, never in exponent form."""
    ms = seconds * 1e3
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}" if ms >= 1 else f"{ms:.3f}"


def report(jobs, times, rates, epochs, busy):
    med = {row: statistics.median(v) for row, v in times.items()}
    rate = {d: statistics.median(v) for d, v in rates.items()}
    print("\nchip limit: np.matmul on 2048^3, best of 5 per process, median over the rounds: "
          + ", ".join(f"{d} {r / 1e9:.0f} GFLOP/s" for d, r in rate.items()))
    if epochs is not None:
        print(f"digits: {epochs} epochs (scikit-learn's n_iter_ at its defaults, seed 0); both max_iter={epochs}, tol=0")
    cols = ["limit", "floor", "floor-numpy", "fastmlp", "jax", "torch", "numba", "sklearn"]
    heads = ["limit", "GEMM floor (SciPy)", "GEMM floor (NumPy)", "fastmlp", "JAX jit", "PyTorch", "numba", "sklearn"]
    ratio_names = ["JAX/fastmlp", "fastmlp/limit", "fastmlp/floor", "numba/fastmlp", "sklearn/fastmlp"]
    print("\nms, medians over the rounds (each the median of a process's calls)\n")
    print("| job | " + " | ".join(heads + ratio_names) + " |")
    print("|---" * (1 + len(heads) + len(ratio_names)) + "|")
    all_ratios = {}
    for job in jobs:
        by_system = {s: med[j, s] for (j, s) in med if j == job}
        flops = job_flops(job)
        limit = flops / rate[JOBS[job][5]] if flops else None
        cells = {**by_system, "limit": limit}
        all_ratios[job] = ratios(job, by_system, limit)
        row = [fmt_ms(cells[c]) if cells.get(c) is not None else "-" for c in cols]
        row += [f"{all_ratios[job][n]:.2f}" if n in all_ratios[job] else "-" for n in ratio_names]
        print(f"| {TITLES[job]} | " + " | ".join(row) + " |")
    print("\ngoals (issue 26):")
    for job, text, name, bound, at_least in GOALS:
        if job in all_ratios and name in all_ratios[job]:
            v = all_ratios[job][name]
            met = v >= bound if at_least else v <= bound
            print(f"  {'met   ' if met else 'MISSED'} {job}: {text}: {v:.2f}")
    if busy:
        print_busy(jobs, med)


def print_busy(jobs, med):
    print(f"\nbusy machine: fastmlp with another process spinning on core 0 (goal busy/quiet <= {BUSY_GOAL}); "
          f"fastmlp right after torch (2 threads) trained an epoch in the same process (goal <= {TORCH_GOAL})\n")
    print("| job | quiet ms | busy ms | busy/quiet | after torch ms | after torch/quiet |")
    print("|---|---|---|---|---|---|")
    for job in jobs:
        quiet = med[job, "fastmlp"]
        b = med.get((job, "fastmlp-busy"))
        t = med.get((job, "fastmlp-after-torch"))
        cells = [fmt_ms(quiet), fmt_ms(b) if b else "-", f"{b / quiet:.2f}" if b else "-",
                 fmt_ms(t) if t else "-", f"{t / quiet:.2f}" if t else "-"]
        print(f"| {TITLES[job]} | " + " | ".join(cells) + " |")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        sys.path.insert(0, HERE)
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, of {', '.join(JOBS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round, one call per process: every row runs")
    parser.add_argument("--busy", action="store_true", help="also time fastmlp beside a spinning process "
                        "and right after torch")
    args = parser.parse_args(argv)
    jobs = args.jobs.split(",")
    unknown = [j for j in jobs if j not in JOBS]
    if unknown:
        parser.error(f"unknown job(s) {unknown}; choose from {list(JOBS)}")
    rounds = 1 if args.quick else args.rounds
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    sys.path.insert(0, HERE)
    env = child_env()
    t0 = time.perf_counter()
    print_header(env, {s for j in jobs for s in SYSTEMS[j]})
    times, rates, epochs = measure(env, jobs, rounds, args.quick, args.busy)
    report(jobs, times, rates, epochs, args.busy)
    print(f"\n{rounds} round(s), total run time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
