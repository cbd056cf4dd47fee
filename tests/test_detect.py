"""Tests of jwst_widgets.processing.detect: against truth and against photutils."""

import warnings

import numpy as np
import pytest
from astropy.table import QTable

from jwst_widgets.errors import InputError
from jwst_widgets.processing.detect import SegmentationResult, find_point_sources, find_segments

FWHM = 3.0
SIGMA_PSF = FWHM / (2 * np.sqrt(2 * np.log(2)))
NOISE = 1.0


# --------------------------------------------------------------------------
# Synthetic frames with known sources.

def make_star_field(shape=(512, 512), n=150, seed=0, spacing=None, flux_range=(20, 2e4),
                    noise=NOISE):
    """Pixel-integrated Gaussian stars (photutils CircularGaussianPRF) plus white noise.

    With ``spacing`` the stars sit on a jittered grid (at least ``spacing/2``
    pixels apart); otherwise they are uniformly random.
    """
    from photutils.datasets import make_model_image, make_noise_image
    from photutils.psf import CircularGaussianPRF

    rng = np.random.default_rng(seed)
    if spacing:
        gy, gx = np.mgrid[spacing:shape[0] - spacing:spacing, spacing:shape[1] - spacing:spacing]
        x = gx.ravel() + rng.uniform(-spacing / 4, spacing / 4, gx.size)
        y = gy.ravel() + rng.uniform(-spacing / 4, spacing / 4, gy.size)
        n = x.size
    else:
        x = rng.uniform(8, shape[1] - 8, n)
        y = rng.uniform(8, shape[0] - 8, n)
    flux = np.exp(rng.uniform(*np.log(flux_range), n))
    truth = QTable({"x_0": x, "y_0": y, "flux": flux, "fwhm": np.full(n, FWHM)})
    model = make_model_image(shape, CircularGaussianPRF(), truth, model_shape=(25, 25))
    # Optimal (PSF-weighted) S/N of each star against the white noise.
    truth["snr"] = flux / (noise * 2 * np.sqrt(np.pi) * SIGMA_PSF)
    image = model + make_noise_image(shape, distribution="gaussian", mean=0.0, stddev=noise,
                                     seed=seed + 1)
    return image, truth


def gaussian_blob(shape, x0, y0, amplitude, sx, sy, theta=0.0):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    c, s = np.cos(theta), np.sin(theta)
    u = (xx - x0) * c + (yy - y0) * s
    v = -(xx - x0) * s + (yy - y0) * c
    return amplitude * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))


def make_galaxy_field(shape=(384, 384), seed=3):
    """Separated elliptical Gaussian galaxies on white noise; returns image and truth."""
    rng = np.random.default_rng(seed)
    gy, gx = np.mgrid[48:shape[0] - 40:64, 48:shape[1] - 40:64]
    x = gx.ravel() + rng.uniform(-8, 8, gx.size)
    y = gy.ravel() + rng.uniform(-8, 8, gy.size)
    n = x.size
    amp = rng.uniform(4, 30, n)
    sx = rng.uniform(3, 7, n)
    sy = sx * rng.uniform(0.4, 1.0, n)
    theta = rng.uniform(0, np.pi, n)
    image = rng.normal(0.0, NOISE, shape)
    for i in range(n):
        image += gaussian_blob(shape, x[i], y[i], amp[i], sx[i], sy[i], theta[i])
    truth = QTable({"x": x, "y": y, "amplitude": amp, "sx": sx, "sy": sy, "theta": theta})
    return image, truth


def match(found_x, found_y, true_x, true_y, radius):
    """For each true source, the index of the nearest found source within radius, or -1."""
    from scipy.spatial import cKDTree

    if len(found_x) == 0:
        return np.full(len(true_x), -1)
    dist, idx = cKDTree(np.column_stack([found_x, found_y])).query(
        np.column_stack([true_x, true_y]))
    return np.where(dist <= radius, idx, -1)


def simple_wcs(shape):
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.16, -27.78]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-0.031 / 3600, 0.031 / 3600]
    return wcs


@pytest.fixture(scope="module")
def star_field():
    return make_star_field()


@pytest.fixture(scope="module")
def sparse_stars():
    return make_star_field(spacing=24, seed=10)


@pytest.fixture(scope="module")
def galaxy_field():
    return make_galaxy_field()


def assert_tables_equal(ours, theirs, *, skip=()):
    for name in theirs.colnames:
        if name in skip:
            continue
        a = np.asarray(getattr(ours[name], "value", ours[name]))
        b = np.asarray(getattr(theirs[name], "value", theirs[name]))
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=0, err_msg=name, equal_nan=True)


# --------------------------------------------------------------------------
# Point sources: same as photutils.

@pytest.mark.parametrize("method", ["daofind", "iraf"])
def test_point_sources_match_photutils(star_field, method):
    from photutils.detection import DAOStarFinder, IRAFStarFinder

    image, _ = star_field
    finder = DAOStarFinder if method == "daofind" else IRAFStarFinder
    theirs = finder(5.0, FWHM)(image)  # photutils' default shape cuts for each finder
    ours = find_point_sources(image, threshold=5.0, fwhm=FWHM, method=method)
    assert isinstance(ours, QTable)
    assert ours.colnames == theirs.colnames
    assert len(ours) == len(theirs) > 100
    assert_tables_equal(ours, theirs)


def test_point_source_options_match_photutils(star_field):
    from photutils.detection import DAOStarFinder

    image, _ = star_field
    kwargs = dict(sharpness_range=(0.3, 0.9), roundness_range=(-0.5, 0.5), peak_max=500.0,
                  n_brightest=40, exclude_border=True)
    theirs = DAOStarFinder(4.0, 2.5, **kwargs)(image)
    ours = find_point_sources(image, threshold=4.0, fwhm=2.5, **kwargs)
    assert len(ours) == len(theirs) == 40
    assert ours["peak"].max() <= 500.0
    assert_tables_equal(ours, theirs)


# --------------------------------------------------------------------------
# Point sources: against truth.

def crowded(truth, radius, ratio=0.1):
    """True for stars with a neighbour within radius brighter than ratio times their flux."""
    from scipy.spatial import cKDTree

    xy = np.column_stack([truth["x_0"], truth["y_0"]])
    flux = np.asarray(truth["flux"])
    out = np.zeros(len(truth), dtype=bool)
    for i, near in enumerate(cKDTree(xy).query_ball_point(xy, radius)):
        out[i] = any(flux[j] > ratio * flux[i] for j in near if j != i)
    return out


def test_point_sources_recover_truth(star_field):
    image, truth = star_field
    # DAOFIND's threshold is on the fitted peak amplitude: 4 sigma of the pixel
    # noise reaches stars of optimal S/N ~ 10 with a 3-pixel FWHM.
    found = find_point_sources(image, threshold=4.0 * NOISE, fwhm=FWHM)
    # Stars with a comparable neighbour within 3 FWHM blend (DAOFIND's minimum
    # separation is 2.5 FWHM): leave them out of completeness.
    target = (truth["snr"] > 10) & ~crowded(truth, 3 * FWHM)
    assert target.sum() > 100
    idx = match(found["x_centroid"], found["y_centroid"], truth["x_0"], truth["y_0"], 1.5)
    completeness = np.mean(idx[target] >= 0)
    assert completeness >= 0.95, completeness
    # Purity: detections that lie on a true star (of any S/N) ...
    back = match(truth["x_0"], truth["y_0"], found["x_centroid"], found["y_centroid"], 1.5)
    assert np.mean(back >= 0) >= 0.9, np.mean(back >= 0)
    # ... and all of them among detections as bright as half an S/N = 10 star
    # (DAOFIND's flux is ~0.9 of the total for this PSF).
    flux_snr10 = 10 * NOISE * 2 * np.sqrt(np.pi) * SIGMA_PSF
    bright = np.asarray(found["flux"]) > 0.5 * 0.9 * flux_snr10
    assert bright.sum() > 100
    assert np.all(back[bright] >= 0)
    # Centroids of bright stars are good to a small fraction of a pixel.
    good = target & (truth["snr"] > 100) & (idx >= 0)
    dx = np.asarray(found["x_centroid"])[idx[good]] - truth["x_0"][good]
    dy = np.asarray(found["y_centroid"])[idx[good]] - truth["y_0"][good]
    assert np.sqrt(np.mean(dx ** 2 + dy ** 2)) < 0.1


def test_iraf_recovers_truth(sparse_stars):
    image, truth = sparse_stars
    # IRAF's threshold applies to the convolved image as given (not scaled).
    found = find_point_sources(image, threshold=4.0, fwhm=FWHM, method="iraf")
    target = truth["snr"] > 10
    idx = match(found["x_centroid"], found["y_centroid"], truth["x_0"], truth["y_0"], 1.5)
    assert np.mean(idx[target] >= 0) >= 0.93
    back = match(truth["x_0"], truth["y_0"], found["x_centroid"], found["y_centroid"], 1.5)
    assert np.mean(back >= 0) >= 0.93
    # IRAF's statistics are not DAOFIND's: DAOFIND's cuts would let noise through.
    loose = find_point_sources(image, threshold=4.0, fwhm=FWHM, method="iraf",
                               sharpness_range=(0.2, 1.0), roundness_range=(-1.0, 1.0))
    back = match(truth["x_0"], truth["y_0"], loose["x_centroid"], loose["y_centroid"], 1.5)
    assert np.mean(back >= 0) < 0.8


def test_pure_noise_gives_zero_row_table_with_columns(star_field):
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 1, (256, 256))
    image, _ = star_field
    for method in ("daofind", "iraf"):
        full = find_point_sources(image, threshold=5.0, fwhm=FWHM, method=method)
        empty = find_point_sources(noise, threshold=50.0, fwhm=FWHM, method=method)
        assert isinstance(empty, QTable) and len(empty) == 0
        assert empty.colnames == full.colnames
        for name in full.colnames:
            assert empty[name].dtype == full[name].dtype, name
            assert getattr(empty[name], "unit", None) == getattr(full[name], "unit", None)
    with_wcs = find_point_sources(noise, threshold=50.0, wcs=simple_wcs(noise.shape))
    assert with_wcs.colnames[-2:] == ["ra", "dec"] and len(with_wcs) == 0
    assert with_wcs["ra"].unit == "deg"


def test_nan_holes_do_not_create_or_hide_sources(sparse_stars):
    image, truth = sparse_stars
    clean = find_point_sources(image, threshold=5.0, fwhm=FWHM)
    holed = image.copy()
    rng = np.random.default_rng(7)
    # Holes of every size on empty sky: single pixels, short columns, a block, a big slab.
    holes = np.zeros(image.shape, dtype=bool)
    holes[rng.integers(0, 512, 400), rng.integers(0, 512, 400)] = True
    holes[100:140, 300] = True
    holes[200:206, 50:70] = True
    holes[:, 490:] = True  # a NaN border, too big to fill
    holed[holes] = np.nan
    found = find_point_sources(holed, threshold=5.0, fwhm=FWHM)
    # The same stars are found away from the holes ...
    from scipy import ndimage

    to_hole = ndimage.distance_transform_edt(~holes)
    away = to_hole[np.round(truth["y_0"]).astype(int), np.round(truth["x_0"]).astype(int)] > 6
    assert away.sum() > 250
    idx_clean = match(clean["x_centroid"], clean["y_centroid"], truth["x_0"], truth["y_0"], 1.5)
    idx_holed = match(found["x_centroid"], found["y_centroid"], truth["x_0"], truth["y_0"], 1.5)
    np.testing.assert_array_equal(idx_clean[away] >= 0, idx_holed[away] >= 0)
    # ... and nothing new anywhere.
    back = match(truth["x_0"], truth["y_0"], found["x_centroid"], found["y_centroid"], 1.5)
    assert np.all(back >= 0), "a source was found where there is no star"
    # A mask does the same as NaN.
    masked = find_point_sources(image, threshold=5.0, fwhm=FWHM, mask=holes)
    assert len(masked) == len(found)
    np.testing.assert_allclose(masked["x_centroid"], found["x_centroid"])


@pytest.mark.parametrize("half, tolerance", [(0, 0.2), (1, 1.5)])
def test_star_with_bad_core_is_found_in_place(sparse_stars, half, tolerance):
    image, truth = sparse_stars
    brightest = np.argsort(truth["flux"])[-5:]
    mask = np.zeros(image.shape, dtype=bool)
    for k in brightest:
        # A cosmic ray on the peak pixel (half=0), a saturated 3x3 core (half=1).
        ix, iy = int(round(truth["x_0"][k])), int(round(truth["y_0"][k]))
        mask[iy - half:iy + half + 1, ix - half:ix + half + 1] = True
    found = find_point_sources(image, threshold=5.0, fwhm=FWHM, mask=mask)
    for k in brightest:
        d = np.hypot(found["x_centroid"] - truth["x_0"][k], found["y_centroid"] - truth["y_0"][k])
        assert np.sum(d < 5) == 1  # found once
        assert d.min() < tolerance


def test_point_sources_inputs_not_modified_and_dtypes(star_field):
    image, _ = star_field
    data = image.astype(np.float32)
    data[10:20, 10:20] = np.nan
    mask = np.zeros(data.shape, dtype=bool)
    mask[300:310, 300:310] = True
    threshold = np.full(data.shape, 5.0, dtype=np.float32)
    copies = data.copy(), mask.copy(), threshold.copy()
    out32 = find_point_sources(data, threshold=threshold, mask=mask)
    np.testing.assert_array_equal(data, copies[0])
    np.testing.assert_array_equal(mask, copies[1])
    np.testing.assert_array_equal(threshold, copies[2])
    # Big-endian float32 (a memory-mapped FITS) gives the same catalog.
    big = data.astype(">f4")
    out_big = find_point_sources(big, threshold=5.0, mask=mask)
    assert len(out_big) == len(out32) > 100
    np.testing.assert_allclose(out_big["x_centroid"], out32["x_centroid"])


def test_threshold_array(star_field):
    image, truth = star_field
    threshold = np.full(image.shape, 5.0)
    threshold[:, 256:] = 1e9  # nothing can be found on the right half
    ours = find_point_sources(image, threshold=threshold, fwhm=FWHM)
    scalar = find_point_sources(image, threshold=5.0, fwhm=FWHM)
    assert len(ours) > 40
    assert np.all(ours["x_centroid"] < 258)
    left = scalar[scalar["x_centroid"] < 250]
    assert set(np.round(left["x_centroid"], 6)) <= set(np.round(ours["x_centroid"], 6))


def test_point_sources_sky_columns(sparse_stars):
    image, _ = sparse_stars
    wcs = simple_wcs(image.shape)
    found = find_point_sources(image, threshold=5.0, fwhm=FWHM, wcs=wcs)
    sky = wcs.pixel_to_world(found["x_centroid"], found["y_centroid"])
    np.testing.assert_allclose(found["ra"].to_value("deg"), sky.ra.deg, rtol=0, atol=1e-10)
    np.testing.assert_allclose(found["dec"].to_value("deg"), sky.dec.deg, rtol=0, atol=1e-10)
    # The reference pixel (FITS 1-based crpix) is 0-based crpix - 1.
    ra, dec = wcs.wcs.crval
    x, y = wcs.wcs.crpix - 1
    row = np.argmin(np.hypot(found["x_centroid"] - x, found["y_centroid"] - y))
    d = np.hypot(found["x_centroid"][row] - x, found["y_centroid"][row] - y)
    expected = 0.031 / 3600 * d
    sep = np.hypot((found["ra"][row].value - ra) * np.cos(np.radians(dec)),
                   found["dec"][row].value - dec)
    assert sep == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("kwargs, param", [
    ({"threshold": 0.0}, "threshold"),
    ({"threshold": -1.0}, "threshold"),
    ({"threshold": np.ones((5, 5))}, "threshold"),
    ({"threshold": "high"}, "threshold"),
    ({"threshold": 5.0, "fwhm": 0.0}, "fwhm"),
    ({"threshold": 5.0, "fwhm": 500.0}, "fwhm"),
    ({"threshold": 5.0, "method": "sextractor"}, "method"),
    ({"threshold": 5.0, "mask": np.zeros((4, 4), bool)}, "mask"),
    ({"threshold": 5.0, "sharpness_range": (1.0, 0.2)}, "sharpness_range"),
    ({"threshold": 5.0, "roundness_range": 3}, "roundness_range"),
    ({"threshold": 5.0, "n_brightest": 0}, "n_brightest"),
    ({"threshold": 5.0, "n_brightest": 2.5}, "n_brightest"),
    ({"threshold": 5.0, "peak_max": float("nan")}, "peak_max"),
    ({"threshold": 5.0, "wcs": "not a wcs"}, "wcs"),
])
def test_point_sources_bad_parameters(kwargs, param):
    data = np.random.default_rng(0).normal(0, 1, (64, 64))
    with pytest.raises(InputError, match=param) as info:
        find_point_sources(data, **kwargs)
    assert info.value.param == param


def test_point_sources_bad_data():
    with pytest.raises(InputError, match="2-D") as info:
        find_point_sources(np.zeros(10), threshold=1.0)
    assert info.value.param == "data"


# --------------------------------------------------------------------------
# Segmentation: same as photutils.

def photutils_segmentation(image, threshold, n_pixels, fwhm, *, deblend=True, error=None):
    from astropy.convolution import convolve
    from photutils.segmentation import (SourceCatalog, deblend_sources, detect_sources,
                                        make_2dgaussian_kernel)

    kernel = make_2dgaussian_kernel(fwhm, size=2 * int(np.ceil(fwhm)) + 1)
    convolved = convolve(image, kernel)
    segm = detect_sources(convolved, threshold, n_pixels)
    if deblend:
        segm = deblend_sources(convolved, segm, n_pixels, n_levels=32, contrast=0.001,
                               progress_bar=False)
    table = SourceCatalog(image, segm, convolved_data=convolved, error=error).to_table()
    return segm, table


@pytest.mark.parametrize("deblend", [False, True])
def test_segments_match_photutils(galaxy_field, deblend):
    image, _ = galaxy_field
    error = np.full(image.shape, NOISE)
    segm, theirs = photutils_segmentation(image, 1.5, 10, 2.0, deblend=deblend, error=error)
    result = find_segments(image, threshold=1.5, n_pixels=10, smooth_fwhm=2.0,
                           deblend=deblend, error=error)
    assert isinstance(result, SegmentationResult)
    assert result.segment_map.dtype == np.int32
    np.testing.assert_array_equal(result.segment_map, segm.data)
    assert result.n_sources == segm.n_labels == len(result.catalog)
    ours = result.catalog
    assert ours.colnames[0] == "id"
    np.testing.assert_array_equal(ours["id"], ours["label"])
    assert_tables_equal(ours, theirs, skip=("sky_centroid",))


def test_segments_find_the_galaxies(galaxy_field):
    image, truth = galaxy_field
    result = find_segments(image, threshold=1.5 * NOISE, n_pixels=10, smooth_fwhm=2.0)
    cat = result.catalog
    idx = match(cat["x_centroid"], cat["y_centroid"], truth["x"], truth["y"], 2.0)
    assert np.all(idx >= 0), f"{np.sum(idx < 0)} galaxies missed"
    assert len(set(idx)) == len(truth)  # one segment each
    # Nothing else: every segment is a galaxy.
    assert result.n_sources == len(truth)
    # The measured shapes follow the truth: semi-major axis ~ the larger sigma.
    a = cat["semimajor_axis"].value[idx]
    assert np.median(a / np.maximum(truth["sx"], truth["sy"])) == pytest.approx(1.0, abs=0.25)
    # Each galaxy's pixels carry its label in the map.
    for k in range(len(truth)):
        label = cat["label"][idx[k]]
        assert result.segment_map[int(round(truth["y"][k])), int(round(truth["x"][k]))] == label


def test_deblending_splits_a_blended_pair():
    shape = (128, 128)
    rng = np.random.default_rng(11)
    image = (gaussian_blob(shape, 55, 64, 40, 4, 4) + gaussian_blob(shape, 69, 66, 25, 4, 4)
             + rng.normal(0, NOISE, shape))
    merged = find_segments(image, threshold=2.0, n_pixels=10, deblend=False)
    assert merged.n_sources == 1
    split = find_segments(image, threshold=2.0, n_pixels=10, deblend=True)
    assert split.n_sources == 2
    idx = match(split.catalog["x_centroid"], split.catalog["y_centroid"], [55, 69], [64, 66], 2.5)
    assert sorted(idx) == [0, 1]
    # The split covers the merged footprint.
    np.testing.assert_array_equal(split.segment_map > 0, merged.segment_map > 0)
    # contrast=1 disables deblending.
    assert find_segments(image, threshold=2.0, n_pixels=10, contrast=1.0).n_sources == 1


@pytest.mark.parametrize("deblend", [False, True])
@pytest.mark.parametrize("with_error", [False, True])
def test_no_segments_gives_zero_row_table(galaxy_field, deblend, with_error):
    image, _ = galaxy_field
    noise = np.random.default_rng(2).normal(0, 1, (128, 128))
    error = (lambda a: np.ones_like(a)) if with_error else (lambda a: None)
    full = find_segments(image, threshold=1.5, error=error(image)).catalog
    result = find_segments(noise, threshold=100.0, deblend=deblend, error=error(noise))
    assert result.n_sources == 0
    assert result.segment_map.shape == noise.shape and result.segment_map.dtype == np.int32
    assert not result.segment_map.any()
    empty = result.catalog
    assert isinstance(empty, QTable) and len(empty) == 0
    assert empty.colnames == full.colnames
    for name in full.colnames:
        assert empty[name].dtype == full[name].dtype, name
        assert getattr(empty[name], "unit", None) == getattr(full[name], "unit", None), name


def test_segments_nan_holes(galaxy_field):
    image, truth = galaxy_field
    holed = image.copy()
    rng = np.random.default_rng(4)
    holes = np.zeros(image.shape, dtype=bool)
    holes[rng.integers(0, 384, 300), rng.integers(0, 384, 300)] = True
    holes[:, :12] = True  # a NaN border
    holed[holes] = np.nan
    copy = holed.copy()
    result = find_segments(holed, threshold=1.5, n_pixels=10)
    np.testing.assert_array_equal(holed, copy)  # not modified
    assert result.n_sources == len(truth)
    assert not result.segment_map[:, :12].any()
    cat = result.catalog
    assert np.all(np.isfinite(cat["segment_flux"]))
    # Masked pixels do not count: the same segments measured with the holes as a
    # mask give the same fluxes as with NaN.
    masked = find_segments(image, threshold=1.5, n_pixels=10, mask=holes)
    np.testing.assert_array_equal(masked.segment_map, result.segment_map)
    np.testing.assert_allclose(masked.catalog["segment_flux"], cat["segment_flux"])
    # And each flux is the sum of the unmasked pixels of its segment.
    label = cat["label"][0]
    in_segment = (result.segment_map == label) & ~holes
    assert cat["segment_flux"][0] == pytest.approx(image[in_segment].sum(), rel=1e-10)


def test_segments_error_and_wcs(galaxy_field):
    image, _ = galaxy_field
    error = np.full(image.shape, 2.0, dtype=np.float32)
    wcs = simple_wcs(image.shape)
    result = find_segments(image.astype(np.float32), threshold=1.5, error=error, wcs=wcs)
    cat = result.catalog
    area = cat["area"].to_value("pix2")
    np.testing.assert_allclose(cat["segment_flux_err"], 2.0 * np.sqrt(area), rtol=1e-6)
    sky = wcs.pixel_to_world(cat["x_centroid"], cat["y_centroid"])
    np.testing.assert_allclose(cat["ra"].to_value("deg"), sky.ra.deg, rtol=0, atol=1e-10)
    assert cat.colnames[-2:] == ["ra", "dec"]


def test_segments_without_smoothing(galaxy_field):
    from photutils.segmentation import SourceCatalog, detect_sources

    image, _ = galaxy_field
    segm = detect_sources(image, 3.0, 10)
    theirs = SourceCatalog(image, segm).to_table()
    result = find_segments(image, threshold=3.0, n_pixels=10, smooth_fwhm=0, deblend=False)
    np.testing.assert_array_equal(result.segment_map, segm.data)
    assert_tables_equal(result.catalog, theirs, skip=("sky_centroid",))


@pytest.mark.parametrize("kwargs, param", [
    ({"threshold": 0.0}, "threshold"),
    ({"threshold": np.zeros((64, 64))}, "threshold"),
    ({"threshold": 1.0, "n_pixels": 0}, "n_pixels"),
    ({"threshold": 1.0, "n_pixels": 3.5}, "n_pixels"),
    ({"threshold": 1.0, "smooth_fwhm": -1}, "smooth_fwhm"),
    ({"threshold": 1.0, "smooth_fwhm": 100}, "smooth_fwhm"),
    ({"threshold": 1.0, "n_levels": 0}, "n_levels"),
    ({"threshold": 1.0, "contrast": 1.5}, "contrast"),
    ({"threshold": 1.0, "error": np.ones((3, 3))}, "error"),
    ({"threshold": 1.0, "mask": np.ones((3, 3), bool)}, "mask"),
    ({"threshold": 1.0, "background": np.ones((3, 3))}, "background"),
])
def test_segments_bad_parameters(kwargs, param):
    data = np.random.default_rng(0).normal(0, 1, (64, 64))
    with pytest.raises(InputError, match=param) as info:
        find_segments(data, **kwargs)
    assert info.value.param == param


# --------------------------------------------------------------------------
# A NIRCam-like frame: spiky PSF, galaxies, sky gradient, stripes, defects.

@pytest.fixture(scope="module")
def nircam():
    from jwst_widgets.datasets.synthetic import nircam_like

    return nircam_like((1024, 1024), seed=1, n_stars=300)


def is_real(x, y, truth, radius=1.5):
    """True for positions within radius of a star, or inside a galaxy's effective radius."""
    from scipy.spatial import cKDTree

    xy = np.column_stack([x, y])
    stars, galaxies = truth.stars, truth.galaxies
    d_star, _ = cKDTree(np.column_stack([stars["x"], stars["y"]])).query(xy)
    d_gal, i_gal = cKDTree(np.column_stack([galaxies["x"], galaxies["y"]])).query(xy)
    return (d_star < radius) | (d_gal < np.maximum(radius, np.asarray(galaxies["r_eff"])[i_gal]))


@pytest.mark.parametrize("background", ["truth", "estimated"])
def test_nircam_point_sources_against_truth(nircam, background):
    image, truth = nircam.image, nircam.truth
    if background == "truth":
        data, rms = image.data - truth.sky - truth.stripes, truth.noise_rms
    else:
        from jwst_widgets.processing.background import estimate_background

        bkg = estimate_background(image.data, box_size=64, filter_size=3, mask=image.mask)
        data, rms = image.data - bkg.background, bkg.background_rms
    found = find_point_sources(data, threshold=5.0 * rms, fwhm=truth.fwhm, mask=image.mask,
                               wcs=image.wcs)
    stars = truth.stars
    # Completeness: stars at S/N > 10, away from the NaN border, with no star or
    # galaxy centre within 2.5 FWHM (DAOFIND merges closer pairs).
    ny, nx = image.shape
    inside = (stars["x"] > 8) & (stars["x"] < nx - 9) & (stars["y"] > 8) & (stars["y"] < ny - 9)
    target = (stars["snr"] > 10) & inside & (stars["nearest"] > 2.5 * truth.fwhm)
    assert target.sum() > 200
    idx = match(found["x_centroid"], found["y_centroid"], stars["x"], stars["y"], 1.5)
    completeness = np.mean(idx[target] >= 0)
    assert completeness >= 0.93, completeness
    # Purity: a detection is real when it lies on a star (1.5 px) or within a
    # galaxy's effective radius; the rest are mostly knots of bright stars'
    # diffraction spikes.
    real = is_real(found["x_centroid"], found["y_centroid"], truth)
    assert np.mean(real) >= 0.93, np.mean(real)
    # Cosmic rays (masked, DO_NOT_USE) and hot pixels (left in the data, HOT
    # only) make no detection of their own.
    px = np.clip(np.round(np.asarray(found["x_centroid"])).astype(int), 0, nx - 1)
    py = np.clip(np.round(np.asarray(found["y_centroid"])).astype(int), 0, ny - 1)
    defect = truth.cosmic_rays[py, px] | truth.hot_pixels[py, px]
    assert not np.any(defect & ~real)
    # Sky positions follow the frame's WCS.
    sky = image.wcs.pixel_to_world(found["x_centroid"], found["y_centroid"])
    np.testing.assert_allclose(found["ra"].to_value("deg"), sky.ra.deg, atol=1e-9)


def test_nircam_segments_find_the_galaxies(nircam):
    from jwst_widgets.datasets.synthetic import DQ_FLAGS

    image, truth = nircam.image, nircam.truth
    data = image.data - truth.sky - truth.stripes
    # Hot pixels stay in the data (DQ HOT only): a segmentation, unlike DAOFIND's
    # sharpness cut, takes a hot pixel for a source, so mask them as a user would.
    hot = (nircam.dq & DQ_FLAGS["HOT"]) != 0
    result = find_segments(data, threshold=1.5 * truth.noise_rms, n_pixels=10, smooth_fwhm=2.0,
                           mask=image.mask | hot, error=image.error, wcs=image.wcs)
    galaxies = truth.galaxies
    ny, nx = image.shape
    # The S/N of a galaxy spread over a disc of twice its effective radius.
    rms = float(np.median(truth.noise_rms))
    size = np.maximum(np.asarray(galaxies["r_eff"]), 1.0)
    snr = galaxies["flux"].value / (rms * np.sqrt(np.pi * (2 * size) ** 2))
    inside = ((galaxies["x"] > 8) & (galaxies["x"] < nx - 9) & (galaxies["y"] > 8)
              & (galaxies["y"] < ny - 9))
    gx = np.round(np.asarray(galaxies["x"])).astype(int)
    gy = np.round(np.asarray(galaxies["y"])).astype(int)
    target = inside & (snr > 20)
    assert target.sum() > 40
    on_segment = result.segment_map[gy[target], gx[target]] > 0
    assert np.mean(on_segment) >= 0.97, np.mean(on_segment)
    # Isolated ones are one segment each, centred on the galaxy.
    cat = result.catalog
    isolated = target & (galaxies["nearest"] > 10)
    idx = match(cat["x_centroid"], cat["y_centroid"], galaxies["x"], galaxies["y"], 1e9)
    d = np.hypot(np.asarray(cat["x_centroid"])[idx] - galaxies["x"],
                 np.asarray(cat["y_centroid"])[idx] - galaxies["y"])
    close = d[isolated] < np.maximum(2.0, size[isolated] / 2)
    assert np.mean(close) >= 0.9, np.mean(close)
    # Every segment is on source light: the noiseless stars and galaxies peak
    # above the noise within it (a star, a galaxy, or a bright star's spike).
    from scipy import ndimage

    peak = ndimage.maximum(truth.sources, result.segment_map, cat["label"])
    on_light = np.asarray(peak) > 2 * rms
    assert np.mean(on_light) >= 0.97, np.mean(on_light)
    assert np.all(np.isfinite(cat["segment_flux"]))
    assert cat.colnames[-2:] == ["ra", "dec"]


# --------------------------------------------------------------------------
# The fast paths of find_segments: separable smoothing, and deblending only
# the segments photutils could split. Same results as photutils' own calls.

def make_crowded_field(shape=(512, 512), n=320, seed=12):
    """Many overlapping elliptical blobs: plenty of blends, and of single sources."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, NOISE, shape)
    for _ in range(n):
        x0, y0 = rng.uniform(5, shape[1] - 5), rng.uniform(5, shape[0] - 5)
        amp = np.exp(rng.uniform(np.log(2.0), np.log(200.0)))
        sx = rng.uniform(1.2, 5.0)
        sy = sx * rng.uniform(0.4, 1.0)
        t = rng.uniform(0, np.pi)
        # Each blob on its own box of +-8 sigma (its light beyond is < 1e-13).
        r = int(8 * sx) + 1
        ya, yb = max(int(y0) - r, 0), min(int(y0) + r + 1, shape[0])
        xa, xb = max(int(x0) - r, 0), min(int(x0) + r + 1, shape[1])
        yy, xx = np.mgrid[ya:yb, xa:xb]
        u = (xx - x0) * np.cos(t) + (yy - y0) * np.sin(t)
        v = -(xx - x0) * np.sin(t) + (yy - y0) * np.cos(t)
        image[ya:yb, xa:xb] += amp * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return image


@pytest.fixture(scope="module")
def crowded_field():
    return make_crowded_field()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fwhm", [2.0, 3.5])
def test_smoothing_equals_astropy_convolve(dtype, fwhm):
    from astropy.convolution import convolve
    from photutils.segmentation import make_2dgaussian_kernel

    from jwst_widgets.processing.detect import _smooth

    rng = np.random.default_rng(5)
    image = make_crowded_field((200, 230), n=40).astype(dtype)
    bad = np.zeros(image.shape, bool)
    bad[rng.integers(0, 200, 400), rng.integers(0, 230, 400)] = True
    bad[50:80, 100:130] = True                  # too large to fill in the middle
    bad[:, :2] = True                           # a bad border
    kernel = make_2dgaussian_kernel(fwhm, size=2 * int(np.ceil(fwhm)) + 1)
    for mask in (np.zeros_like(bad), bad):
        before = image.copy()
        ours, unfilled = _smooth(image, mask, fwhm)
        np.testing.assert_array_equal(image, before)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # "NaN values detected post convolution"
            theirs = convolve(image, kernel, mask=mask if mask.any() else None)
        assert ours.dtype == theirs.dtype == dtype
        np.testing.assert_array_equal(unfilled, np.isnan(theirs))
        ok = ~unfilled
        np.testing.assert_allclose(ours[ok], theirs[ok], rtol=1e-12 if dtype == np.float64 else 0,
                                   atol=1e-13 if dtype == np.float64 else 0)
        assert np.all(ours[unfilled] == 0)
    # The middle of the large hole stays unfilled; the bad border is filled
    # (astropy counts the zeros beyond the edge as good pixels).
    assert unfilled[60:70, 110:120].all() and not unfilled[:, :2].any()


def test_segments_with_bad_pixels_match_photutils(galaxy_field):
    # The smoothing interpolates bad pixels as astropy's convolve(mask=...) does.
    from astropy.convolution import convolve
    from photutils.segmentation import (SourceCatalog, deblend_sources, detect_sources,
                                        make_2dgaussian_kernel)

    image, _ = galaxy_field
    mask = np.zeros(image.shape, bool)
    rng = np.random.default_rng(6)
    mask[rng.integers(0, 384, 500), rng.integers(0, 384, 500)] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convolved = convolve(image, make_2dgaussian_kernel(2.0, size=5), mask=mask)
    segm = detect_sources(convolved, 1.5, 10)
    segm = deblend_sources(convolved, segm, 10, progress_bar=False)
    values = np.where(mask, 0.0, image)
    theirs = SourceCatalog(values, segm, convolved_data=convolved, mask=mask).to_table()
    result = find_segments(image, threshold=1.5, n_pixels=10, mask=mask)
    np.testing.assert_array_equal(result.segment_map, segm.data)
    assert_tables_equal(result.catalog, theirs, skip=("sky_centroid",))


@pytest.mark.parametrize("n_pixels, contrast", [(10, 0.001), (5, 0.0)])
def test_deblending_equals_photutils_on_a_crowded_field(crowded_field, n_pixels, contrast):
    from astropy.convolution import convolve
    from photutils.segmentation import deblend_sources, detect_sources, make_2dgaussian_kernel

    from jwst_widgets.processing.detect import _splittable_labels

    image = crowded_field
    convolved = convolve(image, make_2dgaussian_kernel(2.0, size=5))
    segm = detect_sources(convolved, 1.5, n_pixels)
    theirs = deblend_sources(convolved, segm, n_pixels, contrast=contrast, progress_bar=False)
    result = find_segments(image, threshold=1.5, n_pixels=n_pixels, contrast=contrast)
    np.testing.assert_array_equal(result.segment_map, theirs.data)
    assert result.n_sources == theirs.n_labels > segm.n_labels      # blends were split
    # The test means something: most segments were left out of photutils'
    # deblending, and none of those would have been split.
    candidates = _splittable_labels(convolved, segm.data, n_pixels)
    split = {int(p) for p in theirs.deblended_label_to_parent.values()}
    assert 0 < len(candidates) < 0.6 * segm.n_labels
    assert split and split <= set(candidates.tolist())


def test_splittable_labels_finds_every_split_source():
    # Property over many random fields: a segment photutils splits always has
    # two or more local maxima (the pre-selection never drops a real blend).
    from photutils.segmentation import deblend_sources, detect_sources

    from jwst_widgets.processing.detect import _deblend, _splittable_labels

    for seed in range(4):
        data = make_crowded_field((160, 160), n=60, seed=100 + seed)
        segm = detect_sources(data, 2.0, 5)
        theirs = deblend_sources(data, segm, 5, contrast=0.0, progress_bar=False)
        split = {int(p) for p in theirs.deblended_label_to_parent.values()}
        candidates = set(_splittable_labels(data, segm.data, 5).tolist())
        assert split <= candidates
        # and deblending only the candidates gives photutils' image exactly,
        # with photutils' deblend_sources and with our faster deblender
        ours = deblend_sources(data, segm, 5, contrast=0.0, progress_bar=False,
                               labels=sorted(candidates))
        np.testing.assert_array_equal(ours.data, theirs.data)
        fast = _deblend(data, segm, 5, 32, 0.0)
        np.testing.assert_array_equal(fast.data, theirs.data)
        assert fast.n_labels > segm.n_labels


# --------------------------------------------------------------------------
# The fast path of find_point_sources: photutils' star finders' exact
# catalogs (rows, order, ids, values), with the peaks above the threshold
# found directly, and the filled and convolved frame cached.

def photutils_stars(method, data, threshold, fwhm, *, mask=None, **options):
    """DAOStarFinder / IRAFStarFinder called plainly, with the finder's default cuts."""
    from photutils.detection import DAOStarFinder, IRAFStarFinder
    from photutils.utils.exceptions import NoDetectionsWarning

    from jwst_widgets.processing.detect import DEFAULT_SHAPE_RANGES

    finder = DAOStarFinder if method == "daofind" else IRAFStarFinder
    sharp, round_ = DEFAULT_SHAPE_RANGES[method]
    options = {"sharpness_range": sharp, "roundness_range": round_, **options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        return finder(threshold, fwhm, **options)(data, mask=mask)


def assert_same_catalog(ours, theirs):
    """Exactly photutils' table: the same columns, rows, order, dtypes and values."""
    if theirs is None:
        assert len(ours) == 0
        return
    assert ours.colnames[:len(theirs.colnames)] == theirs.colnames
    assert len(ours) == len(theirs)
    for name in theirs.colnames:
        a = np.asarray(getattr(ours[name], "value", ours[name]))
        b = np.asarray(getattr(theirs[name], "value", theirs[name]))
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert getattr(ours[name], "unit", None) == getattr(theirs[name], "unit", None), name


def filled_like_ours(data, mask, fwhm):
    """The image and mask find_point_sources hands to the finders (photutils' NaN
    handling is not ours, so photutils is compared on the filled image)."""
    from jwst_widgets.processing.detect import _bad_pixels, _fill_bad_pixels

    bad = _bad_pixels(np.asarray(data), mask)
    sigma = max(fwhm / (2 * np.sqrt(2 * np.log(2))), 1.0)      # as find_point_sources
    filled, unfilled = _fill_bad_pixels(np.asarray(data), bad, sigma)
    return filled, (unfilled if unfilled.any() else None)


@pytest.fixture(scope="module")
def nircam_subtracted(nircam):
    truth = nircam.truth
    data = (nircam.image.data - truth.sky - truth.stripes).astype(np.float32)
    rms = float(np.mean(truth.noise_rms[np.isfinite(truth.noise_rms)]))
    return data, nircam.image.mask, rms, float(truth.fwhm)


@pytest.mark.parametrize("method", ["daofind", "iraf"])
def test_nircam_catalogs_are_photutils(nircam_subtracted, method):
    # A crowded frame with spikes, galaxies, a NaN border and cosmic rays; a
    # threshold sweep (the first call fills and convolves, the next reuse it)
    # and an FWHM change.
    from jwst_widgets.processing.detect import _PREPARED

    data, mask, rms, fwhm = nircam_subtracted
    _PREPARED.clear()
    for k, f in ((3.0, fwhm), (5.0, fwhm), (10.0, fwhm), (5.0, 1.5 * fwhm)):
        ours = find_point_sources(data, threshold=k * rms, fwhm=f, method=method, mask=mask)
        filled, search_mask = filled_like_ours(data, mask, f)
        theirs = photutils_stars(method, filled, k * rms, f, mask=search_mask)
        assert len(ours) > 100
        assert_same_catalog(ours, theirs)
    assert len(_PREPARED) == 2                  # one entry per FWHM


@pytest.mark.parametrize("method", ["daofind", "iraf"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_noise_only_catalogs_are_photutils(method, dtype):
    # Thousands of noise peaks above a low threshold: the peaks photutils
    # checks one by one.
    noise = np.random.default_rng(21).normal(0.0, 1.0, (400, 300)).astype(dtype)
    for k in (1.0, 2.5, 4.0):
        ours = find_point_sources(noise, threshold=k, fwhm=2.5, method=method,
                                  sharpness_range=(-np.inf, np.inf),
                                  roundness_range=(-np.inf, np.inf))
        theirs = photutils_stars(method, noise, k, 2.5, sharpness_range=(-np.inf, np.inf),
                                 roundness_range=(-np.inf, np.inf))
        if k == 1.0:
            assert len(ours) > 500
        assert_same_catalog(ours, theirs)


def edge_field(shape=(96, 128), seed=4):
    """Stars on the edges and corners (some centred outside), ties, and noise."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    image = np.round(rng.normal(0.0, 1.0, shape) * 4) / 4    # quantised: ties
    spots = [(-0.6, -0.4), (0, 40), (0.3, ny - 1), (nx - 1, 0), (nx - 0.5, ny - 0.6),
             (20, 1.2), (nx - 2, 50), (64, ny - 1.5), (64, 48), (70, 50), (33.5, 33.5)]
    for i, (x0, y0) in enumerate(spots):
        image += (20 + 15 * i) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.2 ** 2))
    image[10:13, 100:103] = 30.0                               # a flat-topped source
    return image


@pytest.mark.parametrize("method", ["daofind", "iraf"])
@pytest.mark.parametrize("options", [
    {},
    {"exclude_border": True},
    {"n_brightest": 5},
    {"peak_max": 60.0},
    {"sharpness_range": (0.1, 1.5), "roundness_range": (-2.0, 2.0)},
    {"exclude_border": True, "n_brightest": 3, "peak_max": 100.0},
])
def test_edges_and_options_are_photutils(method, options):
    image = edge_field()
    for fwhm in (1.5, 2.8):
        ours = find_point_sources(image, threshold=3.0, fwhm=fwhm, method=method, **options)
        theirs = photutils_stars(method, image, 3.0, fwhm, **options)
        assert_same_catalog(ours, theirs)
    assert theirs is not None and len(theirs) >= 2


@pytest.mark.parametrize("method", ["daofind", "iraf"])
def test_threshold_array_and_nan_holes_are_photutils(sparse_stars, method):
    image, _ = sparse_stars
    rng = np.random.default_rng(8)
    threshold = rng.uniform(3.0, 8.0, image.shape)
    threshold[:, 400:] = np.inf              # no detection on the right
    holed = image.astype(np.float32)
    holed[rng.integers(0, 512, 300), rng.integers(0, 512, 300)] = np.nan
    holed[:, :6] = np.nan                    # a NaN border, partly too wide to fill
    mask = np.zeros(image.shape, dtype=bool)
    mask[200:230, 200:230] = True            # a masked block, too big to fill inside
    ours = find_point_sources(holed, threshold=threshold, fwhm=FWHM, method=method, mask=mask)
    filled, search_mask = filled_like_ours(holed, mask, FWHM)
    assert search_mask is not None and search_mask[215, 215] and search_mask[100, 0]
    theirs = photutils_stars(method, filled, threshold, FWHM, mask=search_mask)
    assert len(ours) > 50 and np.all(ours["x_centroid"] < 402)
    assert_same_catalog(ours, theirs)


@pytest.mark.parametrize("shape, fwhm", [((5, 5), 1.2), ((6, 9), 1.5), ((17, 12), 3.0),
                                         ((2, 40), 0.5)])
@pytest.mark.parametrize("method", ["daofind", "iraf"])
def test_tiny_images_are_photutils(shape, fwhm, method):
    rng = np.random.default_rng(sum(shape))
    image = rng.normal(0.0, 1.0, shape)
    image[shape[0] // 2, shape[1] // 2] += 30.0
    for threshold in (0.2, 2.0):
        ours = find_point_sources(image, threshold=threshold, fwhm=fwhm, method=method,
                                  sharpness_range=(-np.inf, np.inf),
                                  roundness_range=(-np.inf, np.inf))
        theirs = photutils_stars(method, image, threshold, fwhm,
                                 sharpness_range=(-np.inf, np.inf),
                                 roundness_range=(-np.inf, np.inf))
        assert_same_catalog(ours, theirs)


def odd_frame(rng):
    """A small frame of one of several kinds that make peak finding hard."""
    ny, nx = rng.integers(5, 90, 2)
    kind = rng.integers(0, 4)
    yy, xx = np.mgrid[:ny, :nx]
    image = rng.normal(0.0, 1.0, (ny, nx))
    if kind == 0:                                    # stars, some off the edges
        for _ in range(rng.integers(1, 15)):
            image += rng.uniform(3, 300) * np.exp(
                -((xx - rng.uniform(-3, nx + 3)) ** 2 + (yy - rng.uniform(-3, ny + 3)) ** 2)
                / (2 * rng.uniform(0.5, 3) ** 2))
    elif kind == 1:                                  # integers: many ties
        image = np.round(image * rng.uniform(0.5, 3)) + 10.0 * (rng.random((ny, nx)) < 0.05)
    elif kind == 2:                                  # plateaus
        image = np.zeros((ny, nx))
        image[rng.integers(0, ny):, rng.integers(0, nx):] = rng.choice([1.0, 5.0, -3.0])
        image += np.round(rng.normal(0, 1, (ny, nx))) * rng.integers(0, 2)
    else:                                            # constant
        image = np.full((ny, nx), rng.choice([0.0, 2.0, -1.0]))
    return image.astype(np.float32) if rng.random() < 0.4 else image


def test_star_finders_on_odd_frames_are_photutils():
    # The finders' own options beyond find_point_sources' (min_separation,
    # including 0: the kernel's footprint), radii whose footprints are
    # off-centre, ties, plateaus, constant frames, masks, threshold arrays;
    # through photutils' catalog classes and through the public xycoords path.
    from photutils.detection import DAOStarFinder, IRAFStarFinder
    from photutils.utils.exceptions import NoDetectionsWarning

    from jwst_widgets.processing import _starfind

    rng = np.random.default_rng(2024)
    found = 0
    for _ in range(120):
        image = odd_frame(rng)
        fwhm = float(rng.choice([0.5, 0.7, 1.1, 1.16, 1.5, 1.9, 2.3, 2.7, 3.1, 4.2, 6.3]))
        threshold = float(rng.choice([0.05, 0.3, 1.0, 3.0, 20.0]))
        if rng.random() < 0.2:
            threshold = rng.uniform(0.01, 2 * threshold, image.shape)
        mask = rng.random(image.shape) < 0.1 if rng.random() < 0.4 else None
        options = {"exclude_border": bool(rng.random() < 0.5),
                   "n_brightest": int(rng.integers(1, 20)) if rng.random() < 0.3 else None,
                   "peak_max": float(rng.uniform(1, 100)) if rng.random() < 0.3 else None,
                   "sharpness_range": None, "roundness_range": None}
        if rng.random() < 0.3:
            options["min_separation"] = float(rng.choice([0.0, 0.5, 1.3, 2.75, 2.9, 7.5]))
        finder = DAOStarFinder if rng.random() < 0.5 else IRAFStarFinder
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoDetectionsWarning)
            theirs = finder(threshold, fwhm, **options)(image, mask=mask)
            ours = _starfind.find_stars(finder(threshold, fwhm, **options), image, mask=mask)
            public = _starfind.find_stars(finder(threshold, fwhm, **options), image, mask=mask,
                                          public=True)
        assert (ours is None) == (theirs is None) == (public is None)
        if theirs is not None:
            assert_same_catalog(ours, theirs)
            assert_same_catalog(public, theirs)
            found += 1
    assert found > 50


@pytest.mark.parametrize("radius", [1.25, 1.5, 2.0, 2.5, 2.75, 2.9, 3.0, 5.0, 5.75, 7.5, 12.5])
def test_peaks_are_photutils_find_peaks(radius):
    from photutils.detection import find_peaks
    from photutils.utils.exceptions import NoDetectionsWarning

    from jwst_widgets.processing._starfind import find_peaks as fast_find_peaks

    rng = np.random.default_rng(int(radius * 100))
    image = np.round(rng.normal(0.0, 1.0, (120, 90)) * 2)     # ties everywhere
    image[::17, ::13] += 6.0
    mask = rng.random(image.shape) < 0.05
    for kwargs in ({}, {"mask": mask}, {"border": (3, 5)}, {"mask": mask, "border": (0, 2)}):
        theirs = find_peaks(image, 1.0, min_separation=radius, mask=kwargs.get("mask"),
                            border_width=kwargs.get("border"))
        ours = fast_find_peaks(image, 1.0, radius, **kwargs)
        assert len(theirs) > 20
        np.testing.assert_array_equal(ours, np.transpose((theirs["x_peak"], theirs["y_peak"])))
    # A constant image above the threshold has no peaks (photutils' rule).
    with pytest.warns(NoDetectionsWarning, match="constant"):
        assert find_peaks(np.full((20, 30), 3.0), 1.0, min_separation=radius) is None
    assert fast_find_peaks(np.full((20, 30), 3.0), 1.0, radius) is None
    assert fast_find_peaks(np.full((20, 30), 3.0), 1.0, radius, border=(0, 1)) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fraction, sigma, whole_frame", [(0.005, 1.0, False),
                                                          (0.005, 1.6, False),
                                                          (0.6, 1.0, True)])
def test_fill_is_the_weighted_mean_of_good_neighbours(dtype, fraction, sigma, whole_frame):
    # A few bad pixels (read around each) or most of the frame (filtered whole):
    # both give scipy's Gaussian-filter ratio, and leave the input alone.
    from scipy import ndimage

    from jwst_widgets.processing.detect import (_MIN_FILL_WEIGHT, _few_bad_pixels,
                                                _fill_bad_pixels, _gaussian_weights)

    rng = np.random.default_rng(3)
    image = rng.normal(10.0, 3.0, (300, 280)).astype(dtype)
    bad = rng.random(image.shape) < fraction
    bad[:, :2] = True                          # an edge
    bad[100:120, 100:120] = True               # a hole too big to fill in the middle
    image[bad] = np.nan
    # Which way the filling goes (see _fill_bad_pixels).
    assert _few_bad_pixels(bad.sum(), bad.size, _gaussian_weights(sigma).size) != whole_frame
    before = image.copy()
    filled, unfilled = _fill_bad_pixels(image, bad, sigma)
    np.testing.assert_array_equal(image, before)
    good = (~bad).astype(np.float64)
    weight = ndimage.gaussian_filter(good, sigma, mode="constant", truncate=4.0)
    total = ndimage.gaussian_filter(np.where(bad, 0.0, image.astype(np.float64)), sigma,
                                    mode="constant", truncate=4.0)
    expected_unfilled = bad & (weight < _MIN_FILL_WEIGHT)
    np.testing.assert_array_equal(unfilled, expected_unfilled)
    assert unfilled[110, 110] and unfilled.sum() < bad.sum()
    fillable = bad & ~expected_unfilled
    assert filled.dtype == dtype
    np.testing.assert_allclose(filled[fillable], total[fillable] / weight[fillable],
                               rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(filled[~bad], image[~bad])
    assert np.all(filled[unfilled] == 0)


def test_cache_reuses_work_but_never_stale_data(star_field):
    from photutils.detection import DAOStarFinder

    from jwst_widgets.processing.detect import _PREPARED

    image, _ = star_field
    original = image.copy()
    data = image.copy()
    _PREPARED.clear()
    first = find_point_sources(data, threshold=5.0, fwhm=FWHM)
    assert len(_PREPARED) == 1
    # The same content in another array, another threshold: the cached work.
    again = find_point_sources(original.copy(), threshold=5.0, fwhm=FWHM)
    other = find_point_sources(original.copy(), threshold=8.0, fwhm=FWHM)
    assert len(_PREPARED) == 1
    assert_same_catalog(again, first)
    assert_same_catalog(other, DAOStarFinder(8.0, FWHM)(original))
    # The array changed in place: new work, photutils' answer on the new data.
    data[250:262, 250:262] += 400 * np.exp(-((np.mgrid[:12, :12] - 5.5) ** 2).sum(0) / 3.0)
    changed = find_point_sources(data, threshold=5.0, fwhm=FWHM)
    assert len(_PREPARED) == 2
    assert_same_catalog(changed, DAOStarFinder(5.0, FWHM)(data))
    assert len(changed) == len(first) + 1
    # The cache holds no reference to the caller's (changed) array.
    back = find_point_sources(original.copy(), threshold=5.0, fwhm=FWHM)
    assert_same_catalog(back, first)
    # Another mask is other work.
    mask = np.zeros(image.shape, dtype=bool)
    mask[:, :100] = True
    masked = find_point_sources(original, threshold=5.0, fwhm=FWHM, mask=mask)
    assert len(_PREPARED) == 3 and len(masked) < len(first)


def test_array_cache_is_bounded_and_read_only():
    from jwst_widgets.processing._starfind import ArrayCache, content_key
    from jwst_widgets.processing.detect import _PREPARED

    assert _PREPARED.max_bytes == 256 * 2**20
    cache = ArrayCache(max_bytes=3 * 800)
    arrays = [np.full(100, float(i)) for i in range(5)]          # 800 bytes each
    keys = [content_key(a, 2.0) for a in arrays]
    assert len(set(keys)) == 5 and content_key(arrays[0].copy(), 2.0) == keys[0]
    assert content_key(arrays[0], 2.5) != keys[0]
    for key, a in zip(keys, arrays):
        cache.put(key, (a, None))
        cache.get(keys[0])                                        # keep the first in use
    assert len(cache) == 3 and cache.nbytes <= 3 * 800
    assert cache.get(keys[0]) is not None and cache.get(keys[1]) is None
    assert cache.get(keys[4])[0] is arrays[4]
    with pytest.raises(ValueError):
        arrays[4][0] = 1.0                                        # stored arrays are read-only
    cache.put(content_key(np.zeros(1000)), (np.zeros(1000),))    # too big: not kept
    assert len(cache) == 3
