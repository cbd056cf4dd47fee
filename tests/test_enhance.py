"""Intervals, stretches and enhance(): against astropy.visualization on the same
data, against the stretch formulas, and against the truth of equalisation."""

import numpy as np
import pytest
from astropy.visualization import (
    AsinhStretch,
    BaseStretch,
    HistEqStretch,
    LinearStretch,
    LogStretch,
    ManualInterval,
    MinMaxInterval,
    PercentileInterval,
    PowerStretch,
    SqrtStretch,
    ZScaleInterval,
)

from jwst_widgets.errors import InputError
from jwst_widgets.processing.enhance import (
    INTERVALS,
    STRETCHES,
    FastHistEqStretch,
    display_limits,
    enhance,
    make_interval,
    make_stretch,
    sample_values,
)


@pytest.fixture
def field():
    """Sky (100 +- 5) with a few bright stars, NaN holes and an infinity."""
    rng = np.random.default_rng(3)
    data = rng.normal(100.0, 5.0, (200, 240)).astype(np.float32)
    y, x = np.mgrid[:200, :240]
    for cy, cx, peak in [(50, 60, 3000.0), (120, 200, 800.0), (170, 30, 20000.0)]:
        data += (peak * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 8.0)).astype(np.float32)
    data[10:14, 100:110] = np.nan
    data[199, 0] = np.inf
    return data


def valid_of(data, mask=None):
    ok = np.isfinite(data)
    if mask is not None:
        ok &= ~mask
    return data[ok]


# --- make_interval ------------------------------------------------------


@pytest.mark.parametrize("spec, cls", [
    ("zscale", ZScaleInterval), ("ZScale", ZScaleInterval), ("minmax", MinMaxInterval),
    ("percentile", PercentileInterval), ("manual", ManualInterval),
    (99.5, PercentileInterval), (90, PercentileInterval), ((1.0, 5.0), ManualInterval),
    ([1, 5], ManualInterval),
])
def test_make_interval_types(spec, cls):
    assert type(make_interval(spec)) is cls


def test_make_interval_parameters_reach_astropy():
    assert make_interval("zscale", contrast=0.1).contrast == 0.1
    p = make_interval("percentile", percentile=98.0)
    assert (p.lower_percentile, p.upper_percentile) == (1.0, 99.0)
    m = make_interval("manual", vmin=2.0, vmax=3.0)
    assert (m.vmin, m.vmax) == (2.0, 3.0)
    z = ZScaleInterval()
    assert make_interval(z) is z


def test_unknown_interval_lists_the_valid_ones():
    with pytest.raises(InputError, match="'zscale', 'minmax', 'percentile' or 'manual'") as info:
        make_interval("sigma")
    assert info.value.param == "interval"
    assert set(INTERVALS) == {"zscale", "minmax", "percentile", "manual"}


@pytest.mark.parametrize("spec, kwargs, param", [
    ((5.0, 5.0), {}, "interval"),
    ((6.0, 5.0), {}, "interval"),
    ("manual", {"vmin": 3.0, "vmax": 1.0}, "vmin"),
    ((np.nan, 1.0), {}, "interval"),
    (0, {}, "interval"),
    (100.5, {}, "interval"),
    (True, {}, "interval"),
    ("percentile", {"percentile": -1}, "percentile"),
    ("zscale", {"contrast": 0}, "contrast"),
    ("zscale", {"contrast": 1.5}, "contrast"),
])
def test_bad_interval_values(spec, kwargs, param):
    with pytest.raises(InputError) as info:
        make_interval(spec, **kwargs)
    assert info.value.param == param


def test_vmin_not_below_vmax_message():
    with pytest.raises(InputError, match=r"vmin must be below vmax; got vmin=5.0, vmax=5.0"):
        make_interval((5.0, 5.0))


# --- make_stretch -------------------------------------------------------


X = np.array([0.0, 0.01, 0.1, 0.5, 0.9, 1.0])


@pytest.mark.parametrize("name, kwargs, cls, expected", [
    ("linear", {}, LinearStretch, X),
    ("sqrt", {}, SqrtStretch, np.sqrt(X)),
    ("log", {"log_a": 100.0}, LogStretch, np.log(100 * X + 1) / np.log(101)),
    ("asinh", {"asinh_a": 0.05}, AsinhStretch, np.arcsinh(X / 0.05) / np.arcsinh(20)),
    ("power", {"power": 3.0}, PowerStretch, X ** 3),
    ("ASINH", {}, AsinhStretch, np.arcsinh(X / 0.1) / np.arcsinh(10)),
])
def test_stretches_follow_their_formulas_and_invert(name, kwargs, cls, expected):
    s = make_stretch(name, **kwargs)
    assert type(s) is cls
    y = s(X.copy())
    np.testing.assert_allclose(y, expected, atol=1e-12)
    np.testing.assert_allclose(s.inverse(y), X, atol=1e-9)


def test_unknown_stretch_lists_the_valid_ones():
    with pytest.raises(InputError, match="'linear', 'sqrt', 'log', 'asinh', 'power' or "
                                         "'histeq'; got 'gamma'") as info:
        make_stretch("gamma")
    assert info.value.param == "stretch"
    assert len(STRETCHES) == 6


@pytest.mark.parametrize("kwargs, param", [
    ({"stretch": "asinh", "asinh_a": 0}, "asinh_a"),
    ({"stretch": "log", "log_a": -1.0}, "log_a"),
    ({"stretch": "power", "power": np.nan}, "power"),
    ({"stretch": "histeq"}, "data"),
])
def test_bad_stretch_values(kwargs, param):
    with pytest.raises(InputError) as info:
        make_stretch(**kwargs)
    assert info.value.param == param


# --- the fast histogram equalisation ------------------------------------


def test_fast_histeq_is_an_astropy_stretch():
    s = make_stretch("histeq", data=np.random.default_rng(0).random(1000))
    assert isinstance(s, FastHistEqStretch) and isinstance(s, BaseStretch)
    assert isinstance(s.inverse, BaseStretch) and s.inverse.inverse is s


def test_fast_histeq_agrees_with_astropy_to_within_a_bin(field):
    values = ZScaleInterval()(valid_of(field))            # normalised, clipped
    frame = ZScaleInterval()(field)
    ours = FastHistEqStretch(values)(frame.copy())
    ref = HistEqStretch(values)(frame.copy())
    # Allowed: the fraction of the data in the value's bin (plus rounding).
    n_bins = 65536
    bins = np.minimum((values * n_bins).astype(int), n_bins - 1)
    fraction = np.bincount(bins, minlength=n_bins) / values.size
    where = np.minimum((np.nan_to_num(frame) * n_bins).astype(int), n_bins - 1)
    bound = fraction[where] + 2.0 / values.size + 1e-6
    ok = np.isfinite(frame)
    assert np.all(np.abs(ours - ref)[ok] <= bound[ok])
    assert np.isnan(ours[~ok]).all()


def test_fast_histeq_output_is_uniform():
    # Truth: equalising data by their own distribution gives uniform values.
    values = np.random.default_rng(1).lognormal(0.0, 1.5, 200_000)
    out = FastHistEqStretch(values)((values - values.min()) / np.ptp(values))
    quantiles = np.quantile(out, [0.1, 0.25, 0.5, 0.75, 0.9])
    np.testing.assert_allclose(quantiles, [0.1, 0.25, 0.5, 0.75, 0.9], atol=0.005)
    assert np.all(np.diff(out[np.argsort(values)]) >= -1e-12)       # monotonic


def test_fast_histeq_contract():
    s = FastHistEqStretch(np.random.default_rng(2).random(5000))
    v = np.array([-0.5, 0.0, 0.5, 1.0, 2.0, np.nan], np.float32)
    out = np.empty_like(v)
    result = s(v, out=out)
    assert result is out and out.dtype == np.float32
    assert out[0] == 0.0 and out[1] == 0.0 and out[3] == 1.0 and out[4] == 1.0
    assert np.isnan(out[5])
    assert v[0] == -0.5                                    # input untouched
    same = s(v, clip=False)
    np.testing.assert_array_equal(same, out)
    y = np.linspace(0.0, 1.0, 101)
    np.testing.assert_allclose(s(s.inverse(y)), y, atol=2e-4)


def test_fast_histeq_of_constant_data_does_not_fail():
    s = FastHistEqStretch(np.full(100, 3.0))
    out = s(np.array([0.0, 0.5, 1.0]))
    assert np.all((out >= 0) & (out <= 1))


def test_fast_histeq_needs_finite_data():
    with pytest.raises(InputError, match="at least one finite value"):
        FastHistEqStretch(np.array([np.nan, np.inf]))


# --- limits -------------------------------------------------------------


def test_minmax_limits_use_every_valid_pixel(field):
    mask = np.zeros(field.shape, bool)
    mask[165:176, 25:36] = True                   # hides the brightest star
    vmin, vmax = display_limits(field, "minmax", mask=mask, max_samples=100)
    expected = valid_of(field, mask)
    assert (vmin, vmax) == (float(expected.min()), float(expected.max()))
    assert vmax < 5000


def test_zscale_and_percentile_match_astropy_on_small_frames(field):
    valid = valid_of(field)
    assert display_limits(field, "zscale") == pytest.approx(
        ZScaleInterval().get_limits(valid))
    assert display_limits(field, 99.0) == pytest.approx(
        tuple(np.percentile(valid, [0.5, 99.5])))


def test_limits_on_a_subsample_of_a_large_frame_are_deterministic_and_close():
    rng = np.random.default_rng(8)
    data = rng.normal(10.0, 2.0, (1024, 1024)).astype(np.float32)
    data[:, :300] = np.nan                       # an empty mosaic border
    first = display_limits(data, "zscale", max_samples=20_000, seed=1)
    assert display_limits(data, "zscale", max_samples=20_000, seed=1) == first
    # zscale itself fits 1000 samples and clips to their extremes, so its
    # limits scatter by ~10 % whichever pixels it is given; for N(10, 2)
    # they sit near the mean -+ 3 sigma.
    assert 2.0 < first[0] < 6.0 and 14.0 < first[1] < 20.0
    p = display_limits(data, 99.0, max_samples=20_000)
    # The 0.5 % quantile of 20,000 samples scatters by ~0.07 (0.035 sigma).
    assert p == pytest.approx(tuple(np.percentile(valid_of(data), [0.5, 99.5])), abs=0.3)


def test_limits_without_valid_pixels_are_nan():
    empty = np.full((20, 20), np.nan)
    for spec in ("zscale", "minmax", 99.5):
        vmin, vmax = display_limits(empty, spec)
        assert np.isnan(vmin) and np.isnan(vmax)
    assert display_limits(empty, (1.0, 2.0)) == (1.0, 2.0)


def test_sample_values_returns_only_valid_pixels():
    data = np.arange(200 * 300, dtype=np.float64).reshape(200, 300)
    data[:, :250] = np.nan                        # mostly empty
    mask = np.zeros(data.shape, bool)
    mask[:, 290:] = True
    sample = sample_values(data, mask=mask, max_samples=1000, seed=0)
    assert sample.size == 1000
    cols = sample.astype(int) % 300
    assert np.all((cols >= 250) & (cols < 290))
    small = sample_values(data[:3], mask=mask[:3])
    assert small.size == 3 * 40
    with pytest.raises(InputError) as info:
        sample_values(data, mask=mask[:10])
    assert info.value.param == "mask"


# --- enhance ------------------------------------------------------------


def test_enhance_equals_the_formula(field):
    valid = valid_of(field)
    lo, hi = float(valid.min()), float(valid.max())
    out = enhance(field, interval="minmax", stretch="asinh", asinh_a=0.02)
    x = np.clip((field.astype(np.float64) - lo) / (hi - lo), 0, 1)
    expected = np.arcsinh(x / 0.02) / np.arcsinh(1 / 0.02)
    ok = np.isfinite(field)
    np.testing.assert_allclose(out[ok], expected[ok], atol=1e-6)
    assert np.isnan(out[~ok]).all()


@pytest.mark.parametrize("stretch", STRETCHES)
@pytest.mark.parametrize("interval", ["zscale", "minmax", 99.5, (90.0, 400.0)])
def test_enhance_output_contract(field, interval, stretch):
    mask = np.zeros(field.shape, bool)
    mask[100:110, 100:110] = True
    before, mask_before = field.copy(), mask.copy()
    out = enhance(field, interval=interval, stretch=stretch, mask=mask)
    assert out.dtype == np.float32 and out.shape == field.shape
    bad = ~np.isfinite(field) | mask
    np.testing.assert_array_equal(np.isnan(out), bad)
    assert out[~bad].min() >= 0.0 and out[~bad].max() <= 1.0
    np.testing.assert_array_equal(field, before)
    np.testing.assert_array_equal(mask, mask_before)


def test_enhance_matches_astropy_composition(field):
    valid = valid_of(field)
    lo, hi = ZScaleInterval().get_limits(valid)
    ref = (SqrtStretch() + ManualInterval(lo, hi))(np.nan_to_num(field, posinf=0.0))
    out = enhance(field, interval="zscale", stretch="sqrt")
    ok = np.isfinite(field)
    np.testing.assert_allclose(out[ok], ref[ok], atol=1e-6)


def test_masked_pixels_take_no_part_in_the_limits(field):
    mask = np.zeros(field.shape, bool)
    mask[160:181, 20:41] = True
    out = enhance(field, interval="minmax", stretch="linear", mask=mask)
    # The brightest unmasked pixel reaches 1: the masked star did not set vmax.
    assert np.nanmax(out) == 1.0
    assert np.nanmax(out[:150]) == 1.0


def test_enhance_histeq_flattens_the_histogram(field):
    out = enhance(field, interval="minmax", stretch="histeq")
    q = np.nanquantile(out, [0.25, 0.5, 0.75])
    np.testing.assert_allclose(q, [0.25, 0.5, 0.75], atol=0.01)


def test_enhance_float64_and_integers_give_float32():
    data = np.arange(100, dtype=np.int32).reshape(10, 10)
    out = enhance(data, interval="minmax", stretch="linear")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, data / 99.0, atol=1e-6)
    assert enhance(data.astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize("interval, stretch", [("zscale", "asinh"), ((0.0, 1.0), "histeq")])
def test_enhance_all_nan_is_all_nan(interval, stretch):
    out = enhance(np.full((8, 8), np.nan), interval=interval, stretch=stretch)
    assert out.dtype == np.float32 and np.isnan(out).all()


def test_enhance_manual_limits_and_errors(field):
    out = enhance(field, interval="manual", vmin=100.0, vmax=200.0, stretch="linear")
    assert out[50, 60] == 1.0
    with pytest.raises(InputError, match="vmin must be below vmax") as info:
        enhance(field, interval="manual", vmin=200.0, vmax=100.0)
    assert info.value.param == "vmin"
    with pytest.raises(InputError) as info:
        enhance(field, stretch="gamma")
    assert info.value.param == "stretch"
    with pytest.raises(InputError) as info:
        enhance(field[0])
    assert info.value.param == "data"


# --- the full-frame equalisation (enhance's own two-pass path) -----------


def reference_equalisation(data, interval, mask=None):
    """FastHistEqStretch and astropy's HistEqStretch on enhance's normalised values."""
    lo, hi = display_limits(data, interval, mask=mask)
    norm = ManualInterval(lo, hi)(np.asarray(data, dtype=np.float32), clip=True)
    bad = ~np.isfinite(data) if mask is None else (~np.isfinite(data) | mask)
    norm[bad] = np.nan
    good = norm[~bad]
    fast = FastHistEqStretch(good)(norm.copy())
    exact = HistEqStretch(good)(np.nan_to_num(norm))
    # Share of the data in each value's bin (the bins of FastHistEqStretch).
    n_bins = 65536
    low, high = float(good.min()), float(good.max())
    scale = n_bins / (high - low) if high > low else 0.0
    share = np.bincount(np.minimum(((good - low) * scale).astype(int), n_bins - 1),
                        minlength=n_bins) / good.size
    where = np.minimum((np.nan_to_num(norm) * n_bins).astype(int), n_bins - 1)
    return fast, exact, share[where], bad


def striped_frame(dtype=np.float32):
    """600x300 (three blocks of rows in enhance) with stars, NaN and inf in one block."""
    rng = np.random.default_rng(8)
    data = rng.normal(100.0, 5.0, (600, 300))
    y, x = np.mgrid[:600, :300]
    for cy, cx, peak in [(80, 60, 5000.0), (300, 200, 900.0), (520, 40, 30000.0)]:
        data += peak * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 10.0)
    data[250:260, 100:140] = np.nan
    data[255, 10] = np.inf
    data[256, 11] = -np.inf
    return data.astype(dtype)


@pytest.mark.parametrize("interval", ["zscale", "minmax", 99.0, (20.0, 1e5)])
@pytest.mark.parametrize("with_mask", [False, True])
def test_enhance_histeq_equals_fast_histeq(interval, with_mask):
    data = striped_frame()
    mask = None
    if with_mask:
        mask = np.zeros(data.shape, bool)
        mask[500:540, 20:60] = True                     # the brightest star
    before = data.copy()
    out = enhance(data, interval=interval, stretch="histeq", mask=mask)
    np.testing.assert_array_equal(data, before)
    fast, exact, share, bad = reference_equalisation(data, interval, mask)
    np.testing.assert_array_equal(np.isnan(out), bad)
    ok = ~bad
    # enhance tabulates FastHistEqStretch's curve: within half a bin's share.
    assert np.all(np.abs(out - fast)[ok] <= 0.5 * share[ok] + 1e-6)
    # ... and so stays within a bin and a half of astropy's exact equalisation.
    assert np.all(np.abs(out - exact)[ok] <= 1.5 * share[ok] + 2.0 / ok.sum() + 1e-6)
    assert out[ok].min() >= 0.0 and out[ok].max() <= 1.0


def test_enhance_histeq_ends_and_input_types():
    data = striped_frame(np.float64)
    out32 = enhance(data.astype(np.float32), interval="minmax", stretch="histeq")
    out64 = enhance(data, interval="minmax", stretch="histeq")
    np.testing.assert_allclose(out64, out32, atol=1e-6)
    ok = np.isfinite(data)
    # The faintest pixel is black, the brightest white.
    assert out64[ok].min() == 0.0 and out64[ok].max() == 1.0
    assert out64[np.unravel_index(np.nanargmax(np.where(ok, data, np.nan)), data.shape)] == 1.0
    counts = np.round(np.nan_to_num(data, posinf=0, neginf=0)).astype(np.int64)   # always finite
    out = enhance(counts, interval="minmax", stretch="histeq")
    assert out.dtype == np.float32 and np.isfinite(out).all()
    fast, _, share, _ = reference_equalisation(counts, "minmax")
    assert np.all(np.abs(out - fast) <= 0.5 * share + 1e-6)


def test_enhance_histeq_of_a_constant_frame():
    out = enhance(np.full((300, 300), 7.0), interval=(0.0, 10.0), stretch="histeq")
    assert np.isfinite(out).all() and np.ptp(out) == 0.0
