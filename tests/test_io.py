"""The data layer: loading JWST and plain FITS, writing with provenance."""

import json
import os

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from jwst_widgets import InputError, load_image
from jwst_widgets.datasets import sample_path
from jwst_widgets.io import atomic_write, file_checksum, read_provenance, write_fits


def _wcs_header(nx=64, ny=48):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [nx / 2, ny / 2]
    w.wcs.cdelt = [-0.031 / 3600, 0.031 / 3600]
    return w.to_header()


def make_cal(path, shape=(48, 64), seed=0):
    """A JWST Level-2 cal-like file: PRIMARY, SCI (MJy/sr), ERR, DQ."""
    rng = np.random.default_rng(seed)
    sci = rng.normal(0.3, 0.01, shape).astype(np.float32)
    sci[5, 7] = np.nan
    err = np.full(shape, 0.01, np.float32)
    dq = np.zeros(shape, np.uint32)
    dq[10, 11] = 1 | 4  # DO_NOT_USE | JUMP_DET
    dq[12, 13] = 4      # JUMP_DET alone: flagged but usable
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "JWST"
    primary.header["INSTRUME"] = "NIRCAM"
    primary.header["FILTER"] = "F200W"
    h = _wcs_header(shape[1], shape[0])
    h["BUNIT"] = "MJy/sr"
    h["PHOTMJSR"] = 0.5
    h["PIXAR_SR"] = 2.26e-14
    hdul = fits.HDUList([primary, fits.ImageHDU(sci, h, name="SCI"),
                         fits.ImageHDU(err, name="ERR"), fits.ImageHDU(dq, name="DQ")])
    hdul.writeto(path)
    return sci, err, dq


def test_cal_file(tmp_path, unchanged_files):
    path = tmp_path / "jw_test_cal.fits"
    sci, err, dq = make_cal(path)
    unchanged_files(path)
    img = load_image(path)
    assert img.data.dtype == np.float32 and img.data.shape == sci.shape
    np.testing.assert_array_equal(img.data, sci)
    np.testing.assert_array_equal(img.error, err)
    assert img.mask[5, 7] and img.mask[10, 11] and not img.mask[12, 13]
    assert img.mask.sum() == 2
    assert img.unit == u.MJy / u.sr
    assert img.meta["photmjsr"] == 0.5 and img.meta["pixar_sr"] == 2.26e-14
    assert img.meta["instrument"] == "NIRCAM" and img.meta["filter"] == "F200W"
    assert img.wcs is not None and img.wcs.has_celestial
    ra, dec = img.pixel_to_sky(31.5 - 0.5, 23.5 - 0.5)  # 1-based CRPIX (32, 24)
    assert ra == pytest.approx(150.1) and dec == pytest.approx(2.2)
    with pytest.raises(ValueError):  # read-only: the input cannot be changed through it
        img.data[0, 0] = 1


def test_i2d_like_and_memmap(tmp_path, monkeypatch):
    monkeypatch.setattr("jwst_widgets.io.load.MMAP_MIN_BYTES", 1000)
    path = tmp_path / "mosaic_i2d.fits"
    data = np.arange(300 * 200, dtype=">f4").reshape(300, 200)
    h = _wcs_header(200, 300)
    h["BUNIT"] = "MJy/sr"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, h, name="SCI"),
                  fits.ImageHDU(np.ones_like(data), name="ERR"),
                  fits.ImageHDU(np.ones_like(data), name="WHT"),
                  fits.ImageHDU(np.ones(data.shape, np.int32), name="CON")]).writeto(path)
    img = load_image(path)
    from jwst_widgets.io.load import _is_mapped
    assert _is_mapped(img.data)  # not read into memory
    np.testing.assert_array_equal(img.data, data)
    assert img.meta["extname"] == "SCI" and img.error is not None
    wht = load_image(path, ext="WHT")
    assert wht.meta["extname"] == "WHT" and np.all(wht.data == 1)


def test_plain_primary_gzip_and_compressed(tmp_path):
    data = np.random.default_rng(1).normal(size=(40, 50)).astype(np.float32)
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(data).writeto(plain)
    gz = tmp_path / "plain.fits.gz"
    fits.PrimaryHDU(data).writeto(gz)
    comp = tmp_path / "comp.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="GZIP_2", quantize_level=0)]) \
        .writeto(comp)
    for p in (plain, gz, comp):
        img = load_image(p)
        np.testing.assert_allclose(img.data, data, rtol=0, atol=0)
        assert img.unit is None and img.wcs is None


def test_integer_bzero_bscale(tmp_path):
    path = tmp_path / "ints.fits"
    raw = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    fits.PrimaryHDU(raw).writeto(path)  # astropy writes int16 + BZERO=32768
    assert fits.getheader(path)["BZERO"] == 32768
    img = load_image(path)
    np.testing.assert_array_equal(img.data, raw.astype(np.float32))
    path2 = tmp_path / "scaled.fits"
    hdu = fits.PrimaryHDU(np.array([[1, 2], [3, 4]], dtype=np.int16))
    hdu.header["BSCALE"] = 0.5
    hdu.header["BZERO"] = 10.0
    hdu.writeto(path2)
    img2 = load_image(path2)
    np.testing.assert_allclose(img2.data, [[10.5, 11.0], [11.5, 12.0]])


def test_cubes_and_ramps(tmp_path):
    cube = np.stack([np.full((8, 9), k, np.float32) for k in range(3)])
    p3 = tmp_path / "cube.fits"
    fits.PrimaryHDU(cube).writeto(p3)
    assert load_image(p3).data[0, 0] == 0  # default plane 0
    assert load_image(p3, index=2).data[0, 0] == 2
    assert load_image(p3, index=-1).meta["index"] == (-1,)
    with pytest.raises(InputError, match="out of range"):
        load_image(p3, index=3)
    ramp = np.zeros((2, 3, 8, 9), np.float32)
    for i in range(2):
        for g in range(3):
            ramp[i, g] = 10 * i + g
    p4 = tmp_path / "ramp.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(ramp, name="SCI")]).writeto(p4)
    cds = load_image(p4)
    assert cds.meta["index"] == "cds" and np.all(cds.data == 2)  # last - first group
    assert np.all(load_image(p4, index=(1, 2)).data == 12)
    with pytest.raises(InputError, match="index"):
        load_image(p4, index=1)
    with pytest.raises(InputError, match="not understood"):
        load_image(p3, index="cds")


def test_bundled_samples(unchanged_files):
    for name, shape in (("hst_abell2744", (400, 400)), ("hst_abell2744_group", (100, 100)),
                        ("jwst_fgs_acq1", (128, 128))):
        path = sample_path(name)
        unchanged_files(path)
        img = load_image(path)
        assert img.data.shape == shape and img.wcs is not None
    fgs = load_image(sample_path("jwst_fgs_acq1"))
    with fits.open(sample_path("jwst_fgs_acq1")) as h:
        raw = h["SCI"].data.astype(np.float32)
    np.testing.assert_array_equal(fgs.data, raw[0, -1] - raw[0, 0])
    assert fgs.unit == u.DN and fgs.data.max() > 10000  # the saturated guide star


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"hello, this is not FITS at all" * 10, "not a FITS file"),
])
def test_not_fits(tmp_path, content, match):
    p = tmp_path / "bad.fits"
    p.write_bytes(content)
    with pytest.raises(InputError, match=match):
        load_image(p)


def test_missing_directory_truncated(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "nope.fits")
    with pytest.raises(InputError, match="directory"):
        load_image(tmp_path)
    full = tmp_path / "full.fits"
    fits.PrimaryHDU(np.ones((200, 200), np.float32)).writeto(full)
    cut = tmp_path / "cut.fits"
    cut.write_bytes(full.read_bytes()[: 2880 + 5000])
    with pytest.raises(InputError, match="cut.fits"):
        load_image(cut)


def test_header_only_and_table(tmp_path):
    p = tmp_path / "header.fits"
    fits.PrimaryHDU().writeto(p)
    with pytest.raises(InputError, match="no image"):
        load_image(p)
    t = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="a", format="E", array=np.ones(3))])]).writeto(t)
    with pytest.raises(InputError, match="no image"):
        load_image(t)
    s = tmp_path / "spectrum.fits"
    fits.PrimaryHDU(np.ones(10, np.float32)).writeto(s)
    with pytest.raises(InputError, match="1-D"):
        load_image(s)


def test_bad_wcs_unit_and_dq_are_warnings(tmp_path):
    p = tmp_path / "odd.fits"
    h = fits.Header()
    h["CTYPE1"] = "RA---XYZ"
    h["CTYPE2"] = "DEC--XYZ"
    h["BUNIT"] = "furlongs per fortnight squared"
    sci = np.ones((10, 12), np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, h, name="SCI"),
                  fits.ImageHDU(np.zeros((5, 5), np.uint32), name="DQ")]).writeto(p)
    img = load_image(p)
    assert img.wcs is None and img.unit is None
    text = " ".join(img.warnings)
    assert "WCS" in text and "BUNIT" in text and "DQ" in text
    assert not img.mask.any()


def test_hdulist_and_array_inputs():
    data = np.arange(12, dtype=np.int32).reshape(3, 4)
    img = load_image(fits.HDUList([fits.PrimaryHDU(data)]))
    assert img.data.dtype == np.float32 and img.data[2, 3] == 11
    arr = load_image(np.ones((4, 5)))
    assert arr.data.shape == (4, 5) and arr.origin == "array"
    with pytest.raises(InputError, match="2-D"):
        load_image(np.ones(5))
    with pytest.raises(InputError, match="path"):
        load_image(42)


def test_write_fits_provenance_and_atomic(tmp_path, unchanged_files):
    src = tmp_path / "in_cal.fits"
    make_cal(src)
    unchanged_files(src)
    img = load_image(src)
    out = tmp_path / "out.fits"
    recipe = {"format": "jwst-widgets-recipe", "format_version": 1, "stages": []}
    write_fits(out, img.data, header=img.header, wcs=img.wcs, unit=img.unit, recipe=recipe,
               input_path=str(src), history=["background_subtraction(box_size=32)"])
    prov = read_provenance(out)
    assert prov["recipe"] == recipe
    assert prov["input"] == "in_cal.fits"
    assert prov["input_checksum"] == file_checksum(src)
    assert any("background_subtraction" in h for h in prov["history"])
    assert any(h.startswith("numpy ") for h in prov["history"])
    back = load_image(out)
    assert back.unit == u.MJy / u.sr and back.wcs is not None
    np.testing.assert_array_equal(back.data, img.data)
    with fits.open(out) as h:
        assert h[1].verify_checksum() == 1
    # never over an input
    with pytest.raises(InputError, match="input"):
        write_fits(src, img.data, input_path=str(src))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_atomic_write_interrupted_keeps_old_file(tmp_path):
    target = tmp_path / "result.json"
    target.write_text(json.dumps({"old": True}))
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as fh:
            fh.write('{"new": ')
            raise RuntimeError("disk pulled out mid-write")
    assert json.loads(target.read_text()) == {"old": True}
    assert sorted(os.listdir(tmp_path)) == ["result.json"]
