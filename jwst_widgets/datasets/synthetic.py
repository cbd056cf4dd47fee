"""A synthetic NIRCam-like frame with its truth: stars, galaxies, sky, defects.

:func:`nircam_like` makes a Level-2 ``cal``-like image (SCI in MJy/sr, ERR,
DQ, a TAN WCS) of a deep field: stars with JWST's diffraction spikes, Sérsic
galaxies, a sky with a gradient and a diffuse blob, photon and read noise,
1/f row stripes per amplifier, hot and dead pixels, cosmic rays and a NaN
reference-pixel border, and returns it with everything that went into it.
"""

import dataclasses
import inspect
import math

import numpy as np

from ..errors import InputError
from .psf import (NIRCAM_FILTERS, PIXEL_SCALES, STAR_CORE, add_clipped, check_filter,
                  check_integer, check_number, nircam_psf)

__all__ = ["nircam_like", "SyntheticFrame", "SyntheticTruth", "DQ_FLAGS"]

#: JWST DQ bits used here (``jwst.datamodels.dqflags``).
DQ_FLAGS = {"DO_NOT_USE": 1, "SATURATED": 2, "JUMP_DET": 4, "DEAD": 1024, "HOT": 2048,
            "REFERENCE_PIXEL": 2**31}

TELESCOPE_AREA = 25.4  # m^2
GAINS = {"SHORT": 2.05, "LONG": 1.82}  # electrons per DN
N_AMPLIFIERS = 4
_AB_ZERO_JY = 3631.0
_PLANCK = 6.62607015e-34
_GALAXY_ALPHA = 0.75  # N(>F) ~ F^-0.75: 0.3 dex per magnitude
_DEFAULT_AREA = 2048 * 2048
_DEFAULT_N_STARS = 300
_DEFAULT_N_GALAXIES = 500
_DEFAULT_N_COSMIC_RAYS = 400  # per 2048^2 in 1000 s

@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """Everything that went into a synthetic frame.

    All images are float32 in MJy/sr (the unit of the frame), of the
    frame's shape, read-only. Pixel positions are 0-based with ``x`` the
    column, pixel centres at integers (the photutils convention).

    Attributes
    ----------
    stars : `~astropy.table.QTable`
        ``id, x, y, flux, flux_jy, mag_ab, snr, nearest``. ``flux`` is the
        total flux injected, the sum over pixels of the image values (unit
        MJy/sr, like photutils' ``aperture_sum`` on this image), including
        any light that fell outside the frame. ``snr`` is the S/N of an
        optimal PSF-weighted flux measurement with the true PSF and known
        background: ``F / sqrt(1 / sum(p_i**2 / var_i))`` over the central
        41x41 pixels, with sky, read and the star's own photon noise
        (crowding, stripes and defects ignored). ``nearest`` is the distance
        in pixels to the nearest other star or galaxy centre.
    galaxies : `~astropy.table.QTable`
        ``id, x, y, flux, flux_jy, mag_ab, r_eff, n, ellip, theta,
        nearest``: Sérsic profiles (before PSF convolution) with effective
        radius ``r_eff`` along the major axis in pixels, index ``n``,
        ellipticity ``1 - b/a`` and ``theta`` the major axis' angle from the
        +x axis, counter-clockwise (degrees). ``flux`` as for stars.
    sky : ndarray
        The sky model: pedestal, gradient and diffuse blob.
    sources : ndarray
        Stars and galaxies, noiseless, convolved with the PSF.
    stripes : ndarray
        The 1/f row offsets per amplifier added to the data (not in ERR).
    cosmic_rays, hot_pixels, dead_pixels, reference_pixels : ndarray of bool
        Where each defect is (the DQ plane flags the same pixels).
    noise_rms : ndarray
        The per-pixel noise sigma of the sky alone (sky photon noise and read
        noise), without the sources' photon noise. The ERR extension is
        ``sqrt(noise_rms**2 + sources * unit_per_electron)``.
    psf_model : `~jwst_widgets.datasets.psf.NircamPSF`
        The PSF used for the stars and galaxies.
    exptime, gain, read_noise : float
        Exposure time (s), electrons per DN, read noise (electrons rms).
    unit_per_electron : float
        MJy/sr of one detected electron in one pixel.
    """

    stars: object
    galaxies: object
    sky: np.ndarray
    sources: np.ndarray
    stripes: np.ndarray
    cosmic_rays: np.ndarray
    hot_pixels: np.ndarray
    dead_pixels: np.ndarray
    reference_pixels: np.ndarray
    noise_rms: np.ndarray
    psf_model: object
    exptime: float
    gain: float
    read_noise: float
    unit_per_electron: float

    @property
    def psf(self):
        """The PSF at the native pixel scale, centred, summing to 1."""
        return self.psf_model.psf

    @property
    def psf_oversampled(self):
        """The effective PSF sampled ``oversampling`` times finer (sum ``oversampling**2``).

        Ready for ``photutils.psf.ImagePSF(psf_oversampled, oversampling=oversampling)``.
        """
        return self.psf_model.psf_oversampled

    @property
    def oversampling(self):
        return self.psf_model.oversampling

    @property
    def fwhm(self):
        """FWHM of the PSF in pixels."""
        return self.psf_model.fwhm

    def encircled_energy(self, radius):
        """Fraction of a star's total flux within ``radius`` pixels of its centre."""
        return self.psf_model.encircled_energy(radius)

    @property
    def scene(self):
        """The noiseless sky plus sources (float32)."""
        return (self.sky + self.sources).astype(np.float32)

    @property
    def model(self):
        """The noiseless data: sky, sources and stripes (float32).

        ``(data - model) / error`` is unit-variance noise off the defects.
        """
        return (self.sky + self.sources + self.stripes).astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticFrame:
    """A synthetic NIRCam-like frame and its truth.

    Attributes
    ----------
    image : `~jwst_widgets.io.Image`
        The frame as :func:`jwst_widgets.load_image` reads its ``cal`` file.
    truth : SyntheticTruth
        What went into it.
    params : dict
        The arguments of :func:`nircam_like` that made it.
    """

    image: object
    truth: SyntheticTruth
    params: dict

    @property
    def dq(self):
        """The DQ plane (uint32)."""
        return self.image.meta["dq"]

    def to_hdulist(self, level="cal"):
        """The frame as a JWST-like FITS HDUList.

        Parameters
        ----------
        level : {"cal", "i2d"}
            ``"cal"``: PRIMARY, SCI, ERR, DQ (a Level-2 calibrated image).
            ``"i2d"``: PRIMARY, SCI, ERR, WHT, CON (a Level-3 resampled
            image, here on the same grid): pixels the DQ marks DO_NOT_USE
            are NaN in SCI and ERR and have weight 0.

        Returns
        -------
        `~astropy.io.fits.HDUList`
            New arrays, independent of the frame.

        Examples
        --------
        >>> from jwst_widgets import load_image
        >>> frame = nircam_like((256, 256), seed=1)
        >>> img = load_image(frame.to_hdulist())
        >>> bool((img.data[~img.mask] == frame.image.data[~frame.image.mask]).all())
        True
        """
        from astropy.io import fits

        if level not in ("cal", "i2d"):
            raise InputError(f"level must be 'cal' or 'i2d'; got {level!r}", param="level")
        img = self.image
        primary = fits.PrimaryHDU(header=img.meta["primary_header"].copy())
        sci_header = img.header.copy()
        data = np.array(img.data, dtype=np.float32)
        error = np.array(img.error, dtype=np.float32)
        dq = np.array(self.dq, dtype=np.uint32)
        err_header = fits.Header([("BUNIT", sci_header["BUNIT"])])
        if level == "cal":
            primary.header["DATAMODL"] = "ImageModel"
            hdus = [primary, fits.ImageHDU(data, sci_header, name="SCI"),
                    fits.ImageHDU(error, err_header, name="ERR"),
                    fits.ImageHDU(dq, name="DQ")]
        else:
            primary.header["DATAMODL"] = "ImageModel"
            bad = (dq & DQ_FLAGS["DO_NOT_USE"]) != 0
            data[bad] = np.nan
            error[bad] = np.nan
            wht = np.where(bad | ~np.isfinite(data), 0.0, self.truth.exptime).astype(np.float32)
            con = (wht > 0).astype(np.int32)[None]
            hdus = [primary, fits.ImageHDU(data, sci_header, name="SCI"),
                    fits.ImageHDU(error, err_header, name="ERR"),
                    fits.ImageHDU(wht, name="WHT"), fits.ImageHDU(con, name="CON")]
        primary.header["FILETYPE"] = "calibrated" if level == "cal" else "resampled"
        return fits.HDUList(hdus)

    def write(self, path, level="cal", *, overwrite=False):
        """Write the frame as a JWST-like FITS file (atomically).

        Parameters
        ----------
        path : str or os.PathLike
        level : {"cal", "i2d"}
            See :meth:`to_hdulist`.
        overwrite : bool, optional
            Replace an existing file.

        Returns
        -------
        str
            The path written.

        Examples
        --------
        >>> nircam_like((256, 256)).write("synthetic_cal.fits")  # doctest: +SKIP
        'synthetic_cal.fits'
        """
        import os

        from ..io.write import atomic_write

        path = os.fspath(path)
        if not overwrite and os.path.exists(path):
            raise InputError(f"{path}: exists (pass overwrite=True to replace it)",
                             param="path")
        hdul = self.to_hdulist(level)
        with atomic_write(path, "wb") as fh:
            hdul.writeto(fh)
        return path

    def __repr__(self):
        ny, nx = self.image.shape
        return (f"<SyntheticFrame {self.image.origin} {nx}x{ny}: "
                f"{len(self.truth.stars)} stars, {len(self.truth.galaxies)} galaxies>")


def nircam_like(shape=(2048, 2048), seed=0, *, n_stars=None, n_galaxies=None, filter="F200W",
                pixel_scale=None, oversampling=4, star_mags=(18.0, 28.5), alpha=0.5,
                galaxy_mags=(20.0, 28.0), sky=None, exptime=1000.0, read_noise=8.0,
                stripes=0.3, n_cosmic_rays=None, hot_fraction=2e-4, dead_fraction=5e-5,
                border=4, ra=53.16, dec=-27.78, position_angle=0.0):
    """A synthetic NIRCam-like calibrated image and its truth tables.

    Parameters
    ----------
    shape : (int, int), optional
        ``(ny, nx)``, each from 64 to 8192.
    seed : int, optional
        Seed of the random numbers (``numpy.random.SeedSequence``). Equal
        arguments give identical frames. Each ingredient draws from its own
        stream, so changing, say, ``n_galaxies`` leaves the stars alone.
    n_stars, n_galaxies : int, optional
        Numbers of stars and galaxies; by default 300 stars and 500 galaxies
        per 2048x2048 pixels, in proportion to the area. A few thousand
        stars make a crowded field.
    filter : str, optional
        NIRCam wide filter: F070W, F090W, F115W, F150W, F200W, F277W, F356W
        or F444W. Sets the PSF, the zero point and the sky.
    pixel_scale : float, optional
        Arcsec per pixel: 0.031 for short-wave filters, 0.063 for long-wave
        ones by default.
    oversampling : int, optional
        Oversampling of the PSF model (1 to 8): stars are placed with exact
        shifts by ``1 / oversampling`` pixel and bilinear interpolation in
        between.
    star_mags : (float, float), optional
        AB magnitude range of the stars (bright, faint).
    alpha : float, optional
        Slope of the star counts, ``N(>F) ~ F**-alpha`` (0.05 to 3). The
        galaxies follow ``alpha = 0.75``.
    galaxy_mags : (float, float), optional
        AB magnitude range of the galaxies.
    sky : float, optional
        Mean sky level in MJy/sr (the filter's typical sky by default).
    exptime : float, optional
        Exposure time in seconds (10 to 100000): sets the photon noise.
    read_noise : float, optional
        Effective read noise of the slope image, electrons rms per pixel.
    stripes : float, optional
        Rms of the 1/f row offsets, in units of the sky noise (0 for none).
    n_cosmic_rays : int, optional
        Cosmic-ray events (single hits, small clumps, short tracks); by
        default 400 per 2048x2048 pixels per 1000 s.
    hot_fraction, dead_fraction : float, optional
        Fractions of hot (DQ HOT, left in the data) and dead (DQ
        DEAD + DO_NOT_USE, NaN) pixels.
    border : int, optional
        Width of the NaN reference-pixel border (DQ REFERENCE_PIXEL +
        DO_NOT_USE); 4 like NIRCam, 0 for none.
    ra, dec : float, optional
        Sky position of the frame centre in degrees.
    position_angle : float, optional
        Angle of the frame's +y axis east of north, degrees.

    Returns
    -------
    SyntheticFrame
        ``.image`` (a `~jwst_widgets.io.Image` exactly as ``load_image``
        gives for the equivalent ``cal`` file), ``.truth`` (tables, sky,
        masks, PSF), ``.to_hdulist()`` and ``.write()``.

    Raises
    ------
    jwst_widgets.InputError
        When an argument is out of range; the message names it.

    Notes
    -----
    Fluxes: a source of ``f`` Jy gives ``f / 3631 * R0`` electrons per second,
    with ``R0`` from the filter's band, a 25.4 m^2 telescope and the filter's
    mean throughput; DN = electrons / gain; ``PHOTMJSR`` converts DN/s to
    MJy/sr. The image is the Poisson draw of (sky + sources) in electrons
    plus Gaussian read noise, converted to MJy/sr, plus stripes, hot pixels
    and cosmic rays. ``ERR`` is the expected noise sigma of sky + sources
    (photon and read noise). Cosmic rays stay in the data (flagged
    JUMP_DET + DO_NOT_USE), hot pixels too (flagged HOT); dead and
    reference pixels are NaN. The 2048x2048 default takes about two seconds
    (plus about one for the first PSF of a filter).

    Examples
    --------
    >>> frame = nircam_like((512, 512), seed=3, n_stars=50)
    >>> frame.image.unit
    Unit("MJy / sr")
    >>> len(frame.truth.stars)
    50
    >>> bright = frame.truth.stars[frame.truth.stars["snr"] > 10]
    """
    import astropy.units as u
    from astropy.table import QTable

    _given = dict(shape=shape, seed=seed, n_stars=n_stars, n_galaxies=n_galaxies,
                  filter=filter, pixel_scale=pixel_scale, oversampling=oversampling,
                  star_mags=star_mags, alpha=alpha, galaxy_mags=galaxy_mags, sky=sky,
                  exptime=exptime, read_noise=read_noise, stripes=stripes,
                  n_cosmic_rays=n_cosmic_rays, hot_fraction=hot_fraction,
                  dead_fraction=dead_fraction, border=border, ra=ra, dec=dec,
                  position_angle=position_angle)
    p = _validate(_given)
    ny, nx = p["shape"]
    info = NIRCAM_FILTERS[p["filter"]]
    psf = nircam_psf(p["filter"], oversampling=p["oversampling"], pixel_scale=p["pixel_scale"])
    rng_stars, rng_gal, rng_sky, rng_noise, rng_stripes, rng_cr, rng_bad = (
        np.random.default_rng(s) for s in np.random.SeedSequence(p["seed"]).spawn(7))

    gain = GAINS[info.channel]
    phot = _photometry(info, p["pixel_scale"], gain, p["exptime"])
    per_e = phot["unit_per_electron"]

    # -- sources ------------------------------------------------------------
    stars = _draw_stars(rng_stars, p, phot)
    galaxies = _draw_galaxies(rng_gal, p, phot)
    # Stars whose approximate wings would be off by more than 0.05 sigma get
    # their whole PSF placed exactly.
    sky_sigma = math.sqrt(p["sky"] / per_e + p["read_noise"]**2) * per_e
    sources = _render_sources((ny, nx), psf, stars, galaxies,
                              exact_above=0.05 * sky_sigma / 3e-6)
    sources_f32 = sources.astype(np.float32)

    # -- sky, noise, stripes --------------------------------------------------
    sky_model = _sky_model(rng_sky, (ny, nx), p["sky"])  # float32
    rn = p["read_noise"]
    expected_e = sources
    expected_e += sky_model
    expected_e /= per_e  # electrons; `sources` is not used below
    data = rng_noise.poisson(expected_e).astype(np.float32)
    if rn > 0:
        data += rng_noise.standard_normal((ny, nx), dtype=np.float32) * np.float32(rn)
    data *= np.float32(per_e)
    expected_e += rn**2
    error = np.sqrt(expected_e, dtype=np.float32) * np.float32(per_e)
    noise_rms = np.sqrt(sky_model / np.float32(per_e) + np.float32(rn**2)) * np.float32(per_e)
    stripe_img = _stripes(rng_stripes, (ny, nx), p["stripes"] * sky_sigma)
    data += stripe_img

    # -- defects --------------------------------------------------------------
    hot, dead, hot_e = _bad_pixels(rng_bad, (ny, nx), p, per_e)
    data[hot] += hot_e
    cr_cells, cr_e = _cosmic_rays(rng_cr, (ny, nx), p["n_cosmic_rays"])
    data.flat[cr_cells] += (cr_e * per_e).astype(np.float32)
    cosmic = np.zeros((ny, nx), bool)
    cosmic.flat[cr_cells] = True
    reference = np.zeros((ny, nx), bool)
    b = p["border"]
    if b:
        reference[:b] = reference[-b:] = True
        reference[:, :b] = reference[:, -b:] = True
    dq = np.zeros((ny, nx), np.uint32)
    dq[hot] |= DQ_FLAGS["HOT"]
    dq[dead] |= DQ_FLAGS["DEAD"] | DQ_FLAGS["DO_NOT_USE"]
    dq[cosmic] |= DQ_FLAGS["JUMP_DET"] | DQ_FLAGS["DO_NOT_USE"]
    dq[reference] |= np.uint32(DQ_FLAGS["REFERENCE_PIXEL"] | DQ_FLAGS["DO_NOT_USE"])
    nan = dead | reference
    data[nan] = np.nan
    error[nan] = np.nan

    # -- truth tables ---------------------------------------------------------
    positions = np.concatenate([np.c_[stars["x"], stars["y"]],
                                np.c_[galaxies["x"], galaxies["y"]]])
    nearest = _nearest(positions)
    flux_unit = u.MJy / u.sr
    star_tab = QTable()
    star_tab["id"] = np.arange(1, len(stars["x"]) + 1)
    star_tab["x"] = stars["x"]
    star_tab["y"] = stars["y"]
    star_tab["flux"] = stars["flux"] * flux_unit
    star_tab["flux_jy"] = stars["flux"] * phot["jy_per_unit"] * u.Jy
    star_tab["mag_ab"] = stars["mag"]
    star_tab["snr"] = _star_snr(psf, stars, noise_rms, per_e)
    star_tab["nearest"] = nearest[:len(stars["x"])]
    gal_tab = QTable()
    gal_tab["id"] = np.arange(1, len(galaxies["x"]) + 1)
    for col in ("x", "y"):
        gal_tab[col] = galaxies[col]
    gal_tab["flux"] = galaxies["flux"] * flux_unit
    gal_tab["flux_jy"] = galaxies["flux"] * phot["jy_per_unit"] * u.Jy
    gal_tab["mag_ab"] = galaxies["mag"]
    for col in ("r_eff", "n", "ellip"):
        gal_tab[col] = galaxies[col]
    gal_tab["theta"] = galaxies["theta"] * u.deg
    gal_tab["nearest"] = nearest[len(stars["x"]):]
    for tab, what in ((star_tab, "star"), (gal_tab, "galaxy")):
        tab["x"].info.description = f"{what} centre, 0-based column"
        tab["y"].info.description = f"{what} centre, 0-based row"
        tab["flux"].info.description = "total flux: sum over pixels of the image values"

    def frozen(a, dtype=np.float32):
        a = np.ascontiguousarray(a, dtype=dtype)
        a.flags.writeable = False
        return a

    truth = SyntheticTruth(
        stars=star_tab, galaxies=gal_tab, sky=frozen(sky_model), sources=frozen(sources_f32),
        stripes=frozen(stripe_img), cosmic_rays=frozen(cosmic, bool), hot_pixels=frozen(hot, bool),
        dead_pixels=frozen(dead, bool), reference_pixels=frozen(reference, bool),
        noise_rms=frozen(noise_rms), psf_model=psf, exptime=p["exptime"], gain=gain,
        read_noise=rn, unit_per_electron=per_e)

    given = {k: p[k] for k in _DEFAULTS
             if k == "seed" or (_given[k] is not None and p[k] != _DEFAULTS[k])}
    image = _make_image(p, given, info, phot, frozen(data), frozen(error), frozen(dq, np.uint32))
    return SyntheticFrame(image=image, truth=truth, params=p)


#: The arguments of nircam_like and their defaults.
_DEFAULTS = {name: par.default
             for name, par in inspect.signature(nircam_like).parameters.items()}


# -- validation ---------------------------------------------------------------

def _validate(p):
    out = dict(p)
    shape = p["shape"]
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape, shape)
    try:
        ok = len(shape) == 2 and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                     for s in shape)
    except TypeError:
        ok = False
    if not ok or not all(64 <= s <= 8192 for s in shape):
        raise InputError(f"shape must be (ny, nx) with integers from 64 to 8192; got {shape!r}",
                         param="shape")
    out["shape"] = (int(shape[0]), int(shape[1]))
    area = out["shape"][0] * out["shape"][1] / _DEFAULT_AREA
    out["seed"] = check_integer("seed", p["seed"], 0, 2**63 - 1)
    out["filter"] = check_filter(p["filter"])
    info = NIRCAM_FILTERS[out["filter"]]
    scale = PIXEL_SCALES[info.channel] if p["pixel_scale"] is None else p["pixel_scale"]
    out["pixel_scale"] = check_number("pixel_scale", scale, 0.005, 0.2, unit=" arcsec per pixel")
    out["oversampling"] = check_integer("oversampling", p["oversampling"], 1, 8)
    for name, default in (("n_stars", _DEFAULT_N_STARS), ("n_galaxies", _DEFAULT_N_GALAXIES)):
        value = round(default * area) if p[name] is None else p[name]
        out[name] = check_integer(name, value, 0, 100_000)
    out["star_mags"] = _mag_range("star_mags", p["star_mags"])
    out["galaxy_mags"] = _mag_range("galaxy_mags", p["galaxy_mags"])
    out["alpha"] = check_number("alpha", p["alpha"], 0.05, 3.0)
    out["sky"] = check_number("sky", info.sky if p["sky"] is None else p["sky"], 0.0, 1e4,
                         unit=" MJy/sr")
    out["exptime"] = check_number("exptime", p["exptime"], 10.0, 1e5, unit=" s")
    out["read_noise"] = check_number("read_noise", p["read_noise"], 0.0, 1000.0, unit=" electrons")
    out["stripes"] = check_number("stripes", p["stripes"], 0.0, 100.0)
    n_cr = p["n_cosmic_rays"]
    if n_cr is None:
        n_cr = round(_DEFAULT_N_COSMIC_RAYS * area * out["exptime"] / 1000.0)
    out["n_cosmic_rays"] = check_integer("n_cosmic_rays", n_cr, 0, 1_000_000)
    out["hot_fraction"] = check_number("hot_fraction", p["hot_fraction"], 0.0, 0.05)
    out["dead_fraction"] = check_number("dead_fraction", p["dead_fraction"], 0.0, 0.05)
    out["border"] = check_integer("border", p["border"], 0, min(out["shape"]) // 4)
    out["ra"] = check_number("ra", p["ra"], 0.0, 360.0, unit=" degrees")
    out["dec"] = check_number("dec", p["dec"], -90.0, 90.0, unit=" degrees")
    out["position_angle"] = check_number("position_angle", p["position_angle"], -360.0, 360.0,
                                    unit=" degrees")
    return out


def _mag_range(name, value):
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not (5.0 <= lo < hi <= 40.0):
        raise InputError(f"{name} must be (bright, faint) AB magnitudes with "
                         f"5 <= bright < faint <= 40; got {value!r}", param=name)
    return (lo, hi)


# -- photometry ---------------------------------------------------------------

def _photometry(info, pixel_scale, gain, exptime):
    """Zero point and unit conversions of a filter, pixel scale and exposure."""
    lam_lo, lam_hi = info.pivot - info.width / 2, info.pivot + info.width / 2
    # electrons/s of a flat 0 AB mag source: photons per unit ln(nu) times the band.
    rate0 = (_AB_ZERO_JY * 1e-26 / _PLANCK * math.log(lam_hi / lam_lo)
             * TELESCOPE_AREA * info.throughput)
    # Header values are rounded to 10 digits so that a FITS file says exactly
    # what the truth used.
    pixar_sr = float(f"{(pixel_scale * math.pi / 180 / 3600) ** 2:.10g}")
    jy_per_unit = pixar_sr * 1e6  # Jy of 1 MJy/sr summed over one pixel
    photmjsr = float(f"{_AB_ZERO_JY * gain / (jy_per_unit * rate0):.10g}")
    return {"rate0": rate0, "pixar_sr": pixar_sr, "pixar_a2": float(f"{pixel_scale**2:.10g}"),
            "jy_per_unit": jy_per_unit, "unit_per_electron": photmjsr / (gain * exptime),
            "photmjsr": photmjsr, "zeropoint_ab": 2.5 * math.log10(rate0)}


def _mag_to_unit(mag, phot):
    return _AB_ZERO_JY * 10 ** (-0.4 * np.asarray(mag)) / phot["jy_per_unit"]


def _power_law_mags(rng, n, mags, alpha):
    """Magnitudes with N(>F) ~ F^-alpha between the two limits."""
    f_bright, f_faint = 10 ** (-0.4 * mags[0]), 10 ** (-0.4 * mags[1])
    ratio = (f_bright / f_faint) ** (-alpha)
    flux = f_faint * (1 - rng.random(n) * (1 - ratio)) ** (-1 / alpha)
    return -2.5 * np.log10(flux)


# -- sources ----------------------------------------------------------------

def _draw_stars(rng, p, phot):
    ny, nx = p["shape"]
    n = p["n_stars"]
    x = rng.uniform(-0.5, nx - 0.5, n)
    y = rng.uniform(-0.5, ny - 0.5, n)
    mag = _power_law_mags(rng, n, p["star_mags"], p["alpha"])
    return {"x": x, "y": y, "mag": mag, "flux": _mag_to_unit(mag, phot)}


def _draw_galaxies(rng, p, phot):
    ny, nx = p["shape"]
    n = p["n_galaxies"]
    x = rng.uniform(-0.5, nx - 0.5, n)
    y = rng.uniform(-0.5, ny - 0.5, n)
    mag = _power_law_mags(rng, n, p["galaxy_mags"], _GALAXY_ALPHA)
    # Fainter galaxies are smaller: 0.25" at AB 23, 0.12 dex per magnitude, 0.2 dex scatter.
    r_arcsec = 0.25 * 10 ** (-0.12 * (mag - 23) + rng.normal(0, 0.2, n))
    r_eff = np.clip(r_arcsec / p["pixel_scale"], 0.8, 40.0)
    sersic_n = rng.uniform(0.5, 4.0, n)
    ellip = rng.uniform(0.0, 0.7, n)
    theta = rng.uniform(0.0, 180.0, n)
    return {"x": x, "y": y, "mag": mag, "flux": _mag_to_unit(mag, phot), "r_eff": r_eff,
            "n": sersic_n, "ellip": ellip, "theta": theta}


def _sersic_stamp(dx, dy, r_eff, n, ellip, theta_deg):
    """A Sérsic profile summing to 1 on a square stamp centred on pixel (h, h).

    The galaxy centre is at ``(h + dx, h + dy)``. The profile is tapered to
    zero between 6 and 8 effective radii (at most 150 px); the central
    pixels are integrated on a 9x9 sub-grid (cuspy profiles).
    """
    from scipy.special import gammaincinv

    b_n = gammaincinv(2 * n, 0.5)
    r_max = float(np.clip(8 * r_eff, 6.0, 150.0))
    h = int(math.ceil(r_max)) + 1
    c, s = math.cos(math.radians(theta_deg)), math.sin(math.radians(theta_deg))
    q = 1 - ellip

    def profile(xx, yy):
        xr = xx * c + yy * s
        yr = -xx * s + yy * c
        r = np.sqrt(xr**2 + (yr / q) ** 2)
        taper = np.clip((r_max - r) / (0.25 * r_max), 0.0, 1.0)
        taper = np.sin(0.5 * np.pi * taper) ** 2
        return np.exp(-b_n * ((r / r_eff) ** (1 / n) - 1)) * taper

    grid = np.arange(-h, h + 1, dtype=float)
    stamp = profile(grid[None, :] - dx, grid[:, None] - dy)
    k = min(3, h)
    sub = (np.arange(9) + 0.5) / 9 - 0.5
    fine = np.arange(-k, k + 1)[:, None] + sub[None, :]  # (2k+1, 9)
    fx = fine.reshape(-1)
    block = profile(fx[None, :] - dx, fx[:, None] - dy)
    block = block.reshape(2 * k + 1, 9, 2 * k + 1, 9).mean(axis=(1, 3))
    stamp[h - k:h + k + 1, h - k:h + k + 1] = block
    return stamp / stamp.sum(), h


def _render_sources(shape, psf, stars, galaxies, exact_above):
    """Stars and galaxies convolved with the PSF, float64 (ny, nx).

    Galaxies are drawn on a canvas that extends the frame by half the PSF
    stamp on every side, so that light from just outside comes in.
    """
    m = psf.size // 2
    canvas = None
    if len(galaxies["x"]):
        canvas = np.zeros((shape[0] + 2 * m, shape[1] + 2 * m))
        for i in range(len(galaxies["x"])):
            x, y = galaxies["x"][i] + m, galaxies["y"][i] + m
            ix, iy = int(round(x)), int(round(y))
            stamp, h = _sersic_stamp(x - ix, y - iy, galaxies["r_eff"][i], galaxies["n"][i],
                                     galaxies["ellip"][i], galaxies["theta"][i])
            add_clipped(canvas, stamp * galaxies["flux"][i], iy - h, ix - h)
    return psf.render(shape, stars["x"], stars["y"], stars["flux"], extended=canvas,
                      exact_above=exact_above)


def _star_snr(psf, stars, noise_rms, per_e):
    """Optimal (PSF-weighted) S/N of each star with the true PSF and background."""
    f = np.asarray(stars["flux"])
    if not len(f):
        return np.zeros(0)
    c, h = psf.size // 2, STAR_CORE
    prof = psf.psf[c - h:c + h + 1, c - h:c + h + 1].ravel()
    ny, nx = noise_rms.shape
    iy = np.clip(np.round(stars["y"]).astype(int), 0, ny - 1)
    ix = np.clip(np.round(stars["x"]).astype(int), 0, nx - 1)
    sky_var = noise_rms[iy, ix].astype(float) ** 2
    snr = np.empty(len(f))
    for start in range(0, len(f), 512):  # bounded memory for crowded fields
        sl = slice(start, start + 512)
        var = sky_var[sl, None] + f[sl, None] * prof[None, :] * per_e
        info = (prof[None, :] ** 2 / var).sum(axis=1)
        snr[sl] = f[sl] * np.sqrt(info)
    return snr


def _nearest(positions):
    if len(positions) < 2:
        return np.full(len(positions), np.inf)
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(positions).query(positions, k=2)
    return dist[:, 1]


# -- sky and detector -----------------------------------------------------------

def _sky_model(rng, shape, level):
    """Pedestal, a gradient of +-4 % across the frame and a diffuse blob of 6 %."""
    ny, nx = shape
    size = max(ny, nx)
    y = ((np.arange(ny) - (ny - 1) / 2) / size).astype(np.float32)
    x = ((np.arange(nx) - (nx - 1) / 2) / size).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    gradient = 0.08 * (np.cos(angle) * x[None, :] + np.sin(angle) * y[:, None])
    bx, by = rng.uniform(-0.3, 0.3, 2)
    sigma = rng.uniform(0.1, 0.2)
    ratio = rng.uniform(0.5, 1.0)
    t = rng.uniform(0, np.pi)
    dx, dy = x[None, :] - bx, y[:, None] - by
    u = dx * np.cos(t) + dy * np.sin(t)
    v = (-dx * np.sin(t) + dy * np.cos(t)) / ratio
    blob = 0.06 * np.exp(-0.5 * (u**2 + v**2) / sigma**2)
    return (level * (1.0 + gradient + blob)).astype(np.float32)


def _one_over_f(rng, n):
    """Unit-rms noise with a 1/f power spectrum plus a white floor, length n."""
    freq = np.fft.rfftfreq(n)
    amp = np.zeros_like(freq)
    amp[1:] = (freq[1:] + 0.02) ** -0.5
    spec = amp * (rng.normal(size=freq.size) + 1j * rng.normal(size=freq.size))
    series = np.fft.irfft(spec, n)
    series -= series.mean()
    std = series.std()
    return series / std if std > 0 else series


def _stripes(rng, shape, rms):
    """Row offsets per amplifier (4 vertical bands): 60 % common to all."""
    ny, nx = shape
    common = _one_over_f(rng, ny)
    out = np.empty(shape, np.float32)
    bounds = np.linspace(0, nx, N_AMPLIFIERS + 1).round().astype(int)
    for a in range(N_AMPLIFIERS):
        rows = (np.sqrt(0.6) * common + np.sqrt(0.4) * _one_over_f(rng, ny)) * rms
        out[:, bounds[a]:bounds[a + 1]] = rows[:, None]
    return out


def _bad_pixels(rng, shape, p, per_e):
    """Hot (mask, extra MJy/sr) and dead (mask) pixels at distinct places."""
    ny, nx = shape
    npix = ny * nx
    n_hot = int(round(p["hot_fraction"] * npix))
    n_dead = int(round(p["dead_fraction"] * npix))
    where = rng.choice(npix, n_hot + n_dead, replace=False)
    hot = np.zeros(npix, bool)
    dead = np.zeros(npix, bool)
    hot[where[:n_hot]] = True
    dead[where[n_hot:]] = True
    # Dark current of 0.5 to 50 e-/s, in MJy/sr.
    rate = 10 ** rng.uniform(np.log10(0.5), np.log10(50.0), n_hot)
    return hot.reshape(shape), dead.reshape(shape), rate * p["exptime"] * per_e


def _cosmic_rays(rng, shape, n):
    """Pixels hit by ``n`` cosmic-ray events (single hits, clumps, tracks).

    Returns the flat pixel indices (unique) and the electrons deposited in
    each: 300 to 5000 per event (log-uniform), clump neighbours 15-40 % of
    that, track pixels 50-150 %.
    """
    ny, nx = shape
    kinds = rng.choice(3, n, p=[0.55, 0.25, 0.20])
    levels = 10 ** rng.uniform(np.log10(300.0), np.log10(5000.0), n)
    ys, xs = rng.integers(0, ny, n), rng.integers(0, nx, n)
    cells_y, cells_x, charge = [ys], [xs], [levels]  # every event hits its start pixel
    clumps = np.nonzero(kinds == 1)[0]
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        hit = clumps[rng.random(clumps.size) < 0.7]
        cells_y.append(ys[hit] + dy)
        cells_x.append(xs[hit] + dx)
        charge.append(levels[hit] * rng.uniform(0.15, 0.4, hit.size))
    for i in np.nonzero(kinds == 2)[0]:
        length, angle = rng.uniform(3, 25), rng.uniform(0, np.pi)
        t = np.arange(0.5, length, 0.5)
        py = np.round(ys[i] + t * np.sin(angle)).astype(int)
        px = np.round(xs[i] + t * np.cos(angle)).astype(int)
        cells = np.unique(py * (nx + 2) + px)  # distinct pixels of the track
        cells = cells[cells != ys[i] * (nx + 2) + xs[i]]
        py, px = np.divmod(cells, nx + 2)
        cells_y.append(py)
        cells_x.append(px)
        charge.append(levels[i] * rng.uniform(0.5, 1.5, cells.size))
    y, x, e = np.concatenate(cells_y), np.concatenate(cells_x), np.concatenate(charge)
    keep = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
    flat = y[keep] * nx + x[keep]
    cells, inverse = np.unique(flat, return_inverse=True)
    return cells, np.bincount(inverse, weights=e[keep], minlength=cells.size)


# -- the image ----------------------------------------------------------------

def _make_image(p, given, info, phot, data, error, dq):
    from astropy.io import fits

    from ..io.image import content_key
    from ..io.load import load_image

    ny, nx = p["shape"]
    primary = fits.Header()
    primary["TELESCOP"] = ("JWST", "telescope used to acquire the data")
    primary["INSTRUME"] = ("NIRCAM", "instrument used to acquire the data")
    primary["DETECTOR"] = ("NRCB1" if info.channel == "SHORT" else "NRCBLONG", "detector")
    primary["MODULE"] = ("B", "NIRCam module")
    primary["CHANNEL"] = (info.channel, "NIRCam channel")
    primary["FILTER"] = (p["filter"], "name of the filter element used")
    primary["PUPIL"] = ("CLEAR", "name of the pupil element used")
    primary["EXP_TYPE"] = ("NRC_IMAGE", "type of data in the exposure")
    primary["EFFEXPTM"] = (p["exptime"], "[s] effective exposure time")
    primary["TARG_RA"] = (p["ra"], "[deg] target RA")
    primary["TARG_DEC"] = (p["dec"], "[deg] target Dec")
    primary["ORIGIN"] = ("jwst-widgets", "synthetic data, not an observation")
    primary["SYNTHETI"] = (True, "made by jwst_widgets.datasets.nircam_like")
    primary["SIMSEED"] = (p["seed"], "random seed of nircam_like")

    sci = fits.Header()
    sci["BUNIT"] = ("MJy/sr", "physical units of the array values")
    sci["PHOTMJSR"] = (phot["photmjsr"], "flux density (MJy/sr) producing 1 DN/s")
    sci["PHOTUJA2"] = (float(f"{phot['photmjsr'] * 1e12 / (180 * 3600 / math.pi) ** 2:.10g}"),
                       "flux density (uJy/arcsec2) producing 1 DN/s")
    sci["PIXAR_SR"] = (phot["pixar_sr"], "nominal pixel area in steradians")
    sci["PIXAR_A2"] = (phot["pixar_a2"], "nominal pixel area in arcsec^2")
    sci.update(_wcs((ny, nx), p).to_header())

    hdul = fits.HDUList([fits.PrimaryHDU(header=primary),
                         fits.ImageHDU(data, sci, name="SCI"),
                         fits.ImageHDU(error, fits.Header([("BUNIT", "MJy/sr")]), name="ERR"),
                         fits.ImageHDU(dq, name="DQ")])
    image = load_image(hdul)
    origin = f"nircam_like({', '.join(f'{k}={v!r}' for k, v in given.items())})"
    key = content_key("nircam_like", *(f"{k}={p[k]!r}" for k in sorted(p)))
    return image.replace(origin=origin, key=key)


def _wcs(shape, p):
    """A TAN WCS at the pixel scale, centred on (ra, dec), rotated by the position angle."""
    from astropy.wcs import WCS

    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [p["ra"], p["dec"]]
    w.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    scale = p["pixel_scale"] / 3600.0
    w.wcs.cdelt = [-scale, scale]
    t = math.radians(p["position_angle"])
    w.wcs.pc = [[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.radesys = "ICRS"
    return w
