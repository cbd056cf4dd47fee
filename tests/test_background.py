"""Tests of jwst_widgets.processing.background.

Against truth (synthetic frames with a known sky and noise) and against
photutils' Background2D and astropy's sigma_clipped_stats on the same data.
"""

import warnings

import numpy as np
import pytest
from astropy.stats import SigmaClip, sigma_clipped_stats
from astropy.utils.exceptions import AstropyUserWarning

from jwst_widgets.errors import InputError
from jwst_widgets.processing.background import (ESTIMATORS, BackgroundResult,
                                                estimate_background,
                                                global_background)


# ---------------------------------------------------------------------------
# Synthetic frames and the reference implementation
# ---------------------------------------------------------------------------

def smooth_sky(shape):
    """A pedestal, a gradient and a broad blob (variations on >100 px)."""
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    blob = np.exp(-((xx - 0.6 * nx) ** 2 + (yy - 0.4 * ny) ** 2)
                  / (2 * (0.2 * max(ny, nx)) ** 2))
    return 20.0 + 2.0 * xx / nx - 1.5 * yy / ny + 3.0 * blob


def gaussian_sources(shape, rng, n, *, sigma_noise):
    """Round Gaussian sources, 5 to 500 sigma peak, widths 1.2 to 3 px."""
    ny, nx = shape
    model = np.zeros(shape)
    ys = rng.uniform(0, ny, n)
    xs = rng.uniform(0, nx, n)
    peaks = sigma_noise * 10 ** rng.uniform(np.log10(5), np.log10(500), n)
    widths = rng.uniform(1.2, 3.0, n)
    for y, x, peak, w in zip(ys, xs, peaks, widths):
        r = int(np.ceil(5 * w))
        y0, y1 = max(int(y) - r, 0), min(int(y) + r + 1, ny)
        x0, x1 = max(int(x) - r, 0), min(int(x) + r + 1, nx)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        model[y0:y1, x0:x1] += peak * np.exp(
            -((xx - x) ** 2 + (yy - y) ** 2) / (2 * w * w))
    return model


def make_frame(shape, seed, *, sigma=1.0, n_sources=None, dtype=np.float32):
    """(data, sky, sources, sigma): sky + sources + white noise."""
    rng = np.random.default_rng(seed)
    if n_sources is None:
        n_sources = shape[0] * shape[1] // 4000
    sky = smooth_sky(shape)
    sources = gaussian_sources(shape, rng, n_sources, sigma_noise=sigma)
    data = sky + sources + rng.normal(0.0, sigma, shape)
    return data.astype(dtype), sky, sources, sigma


PHOTUTILS_ESTIMATORS = {
    "median": ("MedianBackground", "StdBackgroundRMS"),
    "mean": ("MeanBackground", "StdBackgroundRMS"),
    "sextractor": ("SExtractorBackground", "StdBackgroundRMS"),
    "mode": ("ModeEstimatorBackground", "StdBackgroundRMS"),
    "biweight": ("BiweightLocationBackground", "BiweightScaleBackgroundRMS"),
}


def photutils_background(data, *, box_size=50, filter_size=3, sigma_clip=3.0,
                         estimator="median", mask=None, maxiters=10,
                         exclude_percentile=10.0):
    """photutils 3 Background2D with the settings estimate_background uses."""
    from photutils import background as pb

    bkg_name, rms_name = PHOTUTILS_ESTIMATORS[estimator]
    with warnings.catch_warnings():
        # photutils warns about NaNs it masks; that is expected here
        warnings.simplefilter("ignore", AstropyUserWarning)
        return pb.Background2D(
            data, box_size, mask=mask, filter_size=filter_size,
            sigma_clip=SigmaClip(sigma=sigma_clip, maxiters=maxiters),
            exclude_percentile=exclude_percentile,
            bkg_estimator=getattr(pb, bkg_name)(sigma_clip=None),
            bkg_rms_estimator=getattr(pb, rms_name)(sigma_clip=None))


def assert_same_maps(ours, ref, dtype):
    """Same numbers as photutils, to the precision of the data type."""
    if np.dtype(dtype) == np.float64:
        rtol = 1e-11
    else:
        rtol = 2e-6          # a few float32 units in the last place
    np.testing.assert_allclose(ours.background, ref.background, rtol=rtol)
    np.testing.assert_allclose(ours.background_rms, ref.background_rms,
                               rtol=rtol, atol=rtol * np.abs(ref.background_rms).max())
    np.testing.assert_allclose(ours.background_mesh, ref.background_mesh, rtol=rtol)
    np.testing.assert_allclose(ours.background_rms_mesh, ref.background_rms_mesh,
                               rtol=rtol, atol=rtol * np.abs(ref.background_rms_mesh).max())
    np.testing.assert_array_equal(ours.n_pixels_mesh, ref.n_pixels_mesh)
    assert ours.background_median == pytest.approx(float(ref.background_median), rel=rtol)
    assert ours.background_rms_median == pytest.approx(
        float(ref.background_rms_median), rel=10 * rtol)


def rms(a):
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


@pytest.fixture(scope="module")
def big_frame():
    return make_frame((1024, 1024), seed=11)


@pytest.fixture(scope="module")
def odd_frame():
    """300x410 (not a whole number of boxes), NaNs, hot pixels, a mask."""
    data, sky, sources, sigma = make_frame((300, 410), seed=5, dtype=np.float64)
    rng = np.random.default_rng(6)
    hot = rng.random(data.shape) < 0.01
    data[hot] += rng.exponential(40.0, hot.sum())
    data[rng.random(data.shape) < 0.002] = np.nan
    data[5:12, 200:230] = np.nan
    data[40, 41] = np.inf
    mask = np.zeros(data.shape, bool)
    mask[100:170, 100:160] = True
    return data, mask


# ---------------------------------------------------------------------------
# Against truth
# ---------------------------------------------------------------------------

def test_background_close_to_true_sky(big_frame):
    data, sky, sources, sigma = big_frame
    result = estimate_background(data, box_size=64)
    assert isinstance(result, BackgroundResult)
    assert result.background.shape == data.shape
    residual = rms(result.background - sky)
    # the map follows the gradient and the blob to well below the noise
    assert residual < 0.1 * sigma
    # and is as good as photutils' on the same data and settings
    ref = photutils_background(data, box_size=64)
    assert residual <= rms(ref.background - sky) * (1 + 1e-6) + 1e-6
    # a constant would be far off: the test can fail
    assert rms(np.median(data) - sky) > 5 * residual


def test_rms_map_matches_true_noise(big_frame):
    data, sky, sources, sigma = big_frame
    result = estimate_background(data, box_size=64)
    assert result.background_rms.shape == data.shape
    assert np.median(result.background_rms) == pytest.approx(sigma, rel=0.03)
    assert np.all(np.abs(result.background_rms / sigma - 1) < 0.08)
    assert result.background_rms_median == pytest.approx(sigma, rel=0.03)
    assert result.background_median == pytest.approx(float(np.median(sky)), abs=0.5)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_estimator_recovers_the_sky(big_frame, estimator):
    data, sky, sources, sigma = big_frame
    result = estimate_background(data, box_size=64, estimator=estimator)
    assert rms(result.background - sky) < 0.1 * sigma
    assert np.median(result.background_rms) == pytest.approx(sigma, rel=0.05)


def test_nircam_like_frame():
    synthetic = pytest.importorskip("jwst_widgets.datasets.synthetic")
    frame = synthetic.nircam_like((1024, 1024), seed=1, stripes=0.0)
    image, truth = frame.image, frame.truth
    noise = float(np.median(truth.noise_rms))
    result = estimate_background(image.data, mask=image.mask, box_size=64)
    assert np.all(np.isfinite(result.background))
    assert np.all(np.isfinite(result.background_rms))
    inner = (slice(8, -8), slice(8, -8))      # away from the NaN border
    residual = rms((result.background - truth.sky)[inner])
    assert residual < 0.1 * noise
    ratio = result.background_rms[inner] / truth.noise_rms[inner]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)
    ref = photutils_background(image.data, box_size=64, mask=image.mask)
    assert_same_maps(result, ref, np.float32)


# ---------------------------------------------------------------------------
# Against photutils, number for number
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_same_as_photutils(odd_frame, estimator, dtype):
    data, mask = odd_frame
    data = data.astype(dtype)
    ours = estimate_background(data, box_size=(40, 50), mask=mask,
                               estimator=estimator)
    ref = photutils_background(data, box_size=(40, 50), mask=mask,
                               estimator=estimator)
    assert ours.background.dtype == np.dtype(dtype)
    assert_same_maps(ours, ref, dtype)


@pytest.mark.parametrize("settings", [
    dict(box_size=32, filter_size=1),
    dict(box_size=64, filter_size=5, sigma_clip=2.5),
    dict(box_size=(25, 70), filter_size=(3, 1), maxiters=2),
    dict(box_size=50, exclude_percentile=50.0, sigma_clip=4.0),
    dict(box_size=128, filter_size=3, maxiters=None),
    dict(box_size=(300, 16)),                    # a single row of boxes
])
def test_same_as_photutils_settings(odd_frame, settings):
    data, mask = odd_frame
    ours = estimate_background(data, mask=mask, **settings)
    ref_settings = dict(settings)
    if ref_settings.get("maxiters", 10) is None:
        ref_settings["maxiters"] = np.inf
    ref = photutils_background(data, mask=mask, **ref_settings)
    assert_same_maps(ours, ref, np.float64)


def test_sextractor_switches_to_the_median_on_skewed_boxes():
    # 24 x 24 boxes whose skewness grows box by box, so that the SExtractor
    # rule (median when |mean - median| / std >= 0.3) takes both branches
    rng = np.random.default_rng(17)
    shape_param = np.linspace(0.05, 1.5, 24 * 24).reshape(24, 24)
    boxes = rng.lognormal(0.0, shape_param[:, :, None, None], (24, 24, 16, 16))
    data = boxes.transpose(0, 2, 1, 3).reshape(384, 384)
    settings = dict(box_size=16, filter_size=1, exclude_percentile=100.0)
    ours = estimate_background(data, estimator="sextractor", **settings)
    ref = photutils_background(data, estimator="sextractor", **settings)
    assert_same_maps(ours, ref, np.float64)
    median = estimate_background(data, estimator="median", **settings)
    same = np.isclose(ours.background_mesh, median.background_mesh, rtol=1e-12)
    assert 50 < np.count_nonzero(same) < same.size - 50


def test_excluded_boxes_are_filled(odd_frame):
    data, mask = odd_frame
    data = data.copy()
    data[0:80, 0:100] = np.nan                  # several whole boxes
    ours = estimate_background(data, box_size=40, mask=mask)
    ref = photutils_background(data, box_size=40, mask=mask)
    assert ours.excluded_mesh[:2, :2].all()
    assert np.all(np.isfinite(ours.background))
    assert_same_maps(ours, ref, np.float64)


# ---------------------------------------------------------------------------
# Masks, NaNs, dtypes, inputs
# ---------------------------------------------------------------------------

def test_mask_keeps_a_bright_blob_out():
    frame, sky, _, sigma = make_frame((512, 512), seed=21, n_sources=0)
    yy, xx = np.mgrid[:512, :512]
    blob = 50.0 * sigma * np.exp(-((xx - 256) ** 2 + (yy - 256) ** 2) / (2 * 20.0 ** 2))
    mask = blob > 0.05 * sigma
    blob[~mask] = 0.0                      # the blob touches masked pixels only
    data = (frame + blob).astype(np.float32)
    under = blob > 5 * sigma
    masked = estimate_background(data, box_size=32, mask=mask)
    # masked pixels never enter: the result is that of the frame without it
    no_blob = estimate_background(frame, box_size=32, mask=mask)
    np.testing.assert_array_equal(masked.background, no_blob.background)
    np.testing.assert_array_equal(masked.background_rms, no_blob.background_rms)
    assert np.all(np.isfinite(masked.background[mask]))
    # unmasked, the blob biases the background under it (the test can fail)
    unmasked = estimate_background(data, box_size=32)
    err_masked = np.abs(masked.background - sky)[under].max()
    err_unmasked = np.abs(unmasked.background - sky)[under].max()
    assert err_unmasked > 2 * sigma
    assert err_masked < 0.5 * err_unmasked
    assert rms(masked.background - sky) < 0.25 * sigma


def test_nan_pixels_are_the_same_as_masked_pixels(odd_frame):
    data, _ = odd_frame
    bad = ~np.isfinite(data)
    filled = np.where(bad, 1e6, data)
    with_nan = estimate_background(data, box_size=40)
    with_mask = estimate_background(filled, box_size=40, mask=bad)
    np.testing.assert_array_equal(with_nan.background, with_mask.background)
    np.testing.assert_array_equal(with_nan.background_rms, with_mask.background_rms)
    assert np.all(np.isfinite(with_nan.background))
    assert np.all(np.isfinite(with_nan.background_rms))


def test_input_not_modified(odd_frame):
    data, mask = odd_frame
    data = data.astype(np.float32)
    data_before = data.copy()
    mask_before = mask.copy()
    estimate_background(data, box_size=40, mask=mask, estimator="biweight")
    global_background(data, mask=mask)
    np.testing.assert_array_equal(data, data_before)
    np.testing.assert_array_equal(mask, mask_before)


def test_read_only_big_endian_memmap(tmp_path, odd_frame):
    data, mask = odd_frame
    native = data.astype(np.float32)
    path = tmp_path / "image.npy"
    np.save(path, native.astype(">f4"))
    mapped = np.load(path, mmap_mode="r")
    assert mapped.dtype.byteorder == ">" and not mapped.flags.writeable
    ours = estimate_background(mapped, box_size=40, mask=mask)
    ref = estimate_background(native, box_size=40, mask=mask)
    assert ours.background.dtype == np.float32
    assert ours.background.dtype.isnative
    np.testing.assert_array_equal(ours.background, ref.background)
    np.testing.assert_array_equal(ours.background_rms, ref.background_rms)
    assert global_background(mapped) == global_background(native)


@pytest.mark.parametrize("dtype, out", [(np.float32, np.float32),
                                        (np.float64, np.float64),
                                        (np.int16, np.float32),
                                        (np.uint16, np.float32)])
def test_output_dtype(dtype, out):
    data, _, _, _ = make_frame((128, 160), seed=2, sigma=5.0, n_sources=5,
                               dtype=np.float64)
    result = estimate_background((data * 10).astype(dtype), box_size=32)
    assert result.background.dtype == out
    assert result.background_rms.dtype == out
    assert result.background.flags.c_contiguous


def test_constant_image():
    data = np.full((100, 120), 7.5, dtype=np.float32)
    result = estimate_background(data, box_size=25)
    np.testing.assert_array_equal(result.background, 7.5)
    np.testing.assert_array_equal(result.background_rms, 0.0)


def test_result_fields(odd_frame):
    data, mask = odd_frame
    result = estimate_background(data, box_size=(40, 50), filter_size=5,
                                 mask=mask, estimator="mode")
    assert result.box_size == (40, 50)
    assert result.filter_size == (5, 5)
    assert result.estimator == "mode"
    assert result.background_mesh.shape == (8, 9)     # 300/40, 410/50 rounded up
    assert result.n_pixels_mesh.shape == (8, 9)
    assert result.excluded_mesh.dtype == bool
    # partial boxes at the top and right edges are short of pixels: excluded
    assert result.excluded_mesh[-1].all() and result.excluded_mesh[:, -1].all()
    with pytest.raises(AttributeError):
        result.estimator = "mean"


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, param, words", [
    (dict(box_size=1024), "box_size", "between 4 and 300 pixels for a 300x300 image; got 1024"),
    (dict(box_size=3), "box_size", "between 4 and 300"),
    (dict(box_size=(4, 400)), "box_size", "at most the image size"),
    (dict(box_size=12.5), "box_size", "whole number"),
    (dict(box_size="50"), "box_size", "whole number"),
    (dict(filter_size=4), "filter_size", "odd"),
    (dict(filter_size=0), "filter_size", "odd"),
    (dict(filter_size=-3), "filter_size", "odd"),
    (dict(filter_size=(3, 2)), "filter_size", "odd"),
    (dict(sigma_clip=0), "sigma_clip", "positive"),
    (dict(sigma_clip=-2.0), "sigma_clip", "positive"),
    (dict(sigma_clip=float("nan")), "sigma_clip", "positive"),
    (dict(sigma_clip="3"), "sigma_clip", "positive"),
    (dict(estimator="max"), "estimator", "'median', 'mean', 'sextractor', 'mode' or 'biweight'"),
    (dict(exclude_percentile=-1), "exclude_percentile", "between 0 and 100"),
    (dict(exclude_percentile=150), "exclude_percentile", "between 0 and 100"),
    (dict(maxiters=0), "maxiters", ">= 1"),
    (dict(maxiters=2.5), "maxiters", ">= 1"),
    (dict(mask=np.zeros((10, 10), bool)), "mask", "shape"),
])
def test_bad_parameters(kwargs, param, words):
    data = np.random.default_rng(0).normal(size=(300, 300)).astype(np.float32)
    kwargs.setdefault("box_size", 50)
    with pytest.raises(InputError, match=param) as info:
        estimate_background(data, **kwargs)
    assert info.value.param == param
    assert words in str(info.value)


@pytest.mark.parametrize("data", [np.zeros(100), np.zeros((3, 40, 40)),
                                  np.array([["a", "b"]])])
def test_data_must_be_a_2d_image(data):
    with pytest.raises(InputError, match="data") as info:
        estimate_background(data, box_size=4)
    assert info.value.param == "data"


def test_no_usable_pixels():
    data = np.ones((64, 64), np.float32)
    with pytest.raises(InputError) as info:
        estimate_background(data, box_size=16, mask=np.ones(data.shape, bool))
    assert info.value.param == "mask"
    with pytest.raises(InputError) as info:
        estimate_background(np.full((64, 64), np.nan), box_size=16)
    assert info.value.param == "data"


def test_every_box_excluded():
    data = np.random.default_rng(3).normal(size=(64, 64))
    data[::8, ::8] = np.nan                     # a few NaNs in every box
    with pytest.raises(InputError, match="exclude_percentile") as info:
        estimate_background(data, box_size=16, exclude_percentile=0.0)
    assert info.value.param == "exclude_percentile"
    # allowed with a higher percentile
    result = estimate_background(data, box_size=16, exclude_percentile=5.0)
    assert np.all(np.isfinite(result.background))


# ---------------------------------------------------------------------------
# global_background
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_background_equals_astropy(odd_frame, dtype):
    data, mask = odd_frame
    data = data.astype(dtype)
    median, std = global_background(data, mask=mask, sigma=2.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        _, ref_median, ref_std = sigma_clipped_stats(
            data, mask=mask | ~np.isfinite(data), sigma=2.5, maxiters=5)
    tol = 1e-12 if dtype == np.float64 else 4e-6
    assert median == pytest.approx(float(ref_median), rel=tol)
    assert std == pytest.approx(float(ref_std), rel=tol)
    assert isinstance(median, float) and isinstance(std, float)


def test_global_background_against_truth():
    data, sky, _, sigma = make_frame((512, 512), seed=8, sigma=2.0)
    flat = data - (sky - 20.0).astype(np.float32)    # level 20, sources on top
    median, std = global_background(flat)
    assert median == pytest.approx(20.0, abs=0.05 * sigma)
    assert std == pytest.approx(sigma, rel=0.05)


def test_global_background_errors():
    data = np.ones((32, 32))
    with pytest.raises(InputError) as info:
        global_background(data, mask=np.ones((32, 32), bool))
    assert info.value.param == "mask"
    with pytest.raises(InputError) as info:
        global_background(np.full((32, 32), np.nan))
    assert info.value.param == "data"
    with pytest.raises(InputError) as info:
        global_background(data, sigma=0)
    assert info.value.param == "sigma"
