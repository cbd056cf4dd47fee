"""Generators of bad and odd inputs for the reliability tests (issue 6).

Three families, each plain data that the tests run through ``load_image``,
the stages and the builder:

* :func:`file_cases`: hand-written FITS (and not-FITS) files, each with what
  must happen: it loads (and then equals its truth) or it is refused with an
  :class:`~jwst_widgets.InputError` whose message matches a pattern;
* :func:`odd_images` and :data:`STAGE_SETTINGS`: odd but legal pixel arrays
  (all-NaN, constant, single pixel, huge values...) and one setting of every
  stage and method to run on them;
* Hypothesis strategies (:func:`byte_edits`, :func:`card_edits`,
  :func:`image_arrays`, :func:`any_value`) that generate damaged files, valid
  files of every numeric type, and arbitrary parameter values.

Nothing here imports the package's widgets; the files are written with
astropy or byte by byte (for headers astropy refuses to write).
"""

import bz2
import dataclasses
import gzip
import os
from typing import Callable

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import strategies as st

__all__ = ["FileCase", "file_cases", "raw_fits", "card", "base_files", "odd_images",
           "STAGE_SETTINGS", "byte_edits", "card_edits", "image_arrays", "any_value",
           "FLOAT32_MAX"]

FLOAT32_MAX = float(np.finfo(np.float32).max)
BLOCK = 2880


# -- writing FITS by hand ------------------------------------------------------------
def card(key, value=None, comment=""):
    """One 80-character header card; ``value`` is written as given (a str is raw)."""
    if key in ("END", "COMMENT", "HISTORY", ""):
        return f"{key:<8}{value or ''}"[:80].ljust(80)
    if isinstance(value, bool):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, (int, float, np.integer, np.floating)):
        text = f"{value!r:>20}" if isinstance(value, float) else f"{int(value):>20}"
    else:
        text = str(value)  # raw: the caller writes exactly what the card holds
    line = f"{key:<8}= {text}"
    if comment:
        line += f" / {comment}"
    return line[:80].ljust(80)


def raw_fits(cards, data=b"", *, end=True, pad=True):
    """Bytes of one HDU: the cards (strings of 80), END, padding, then ``data``."""
    text = "".join(c if len(c) == 80 else card(*c) if isinstance(c, tuple) else c.ljust(80)
                   for c in cards)
    if end:
        text += card("END")
    head = text.encode("ascii", errors="replace")
    if pad:
        head += b" " * (-len(head) % BLOCK)
    body = bytes(data)
    if pad and body:
        body += b"\0" * (-len(body) % BLOCK)
    return head + body


def image_cards(shape, bitpix=-32, extra=()):
    cards = [("SIMPLE", True), ("BITPIX", bitpix), ("NAXIS", len(shape))]
    cards += [(f"NAXIS{i + 1}", n) for i, n in enumerate(reversed(shape))]
    return cards + list(extra)


def _wcs_header(nx, ny, **changes):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [nx / 2 + 0.5, ny / 2 + 0.5]
    w.wcs.cdelt = [-0.031 / 3600, 0.031 / 3600]
    h = w.to_header()
    for k, v in changes.items():
        h[k] = v
    return h


def _noise(shape, seed=0, level=10.0, sigma=1.0, dtype=np.float32):
    return np.random.default_rng(seed).normal(level, sigma, shape).astype(dtype)


def _write(path, hdus):
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def _cal(path, shape=(40, 48), *, dq=None, err=None, sci=None, bunit="MJy/sr", extra=()):
    """A JWST cal-like file: PRIMARY, SCI (with WCS), ERR, DQ (+ extra HDUs)."""
    sci = _noise(shape, 1, 0.3, 0.01) if sci is None else sci
    h = _wcs_header(shape[1], shape[0])
    if bunit is not None:
        h["BUNIT"] = bunit
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "JWST"
    hdus = [primary, fits.ImageHDU(sci, h, name="SCI")]
    hdus.append(fits.ImageHDU(np.full(shape, 0.01, np.float32) if err is None else err,
                              name="ERR"))
    if dq is not False:
        hdus.append(fits.ImageHDU(np.zeros(shape, np.uint32) if dq is None else dq, name="DQ"))
    hdus += list(extra)
    return _write(path, hdus), sci


# -- the hand-written file cases ----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FileCase:
    """A file and what loading it must do.

    ``make(folder)`` writes the file (or names a special path) and returns
    ``(path, truth)``; ``truth`` is the expected float32 plane when the file
    loads (or None when the test is only that it loads). ``expect`` is
    ``"load"`` or ``"refuse"``; ``match`` is a regular expression the
    InputError message (refuse) or the load warnings (load) must match.
    """

    name: str
    make: Callable
    expect: str
    match: str = None
    kwargs: dict = dataclasses.field(default_factory=dict)
    check: Callable = None

    def __repr__(self):
        return self.name


def _bytes(name, content):
    def make(folder):
        p = folder / name
        p.write_bytes(content() if callable(content) else content)
        return p, None
    return make


def _hdus(name, build, truth=None):
    def make(folder):
        p = folder / name
        _write(p, build())
        return p, (truth() if callable(truth) else truth)
    return make


def _plain(name, data, header=None, truth=None):
    def make(folder):
        p = folder / name
        fits.PrimaryHDU(data, header).writeto(p, overwrite=True)
        return p, (np.asarray(data, np.float32) if truth is None else truth)
    return make


def _cut(name, build, keep, truth=None):
    """A valid file cut short: ``keep(size)`` bytes of it are kept."""
    def make(folder):
        full = folder / (name + ".full")
        build(full)
        raw = full.read_bytes()
        full.unlink()
        p = folder / name
        p.write_bytes(raw[: keep(len(raw))])
        return p, (truth() if callable(truth) else truth)
    return make


def _plain_writer(shape=(200, 200), dtype=np.float32):
    def build(path):
        fits.PrimaryHDU(_noise(shape, 2).astype(dtype)).writeto(path, overwrite=True)
    return build


def _gz_writer(path):
    fits.PrimaryHDU(_noise((200, 200), 3)).writeto(str(path), overwrite=True)
    raw = path.read_bytes()
    path.write_bytes(gzip.compress(raw))


def _fz_writer(path):
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(_noise((300, 300), 4))]).writeto(
        path, overwrite=True)


def _cal_writer(path):
    _cal(path, shape=(64, 64))


def _symlink(name, target):
    def make(folder):
        p = folder / name
        os.symlink(target(folder) if callable(target) else target, p)
        return p, None
    return make


def _fifo(folder):
    p = folder / "pipe.fits"
    os.mkfifo(p)
    return p, None


def _special(path):
    return lambda folder: (path, None)


def _header_only_declaring_data(shape, bitpix=-32):
    return _bytes("claims_data.fits", raw_fits(image_cards(shape, bitpix)))


def _huge_claim(name, shape, bitpix, extra_blocks=1, gz=False):
    def make(folder):
        raw = raw_fits(image_cards(shape, bitpix)) + b"\0" * (BLOCK * extra_blocks)
        p = folder / name
        p.write_bytes(gzip.compress(raw) if gz else raw)
        return p, None
    return make


def _scaled(name, raw, bzero=None, bscale=None, blank=None):
    def make(folder):
        hdu = fits.PrimaryHDU(raw)
        if bscale is not None:
            hdu.header["BSCALE"] = bscale
        if bzero is not None:
            hdu.header["BZERO"] = bzero
        if blank is not None:
            hdu.header["BLANK"] = blank
        p = folder / name
        hdu.writeto(p, overwrite=True)
        truth = raw.astype(np.float64) * (1.0 if bscale is None else bscale) + (
            0.0 if bzero is None else bzero)
        if blank is not None:
            truth[raw == blank] = np.nan
        return p, truth.astype(np.float32)
    return make


def _with_wcs(name, shape=(30, 40), note=True, **changes):
    def make(folder):
        data = _noise(shape, 5)
        h = _wcs_header(shape[1], shape[0])
        for k, v in changes.items():
            if v is None:
                del h[k]
            else:
                h[k] = v
        p = folder / name
        fits.PrimaryHDU(data, h).writeto(p, overwrite=True)
        return p, data
    return make


def _raw_wcs(name, cards_):
    """A WCS astropy would not write (strings where numbers belong...)."""
    def make(folder):
        data = _noise((20, 24), 6)
        p = folder / name
        p.write_bytes(raw_fits(image_cards(data.shape, -32, cards_), data.astype(">f4").tobytes()))
        return p, data
    return make


def _with_bunit(name, value):
    def make(folder):
        data = _noise((16, 16), 7)
        h = fits.Header()
        h["BUNIT"] = value
        p = folder / name
        fits.PrimaryHDU(data, h).writeto(p, overwrite=True)
        return p, data
    return make


def _cal_case(name, **kw):
    def make(folder):
        p, sci = _cal(folder / name, **kw)
        return p, sci
    return make


def _unicode_name(folder):
    p = folder / "ñgc 1234 — äbell ✓.fits"
    data = _noise((12, 14), 8)
    fits.PrimaryHDU(data).writeto(p)
    return p, data


def _cube(shape, **_):
    def build():
        data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        return [fits.PrimaryHDU(data)]
    return build


def _ramp(shape):
    def build():
        return [fits.PrimaryHDU(), fits.ImageHDU(np.arange(np.prod(shape), dtype=np.float32)
                                                  .reshape(shape), name="SCI")]
    return build


def _check_masked(expected_masked):
    def check(image):
        assert int(image.mask.sum()) == expected_masked, image.mask.sum()
    return check


def _check_wcs(image):
    assert image.wcs is not None
    ny, nx = image.data.shape
    ra, dec = image.pixel_to_sky(nx / 2 - 0.5, ny / 2 - 0.5)  # CRPIX, 0-based
    assert abs(ra - 150.1) < 1e-9 and abs(dec - 2.2) < 1e-9


def _check_no_wcs(image):
    assert image.wcs is None


def _check_unit(unit_text):
    def check(image):
        if unit_text is None:
            assert image.unit is None
        else:
            assert image.unit is not None and image.unit.to_string() == unit_text
    return check


def file_cases():
    """Every hand-written bad or odd file, with what loading it must do."""
    not_fits = "not a FITS file"
    cant = "could not be read|cannot be read|truncated|corrupt"
    data2 = _noise((20, 30), 9)
    cases = [
        # -- not FITS at all
        FileCase("empty", _bytes("empty.fits", b""), "refuse", "empty"),
        FileCase("text", _bytes("notes.fits", b"hello, this is not FITS" * 50), "refuse",
                 not_fits),
        FileCase("html_error_page", _bytes("jw_cal.fits", b"<!DOCTYPE html><html><body>502 Bad "
                                           b"Gateway</body></html>"), "refuse", not_fits),
        FileCase("json", _bytes("x.fits", b'{"error": "not found"}'), "refuse", not_fits),
        FileCase("png", _bytes("image.fits", b"\x89PNG\r\n\x1a\n" + bytes(200)), "refuse",
                 not_fits),
        FileCase("zeros_one_block", _bytes("zeros.fits", bytes(BLOCK)), "refuse", not_fits),
        FileCase("random_bytes", _bytes("random.fits",
                                        lambda: np.random.default_rng(1).bytes(9000)),
                 "refuse", not_fits),
        FileCase("simple_then_garbage", _bytes("garbage.fits", lambda: b"SIMPLE  =" +
                                               np.random.default_rng(2).bytes(6000)),
                 "refuse", cant),
        FileCase("simple_card_only", _bytes("simple.fits", b"SIMPLE  =                    T"),
                 "refuse", cant),
        FileCase("gzip_of_text", _bytes("text.fits.gz", lambda: gzip.compress(b"not fits" * 400)),
                 "refuse", cant),
        FileCase("gzip_garbage", _bytes("garbage.fits.gz", lambda: b"\x1f\x8b\x08" +
                                        np.random.default_rng(3).bytes(700)), "refuse", cant),
        FileCase("bz2_garbage", _bytes("garbage.fits.bz2", lambda: b"BZh9" +
                                       np.random.default_rng(4).bytes(700)), "refuse", cant),
        # -- paths that are not files
        FileCase("missing", _special("/nonexistent/dir/nothing.fits"), "refuse", "no such file"),
        FileCase("missing_in_tmp", lambda f: (f / "nope.fits", None), "refuse", "no such file"),
        FileCase("directory", lambda f: (f, None), "refuse", "directory"),
        FileCase("dangling_symlink", _symlink("dangling.fits", lambda f: f / "gone.fits"),
                 "refuse", "broken symbolic link"),
        FileCase("symlink_loop", _symlink("loop.fits", lambda f: f / "loop.fits"), "refuse",
                 "loop"),
        FileCase("fifo", _fifo, "refuse", "not a regular file"),
        FileCase("dev_null", _special("/dev/null"), "refuse", "not a regular file"),
        FileCase("dev_zero", _special("/dev/zero"), "refuse", "not a regular file"),
        FileCase("empty_path", _special(""), "refuse", "empty"),
        FileCase("nul_in_path", _special("a\0b.fits"), "refuse", "not a valid path"),
        # -- truncated
        FileCase("cut_in_header", _cut("cut_header.fits", _plain_writer(), lambda n: 1000),
                 "refuse", cant),
        FileCase("cut_after_header", _cut("cut_data0.fits", _plain_writer(), lambda n: BLOCK),
                 "refuse", "truncated"),
        FileCase("cut_mid_data", _cut("cut_mid.fits", _plain_writer(), lambda n: n // 2),
                 "refuse", "truncated"),
        FileCase("cut_one_byte_short", _cut("cut_1.fits", _plain_writer(),
                                            lambda n: BLOCK + 200 * 200 * 4 - 1),
                 "refuse", "truncated"),
        FileCase("cut_int16_mid", _cut("cut_i16.fits", _plain_writer(dtype=np.int16),
                                       lambda n: n * 2 // 3), "refuse", "truncated"),
        FileCase("cut_gzip", _cut("cut.fits.gz", _gz_writer, lambda n: n // 2), "refuse", cant),
        # the deflate stream is whole, only the CRC trailer is gone: every pixel is there
        FileCase("cut_gzip_trailer", _cut("cut_end.fits.gz", _gz_writer, lambda n: n - 6,
                                          lambda: _noise((200, 200), 3)), "load"),
        FileCase("cut_tile_compressed", _cut("cut.fits.fz", _fz_writer, lambda n: n * 2 // 3),
                 "refuse", cant),
        FileCase("no_end_card", _bytes("no_end.fits", raw_fits(image_cards((10, 10)),
                                                                bytes(400), end=False)),
                 "refuse", "END"),
        FileCase("header_only_declaring_data", _header_only_declaring_data((100, 100)),
                 "refuse", "truncated"),
        FileCase("huge_naxis_float32", _huge_claim("huge.fits", (200_000, 200_000), -32),
                 "refuse", r"truncated.*200000x200000.*149\.0 GiB"),
        FileCase("huge_naxis_int16", _huge_claim("huge16.fits", (150_000, 150_000), 16),
                 "refuse", r"truncated.*150000x150000"),
        FileCase("huge_naxis_cube", _huge_claim("hugecube.fits", (10**7, 100, 100), -32),
                 "refuse", r"truncated.*GiB"),
        FileCase("huge_naxis_gzip", _huge_claim("huge.fits.gz", (300_000, 300_000), -32, gz=True),
                 "refuse", r"300000x300000.*GiB of memory.*decompress"),
        # -- corrupt headers
        FileCase("bitpix_12", _bytes("bitpix12.fits", raw_fits(image_cards((10, 10), 12),
                                                                bytes(400))), "refuse", "BITPIX"),
        FileCase("bitpix_text", _bytes("bitpix_s.fits", raw_fits(
            [("SIMPLE", True), ("BITPIX", "'float'"), ("NAXIS", 2), ("NAXIS1", 10),
             ("NAXIS2", 10)],
            bytes(400))), "refuse", "BITPIX|could not be read"),
        FileCase("naxis1_text", _bytes("naxis_s.fits", raw_fits(
            [("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", "'abc'"), ("NAXIS2", 10)],
            bytes(400))), "refuse", cant + "|no image"),
        FileCase("naxis1_negative", _bytes("naxis_neg.fits", raw_fits(
            [("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 2), ("NAXIS1", -10), ("NAXIS2", 10)],
            bytes(400))), "refuse", "no image|" + cant),
        FileCase("naxis_99", _bytes("naxis99.fits", raw_fits(
            [("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 99)], bytes(400))), "refuse",
            "no image|" + cant),
        FileCase("bzero_text", _bytes("bzero_s.fits", raw_fits(
            image_cards((4, 4), 16, [("BZERO", "'abc'")]), bytes(32))), "refuse", "BZERO"),
        FileCase("bscale_text", _bytes("bscale_s.fits", raw_fits(
            image_cards((4, 4), 16, [("BSCALE", "'x'")]), bytes(32))), "refuse", "BSCALE"),
        FileCase("non_ascii_header", _bytes("latin.fits", raw_fits(
            image_cards((4, 4), -32) + ["OBJECT  = 'Caf\xe9'".ljust(80)],
            np.ones((4, 4), ">f4").tobytes())), "load"),
        # -- no image
        FileCase("header_only", _hdus("header.fits", lambda: [fits.PrimaryHDU()]), "refuse",
                 "no image"),
        FileCase("table_only", _hdus("table.fits", lambda: [fits.PrimaryHDU(), fits.BinTableHDU
                                     .from_columns([fits.Column("a", "E", array=np.ones(3))])]),
                 "refuse", "no image"),
        FileCase("ascii_table_only", _hdus("ascii.fits", lambda: [fits.PrimaryHDU(), fits
                                           .TableHDU.from_columns([fits.Column(
                                               "a", "E10.4", array=np.ones(3))])]),
                 "refuse", "no image"),
        FileCase("sci_is_table", _hdus("scitable.fits", lambda: [fits.PrimaryHDU(), fits
                                       .BinTableHDU.from_columns([fits.Column(
                                           "a", "E", array=np.ones(3))], name="SCI")]),
                 "refuse", "table"),
        FileCase("sci_header_only", _hdus("sci_empty.fits", lambda: [fits.PrimaryHDU(),
                                                                      fits.ImageHDU(name="SCI")]),
                 "refuse", "no data"),
        FileCase("spectrum_1d", _plain("spec.fits", np.ones(50, np.float32)), "refuse", "1-D"),
        FileCase("sci_1d", _hdus("sci1d.fits", lambda: [fits.PrimaryHDU(), fits.ImageHDU(
            np.ones(5, np.float32), name="SCI")]), "refuse", "1-D"),
        FileCase("five_d", _plain("five.fits", np.ones((2, 2, 2, 3, 3), np.float32)), "refuse",
                 "5 dimensions"),
        FileCase("zero_length_axis", _hdus("zero_axis.fits", lambda: [fits.PrimaryHDU(), fits
                                           .ImageHDU(np.ones((0, 10), np.float32), name="SCI")]),
                 "refuse", "empty|no data"),
        FileCase("ext_missing", _plain("ext.fits", data2), "refuse", "no extension 'NOPE'",
                 kwargs={"ext": "NOPE"}),
        FileCase("ext_out_of_range", _plain("ext9.fits", data2), "refuse", "no extension 9",
                 kwargs={"ext": 9}),
        FileCase("ext_float", _plain("extf.fits", data2), "refuse", "ext must be",
                 kwargs={"ext": 1.5}),
        FileCase("ext_list", _plain("extl.fits", data2), "refuse", "ext must be",
                 kwargs={"ext": [0]}),
        FileCase("ext_is_table", _hdus("ext_table.fits", lambda: [fits.PrimaryHDU(data2), fits
                                       .BinTableHDU.from_columns([fits.Column(
                                           "a", "E", array=np.ones(3))], name="CAT")]),
                 "refuse", "BinTableHDU", kwargs={"ext": "CAT"}),
        # -- shapes, cubes and ramps
        FileCase("single_pixel", _plain("one.fits", np.full((1, 1), 3.5, np.float32)), "load"),
        FileCase("one_row", _plain("row.fits", _noise((1, 64), 10)), "load"),
        FileCase("one_column", _plain("col.fits", _noise((64, 1), 11)), "load"),
        FileCase("tiny_3x3", _plain("tiny.fits", _noise((3, 3), 12)), "load"),
        FileCase("cube_default_plane", _hdus("cube.fits", _cube((3, 8, 9)),
                                             lambda: np.arange(72, dtype=np.float32)
                                             .reshape(8, 9)), "load"),
        FileCase("cube_index_out_of_range", _hdus("cube3.fits", _cube((3, 8, 9))), "refuse",
                 "out of range", kwargs={"index": 3}),
        FileCase("cube_index_text", _hdus("cube_t.fits", _cube((3, 8, 9))), "refuse",
                 "not understood", kwargs={"index": "abc"}),
        FileCase("cube_index_float", _hdus("cube_f.fits", _cube((3, 8, 9))), "refuse",
                 "integer", kwargs={"index": (1.5,)}),
        FileCase("cube_index_bool", _hdus("cube_b.fits", _cube((3, 8, 9))), "refuse",
                 "integer", kwargs={"index": True}),
        FileCase("cube_index_too_many", _hdus("cube_2.fits", _cube((3, 8, 9))), "refuse",
                 "index needs 1", kwargs={"index": (0, 0)}),
        FileCase("image_index_given", _plain("idx2d.fits", data2), "refuse", "2-D",
                 kwargs={"index": 1}),
        FileCase("ramp_default_cds", _hdus("ramp.fits", _ramp((2, 3, 6, 7)),
                                           lambda: np.full((6, 7), 84, np.float32)), "load"),
        FileCase("ramp_single_index", _hdus("ramp1.fits", _ramp((2, 3, 6, 7))), "refuse",
                 "index=\\(integration, group\\)", kwargs={"index": 1}),
        FileCase("ramp_one_group", _hdus("ramp_g1.fits", _ramp((2, 1, 6, 7)),
                                         lambda: np.arange(42, dtype=np.float32).reshape(6, 7)),
                 "load"),
        FileCase("ramp_cds_one_group", _hdus("ramp_g1c.fits", _ramp((2, 1, 6, 7))), "refuse",
                 "at least 2 groups", kwargs={"index": "cds"}),
        # -- values
        FileCase("all_nan", _plain("nan.fits", np.full((16, 16), np.nan, np.float32)), "load",
                 "every pixel is NaN", check=_check_masked(256)),
        FileCase("all_zero", _plain("zero.fits", np.zeros((16, 16), np.float32)), "load",
                 check=_check_masked(0)),
        FileCase("constant", _plain("const.fits", np.full((16, 16), 7.25, np.float32)), "load"),
        FileCase("infinities", _plain("inf.fits", np.array([[np.inf, 1], [-np.inf, np.nan]],
                                                           np.float32)), "load",
                 check=_check_masked(3)),
        FileCase("float32_extremes", _plain("ext32.fits", np.array(
            [[FLOAT32_MAX, -FLOAT32_MAX], [np.finfo(np.float32).tiny, 1e-45]], np.float32)),
            "load", check=_check_masked(0)),
        FileCase("float64_beyond_float32", _plain("f64.fits",
                                                  np.array([[1e300, 2.0], [-1e300, 4.0]]),
                                                  truth=np.array([[np.inf, 2], [-np.inf, 4]],
                                                                 np.float32)),
                 "load", "beyond the float32 range", check=_check_masked(2)),
        FileCase("float64_precise", _plain("f64p.fits", np.array([[1 / 3, 1e-300], [2.0, 1e30]]),
                                           truth=np.array([[1 / 3, 1e-300], [2.0, 1e30]])
                                           .astype(np.float32)), "load"),
        FileCase("negative_zero", _plain("negzero.fits", np.full((4, 4), -0.0, np.float32)),
                 "load"),
        FileCase("uint8", _plain("u8.fits", np.arange(20, dtype=np.uint8).reshape(4, 5)), "load"),
        FileCase("int8_bzero", _plain("i8.fits", np.arange(-10, 10, dtype=np.int8).reshape(4, 5)),
                 "load"),
        FileCase("int16", _plain("i16.fits", np.array([[-32768, 0], [1, 32767]], np.int16)),
                 "load"),
        FileCase("uint16_bzero", _plain("u16.fits", np.array([[0, 1000], [30000, 65535]],
                                                             np.uint16)), "load"),
        FileCase("int32", _plain("i32.fits", np.array([[-2**31, 0], [7, 2**31 - 1]], np.int32)),
                 "load"),
        FileCase("uint32_bzero", _plain("u32.fits", np.array([[0, 2**32 - 1]], np.uint32)),
                 "load"),
        FileCase("int64", _plain("i64.fits", np.array([[-2**40, 0], [3, 2**40]], np.int64)),
                 "load"),
        FileCase("scaled_int16", _scaled("scaled.fits", np.array([[1, 2], [3, 4]], np.int16),
                                         bzero=10.0, bscale=0.5), "load"),
        FileCase("scaled_negative_bscale", _scaled("scaled_neg.fits", np.array(
            [[1, 2], [3, 4]], np.int16), bzero=-5.0, bscale=-2.5), "load"),
        FileCase("blank_int16", _scaled("blank.fits", np.array([[1, -999], [3, 4]], np.int16),
                                        blank=-999), "load", check=_check_masked(1)),
        FileCase("scaled_with_blank", _scaled("scaled_blank.fits", np.array(
            [[1, -1], [3, 4]], np.int16), bzero=100.0, bscale=2.0, blank=-1), "load",
            check=_check_masked(1)),
        FileCase("big_endian_float32", _plain("be.fits", _noise((10, 12), 13).astype(">f4")),
                 "load"),
        FileCase("little_endian_float64", _plain("le64.fits", _noise((10, 12), 14, dtype="<f8")),
                 "load"),
        FileCase("unicode_path", _unicode_name, "load"),
        # -- WCS
        FileCase("wcs_good", _with_wcs("wcs.fits"), "load", check=_check_wcs),
        FileCase("wcs_missing", _plain("nowcs.fits", data2), "load", check=_check_no_wcs),
        FileCase("wcs_singular_cd", _with_wcs("singular.fits", CDELT1=0.0), "load",
                 "WCS could not be read", check=_check_no_wcs),
        FileCase("wcs_dec_beyond_pole", _with_wcs("dec100.fits", CRVAL2=100.0), "load",
                 "WCS could not be read", check=_check_no_wcs),
        FileCase("wcs_unknown_projection", _with_wcs("xyz.fits", CTYPE1="RA---XYZ",
                                                     CTYPE2="DEC--XYZ"), "load", "WCS",
                 check=_check_no_wcs),
        FileCase("wcs_only_ra", _with_wcs("ra_only.fits", CTYPE2=None), "load", "WCS",
                 check=_check_no_wcs),
        FileCase("wcs_linear", _with_wcs("linear.fits", CTYPE1="LINEAR", CTYPE2="LINEAR"),
                 "load", "not celestial", check=_check_no_wcs),
        FileCase("wcs_sip_incomplete", _with_wcs("sip.fits", CTYPE1="RA---TAN-SIP",
                                                 CTYPE2="DEC--TAN-SIP", A_ORDER=2), "load",
                 "WCS could not be read", check=_check_no_wcs),
        FileCase("wcs_crval_text", _raw_wcs("crval_s.fits", [
            ("CTYPE1", "'RA---TAN'"), ("CTYPE2", "'DEC--TAN'"), ("CRVAL1", "'ten'"),
            ("CRVAL2", 2.0), ("CDELT1", -1e-5), ("CDELT2", 1e-5)]), "load", "WCS",
            check=_check_no_wcs),
        FileCase("wcs_ctype_number", _raw_wcs("ctype_n.fits", [
            ("CTYPE1", 5), ("CTYPE2", 6), ("CRVAL1", 1.0), ("CRVAL2", 2.0)]), "load"),
        FileCase("wcs_cube_3d", _hdus("wcs3.fits", lambda: [fits.PrimaryHDU(
            np.ones((3, 10, 12), np.float32), _wcs_header(12, 10, CTYPE3="WAVE", CRVAL3=1e-6,
                                                           CDELT3=1e-9, CRPIX3=1.0))],
            lambda: np.ones((10, 12), np.float32)), "load"),
        # -- BUNIT
        FileCase("bunit_mjysr", _with_bunit("mjysr.fits", "MJy/sr"), "load",
                 check=_check_unit("MJy / sr")),
        FileCase("bunit_unknown", _with_bunit("furlong.fits", "furlongs per fortnight"),
                 "load", "BUNIT", check=_check_unit(None)),
        FileCase("bunit_number", _with_bunit("bunit5.fits", 5), "load", "BUNIT",
                 check=_check_unit(None)),
        FileCase("bunit_blank", _with_bunit("bunit_blank.fits", "   "), "load",
                 check=_check_unit(None)),
        FileCase("bunit_parentheses", _with_bunit("paren.fits", "MJy/sr/(((("), "load", "BUNIT",
                 check=_check_unit(None)),
        # -- JWST-like files and their DQ / ERR
        FileCase("cal_good", _cal_case("jw_good_cal.fits", dq=np.where(
            np.arange(40 * 48).reshape(40, 48) % 97 == 0, 1, 4).astype(np.uint32)),
            "load", check=_check_masked(20)),
        FileCase("cal_dq_wrong_shape", _cal_case("jw_dq_shape_cal.fits",
                                                 dq=np.ones((5, 5), np.uint32)),
                 "load", "DQ has shape", check=_check_masked(0)),
        FileCase("cal_dq_float", _cal_case("jw_dq_float_cal.fits",
                                           dq=np.full((40, 48), np.nan, np.float32)),
                 "load", "DQ holds", check=_check_masked(0)),
        FileCase("cal_dq_cube", _cal_case("jw_dq_cube_cal.fits",
                                          dq=np.ones((2, 40, 48), np.uint32)),
                 "load", "DQ has shape", check=_check_masked(0)),
        FileCase("cal_dq_all_do_not_use", _cal_case("jw_dq_all_cal.fits",
                                                    dq=np.ones((40, 48), np.uint32)),
                 "load", check=_check_masked(40 * 48)),
        FileCase("cal_err_wrong_shape", _cal_case("jw_err_cal.fits",
                                                  err=np.ones((3, 3), np.float32)),
                 "load", "ERR"),
        FileCase("cal_no_bunit_no_dq", _cal_case("jw_plain_cal.fits", dq=False, bunit=None),
                 "load", check=_check_unit(None)),
        FileCase("cal_with_asdf_table", _cal_case("jw_asdf_cal.fits", extra=[
            fits.BinTableHDU.from_columns([fits.Column("ASDF_METADATA", "10A",
                                                       array=np.array(["#ASDF 1.0"]))],
                                          name="ASDF")]), "load"),
        FileCase("cal_cut_in_dq", _cut("jw_cut_cal.fits", _cal_writer,
                                       lambda n: n - 3 * BLOCK,
                                       lambda: _noise((64, 64), 1, 0.3, 0.01)), "load", "DQ"),
        FileCase("two_sci_extensions", _hdus("two_sci.fits", lambda: [
            fits.PrimaryHDU(), fits.ImageHDU(data2, name="SCI", ver=1),
            fits.ImageHDU(data2 * 2, name="SCI", ver=2)], data2), "load"),
        # -- compressed
        FileCase("gzip_whole_file", _compressed("plain.fits.gz", "gz"), "load"),
        FileCase("bzip2_whole_file", _compressed("plain.fits.bz2", "bz2"), "load"),
        FileCase("tile_compressed", _compressed("plain.fits.fz", "fz"), "load"),
    ]
    return cases


def _compressed(name, kind):
    def make(folder):
        data = _noise((40, 50), 15)
        p = folder / name
        if kind == "fz":
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
                data, compression_type="GZIP_2", quantize_level=0)]).writeto(p)
            return p, data
        plain = folder / (name + ".tmp")
        fits.PrimaryHDU(data).writeto(plain)
        raw = plain.read_bytes()
        plain.unlink()
        p.write_bytes(gzip.compress(raw) if kind == "gz" else bz2.compress(raw))
        return p, data
    return make


def base_files(folder):
    """Valid files of each kind for the damage generators: ``{kind: (path, sci truth)}``."""
    out = {}
    data = _noise((64, 64), 16)
    p = folder / "base_plain.fits"
    fits.PrimaryHDU(data).writeto(p)
    out["plain"] = (p, data)
    p = folder / "base_int16.fits"
    ints = (data * 100).astype(np.int16)
    hdu = fits.PrimaryHDU(ints)
    hdu.header["BSCALE"] = 0.01
    hdu.header["BZERO"] = 1.0
    hdu.writeto(p)
    out["scaled"] = (p, fits.getdata(p).astype(np.float32))  # astropy scales in float32
    p, sci = _cal(folder / "base_cal.fits", shape=(48, 40))
    out["cal"] = (p, sci)
    p = folder / "base.fits.gz"
    p.write_bytes(gzip.compress(out["plain"][0].read_bytes()))
    out["gzip"] = (p, data)
    p = folder / "base.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
        data, compression_type="RICE_1", quantize_level=0)]).writeto(p)
    # RICE compression of floats quantizes them (to whole numbers here): the truth is
    # what the file holds, as astropy decompresses it, not the values before compression.
    out["tile"] = (p, fits.getdata(p, ext=1).astype(np.float32))
    return out


# -- odd images for the stages ---------------------------------------------------------------
def odd_images():
    """Odd but legal images: ``{name: (data, mask or None)}`` (never modified by a test)."""
    rng = np.random.default_rng(20)

    def noise(shape):
        return rng.normal(10, 1, shape).astype(np.float32)

    imgs = {
        "all_nan": np.full((64, 64), np.nan, np.float32),
        "all_zero": np.zeros((64, 64), np.float32),
        "constant": np.full((64, 64), 7.5, np.float32),
        "single_pixel": np.ones((1, 1), np.float32),
        "one_row": noise((1, 100)),
        "two_by_two": noise((2, 2)),
        "tiny_8x8": noise((8, 8)),
        "strip_5x300": noise((5, 300)),
        "half_nan": np.where(np.arange(64)[:, None] < 32, np.nan,
                             noise((64, 64))).astype(np.float32),
        "one_finite_pixel": np.where((np.arange(64)[:, None] == 30) & (np.arange(64) == 30),
                                     5.0, np.nan).astype(np.float32),
        "infinities": noise((64, 64)),
        "huge_values": noise((64, 64)),
        "one_spike": np.zeros((64, 64), np.float32),
        "tiny_values": (noise((64, 64)) * 1e-38).astype(np.float32),
        "denormals": np.full((64, 64), 1e-45, np.float32),
        "negative": -noise((64, 64)),
        "two_levels": np.where(rng.random((64, 64)) > 0.5, 1, 0).astype(np.float32),
        "big_endian": noise((64, 64)).astype(">f4"),
        "float64": noise((64, 64)).astype(np.float64),
        "int16": (noise((64, 64)) * 100).astype(np.int16),
    }
    imgs["infinities"][10, 10] = np.inf
    imgs["infinities"][20, 20] = -np.inf
    imgs["huge_values"][5, 5] = 3e38
    imgs["huge_values"][6, 6] = -3e38
    imgs["one_spike"][32, 32] = 1e30
    out = {k: (v, None) for k, v in imgs.items()}
    out["all_masked"] = (noise((64, 64)), np.ones((64, 64), bool))
    out["mask_all_but_corner"] = (noise((64, 64)), np.ones((64, 64), bool))
    out["mask_all_but_corner"][1][:3, :3] = False
    return out


#: One setting of every stage and method: ``(label, [(stage, params), ...])``.
STAGE_SETTINGS = [
    ("background_median", [("background_subtraction", {"box_size": 16})]),
    ("background_biweight", [("background_subtraction", {"box_size": 16,
                                                        "estimator": "biweight"})]),
    ("noise_gaussian", [("noise_reduction", {"method": "gaussian", "sigma": 1.5})]),
    ("noise_median", [("noise_reduction", {"method": "median", "kernel_size": 5})]),
    ("noise_astropy_gaussian", [("noise_reduction", {"method": "astropy_gaussian"})]),
    ("noise_bilateral", [("noise_reduction", {"method": "bilateral"})]),
    ("enhance_zscale_asinh", [("enhancement", {})]),
    ("enhance_minmax_linear", [("enhancement", {"interval": "minmax", "stretch": "linear"})]),
    ("enhance_percentile_log", [("enhancement", {"interval": "percentile", "stretch": "log"})]),
    ("enhance_zscale_histeq", [("enhancement", {"stretch": "histeq"})]),
    ("detect_daofind", [("source_detection", {"method": "daofind", "fwhm": 0.5})]),
    ("detect_iraf", [("source_detection", {"method": "iraf", "fwhm": 0.5})]),
    ("detect_segmentation", [("source_detection", {"method": "segmentation", "fwhm": 0.5,
                                                   "n_pixels": 1})]),
    ("statistics", [("statistics", {})]),
    ("statistics_box", [("statistics", {"box": [0, 4, 0, 4]})]),
    ("photometry", [("source_detection", {"fwhm": 0.5}),
                    ("aperture_photometry", {"radius": 0.5, "annulus_inner": 1.0,
                                             "annulus_outer": 1.5})]),
    ("psf_photometry", [("source_detection", {"fwhm": 0.5}),
                        ("psf_photometry", {"psf_model": "gaussian", "stamp_size": 7,
                                            "fit_shape": 3, "aperture_correction": "none"})]),
]


# -- Hypothesis strategies -------------------------------------------------------------------
def byte_edits(max_edits=8):
    """A list of ``(position fraction, byte)`` overwrites."""
    return st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                    min_size=1, max_size=max_edits)


#: Header keywords whose values the card edits replace.
EDITED_KEYS = ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BZERO", "BSCALE", "BLANK", "BUNIT",
               "CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CDELT1", "CD1_1", "PC1_1",
               "EXTNAME", "XTENSION", "SIMPLE", "EXTEND", "PCOUNT", "GCOUNT")

card_values = st.one_of(
    st.integers(-2**70, 2**70).map(str),
    st.sampled_from(["0", "-1", "1", "2", "3", "8", "-32", "-64", "16", "32", "64", "12",
                     "999999999999", "-999999999999", "T", "F", "1E400", "-1E400", "NAN",
                     "INF", "'MJy/sr'", "'RA---TAN'", "'DEC--TAN'", "'SCI'", "'IMAGE   '",
                     "'BINTABLE'", "''", "'", "(1, 2)", "1.5", "1.0E-45", "3.4E38"]),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x!r}".upper()),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
    .map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
)


def card_edits():
    """``(key, raw value text)`` pairs replacing or adding one header card."""
    return st.tuples(st.sampled_from(EDITED_KEYS), card_values)


def apply_card_edit(raw, key, value):
    """Return the file bytes with the first card ``key`` set to ``value`` (raw text).

    When the first header has no such card, it is put before END.
    """
    new = f"{key:<8}= {value}"[:80].ljust(80).encode("ascii", errors="replace")
    header_end = None
    for pos in range(0, len(raw) - 79, 80):
        chunk = raw[pos:pos + 80]
        if chunk[:8].decode("ascii", errors="replace").rstrip() == key:
            return raw[:pos] + new + raw[pos + 80:]
        if chunk.startswith(b"END     ") or chunk.rstrip() == b"END":
            header_end = pos
            break
    if header_end is None:
        return raw
    # room for one more card only when the END card is not the block's last
    if (header_end + 80) % BLOCK == 0:
        return raw[:header_end] + new + raw[header_end + 80:]
    return raw[:header_end] + new + b"END".ljust(80) + raw[header_end + 160:]


DTYPES = ("u1", "i1", ">i2", ">u2", ">i4", ">u4", ">i8", ">f4", "<f4", ">f8", "<f8")


@st.composite
def image_arrays(draw):
    """A valid image as numpy holds it: any FITS-writable dtype, shape and values."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    ny = draw(st.integers(1, 24))
    nx = draw(st.integers(1, 24))
    if dtype.kind == "f":
        elements = st.floats(width=8 * dtype.itemsize, allow_nan=True, allow_infinity=True)
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max))
    values = draw(st.lists(elements, min_size=ny * nx, max_size=ny * nx))
    return np.array(values, dtype=dtype).reshape(ny, nx)


def any_value():
    """Any value a user, a widget or a recipe could give a parameter."""
    scalars = st.one_of(
        st.none(), st.booleans(),
        st.integers(), st.integers(-2**70, 2**70), st.sampled_from([10**400, -10**400]),
        st.floats(), st.floats(-1e6, 1e6), st.sampled_from([float("nan"), float("inf"), -0.0]),
        st.text(max_size=12), st.sampled_from(["median", "gaussian", "daofind", "zscale", "auto",
                                               "none", "1", "3.5", "nan", "", " median"]),
        st.binary(max_size=6), st.complex_numbers(max_magnitude=10),
        st.sampled_from([np.float32(3.0), np.int64(5), np.float64("nan"), np.bool_(True),
                         np.uint8(200), np.float16(1.5)]),
    )
    return st.one_of(scalars, st.lists(scalars, max_size=5), st.dictionaries(
        st.text(max_size=4), scalars, max_size=2))
