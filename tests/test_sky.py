"""The sky view, in the kernel: what is sent to Aladin Lite, and selection both ways.

The browser is stood in for at the widget protocol: every message the
widgets send is recorded (a recording comm, as ipywidgets' own tests do), and
the browser's messages are handed to the widget the way the kernel hands
them over (``Widget._handle_msg``). Truth: the footprint against astropy's
``WCS.calc_footprint``, the sources against astropy's ``pixel_to_world`` on
the same catalog, the image sent against the image's own WCS.
"""

import io
import json
import re
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import comm
import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits, votable
from astropy.table import QTable
from astropy.wcs import WCS

from jwst_widgets import Pipeline, aladin_offline
from jwst_widgets.datasets import load_sample, nircam_like
from jwst_widgets.errors import InputError
from jwst_widgets.io import Image
from jwst_widgets.widgets.sky import (SkyView, add_sky_tab, footprint, image_hdulist,
                                      sky_table)

# --------------------------------------------------------------------------- fixtures


class RecordingComm(comm.DummyComm):
    """A comm that keeps what the widget sends (no front end attached)."""

    log = None

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        if self.log is not None:
            self.log.append({"comm_id": self.comm_id, "type": msg_type, "data": data,
                             "buffers": [bytes(b) for b in (buffers or [])]})


@pytest.fixture
def sent(monkeypatch):
    """Every message widgets made in the test send, in order."""
    log = []
    monkeypatch.setattr(RecordingComm, "log", log)   # before __init__, which opens the comm
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    return log


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty jwst-widgets cache (no local Aladin Lite unless a test makes one)."""
    monkeypatch.setenv("JWST_WIDGETS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def field():
    """A 256x256 synthetic NIRCam frame (rotated ICRS TAN WCS) and its detected sources."""
    frame = nircam_like(shape=(256, 256), seed=3, position_angle=30.0)
    result = Pipeline([("background_subtraction", {"box_size": 32}),
                       ("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.0})]
                      ).run(frame.image)
    assert len(result.catalog) >= 5
    return frame.image, result.catalog


def custom_messages(log, widget, event_name=None):
    """The custom messages one widget sent: [(content, buffers)]."""
    out = []
    for m in log:
        data = m["data"] or {}
        if m["comm_id"] == widget.model_id and m["type"] == "comm_msg" \
                and data.get("method") == "custom":
            if event_name is None or data["content"].get("event_name") == event_name:
                out.append((data["content"], m["buffers"]))
    return out


def from_browser(widget, content):
    """Hand a custom message from the browser to a widget, as the kernel does."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                        "buffers": []})


def browser_draws(sky):
    """What the browser does when it draws the view: ipyaladin loads, our loader reports."""
    sky.aladin.set_state({"_is_loaded": True})
    from_browser(sky.aladin, {"event_type": "jw_status", "status": "ready", "detail": ""})


def votable_rows(buffer):
    return votable.parse_single_table(io.BytesIO(buffer)).to_table()


# ---------------------------------------------------------------------------- footprint

def test_footprint_equals_astropy_calc_footprint(field):
    image, _ = field
    corners = footprint(image.wcs, image.shape)
    assert corners.shape == (4, 2)
    np.testing.assert_allclose(corners, image.wcs.calc_footprint(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(corners, image.wcs.calc_footprint(axes=image.shape[::-1]),
                               rtol=0, atol=1e-10)


def test_footprint_of_an_fk5_wcs_is_given_in_icrs():
    image = load_sample("hst_abell2744")          # RADESYS = 'FK5'
    corners = footprint(image.wcs, image.shape)
    fk5 = image.wcs.calc_footprint()
    icrs = SkyCoord(fk5[:, 0], fk5[:, 1], unit="deg", frame="fk5").icrs
    np.testing.assert_allclose(corners[:, 0], icrs.ra.deg, rtol=0, atol=1e-9)
    np.testing.assert_allclose(corners[:, 1], icrs.dec.deg, rtol=0, atol=1e-9)
    # FK5 J2000 and ICRS differ by less than 0.1 arcsec
    assert np.abs(corners - fk5).max() * 3600 < 0.1


def test_footprint_refuses_no_wcs_and_bad_shapes(field):
    image, _ = field
    with pytest.raises(InputError, match="no WCS") as info:
        footprint(None, (10, 10))
    assert info.value.param == "wcs"
    with pytest.raises(InputError, match=r"shape must be \(ny, nx\)"):
        footprint(image.wcs, (0, 10))
    spectral = WCS(naxis=1)
    spectral.wcs.ctype = ["WAVE"]
    with pytest.raises(InputError, match="celestial"):
        footprint(spectral, (10, 10))


# --------------------------------------------------------------------------- sky table

def test_sky_table_has_one_row_per_source_at_astropy_positions(field):
    image, catalog = field
    before = catalog.copy()
    table = sky_table(catalog)
    assert list(table["row"]) == list(range(len(catalog)))
    truth = image.wcs.pixel_to_world(np.asarray(catalog["x_centroid"]),
                                     np.asarray(catalog["y_centroid"])).icrs
    np.testing.assert_allclose(table["ra"].to_value("deg"), truth.ra.deg, rtol=0, atol=1e-10)
    np.testing.assert_allclose(table["dec"].to_value("deg"), truth.dec.deg, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(table["id"], catalog["id"])
    assert all(np.array_equal(catalog[c], before[c]) for c in catalog.colnames)


def test_sky_table_computes_positions_from_pixels_with_the_wcs(field):
    image, catalog = field
    bare = QTable({"x_centroid": catalog["x_centroid"], "y_centroid": catalog["y_centroid"]})
    table = sky_table(bare, wcs=image.wcs)
    np.testing.assert_allclose(table["ra"].value, sky_table(catalog)["ra"].value, atol=1e-10)
    with pytest.raises(InputError, match="no ra/dec columns and the image has no WCS"):
        sky_table(bare)


def test_sky_table_leaves_out_rows_without_a_position_and_keeps_empty_columns():
    cat = QTable({"id": [1, 2, 3], "ra": [10.0, np.nan, 10.002],
                  "dec": [-5.0, -5.001, -5.002]})
    table = sky_table(cat)
    assert list(table["row"]) == [0, 2]
    assert list(table["id"]) == [1, 3]
    empty = sky_table(cat[:0])
    assert len(empty) == 0 and empty.colnames == table.colnames
    assert list(sky_table(cat, max_rows=1)["row"]) == [0]


# ------------------------------------------------------------------------ image sent

def test_image_hdulist_block_mean_keeps_the_sky_where_it_was(field):
    image, _ = field
    data_before = image.data.copy()
    hdul = image_hdulist(image, max_size=64)       # 256 -> 64: blocks of 4
    small = hdul[0].data
    assert small.dtype == np.float32 and small.shape == (64, 64)
    assert hdul[0].header["JW_BLOCK"] == 4
    block = np.where(image.mask, np.nan, image.data)[40:44, 80:84]
    np.testing.assert_allclose(small[10, 20], np.nanmean(block), rtol=1e-5)
    # the centre of a reduced pixel is where the centre of its block was
    sent = WCS(hdul[0].header).pixel_to_world(20, 10)
    truth = image.wcs.pixel_to_world(20 * 4 + 1.5, 10 * 4 + 1.5)
    assert sent.separation(truth).arcsec < 1e-6
    np.testing.assert_array_equal(image.data, data_before)


def test_image_hdulist_blanks_masked_pixels_and_refuses_bad_sizes(field):
    image, _ = field
    mask = np.zeros(image.shape, bool)
    mask[5, 7] = True
    masked = image.replace(mask=mask)
    hdul = image_hdulist(masked, max_size=1024)
    assert np.isnan(hdul[0].data[5, 7]) and np.isfinite(hdul[0].data[5, 8])
    assert np.isfinite(image.data[5, 7])
    with pytest.raises(InputError, match="max_size must be an integer from 64 to 8192") as info:
        image_hdulist(image, max_size=10)
    assert info.value.param == "max_size"


# ---------------------------------------------------------------- what the widget sends

def test_sky_view_sends_footprint_image_and_one_row_per_source(field, sent, cache):
    image, catalog = field
    sky = SkyView(image, catalog, aladin_lite="cdn")
    assert sky.status == "waiting" and sky.source == "cdn"
    assert custom_messages(sent, sky.aladin) == []     # nothing before the browser draws

    browser_draws(sky)
    assert sky.status == "ready"
    (overlay, _), = custom_messages(sent, sky.aladin, "add_overlay")
    stcs = overlay["regions_infos"][0]["infos"]["stcs"]
    assert stcs.startswith("Polygon ICRS ")
    corners = np.array([float(v) for v in stcs.split()[2:]]).reshape(4, 2)
    np.testing.assert_allclose(corners, image.wcs.calc_footprint(), rtol=0, atol=1e-8)

    (fits_msg, (fits_bytes,)), = custom_messages(sent, sky.aladin, "add_fits")
    sent_hdu = fits.open(io.BytesIO(fits_bytes))[0]
    np.testing.assert_allclose(sent_hdu.data, np.where(image.mask, np.nan, image.data))
    assert WCS(sent_hdu.header).pixel_to_world(100, 50).separation(
        image.wcs.pixel_to_world(100, 50)).arcsec < 1e-6

    (table_msg, (table_bytes,)), = custom_messages(sent, sky.aladin, "add_table")
    assert table_msg["options"]["name"].startswith("jw_sources_")
    rows = votable_rows(table_bytes)
    assert len(rows) == len(catalog)
    assert list(rows["row"]) == list(range(len(catalog)))
    truth = image.wcs.pixel_to_world(np.asarray(catalog["x_centroid"]),
                                     np.asarray(catalog["y_centroid"])).icrs
    np.testing.assert_allclose(np.asarray(rows["ra"]), truth.ra.deg, rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(rows["dec"]), truth.dec.deg, rtol=0, atol=1e-10)


def test_a_new_view_is_sent_the_whole_scene_again(field, sent, cache):
    image, catalog = field
    sky = SkyView(image, catalog, aladin_lite="cdn")
    browser_draws(sky)
    sky.select([1])
    n = len(custom_messages(sent, sky.aladin, "add_table"))
    from_browser(sky.aladin, {"event_type": "jw_status", "status": "ready", "detail": ""})
    again = custom_messages(sent, sky.aladin, "add_table")[n:]
    assert [m["options"]["name"].rsplit("_", 1)[0] for m, _ in again] == \
        ["jw_sources", "jw_selected"]
    assert list(votable_rows(again[1][1][0])["row"]) == [1]


def test_an_unchanged_catalog_is_not_sent_again(field, sent, cache):
    image, catalog = field
    sky = SkyView(image, catalog, aladin_lite="cdn")
    browser_draws(sky)
    sky.select([2])
    n = len(custom_messages(sent, sky.aladin))
    sky.set_catalog(catalog.copy())           # a re-run gives an equal catalog
    assert len(custom_messages(sent, sky.aladin)) == n
    assert sky.selected == [2]
    fewer = catalog[:2]
    sky.set_catalog(fewer)
    assert sky.selected == []                 # row 2 is gone
    (msg, (buf,)), = [m for m in custom_messages(sent, sky.aladin, "add_table")[-1:]]
    assert len(votable_rows(buf)) == 2


def stack(widget, name, change):
    from_browser(widget, {"event_type": "stack_changed",
                          "content": {"name": name, "type": "catalog", "change": change}})


def test_an_overlay_is_removed_only_once_the_browser_has_it(field, sent, cache):
    # Aladin Lite adds a catalog asynchronously: a removal sent before it is drawn
    # fails there ("not found") and the old overlay would stay on the sky for good.
    image, catalog = field
    sky = SkyView(image, catalog, aladin_lite="cdn")
    browser_draws(sky)
    sky.select([1])
    sky.select([2])
    first, second = [m["options"]["name"]
                     for m, _ in custom_messages(sent, sky.aladin, "add_table")[-2:]]
    assert first != second

    def removed():
        return [n for m, _ in custom_messages(sent, sky.aladin, "remove_overlay")
                for n in m["overlay_names"]]
    assert first not in removed()
    assert "selected" not in sky.drawn
    stack(sky.aladin, first, "added")            # the browser drew the first at last
    assert removed().count(first) == 1           # ... and is told to remove it now
    stack(sky.aladin, first, "removed")
    stack(sky.aladin, second, "added")
    assert second not in removed() and "selected" in sky.drawn
    sky.select([3])                              # the second is drawn: removed at once
    assert removed().count(second) == 1


# -------------------------------------------------------------------------- selection

def test_a_click_on_the_sky_selects_the_catalog_row(field, sent, cache):
    image, catalog = field
    sky = SkyView(image, catalog, aladin_lite="cdn")
    browser_draws(sky)
    chosen = []
    sky.on_select(chosen.append)
    table = sky.table
    # Aladin Lite reports the clicked source with its row's fields (VOTable text)
    from_browser(sky.aladin, {"event_type": "object_clicked", "content": {
        "ra": float(table["ra"][3].value), "dec": float(table["dec"][3].value),
        "data": {"row": "3", "ra": str(table["ra"][3].value)}}})
    assert chosen == [[3]] and sky.selected == [3]
    (msg, (buf,)), = custom_messages(sent, sky.aladin, "add_table")[-1:]
    assert msg["options"]["name"].startswith("jw_selected_")
    assert list(votable_rows(buf)["row"]) == [3]
    # a rectangle selection of several sources
    objs = [{"ra": float(table["ra"][i].value), "dec": float(table["dec"][i].value),
             "data": {"row": i}} for i in (0, 4)]
    from_browser(sky.aladin, {"event_type": "select", "content": objs})
    assert chosen[-1] == [0, 4]


def test_objects_without_a_row_are_matched_by_position(field, cache):
    image, catalog = field
    sky = SkyView(image, catalog, aladin_lite="cdn")
    ra, dec = float(sky.table["ra"][2].value), float(sky.table["dec"][2].value)
    here = SkyCoord(ra, dec, unit="deg")
    near = here.spherical_offsets_by(0.3 * u.arcsec, 0.2 * u.arcsec)
    assert sky.rows_of([{"ra": near.ra.deg, "dec": near.dec.deg, "data": {}}]) == [2]
    far = here.spherical_offsets_by(5 * u.arcsec, 0 * u.arcsec)
    assert sky.rows_of([{"ra": far.ra.deg, "dec": far.dec.deg, "data": {}}]) == []
    assert sky.rows_of([{"data": {"row": "999"}}]) == []


def test_selecting_rows_highlights_and_centres_them_on_the_sky(field, sent, cache):
    image, catalog = field
    sky = SkyView(image, catalog, aladin_lite="cdn")
    browser_draws(sky)
    sky.select([4, 1])
    (msg, (buf,)), = custom_messages(sent, sky.aladin, "add_table")[-1:]
    assert msg["options"]["name"].startswith("jw_selected_")
    assert sorted(votable_rows(buf)["row"]) == [1, 4]
    target = sky.aladin.target
    row = sky.table[4]
    assert target.separation(SkyCoord(row["ra"], row["dec"])).arcsec < 1e-6
    assert "selected: row 4" in sky.header.value


def test_selection_flows_both_ways_with_the_builder(field, sent, cache):
    from jwst_widgets import PipelineBuilder

    image, _ = field
    builder = PipelineBuilder(image, stages=[
        ("background_subtraction", {"box_size": 32}),
        ("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.0})], width=300, height=300)
    try:
        assert builder.wait_idle(60)
        titles = list(builder.tabs.titles)
        tab = add_sky_tab(builder, aladin_lite="cdn")
        assert tab is builder.sky_tab               # the builder's own tab, not a second
        assert list(builder.tabs.titles) == titles and titles.count("Sky") == 1
        assert tab.sky is None                      # nothing until the tab is shown
        builder.tabs.selected_index = len(builder.tabs.children) - 1
        sky = tab.sky
        assert sky is not None and sky.image is builder.image
        assert sky.catalog is builder.result.catalog and len(sky.table) == len(sky.catalog)
        browser_draws(sky)

        builder.view.select([3])                    # a click on a source in the image
        assert sky.selected == [3]
        builder.catalog_table.list.value = (5,)     # a row chosen in the table
        assert sky.selected == [5] and builder.view.selected == [5]
        row = sky.table[5]
        assert sky.aladin.target.separation(SkyCoord(row["ra"], row["dec"])).arcsec < 1e-6

        from_browser(sky.aladin, {"event_type": "object_clicked", "content": {
            "ra": float(sky.table["ra"][2].value), "dec": float(sky.table["dec"][2].value),
            "data": {"row": "2"}}})                 # a click on the sky
        assert builder.catalog_table.selected == [2]
        assert builder.view.selected == [2]
        assert sky.selected == [2]

        # Options given once the sky view is made: it is made again with them, and the
        # old one no longer follows the builder.
        again = add_sky_tab(builder, aladin_lite="cdn", height=300)
        assert again is tab and tab.sky is not sky and tab.children == (tab.sky,)
        builder.catalog_table.list.value = (4,)
        assert tab.sky.selected == [4] and sky.selected == [2]
    finally:
        builder.close()


# ------------------------------------------------------------------- no WCS, no Aladin

def test_no_wcs_is_said_in_words_and_nothing_breaks(field, sent, cache):
    image, catalog = field
    bare = Image.from_array(image.data)
    sky = SkyView(bare, catalog, aladin_lite="cdn")
    assert sky.status == "no wcs" and sky.aladin is None
    assert "no WCS" in sky.message.value and "Everything else works" in sky.message.value
    sky.select([0])                                 # harmless
    assert sky.selected == []
    sky.set_image(image)                            # a WCS arrives: the sky appears
    assert sky.status == "waiting" and sky.aladin is not None
    sky.set_image(bare)
    assert sky.status == "no wcs" and sky.holder.layout.display == "none"


def test_builder_image_without_wcs(sent, cache):
    from jwst_widgets import PipelineBuilder

    rng = np.random.default_rng(1)
    bare = Image.from_array(rng.normal(10, 1, (128, 128)).astype(np.float32))
    builder = PipelineBuilder(bare, stages=[("source_detection", {"threshold_sigma": 5.0})],
                              width=300, height=300)
    try:
        assert builder.wait_idle(60)
        sky = add_sky_tab(builder, aladin_lite="cdn").open_sky()
        assert sky.status == "no wcs" and "no WCS" in sky.message.value
        builder.view.select([0])
        assert sky.selected == []
    finally:
        builder.close()


def test_browser_failure_is_said_in_words(field, sent, cache):
    image, catalog = field
    sky = SkyView(image, catalog, aladin_lite="cdn")
    texts = sky.aladin._jw_texts
    assert "could not load Aladin Lite" in texts["failed"]
    assert "python -m jwst_widgets.aladin_offline fetch" in texts["failed"]
    from_browser(sky.aladin, {"event_type": "jw_status", "status": "failed",
                              "detail": "Failed to fetch dynamically imported module"})
    assert sky.status == "failed"
    assert "not available" in sky.message.value and "Everything else" in sky.message.value
    assert custom_messages(sent, sky.aladin) == []


def test_options_are_checked(cache):
    with pytest.raises(InputError, match="aladin_lite must be 'auto', 'local' or 'cdn'"):
        SkyView(aladin_lite="web")
    with pytest.raises(InputError, match="height must be an integer from 200 to 2000"):
        SkyView(height=50)
    with pytest.raises(InputError, match="load_timeout must be a number from 1 to 600"):
        SkyView(load_timeout=0)
    with pytest.raises(InputError, match="aladin_offline fetch") as info:
        SkyView(aladin_lite="local")               # no local copy in this cache
    assert info.value.param == "aladin_lite"
    assert SkyView(aladin_lite="auto").source == "cdn"


# -------------------------------------------------------------- the local Aladin Lite

FAKE_JS = b"const f = {init: Promise.resolve()}; export{f as default};"


def fake_tarball(version="3.9.2-beta", name="aladin-lite", js=FAKE_JS):
    """An npm tarball with the layout of aladin-lite's."""
    files = {"package/package.json": json.dumps({"name": name, "version": version,
                                                 "license": "LGPL-3.0-or-later"}).encode(),
             "package/dist/aladin.js": js, "package/LICENSE": b"LGPL-3.0 text",
             "package/COPYING": b"GPL-3.0 text"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_fetch_from_a_tarball_keeps_the_module_and_its_licence(tmp_path, cache):
    version = aladin_offline.required_version()
    tgz = tmp_path / "aladin.tgz"
    tgz.write_bytes(fake_tarball(version))
    assert aladin_offline.local_copy() is None
    path = aladin_offline.fetch(tarball=tgz)
    assert path == aladin_offline.local_copy()
    assert path.read_bytes() == FAKE_JS
    assert (path.parent / "LICENSE").read_bytes() == b"LGPL-3.0 text"
    record = json.loads((path.parent / "SOURCE.json").read_text())
    assert record["license"] == "LGPL-3.0-or-later" and record["version"] == version
    assert aladin_offline.read_source() == FAKE_JS
    # a damaged copy is not used
    path.write_bytes(b"garbage")
    assert aladin_offline.local_copy() is None


def test_fetch_refuses_the_wrong_package(tmp_path, cache):
    tgz = tmp_path / "other.tgz"
    tgz.write_bytes(fake_tarball("1.0.0"))
    with pytest.raises(InputError, match=r"holds aladin-lite@1\.0\.0") as info:
        aladin_offline.fetch(tarball=tgz)
    assert info.value.param == "tarball"
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")
    with pytest.raises(InputError, match="not an npm package tarball"):
        aladin_offline.fetch(tarball=tmp_path / "junk.tgz")
    with pytest.raises(InputError, match="version must be an npm version"):
        aladin_offline.fetch("latest; rm -rf /")


@pytest.fixture
def registry():
    """A tiny npm registry on 127.0.0.1 serving one package version."""
    import base64
    import hashlib

    version = aladin_offline.required_version()
    tgz = fake_tarball(version)
    state = {"tarball": tgz, "asked": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            state["asked"].append(self.path)
            base = f"http://127.0.0.1:{self.server.server_port}"
            if self.path == f"/aladin-lite/{version}":
                digest = base64.b64encode(hashlib.sha512(tgz).digest()).decode()
                body = json.dumps({"name": "aladin-lite", "version": version, "dist": {
                    "tarball": f"{base}/aladin-lite/-/aladin-lite-{version}.tgz",
                    "integrity": f"sha512-{digest}"}}).encode()
            elif self.path.endswith(".tgz"):
                body = state["tarball"]
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_fetch_downloads_checks_and_keeps_the_package(registry, cache):
    path = aladin_offline.fetch(registry=registry["url"], timeout=10)
    assert path.read_bytes() == FAKE_JS
    assert len(registry["asked"]) == 2
    assert aladin_offline.fetch(registry=registry["url"]) == path   # already there
    assert len(registry["asked"]) == 2
    registry["tarball"] = fake_tarball(aladin_offline.required_version(), js=b"tampered")
    with pytest.raises(InputError, match="does not match the registry's sha512"):
        aladin_offline.fetch(registry=registry["url"], force=True)
    assert aladin_offline.read_source() == FAKE_JS   # the good copy is kept


def test_fetch_without_network_says_what_to_do(cache):
    with pytest.raises(InputError, match="cannot reach the npm registry.*npm pack"):
        aladin_offline.fetch(registry="http://127.0.0.1:9", timeout=2)


def test_the_cli_fetches_and_reports(tmp_path, cache, capsys):
    tgz = tmp_path / "aladin.tgz"
    tgz.write_bytes(fake_tarball(aladin_offline.required_version()))
    assert aladin_offline.main(["status"]) == 0
    assert "no local copy" in capsys.readouterr().out
    assert aladin_offline.main(["path"]) == 1
    assert aladin_offline.main(["fetch", "--tarball", str(tgz)]) == 0
    assert "LGPL-3.0-or-later" in capsys.readouterr().out
    assert aladin_offline.main(["path"]) == 0
    assert capsys.readouterr().out.strip().endswith("aladin.js")
    assert aladin_offline.main(["fetch", "--tarball", str(tmp_path / "missing.tgz")]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_the_local_copy_is_sent_to_the_browser(tmp_path, field, sent, cache):
    from jwst_widgets.widgets.aladin import aladin_class

    image, catalog = field
    tgz = tmp_path / "aladin.tgz"
    tgz.write_bytes(fake_tarball(aladin_offline.required_version()))
    aladin_offline.fetch(tarball=tgz)
    sky = SkyView(image, catalog)                   # auto: the local copy is there
    assert sky.source == "local"
    assert sky.aladin._jw_aladin_js == FAKE_JS
    opened = [m for m in sent if m["comm_id"] == sky.aladin.model_id and m["type"] == "comm_open"]
    assert FAKE_JS in opened[0]["buffers"]          # it travels with the widget's state
    assert "local copy" in sky.aladin._jw_texts["loading"]
    # the front end replaces ipyaladin's import URL; that URL must be in ipyaladin's code
    cls = aladin_class()
    assert cls.import_url_found
    assert json.dumps(aladin_offline.cdn_url()) in cls._esm
    assert re.search(r"export default \{ render \}", cls._esm)
    assert SkyView(image, catalog, aladin_lite="cdn").aladin._jw_aladin_js == b""


def test_each_widget_keeps_its_own_waiting_calls(field, sent, cache):
    image, catalog = field
    a = SkyView(image, catalog, aladin_lite="cdn").aladin
    b = SkyView(image, catalog, aladin_lite="cdn").aladin
    assert a._call_store is not b._call_store
    a.add_fits(image_hdulist(image, max_size=64))  # waits for a's browser view
    assert len(a._call_store.calls) == 1 and b._call_store.calls == []
