"""A JWST/NIRCam-like point spread function from a model of the telescope pupil.

The pupil has the 18 hexagonal segments of JWST's primary mirror (1.32 m flat
to flat, 7 mm gaps, the central segment missing), the shadow of the secondary
mirror and its three struts. The PSF is the squared modulus of the pupil's
Fourier transform, summed over wavelengths across the filter's band, blurred a
little for charge diffusion and pointing jitter, and integrated over the
detector pixels. It shows the six big diffraction spikes of the segment edges
and the two faint horizontal ones of the vertical strut.

This is a look-alike for testing, not a calibrated PSF: use STPSF for
science.
"""

import dataclasses
import functools
import math

import numpy as np

from ..errors import InputError, describe_choices

__all__ = ["NIRCAM_FILTERS", "NircamPSF", "nircam_psf", "jwst_pupil", "optical_psf"]

_ARCSEC = np.pi / 180 / 3600


@dataclasses.dataclass(frozen=True)
class FilterInfo:
    """Approximate facts about a NIRCam filter.

    Attributes
    ----------
    pivot : float
        Pivot wavelength in micron.
    width : float
        Band width in micron.
    throughput : float
        Mean total system throughput (telescope, optics, detector QE) in the
        band; used for the photometric zero point.
    channel : str
        ``"SHORT"`` (0.031"/px detectors) or ``"LONG"`` (0.063"/px).
    sky : float
        A typical low-zodiacal sky background in MJy/sr.
    """

    pivot: float
    width: float
    throughput: float
    channel: str
    sky: float


#: The NIRCam wide filters this module knows (approximate values).
NIRCAM_FILTERS = {
    "F070W": FilterInfo(0.704, 0.128, 0.24, "SHORT", 0.10),
    "F090W": FilterInfo(0.901, 0.194, 0.33, "SHORT", 0.10),
    "F115W": FilterInfo(1.154, 0.225, 0.36, "SHORT", 0.11),
    "F150W": FilterInfo(1.501, 0.318, 0.44, "SHORT", 0.13),
    "F200W": FilterInfo(1.990, 0.461, 0.47, "SHORT", 0.15),
    "F277W": FilterInfo(2.786, 0.672, 0.42, "LONG", 0.16),
    "F356W": FilterInfo(3.563, 0.787, 0.50, "LONG", 0.18),
    "F444W": FilterInfo(4.421, 1.024, 0.50, "LONG", 0.35),
}

#: Detector pixel scales in arcsec per pixel.
PIXEL_SCALES = {"SHORT": 0.031, "LONG": 0.063}

# Telescope geometry (metres).
SEGMENT_FLAT_TO_FLAT = 1.32
SEGMENT_GAP = 0.007
SECONDARY_DIAMETER = 0.74
STRUT_WIDTH = 0.05
PUPIL_RADIUS = 3.35  # half-side of a square holding the 18 segments
# Fixed mirror figure errors: the same PSF for every frame of a filter.
_WFE_SEED = 2021
_PISTON_RMS = 20e-9
_TILT_RMS = 5e-9  # OPD at the segment edge
# Charge diffusion and jitter, as a Gaussian sigma in arcsec.
_BLUR_ARCSEC = 0.004
_N_WAVELENGTHS = 9
#: Half-size of the star cores placed at their exact sub-pixel position.
STAR_CORE = 20


def check_filter(filter):
    """Return the canonical filter name or raise InputError."""
    name = str(filter).strip().upper()
    if name not in NIRCAM_FILTERS:
        raise InputError(f"filter must be one of {describe_choices(list(NIRCAM_FILTERS))}; "
                         f"got {filter!r}", param="filter")
    return name


def check_integer(name, value, lo, hi):
    """Return ``int(value)`` or raise InputError naming ``name``."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or not lo <= value <= hi):
        raise InputError(f"{name} must be an integer from {lo} to {hi}; got {value!r}",
                         param=name)
    return int(value)


def check_number(name, value, lo, hi, unit=""):
    """Return ``float(value)`` in ``[lo, hi]`` or raise InputError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not (lo <= v <= hi):
        raise InputError(f"{name} must be a number from {lo:g} to {hi:g}{unit}; got {value!r}",
                         param=name)
    return v


def _segment_map(x, y):
    """For points (metres): segment index (-1 off the mirror), offsets from the
    segment centre and the hexagonal distance from it."""
    pitch = SEGMENT_FLAT_TO_FLAT + SEGMENT_GAP
    # Axial coordinates of the flat-topped hexagonal lattice, then cube rounding.
    q = 2 * x / (pitch * np.sqrt(3))
    r = y / pitch - q / 2
    s = -q - r
    rq, rr, rs = np.round(q), np.round(r), np.round(s)
    dq, dr, ds = np.abs(rq - q), np.abs(rr - r), np.abs(rs - s)
    fix_q = (dq > dr) & (dq > ds)
    fix_r = ~fix_q & (dr > ds)
    rq = np.where(fix_q, -rr - rs, rq)
    rr = np.where(fix_r, -rq - rs, rr)
    rs = -rq - rr
    ring = (np.abs(rq) + np.abs(rr) + np.abs(rs)) / 2
    cx = rq * pitch * np.sqrt(3) / 2
    cy = pitch * (rq / 2 + rr)
    lx, ly = x - cx, y - cy
    # Hexagon "radius" along the three edge normals (90, 30 and 150 degrees).
    c30 = np.sqrt(3) / 2
    metric = np.maximum(np.abs(ly), np.maximum(np.abs(c30 * lx + 0.5 * ly),
                                               np.abs(-c30 * lx + 0.5 * ly)))
    # A stable segment number: index of (q, r) in a 5x5 grid; -1 off the mirror.
    on_mirror = (ring >= 1) & (ring <= 2)
    index = np.where(on_mirror, (rq + 2) * 5 + (rr + 2), -1).astype(int)
    return index, lx, ly, metric


def _strut_distance(x, y):
    """Signed distance (metres) to the shadow of the secondary mirror and its
    three struts: negative inside the shadow."""
    dist = np.hypot(x, y) - SECONDARY_DIAMETER / 2
    for angle in (90.0, 240.0, 300.0):  # one strut up, two down at +-30 deg from vertical
        dx, dy = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        along = x * dx + y * dy
        across = np.abs(-x * dy + y * dx) - STRUT_WIDTH / 2
        dist = np.where(along >= 0, np.minimum(dist, across), dist)
    return dist


def _segment_errors():
    """Fixed piston and tip/tilt OPD (metres) per segment index of _segment_map."""
    rng = np.random.default_rng(_WFE_SEED)
    piston = rng.normal(0, _PISTON_RMS, 25)
    tilt = rng.normal(0, _TILT_RMS, (25, 2)) / (SEGMENT_FLAT_TO_FLAT / 2)
    return piston, tilt


def _pupil_region(n, spacing, aberrations=True):
    """The pupil on the part of an (n, n) grid that can hold it.

    Returns ``(lo, hi, transmission, opd)`` for the square ``[lo:hi, lo:hi]``.
    Edges are anti-aliased: a sample's transmission is the fraction of it
    that is clear, estimated from the signed distance to the nearest edge,
    so the 7 mm gaps come out as partial transmission.
    """
    half = int(np.ceil(PUPIL_RADIUS / spacing)) + 2
    lo, hi = max(n // 2 - half, 0), min(n // 2 + half, n)
    coords = (np.arange(lo, hi) - n / 2) * spacing
    x, y = np.meshgrid(coords, coords)
    index, lx, ly, metric = _segment_map(x, y)
    edge = np.minimum(SEGMENT_FLAT_TO_FLAT / 2 - metric, _strut_distance(x, y))
    trans = np.clip(0.5 + edge / spacing, 0.0, 1.0)
    trans[index < 0] = 0.0
    opd = np.zeros_like(trans)
    if aberrations:
        piston, tilt = _segment_errors()
        safe = np.where(index >= 0, index, 0)
        opd = np.where(index >= 0, piston[safe] + tilt[safe, 0] * lx + tilt[safe, 1] * ly, 0.0)
        # Remove the overall piston and tip/tilt: the star stays where it is put.
        design = np.stack([np.ones_like(x), x, y], axis=-1)[trans > 0]
        w = trans[trans > 0]
        coef = np.linalg.lstsq(design * w[:, None], opd[trans > 0] * w, rcond=None)[0]
        opd = np.where(trans > 0, opd - coef[0] - coef[1] * x - coef[2] * y, 0.0)
    return lo, hi, trans, opd


def jwst_pupil(n, spacing, *, aberrations=True):
    """The JWST-like pupil: transmission and optical path difference.

    Parameters
    ----------
    n : int
        Samples along each axis; the pupil is centred at ``(n / 2, n / 2)``.
    spacing : float
        Sample spacing in metres (the pupil is about 6.6 m across).
    aberrations : bool, optional
        Include fixed segment piston and tip/tilt errors (about 17 nm rms).

    Returns
    -------
    transmission : ndarray
        ``(n, n)`` float64 in [0, 1]; edges anti-aliased.
    opd : ndarray
        ``(n, n)`` optical path difference in metres.

    Examples
    --------
    >>> t, opd = jwst_pupil(256, 0.03)
    >>> round(float(t.sum()) * 0.03 ** 2)  # m^2 (JWST's clear aperture: 25.4)
    27
    """
    lo, hi, trans, opd_sub = _pupil_region(n, spacing, aberrations)
    transmission = np.zeros((n, n))
    opd = np.zeros((n, n))
    transmission[lo:hi, lo:hi] = trans
    opd[lo:hi, lo:hi] = opd_sub
    return transmission, opd


@dataclasses.dataclass(frozen=True, eq=False)
class NircamPSF:
    """A NIRCam-like PSF, integrated over the detector pixels.

    Attributes
    ----------
    psf : ndarray
        The PSF at the native pixel scale, ``(size, size)`` float64, centred
        on the central pixel, summing to 1.
    psf_oversampled : ndarray
        The effective (pixel-integrated) PSF sampled ``oversampling`` times
        finer, ``(oversampling * (size - 1) + 1,)`` on a side, centred on the
        central sample, summing to ``oversampling**2``: the convention of
        `photutils.psf.ImagePSF`, so ``ImagePSF(psf_oversampled,
        oversampling=oversampling)`` is this PSF. ``psf`` is
        ``psf_oversampled[::oversampling, ::oversampling]``.
    oversampling : int
    filter : str
    pixel_scale : float
        Arcsec per pixel.
    wavelength : float
        The filter's pivot wavelength in micron.

    Notes
    -----
    The reference position (where a star "is") is the optical axis: the
    centre of ``psf`` and of ``psf_oversampled``. The fixed mirror figure
    errors make the core slightly asymmetric: a centroid over a few pixels
    lies within 0.04 px of it.
    """

    psf: np.ndarray
    psf_oversampled: np.ndarray
    oversampling: int
    filter: str
    pixel_scale: float
    wavelength: float

    @property
    def size(self):
        return self.psf.shape[0]

    def shifted(self, dx, dy, half_size):
        """The PSF on native pixels, for a star at sub-pixel offset (dx, dy).

        The star sits at ``(half_size + dx, half_size + dy)`` of the returned
        ``(2 * half_size + 1)`` square stamp, with ``0 <= dx, dy <= 1``. The
        stamp is interpolated bilinearly between the exact shifts by
        multiples of ``1 / oversampling`` pixel.
        """
        os_ = self.oversampling
        tx, ty = dx * os_, dy * os_
        kx, ky = min(int(tx), os_ - 1), min(int(ty), os_ - 1)
        wx, wy = tx - kx, ty - ky
        out = 0.0
        for jy, wgt_y in ((ky, 1 - wy), (ky + 1, wy)):
            for jx, wgt_x in ((kx, 1 - wx), (kx + 1, wx)):
                out = out + (wgt_y * wgt_x) * self._phase(jx, jy, half_size)
        return out

    def render(self, shape, x, y, flux, *, extended=None, exact_above=np.inf):
        """An image of point sources (and an extended image) seen through this PSF.

        Parameters
        ----------
        shape : (int, int)
            ``(ny, nx)`` of the image.
        x, y, flux : array_like
            Positions (0-based pixels, x the column) and total fluxes of the
            point sources.
        extended : ndarray, optional
            An unconvolved image of extended sources on a canvas larger than
            the image by ``size // 2`` pixels on every side (so that light
            from just outside comes in); it is convolved with the PSF.
        exact_above : float, optional
            Stars with at least this flux get the whole PSF stamp at their
            exact sub-pixel position; fainter ones only their core (see
            Notes). The wings of the others are off by up to about 3e-6 of
            the star's flux per pixel, in the spikes just outside the core.

        Returns
        -------
        ndarray
            float64 ``(ny, nx)``. Each point source adds exactly its flux,
            less what falls outside the image.

        Notes
        -----
        The PSF beyond the central ``2 * STAR_CORE + 1`` pixels (the wings
        and spikes) is added for all stars at once by an FFT convolution of
        their fluxes spread on the four nearest pixels (cloud-in-cell, which
        keeps the centroid), together with the extended image; the central
        ``2 * STAR_CORE + 3`` pixels of each star (the whole stamp for stars
        brighter than ``exact_above``) are then made exact with
        :meth:`shifted` (exact sub-pixel position). The convolution is
        circular on the canvas; what wraps around lands in the margin only.

        Examples
        --------
        >>> p = nircam_psf("F200W")
        >>> img = p.render((300, 300), [150.3], [149.8], [10.0])
        >>> round(float(img.sum()), 6)
        10.0
        """
        from scipy import fft as sfft

        ny, nx = shape
        m, h = self.size // 2, STAR_CORE
        canvas_shape = (ny + 2 * m, nx + 2 * m)
        out = np.zeros(shape)
        spectra = None
        kernel, wing = _kernel_spectra(self, canvas_shape)
        if extended is not None:
            if extended.shape != canvas_shape:
                raise ValueError(f"extended must have shape {canvas_shape}")
            spectra = sfft.rfft2(extended, workers=-1)
            spectra *= kernel
        if len(x):
            deltas = np.zeros(canvas_shape)
            wing_sum = 1.0 - self._centre_sum(h)
            for xs, ys, f in zip(x, y, flux):
                # The exact window: the core plus the 1 px the CIC wings reach
                # into, or the whole stamp for bright stars.
                hw = self.size // 2 - 1 if f >= exact_above else h + 1
                wing_windows = self._wing_windows(hw)
                ix, iy = math.floor(xs), math.floor(ys)
                fx, fy = xs - ix, ys - iy
                weights = np.array([[(1 - fy) * (1 - fx), (1 - fy) * fx],
                                    [fy * (1 - fx), fy * fx]])
                deltas[iy + m:iy + m + 2, ix + m:ix + m + 2] += f * weights
                # Exact PSF in the window, minus what the CIC wings put there.
                exact = self.shifted(fx, fy, hw)
                cic = np.tensordot(weights, wing_windows, axes=2)
                exact *= (1.0 - wing_sum + cic.sum()) / exact.sum()  # total: exactly 1
                add_clipped(out, f * (exact - cic), iy - hw, ix - hw)
            star_spectra = sfft.rfft2(deltas, workers=-1)
            star_spectra *= wing
            spectra = star_spectra if spectra is None else spectra + star_spectra
        if spectra is not None:
            full = sfft.irfft2(spectra, canvas_shape, workers=-1)
            out += full[m:m + ny, m:m + nx]
        np.maximum(out, 0.0, out=out)  # FFT round-off
        return out

    @functools.cached_property
    def _phase_cache(self):
        return {}

    def _phase(self, kx, ky, half_size):
        key = (kx, ky, half_size)
        cache = self._phase_cache
        if key not in cache:
            os_ = self.oversampling
            c = (self.psf_oversampled.shape[0] - 1) // 2
            n = 2 * half_size + 1
            y0, x0 = c - ky - os_ * half_size, c - kx - os_ * half_size
            if min(y0, x0) < 0:
                raise ValueError(f"half_size {half_size} too large for a {self.size}-pixel PSF")
            stamp = self.psf_oversampled[y0:y0 + os_ * n:os_, x0:x0 + os_ * n:os_]
            # Same sum as the centred stamp: what leaves the window at one
            # edge comes in at the other, to 1e-5.
            ref = self._centre_sum(half_size)
            cache[key] = stamp * (ref / stamp.sum())
        return cache[key]

    def _wing_windows(self, half_size):
        """The wings (PSF outside the core) centred on pixel (0, 0), (1, 0),
        (0, 1) and (1, 1) of a window of ``2 * half_size + 1`` pixels around
        pixel (0, 0): shape (2, 2, n, n), indexed [dy, dx]."""
        key = ("wing", half_size)
        cache = self._phase_cache
        if key not in cache:
            m, h = self.size // 2, STAR_CORE
            wing = np.array(self.psf)
            wing[m - h:m + h + 1, m - h:m + h + 1] = 0.0
            n = 2 * half_size + 1
            out = np.empty((2, 2, n, n))
            for dy in (0, 1):
                for dx in (0, 1):
                    y0, x0 = m - half_size - dy, m - half_size - dx
                    out[dy, dx] = wing[y0:y0 + n, x0:x0 + n]
            cache[key] = out
        return cache[key]

    def _centre_sum(self, half_size):
        c = (self.size - 1) // 2
        return float(self.psf[c - half_size:c + half_size + 1,
                              c - half_size:c + half_size + 1].sum())

    def encircled_energy(self, radius):
        """Fraction of the PSF's light within ``radius`` pixels of a star.

        Measured with exact circle/pixel overlap on the oversampled effective
        PSF (a star at a pixel centre; the value barely depends on the
        sub-pixel position).

        Parameters
        ----------
        radius : float or array_like
            Aperture radius in native pixels.

        Returns
        -------
        float or ndarray

        Examples
        --------
        >>> p = nircam_psf("F200W")
        >>> 0.8 < p.encircled_energy(5) < 0.9
        True
        """
        from photutils.aperture import CircularAperture

        r = np.asarray(radius, dtype=float)
        if np.any(~np.isfinite(r)) or np.any(r <= 0):
            raise InputError(f"radius must be positive; got {radius!r}", param="radius")
        os_ = self.oversampling
        data = self.psf_oversampled / os_**2
        c = (data.shape[0] - 1) / 2
        flat = r.ravel()
        values = []
        for rad in flat:
            ap = CircularAperture((c, c), r=rad * os_)
            values.append(float(ap.do_photometry(data, method="exact")[0][0]))
        out = np.array(values).reshape(r.shape)
        return float(out) if out.ndim == 0 else out

    @functools.cached_property
    def fwhm(self):
        """Full width at half maximum in pixels.

        The diameter of the circle whose area equals that of the region
        above half the peak, on the effective PSF interpolated to 1/16 px.
        """
        from scipy.ndimage import zoom

        os_ = self.oversampling
        c = (self.psf_oversampled.shape[0] - 1) // 2
        half = 5 * os_
        cut = self.psf_oversampled[c - half:c + half + 1, c - half:c + half + 1]
        factor = max(1, int(np.ceil(16 / os_)))
        fine = zoom(cut, factor, order=3, grid_mode=False)
        n = cut.shape[0]
        step = (n - 1) / (n * factor - 1) / os_  # zoom maps corner to corner
        area = np.count_nonzero(fine >= fine.max() / 2) * step**2
        return float(2 * np.sqrt(area / np.pi))


@functools.lru_cache(maxsize=1)  # ~80 MB for a 2048x2048 frame
def _kernel_spectra(psf, canvas_shape):
    """FFTs of the PSF and of its wings (the PSF without the star core),
    centred at pixel (0, 0) of a canvas for circular convolution."""
    from scipy import fft as sfft

    m, h = psf.size // 2, STAR_CORE
    kernel = np.zeros(canvas_shape)
    kernel[:psf.size, :psf.size] = psf.psf
    wing = kernel.copy()
    wing[m - h:m + h + 1, m - h:m + h + 1] = 0.0
    out = []
    for k in (kernel, wing):
        spec = sfft.rfft2(np.roll(k, (-m, -m), axis=(0, 1)), workers=-1)
        spec.flags.writeable = False
        out.append(spec)
    return tuple(out)


def add_clipped(target, stamp, y0, x0):
    """``target[y0:, x0:] += stamp`` for the part of the stamp that overlaps."""
    ny, nx = target.shape
    sy, sx = stamp.shape
    ya, xa = max(y0, 0), max(x0, 0)
    yb, xb = min(y0 + sy, ny), min(x0 + sx, nx)
    if ya < yb and xa < xb:
        target[ya:yb, xa:xb] += stamp[ya - y0:yb - y0, xa - x0:xb - x0]


def nircam_psf(filter="F200W", *, oversampling=4, pixel_scale=None, size=257):
    """A NIRCam-like PSF with JWST's hexagonal-segment diffraction spikes.

    The result is cached per set of arguments (the first call takes about a
    second).

    Parameters
    ----------
    filter : str, optional
        A NIRCam wide filter: F070W, F090W, F115W, F150W, F200W (short-wave
        channel, 0.031"/px) or F277W, F356W, F444W (long-wave, 0.063"/px).
    oversampling : int, optional
        Samples per native pixel of ``psf_oversampled`` (1 to 8).
    pixel_scale : float, optional
        Arcsec per pixel; the filter's channel's scale by default.
    size : int, optional
        Side of the native stamp in pixels, odd, 65 to 513. About 1 % of
        the light of a real JWST PSF lies beyond 128 px; the stamp is
        normalised to 1, so the stamp *is* the PSF of this model.

    Returns
    -------
    NircamPSF

    Examples
    --------
    >>> p = nircam_psf("F200W", oversampling=4)
    >>> p.psf.shape, round(float(p.psf.sum()), 6)
    ((257, 257), 1.0)
    >>> 1.9 < p.fwhm < 2.4
    True
    """
    name = check_filter(filter)
    oversampling = check_integer("oversampling", oversampling, 1, 8)
    if pixel_scale is None:
        pixel_scale = PIXEL_SCALES[NIRCAM_FILTERS[name].channel]
    pixel_scale = check_number("pixel_scale", pixel_scale, 0.005, 0.2, " arcsec per pixel")
    size = check_integer("size", size, 65, 513)
    if size % 2 == 0:
        raise InputError(f"size must be an odd number of pixels; got {size}", param="size")
    return _cached_psf(name, oversampling, round(pixel_scale, 6), size)


@functools.lru_cache(maxsize=8)
def _cached_psf(name, oversampling, pixel_scale, size):
    """The PSF, from the disk cache when an earlier process computed it."""
    import os

    from . import cache_dir
    path = os.path.join(cache_dir(), "psf", f"nircam_{name}_os{oversampling}_ps{pixel_scale:g}"
                                            f"_n{size}_v{_PSF_CACHE_VERSION}.npy")
    epsf = None
    if os.path.exists(path):
        try:
            epsf = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            epsf = None
    if epsf is None or epsf.shape != (oversampling * (size - 1) + 1,) * 2:
        epsf = _compute_psf(name, oversampling, pixel_scale, size)
        try:
            from ..io.write import atomic_write
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with atomic_write(path, "wb") as fh:
                np.save(fh, epsf, allow_pickle=False)
        except OSError:
            pass  # a read-only cache only costs the computation next time
    epsf.flags.writeable = False
    native = epsf[::oversampling, ::oversampling].copy()
    native.flags.writeable = False
    info = NIRCAM_FILTERS[name]
    return NircamPSF(psf=native, psf_oversampled=epsf, oversampling=oversampling,
                     filter=name, pixel_scale=pixel_scale, wavelength=info.pivot)


#: Bump when the PSF model changes, so cached PSFs on disk are not reused.
_PSF_CACHE_VERSION = 1


def _compute_psf(name, oversampling, pixel_scale, size):
    info = NIRCAM_FILTERS[name]
    lam_min = (info.pivot - info.width / 2) * 1e-6
    # Internal oversampling m: enough to sample the pupil's full frequency range.
    step = pixel_scale * _ARCSEC / oversampling
    m = max(1, int(np.ceil(1.2 * 2 * PUPIL_RADIUS * step / lam_min)))
    os_int = oversampling * m
    length = size * os_int
    lams = np.linspace(info.pivot - info.width / 2, info.pivot + info.width / 2,
                       _N_WAVELENGTHS) * 1e-6
    weights = 1 / lams  # photon-counting detector, flat f_nu source
    total = optical_psf(lams, weights, step / m, length)

    from scipy.ndimage import gaussian_filter
    total = gaussian_filter(total, _BLUR_ARCSEC / (pixel_scale / os_int), mode="constant")
    # Integrate over a native pixel: box sums of os_int x os_int samples.
    # Box j covers samples j .. j + os_int - 1, so the box sums form a grid
    # with one sample exactly on the optical axis.
    cs = np.zeros((length + 1, length + 1))
    cs[1:, 1:] = total.cumsum(0).cumsum(1)
    k = os_int
    epsf = cs[k:, k:] - cs[:-k, k:] - cs[k:, :-k] + cs[:-k, :-k]
    epsf = epsf[::m, ::m]
    epsf /= epsf[::oversampling, ::oversampling].sum()
    return np.ascontiguousarray(epsf)


def optical_psf(wavelengths, weights, step, length, *, aberrations=True):
    """The polychromatic optical PSF (before pixel integration).

    Parameters
    ----------
    wavelengths : array_like
        Wavelengths in metres.
    weights : array_like
        Relative weight of each wavelength (normalised here).
    step : float
        Sample spacing of the result in radians.
    length : int
        Samples along each side of the result. The optical axis is at the
        array centre, ``((length - 1) / 2, (length - 1) / 2)``: between
        samples when ``length`` is even.
    aberrations : bool, optional
        Include the fixed segment errors.

    Returns
    -------
    ndarray
        ``(length, length)`` float64 summing to 1.

    Examples
    --------
    >>> psf = optical_psf([2e-6], [1.0], 4e-8, 64)
    >>> psf.shape, round(float(psf.sum()), 6)
    ((64, 64), 1.0)
    """
    from scipy import fft as sfft

    weights = np.asarray(weights, float) / np.sum(weights)
    n = sfft.next_fast_len(int(1.25 * length) + 16, real=False)
    n += n % 2
    # The optical axis must land at (length - 1) / 2 of the crop: a
    # half-sample shift (a phase tilt across the pupil) when length is even.
    delta = 0.5 * (length % 2 == 0)
    start = int(n // 2 + delta - (length - 1) / 2)  # an integer either way
    rows = (start + np.arange(length) - n // 2) % n  # index into the unshifted FFT
    total = np.zeros((length, length))
    field = np.zeros((n, n), np.complex64)
    for lam, w in zip(wavelengths, weights):
        spacing = lam / (n * step)
        lo, hi, trans, opd = _pupil_region(n, spacing, aberrations)
        ramp = np.exp(2j * np.pi * delta * np.arange(lo, hi) / n)
        field[:] = 0
        field[lo:hi, lo:hi] = (trans * np.exp(2j * np.pi * opd / lam)
                               * ramp[None, :] * ramp[:, None])
        amp = sfft.fft2(field, workers=-1)
        amp = amp[rows][:, rows]
        inten = amp.real.astype(float)**2 + amp.imag.astype(float)**2
        total += w * inten / inten.sum()
    return total
