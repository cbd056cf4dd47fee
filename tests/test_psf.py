"""PSF photometry: against truth on crowded NIRCam-like frames, and against photutils."""

import numpy as np
import pytest
from astropy.table import QTable, Table
from scipy.spatial import cKDTree

from jwst_widgets import Pipeline
from jwst_widgets.datasets import nircam_like
from jwst_widgets.errors import InputError
from jwst_widgets.pipeline.psf_stage import FIT_DQ_BITS
from jwst_widgets.processing import psf as P

EE_RADII = np.arange(1.0, 61.0)


def fit_mask(image):
    """Pixels a PSF fit leaves out: DO_NOT_USE, and DQ hot, warm or saturated (as the stage)."""
    return image.mask | ((np.asarray(image.meta["dq"]).astype(np.int64) & FIT_DQ_BITS) != 0)


def prepared(shape, seed, n_stars):
    """A crowded frame, background-subtracted, with its detection catalog."""
    frame = nircam_like(shape, seed=seed, n_stars=n_stars)
    pipe = Pipeline([("background_subtraction", {"box_size": 64}),
                     ("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.2})])
    result = pipe.run(frame.image)
    return frame, result


@pytest.fixture(scope="module")
def crowded():
    """1024² with 1,000 stars (the density of 4,000 in 2048²), detected."""
    return prepared((1024, 1024), 5, 1000)


@pytest.fixture(scope="module")
def ee_table(tmp_path_factory, crowded):
    """The PSF's encircled energy, as a user would have STScI's table for the filter."""
    frame, _ = crowded
    path = tmp_path_factory.mktemp("ee") / "ee.ecsv"
    Table({"radius": EE_RADII, "ee": frame.truth.encircled_energy(EE_RADII)}).write(path)
    return str(path)


@pytest.fixture(scope="module")
def photometry(crowded):
    frame, result = crowded
    image = result.final
    ee = (EE_RADII, frame.truth.encircled_energy(EE_RADII))
    return P.psf_photometry(image.data, result.catalog, error=image.error, mask=fit_mask(image),
                            background_rms=result.products["background_rms"],
                            encircled_energy=ee, wcs=image.wcs, unit=image.unit,
                            pixar_sr=image.meta["pixar_sr"])


def match(table, stars, xcol="x_fit", ycol="y_fit", radius=1.0):
    """For each row: the index of the true star within ``radius`` px, or -1."""
    xy = np.c_[np.nan_to_num(np.asarray(table[xcol], float), nan=-1e6),
               np.nan_to_num(np.asarray(table[ycol], float), nan=-1e6)]
    dist, idx = cKDTree(np.c_[stars["x"], stars["y"]]).query(xy)
    return np.where(dist < radius, idx, -1)


def flux_ratio_stats(flux, true):
    ratio = np.asarray(flux, float) / np.asarray(true, float)
    median = np.median(ratio)
    return median, np.median(np.abs(ratio - median)) / median


def check_truth(catalog, stars, *, min_snr=50):
    idx = match(catalog, stars)
    found = idx >= 0
    snr = np.where(found, np.asarray(stars["snr"])[idx], 0)
    sel = found & (snr > min_snr)
    flux = np.asarray(getattr(catalog["flux_total"], "value", catalog["flux_total"]))[sel]
    median, scatter = flux_ratio_stats(flux, np.asarray(stars["flux"])[idx[sel]])
    return sel.sum(), median, scatter


# -- against truth --------------------------------------------------------------------
def test_total_fluxes_against_truth(crowded, photometry):
    frame, _ = crowded
    n, median, scatter = check_truth(photometry.catalog, frame.truth.stars)
    assert n > 250
    assert scatter <= 0.02, f"scatter of PSF / true flux {scatter:.4f}"
    assert abs(median - 1) <= 0.05, f"median PSF / true flux {median:.4f}"
    corr = photometry.aperture_correction
    assert corr.n_stars >= 10 and 0 < corr.uncertainty < 0.01
    assert photometry.encircled_energy == pytest.approx(frame.truth.encircled_energy(20.0))


@pytest.mark.slow
def test_total_fluxes_against_truth_2048():
    """The issue's frame: 2048² with 4,000 stars, spikes and all."""
    frame, result = prepared((2048, 2048), 3, 4000)
    image = result.final
    ee = (EE_RADII, frame.truth.encircled_energy(EE_RADII))
    out = P.psf_photometry(image.data, result.catalog, error=image.error, mask=fit_mask(image),
                           background_rms=result.products["background_rms"],
                           encircled_energy=ee)
    n, median, scatter = check_truth(out.catalog, frame.truth.stars)
    assert n > 1000
    assert scatter <= 0.02 and abs(median - 1) <= 0.05


def test_without_encircled_energy_fluxes_are_within_the_radius(crowded, photometry):
    frame, result = crowded
    image = result.final
    corr = photometry.aperture_correction
    out = P.psf_photometry(image.data, result.catalog, error=image.error, mask=fit_mask(image),
                           psf_build=photometry.psf, aperture_correction=tuple(corr[:2]))
    n, median, _ = check_truth(out.catalog, frame.truth.stars)
    assert median == pytest.approx(frame.truth.encircled_energy(20.0), abs=0.02)
    assert out.encircled_energy is None
    # the same fits, only the factor differs
    assert np.allclose(out.catalog["flux_fit"], photometry.catalog["flux_fit"])


def test_iterative_mode_recovers_the_stars(crowded, photometry):
    frame, result = crowded
    image = result.final
    rms = float(np.nanmedian(result.products["background_rms"]))
    out = P.psf_photometry(image.data, result.catalog, error=image.error, mask=fit_mask(image),
                           psf_build=photometry.psf, iterative=True, threshold=5 * rms,
                           aperture_correction="none")
    stars = frame.truth.stars
    # stars on the measurable frame: not in the 4-pixel NaN border, nor next to it
    x, y = np.asarray(stars["x"]), np.asarray(stars["y"])
    ny, nx = image.data.shape
    inside = (x >= 6) & (x <= nx - 7) & (y >= 6) & (y <= ny - 7)
    bright = (np.asarray(stars["snr"]) > 10) & inside
    found = np.zeros(len(stars), bool)
    idx = match(out.catalog, stars)
    found[idx[idx >= 0]] = True
    positions = np.zeros(len(stars), bool)
    idx0 = match(photometry.catalog, stars)
    positions[idx0[idx0 >= 0]] = True
    assert found[bright].mean() >= 0.95
    assert found[bright].mean() > positions[bright].mean() + 0.02  # iterating finds more
    assert "iter_detected" in out.catalog.colnames
    assert out.catalog["iter_detected"].max() >= 2


def test_residual_is_noise_at_isolated_stars(crowded, photometry):
    """In units of ERR, the residual around isolated stars is noise (up to S/N 300).

    Per star, the RMS of (data - model) / ERR over the 5x5 pixels around it.
    Brighter stars show the ePSF's own errors (under 1 % of the peak), which
    their photon noise no longer hides: there only most of the light must go.
    """
    frame, result = crowded
    stars = frame.truth.stars
    resid, err = photometry.residual, result.final.error
    iso = (np.asarray(stars["nearest"]) > 15) & (np.asarray(stars["snr"]) > 10)
    ny, nx = resid.shape
    rms, before, snr = [], [], []
    for x, y, s in zip(stars["x"][iso], stars["y"][iso], stars["snr"][iso]):
        ix, iy = int(round(x)), int(round(y))
        if 8 <= ix < nx - 8 and 8 <= iy < ny - 8:
            box = np.s_[iy - 2:iy + 3, ix - 2:ix + 3]
            rms.append(np.sqrt(np.nanmean((resid[box] / err[box]) ** 2)))
            before.append(np.sqrt(np.nanmean((result.final.data[box] / err[box]) ** 2)))
            snr.append(s)
    rms, before, snr = np.array(rms), np.array(before), np.array(snr)
    assert len(rms) > 200
    for lo, hi in ((10, 50), (50, 100), (100, 300)):
        sel = (snr > lo) & (snr <= hi)
        assert sel.sum() >= 20
        assert np.median(rms[sel]) <= 1.5, (lo, hi, np.median(rms[sel]))
        assert np.median(before[sel]) > 2 * np.median(rms[sel])  # the stars were there
    assert np.percentile(rms[snr <= 300], 90) < 3
    bright = snr > 300
    assert np.median(rms[bright]) < 0.05 * np.median(before[bright])  # 95 % removed


def test_psf_beats_apertures_on_blended_stars(crowded, photometry):
    from jwst_widgets.processing.photometry import aperture_photometry

    frame, result = crowded
    stars = frame.truth.stars
    cat = photometry.catalog
    idx = match(cat, stars)
    ok = idx >= 0
    blended = ok & (np.where(ok, np.asarray(stars["nearest"])[idx], 99) < 5) \
        & (np.where(ok, np.asarray(stars["snr"])[idx], 0) > 50)
    assert blended.sum() >= 15
    sub = cat[blended]
    ap = aperture_photometry(result.final.data, np.c_[sub["x_fit"], sub["y_fit"]], radius=4.0,
                             annulus_inner=8, annulus_outer=12, mask=result.final.mask)
    true = np.asarray(stars["flux"])[idx[blended]]
    _, psf_scatter = flux_ratio_stats(np.asarray(sub["flux_total"].value), true)
    _, ap_scatter = flux_ratio_stats(np.asarray(ap["flux"].value), true)
    assert psf_scatter < ap_scatter


def test_psf_stars_are_isolated_true_stars(crowded, photometry):
    frame, result = crowded
    stars = photometry.stars
    assert 50 <= len(stars) <= 100
    assert list(stars.colnames) == list(P.STAR_COLUMNS)
    truth = frame.truth
    idx = match(stars, truth.stars, "x", "y", radius=0.5)
    assert (idx >= 0).all()  # no galaxy, hot pixel or cosmic ray
    assert (np.asarray(stars["nearest"]) >= 12.5).all()
    assert np.all(np.diff(np.asarray(stars["flux"])) <= 0)  # brightest first
    assert abs(photometry.psf.fwhm - truth.fwhm) < 0.15


def test_catalog_columns_units_and_sky(crowded, photometry):
    cat = photometry.catalog
    for name in (*P.FIT_COLUMNS, "flux_total", "flux_total_err", "flux_jy", "flux_jy_err",
                 "mag_ab", "mag_ab_err", "ra", "dec"):
        assert name in cat.colnames, name
    assert cat["flux_total"].unit == "MJy / sr"
    assert cat["mag_ab"].unit == "mag"
    good = np.asarray(cat["flags"]) == 0
    jy = np.asarray(cat["flux_jy"].value)[good]
    mag = np.asarray(cat["mag_ab"].value)[good]
    pos = jy > 0
    assert np.allclose(mag[pos], -2.5 * np.log10(jy[pos] / 3631))
    _, result = crowded
    ra, dec = result.final.wcs.pixel_to_world_values(cat["x_fit"][:5], cat["y_fit"][:5])
    assert np.allclose(cat["ra"][:5].value, ra) and np.allclose(cat["dec"][:5].value, dec)
    # ids are the detection catalog's
    assert set(np.asarray(cat["id"])) == set(np.asarray(result.catalog["id"]))


# -- against photutils called directly --------------------------------------------------
def test_epsf_is_photutils_epsf(crowded, photometry):
    from astropy.nddata import NDData
    from photutils.psf import EPSFBuilder, extract_stars

    _, result = crowded
    image = result.final
    stars = photometry.stars[:40]
    ours = P.build_epsf(image.data, stars, size=25, oversampling=2, smoothing="quadratic",
                        mask=fit_mask(image))
    bad = fit_mask(image) | ~np.isfinite(image.data)
    nd = NDData(data=np.where(bad, 0.0, image.data), mask=bad)
    ref = EPSFBuilder(oversampling=2, smoothing_kernel="quadratic", maxiters=10,
                      progress_bar=False)(extract_stars(nd, QTable(
                          {"x": stars["x"], "y": stars["y"], "id": stars["id"]}), size=25))
    assert np.array_equal(ours.image, ref.epsf.data)


def test_fit_is_photutils_psfphotometry(crowded, photometry):
    from photutils.psf import PSFPhotometry, SourceGrouper

    _, result = crowded
    image = result.final
    cat = result.catalog[:700]  # more than one chunk
    bad = fit_mask(image) | ~np.isfinite(image.data) | ~np.isfinite(image.error)
    ours = P.fit_psf(image.data, cat, photometry.psf, fit_shape=5, group_separation=4.0,
                     aperture_radius=3.0, error=image.error, mask=fit_mask(image))
    phot = PSFPhotometry(photometry.psf.model, 5, grouper=SourceGrouper(4.0), aperture_radius=3.0,
                         progress_bar=False)
    init = QTable({"id": cat["id"], "x": cat["x_centroid"], "y": cat["y_centroid"]})
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = phot(np.where(bad, 0.0, image.data), mask=bad, error=np.where(bad, 1.0, image.error),
                   init_params=init)
        ref_resid = phot.make_residual_image(np.where(bad, 0.0, image.data))
    for name in ("id", "x_fit", "y_fit", "flux_fit", "flux_err", "qfit", "flags", "group_size"):
        assert np.allclose(np.asarray(ours.table[name], float), np.asarray(ref[name], float),
                           rtol=1e-9, atol=0, equal_nan=True), name
    good = ~bad
    assert np.allclose(ours.residual[good], ref_resid[good], atol=1e-5 * np.nanmax(
        np.abs(ref_resid)))


def test_iterative_is_photutils_iterative():
    import warnings

    from photutils.detection import DAOStarFinder
    from photutils.psf import CircularGaussianPRF, IterativePSFPhotometry

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:128, :128]
    xy = rng.uniform(10, 118, (25, 2))
    image = sum(CircularGaussianPRF(flux=f, x_0=x, y_0=y, fwhm=2.5)(xx, yy)
                for (x, y), f in zip(xy, rng.uniform(200, 2000, 25)))
    image = image + rng.normal(0, 1.0, image.shape)
    psf = CircularGaussianPRF(fwhm=2.5)
    ours = P.fit_psf(image, xy[:15], psf, iterative=True, threshold=5.0, finder_fwhm=2.5,
                     aperture_radius=3.0, group_separation=5.0, fit_shape=7)
    from photutils.psf import SourceGrouper
    ref = IterativePSFPhotometry(psf, 7, DAOStarFinder(5.0, 2.5), grouper=SourceGrouper(5.0),
                                 aperture_radius=3.0, mode="new", progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = ref(image, init_params=QTable({"id": np.arange(1, 16), "x": xy[:15, 0],
                                               "y": xy[:15, 1]}))
    assert len(ours.table) == len(table) > 15
    for name in ("x_fit", "y_fit", "flux_fit", "iter_detected"):
        assert np.allclose(np.asarray(ours.table[name], float), np.asarray(table[name], float))


# -- smaller cases ----------------------------------------------------------------------
def gaussian_field(shape=(160, 160), fwhm=2.8, seed=0, n=20):
    from photutils.psf import CircularGaussianPRF

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    gy, gx = np.mgrid[20:shape[0] - 19:30, 20:shape[1] - 19:30]
    xy = np.c_[gx.ravel(), gy.ravel()] + rng.uniform(-2, 2, (gx.size, 2))
    flux = rng.uniform(2000, 20000, len(xy))
    image = sum(CircularGaussianPRF(flux=f, x_0=x, y_0=y, fwhm=fwhm)(xx, yy)
                for (x, y), f in zip(xy, flux))
    image = image + rng.normal(0, 1.0, shape)
    return image.astype(np.float32), xy, flux


@pytest.mark.parametrize("kind", ["gaussian", "moffat"])
def test_analytic_psf_width_from_the_data(kind):
    image, xy, flux = gaussian_field()
    build = P.analytic_psf(image, xy, kind=kind)
    assert build.fwhm == pytest.approx(2.8, abs=0.1)
    fit = P.fit_psf(image, xy, build)
    ratio = np.asarray(fit.table["flux_fit"]) / flux
    tol = 0.01 if kind == "gaussian" else 0.05
    assert np.median(ratio) == pytest.approx(1.0, abs=tol)


def true_psf_cut(frame, half=50):
    """The true PSF, oversampled, cut to ``2 * half + 1`` native pixels."""
    psf = frame.truth.psf_oversampled
    os_ = frame.truth.oversampling
    c = (psf.shape[0] - 1) // 2
    return np.array(psf[c - half * os_:c + half * os_ + 1, c - half * os_:c + half * os_ + 1])


def test_image_psf_from_the_true_psf(crowded, photometry):
    frame, result = crowded
    image = result.final
    ee = (EE_RADII, frame.truth.encircled_energy(EE_RADII))
    out = P.psf_photometry(image.data, result.catalog, psf="image",
                           psf_image=true_psf_cut(frame, half=25), psf_oversampling=4,
                           error=image.error, mask=fit_mask(image), encircled_energy=ee)
    n, median, scatter = check_truth(out.catalog, frame.truth.stars)
    assert abs(median - 1) < 0.02 and scatter < 0.02
    # the true PSF fits better than the ePSF built from the frame
    _, _, epsf_scatter = check_truth(photometry.catalog, frame.truth.stars)
    assert scatter < epsf_scatter


def test_select_psf_stars_cuts():
    image, xy, flux = gaussian_field(seed=1)
    ids = np.arange(1, len(xy) + 1)
    cat = QTable({"id": ids + 100, "x_centroid": xy[:, 0], "y_centroid": xy[:, 1]})
    all_ = P.select_psf_stars(image, cat, size=15, min_snr=10, background_rms=1.0)
    assert len(all_) == len(xy)
    brightest = P.select_psf_stars(image, cat, size=15, min_snr=10, background_rms=1.0,
                                   max_stars=3)
    assert list(brightest["id"]) == list(cat["id"][np.argsort(-flux)][:3])
    dropped = P.select_psf_stars(image, cat, size=15, min_snr=10, background_rms=1.0,
                                 exclude=[101, 102])
    assert set(dropped["id"]) == set(all_["id"]) - {101, 102}
    assert dropped.meta["rejected"]["excluded"] == 2
    mask = np.zeros(image.shape, bool)
    mask[int(xy[0, 1]) + 3, int(xy[0, 0])] = True
    masked = P.select_psf_stars(image, cat, size=15, min_snr=10, background_rms=1.0, mask=mask)
    assert 101 not in set(masked["id"]) and masked.meta["rejected"]["bad_pixels"] == 1
    far = P.select_psf_stars(image, cat, size=15, min_snr=10, background_rms=1.0,
                             min_separation=40)
    assert len(far) == 0 and far.colnames == list(P.STAR_COLUMNS)
    back = P.select_psf_stars(image, cat, size=15, min_snr=10, background_rms=1.0,
                              min_separation=40, include=[105])
    assert list(back["id"]) == [105]


def test_galaxies_and_hot_pixels_are_not_psf_stars():
    image, xy, flux = gaussian_field(seed=2)
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    # make source 5 a galaxy (a broad blob on the star) and source 8 a hot pixel
    sx, sy = xy[4]
    image += (3000 * np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * 4.0 ** 2))).astype(
        np.float32)
    hx, hy = np.round(xy[7]).astype(int)
    image[hy, hx] += 20000
    stars = P.select_psf_stars(image, xy, size=15, min_snr=10, background_rms=1.0)
    assert 5 not in set(stars["id"]) and 8 not in set(stars["id"])
    assert stars.meta["rejected"]["not_star_like"] >= 2


def test_float32_inputs_not_modified_and_empty(crowded, photometry):
    _, result = crowded
    image = result.final
    data = np.array(image.data[:256, :256], dtype=np.float32)
    err = np.array(image.error[:256, :256])
    mask = np.array(image.mask[:256, :256])
    copies = data.copy(), err.copy(), mask.copy()
    cat = result.catalog[(result.catalog["x_centroid"] < 250) & (result.catalog["y_centroid"] < 250)]
    cat_copy = cat.copy()
    fit = P.fit_psf(data, cat, photometry.psf, error=err, mask=mask)
    assert fit.model.dtype == np.float32 and fit.residual.dtype == np.float32
    assert np.array_equal(data, copies[0], equal_nan=True)
    assert np.array_equal(err, copies[1], equal_nan=True) and np.array_equal(mask, copies[2])
    assert all(np.array_equal(cat[c], cat_copy[c]) for c in cat.colnames if c not in ("ra", "dec"))
    empty = P.fit_psf(data, cat[:0], photometry.psf)
    assert len(empty.table) == 0 and list(empty.table.colnames) == list(P.FIT_COLUMNS)
    assert not empty.model.any()
    out = P.psf_photometry(data, cat[:0], psf_build=photometry.psf, aperture_correction="none")
    assert len(out.catalog) == 0 and "flux_total" in out.catalog.colnames


@pytest.mark.parametrize("kwargs, param", [
    ({"psf": "airy"}, "psf"),
    ({"size": 24}, "size"),
    ({"smoothing": "cubic"}, "smoothing"),
    ({"min_snr": 1e9}, "min_snr"),
    ({"aperture_correction": "maybe"}, "aperture_correction"),
    ({"psf": "image"}, "psf_image"),
    ({"iterative": True}, "threshold"),
    ({"fit_shape": 4}, "fit_shape"),
    ({"local_background": (5, 3)}, "local_background"),
    ({"encircled_energy": ([1, 2], [0.5])}, "encircled_energy"),
])
def test_bad_values_name_the_parameter(kwargs, param):
    image, xy, _ = gaussian_field()
    options = {"size": 15, "min_snr": 10, "background_rms": 1.0, "reference_radius": 10,
               **kwargs}
    with pytest.raises(InputError) as info:
        P.psf_photometry(image, xy, **options)
    assert info.value.param == param
    assert param in str(info.value)


def test_encircled_energy_helper_and_fwhm():
    image, _, _ = gaussian_field(shape=(64, 64), n=0)
    yy, xx = np.mgrid[:101, :101]
    g = np.exp(-((xx - 50) ** 2 + (yy - 50) ** 2) / (2 * 8.0 ** 2))  # sigma 2 px at os 4
    assert P.psf_fwhm(g, oversampling=4) == pytest.approx(2 * 2.3548, abs=0.05)
    assert P.encircled_energy(g, 2 * np.sqrt(2 * np.log(2)), oversampling=4) == \
        pytest.approx(0.5, abs=0.005)
    with pytest.raises(InputError, match="radius"):
        P.encircled_energy(g, -1)


# -- the stage --------------------------------------------------------------------------
def test_stage_in_a_pipeline(crowded, ee_table):
    import jwst_widgets

    frame, _ = crowded
    names = [a["name"] for a in jwst_widgets.algorithms()]
    assert "psf_photometry" in names
    spec = [a for a in jwst_widgets.algorithms() if a["name"] == "psf_photometry"][0]
    assert "residual" in spec["outputs"] and spec["needs"] == ["catalog"]
    pipe = Pipeline([("background_subtraction", {"box_size": 64}),
                     ("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.2}),
                     ("psf_photometry", {"ee_table": ee_table})])
    res = pipe.run(frame.image)
    cat = res.catalog
    assert "flux_total" in cat.colnames and "mag_ab" in cat.colnames
    assert res.products["residual"].shape == frame.image.data.shape
    assert res.products["psf"].ndim == 2 and res.products["psf_oversampling"] == 3
    assert any("encircled energy" in m for m in res.stages[-1].messages)
    n, median, scatter = check_truth(cat, frame.truth.stars)
    assert scatter <= 0.02 and abs(median - 1) <= 0.05
    # a fitting parameter re-runs only this stage, and reuses the built PSF
    # (in a box: the fits are quick)
    runs = dict(pipe.runs)
    psf_before = res.products["psf_result"].psf
    pipe.set_params(2, fit_shape=7, region=[0, 400, 0, 400])
    res2 = pipe.run(frame.image)
    assert pipe.runs["psf_photometry"] == runs["psf_photometry"] + 1
    assert pipe.runs["source_detection"] == runs["source_detection"]
    assert res2.products["psf_result"].psf is psf_before
    assert res2.catalog.meta["fit_shape"] == 7
    # a PSF parameter rebuilds it
    pipe.set_params(2, exclude_stars=", ".join(str(i) for i in res.products["psf_stars"]["id"][:3]))
    res3 = pipe.run(frame.image)
    assert res3.products["psf_result"].psf is not psf_before
    assert not set(res3.products["psf_stars"]["id"]) & set(res.products["psf_stars"]["id"][:3])
    # recipes carry it
    again = Pipeline.from_recipe(pipe.to_recipe())
    assert again.params(2)["exclude_stars"] == pipe.params(2)["exclude_stars"]


def test_stage_checks_and_messages(crowded):
    frame, _ = crowded
    pipe = Pipeline([("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.2}),
                     ("psf_photometry", {"psf_model": "file"})])
    with pytest.raises(InputError, match="psf_file") as info:
        pipe.run(frame.image)
    assert info.value.param == "psf_file"
    with pytest.raises(InputError, match="fit_shape"):
        Pipeline([("source_detection", {}), ("psf_photometry", {"fit_shape": 31,
                                                                 "stamp_size": 25})]
                 ).check(frame.image)
    with pytest.raises(InputError, match="exclude_stars"):
        Pipeline([("source_detection", {}), ("psf_photometry", {"exclude_stars": "1, x"})]
                 ).check(frame.image)
    with pytest.raises(InputError, match="needs a catalog"):
        Pipeline([("psf_photometry", {})]).check(frame.image)


def test_stage_psf_file_and_region(tmp_path):
    from astropy.io import fits

    frame = nircam_like((512, 512), seed=8, n_stars=250)
    path = tmp_path / "psf.fits"
    hdu = fits.PrimaryHDU(true_psf_cut(frame).astype(np.float32))
    hdu.header["OVERSAMP"] = 4
    hdu.writeto(path)
    pipe = Pipeline([("background_subtraction", {"box_size": 64}),
                     ("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.2}),
                     ("psf_photometry", {"psf_model": "file", "psf_file": str(path)})])
    res = pipe.run(frame.image)
    assert res.products["psf_result"].psf.kind == "image"
    # the file's PSF is large: it carries the encircled energy itself
    assert any("encircled energy" in m for m in res.stages[-1].messages)
    n, median, scatter = check_truth(res.catalog, frame.truth.stars)
    assert scatter <= 0.02 and abs(median - 1) <= 0.05
    # a preview: only the sources in a box
    pipe.set_params(2, region=[0, 200, 0, 200])
    cat = pipe.run(frame.image).catalog
    assert 10 < len(cat) < len(res.catalog) / 4
    assert (np.asarray(cat["x_init"]) < 200).all() and (np.asarray(cat["y_init"]) < 200).all()
