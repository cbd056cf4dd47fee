"""Noise filters: against truth (white noise, constant frames, steps) and against
scipy / astropy / brute-force references on the same data."""

import numpy as np
import pytest

from jwst_widgets.errors import InputError
from jwst_widgets.processing.filters import (
    KERNEL_SIZE_MAX,
    METHODS,
    SIGMA_MAX,
    reduce_noise,
    robust_noise,
)


@pytest.fixture
def noise():
    """White Gaussian noise, sigma 1, 512 x 512, float32."""
    return np.random.default_rng(42).normal(0.0, 1.0, (512, 512)).astype(np.float32)


@pytest.fixture
def holey():
    """A small frame with NaN holes, an infinity and a masked pixel."""
    rng = np.random.default_rng(7)
    data = rng.normal(50.0, 3.0, (72, 90)).astype(np.float32)
    data[20:26, 30:34] = np.nan
    data[0, 5] = np.nan
    data[40, 70] = np.inf
    data[71, 89] = np.nan
    mask = np.zeros(data.shape, bool)
    mask[60, 10] = True
    mask[5:8, 80:83] = True
    return data, mask


def brute_windows(data, mask, size):
    """Yield (y, x, values of the valid pixels of the clipped window)."""
    valid = np.isfinite(data) & ~mask
    r = size // 2
    ny, nx = data.shape
    for y in range(ny):
        for x in range(nx):
            ys, xs = slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1)
            yield y, x, valid[y, x], data[ys, xs][valid[ys, xs]]


# --- validation ---------------------------------------------------------


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(InputError, match="'gaussian', 'median', 'astropy_gaussian' or "
                                         "'bilateral'; got 'boxcar'") as info:
        reduce_noise(np.zeros((8, 8)), method="boxcar")
    assert info.value.param == "method"


@pytest.mark.parametrize("method", ["median", "bilateral"])
@pytest.mark.parametrize("bad", [0, 2, 4, -3, KERNEL_SIZE_MAX + 2, 3.5, "3", True, np.nan])
def test_kernel_size_must_be_odd_and_in_range(method, bad):
    with pytest.raises(InputError, match="kernel_size must be an odd whole number") as info:
        reduce_noise(np.zeros((16, 16)), method=method, kernel_size=bad)
    assert info.value.param == "kernel_size"
    assert repr(bad) in str(info.value)


def test_kernel_size_accepts_numpy_integers_and_whole_floats():
    data = np.random.default_rng(0).normal(size=(20, 20))
    a = reduce_noise(data, method="median", kernel_size=np.int64(3))
    b = reduce_noise(data, method="median", kernel_size=3.0)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["gaussian", "astropy_gaussian", "bilateral"])
@pytest.mark.parametrize("bad", [-0.5, np.nan, np.inf, SIGMA_MAX + 1, "1", None])
def test_sigma_must_be_in_range(method, bad):
    with pytest.raises(InputError, match=f"sigma must be between 0 and {SIGMA_MAX:g}") as info:
        reduce_noise(np.zeros((16, 16)), method=method, sigma=bad)
    assert info.value.param == "sigma"


@pytest.mark.parametrize("bad", [0, -1.0, np.nan, "3"])
def test_range_sigma_must_be_positive(bad):
    with pytest.raises(InputError, match="range_sigma must be a positive number") as info:
        reduce_noise(np.zeros((16, 16)), method="bilateral", range_sigma=bad)
    assert info.value.param == "range_sigma"


def test_data_must_be_a_2d_numeric_image():
    with pytest.raises(InputError, match=r"2-D image; got an array of shape \(2, 3, 4\)"):
        reduce_noise(np.zeros((2, 3, 4)))
    with pytest.raises(InputError, match="numbers") as info:
        reduce_noise(np.array([["a", "b"], ["c", "d"]]))
    assert info.value.param == "data"


def test_mask_must_match_the_data():
    with pytest.raises(InputError, match=r"mask must have the shape of the data \(8, 8\)") as info:
        reduce_noise(np.zeros((8, 8)), mask=np.zeros((8, 9), bool))
    assert info.value.param == "mask"


# --- properties shared by every method ----------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_inputs_are_not_modified(method, holey):
    data, mask = holey
    data_before, mask_before = data.copy(), mask.copy()
    reduce_noise(data, method=method, kernel_size=5, sigma=1.5, mask=mask)
    np.testing.assert_array_equal(data, data_before)
    np.testing.assert_array_equal(mask, mask_before)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, ">f4"])
def test_output_is_float32_of_the_same_shape(method, dtype):
    data = (np.random.default_rng(1).normal(100, 5, (40, 50))).astype(dtype)
    out = reduce_noise(data, method=method)
    assert out.dtype == np.float32 and out.dtype.isnative
    assert out.shape == data.shape


@pytest.mark.parametrize("method", METHODS)
def test_holes_never_grow_or_shrink(method, holey):
    data, mask = holey
    out = reduce_noise(data, method=method, kernel_size=5, sigma=2.0, mask=mask)
    bad = ~np.isfinite(data) | mask
    np.testing.assert_array_equal(np.isnan(out), bad)


@pytest.mark.parametrize("method", METHODS)
def test_constant_frame_stays_constant_next_to_holes_and_edges(method, holey):
    # Truth: any weighted mean or median of equal values is that value, so
    # neither holes nor the image edge may pull the result.
    data, mask = holey
    const = np.where(np.isfinite(data), np.float32(7.25), data)
    out = reduce_noise(const, method=method, kernel_size=7, sigma=2.5, mask=mask)
    good = ~np.isnan(out)
    np.testing.assert_allclose(out[good], 7.25, rtol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(64, 80), (5, 40)])
def test_clean_constant_frame_stays_constant_up_to_the_edges(method, shape):
    const = np.full(shape, 3.5, np.float32)
    out = reduce_noise(const, method=method, kernel_size=7, sigma=2.5)
    np.testing.assert_allclose(out, 3.5, rtol=1e-6)


@pytest.mark.parametrize("method, options", [
    ("gaussian", {"sigma": 0}),
    ("astropy_gaussian", {"sigma": 0.0}),
    ("bilateral", {"sigma": 0}),
    ("median", {"kernel_size": 1}),
    ("bilateral", {"kernel_size": 1}),
])
def test_zero_width_is_the_identity(method, options, holey):
    data, mask = holey
    out = reduce_noise(data, method=method, mask=mask, **options)
    expected = np.where(np.isfinite(data) & ~mask, data, np.nan)
    np.testing.assert_array_equal(out, expected)
    clean = np.random.default_rng(3).normal(size=(30, 30)).astype(np.float32)
    np.testing.assert_array_equal(reduce_noise(clean, method=method, **options), clean)


# --- Gaussian -----------------------------------------------------------


def scipy_kernel_1d(sigma):
    radius = int(4.0 * sigma + 0.5)          # scipy's default truncate=4
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * x ** 2 / sigma ** 2)
    return w / w.sum()


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_gaussian_lowers_white_noise_variance_as_theory_says(noise, sigma):
    # Var(out) = Var(in) * sum of squared kernel weights.
    out = reduce_noise(noise, method="gaussian", sigma=sigma)
    edge = int(4 * sigma + 1)
    measured = out[edge:-edge, edge:-edge].var() / noise.var()
    expected = (scipy_kernel_1d(sigma) ** 2).sum() ** 2
    assert measured == pytest.approx(expected, rel=0.05)
    # ... close to the continuous limit 1 / (4 pi sigma^2)
    assert expected == pytest.approx(1 / (4 * np.pi * sigma ** 2), rel=0.1)


def test_astropy_gaussian_lowers_white_noise_variance_as_theory_says(noise):
    from astropy.convolution import Gaussian2DKernel

    sigma = 1.5
    out = reduce_noise(noise, method="astropy_gaussian", sigma=sigma)
    kernel = Gaussian2DKernel(x_stddev=sigma).array
    expected = ((kernel / kernel.sum()) ** 2).sum()
    measured = out[10:-10, 10:-10].var() / noise.var()
    assert measured == pytest.approx(expected, rel=0.05)


def test_gaussian_matches_astropy_convolve_on_the_same_data(holey):
    from astropy.convolution import Gaussian2DKernel, convolve

    data, mask = holey
    ours = reduce_noise(data, method="gaussian", sigma=1.0, mask=mask)
    good = np.isfinite(data) & ~mask
    ref = convolve(data, Gaussian2DKernel(x_stddev=1.0), boundary="fill", fill_value=np.nan,
                   nan_treatment="interpolate", preserve_nan=True, mask=~good)
    np.testing.assert_allclose(ours[good], ref[good], rtol=2e-5)
    astro = reduce_noise(data, method="astropy_gaussian", sigma=1.0, mask=mask)
    np.testing.assert_allclose(astro[good], ref[good], rtol=1e-6)


def test_gaussian_is_the_weighted_mean_of_valid_neighbours(holey):
    data, mask = holey
    sigma = 1.3
    out = reduce_noise(data, method="gaussian", sigma=sigma, mask=mask)
    w1 = scipy_kernel_1d(sigma)
    r = w1.size // 2
    weights = np.outer(w1, w1)
    valid = np.isfinite(data) & ~mask
    for y, x in [(19, 31), (26, 29), (22, 35), (0, 0), (0, 6), (71, 88), (41, 70), (8, 81)]:
        acc = norm = 0.0
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                yy, xx = y + dy, x + dx
                if 0 <= yy < data.shape[0] and 0 <= xx < data.shape[1] and valid[yy, xx]:
                    acc += weights[dy + r, dx + r] * data[yy, xx]
                    norm += weights[dy + r, dx + r]
        assert out[y, x] == pytest.approx(acc / norm, rel=1e-5)


def test_gaussian_on_clean_data_matches_scipy_in_the_interior(noise):
    from scipy.ndimage import gaussian_filter

    ours = reduce_noise(noise, method="gaussian", sigma=2.0)
    ref = gaussian_filter(noise, 2.0)
    np.testing.assert_allclose(ours[10:-10, 10:-10], ref[10:-10, 10:-10], atol=1e-6)


# --- median -------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 5, 7, 9])
def test_median_equals_scipy_median_filter_exactly_in_the_interior(size):
    from scipy.ndimage import median_filter

    data = np.random.default_rng(size).normal(size=(61, 83)).astype(np.float32)
    ours = reduce_noise(data, method="median", kernel_size=size)
    ref = median_filter(data, size=size)
    r = size // 2
    np.testing.assert_array_equal(ours[r:-r, r:-r], ref[r:-r, r:-r])


@pytest.mark.parametrize("size", [3, 5])
def test_median_ignores_bad_pixels_and_clips_at_edges(size, holey):
    data, mask = holey
    out = reduce_noise(data, method="median", kernel_size=size, mask=mask)
    for y, x, is_valid, values in brute_windows(data, mask, size):
        if is_valid:
            assert out[y, x] == pytest.approx(np.median(values), abs=1e-5), (y, x)


def test_median_removes_cosmic_rays():
    rng = np.random.default_rng(5)
    data = rng.normal(10.0, 1.0, (128, 128)).astype(np.float32)
    hits = rng.integers(0, 128, (2, 60))
    data[hits[0], hits[1]] = 5000.0
    out = reduce_noise(data, method="median", kernel_size=3)
    assert out.max() < 15.0
    assert abs(np.median(out) - 10.0) < 0.1


def test_median_lowers_white_noise_variance_as_order_statistics_say(noise):
    # The variance of the median of 9 independent N(0, 1) values, by
    # Monte Carlo on independent draws.
    draws = np.random.default_rng(11).normal(size=(400_000, 9))
    expected = np.median(draws, axis=1).var()
    out = reduce_noise(noise, method="median", kernel_size=3)
    assert out[1:-1, 1:-1].var() / noise.var() == pytest.approx(expected, rel=0.05)


# --- bilateral ----------------------------------------------------------


def test_robust_noise_recovers_white_noise_under_gradients_and_steps():
    rng = np.random.default_rng(4)
    truth = np.linspace(0.0, 800.0, 400)[None, :] + np.zeros((300, 1))
    truth[:, 200:] += 1000.0
    data = truth + rng.normal(0.0, 2.5, truth.shape)
    assert robust_noise(data) == pytest.approx(2.5, rel=0.03)
    # ... where the MAD of the pixel values measures the structure instead
    from astropy.stats import mad_std
    assert mad_std(data) > 100


def test_robust_noise_matches_astropy_mad_std_of_valid_differences(holey):
    from astropy.stats import mad_std

    data, mask = holey
    valid = np.isfinite(data) & ~mask
    pair = valid[:, 1:] & valid[:, :-1]
    diffs = (data[:, 1:].astype(float) - data[:, :-1])[pair]
    expected = mad_std(diffs) / np.sqrt(2)
    assert robust_noise(data, mask=mask) == pytest.approx(expected, rel=1e-6)
    assert np.isnan(robust_noise(np.full((4, 4), np.nan)))


def brute_bilateral(data, mask, size, sigma, range_sigma):
    from astropy.stats import mad_std

    valid = np.isfinite(data) & ~mask
    pair = valid[:, 1:] & valid[:, :-1]
    scale = range_sigma * mad_std((data[:, 1:].astype(float) - data[:, :-1])[pair]) / np.sqrt(2)
    out = np.full(data.shape, np.nan)
    r = size // 2
    ny, nx = data.shape
    for y in range(ny):
        for x in range(nx):
            if not valid[y, x]:
                continue
            acc = norm = 0.0
            for yy in range(max(0, y - r), min(ny, y + r + 1)):
                for xx in range(max(0, x - r), min(nx, x + r + 1)):
                    if valid[yy, xx]:
                        w = np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma ** 2)
                                   - (float(data[yy, xx]) - float(data[y, x])) ** 2
                                   / (2 * scale ** 2))
                        acc += w * data[yy, xx]
                        norm += w
            out[y, x] = acc / norm
    return out


def test_bilateral_matches_a_brute_force_reference(holey):
    data, mask = holey
    data, mask = data[12:44, 22:60], mask[12:44, 22:60]
    data = data.copy()
    data[10:, 20:] += 40.0                       # an edge to preserve
    ours = reduce_noise(data, method="bilateral", kernel_size=5, sigma=1.5,
                        range_sigma=2.0, mask=mask)
    ref = brute_bilateral(data, mask, 5, 1.5, 2.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, equal_nan=True)


def test_bilateral_window_derived_from_sigma():
    data = np.random.default_rng(2).normal(size=(24, 24)).astype(np.float32)
    derived = reduce_noise(data, method="bilateral", sigma=1.0, kernel_size=None)
    explicit = reduce_noise(data, method="bilateral", sigma=1.0, kernel_size=5)
    np.testing.assert_array_equal(derived, explicit)


def test_bilateral_keeps_a_step_sharp_and_smooths_flat_regions():
    rng = np.random.default_rng(9)
    truth = np.zeros((128, 128), np.float32)
    truth[:, 64:] = 100.0
    data = truth + rng.normal(0.0, 1.0, truth.shape).astype(np.float32)
    bil = reduce_noise(data, method="bilateral", kernel_size=7, sigma=2.0, range_sigma=3.0)
    gau = reduce_noise(data, method="gaussian", sigma=2.0)
    # Next to the step, the Gaussian mixes both sides; the bilateral does not.
    assert np.abs(gau[:, 63] - truth[:, 63]).mean() > 20
    assert np.abs(bil[:, 62:66] - truth[:, 62:66]).max() < 5
    # In flat parts the noise drops.
    assert bil[:, 5:55].std() < 0.5 * data[:, 5:55].std()


def test_bilateral_of_a_noiseless_frame_is_the_identity():
    data = np.zeros((32, 32), np.float32)
    data[8:16, 8:16] = 3.0
    np.testing.assert_array_equal(reduce_noise(data, method="bilateral", sigma=2.0), data)
