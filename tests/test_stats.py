"""Tests of jwst_widgets.processing.stats.robust_statistics.

Every number is checked against astropy's own functions on the same pixels.
"""

import warnings

import numpy as np
import pytest
from astropy.stats import (biweight_location, biweight_scale, mad_std,
                           sigma_clip, sigma_clipped_stats)
from astropy.utils.exceptions import AstropyUserWarning

from jwst_widgets.errors import InputError
from jwst_widgets.processing.stats import robust_statistics

KEYS = {"mean", "median", "std", "biweight_location", "biweight_scale",
        "mad_std", "min", "max", "n_pixels", "n_nan", "n_masked", "n_clipped",
        "box"}


def astropy_statistics(values, *, sigma=3.0, maxiters=5):
    """The reference: astropy on the 1-D array of used pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        mean, median, std = sigma_clipped_stats(values, sigma=sigma,
                                                maxiters=maxiters)
        clipped = sigma_clip(values, sigma=sigma, maxiters=maxiters)
    return {
        "mean": mean, "median": median, "std": std,
        "biweight_location": biweight_location(values),
        "biweight_scale": biweight_scale(values),
        "mad_std": mad_std(values),
        "min": values.min(), "max": values.max(),
        "n_clipped": int(np.count_nonzero(clipped.mask)),
    }


def assert_equal_to_astropy(stats, values, *, sigma=3.0, maxiters=5):
    ref = astropy_statistics(values, sigma=sigma, maxiters=maxiters)
    if values.dtype == np.float32:
        # astropy works in float32 for float32 data (and rounds its medians
        # to float32); equal to within a few units in the last place of the
        # data.
        atol = 8 * float(np.spacing(np.float32(np.abs(values).max())))
        rtol = 1e-6
    else:
        atol, rtol = 0.0, 1e-12
    for key in ("mean", "median", "std", "biweight_location",
                "biweight_scale", "mad_std", "min", "max"):
        assert stats[key] == pytest.approx(float(ref[key]), rel=rtol, abs=atol), key
        assert isinstance(stats[key], float)
    assert stats["n_pixels"] == values.size
    assert stats["n_clipped"] == ref["n_clipped"]


def field(shape, seed, dtype=np.float64):
    """Gaussian noise with hot pixels and bright blobs (skewed), NaNs."""
    rng = np.random.default_rng(seed)
    data = rng.normal(50.0, 4.0, shape)
    hot = rng.random(shape) < 0.01
    data[hot] += rng.exponential(100.0, hot.sum())
    data[rng.random(shape) < 0.003] = np.nan
    return data.astype(dtype)


@pytest.fixture(scope="module")
def image():
    return field((300, 257), seed=1)


# ---------------------------------------------------------------------------
# Equal to astropy
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sigma, maxiters", [(3.0, 5), (2.5, 1), (2.0, None),
                                             (4.0, 10)])
def test_equal_to_astropy(image, dtype, sigma, maxiters):
    data = image.astype(dtype)
    stats = robust_statistics(data, sigma=sigma, maxiters=maxiters)
    assert set(stats) == KEYS
    values = data[np.isfinite(data)]
    ref_iters = np.inf if maxiters is None else maxiters
    assert_equal_to_astropy(stats, values, sigma=sigma, maxiters=ref_iters)


@pytest.mark.parametrize("seed, make", [
    (2, lambda rng: rng.lognormal(0.0, 1.0, (64, 99))),              # skewed
    (3, lambda rng: rng.standard_cauchy((80, 80))),                  # heavy tails
    (4, lambda rng: rng.integers(0, 20, (50, 51)).astype(float)),    # many ties
    (5, lambda rng: rng.normal(1e4, 1e-2, (40, 41))),                # big pedestal
    (6, lambda rng: rng.normal(0.0, 1.0, (1, 2))),                   # two pixels
    (7, lambda rng: rng.normal(0.0, 1.0, (3, 3))),                   # odd count
])
def test_equal_to_astropy_on_awkward_data(seed, make):
    data = make(np.random.default_rng(seed))
    stats = robust_statistics(data)
    assert_equal_to_astropy(stats, data.ravel())


def test_integer_data():
    data = np.random.default_rng(9).integers(-500, 500, (60, 70)).astype(np.int32)
    stats = robust_statistics(data)
    assert_equal_to_astropy(stats, data.ravel().astype(np.float64))


def test_sigma_clipping_rejects_outliers():
    rng = np.random.default_rng(10)
    data = rng.normal(10.0, 2.0, (200, 200))
    data[::10, ::10] = 1e5                      # 400 cosmic rays
    stats = robust_statistics(data)
    assert stats["median"] == pytest.approx(10.0, abs=0.05)
    assert stats["std"] == pytest.approx(2.0, rel=0.03)
    assert stats["mean"] == pytest.approx(10.0, abs=0.05)
    assert stats["n_clipped"] >= 400
    assert stats["max"] == 1e5
    # without clipping the mean would be far off: the test can fail
    assert np.mean(data) > 100


# ---------------------------------------------------------------------------
# Box, mask and counts
# ---------------------------------------------------------------------------

def test_box_is_half_open_x_then_y(image):
    stats = robust_statistics(image, box=(10, 60, 100, 130))
    sub = image[100:130, 10:60]
    assert stats["box"] == (10, 60, 100, 130)
    assert stats["n_pixels"] + stats["n_nan"] == 30 * 50
    assert_equal_to_astropy(stats, sub[np.isfinite(sub)])


def test_box_is_clipped_to_the_image(image):
    ny, nx = image.shape
    stats = robust_statistics(image, box=(-20, 40, 250, 10_000))
    assert stats["box"] == (0, 40, 250, ny)
    sub = image[250:, :40]
    assert_equal_to_astropy(stats, sub[np.isfinite(sub)])
    whole = robust_statistics(image)
    assert whole["box"] == (0, nx, 0, ny)
    assert robust_statistics(image, box=(0, nx, 0, ny)) == whole
    assert robust_statistics(image, box=np.array([0, nx, 0, ny])) == whole


@pytest.mark.parametrize("box", [
    (10, 10, 0, 5),          # empty
    (20, 10, 0, 5),          # inverted x
    (0, 5, 9, 3),            # inverted y
    (500, 600, 0, 10),       # outside the image
    (0, 10, -30, -5),        # outside the image
    (0, 10, 0),              # three numbers
    (0, 10.5, 0, 5),         # not whole pixels
    "0,10,0,5",
    5,
])
def test_bad_box(image, box):
    with pytest.raises(InputError, match="box") as info:
        robust_statistics(image, box=box)
    assert info.value.param == "box"


def test_mask_excludes_pixels(image):
    rng = np.random.default_rng(12)
    mask = rng.random(image.shape) < 0.3
    stats = robust_statistics(image, mask=mask)
    finite = np.isfinite(image)
    assert_equal_to_astropy(stats, image[finite & ~mask])
    assert stats["n_masked"] == np.count_nonzero(finite & mask)
    assert stats["n_nan"] == np.count_nonzero(~finite)
    assert stats["n_pixels"] + stats["n_nan"] + stats["n_masked"] == image.size


def test_mask_and_box_together(image):
    mask = np.zeros(image.shape, bool)
    mask[:, :30] = True
    stats = robust_statistics(image, mask=mask, box=(20, 80, 0, 50))
    sub = image[0:50, 20:80]
    msub = mask[0:50, 20:80]
    assert stats["n_masked"] == np.count_nonzero(msub & np.isfinite(sub))
    assert_equal_to_astropy(stats, sub[np.isfinite(sub) & ~msub])


def test_non_finite_counting():
    data = np.arange(20.0).reshape(4, 5)
    data[0, 0] = np.nan
    data[1, 1] = np.inf
    data[2, 2] = -np.inf
    mask = np.zeros(data.shape, bool)
    mask[0, 0] = mask[3, 3] = mask[3, 4] = True     # one of them is NaN too
    stats = robust_statistics(data, mask=mask)
    assert stats["n_nan"] == 3
    assert stats["n_masked"] == 2
    assert stats["n_pixels"] == 15
    assert stats["max"] == 17.0 and stats["min"] == 1.0


@pytest.mark.parametrize("make_mask", [False, True])
def test_no_usable_pixel_gives_nan_statistics(make_mask):
    if make_mask:
        data = np.ones((6, 7))
        mask = np.ones(data.shape, bool)
    else:
        data = np.full((6, 7), np.nan)
        mask = None
    stats = robust_statistics(data, mask=mask)
    assert stats["n_pixels"] == 0
    for key in ("mean", "median", "std", "biweight_location",
                "biweight_scale", "mad_std", "min", "max"):
        assert np.isnan(stats[key]), key
    assert stats["n_nan"] + stats["n_masked"] == 42


def test_one_pixel_and_constant_data():
    one = robust_statistics(np.array([[3.5]]))
    assert one["mean"] == one["median"] == one["biweight_location"] == 3.5
    assert one["std"] == one["mad_std"] == one["biweight_scale"] == 0.0
    flat = robust_statistics(np.full((10, 10), -2.0, dtype=np.float32))
    assert flat["median"] == flat["biweight_location"] == -2.0
    assert flat["std"] == flat["biweight_scale"] == flat["mad_std"] == 0.0


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def test_input_not_modified(image):
    data = image.astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask[5:9] = True
    before, mask_before = data.copy(), mask.copy()
    robust_statistics(data, mask=mask, box=(3, 200, 2, 250))
    np.testing.assert_array_equal(data, before)
    np.testing.assert_array_equal(mask, mask_before)


def test_read_only_big_endian(tmp_path, image):
    native = image.astype(np.float32)
    path = tmp_path / "image.npy"
    np.save(path, native.astype(">f4"))
    mapped = np.load(path, mmap_mode="r")
    assert not mapped.flags.writeable and mapped.dtype.byteorder == ">"
    assert robust_statistics(mapped, box=(0, 100, 0, 100)) == robust_statistics(
        native, box=(0, 100, 0, 100))


def test_values_are_plain_python_numbers(image):
    stats = robust_statistics(image.astype(np.float32))
    for key in ("n_pixels", "n_nan", "n_masked", "n_clipped"):
        assert type(stats[key]) is int
    for key in ("mean", "median", "std", "min", "max"):
        assert type(stats[key]) is float
    assert all(type(v) is int for v in stats["box"])


@pytest.mark.parametrize("kwargs, param", [
    (dict(sigma=0), "sigma"),
    (dict(sigma=-1.0), "sigma"),
    (dict(sigma=float("inf")), "sigma"),
    (dict(maxiters=0), "maxiters"),
    (dict(maxiters=1.5), "maxiters"),
    (dict(mask=np.zeros((3, 3), bool)), "mask"),
])
def test_bad_parameters(image, kwargs, param):
    with pytest.raises(InputError, match=param) as info:
        robust_statistics(image, **kwargs)
    assert info.value.param == param


@pytest.mark.parametrize("data", [np.zeros(10), np.zeros((2, 3, 4)),
                                  np.zeros((0, 5)), np.array([["x"]])])
def test_data_must_be_a_2d_image(data):
    with pytest.raises(InputError) as info:
        robust_statistics(data)
    assert info.value.param == "data"


# ---------------------------------------------------------------------------
# The one-pass biweight and clipping sums (float32 arithmetic on float32 data)
# ---------------------------------------------------------------------------

def astropy_in_float64(values, sigma=3.0, maxiters=5):
    """astropy on the float64 values: the numbers float32 data stand for."""
    return astropy_statistics(values.astype(np.float64), sigma=sigma, maxiters=maxiters)


@pytest.mark.parametrize("pedestal, noise", [(100.0, 5.0), (0.0, 0.02), (-3.0, 1e-3)])
def test_float32_frame_equals_astropy_in_float64(pedestal, noise):
    # A 1024x1024 frame: a sky pedestal (or a background-subtracted one near
    # zero), hot pixels, a few bright sources and NaN holes.
    rng = np.random.default_rng(21)
    data = rng.normal(pedestal, noise, (1024, 1024))
    hot = rng.random(data.shape) < 0.01
    data[hot] += rng.exponential(50 * noise, hot.sum())
    data[300:310, 500:520] += 1e3 * noise
    data[rng.random(data.shape) < 1e-3] = np.nan
    data = data.astype(np.float32)
    stats = robust_statistics(data)
    ref = astropy_in_float64(data[np.isfinite(data)])
    for key in ("mean", "median", "std", "biweight_location", "biweight_scale", "mad_std"):
        # float32 data: a few units in the last place of the values (relative
        # to the noise for a location near zero).
        assert stats[key] == pytest.approx(float(ref[key]), rel=1e-6, abs=1e-6 * noise), key
    assert stats["n_clipped"] == ref["n_clipped"]
    assert stats["n_nan"] == np.count_nonzero(np.isnan(data))


@pytest.mark.parametrize("seed, make", [
    (31, lambda rng: rng.standard_cauchy((300, 300))),          # heavy tails: long c=9 ends
    (32, lambda rng: rng.lognormal(0.0, 1.0, (300, 300))),      # skewed
    (33, lambda rng: rng.normal(1e4, 1e-2, (300, 300))),        # big pedestal
])
def test_float32_awkward_data_equals_astropy_in_float64(seed, make):
    data = make(np.random.default_rng(seed)).astype(np.float32)
    stats = robust_statistics(data)
    ref = astropy_in_float64(data.ravel())
    scale = float(ref["biweight_scale"])
    for key in ("mean", "median", "std", "biweight_location", "biweight_scale", "mad_std"):
        atol = 4 * float(np.spacing(np.float32(abs(ref["median"])))) + 1e-6 * scale
        assert stats[key] == pytest.approx(float(ref[key]), rel=1e-6, abs=atol), key
    assert stats["n_clipped"] == ref["n_clipped"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_values_without_a_mask(dtype):
    # Without a mask the values are sorted as they are: -inf first, +inf and
    # NaN last; none of them is used.
    rng = np.random.default_rng(34)
    data = rng.normal(5.0, 1.0, (40, 50)).astype(dtype)
    data[0, :3] = np.nan
    data[1, :2] = np.inf
    data[2, :4] = -np.inf
    stats = robust_statistics(data)
    assert stats["n_nan"] == 9 and stats["n_masked"] == 0
    assert stats["n_pixels"] == data.size - 9
    good = data[np.isfinite(data)]
    assert stats["min"] == float(good.min()) and stats["max"] == float(good.max())
    assert_equal_to_astropy(stats, good)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_inputs_use_two_threads_with_the_same_results(monkeypatch, dtype):
    # More than _THREADS_FROM values are sorted (partition + two halves) and
    # summed in two threads: the numbers must be those of the one-thread
    # path bit for bit, but for the sign of a zero: -0.0 and 0.0 are equal
    # to a sort, so which comes first (the min here) is arbitrary either way.
    from jwst_widgets.processing import stats

    rng = np.random.default_rng(35)
    data = field((1100, 1000), seed=35, dtype=dtype)     # 1.1 M values
    data[5, :4] = np.inf
    data[6, :3] = -np.inf
    data[7, :50] = 0.0
    data[8, :50] = -0.0
    mask = rng.random(data.shape) < 0.02
    assert data.size > stats._THREADS_FROM
    calls = []
    real = stats._in_two_threads
    monkeypatch.setattr(stats, "_in_two_threads", lambda f, g: (calls.append(1), real(f, g)))
    cases = [dict(), dict(mask=mask), dict(sigma=2.0, maxiters=None)]
    threaded = [robust_statistics(data, **kw) for kw in cases]
    assert len(calls) == 2 * len(cases)           # the sort and the biweight pass
    monkeypatch.setattr(stats, "_THREADS_FROM", data.size)
    one_thread = [robust_statistics(data, **kw) for kw in cases]
    assert len(calls) == 2 * len(cases)
    def bits(stats):         # repr: exact digits; + 0.0 turns -0.0 into 0.0
        return {k: repr(v + 0.0 if isinstance(v, float) else v) for k, v in stats.items()}

    for a, b in zip(threaded, one_thread):
        assert bits(a) == bits(b)
    assert_equal_to_astropy(threaded[0], data[np.isfinite(data)])
