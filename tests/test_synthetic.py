"""The synthetic NIRCam-like frame: determinism, truth, PSF, noise, DQ, FITS round trip."""

import time

import numpy as np
import pytest

import astropy.units as u

from jwst_widgets.datasets.psf import add_clipped, jwst_pupil, nircam_psf
from jwst_widgets.datasets.synthetic import DQ_FLAGS, nircam_like
from jwst_widgets.errors import InputError
from jwst_widgets.io import load_image


@pytest.fixture(scope="module")
def frame():
    return nircam_like((512, 512), seed=7, n_stars=60, n_galaxies=30, star_mags=(18.0, 27.0))


@pytest.fixture(scope="module")
def stars_only():
    # Stars only, without cosmic rays and hot pixels (they would spoil apertures).
    return nircam_like((512, 512), seed=2, n_stars=25, n_galaxies=0, star_mags=(18.0, 24.0),
                       n_cosmic_rays=0, hot_fraction=0.0)


def sky_sigma(frame):
    return float(np.median(frame.truth.noise_rms))


# -- determinism ------------------------------------------------------------------------

def test_same_seed_same_frame():
    a = nircam_like((256, 256), seed=3)
    b = nircam_like((256, 256), seed=3)
    assert np.array_equal(a.image.data, b.image.data, equal_nan=True)
    assert np.array_equal(a.image.error, b.image.error, equal_nan=True)
    assert np.array_equal(a.dq, b.dq)
    assert np.array_equal(a.truth.stars["x"], b.truth.stars["x"])
    assert np.array_equal(a.truth.cosmic_rays, b.truth.cosmic_rays)
    assert a.image.key == b.image.key


def test_other_seed_other_frame():
    a = nircam_like((256, 256), seed=3)
    b = nircam_like((256, 256), seed=4)
    finite = np.isfinite(a.image.data) & np.isfinite(b.image.data)
    assert np.mean(a.image.data[finite] != b.image.data[finite]) > 0.99
    assert not np.array_equal(a.truth.stars["x"], b.truth.stars["x"])
    assert a.image.key != b.image.key


def test_ingredients_draw_from_their_own_streams():
    a = nircam_like((256, 256), seed=5, n_galaxies=10)
    b = nircam_like((256, 256), seed=5, n_galaxies=20)
    assert np.array_equal(a.truth.stars["x"], b.truth.stars["x"])
    assert np.array_equal(a.truth.stars["flux"], b.truth.stars["flux"])
    assert np.array_equal(a.truth.sky, b.truth.sky)
    assert a.image.key != b.image.key


def test_default_numbers_scale_with_area():
    f = nircam_like((512, 512), seed=0)
    assert len(f.truth.stars) == round(300 * 512**2 / 2048**2)
    assert len(f.truth.galaxies) == round(500 * 512**2 / 2048**2)


# -- the image contract -------------------------------------------------------------------

def test_image_is_what_load_image_gives(frame):
    img = frame.image
    assert img.data.dtype == np.float32 and img.data.shape == (512, 512)
    assert not img.data.flags.writeable
    assert img.error.dtype == np.float32 and img.error.shape == img.shape
    assert img.unit == u.MJy / u.sr
    dq = frame.dq
    assert dq.dtype == np.uint32
    assert np.array_equal(img.mask, ~np.isfinite(img.data) | ((dq & 1) != 0))
    assert img.wcs is not None and img.wcs.has_celestial
    assert img.meta["extname"] == "SCI" and img.meta["index"] is None
    assert img.meta["telescope"] == "JWST" and img.meta["instrument"] == "NIRCAM"
    assert img.meta["filter"] == "F200W"
    assert img.meta["photmjsr"] == img.header["PHOTMJSR"] > 0
    assert img.meta["primary_header"]["TELESCOP"] == "JWST"
    assert img.origin == ("nircam_like(shape=(512, 512), seed=7, n_stars=60, n_galaxies=30, "
                          "star_mags=(18.0, 27.0))")


def test_truth_arrays_are_float32_and_read_only(frame):
    t = frame.truth
    for arr in (t.sky, t.sources, t.stripes, t.noise_rms):
        assert arr.dtype == np.float32 and arr.shape == (512, 512)
        assert not arr.flags.writeable
    for arr in (t.cosmic_rays, t.hot_pixels, t.dead_pixels, t.reference_pixels):
        assert arr.dtype == bool and not arr.flags.writeable


def test_header_units_and_pixel_area(frame):
    h = frame.image.header
    assert h["BUNIT"] == "MJy/sr"
    assert h["PIXAR_SR"] == pytest.approx(2.26e-14, rel=0.01)
    assert h["PIXAR_A2"] == pytest.approx(0.031**2, rel=1e-6)
    # PHOTMJSR converts DN/s to MJy/sr: one electron, through gain and exposure time.
    t = frame.truth
    assert h["PHOTMJSR"] == pytest.approx(t.unit_per_electron * t.gain * t.exptime, rel=1e-9)


def test_wcs_scale_and_orientation():
    f = nircam_like((256, 256), seed=1, ra=150.1, dec=2.2)
    w = f.image.wcs
    from astropy.wcs.utils import proj_plane_pixel_scales

    assert np.allclose(proj_plane_pixel_scales(w) * 3600, 0.031, rtol=1e-6)
    ra, dec = f.image.pixel_to_sky(127.5, 127.5)
    assert ra == pytest.approx(150.1) and dec == pytest.approx(2.2)
    # North up, east left at position angle 0; +y points east at 90.
    _, dec_up = f.image.pixel_to_sky(127.5, 227.5)
    ra_left, _ = f.image.pixel_to_sky(27.5, 127.5)
    assert dec_up > 2.2 and ra_left > 150.1
    g = nircam_like((256, 256), seed=1, ra=150.1, dec=2.2, position_angle=90.0)
    ra_up, dec_up = g.image.pixel_to_sky(127.5, 227.5)
    assert ra_up > 150.1 and dec_up == pytest.approx(2.2, abs=1e-5)


def test_long_wave_filter():
    f = nircam_like((256, 256), seed=1, filter="f444w")
    assert f.image.meta["filter"] == "F444W"
    assert f.image.header["PIXAR_SR"] == pytest.approx((0.063 / 206264.806) ** 2, rel=1e-6)
    assert f.truth.psf_model.pixel_scale == 0.063


def test_flux_columns_are_consistent(frame):
    for tab in (frame.truth.stars, frame.truth.galaxies):
        pixar = frame.image.header["PIXAR_SR"]
        jy = tab["flux"].to_value(u.MJy / u.sr) * pixar * 1e6
        assert np.allclose(tab["flux_jy"].to_value(u.Jy), jy, rtol=1e-10)
        assert np.allclose(tab["mag_ab"], -2.5 * np.log10(jy / 3631), atol=1e-9)
    mags = frame.truth.stars["mag_ab"]
    assert mags.min() >= 18.0 and mags.max() <= 27.0


# -- the PSF ------------------------------------------------------------------------------

def test_psf_is_normalised_and_centred(frame):
    t = frame.truth
    psf, over, os_ = t.psf, t.psf_oversampled, t.oversampling
    assert psf.shape[0] % 2 == 1 and psf.shape[0] >= 129
    assert psf.sum() == pytest.approx(1.0, abs=1e-12)
    assert over.sum() == pytest.approx(os_**2, rel=1e-3)
    assert np.array_equal(psf, over[::os_, ::os_])
    c = psf.shape[0] // 2
    assert np.unravel_index(np.argmax(psf), psf.shape) == (c, c)
    # Mirror figure errors make the core a little asymmetric: its centroid is
    # within a few hundredths of a pixel of the reference position.
    y, x = np.indices((11, 11)) - 5
    core = psf[c - 5:c + 6, c - 5:c + 6]
    assert abs((core * x).sum() / core.sum()) < 0.04
    assert abs((core * y).sum() / core.sum()) < 0.04


def test_psf_has_six_spikes(frame):
    psf = frame.truth.psf
    c = psf.shape[0] // 2
    y, x = np.indices(psf.shape) - c
    r = np.hypot(x, y)
    angle = np.degrees(np.arctan2(y, x)) % 360

    def light(direction):
        d = (angle - direction + 180) % 360 - 180
        return psf[(r > 15) & (r < 60) & (np.abs(d) < 1)].mean()

    spikes = [light(a) for a in (30, 90, 150, 210, 270, 330)]
    between = [light(a) for a in (60, 120, 240, 300)]
    assert min(spikes) > 3 * max(between)
    # The vertical strut's faint horizontal spikes: brighter than between, fainter than the six.
    horizontal = [light(0), light(180)]
    assert max(between) < min(horizontal) < min(spikes)


def test_psf_fwhm_as_expected(frame):
    from astropy.modeling import fitting, models
    from photutils.psf import fit_fwhm

    t = frame.truth
    # The optical FWHM (a pixel-integrated Gaussian fitted to the pixels):
    # about 1.03 lambda / D = 0.065" = 2.1 px at 2 micron.
    c = t.psf.shape[0] // 2
    optical = fit_fwhm(t.psf, xypos=(c, c), fit_shape=7)[0]
    assert 1.8 < optical < 2.3
    # `fwhm` is that of the pixel-convolved PSF, what a profile of the image shows:
    # compare with a Gaussian fitted to the oversampled effective PSF.
    over, os_ = t.psf_oversampled, t.oversampling
    co, h = (over.shape[0] - 1) // 2, 3 * os_
    cut = over[co - h:co + h + 1, co - h:co + h + 1]
    yy, xx = np.indices(cut.shape)
    g = fitting.LevMarLSQFitter()(models.Gaussian2D(cut.max(), h, h, os_, os_), xx, yy, cut)
    fitted = np.sqrt(g.x_fwhm * g.y_fwhm) / os_
    assert t.fwhm == pytest.approx(fitted, rel=0.08)
    assert optical < t.fwhm < optical + 0.5
    # Longer wavelength, wider PSF in arcsec, about in proportion.
    lw = nircam_psf("F444W")
    ratio = (lw.fwhm * lw.pixel_scale) / (t.fwhm * 0.031)
    assert 1.6 < ratio < 2.5


def test_pupil_geometry():
    t, opd = jwst_pupil(512, 0.02)
    hexagon = np.sqrt(3) / 2 * 1.32**2  # area of a hexagon 1.32 m flat to flat
    area = t.sum() * 0.02**2
    assert 18 * hexagon * 0.95 < area < 18 * hexagon
    assert t[256, 256] == 0  # the central hole
    inner = t[1:, 1:]  # sample i is at (i - 256) * 0.02 m: mirror about sample 256
    assert np.allclose(inner, inner[:, ::-1], atol=1e-9)  # symmetric left-right ...
    assert not np.allclose(inner, inner[::-1, :], atol=0.1)  # ... not up-down (struts)
    assert np.all(opd[t == 0] == 0) and 5e-9 < opd[t > 0.99].std() < 50e-9


def test_render_places_stars_exactly():
    psf = nircam_psf("F200W")
    x, y, flux = np.array([200.3, 140.0]), np.array([199.8, 251.55]), np.array([10.0, 2.0])
    before = (x.copy(), y.copy(), flux.copy())
    img = psf.render((400, 400), x, y, flux)
    assert np.array_equal(x, before[0]) and np.array_equal(flux, before[2])
    # The brute-force image: every star's whole stamp at its exact position.
    brute = np.zeros((400, 400))
    for xs, ys, f in zip(x, y, flux):
        stamp = psf.shifted(xs % 1, ys % 1, 127)  # all but the outermost 1-px ring
        add_clipped(brute, f * stamp, int(ys) - 127, int(xs) - 127)
    assert img.sum() == pytest.approx(12.0, rel=1e-9)  # all the light is in the image
    assert brute.sum() == pytest.approx(12.0, rel=2e-4)
    # Faint stars: approximate wings (documented: about 3e-6 of the flux per pixel).
    assert np.abs(img - brute).max() < 5e-6 * flux.max()
    exact = psf.render((400, 400), x, y, flux, exact_above=0.0)
    assert np.abs(exact - brute).max() < 2e-6 * flux.max()
    assert exact.sum() == pytest.approx(12.0, rel=1e-9)
    with pytest.raises(InputError, match="size"):
        nircam_psf("F200W", size=256)


def test_encircled_energy(frame):
    from photutils.aperture import CircularAperture

    t = frame.truth
    radii = np.array([2.0, 5.0, 10.0, 20.0, 60.0, 120.0])
    ee = t.encircled_energy(radii)
    assert np.all(np.diff(ee) > 0)
    assert 0.92 < ee[3] < 0.97  # about 5 % of the light beyond 20 px
    assert ee[-1] > 0.995
    c = t.psf.shape[0] // 2
    direct = CircularAperture((c, c), r=5.0).do_photometry(t.psf, method="exact")[0][0]
    assert ee[1] == pytest.approx(direct, rel=0.01)
    with pytest.raises(InputError, match="radius"):
        t.encircled_energy(-1)


# -- truth consistency --------------------------------------------------------------------

def _lonely(kind, shape=(512, 512)):
    """A frame with one star or galaxy whose light all lands in the frame."""
    for seed in range(200):
        f = nircam_like(shape, seed=seed, n_stars=int(kind == "star"),
                        n_galaxies=int(kind == "galaxy"), n_cosmic_rays=0)
        tab = f.truth.stars if kind == "star" else f.truth.galaxies
        x, y = float(tab["x"][0]), float(tab["y"][0])
        # PSF stamp half-size, plus the galaxy's cut-out (8 r_eff, at most 150 px).
        margin = 130 + (min(8 * tab["r_eff"][0], 150) + 2 if kind == "galaxy" else 0)
        if min(x, y) > margin and max(x - shape[1], y - shape[0]) < -1 - margin:
            return f
    raise AssertionError("no seed placed the source inside")


def test_injected_star_flux_is_the_truth_flux():
    f = _lonely("star")
    assert f.truth.sources.sum(dtype=float) == pytest.approx(
        f.truth.stars["flux"][0].to_value(u.MJy / u.sr), rel=1e-5)


def test_injected_galaxy_flux_is_the_truth_flux():
    f = _lonely("galaxy", shape=(768, 768))
    assert f.truth.sources.sum(dtype=float) == pytest.approx(
        f.truth.galaxies["flux"][0].to_value(u.MJy / u.sr), rel=1e-5)


def test_star_position_is_the_truth_position():
    f = _lonely("star")
    x0, y0 = f.truth.stars["x"][0], f.truth.stars["y"][0]
    ix, iy = int(round(x0)), int(round(y0))
    cut = np.asarray(f.truth.sources[iy - 6:iy + 7, ix - 6:ix + 7], float)
    y, x = np.indices(cut.shape)
    # The centroid of a symmetric-core PSF within +-6 px is the star's position.
    assert (cut * x).sum() / cut.sum() + ix - 6 == pytest.approx(x0, abs=0.05)
    assert (cut * y).sum() / cut.sum() + iy - 6 == pytest.approx(y0, abs=0.05)


def _halo_contamination(stars, ee_of, radius):
    """For each star, the light of the others expected in its aperture.

    A neighbour at distance d puts roughly the fraction EE(d + r) - EE(d - r)
    of its flux into the annulus that the aperture crosses, spread evenly.
    """
    x, y = np.asarray(stars["x"]), np.asarray(stars["y"])
    flux = stars["flux"].to_value(u.MJy / u.sr)
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    near = d < radius * 1.5
    dd = np.clip(d, 1.5 * radius, 120)
    frac = (ee_of(dd + radius) - ee_of(dd - radius)) * (radius**2 / (4 * dd * radius))
    frac[near] = 1.0
    frac[~np.isfinite(d)] = 0.0
    return (frac * flux[None, :]).sum(axis=1)


def test_aperture_sum_of_isolated_bright_stars(stars_only):
    from photutils.aperture import CircularAperture, aperture_photometry

    frame = stars_only
    t = frame.truth
    img = frame.image
    radius = 30.0
    ee = t.encircled_energy(radius)
    stars = t.stars
    radii = np.arange(1.0, 156.0, 5.0)
    table = t.encircled_energy(radii)

    def ee_of(r):
        return np.interp(r, radii, table)

    contamination = _halo_contamination(stars, ee_of, radius)
    flux = stars["flux"].to_value(u.MJy / u.sr)
    ok = ((stars["snr"] > 100) & (contamination < 0.02 * flux)
          & (stars["x"] > 35) & (stars["x"] < 476) & (stars["y"] > 35) & (stars["y"] < 476))
    data = np.asarray(img.data, float) - t.sky - t.stripes
    bad = img.mask | t.hot_pixels
    tested = 0
    for s, halo in zip(stars[ok], contamination[ok]):
        ap = CircularAperture((s["x"], s["y"]), r=radius)
        weights = ap.to_mask(method="exact").to_image(data.shape)
        inside = weights > 0
        if np.any(bad[inside]):
            continue  # a cosmic ray, hot or dead pixel in the aperture
        measured = aperture_photometry(data, ap)["aperture_sum"][0] / ee
        truth = s["flux"].to_value(u.MJy / u.sr)
        noise = np.sqrt(np.sum((weights[inside] * img.error[inside]) ** 2)) / ee
        # Within 1 %, the noise, and the light of the neighbours' halos.
        assert abs(measured - truth) < 0.01 * truth + 5 * noise + 1.5 * halo / ee
        tested += 1
    assert tested >= 3


def _psf_core(truth, half=12):
    """The central (2 half + 1) px of the oversampled PSF, not renormalised:
    fitted fluxes stay total fluxes, and the fits run faster."""
    over, os_ = truth.psf_oversampled, truth.oversampling
    c, h = (over.shape[0] - 1) // 2, half * os_
    return over[c - h:c + h + 1, c - h:c + h + 1]


def test_psf_photometry_with_the_truth_psf_recovers_fluxes(frame):
    from astropy.table import QTable
    from photutils.psf import ImagePSF, PSFPhotometry

    t = frame.truth
    stars = t.stars
    ok = ((stars["snr"] > 50) & (stars["nearest"] > 15)
          & (stars["x"] > 10) & (stars["x"] < 501) & (stars["y"] > 10) & (stars["y"] < 501))
    sel = stars[ok]
    assert len(sel) >= 8
    model = ImagePSF(_psf_core(t), oversampling=t.oversampling)
    data = np.asarray(frame.image.data, float) - t.sky - t.stripes
    init = QTable({"x": sel["x"] + 0.2, "y": sel["y"] - 0.2,
                   "flux": sel["flux"].to_value(u.MJy / u.sr) * 0.8})
    phot = PSFPhotometry(model, fit_shape=9, aperture_radius=4, progress_bar=False)
    res = phot(data, mask=frame.image.mask, error=np.asarray(frame.image.error, float),
               init_params=init)
    ratio = res["flux_fit"] / sel["flux"].to_value(u.MJy / u.sr)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
    assert np.all(np.abs(ratio - 1) < 5 / sel["snr"] + 0.02)
    assert np.all(np.hypot(res["x_fit"] - sel["x"], res["y_fit"] - sel["y"]) < 0.1)


def test_star_snr_matches_psf_fit_errors(frame):
    from astropy.table import QTable
    from photutils.psf import ImagePSF, PSFPhotometry

    t = frame.truth
    stars = t.stars
    ok = (stars["nearest"] > 15) & (stars["snr"] > 5) & (stars["snr"] < 300) \
        & (stars["x"] > 10) & (stars["x"] < 501) & (stars["y"] > 10) & (stars["y"] < 501)
    sel = stars[ok][:15]
    model = ImagePSF(_psf_core(t), oversampling=t.oversampling)
    data = np.asarray(frame.image.data, float) - t.sky - t.stripes
    init = QTable({"x": sel["x"], "y": sel["y"], "flux": sel["flux"].to_value(u.MJy / u.sr)})
    phot = PSFPhotometry(model, fit_shape=15, aperture_radius=4, progress_bar=False,
                         xy_bounds=0.01)
    res = phot(data, mask=frame.image.mask, error=np.asarray(frame.image.error, float),
               init_params=init)
    fit_snr = res["flux_fit"] / res["flux_err"]
    # The documented S/N (optimal weighting over 41x41 px) vs the fit's over 15x15.
    assert np.median(fit_snr / sel["snr"]) == pytest.approx(1.0, abs=0.1)


def test_daofind_detects_the_bright_isolated_stars(frame):
    from photutils.detection import DAOStarFinder

    t = frame.truth
    data = np.asarray(frame.image.data, float) - t.sky
    finder = DAOStarFinder(threshold=5 * sky_sigma(frame), fwhm=t.fwhm)
    found = finder(data, mask=frame.image.mask | t.hot_pixels)
    stars = t.stars
    ok = ((stars["snr"] > 20) & (stars["nearest"] > 8) & (stars["x"] > 8) & (stars["x"] < 503)
          & (stars["y"] > 8) & (stars["y"] < 503))
    assert ok.sum() >= 10
    dist = np.hypot(np.asarray(found["x_centroid"])[None, :] - np.asarray(stars["x"][ok])[:, None],
                    np.asarray(found["y_centroid"])[None, :] - np.asarray(stars["y"][ok])[:, None])
    assert np.mean(dist.min(axis=1) < 1.0) >= 0.9


# -- sky, noise, error --------------------------------------------------------------------

def test_sky_model_matches_a_robust_background(frame):
    from astropy.stats import SigmaClip
    from photutils.background import Background2D

    t = frame.truth
    data = np.asarray(frame.image.data, float)
    bkg = Background2D(data, 64, mask=frame.image.mask | t.hot_pixels, filter_size=3,
                       sigma_clip=SigmaClip(sigma=3.0))
    diff = bkg.background - t.sky
    sigma = sky_sigma(frame)
    assert abs(np.median(diff)) < 0.1 * sigma
    assert np.std(diff) < 0.15 * sigma
    # The sky is not flat: the gradient and blob are there and recovered.
    assert np.std(t.sky) > 0.2 * sigma
    assert np.corrcoef(bkg.background.ravel(), t.sky.ravel())[0, 1] > 0.9


def test_err_describes_the_noise(frame):
    t = frame.truth
    img = frame.image
    good = ~img.mask & ~t.hot_pixels
    z = (np.asarray(img.data, float) - t.model)[good] / img.error[good]
    assert np.std(z) == pytest.approx(1.0, abs=0.02)
    assert abs(np.mean(z)) < 0.01
    # On the sky, ERR is the sky-only noise; on bright stars it is larger (photon noise).
    sky_only = good & (t.sources < 0.01 * sky_sigma(frame))
    assert np.allclose(img.error[sky_only], t.noise_rms[sky_only], rtol=0.01)
    # On sources, ERR adds their photon noise, and still describes the scatter.
    expected = np.sqrt(t.noise_rms.astype(float) ** 2 + t.sources * t.unit_per_electron)
    assert np.allclose(img.error[good], expected[good], rtol=1e-5)
    bright = good & (t.sources > 10 * sky_sigma(frame))
    assert bright.sum() > 200
    zb = (np.asarray(img.data, float) - t.model)[bright] / img.error[bright]
    assert np.std(zb) == pytest.approx(1.0, abs=0.1)
    assert np.all(np.isnan(img.error[~np.isfinite(img.data)]))


def test_stripes_are_rows_per_amplifier(frame):
    s = np.asarray(frame.truth.stripes, float)
    amps = np.split(s, 4, axis=1)
    for a in amps:  # constant along each row of one amplifier
        assert np.allclose(a, a[:, :1])
    rows = np.stack([a[:, 0] for a in amps])
    assert not np.allclose(rows[0], rows[1])  # amplifiers differ
    assert np.std(s) == pytest.approx(0.3 * sky_sigma(frame), rel=0.2)
    f = nircam_like((256, 256), seed=7, stripes=0.0)
    assert not np.any(f.truth.stripes)


# -- DQ and defects -----------------------------------------------------------------------

def test_dq_flags_match_the_truth_masks(frame):
    dq, t = frame.dq, frame.truth
    assert np.array_equal((dq & DQ_FLAGS["JUMP_DET"]) != 0, t.cosmic_rays)
    assert np.array_equal((dq & DQ_FLAGS["HOT"]) != 0, t.hot_pixels)
    assert np.array_equal((dq & DQ_FLAGS["DEAD"]) != 0, t.dead_pixels)
    assert np.array_equal((dq & DQ_FLAGS["REFERENCE_PIXEL"]) != 0, t.reference_pixels)
    do_not_use = (dq & DQ_FLAGS["DO_NOT_USE"]) != 0
    assert np.array_equal(do_not_use, t.cosmic_rays | t.dead_pixels | t.reference_pixels)
    assert t.cosmic_rays.sum() >= 20 and t.hot_pixels.sum() >= 20


def test_border_is_nan_reference_pixels(frame):
    data, t = frame.image.data, frame.truth
    border = np.ones(data.shape, bool)
    border[4:-4, 4:-4] = False
    assert np.array_equal(t.reference_pixels, border)
    assert np.all(np.isnan(data[border]))
    assert np.array_equal(~np.isfinite(data), border | t.dead_pixels)
    assert np.all(frame.image.mask[border])
    f = nircam_like((256, 256), seed=1, border=0, dead_fraction=0.0)
    assert np.all(np.isfinite(f.image.data))


def test_cosmic_rays_and_hot_pixels_stand_out(frame):
    t, img = frame.truth, frame.image
    z = (np.asarray(img.data, float) - t.model) / img.error
    cr = t.cosmic_rays & np.isfinite(z)
    assert np.mean(z[cr] > 5) > 0.95
    hot = t.hot_pixels & np.isfinite(z)
    assert np.mean(z[hot] > 5) > 0.95
    assert not frame.image.mask[t.hot_pixels & ~t.cosmic_rays & ~t.reference_pixels].any()
    f = nircam_like((256, 256), seed=1, n_cosmic_rays=0)
    assert not f.truth.cosmic_rays.any()
    assert not np.any(f.dq & DQ_FLAGS["JUMP_DET"])


# -- FITS ---------------------------------------------------------------------------------

def _same_image(a, b):
    assert np.array_equal(a.data, b.data, equal_nan=True)
    assert np.array_equal(a.mask, b.mask)
    assert np.array_equal(a.error, b.error, equal_nan=True)
    assert a.unit == b.unit
    pix = np.array([[0.0, 0.0], [100.0, 300.0], [511.0, 511.0]])
    assert np.allclose(a.wcs.all_pix2world(pix, 0), b.wcs.all_pix2world(pix, 0), atol=1e-10)
    for key in ("photmjsr", "pixar_sr", "telescope", "instrument", "filter", "extname"):
        assert a.meta[key] == b.meta[key]


def test_round_trip_through_hdulist(frame):
    hdul = frame.to_hdulist()
    assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR", "DQ"]
    back = load_image(hdul)
    _same_image(back, frame.image)
    assert np.array_equal(back.meta["dq"], frame.dq)
    hdul["SCI"].data[10, 10] = 1e9  # the HDUList holds copies
    assert frame.image.data[10, 10] != 1e9


def test_round_trip_through_a_file(frame, tmp_path, unchanged_files):
    path = frame.write(tmp_path / "synthetic_cal.fits")
    unchanged_files(path)
    back = load_image(path)
    _same_image(back, frame.image)
    with pytest.raises(InputError, match="exists"):
        frame.write(path)
    frame.write(path, overwrite=True)


def test_i2d_level(frame):
    hdul = frame.to_hdulist(level="i2d")
    assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR", "WHT", "CON"]
    back = load_image(hdul)
    assert np.array_equal(back.mask, frame.image.mask)
    good = ~back.mask
    assert np.array_equal(back.data[good], frame.image.data[good])
    assert np.all(hdul["WHT"].data[back.mask] == 0)
    assert np.all(hdul["WHT"].data[good] > 0)
    with pytest.raises(InputError, match="level"):
        frame.to_hdulist(level="x2d")


# -- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, param", [
    ({"shape": (10, 10)}, "shape"),
    ({"shape": (512,)}, "shape"),
    ({"shape": "big"}, "shape"),
    ({"shape": (512.0, 512.0)}, "shape"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"n_stars": -5}, "n_stars"),
    ({"n_galaxies": 2.5}, "n_galaxies"),
    ({"filter": "F999W"}, "filter"),
    ({"oversampling": 0}, "oversampling"),
    ({"star_mags": (28.0, 18.0)}, "star_mags"),
    ({"galaxy_mags": "faint"}, "galaxy_mags"),
    ({"alpha": 0.0}, "alpha"),
    ({"exptime": 0.0}, "exptime"),
    ({"read_noise": -1.0}, "read_noise"),
    ({"stripes": float("nan")}, "stripes"),
    ({"border": 1000}, "border"),
    ({"dec": 95.0}, "dec"),
    ({"pixel_scale": 5.0}, "pixel_scale"),
])
def test_bad_arguments_raise_input_error_naming_them(kwargs, param):
    args = {"shape": (128, 128), **kwargs}
    with pytest.raises(InputError) as info:
        nircam_like(**args)
    assert info.value.param == param
    assert param in str(info.value)
    assert "got" in str(info.value)


# -- scale --------------------------------------------------------------------------------

def test_crowded_field():
    f = nircam_like((1024, 1024), seed=11, n_stars=1500, n_galaxies=50)
    stars = f.truth.stars
    assert len(stars) == 1500
    assert np.median(stars["nearest"]) < 20
    # All the light injected is in the frame, apart from what fell off its edges.
    injected = stars["flux"].sum() + f.truth.galaxies["flux"].sum()
    total = f.truth.sources.sum(dtype=float)
    assert 0.9 * injected.value < total < injected.value
    assert (stars["snr"] > 10).sum() > 500


@pytest.mark.slow
def test_full_frame_timing():
    nircam_psf("F200W")  # the PSF is cached; time the frame itself
    start, cpu = time.perf_counter(), time.process_time()
    f = nircam_like()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"nircam_like() 2048x2048: {elapsed:.2f} s wall, {cpu:.2f} s CPU (all threads)")
    assert f.image.shape == (2048, 2048)
    assert len(f.truth.stars) == 300 and len(f.truth.galaxies) == 500
