"""The widgets driven in the kernel: set values, wait, assert on what is shown."""

import io
import json

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image as PILImage

import jwst_widgets
from jwst_widgets import InputError, PipelineBuilder
from jwst_widgets.widgets import ImageView


@pytest.fixture(scope="module")
def frame():
    return jwst_widgets.datasets.nircam_like(shape=(512, 512), seed=7)


@pytest.fixture
def builder(frame):
    b = PipelineBuilder(frame.image, width=400, height=380)
    yield b
    b.close()


def png_size(png):
    return PILImage.open(io.BytesIO(png)).size


def shown_pixels(view):
    return np.asarray(PILImage.open(io.BytesIO(view.mark.image.value)))


def test_view_never_ships_more_than_it_shows(frame):
    view = ImageView(frame.image, width=300, height=260)
    assert view.wait_idle(30)
    pw, ph = view.plot_size
    w, h = png_size(view.mark.image.value)
    assert w <= pw and h <= ph
    assert view.shown.factor > 1  # 512 px into ~250: reduced
    # zoom in until one image pixel per screen pixel or more: full resolution
    view.zoom(4.0)
    assert view.wait_idle(30)
    assert view.shown.factor == 1
    x0, x1, y0, y1 = view.shown.region
    assert (x1 - x0) <= pw and (y1 - y0) <= ph
    view.close()


def test_view_reuses_its_image_models(frame):
    """New pictures go through two alternating image models: none made, none left behind."""
    from ipywidgets.widgets.widget import _instances

    view = ImageView(frame.image, width=300, height=260)
    assert view.wait_idle(30)
    models = set(_instances)
    shown = set()
    for i, stretch in enumerate(["sqrt", "log", "asinh", "linear", "sqrt", "log"]):
        view.stretch = stretch
        view.zoom(1.5 if i % 2 else 1 / 1.5)
        assert view.wait_idle(30)
        shown.add(view.mark.image.model_id)
        # the mark shows the newest picture, at its extent
        assert view.mark.image.value == view.shown.png
        assert shown_pixels(view).shape[:2] == (view.shown.height, view.shown.width)
        ex0, ex1, ey0, ey1 = view.shown.extent
        assert view.mark.x.tolist() == [ex0, ex1] and view.mark.y.tolist() == [ey0, ey1]
    assert view.renders >= 7
    assert len(shown) == 2
    assert set(_instances) == models
    view.close()


def test_navigation_moves_the_scales_with_the_new_picture(frame):
    """zoom/pan: the new range at once in view_range, on the scales with its picture."""
    view = ImageView(frame.image, width=300, height=260)
    assert view.wait_idle(30)
    seen = []
    view.x_scale.observe(lambda ch: seen.append((ch["name"], view.shown.extent)),
                         names=["min", "max"])
    before = view.view_range
    view.zoom(4.0)
    x0, x1, y0, y1 = view.view_range
    assert np.isclose(x1 - x0, (before[1] - before[0]) / 4)
    view.pan(10, -5)
    target = view.view_range
    assert np.allclose(target, (x0 + 10, x1 + 10, y0 - 5, y1 - 5))
    assert view.wait_idle(30)
    scales = (view.x_scale.min, view.x_scale.max, view.y_scale.min, view.y_scale.max)
    assert np.allclose(scales, target) and view.view_range == scales
    ex0, ex1, ey0, ey1 = view.shown.extent  # the picture covers the range
    assert ex0 <= target[0] and ex1 >= target[1] and ey0 <= target[2] and ey1 >= target[3]
    assert seen  # the scales moved
    # a move of the scales from the browser (mouse pan) wins over nothing pending
    with view.x_scale.hold_sync():
        view.x_scale.min, view.x_scale.max = target[0] + 3, target[1] + 3
    assert view.view_range[:2] == (target[0] + 3, target[1] + 3)
    assert view.wait_idle(30)
    assert view.shown.extent[0] <= target[0] + 3
    # a drag in the browser while a kernel zoom is on its way: the drag wins, and no
    # picture moves the scales back
    view.zoom(2.0)
    for k in range(1, 6):
        with view.x_scale.hold_sync():
            view.x_scale.min, view.x_scale.max = target[0] + 3 + k, target[1] + 3 + k
    assert view.wait_idle(30)
    assert (view.x_scale.min, view.x_scale.max) == (target[0] + 8, target[1] + 8)
    assert view.view_range[:2] == (target[0] + 8, target[1] + 8)
    view.close()


def test_display_settings_do_not_reprocess(builder):
    assert builder.wait_idle(60)
    builder.add_stage("background_subtraction", box_size=32)
    assert builder.wait_idle(60)
    runs = dict(builder.pipeline.runs)
    before = shown_pixels(builder.view).copy()
    n = builder.view.renders
    builder.view.stretch = "asinh"
    builder.view.colormap = "viridis"
    builder.view.interval = 99.5
    assert builder.wait_idle(30)
    assert builder.view.renders > n
    assert dict(builder.pipeline.runs) == runs
    after = shown_pixels(builder.view)
    assert after.shape == before.shape and not np.array_equal(after, before)
    with pytest.raises(InputError, match="stretch must be one of"):
        builder.view.stretch = "fancy"
    with pytest.raises(InputError, match="colormap"):
        builder.view.colormap = "no_such_map"
    with pytest.raises(InputError, match="vmin < vmax"):
        builder.view.interval = (5, 1)
    assert builder.view.stretch == "asinh"


def test_slider_changes_image_and_overlay(builder):
    builder.add_stage("background_subtraction", box_size=32)
    det = builder.add_stage("source_detection", threshold_sigma=10.0, fwhm=2.5)
    assert builder.wait_idle(60)
    n_high = len(builder.result.catalog)
    assert n_high > 0
    assert len(builder.view.sources.x) == n_high  # one marker per row
    # move the detection slider the way a user does: through the control
    slider = det.controls["threshold_sigma"].widget
    slider.value = 4.0
    assert builder.wait_idle(60)
    assert builder.pipeline.params(1)["threshold_sigma"] == 4.0
    n_low = len(builder.result.catalog)
    assert n_low > n_high
    assert len(builder.view.sources.x) == n_low
    # the background slider changes the image
    before = builder.result.image.copy()
    builder.panels[0].controls["box_size"].widget.value = 64
    assert builder.wait_idle(60)
    assert not np.array_equal(before, builder.result.image)
    assert "ran in" in builder.panels[0].status_text and "from the cache" not in \
        builder.panels[0].status_text


def test_bad_value_shows_message_and_keeps_chain(builder):
    panel = builder.add_stage("background_subtraction", box_size=32)
    assert builder.wait_idle(60)
    good = builder.result
    ctrl = panel.controls["box_size"]
    ctrl.text.value = "5000"  # typed into the exact-value box
    assert "box_size must be between" in ctrl.error_text
    assert builder.pipeline.params(0)["box_size"] == 32
    ctrl.text.value = "700"  # in the schema, but larger than the 512x512 image
    assert "512x512" in ctrl.error_text
    ctrl.text.value = "abc"
    assert "box_size must be an integer" in ctrl.error_text
    assert builder.wait_idle(30)
    assert builder.result is good and builder.pipeline.params(0)["box_size"] == 32
    ctrl.text.value = "48"
    assert builder.wait_idle(60)
    assert ctrl.error_text == "" and builder.pipeline.params(0)["box_size"] == 48
    with pytest.raises(InputError):
        builder.set_params(0, filter_size=4)  # must be odd
    assert "odd" in panel.controls["filter_size"].error_text


def test_table_and_view_selection_both_ways(builder):
    builder.add_stage("background_subtraction", box_size=32)
    builder.add_stage("source_detection", threshold_sigma=6.0, fwhm=2.5)
    assert builder.wait_idle(60)
    table = builder.catalog_table
    assert len(table.list.options) == len(builder.result.catalog)
    # click a marker (as the mouse does) -> the row is selected
    x, y = builder.view._catalog_xy()
    builder.view._on_mouse({"event": "click", "domain": {"x": x[3] + 0.4, "y": y[3] - 0.3}})
    assert builder.view.selected == [3] and table.selected == [3]
    assert builder.view.sources.selected == [3]
    # select a row in the table -> the marker is selected and the view centres on it
    table.list.value = (5,)
    assert builder.view.sources.selected == [5]
    x0, x1, y0, y1 = builder.view.view_range
    assert abs((x0 + x1) / 2 - x[5]) < 1 and abs((y0 + y1) / 2 - y[5]) < 1
    # sorting keeps identities
    table.sort_by.value = "flux"
    table.descending.value = True
    first = table.list.options[0][1]
    assert builder.result.catalog["flux"][first] == np.nanmax(builder.result.catalog["flux"])


def test_remove_reorder_enable(builder):
    builder.add_stage("background_subtraction", box_size=32)
    builder.add_stage("noise_reduction", sigma=2.0)
    builder.add_stage("statistics")
    assert builder.wait_idle(60)
    runs = builder.pipeline.runs["background_subtraction"]
    builder.enable_stage(1, False)
    assert builder.wait_idle(60)
    np.testing.assert_array_equal(builder.result.output_of(1).data,
                                  builder.result.output_of(0).data)
    builder.move_stage(2, 0)
    assert builder.wait_idle(60)
    assert [p.name for p in builder.panels] == ["statistics", "background_subtraction",
                                                "noise_reduction"]
    builder.remove_stage(0)
    assert builder.wait_idle(60)
    assert [s.name for s in builder.pipeline.stages] == ["background_subtraction",
                                                         "noise_reduction"]
    assert builder.pipeline.runs["background_subtraction"] == runs  # never re-ran
    with pytest.raises(InputError, match="needs a catalog"):
        builder.add_stage("aperture_photometry")
    assert len(builder.panels) == 2


def test_exports_open_in_astropy_and_regions(builder, tmp_path):
    from regions import Regions

    from jwst_widgets.io import read_provenance
    builder.add_stage("background_subtraction", box_size=32)
    builder.add_stage("source_detection", threshold_sigma=6.0, fwhm=2.5)
    builder.add_stage("aperture_photometry")
    assert builder.wait_idle(60)
    n = len(builder.result.catalog)
    fits_path = builder.export_fits(tmp_path / "out.fits")
    ecsv = builder.export_catalog(tmp_path / "cat.ecsv")
    reg = builder.export_catalog(tmp_path / "cat.reg", format="ds9")
    png = builder.export_png(tmp_path / "view.png")
    recipe = builder.export_recipe(tmp_path / "recipe.json")
    assert len(Table.read(ecsv)) == n
    assert len(Regions.read(reg, format="ds9")) == n
    with open(png, "rb") as fh:
        assert png_size(fh.read()) == png_size(builder.view.mark.image.value)
    prov = read_provenance(fits_path)
    assert [s["stage"] for s in prov["recipe"]["stages"]] == [
        "background_subtraction", "source_detection", "aperture_photometry"]
    # load the recipe back into a fresh builder: the same catalog
    other = PipelineBuilder(builder.image)
    other.load_recipe(recipe)
    assert other.wait_idle(60)
    assert len(other.result.catalog) == n
    with open(recipe) as fh:
        assert json.load(fh)["stages"] == builder.to_recipe()["stages"]
    other.close()


def test_export_panel_buttons(builder, tmp_path):
    builder.add_stage("background_subtraction", box_size=32)
    assert builder.wait_idle(60)
    panel = builder.export_panel
    panel.folder.value = str(tmp_path)
    panel.stem.value = "mine"
    panel.buttons["fits"].click()
    panel.buttons["recipe"].click()
    panel.buttons["ecsv"].click()  # no catalog: a message, no file
    assert (tmp_path / "mine.fits").exists() and (tmp_path / "mine_recipe.json").exists()
    assert not (tmp_path / "mine_catalog.ecsv").exists()
    assert "no catalog" in panel.message.value


def test_loader_errors_are_shown(builder, tmp_path):
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not fits" * 100)
    builder.path.value = str(bad)
    builder._guard_load(str(bad))
    assert "not a FITS file" in builder.load_status.value
    assert builder.image is not None  # the previous image is kept
    builder.load("hst_abell2744")
    assert builder.wait_idle(60)
    assert builder.image.data.shape == (400, 400)


def test_statistics_panel(builder):
    assert builder.wait_idle(60)
    whole = builder.stats_panel.compute("image")
    builder.view.zoom(4)
    assert builder.wait_idle(30)
    box = builder.stats_panel.compute("view")
    assert box["n_pixels"] < whole["n_pixels"]
    assert "biweight" in builder.stats_panel.output.value


def test_compare_split_follows_zoom(builder):
    builder.add_stage("background_subtraction", box_size=32)
    assert builder.wait_idle(60)
    builder.compare(-1, mode="split")
    view = builder.compare_view
    assert view is not None and view.wait_idle(30)
    builder.view.zoom(2)
    assert builder.wait_idle(30) and view.wait_idle(30)
    assert np.allclose(view.view_range, builder.view.view_range)
    np.testing.assert_array_equal(view.image.data, builder.image.data)
    builder.compare(None)
    assert builder.compare_box.children == ()


def test_fast_hands_end_on_the_last_values(builder, frame):
    builder.add_stage("background_subtraction", box_size=32)
    det = builder.add_stage("source_detection", threshold_sigma=5.0, fwhm=2.5)
    assert builder.wait_idle(60)
    slider = det.controls["threshold_sigma"].widget
    rng = np.random.default_rng(0)
    for v in rng.uniform(3.0, 20.0, 200):
        slider.value = round(float(v), 1)
    slider.value = 7.3
    assert builder.wait_idle(120)
    fresh = jwst_widgets.Pipeline([("background_subtraction", {"box_size": 32}),
                                   ("source_detection", {"threshold_sigma": 7.3, "fwhm": 2.5})])
    expected = fresh.run(frame.image)
    assert len(builder.result.catalog) == len(expected.catalog)
    np.testing.assert_array_equal(builder.view.sources.x,
                                  np.asarray(expected.catalog["x_centroid"], float))


def test_segmentation_overlay_and_colour_by(builder):
    builder.add_stage("background_subtraction", box_size=32)
    builder.add_stage("source_detection", method="segmentation", threshold_sigma=3.0,
                      fwhm=2.0, n_pixels=8)
    assert builder.wait_idle(60)
    seg = builder.result.segmentation
    assert seg is not None and seg.max() == len(builder.result.catalog) > 0
    assert not builder.view.segment_mark.visible
    builder.show_segments.value = True
    assert builder.wait_idle(30)
    assert builder.view.segment_mark.visible
    overlay = np.asarray(PILImage.open(io.BytesIO(builder.view.segment_mark.image.value))
                         .convert("RGBA"))
    assert overlay.shape[:2] == shown_pixels(builder.view).shape[:2]
    assert (overlay[..., 3] > 0).any() and (overlay[..., 3] == 0).any()
    # markers coloured by a column of the catalog
    builder.color_by.value = "area"
    np.testing.assert_allclose(builder.view.sources.color,
                               np.asarray(builder.result.catalog["area"], float))
    # markers sized by the detection: bigger segments, bigger markers
    sizes = np.asarray(builder.view.sources.size)
    big = np.argmax(np.asarray(builder.result.catalog["semimajor_axis"]))
    assert sizes[big] == sizes.max()


def test_cursor_readout_pixel_sky_value_unit(builder, frame):
    assert builder.wait_idle(60)
    builder.view._on_mouse({"event": "mousemove", "domain": {"x": 100.2, "y": 200.4}})
    text = builder.view.readout.value
    value = frame.image.data[200, 100]
    assert "x 100, y 200" in text and "MJy / sr" in text and f"{value:.5g}" in text
    ra, dec = frame.image.wcs.all_pix2world([[100.2, 200.4]], 0)[0]
    assert f"{ra:.6f}" in text
    builder.view._on_mouse({"event": "mousemove", "domain": {"x": -50, "y": 10}})
    assert "outside" in builder.view.readout.value


def test_blink_alternates_between_two_outputs(builder):
    builder.add_stage("background_subtraction", box_size=32)
    assert builder.wait_idle(60)
    builder.compare(-1, mode="blink")
    assert builder._blink.playing
    builder._blink.value = 1  # the front end's timer ticks
    assert builder.wait_idle(30)
    np.testing.assert_array_equal(builder.view.image.data, builder.image.data)
    builder._blink.value = 0
    assert builder.wait_idle(30)
    np.testing.assert_array_equal(builder.view.image.data, builder.result.image)
    builder.compare(None)
    assert not builder._blink.playing


def test_histogram_limits_drawn_and_settable(builder):
    assert builder.wait_idle(60)
    hist = builder.histogram
    lo, hi = builder.view.limits
    assert hist.lines.x[0][0] == pytest.approx(lo) and hist.lines.x[1][0] == pytest.approx(hi)
    hist.set_limits(lo - 0.01, hi + 0.5)
    assert builder.wait_idle(30)
    assert builder.view.interval == pytest.approx((lo - 0.01, hi + 0.5))
    assert hist.lines.x[1][0] == pytest.approx(hi + 0.5)
    hist.set_limits(3.0, 1.0)
    assert "vmin < vmax" in hist.message.value
    # a brush dragged across the histogram sets the limits too
    hist.brush.selected = [lo, lo + 0.2]
    hist.brush.brushing = False
    hist._on_brush({"new": False})
    assert builder.view.interval == pytest.approx((lo, lo + 0.2))


def test_processing_change_draws_a_preview_first(frame, monkeypatch):
    """A slow chain: the binned preview is drawn first, then the full resolution."""
    from jwst_widgets import Pipeline
    from jwst_widgets.widgets import builder as builder_module

    monkeypatch.setattr(builder_module, "PREVIEW_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(builder_module, "PREVIEW_SIZE", 256)   # 512 px frame: binned 2x2
    chain = [("background_subtraction", {"box_size": 32}), ("noise_reduction", {"sigma": 1.0})]
    b = PipelineBuilder(frame.image, stages=chain, width=400, height=380)
    assert b.wait_idle(60)
    shown = []
    b.view.on_rendered(lambda view: shown.append(view.binning))
    b.set_params(1, sigma=2.0)
    assert b.wait_idle(60)
    assert shown[0] == 2 and shown[-1] == 1
    assert b.preview.image.data.shape == (256, 256)
    headless = Pipeline([chain[0], ("noise_reduction", {"sigma": 2.0})]).run(frame.image)
    np.testing.assert_array_equal(b.result.image.data, headless.image.data)
    np.testing.assert_array_equal(b.view.image.data, headless.image.data)
    b.close()


def test_markers_drawn_over_the_view_selected_in_red(frame):
    """The catalog's circles: a picture over the view, redrawn only when they change."""
    from astropy.table import QTable

    rng = np.random.default_rng(3)
    catalog = QTable({"x_centroid": rng.uniform(20, 490, 40),
                      "y_centroid": rng.uniform(20, 490, 40)})
    view = ImageView(frame.image, width=300, height=260)
    view.set_catalog(catalog)
    assert view.wait_idle(30)
    assert view.marker_mark.visible
    assert list(view.marker_mark.x) == list(view.view_range[:2])

    def colours():
        rgba = np.asarray(PILImage.open(io.BytesIO(view.marker_mark.image.value))
                          .convert("RGBA"))
        assert rgba.shape[:2] == (view.plot_size[1], view.plot_size[0])
        opaque = rgba[rgba[..., 3] > 0][:, :3]
        return ((opaque == (0x39, 0xff, 0x14)).all(axis=1).sum(),
                (opaque == (0xff, 0x30, 0x30)).all(axis=1).sum())
    green, red = colours()
    assert green > 40 * 8 and red == 0
    picture = view.shown
    view.select([7])
    assert view.wait_idle(30)
    assert view.shown is picture              # the image itself is not rendered again
    green2, red2 = colours()
    assert red2 > 8 and green2 < green
    # a display change leaves the markers' picture alone
    shown = view.marker_mark.image
    view.stretch = "sqrt"
    assert view.wait_idle(30)
    assert view.marker_mark.image is shown
    # hidden with the catalog overlay
    view.state.show_catalog = False
    assert view.wait_idle(30)
    assert not view.marker_mark.visible
    view.close()


def test_catalog_table_cells_are_each_value_formatted():
    """The table formats a column at a time; each cell is what the value alone gives."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import MaskedColumn, QTable

    from jwst_widgets.widgets.catalog import CatalogTable, _fmt

    rng = np.random.default_rng(5)
    n = 40
    flux = rng.lognormal(0, 4, n)
    flux[3] = np.nan
    catalog = QTable({
        "id": np.arange(1, n + 1),
        "x_centroid": rng.uniform(0, 2048, n).astype(np.float32),
        "flux": flux * u.MJy / u.sr,
        "mag_ab": MaskedColumn(rng.uniform(20, 30, n), mask=rng.random(n) < 0.3),
        "flags": rng.integers(0, 3, n),
        "sky_centroid": SkyCoord(rng.uniform(0, 360, n) * u.deg, rng.uniform(-90, 90, n) * u.deg),
        "peak": rng.normal(0, 1e-4, n),
    })
    table = CatalogTable(catalog)
    table.sort_by.value = "flux"
    width = 13
    order = table.order()
    assert len(table.list.options) == n and [o[1] for o in table.list.options] == order.tolist()
    for text, i in table.list.options:
        expected = "".join(_fmt(catalog[i][c])[:width - 1].ljust(width) for c in table.columns)
        assert text == expected
    assert any("--" in text for text, _ in table.list.options)   # masked magnitudes
    table.close()
    # no column of the usual names: the first ones, sky coordinates and text included
    plain = QTable({"name": ["a", "b"], "where": catalog["sky_centroid"][:2]})
    table = CatalogTable(plain)
    for text, i in table.list.options:
        expected = "".join(_fmt(plain[i][c])[:width - 1].ljust(width) for c in ("name", "where"))
        assert text == expected and "," in text
    table.close()
