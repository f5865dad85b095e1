"""fastmlp's compiled fit against JAX with the whole training loop jitted (issue 12).

For the three jobs of the benchmark suite (XOR, tabular, medium; settings read from
test_bench_*.py), from the same initial weights:

- fastmlp: the compiled backend's ``MLP.fit`` (every fit re-draws the same initial weights
  from the seed; the medium job also has an "epoch only" row, a warm-started fit from those
  weights, as the medium bench times it),
- JAX: one ``jax.jit`` function that runs every epoch and batch, a ``lax.scan`` over epochs
  of a ``lax.scan`` over batches of ``jax.value_and_grad`` SGD steps (bench/_jaxjobs.py),
  the same math (x @ W + b, Leaky ReLU with derivative 1 at 0, mean BCE with logits),
  no shuffling; its first call (trace + compile + one run) is reported on its own, then
  timed calls wait for the result (``block_until_ready``),
- a check that both end at the same parameters and losses,
- other rows: XOR, a hand-written numba loop of the same math (when numba is installed),
  timings right after an idle pause and an ``epochs=1`` fit's cost; tabular and medium,
  the GEMM floor (the run's matrix products alone: ``test_bench_medium.gemm_floor``'s
  definition, through NumPy's matmul, through SciPy's ?gemm and, where the mkl package is
  installed, through MKL's) and, for tabular, fastmlp with BLAS limited to one thread; where
  fastmlp's products run on MKL (fastmlp._blas: the default when mkl is installed), the
  medium tables also time the same fit on SciPy's OpenBLAS.

Rows of a table are timed in interleaved rounds (``_common.interleaved``; in the tabular and
medium tables each row after --settle seconds of idle, so that no other thread pool is still
spinning: see ``settled``), and each table says how much CPU other processes took meanwhile
(``_common.OtherLoad``). Every library keeps its default threads (OpenBLAS and XLA: both
cores here). The goals are issue 12's.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/jax_compare.py [--quick] [--jobs xor,tabular,medium] [--settle 0.2]

JAX missing: its rows are skipped (``pip install jax``); numba missing: its rows too.
"""

import argparse
import statistics
import time

import _jaxjobs as jj
import numpy as np
import test_bench_medium as medium_bench
import test_bench_tabular as tabular_bench
import test_bench_xor as xor_bench
from _common import OtherLoad, fastmlp, interleaved, make_data, print_header, xor_data

COMMAND = "python bench/jax_compare.py"
SLOPE = 0.01   # Leaky ReLU's negative slope, fastmlp's default, which every bench job uses


def ms(seconds):
    return seconds * 1e3


class Job:
    """One job's timings (seconds per call, per row), extra lines and goal checks."""

    def __init__(self, title, short):
        self.title, self.short, self.rows, self.lines, self.goals = title, short, {}, [], []

    def median(self, name):
        return statistics.median(self.rows[name])

    def goal(self, text, value, met):
        self.goals.append((text, value, met))

    def print(self, ref, floor=None):
        print(f"\n=== {self.title}")
        head = f"{'row':46s} {'median ms':>10s} {'best ms':>9s} {'rounds':>6s} {'row/fastmlp':>12s}"
        if floor:
            head += f" {'row/floor':>10s}"
        print(head)
        print("-" * len(head))
        for name, times in self.rows.items():
            med = statistics.median(times)
            line = f"{name:46s} {ms(med):10.3f} {ms(min(times)):9.3f} {len(times):6d} {med / self.median(ref):12.2f}"
            if floor:
                line += f" {med / self.median(floor):10.2f}"
            print(line)
        print(f"    row/fastmlp = the row's median / {ref!r}'s median (> 1: fastmlp is faster)"
              + (f"; row/floor = the row's median / {floor!r}'s median" if floor else ""))
        for line in self.lines:
            print("    " + line)
        for text, value, met in self.goals:
            print(f"    goal: {text}: {value} -> {'met' if met else 'MISSED'}")


def settled(variants, repeats, settle):
    """``interleaved`` with `settle` seconds of sleep (an untimed pseudo-row) before every
    row: on two cores, OpenBLAS's threads keep spinning for a while (about 0.1 s) after a
    call, and a row on another thread pool (SciPy's OpenBLAS, NumPy's, XLA's) that starts
    meanwhile shares the cores with them (a 1-epoch medium fit right after the NumPy
    floor took ~2x as long as after a 0.2 s pause). Settled, every row starts with every
    pool asleep."""
    if not settle:
        return interleaved(variants, repeats)
    spaced = {}
    for i, (name, fn) in enumerate(variants.items()):
        spaced[f"_settle{i}"] = lambda: time.sleep(settle)
        spaced[name] = fn
    return {k: v for k, v in interleaved(spaced, repeats).items() if not k.startswith("_settle")}


def jax_first_call(train, *args):
    """(seconds of the first call: trace + compile + one run, its result)."""
    t0 = time.perf_counter()
    out = jj.block(train(*args))
    return time.perf_counter() - t0, out


def match_line(what, rel, loss_a, loss_b, rtol, params_rtol=None):
    """Whether two runs ended at the same place: the final parameters within `params_rtol`
    (max|a - b| / max|b| per array; default `rtol`) and the last epoch's loss within `rtol`."""
    params_rtol = rtol if params_rtol is None else params_rtol
    rel_loss = abs(loss_a - loss_b) / abs(loss_b)
    ok = rel <= params_rtol and rel_loss <= rtol
    return ok, (f"match {what}: final params max rel diff {rel:.1e} (tolerance {params_rtol:g}), last epoch "
                f"loss {loss_a:.10g} vs {loss_b:.10g} (rel {rel_loss:.1e}, tolerance {rtol:g}): "
                f"{'OK' if ok else 'NO MATCH'}")


def jax_rows(job, train, args, net, epochs, rtol, params_rtol=None):
    """Compile JAX's training, check it against fastmlp's fit (already run on `net`) and
    return the timed callable."""
    first, (params, losses) = jax_first_call(train, *args)
    job.compile_s = first
    ok, line = match_line("JAX vs fastmlp", jj.max_rel_diff(params, jj.fastmlp_params(net)),
                          float(losses[-1]), net.history_["loss"][-1], rtol, params_rtol)
    assert len(losses) == epochs
    job.lines.append(line)
    job.matches = ok
    return lambda: jj.block(train(*args))


def jax_floor_row(job, epochs, n_batches, X, floor):
    """{name: callable}: the GEMM floor's products in a jitted JAX scan (its compile time
    goes to job.lines), on `floor`'s weights."""
    run = jj.jax_gemm_floor(epochs, n_batches)
    args = (jj.jax.device_put(X), jj.jax_params_from(floor.W))
    first, out = jax_first_call(run, *args)
    Xb = X[-floor.batch:].astype(np.float64)
    ref = Xb @ floor.W[0].astype(np.float64)   # the last batch's first product
    np.testing.assert_allclose(out[0], ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    job.lines.append(f"JAX GEMM floor: the same products alone (a linear chain, see _jaxjobs.jax_gemm_floor); "
                     f"first call {ms(first):.0f} ms")
    return {"GEMM floor (JAX jit, same products)": lambda: jj.block(run(*args))}


def compile_line(job, name):
    return (f"JAX compile: first call {ms(job.compile_s):.0f} ms (trace + compile + one run), "
            f"{ms(job.compile_s - job.median(name)):.0f} ms over a timed call")


# ---------------------------------------------------------------- XOR


def xor_job(repeats, pause_rounds, pause):
    X, y = xor_data()
    epochs, lr = xor_bench.EPOCHS, xor_bench.LR
    job = Job(f"XOR: 2-4-1, {epochs} full-batch steps, lr {lr}, float64, seed 42 N(0, 0.1^2) init", "XOR")
    net = fastmlp.MLP([2, 4, 1], activation="leaky_relu", output="sigmoid", loss="bce", init="normal",
                      init_scale=0.1, seed=42, dtype="float64", backend="cython")
    initial = jj.fastmlp_params(net)
    fit = lambda: net.fit(X, y, epochs=epochs, lr=lr)
    fit()
    variants = {"fastmlp cython fit": fit}
    if jj.jax is not None:
        train = jj.jax_trainer(epochs, 1, lr, SLOPE)
        args = (jj.jax_params_from(initial), jj.jax.device_put(X), jj.jax.device_put(y))
        jname = f"JAX {jj.jax.__version__} jit(scan)"
        variants[jname] = jax_rows(job, train, args, net, epochs, 1e-6)
    if jj.numba_xor is not None:
        W1, b1, W2, b2 = initial
        nargs = (X, y, W1, b1, W2.reshape(-1, 1), b2, epochs, lr, SLOPE)
        t0 = time.perf_counter()
        out = jj.numba_xor(*nargs)
        numba_compile = time.perf_counter() - t0
        _, line = match_line("numba vs fastmlp", jj.max_rel_diff(out[:4], jj.fastmlp_params(net)),
                             float(out[4][-1]), net.history_["loss"][-1], 1e-6)
        job.lines.append(line)
        nname = f"numba {jj.numba.__version__} njit loop"
        variants[nname] = lambda: jj.numba_xor(*nargs)
    with OtherLoad() as load:
        job.rows.update(interleaved(variants, repeats))
        # right after an idle pause: fastmlp and numba alternate, each call after `pause` s
        paused = {f"fastmlp cython fit, after {pause:g} s idle": fit}
        if jj.numba_xor is not None:
            paused[f"numba njit loop, after {pause:g} s idle"] = variants[nname]
        for name in paused:
            job.rows[name] = []
        for _ in range(pause_rounds):
            for name, fn in paused.items():
                job.rows[name].append(jj.after_pause(fn, pause))
        # an epochs=1 fit's cost
        one = {"fastmlp cython fit, epochs=1": lambda: net.fit(X, y, epochs=1, lr=lr)}
        if jj.numba_xor is not None:
            nargs1 = nargs[:6] + (1,) + nargs[7:]
            one["numba njit loop, epochs=1"] = lambda: jj.numba_xor(*nargs1)
        job.rows.update(interleaved(one, repeats * 5))
    ref = "fastmlp cython fit"
    if jj.jax is not None:
        job.lines.append(compile_line(job, jname))
    if jj.numba_xor is not None:
        job.lines.append(f"numba compile: first call {ms(numba_compile):.0f} ms")
    t_full, t_one = job.median(ref), job.median("fastmlp cython fit, epochs=1")
    per_epoch = (t_full - t_one) / (epochs - 1)
    job.lines.append(f"fastmlp: {per_epoch * 1e6:.3f} us per epoch ((5000-epoch fit - 1-epoch fit) / 4999); "
                     f"an epochs=1 fit {t_one * 1e6:.1f} us, i.e. ~{(t_one - per_epoch) * 1e6:.1f} us fixed cost")
    job.lines.append(load.line())
    if jj.numba_xor is not None:
        r = job.median(nname) / t_full
        job.goal("fastmlp >= 1.2x faster than the numba loop", f"numba/fastmlp = {r:.2f}x", r >= 1.2)
        pf, pn = paused
        job.lines.append(f"the pause's cost (median after the pause - median warm): fastmlp "
                         f"{ms(job.median(pf) - t_full):.3f} ms, numba {ms(job.median(pn) - job.median(nname)):.3f} ms")
        r = job.median(pn) / job.median(pf)
        job.goal(f"the same right after a {pause:g} s idle pause", f"numba/fastmlp = {r:.2f}x (medians of {pause_rounds})",
                 r >= 1.2)
    job.goal("an epochs=1 fit's fixed cost < 0.1 ms", f"{ms(t_one - per_epoch):.4f} ms", t_one - per_epoch < 1e-4)
    if jj.jax is not None:
        r = job.median(jname) / t_full
        job.lines.append(f"JAX/fastmlp = {r:.2f}x")
    job.print(ref)
    return job


# ---------------------------------------------------------------- tabular


def tabular_job(repeats, settle):
    b = tabular_bench
    X, y = make_data(b.N, b.D, seed=1, dtype=np.float64)
    job = Job(f"tabular: {b.N}x{b.D} float64, {'-'.join(map(str, b.SIZES))}, batch {b.BATCH}, "
              f"{b.EPOCHS} epochs, no shuffle, lr {b.LR}", "tabular")
    net = fastmlp.MLP(b.SIZES, activation="leaky_relu", output="sigmoid", loss="bce", seed=0,
                      dtype="float64", backend="cython")
    initial = jj.fastmlp_params(net)
    kwargs = {"epochs": b.EPOCHS, "lr": b.LR, "batch_size": b.BATCH, "shuffle": False}
    fit = lambda: net.fit(X, y, **kwargs)

    import threadpoolctl  # a controller found once: its limit() costs ~10 us, blas_threads(1) ~0.5 ms

    blas = threadpoolctl.ThreadpoolController()

    def fit_1_thread():
        with blas.limit(limits=1, user_api="blas"):
            net.fit(X, y, **kwargs)

    fit()
    ref = "fastmlp cython fit"
    variants = {ref: fit, "fastmlp cython fit, BLAS 1 thread": fit_1_thread}
    if jj.jax is not None:
        train = jj.jax_trainer(b.EPOCHS, b.N // b.BATCH, b.LR, SLOPE)
        args = (jj.jax_params_from(initial), jj.jax.device_put(X), jj.jax.device_put(y))
        jname = f"JAX {jj.jax.__version__} jit(scan)"
        variants[jname] = jax_rows(job, train, args, net, b.EPOCHS, 1e-6)
    np_floor = jj.NumpyFloor(X, b.SIZES, b.BATCH, np.float64)
    sp_floor = jj.ScipyFloor(X, b.SIZES, b.BATCH, np.float64)
    floor = "GEMM floor (np.matmul, out=)"
    variants[floor] = lambda: np_floor.run(b.EPOCHS)
    variants["GEMM floor (scipy.linalg.blas.dgemm)"] = lambda: sp_floor.run(b.EPOCHS)
    if jj.jax is not None:
        variants.update(jax_floor_row(job, b.EPOCHS, b.N // b.BATCH, X, np_floor))
    with OtherLoad() as load:
        job.rows.update(settled(variants, repeats, settle))
    np_floor.check()
    job.lines.append(f"every row timed after {settle:g} s idle (the other thread pools asleep; see settled())")
    if jj.jax is not None:
        job.lines.append(compile_line(job, jname))
        r = job.median(jname) / job.median(ref)
        job.goal("fastmlp >= 1.5x faster than JAX", f"JAX/fastmlp = {r:.2f}x", r >= 1.5)
    n_steps = b.EPOCHS * (b.N // b.BATCH)
    job.lines.append(f"{n_steps} SGD steps: fastmlp {job.median(ref) / n_steps * 1e6:.1f} us per step"
                     + (f", JAX {job.median(jname) / n_steps * 1e6:.1f} us" if jj.jax is not None else "")
                     + f", the floor's 8 products {job.median(floor) / n_steps * 1e6:.1f} us")
    job.lines.append(load.line())
    job.print(ref, floor)
    return job


# ---------------------------------------------------------------- medium


def medium_job(dtype, epochs, repeats, data_cache, settle):
    b = medium_bench
    if dtype not in data_cache:
        data_cache[dtype] = make_data(b.N, b.D, seed=2, dtype=np.dtype(dtype))
    X, y = data_cache[dtype]
    job = Job(f"medium: {b.N}x{b.D} {dtype}, {'-'.join(map(str, b.SIZES))}, batch {b.BATCH}, "
              f"{epochs} epoch{'s' if epochs > 1 else ''} in one fit, no shuffle, lr {b.LR}",
              f"medium {dtype} {epochs} epoch{'s' if epochs > 1 else ''}")
    net = fastmlp.MLP(b.SIZES, activation="leaky_relu", output="sigmoid", loss="bce", seed=0,
                      dtype=dtype, backend="cython")
    initial, flat = jj.fastmlp_params(net), net.params_.copy()
    kwargs = {"epochs": epochs, "lr": b.LR, "batch_size": b.BATCH, "shuffle": False}
    fit = lambda: net.fit(X, y, **kwargs)
    warm = fastmlp.MLP(b.SIZES, activation="leaky_relu", output="sigmoid", loss="bce", seed=0,
                       dtype=dtype, backend="cython")

    def fit_warm():  # the epochs alone, from the same initial weights (resetting: ~0.1 ms)
        warm.params_[...] = flat
        warm.fit(X, y, warm_start=True, **kwargs)

    fit()
    ref = f"fastmlp cython fit ({fastmlp.get_blas()})"
    variants = {ref: fit, "fastmlp cython warm-started fit (epochs only)": fit_warm}
    if fastmlp.get_blas() == "mkl":     # the same fit on SciPy's OpenBLAS, for comparison
        def fit_openblas():
            fastmlp.set_blas("scipy")
            try:
                net.fit(X, y, **kwargs)
            finally:
                fastmlp.set_blas("mkl")

        fit_openblas()
        variants["fastmlp cython fit (scipy: OpenBLAS)"] = fit_openblas
    if jj.jax is not None:
        train = jj.jax_trainer(epochs, b.N // b.BATCH, b.LR, SLOPE)
        args = (jj.jax_params_from(initial), jj.jax.device_put(X), jj.jax.device_put(y))
        jname = f"JAX {jj.jax.__version__} jit(scan)"
        # float32: 640 steps of differently ordered sums drift the weights apart by ~1e-3
        rtol, params_rtol = (1e-3, 1e-2) if dtype == "float32" else (1e-6, 1e-6)
        variants[jname] = jax_rows(job, train, args, net, epochs, rtol, params_rtol)
    buffers = b.gemm_buffers(dtype)
    sp_floor = jj.ScipyFloor(X, b.SIZES, b.BATCH, np.dtype(dtype))
    floor = "GEMM floor (np.matmul, out=)"

    def np_floor():
        for _ in range(epochs):
            b.gemm_floor(X, buffers)

    variants[floor] = np_floor
    gemm = "sgemm" if dtype == "float32" else "dgemm"
    variants[f"GEMM floor (scipy.linalg.blas.{gemm})"] = lambda: sp_floor.run(epochs)
    if jj.MklFloor.available():
        mkl_floor = jj.MklFloor(X, b.SIZES, b.BATCH, np.dtype(dtype))
        mkl_floor.run(1)
        mkl_floor.check()
        variants[f"GEMM floor (MKL {gemm}_, ctypes)"] = lambda: mkl_floor.run(epochs)
    if jj.jax is not None:
        variants.update(jax_floor_row(job, epochs, b.N // b.BATCH, X, sp_floor))
    with OtherLoad() as load:
        job.rows.update(settled(variants, repeats, settle))
    job.lines.append(f"GEMM floor = test_bench_medium.gemm_floor (8 products per batch) x {epochs}; every "
                     f"row timed after {settle:g} s idle (the other thread pools asleep; see settled())")
    if jj.jax is not None:
        job.lines.append(compile_line(job, jname))
    job.lines.append(load.line())
    f_ratio = job.median(ref) / job.median(floor)
    mkl_row = f"GEMM floor (MKL {gemm}_, ctypes)"
    if mkl_row in job.rows:
        job.lines.append(f"fastmlp / the MKL floor (the same products on MKL alone) = "
                         f"{job.median(ref) / job.median(mkl_row):.2f}x; the goals' floor is OpenBLAS's")
    if dtype == "float32" and epochs > 1:
        job.goal("fastmlp <= 0.95x the GEMM floor", f"{f_ratio:.2f}x", f_ratio <= 0.95)
    elif dtype == "float32":
        job.goal("a single-epoch fit <= 1.0x the GEMM floor", f"{f_ratio:.2f}x", f_ratio <= 1.0)
    else:
        job.goal("fastmlp at or under the GEMM floor", f"{f_ratio:.2f}x", f_ratio <= 1.0)
    if jj.jax is not None:
        r = job.median(jname) / job.median(ref)
        if dtype == "float32" and epochs > 1:
            job.goal("fastmlp >= 1.1x faster than JAX", f"JAX/fastmlp = {r:.2f}x", r >= 1.1)
        elif dtype == "float64":
            job.goal("fastmlp ahead of JAX", f"JAX/fastmlp = {r:.2f}x", r > 1.0)
        else:
            job.lines.append(f"JAX/fastmlp = {r:.2f}x (no goal)")
    job.print(ref, floor)
    return job


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a check that every row runs")
    parser.add_argument("--jobs", default="xor,tabular,medium")
    parser.add_argument("--settle", type=float, default=0.2,
                        help="seconds of idle before each timed row of the tabular and medium tables")
    opts = parser.parse_args()
    jobs = opts.jobs.split(",")
    q = opts.quick
    extra = [f"jax {jj.jax.__version__}, devices {jj.jax.devices()}, x64 enabled" if jj.jax is not None
             else "jax not installed: the JAX rows are skipped",
             f"numba {jj.numba.__version__}" if jj.numba is not None
             else "numba not installed: the numba rows are skipped"]
    print_header(COMMAND, extra)
    t0 = time.perf_counter()
    results = []
    if "xor" in jobs:
        results.append(xor_job(repeats=20 if q else 200, pause_rounds=2 if q else 9, pause=1.0))
    if "tabular" in jobs:
        results.append(tabular_job(repeats=3 if q else 21, settle=opts.settle))
    if "medium" in jobs:
        cache = {}
        for dtype in ("float32", "float64"):
            for epochs in (10, 1):
                repeats = (2 if q else 7) if epochs > 1 else (3 if q else 15)
                results.append(medium_job(dtype, epochs, repeats, cache, opts.settle))
    print("\n=== summary of the goals")
    for job in results:
        for text, value, met in job.goals:
            print(f"{'met   ' if met else 'MISSED'} {job.short}: {text}: {value}")
        if getattr(job, "matches", True) is False:
            print(f"NO MATCH {job.short}: JAX did not reach fastmlp's final params/loss")
    print(f"\ntotal run time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
