"""Robust statistics of an image, a box of it, or its unmasked pixels.

:func:`robust_statistics` returns the numbers of the research document's
statistics panel: sigma-clipped mean, median and standard deviation (the
semantics of `astropy.stats.sigma_clipped_stats`), the biweight location and
scale, the MAD standard deviation, the extremes and the pixel counts.

The numbers equal astropy's functions on the same pixels (to the precision of
the data type), but are computed differently: the valid pixels are sorted
once, after which every median is a lookup, every sigma-clipping iteration is
a pair of binary searches (a clipped set of sorted values is a contiguous
run) plus the sums of the few values it clipped, the median absolute
deviation is a selection in two sorted runs, and the biweight sums and the
sums that start the clipping come from one pass over the sorted values, in
the data's precision (pairwise, in cache-sized pieces) accumulated in float64.
A 4096x4096 float32 frame takes about 0.2 s in one thread, two thirds of it
the sort. Inputs of more than ``_THREADS_FROM`` values are sorted, and their
one pass made, in two threads (numpy releases the GIL in both), with the
same results bit for bit (see `_sort` and `_run_moments`): ~145 ms of wall
time for that frame when the second core is free (~180 ms before; ~30 ms
more CPU time in all, so ~10 ms slower when the other core is busy).

The private helpers that work on rows of sorted values (``_clip_sorted_rows``,
``_median_sorted_rows``, ``_mad_sorted_rows``, ``_RowSums``) are shared with
:mod:`jwst_widgets.processing.background`, which applies the same clipping to
every box of the background mesh at once.
"""

import numbers
import threading

import numpy as np

from jwst_widgets.errors import InputError

__all__ = ["robust_statistics"]

#: Scale factor from the median absolute deviation to the standard deviation
#: of a normal distribution (the constant astropy's ``mad_std`` uses).
MAD_TO_STD = 1.482602218505602

#: Number of elements processed at a time by the chunked loops: large enough
#: that numpy's per-call overhead is small, small enough to stay in the cache.
_CHUNK = 1 << 16

#: Inputs of more values than this are sorted (`_sort`) and summed
#: (`_run_moments`) in two threads. Below it the thread costs more than it
#: saves, and the statistics panel's 800x800 boxes (~6 ms) stay as they were.
_THREADS_FROM = 1 << 20


def _in_two_threads(f, g):
    """Run ``f()`` in a new thread and ``g()`` in this one; return when both
    are done (re-raising an exception of ``f``). Only worth it for numpy
    work that releases the GIL (sorts, ufuncs and sums on large arrays)."""
    failed = []

    def run_f():
        try:
            f()
        except BaseException as exc:      # re-raised in the calling thread
            failed.append(exc)

    thread = threading.Thread(target=run_f)
    thread.start()
    try:
        g()
    finally:
        thread.join()
    if failed:
        raise failed[0]


# ---------------------------------------------------------------------------
# Validation helpers (shared with background.py)
# ---------------------------------------------------------------------------

def _as_image(data, name="data"):
    """Return ``data`` as a 2-D ndarray without copying; check it is numeric."""
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise InputError(
            f"{name} must be a 2-D image; got an array with {arr.ndim} "
            f"dimension(s) and shape {arr.shape}", param=name)
    if arr.dtype.kind not in "fiub":
        raise InputError(
            f"{name} must hold numbers; got dtype {arr.dtype}", param=name)
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape})", param=name)
    return arr


def _as_mask(mask, shape, name="mask"):
    """Return ``mask`` as a bool array of ``shape`` (True = bad), or None."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise InputError(
            f"{name} must have the image's shape {tuple(shape)}; got {m.shape}",
            param=name)
    if m.dtype != bool:
        m = m.astype(bool)
    return m


def _work_dtype(dtype):
    """The native float dtype computations on ``dtype`` data use."""
    if dtype.kind == "f" and dtype.itemsize >= 8:
        return np.dtype(np.float64)
    if dtype.kind == "f":
        return np.dtype(np.float32)
    # integers: float64 holds every value exactly (up to 2**53)
    return np.dtype(np.float64)


def _check_sigma(sigma, name="sigma"):
    if (isinstance(sigma, bool) or not isinstance(sigma, numbers.Real)
            or not np.isfinite(sigma) or sigma <= 0):
        raise InputError(
            f"{name} must be a positive number of standard deviations; "
            f"got {sigma!r}", param=name)
    return float(sigma)


def _check_maxiters(maxiters, name="maxiters"):
    if maxiters is None:
        return None
    if (isinstance(maxiters, bool) or not isinstance(maxiters, numbers.Integral)
            or maxiters < 1):
        raise InputError(
            f"{name} must be a whole number >= 1 (or None: iterate until "
            f"nothing more is clipped); got {maxiters!r}", param=name)
    return int(maxiters)


# ---------------------------------------------------------------------------
# Rows of sorted values
# ---------------------------------------------------------------------------
# Every helper below takes ``x``, a 2-D array whose rows are sorted ascending
# (NaNs, if any, at the end of each row and never inside the ranges used), and
# per-row half-open index ranges ``[lo, hi)``.

def _search_rows(x, rows, lo, hi, value):
    """Per query, the first index in ``[lo, hi)`` of row ``rows`` of ``x``
    whose value is ``>= value``; ``hi`` if there is none.

    ``value`` must already be of ``x``'s dtype (see `_as_threshold`), so the
    comparisons need no conversion. One row: `numpy.searchsorted`. Several:
    a batched bisection (~log2(ncols) steps of a few numpy operations on
    the queries).
    """
    if x.shape[0] == 1:
        found = np.searchsorted(x[0], value, side="left")
        return np.clip(found, lo, hi)
    flat = x.reshape(-1)
    offset = rows * x.shape[1]
    base = lo + offset              # answer lies in [base, base + count]
    count = hi - lo
    while True:
        if not count.any():
            return base - offset
        half = count >> 1
        probe = base + half
        go_right = np.take(flat, probe, mode="clip") < value
        go_right &= count > 0
        base = np.where(go_right, probe + 1, base)
        count = np.where(go_right, count - half - 1, half)


def _as_threshold(value, dtype, *, strict):
    """Turn a float64 bound into a ``dtype`` value ``t`` such that, for any
    ``x`` of ``dtype``, ``x >= t`` is ``x >= value`` (``strict=False``) or
    ``x > value`` (``strict=True``)."""
    value = np.asarray(value, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if strict:
            c = value.astype(dtype)
            c = np.where(c.astype(np.float64) > value,
                         np.nextafter(c, dtype.type(-np.inf)), c)
            return np.nextafter(c, dtype.type(np.inf)).astype(dtype)
        c = value.astype(dtype)
        return np.where(c.astype(np.float64) < value,
                        np.nextafter(c, dtype.type(np.inf)), c).astype(dtype)


def _first_ge(x, lo, hi, value):
    """Per row, first index in ``[lo, hi)`` with ``x >= value`` (float64)."""
    rows = np.arange(x.shape[0])
    return _search_rows(x, rows, lo, hi, _as_threshold(value, x.dtype, strict=False))


def _median_sorted_rows(x, lo, hi):
    """Median of each row's range (float64; NaN for an empty range)."""
    n = hi - lo
    rows = np.arange(x.shape[0])
    last = x.shape[1] - 1
    i1 = np.clip(lo + (n - 1) // 2, 0, last)
    i2 = np.clip(lo + n // 2, 0, last)
    med = np.add(x[rows, i1], x[rows, i2], dtype=np.float64)
    med *= 0.5
    return np.where(n > 0, med, np.nan)


def _mad_sorted_rows(x, lo, hi, center):
    """Median of ``|x - center|`` over each row's range, in float64.

    The deviations form two sorted runs (left of ``center``, read backwards,
    and right of it); the k-th smallest of their union is found by a binary
    search on how many come from the left run, so no deviations are stored.
    Empty ranges give NaN.
    """
    rows = np.arange(x.shape[0])
    last = x.shape[1] - 1
    n = hi - lo
    split = _first_ge(x, lo, hi, center)
    p = split - lo          # left run:  A[j] = center - x[split - 1 - j]
    q = hi - split          # right run: B[j] = x[split + j] - center

    def dev_a(j):
        return center - x[rows, np.clip(split - 1 - j, 0, last)]

    def dev_b(j):
        return x[rows, np.clip(split + j, 0, last)] - center

    k = np.maximum(np.where(n % 2 == 1, (n - 1) // 2, n // 2 - 1), 0)
    left = np.maximum(0, k + 1 - q)
    right = np.minimum(p, k + 1)
    while True:
        active = left < right
        if not active.any():
            break
        a = (left + right) >> 1
        b = k + 1 - a
        need_more_a = (a < p) & (b > 0) & (dev_b(b - 1) > dev_a(a))
        np.copyto(left, a + 1, where=active & need_more_a)
        np.copyto(right, a, where=active & ~need_more_a)
    a = left
    b = k + 1 - a
    kth = np.maximum(np.where(a > 0, dev_a(a - 1), -np.inf),
                     np.where(b > 0, dev_b(b - 1), -np.inf))
    nxt = np.minimum(np.where(a < p, dev_a(a), np.inf),
                     np.where(b < q, dev_b(b), np.inf))
    mad = np.where(n % 2 == 1, kth, 0.5 * (kth + nxt))
    return np.where(n > 0, mad, np.nan)


class _RowSums:
    """Sums of ``d = x - ref`` and ``d**2`` over each row's shrinking range.

    For many rows of moderate length (the boxes of the background mesh).
    The sums over the whole valid part are taken once (in the data's
    precision, accumulated in float64); as clipping shrinks the ranges, the
    sums of the values that left them are subtracted, so an iteration costs
    in proportion to what it clipped, not to the data.
    """

    def __init__(self, x, nvalid, ref):
        nrows, ncols = x.shape
        self.x = x
        ref = np.asarray(ref).astype(x.dtype)     # the reference actually used
        self._ref_used = ref
        self.ref = ref.astype(np.float64)
        d = np.subtract(x, ref[:, None])
        if (nvalid < ncols).any():
            d[np.arange(ncols)[None, :] >= nvalid[:, None]] = 0.0
        self.s1 = d.sum(axis=1, dtype=np.float64)
        # squares in float64: a float32 square overflows from 1.8e19 on
        self.s2 = np.einsum("ij,ij->i", d, d, dtype=np.float64)
        self.lo = np.zeros(nrows, dtype=np.intp)
        self.hi = np.asarray(nvalid, dtype=np.intp).copy()

    def __call__(self, lo, hi):
        left = lo - self.lo
        right = self.hi - hi
        total = int(left.sum() + right.sum())
        if total:
            # flat indices of the removed values, and their rows
            nrows, ncols = self.x.shape
            lengths = np.stack([left, right], axis=1).ravel()
            starts = np.stack([self.lo, hi], axis=1) + (np.arange(nrows) * ncols)[:, None]
            starts = starts.ravel()
            ends = np.cumsum(lengths)
            idx = np.arange(total) + np.repeat(starts - (ends - lengths), lengths)
            row = np.repeat(np.arange(nrows), left + right)
            # exactly the terms that were added (same precision), so that
            # removing a bright outlier leaves no rounding residue behind
            d = np.take(self.x.reshape(-1), idx) - self._ref_used[row]
            self.s1 -= np.bincount(row, weights=d, minlength=nrows)
            d = d.astype(np.float64)
            removed = np.bincount(row, weights=d * d, minlength=nrows)
            self.s2 -= removed
            # When the values that left dwarf those kept (an outlier of 1e30 in
            # a row of ~1), subtraction leaves only rounding: sum those rows anew.
            for r in np.nonzero(self.s2 <= 1e-9 * removed)[0]:
                kept = self.x[r, lo[r]:hi[r]].astype(np.float64) - float(self._ref_used[r])
                self.s1[r], self.s2[r] = kept.sum(), kept @ kept
        self.lo = lo.copy()
        self.hi = hi.copy()
        return self.s1, self.s2


def _chunk_sums(x, ref, start, stop):
    """Sums of ``x - ref`` and its square over ``x[start:stop]`` (1-D)."""
    s1 = 0.0
    s2 = 0.0
    buf = np.empty(min(_CHUNK, max(stop - start, 1)))
    for i in range(start, stop, _CHUNK):
        j = min(i + _CHUNK, stop)
        d = buf[:j - i]
        np.subtract(x[i:j], ref, out=d)
        s1 += d.sum()
        s2 += np.einsum("i,i->", d, d)
    return s1, s2


class _TailSums:
    """Range sums of ``x - ref`` and its square for one long sorted row.

    Clipping only ever shrinks the range, so each call subtracts the sums of
    the values that left it (usually a few percent) from the previous sums,
    computed in cache-sized pieces without storing ``x - ref``. The sums
    over the whole row may be given (``sums``, from `_central_moments`).
    """

    def __init__(self, x, n, ref, sums=None):
        self.x = x
        self.ref = ref
        self._ref = float(ref[0])
        self.lo, self.hi = 0, n
        self.s1, self.s2 = _chunk_sums(x, self._ref, 0, n) if sums is None else sums

    def __call__(self, lo, hi):
        lo, hi = int(lo[0]), int(hi[0])
        if (lo - self.lo) + (self.hi - hi) <= hi - lo:
            a1, a2 = _chunk_sums(self.x, self._ref, self.lo, lo)
            b1, b2 = _chunk_sums(self.x, self._ref, hi, self.hi)
            s1, s2 = self.s1 - a1 - b1, self.s2 - a2 - b2
            if s2 <= 1e-9 * (a2 + b2):
                # the values that left dwarf those kept: subtraction left rounding only
                s1, s2 = _chunk_sums(self.x, self._ref, lo, hi)
        else:
            s1, s2 = _chunk_sums(self.x, self._ref, lo, hi)
        self.lo, self.hi, self.s1, self.s2 = lo, hi, s1, s2
        return np.array([s1]), np.array([s2])


def _mean_std(sums, lo, hi):
    """Mean and population standard deviation of each row's range."""
    n = hi - lo
    s1, s2 = sums(lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = s1 / n
        var = np.maximum(s2 / n - m * m, 0.0)
    return sums.ref + m, np.sqrt(var)


def _clip_sorted_rows(x, lo, hi, sums, *, sigma, maxiters):
    """Sigma clipping (median centre, standard deviation) of sorted rows.

    Same result as astropy's ``SigmaClip(sigma, maxiters, cenfunc='median',
    stdfunc='std')``: each iteration keeps the values within
    ``median +- sigma * std`` of the values kept so far (bounds in float64),
    until nothing changes or ``maxiters`` iterations were made (``None``:
    no limit). ``sums`` gives the range sums (`_RowSums`, `_TailSums`).
    Returns the final ``(lo, hi)``.
    """
    nrows = x.shape[0]
    rows2 = np.tile(np.arange(nrows), 2)
    iteration = 0
    while maxiters is None or iteration < maxiters:
        iteration += 1
        med = _median_sorted_rows(x, lo, hi)
        _, std = _mean_std(sums, lo, hi)
        with np.errstate(invalid="ignore"):
            spread = sigma * std
            # keep lower <= x <= upper: new lo = first x >= lower,
            # new hi = first x > upper
            thresholds = np.concatenate([
                _as_threshold(med - spread, x.dtype, strict=False),
                _as_threshold(med + spread, x.dtype, strict=True)])
        found = _search_rows(x, rows2, np.tile(lo, 2), np.tile(hi, 2),
                             thresholds)
        new_lo = found[:nrows]
        new_hi = np.maximum(found[nrows:], new_lo)
        # empty ranges stay empty (their bounds are NaN)
        empty = hi <= lo
        new_lo[empty] = lo[empty]
        new_hi[empty] = hi[empty]
        changed = (new_lo != lo) | (new_hi != hi)
        lo, hi = new_lo, new_hi
        if not changed.any():
            break
    return lo, hi


def _chunk_moments(x, starts, stop, c, k9):
    """The sums of `_run_moments` (all but ``n``) of each chunk of ``x``
    starting at ``starts`` (and ending at the next chunk or ``stop``), in
    ``x``'s precision: an array of shape ``(len(starts), 6)``."""
    parts = np.empty((len(starts), 6))
    size = min(_CHUNK, max(stop - starts[0], 1)) if len(starts) else 1
    d = np.empty(size, x.dtype)
    q = np.empty(size, x.dtype)
    u = np.empty(size, x.dtype)
    t = np.empty(size, x.dtype)
    for row, i in enumerate(starts):
        m = min(i + _CHUNK, stop) - i
        dd, qq, uu, tt = d[:m], q[:m], u[:m], t[:m]
        np.subtract(x[i:i + m], c, out=dd)
        np.multiply(dd, dd, out=qq)
        np.multiply(qq, k9, out=uu)
        np.multiply(dd, uu, out=tt)
        part = parts[row]
        part[0], part[1], part[2] = dd.sum(), qq.sum(), tt.sum()
        np.multiply(tt, uu, out=tt)
        part[3] = tt.sum()
        np.multiply(uu, uu, out=tt)
        part[4] = tt.sum()
        np.subtract(1.0, uu, out=tt)
        np.multiply(tt, tt, out=tt)
        np.multiply(tt, tt, out=tt)
        np.multiply(tt, qq, out=tt)
        part[5] = tt.sum()
    return parts


def _run_moments(x, start, stop, c, k9):
    """Sums over sorted ``x[start:stop]`` with ``d = x - c``, ``q = d**2``,
    ``u = k9 q``: ``[n, sum d, sum q, sum d u, sum d u**2, sum u**2,
    sum q (1 - u)**4]``.

    Computed in ``x``'s precision in cache-sized chunks (pairwise sums),
    accumulated in float64 in chunk order. A run of more than
    ``_THREADS_FROM`` values has its chunks summed in two threads (each
    half of them), then accumulated in the same order: the same sums bit
    for bit. For the 16.7 M values of a 4096x4096 float32 frame the pass
    takes 55-75 ms in one thread; in two, ~5 ms more CPU time in all, of
    which ~6 ms (Python between the numpy calls) holds the GIL, so ~40 ms
    of wall time when the second core is free.
    """
    sums = np.zeros(7)
    sums[0] = max(stop - start, 0)
    starts = range(start, stop, _CHUNK)
    if stop - start > _THREADS_FROM:
        half = len(starts) // 2
        parts = [None, None]

        def first():
            parts[0] = _chunk_moments(x, starts[:half], stop, c, k9)

        def second():
            parts[1] = _chunk_moments(x, starts[half:], stop, c, k9)

        _in_two_threads(first, second)
        parts = np.concatenate(parts)
    else:
        parts = _chunk_moments(x, starts, stop, c, k9)
    for part in parts:
        sums[1:] += part
    return sums


def _central_moments(x, center, mad):
    """Biweight location and scale of sorted 1-D ``x``, and the sums that
    start its sigma clipping, in one pass.

    The biweight is astropy's ``biweight_location`` (c = 6) and
    ``biweight_scale`` (c = 9, ``modify_sample_size=False``) about the
    median ``center`` with the median absolute deviation ``mad``. Only
    values with ``|x - center| < c * mad`` contribute; in sorted data they
    form a contiguous run. With ``d = x - center`` and ``u = (d / (9
    mad))**2``::

        scale    = sqrt(n9_all * f1) / |f2|,  f1 = sum9 d**2 (1 - u)**4,
                   f2 = sum9 (1 - u)(1 - 5u) = n9 - 6 sum9 u + 5 sum9 u**2
        location = center + sum6 d w / sum6 w,  w = (1 - 2.25 u)**2

    where ``n9_all`` is the number of all values and the sums over the c = 6
    run are the c = 9 run's less its two short end pieces, expanded as
    polynomials in ``u``. The same pass gives ``sum d`` and ``sum d**2``
    over all values (the c = 9 run, plus its tails in float64), which
    `_TailSums` needs for the first clipping iteration.

    Returns ``(location, scale, ref, (sum d, sum d**2))`` with ``d = x -
    ref``.
    """
    n = x.size
    dtype = x.dtype
    # The centre in the data's type: d = x - c is then exact for x near c.
    c = dtype.type(center)
    ref = float(c)
    if mad == 0.0 or not np.isfinite(mad):
        return center, 0.0, ref, _chunk_sums(x, ref, 0, n)
    row = x[None, :]
    rng = (np.array([0]), np.array([0]), np.array([n]))

    def run(k):
        # |x - center| < k * mad: first x > center - k*mad, first x >= center + k*mad
        a = _search_rows(row, *rng, _as_threshold([center - k * mad], dtype, strict=True))
        b = _search_rows(row, *rng, _as_threshold([center + k * mad], dtype, strict=False))
        return int(a[0]), max(int(a[0]), int(b[0]))

    a9, b9 = run(9.0)
    a6, b6 = run(6.0)
    k9 = dtype.type(1.0 / (9.0 * mad) ** 2)
    m9 = _run_moments(x, a9, b9, c, k9)
    m6 = m9 - _run_moments(x, a9, a6, c, k9) - _run_moments(x, b6, b9, c, k9)
    k9 = float(k9)

    n9, _, sum_q, _, _, sum_u2, f1 = m9
    f2 = n9 - 6.0 * k9 * sum_q + 5.0 * sum_u2
    scale = np.sqrt(n * f1 / (f2 * f2)) if f2 != 0 else 0.0

    n6, sum_d, sum_q, sum_du, sum_du2, sum_u2, _ = m6
    r = (9.0 / 6.0) ** 2
    den = n6 - 2.0 * r * k9 * sum_q + r * r * sum_u2
    num = sum_d - 2.0 * r * sum_du + r * r * sum_du2
    location = ref + num / den if den > 0 else center

    low = _chunk_sums(x, ref, 0, a9)
    high = _chunk_sums(x, ref, b9, n)
    sums = (m9[1] + low[0] + high[0], m9[2] + low[1] + high[1])
    return location, scale, ref, sums


# ---------------------------------------------------------------------------
# Public function
# ---------------------------------------------------------------------------

def _resolve_box(box, shape):
    """Clip ``box=(x0, x1, y0, y1)`` to the image; return it as ints."""
    ny, nx = shape
    if box is None:
        return (0, nx, 0, ny)
    try:
        values = tuple(box)
    except TypeError:
        values = ()
    if len(values) != 4:
        raise InputError(
            f"box must be (x0, x1, y0, y1): four pixel bounds, 0-based and "
            f"half-open; got {box!r}", param="box")
    ints = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or (
                not float(v).is_integer()):
            raise InputError(
                f"box must hold whole pixel numbers (x0, x1, y0, y1); "
                f"got {box!r}", param="box")
        ints.append(int(v))
    x0, x1, y0, y1 = ints
    if x1 <= x0 or y1 <= y0:
        raise InputError(
            f"box (x0, x1, y0, y1) must have x0 < x1 and y0 < y1; got {box!r}",
            param="box")
    cx0, cx1 = max(x0, 0), min(x1, nx)
    cy0, cy1 = max(y0, 0), min(y1, ny)
    if cx1 <= cx0 or cy1 <= cy0:
        raise InputError(
            f"box {box!r} (x0, x1, y0, y1) does not overlap the {ny}x{nx} "
            f"image (x from 0 to {nx}, y from 0 to {ny})", param="box")
    return (cx0, cx1, cy0, cy1)


def _sort(values):
    """Sort 1-D ``values`` in place: the same array as ``values.sort()``.

    More than ``_THREADS_FROM`` values: partition at the middle index
    (every value before it <= every value from it on, NaNs last), then sort
    the two halves, each in its own thread; they need no merge. For the
    16.7 M float32 values of a 4096x4096 frame: ~25 ms (partition) + ~60 ms
    (two sorts of 8.4 M at once), ~90 ms of wall time instead of ~120 ms
    for one sort when the second core is free (~20 ms more CPU time in
    all). Measured alternatives, slower: sorting the halves in threads then
    merging them with a stable sort (timsort: ~210 ms) or a
    ``searchsorted`` merge (~900 ms); splitting at a sampled pivot with
    boolean masks (~230 ms).
    """
    n = values.size
    if n <= _THREADS_FROM:
        values.sort()
        return
    k = n // 2
    values.partition(k)
    _in_two_threads(values[:k].sort, values[k:].sort)


def _sorted_valid(data, mask, box):
    """Validate; return (sorted valid values, n_nonfinite, n_masked, box)."""
    arr = _as_image(data)
    m = _as_mask(mask, arr.shape)
    used = _resolve_box(box, arr.shape)
    x0, x1, y0, y1 = used
    sub = arr[y0:y1, x0:x1]
    dtype = _work_dtype(arr.dtype)
    # Sort a copy in which masked pixels are NaN: the sort puts -inf first
    # and +inf, NaN last, so the values to use are the run between them.
    values = np.array(sub, dtype=dtype, order="C").reshape(-1)
    n_masked = 0
    if m is not None:
        masked = m[y0:y1, x0:x1].reshape(-1)
        n_masked = int(np.count_nonzero(masked & np.isfinite(values)))
        np.copyto(values, dtype.type(np.nan), where=masked)
    _sort(values)
    inf = dtype.type(np.inf)          # of the data's type: no converted copy
    start = int(np.searchsorted(values, -inf, side="right"))
    stop = int(np.searchsorted(values, inf, side="left"))
    out = values[start:stop]
    if out.dtype == np.float32 and out.size:
        big = max(abs(float(out[0])), abs(float(out[-1])))
        if big > 1e18 or big < 1e-18:
            # squares and reciprocal squares of such values leave float32's range
            out = out.astype(np.float64)
    return out, values.size - (stop - start) - n_masked, n_masked, used


def _clipped_stats_sorted(values, *, sigma, maxiters, ref=None, sums=None):
    """Sigma-clipped (mean, median, std, n_kept) of sorted 1-D ``values``.

    ``sums``: ``(sum d, sum d**2)`` over all values with ``d = values -
    ref``, when already known (`_central_moments`).
    """
    n = values.size
    if n == 0:
        return np.nan, np.nan, np.nan, 0
    x = values[None, :]
    lo = np.array([0])
    hi = np.array([n])
    if sums is None:
        ref = _median_sorted_rows(x, lo, hi)
        sums = _TailSums(values, n, ref)
    else:
        sums = _TailSums(values, n, np.array([float(ref)]), sums)
    lo, hi = _clip_sorted_rows(x, lo, hi, sums, sigma=sigma, maxiters=maxiters)
    kept = int(hi[0] - lo[0])
    if kept == 0:
        return np.nan, np.nan, np.nan, 0
    mean, std = _mean_std(sums, lo, hi)
    median = _median_sorted_rows(x, lo, hi)
    return float(mean[0]), float(median[0]), float(std[0]), kept


def robust_statistics(data, *, mask=None, box=None, sigma=3.0, maxiters=5):
    """Robust statistics of an image, a box of it, or its unmasked pixels.

    Parameters
    ----------
    data : array_like (2-D)
        The image. Non-finite pixels (NaN, inf) are never used. Big-endian
        and read-only (memory-mapped) arrays are accepted and not copied
        beyond the pixels used.
    mask : array_like of bool, optional
        Same shape as ``data``; True marks pixels to exclude.
    box : tuple of int, optional
        ``(x0, x1, y0, y1)``: 0-based, half-open pixel bounds of the region
        to measure (``data[y0:y1, x0:x1]``). Bounds beyond the image are
        clipped to it; an inverted, empty or fully outside box is an error.
        Default: the whole image.
    sigma : float, optional
        Clipping threshold, in standard deviations, for the sigma-clipped
        mean, median and standard deviation.
    maxiters : int or None, optional
        Maximum number of clipping iterations (None: until nothing more is
        clipped).

    Returns
    -------
    stats : dict
        ``mean``, ``median``, ``std``: sigma-clipped (median centre,
        population standard deviation), as
        `astropy.stats.sigma_clipped_stats`;
        ``biweight_location``, ``biweight_scale``, ``mad_std``: of all used
        pixels (not clipped), as astropy's functions of those names with
        their default tuning constants;
        ``min``, ``max``: of the used pixels;
        ``n_pixels``: pixels used (finite and unmasked, inside the box);
        ``n_nan``: non-finite pixels in the box (masked or not);
        ``n_masked``: finite pixels in the box excluded by ``mask``
        (so ``n_pixels + n_nan + n_masked`` is the box's area);
        ``n_clipped``: used pixels rejected by the sigma clipping;
        ``box``: the ``(x0, x1, y0, y1)`` actually measured.
        Values are Python floats and ints.

    Raises
    ------
    jwst_widgets.errors.InputError
        If ``data`` is not a 2-D numeric array, ``mask`` has another shape,
        ``box`` is malformed, inverted or outside the image, ``sigma`` is not
        positive or ``maxiters`` is not a whole number >= 1 (or None).

    Notes
    -----
    A region without a single usable pixel (all NaN, or all masked) is a
    legitimate answer, not an error: every statistic is NaN and
    ``n_pixels`` is 0, so a statistics panel can say so.

    The valid pixels are sorted once; medians are then lookups, each
    clipping iteration is two binary searches, the median absolute deviation
    is a selection in two sorted runs, and one pass over the sorted values
    gives the biweight and the sums the clipping starts from (pairwise sums
    in the data's precision, accumulated in float64). The results equal
    astropy's to the precision of the data (astropy works in float32 on
    float32 data too).

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.stats import robust_statistics
    >>> rng = np.random.default_rng(0)
    >>> image = rng.normal(10.0, 2.0, (200, 200)).astype(np.float32)
    >>> image[50, 50] = 1e4                       # a cosmic ray
    >>> s = robust_statistics(image, box=(0, 100, 0, 100))
    >>> round(s["median"], 1), round(s["std"], 1), s["n_pixels"]
    (10.0, 2.0, 10000)
    """
    sigma = _check_sigma(sigma)
    maxiters = _check_maxiters(maxiters)
    values, n_nonfinite, n_masked, used = _sorted_valid(data, mask, box)
    n = int(values.size)
    nan = float("nan")
    result = {
        "mean": nan, "median": nan, "std": nan,
        "biweight_location": nan, "biweight_scale": nan, "mad_std": nan,
        "min": nan, "max": nan,
        "n_pixels": n, "n_nan": int(n_nonfinite), "n_masked": int(n_masked),
        "n_clipped": 0, "box": used,
    }
    if n == 0:
        return result
    x = values[None, :]
    lo, hi = np.array([0]), np.array([n])
    center = float(_median_sorted_rows(x, lo, hi)[0])
    mad = float(_mad_sorted_rows(x, lo, hi, np.array([center]))[0])
    location, scale, ref, sums = _central_moments(values, center, mad)
    mean, median, std, kept = _clipped_stats_sorted(
        values, sigma=sigma, maxiters=maxiters, ref=ref, sums=sums)
    result.update(
        mean=mean, median=median, std=std,
        biweight_location=float(location), biweight_scale=float(scale),
        mad_std=float(MAD_TO_STD * mad),
        min=float(values[0]), max=float(values[-1]),
        n_clipped=n - kept,
    )
    return result
