"""What a fit allocates, measured with tracemalloc (NumPy reports its array buffers to it).

(a) A C-contiguous X of the model's dtype is used in place: the peak memory traced during a
    fit stays far below X.nbytes. Two control rows (a Fortran-ordered X and a float32 X for a
    float64 model) must be converted, and their peak shows that copy: proof that the
    measurement sees NumPy allocations at all.
(b) A fit allocates what it needs once (parameters, one work buffer, the row order) and not
    per epoch or per step: the peak and the blocks left allocated after 1, 10 and 100 epochs
    differ only by the per-epoch loss record (8 bytes per epoch in the float64 `losses`
    array during the fit; one Python float, 24 bytes, plus an 8-byte list slot per epoch in
    ``history_["loss"]`` after it).

Run: ``python bench/memory.py``.
"""

import gc
import sys
import tracemalloc

import numpy as np

from _common import fastmlp, fastmlp_line, make_data

N, D = 20000, 100
SIZES = [D, 64, 1]
BACKENDS = [b for b in ("cython", "numpy") if b in fastmlp.available_backends()]


def measure(fn):
    """Run fn() under tracemalloc; returns (peak above the start, bytes left, blocks left)."""
    gc.collect()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    before = tracemalloc.take_snapshot().filter_traces(ignore)
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - start
    gc.collect()
    after = tracemalloc.take_snapshot().filter_traces(ignore)
    diff = after.compare_to(before, "traceback")
    return peak, sum(d.size_diff for d in diff), sum(d.count_diff for d in diff)


def kib(n):
    return f"{n / 1024:,.1f} KiB"


def part_a(X64, y):
    print("(a) X is used in place: peak memory traced during one fit vs the size of X")
    print(f"    network {'-'.join(map(str, SIZES))}, float64 model, X {N}x{D}, "
          f"1 epoch, batch_size='auto' (200), shuffle=True")
    cases = [
        ("C-contiguous float64", X64),
        ("Fortran-ordered float64 (control)", np.asfortranarray(X64)),
        ("C-contiguous float32 (control)", X64.astype(np.float32)),
    ]
    header = f"    {'backend':<7}  {'X given':<34} {'X.nbytes':>13} {'peak in fit':>13} {'peak/X':>7}  copy of X?"
    print(header)
    print("    " + "-" * (len(header) - 4))
    for backend in BACKENDS:
        net = fastmlp.MLP(SIZES, seed=0, dtype="float64", backend=backend)
        net.fit(X64[:1000], y[:1000], epochs=1)  # warm-up: first-call allocations are not the fit's
        for label, X in cases:
            peak, _, _ = measure(lambda: net.fit(X, y, epochs=1))
            converted = N * D * 8  # size of X in the model's dtype
            copied = peak >= converted
            print(f"    {backend:<7}  {label:<34} {kib(X.nbytes):>13} {kib(peak):>13} "
                  f"{peak / X.nbytes:>7.3f}  {'yes' if copied else 'no'}")
            if label.startswith("C-contiguous float64"):
                assert not copied, f"{backend}: a C-contiguous float64 X was copied (peak {peak} B)"
            else:
                assert copied, f"{backend}: the control row shows no copy; is tracemalloc seeing NumPy?"
    print("    (y is passed as a C-contiguous float64 (n, 1) array, so it is not copied either.)")
    print()


def part_b(X, y):
    epochs_list = (1, 10, 100)
    print("(b) nothing is allocated per epoch: peak during the fit, and what the fit leaves allocated")
    print(f"    network {'-'.join(map(str, SIZES))}, float64, X {N}x{D}, batch_size='auto' (200), "
          "shuffle=True; each fit on a fresh model")
    header = (f"    {'backend':<7} {'epochs':>6} {'peak in fit':>12} {'peak - peak(1)':>15} {'expected':>9}"
              f" {'bytes left':>11} {'blocks left':>12} {'vs epochs=1':>12}")
    print(header)
    print("    " + "-" * (len(header) - 4))
    for backend in BACKENDS:
        fastmlp.MLP(SIZES, seed=0, backend=backend).fit(X[:1000], y[:1000], epochs=1)  # warm-up
        base = None
        for epochs in epochs_list:
            net = fastmlp.MLP(SIZES, seed=0, dtype="float64", backend=backend)
            peak, left, blocks = measure(lambda: net.fit(X, y, epochs=epochs))
            assert len(net.history_["loss"]) == epochs and np.isfinite(net.history_["loss"]).all()
            if base is None:
                base = (peak, left, blocks)
            print(f"    {backend:<7} {epochs:>6} {kib(peak):>12} {peak - base[0]:>13} B {8 * (epochs - 1):>7} B"
                  f" {left:>9} B {blocks:>12} {blocks - base[2]:>+12}")
    print("""
    'expected' is 8 bytes per extra epoch: the float64 `losses` array the fit fills (one
    entry per epoch) is the only buffer whose size depends on the number of epochs.
    'bytes left' / 'blocks left' are what is still allocated after the fit, against before it:
    mostly history_["loss"], a list of one Python float per epoch (24 bytes and one block
    each, plus an 8-byte slot in the list), so 10 epochs leave 9 floats more than 1 epoch.
    CPython reuses floats from its free list without a traced allocation, so the block count
    can grow by fewer than one per epoch. The new parameters replace the old ones (same size).
    NumPy-backend steps do allocate temporaries, freed within the step: they show in the
    peak only, which does not grow with the number of epochs either.""")


def main():
    print(fastmlp_line())
    X, y = make_data(N, D, seed=1)  # C-contiguous float64, y (N, 1)
    tracemalloc.start()
    try:
        part_a(X, y)
        part_b(X, y)
    finally:
        tracemalloc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
