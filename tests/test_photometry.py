"""Tests of jwst_widgets.processing.photometry: against truth and against photutils."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable

from jwst_widgets.errors import InputError
from jwst_widgets.processing.photometry import (FLAG_MASKED, FLAG_NO_BACKGROUND, FLAG_OUTSIDE,
                                                FLAG_PARTIAL, ApertureCorrection,
                                                aperture_photometry,
                                                measure_aperture_correction)

FWHM = 3.0
SIGMA_PSF = FWHM / (2 * np.sqrt(2 * np.log(2)))
SKY = 10.0
READ_NOISE = 1.0
GAIN = 4.0  # counts per data unit, for the sources' photon noise
PHOT_COLUMNS = ["id", "x_center", "y_center", "aperture_sum", "aperture_sum_err",
                "annulus_median", "local_bkg", "aperture_area", "flux", "flux_err", "flags"]
JY_COLUMNS = ["flux_jy", "flux_jy_err", "mag_ab", "mag_ab_err"]


def make_field(shape=(384, 384), spacing=32, seed=0, flux_range=(100, 5e4)):
    """Isolated Gaussian stars on a flat sky; Gaussian noise with a known error map.

    Returns the image, its error map, the truth table and the noiseless
    sources (stars only, no sky).
    """
    from photutils.datasets import make_model_image
    from photutils.psf import CircularGaussianPRF

    rng = np.random.default_rng(seed)
    gy, gx = np.mgrid[spacing:shape[0] - spacing + 1:spacing,
                      spacing:shape[1] - spacing + 1:spacing]
    x = gx.ravel() + rng.uniform(-3, 3, gx.size)
    y = gy.ravel() + rng.uniform(-3, 3, gy.size)
    flux = np.exp(rng.uniform(*np.log(flux_range), x.size))
    truth = QTable({"x_0": x, "y_0": y, "flux": flux, "fwhm": np.full(x.size, FWHM)})
    model = make_model_image(shape, CircularGaussianPRF(), truth, model_shape=(31, 31))
    error = np.sqrt(READ_NOISE ** 2 + (model + SKY) / GAIN)
    image = SKY + model + rng.normal(0.0, 1.0, shape) * error
    return image, error, truth, model


def true_aperture_flux(model, truth, radius):
    """The true flux of each (isolated) star within ``radius``, from the noiseless model."""
    from photutils.aperture import CircularAperture
    from photutils.aperture import aperture_photometry as phot

    xy = np.column_stack([truth["x_0"], truth["y_0"]])
    return np.asarray(phot(model, CircularAperture(xy, r=radius))["aperture_sum"])


def encircled_energy(model, truth, radius):
    """The PSF's encircled energy within ``radius``, averaged over the stars' sub-pixel phases."""
    return float(np.mean(true_aperture_flux(model, truth, radius) / truth["flux"]))


@pytest.fixture(scope="module")
def field():
    image, error, truth, model = make_field()
    truth.meta["model"] = model
    return image, error, truth


def photutils_reference(image, xy, radius, r_in, r_out, *, error=None, mask=None, sigma=3.0):
    from astropy.stats import SigmaClip
    from photutils.aperture import (ApertureStats, CircularAnnulus, CircularAperture)
    from photutils.aperture import aperture_photometry as phot

    aperture = CircularAperture(xy, r=radius)
    table = phot(image, aperture, error=error, mask=mask)
    stats = ApertureStats(image, CircularAnnulus(xy, r_in, r_out), mask=mask,
                          sigma_clip=SigmaClip(sigma=sigma, maxiters=10))
    area = aperture.area_overlap(image, mask=mask)
    return table, stats, area


# --------------------------------------------------------------------------
# Same numbers as photutils.

def test_matches_photutils(field):
    image, error, truth = field
    xy = np.column_stack([truth["x_0"], truth["y_0"]])
    mask = np.zeros(image.shape, dtype=bool)
    mask[100:104, 90:200] = True
    table, stats, area = photutils_reference(image, xy, 4.0, 8.0, 12.0, error=error, mask=mask)
    ours = aperture_photometry(image, xy, radius=4.0, annulus_inner=8.0, annulus_outer=12.0,
                               error=error, mask=mask)
    assert ours.colnames == PHOT_COLUMNS
    np.testing.assert_array_equal(ours["id"], np.arange(1, len(xy) + 1))
    np.testing.assert_allclose(ours["aperture_sum"], table["aperture_sum"], rtol=1e-12)
    np.testing.assert_allclose(ours["aperture_sum_err"], table["aperture_sum_err"], rtol=1e-12)
    np.testing.assert_allclose(ours["annulus_median"], stats.median, rtol=1e-12)
    np.testing.assert_allclose(ours["aperture_area"].to_value(u.pix ** 2), area, rtol=1e-12)
    expected = np.asarray(table["aperture_sum"]) - stats.median * area
    np.testing.assert_allclose(ours["flux"], expected, rtol=1e-12)
    assert ours["aperture_area"].unit == u.pix ** 2
    assert ours.meta["radius"] == 4.0 and ours.meta["annulus_outer"] == 12.0
    # Apertures crossing the masked strip are flagged, the others not.
    crossing = np.asarray(area) < np.pi * 16 - 1e-9
    assert crossing.any()
    np.testing.assert_array_equal((ours["flags"] & FLAG_MASKED) != 0, crossing)


def test_no_sigma_clip_is_plain_median(field):
    from photutils.aperture import ApertureStats, CircularAnnulus

    image, _, truth = field
    xy = np.column_stack([truth["x_0"], truth["y_0"]])[:10]
    ours = aperture_photometry(image, xy, sigma_clip=None)
    stats = ApertureStats(image, CircularAnnulus(xy, 8.0, 12.0))
    np.testing.assert_allclose(ours["annulus_median"], stats.median, rtol=1e-12)


# --------------------------------------------------------------------------
# Against truth.

def test_fluxes_match_truth_after_encircled_energy_correction(field):
    image, error, truth = field
    radius = 3.0
    ee = encircled_energy(truth.meta["model"], truth, radius)
    assert ee == pytest.approx(0.92, abs=0.01)
    table = aperture_photometry(image, np.column_stack([truth["x_0"], truth["y_0"]]),
                                radius=radius, error=error, aperture_correction=1 / ee)
    snr = np.asarray(table["flux"] / table["flux_err"])
    bright = snr > 100
    assert bright.sum() > 30
    ratio = np.asarray(table["flux"])[bright] / truth["flux"][bright]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
    assert np.all(np.abs(ratio - 1) < 0.03)
    # The local background is the sky.
    assert np.median(table["local_bkg"]) == pytest.approx(SKY, abs=0.05)


def test_flux_errors_are_honest(field):
    """(measured - true) / flux_err has unit scatter: the error budget is right."""
    image, error, truth = field
    xy = np.column_stack([truth["x_0"], truth["y_0"]])
    truth_in_aperture = true_aperture_flux(truth.meta["model"], truth, 4.0)
    table = aperture_photometry(image, xy, radius=4.0, error=error)
    pull = (np.asarray(table["flux"]) - truth_in_aperture) / np.asarray(table["flux_err"])
    assert np.std(pull) == pytest.approx(1.0, abs=0.2)
    assert abs(np.median(pull)) < 0.3
    # Without ERR the error is the sky's alone, estimated from the annulus:
    # right on empty sky (between the stars).
    sky_xy = xy[:-12] + 16.0
    table = aperture_photometry(image, sky_xy, radius=4.0)
    pull = np.asarray(table["flux"]) / np.asarray(table["flux_err"])
    assert len(pull) > 100
    assert np.std(pull) == pytest.approx(1.0, abs=0.2)
    assert abs(np.median(pull)) < 0.3


def test_measured_aperture_correction_recovers_truth(field):
    image, error, truth = field
    xy = np.column_stack([truth["x_0"], truth["y_0"]])
    corr = measure_aperture_correction(image, xy, radius=3.0, reference_radius=12.0,
                                       error=error)
    assert isinstance(corr, ApertureCorrection)
    model = truth.meta["model"]
    expected = encircled_energy(model, truth, 12.0) / encircled_energy(model, truth, 3.0)
    assert corr.value == pytest.approx(expected, rel=0.005)
    assert 0 < corr.uncertainty < 0.01
    assert 45 <= corr.n_stars <= 50  # the 50 brightest (max_stars), less a few clipped
    table = aperture_photometry(image, xy, radius=3.0, error=error, aperture_correction=corr)
    bright = np.asarray(table["flux"] / table["flux_err"]) > 100
    ratio = np.asarray(table["flux"])[bright] / truth["flux"][bright]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
    # Its uncertainty adds to the flux error.
    plain = aperture_photometry(image, xy, radius=3.0, error=error,
                                aperture_correction=corr.value)
    assert np.all(table["flux_err"] > plain["flux_err"])
    assert table.meta["aperture_correction"] == corr.value
    assert table.meta["aperture_correction_err"] == corr.uncertainty


def test_aperture_correction_rejects_neighbours_and_faint_stars(field):
    image, error, truth = field
    xy = np.column_stack([truth["x_0"], truth["y_0"]])
    kwargs = dict(radius=3.0, reference_radius=10.0, max_stars=1000, error=error)
    everything = measure_aperture_correction(image, xy, min_snr=0, **kwargs)
    bright = measure_aperture_correction(image, xy, min_snr=300, **kwargs)
    assert 10 < bright.n_stars < everything.n_stars
    # A neighbour 6 px from a bright star removes it (stars well inside the frame).
    central = np.flatnonzero((np.abs(xy - 192) < 120).all(axis=1)
                             & (truth["flux"] > 20000))[:5]
    assert len(central) == 5
    crowded = np.vstack([xy, xy[central] + [6.0, 0.0]])
    fewer = measure_aperture_correction(image, crowded, min_snr=300, **kwargs)
    assert fewer.n_stars == bright.n_stars - 5
    with pytest.raises(InputError, match="at least 3 bright isolated stars") as info:
        measure_aperture_correction(image, xy[:2], radius=3.0, reference_radius=10.0)
    assert info.value.param == "positions"


# --------------------------------------------------------------------------
# Units, Jy and AB magnitudes.

def test_jansky_and_ab_magnitudes(field):
    image, error, truth = field
    xy = np.column_stack([truth["x_0"], truth["y_0"]])[:20]
    pixar_sr = 2.29e-14
    table = aperture_photometry(image, xy, error=error, unit="MJy/sr", pixar_sr=pixar_sr)
    assert table.colnames == PHOT_COLUMNS + JY_COLUMNS
    for name in ("aperture_sum", "local_bkg", "flux", "flux_err", "annulus_median"):
        assert table[name].unit == u.MJy / u.sr
    flux = table["flux"].value
    np.testing.assert_allclose(table["flux_jy"].to_value(u.Jy), flux * pixar_sr * 1e6)
    np.testing.assert_allclose(table["mag_ab"].value,
                               -2.5 * np.log10(flux * pixar_sr * 1e6 / 3631.0))
    np.testing.assert_allclose(table["mag_ab_err"].value,
                               1.0857362 * table["flux_err"].value / flux, rtol=1e-6)
    assert table["mag_ab"].unit == u.mag
    # A flux density per pixel converts without pixar_sr; other units do not convert.
    njy = aperture_photometry(image, xy, unit=u.nJy)
    np.testing.assert_allclose(njy["flux_jy"].to_value(u.Jy), njy["flux"].value * 1e-9)
    assert "flux_jy" not in aperture_photometry(image, xy, unit="MJy/sr").colnames
    assert "flux_jy" not in aperture_photometry(image, xy, unit="DN/s", pixar_sr=1e-14).colnames
    # A source with no positive flux has no magnitude.
    dark = aperture_photometry(np.zeros((64, 64)) + np.r_[:64] * 0.0, [(32, 32)],
                               unit="MJy/sr", pixar_sr=pixar_sr)
    assert np.isnan(dark["mag_ab"][0])


def test_sky_columns(field):
    from astropy.wcs import WCS

    image, _, truth = field
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = [100, 120]
    wcs.wcs.cdelt = [-1e-5, 1e-5]
    xy = np.column_stack([truth["x_0"], truth["y_0"]])[:10]
    table = aperture_photometry(image, xy, wcs=wcs)
    ra, dec = wcs.all_pix2world(xy[:, 0], xy[:, 1], 0)
    np.testing.assert_allclose(table["ra"].to_value(u.deg), ra, rtol=0, atol=1e-10)
    np.testing.assert_allclose(table["dec"].to_value(u.deg), dec, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------
# Catalog input, edge cases, empty input.

def test_catalog_input_is_joined_and_not_modified(field):
    from jwst_widgets.processing.detect import find_point_sources

    image, error, truth = field
    catalog = find_point_sources(image - SKY, threshold=5.0, fwhm=FWHM)
    catalog["id"] = catalog["id"] + 100  # ids of the caller's choosing
    before = catalog.copy()
    table = aperture_photometry(image, catalog, error=error)
    assert len(table) == len(catalog)
    np.testing.assert_array_equal(table["id"], catalog["id"])
    # The detection's columns, then the photometry's; DAOFIND's flux renamed.
    expected = (["id"] + [c if c != "flux" else "flux_detection" for c in catalog.colnames[1:]]
                + PHOT_COLUMNS[1:])
    assert table.colnames == expected
    np.testing.assert_array_equal(table["flux_detection"], catalog["flux"])
    np.testing.assert_array_equal(table["x_center"], catalog["x_centroid"])
    # Same photometry as from the bare positions.
    bare = aperture_photometry(image, np.column_stack([catalog["x_centroid"],
                                                       catalog["y_centroid"]]), error=error)
    np.testing.assert_array_equal(table["flux"], bare["flux"])
    # The caller's table is untouched.
    assert catalog.colnames == before.colnames
    for name in catalog.colnames:
        np.testing.assert_array_equal(catalog[name], before[name])


def test_positions_off_the_frame_and_bad_pixels():
    rng = np.random.default_rng(1)
    image = rng.normal(5.0, 1.0, (100, 100))
    mask = np.zeros(image.shape, dtype=bool)
    mask[40:80, 40:80] = True  # a big masked block
    image[45, 45] = np.nan
    positions = [(50.0, 20.0),       # fine
                 (-20.0, 50.0),      # off the frame
                 (np.nan, 10.0),     # not finite
                 (1.0, 50.0),        # aperture runs off the left edge
                 (42.0, 20.0),       # annulus partly masked: still fine
                 (60.0, 60.0),       # aperture and annulus fully masked
                 (45.0, 45.0)]       # on the NaN, inside the mask
    table = aperture_photometry(image, positions, mask=mask)
    flags = np.asarray(table["flags"])
    assert flags[0] == 0 and flags[4] == 0
    assert flags[1] == flags[2] == FLAG_OUTSIDE
    assert np.all(np.isnan([table["flux"][1], table["flux"][2], table["aperture_sum"][1]]))
    assert np.isnan(table["x_center"][2]) and table["x_center"][1] == -20.0
    assert flags[3] == FLAG_PARTIAL
    assert table["aperture_area"][3].value < np.pi * 16
    assert flags[5] & FLAG_MASKED and flags[5] & FLAG_NO_BACKGROUND
    assert np.isnan(table["flux"][5]) and table["aperture_area"][5].value == 0
    assert np.isfinite(table["flux"][0]) and np.isfinite(table["flux"][4])


@pytest.mark.parametrize("positions", [np.zeros((0, 2)), [], "table"])
def test_no_positions_give_zero_row_table(field, positions):
    image, error, _ = field
    one = [(50, 50)]
    if isinstance(positions, str):
        one = QTable({"id": [7], "x_centroid": [50.0], "y_centroid": [50.0], "peak": [3.0]})
        positions = one[:0]
    full = aperture_photometry(image, one, error=error, unit="MJy/sr", pixar_sr=1e-14)
    table = aperture_photometry(image, positions, error=error, unit="MJy/sr", pixar_sr=1e-14)
    assert isinstance(table, QTable) and len(table) == 0
    assert table.colnames == full.colnames
    for name in full.colnames:
        assert getattr(table[name], "unit", None) == getattr(full[name], "unit", None), name


def test_without_annulus_background_is_zero(field):
    image, error, truth = field
    xy = np.column_stack([truth["x_0"], truth["y_0"]])[:10]
    table = aperture_photometry(image - SKY, xy, annulus_inner=None, annulus_outer=None,
                                error=error)
    np.testing.assert_array_equal(table["local_bkg"], 0.0)
    np.testing.assert_array_equal(table["flux"], table["aperture_sum"])
    assert np.all(np.isnan(table["annulus_median"]))


def test_inputs_not_modified_and_dtypes(field):
    image, error, truth = field
    data = image.astype(np.float32)
    err = error.astype(np.float32)
    mask = np.zeros(data.shape, dtype=bool)
    mask[10:20, 10:20] = True
    xy = np.column_stack([truth["x_0"], truth["y_0"]])
    copies = data.copy(), err.copy(), mask.copy(), xy.copy()
    t32 = aperture_photometry(data, xy, error=err, mask=mask)
    measure_aperture_correction(data, xy, radius=3.0, reference_radius=10.0, error=err,
                                mask=mask)
    for a, b in zip((data, err, mask, xy), copies):
        np.testing.assert_array_equal(a, b)
    t64 = aperture_photometry(image, xy, error=error, mask=mask)
    np.testing.assert_allclose(t32["flux"], t64["flux"], rtol=1e-4, atol=1e-2)
    big = aperture_photometry(data.astype(">f4"), xy, error=err.astype(">f4"), mask=mask)
    np.testing.assert_array_equal(big["flux"], t32["flux"])


@pytest.mark.parametrize("kwargs, param", [
    ({"radius": 0.0}, "radius"),
    ({"radius": -2.0}, "radius"),
    ({"radius": "big"}, "radius"),
    ({"radius": 500.0}, "radius"),
    ({"radius": 5.0, "annulus_inner": 4.0}, "annulus_inner"),
    ({"annulus_inner": 12.0, "annulus_outer": 10.0}, "annulus_outer"),
    ({"annulus_outer": 80.0}, "annulus_outer"),
    ({"annulus_inner": None}, "annulus_inner"),
    ({"sigma_clip": -1.0}, "sigma_clip"),
    ({"aperture_correction": 0.0}, "aperture_correction"),
    ({"aperture_correction": (1.1,)}, "aperture_correction"),
    ({"aperture_correction": "auto"}, "aperture_correction"),
    ({"error": np.ones((3, 3))}, "error"),
    ({"mask": np.ones((3, 3), bool)}, "mask"),
    ({"unit": "not a unit"}, "unit"),
    ({"pixar_sr": -1.0}, "pixar_sr"),
    ({"wcs": 42}, "wcs"),
])
def test_bad_parameters(kwargs, param):
    image = np.random.default_rng(0).normal(0, 1, (100, 100))
    with pytest.raises(InputError, match=param) as info:
        aperture_photometry(image, [(50, 50)], **kwargs)
    assert info.value.param == param


@pytest.mark.parametrize("positions", [np.zeros((3, 3)), np.array(["a", "b"]), None,
                                       QTable({"ra": [1.0], "dec": [2.0]})])
def test_bad_positions(positions):
    with pytest.raises(InputError, match="positions") as info:
        aperture_photometry(np.zeros((50, 50)), positions)
    assert info.value.param == "positions"


@pytest.mark.parametrize("kwargs, param", [
    ({"radius": 0.0, "reference_radius": 10.0}, "radius"),
    ({"radius": 5.0, "reference_radius": 4.0}, "reference_radius"),
    ({"radius": 3.0, "reference_radius": 10.0, "annulus_inner": 8.0, "annulus_outer": 15.0},
     "annulus_inner"),
    ({"radius": 3.0, "reference_radius": 10.0, "annulus_inner": 12.0, "annulus_outer": 11.0},
     "annulus_outer"),
    ({"radius": 3.0, "reference_radius": 10.0, "min_stars": 0}, "min_stars"),
    ({"radius": 3.0, "reference_radius": 10.0, "max_stars": 0}, "max_stars"),
    ({"radius": 3.0, "reference_radius": 10.0, "min_snr": -1}, "min_snr"),
])
def test_aperture_correction_bad_parameters(kwargs, param):
    image = np.random.default_rng(0).normal(0, 1, (100, 100))
    with pytest.raises(InputError, match=param) as info:
        measure_aperture_correction(image, [(50, 50)], **kwargs)
    assert info.value.param == param


# --------------------------------------------------------------------------
# A NIRCam-like frame: JWST-like PSF (wide wings), MJy/sr, ERR, DQ.

@pytest.fixture(scope="module")
def nircam():
    from jwst_widgets.datasets.synthetic import nircam_like

    return nircam_like((1024, 1024), seed=1, n_stars=300)


def bright_isolated(stars, table, snr=100, nearest=15):
    """Stars bright and isolated enough that crowding does not bias their photometry."""
    return (stars["snr"] > snr) & (stars["nearest"] > nearest) & (np.asarray(table["flags"]) == 0)


def test_nircam_fluxes_after_encircled_energy_correction(nircam):
    image, truth = nircam.image, nircam.truth
    stars = truth.stars
    radius = 4.0
    ee = float(truth.encircled_energy(radius))
    table = aperture_photometry(image.data - truth.sky - truth.stripes,
                                np.column_stack([stars["x"], stars["y"]]), radius=radius,
                                annulus_inner=8.0, annulus_outer=12.0, error=image.error,
                                mask=image.mask, unit=image.unit,
                                pixar_sr=image.meta["pixar_sr"], aperture_correction=1 / ee)
    use = bright_isolated(stars, table)
    assert use.sum() > 30
    ratio = table["flux"][use].value / stars["flux"][use].value
    # The annulus (8-12 px) holds some of the PSF's wings: ~1 % low.
    assert np.median(ratio) == pytest.approx(0.99, abs=0.015)
    assert np.percentile(np.abs(ratio - 1), 80) < 0.03
    dmag = table["mag_ab"][use].value - stars["mag_ab"][use]
    assert np.median(dmag) == pytest.approx(0.01, abs=0.015)
    ratio_jy = table["flux_jy"][use].to_value(u.Jy) / stars["flux_jy"][use].to_value(u.Jy)
    np.testing.assert_allclose(ratio_jy, ratio, rtol=1e-5)


def test_nircam_measured_aperture_correction(nircam):
    from jwst_widgets.processing.detect import find_point_sources

    image, truth = nircam.image, nircam.truth
    data = image.data - truth.sky - truth.stripes
    # The positions come from the detection, as in the pipeline: galaxies and
    # spike knots count as neighbours.
    found = find_point_sources(data, threshold=5 * truth.noise_rms, fwhm=truth.fwhm,
                               mask=image.mask)
    radius, reference = 4.0, 10.0
    corr = measure_aperture_correction(data, found, radius=radius, reference_radius=reference,
                                       mask=image.mask, error=image.error)
    expected = float(truth.encircled_energy(reference) / truth.encircled_energy(radius))
    assert corr.n_stars >= 15
    # Wing light in the annulus makes it slightly low.
    assert corr.value == pytest.approx(expected, rel=0.02)
    assert corr.uncertainty < 0.02
    # With it, fluxes reach the light within the reference radius, and with the
    # encircled energy there, the total.
    table = aperture_photometry(data, found, radius=radius, error=image.error, mask=image.mask,
                                aperture_correction=corr)
    total = table["flux"].value / float(truth.encircled_energy(reference))
    idx = match_positions(table, truth.stars)
    stars = truth.stars
    use = (idx >= 0)
    use[use] = bright_isolated(stars[idx[use]], table[use])
    assert use.sum() > 20
    ratio = total[use] / stars["flux"][idx[use]].value
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)


def match_positions(table, stars, radius=1.5):
    from scipy.spatial import cKDTree

    d, i = cKDTree(np.column_stack([stars["x"], stars["y"]])).query(
        np.column_stack([table["x_center"], table["y_center"]]))
    return np.where(d < radius, i, -1)
