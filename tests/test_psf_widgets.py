"""The PSF panel driven in the kernel: set values, wait, assert on what is shown."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from jwst_widgets import PipelineBuilder
from jwst_widgets.datasets import nircam_like
from jwst_widgets.widgets.psf_panel import PSFPanel


@pytest.fixture(scope="module")
def frame():
    return nircam_like((512, 512), seed=2, n_stars=250, n_galaxies=40)


@pytest.fixture
def setup(frame):
    b = PipelineBuilder(frame.image, width=400, height=380)
    b.add_stage("background_subtraction", box_size=64)
    b.add_stage("source_detection", threshold_sigma=5.0, fwhm=2.2)
    panel = PSFPanel(b)
    assert panel.wait_idle(180)
    panel.refresh()
    yield b, panel
    panel.close()
    b.close()


def shown(view):
    return np.asarray(PILImage.open(io.BytesIO(view.mark.image.value)))


def stage_products(b, panel):
    return b.result.stages[panel.stage_index].products


def test_panel_shows_the_psf_its_stars_and_the_fit(setup):
    b, panel = setup
    assert panel.stage_index == 2
    res = panel.result
    assert res is not None and len(res.catalog) > 100
    assert len(panel.star_mark.x) == len(res.psf.stars) >= 5
    assert np.allclose(panel.star_mark.x, res.psf.stars["x"])
    png = panel.psf_mark.image.value
    assert PILImage.open(io.BytesIO(png)).size[0] > 20
    assert "FWHM" in panel.psf_figure.title
    assert len(panel.profile_line.y) > 10 and panel.profile_line.y[0] == pytest.approx(1.0)
    assert len(panel.compare_mark.x) > 50
    assert panel.progress.value == 1.0
    # fit columns reach the catalog table
    assert "flux_fit" in b.catalog_table.columns and "qfit" in b.catalog_table.columns
    flagged = np.asarray(res.catalog["flags"]) != 0
    assert len(panel.flag_mark.x) == flagged.sum()


def test_display_settings_never_refit(setup):
    b, panel = setup
    runs = dict(b.pipeline.runs)
    before = shown(b.view).copy()
    panel.show("residual")
    assert b.wait_idle(60)
    residual = stage_products(b, panel)["residual"]
    assert np.array_equal(b.view.image.data, residual, equal_nan=True)
    after = shown(b.view)
    assert after.shape == before.shape and not np.array_equal(after, before)
    panel.show("model")
    assert b.wait_idle(60)
    assert np.array_equal(b.view.image.data, stage_products(b, panel)["model"])
    panel._blink.value = 1  # a blink step: the residual
    assert np.array_equal(b.view.image.data, residual, equal_nan=True)
    panel._blink.value = 0
    assert not np.array_equal(b.view.image.data, residual, equal_nan=True)
    b.view.stretch = "asinh"
    assert b.wait_idle(60)
    assert dict(b.pipeline.runs) == runs
    with pytest.raises(Exception, match="what must be one of"):
        panel.show("sky")


def test_dropping_a_psf_star_rebuilds_the_psf(setup):
    b, panel = setup
    runs = dict(b.pipeline.runs)
    old_ids = panel.psf_star_ids
    old_psf = np.array(panel.result.psf.image)
    panel.show("residual")
    assert b.wait_idle(60)
    old_residual = np.array(b.view.image.data)
    panel.toggle_star(old_ids[0])
    assert panel.wait_idle(180)
    panel.refresh()
    assert old_ids[0] not in panel.psf_star_ids
    assert b.pipeline.params(2)["exclude_stars"] == str(old_ids[0])
    assert not np.array_equal(panel.result.psf.image, old_psf)
    assert b.pipeline.runs["psf_photometry"] == runs["psf_photometry"] + 1
    assert b.pipeline.runs["source_detection"] == runs["source_detection"]
    assert panel.showing == "residual"
    assert not np.array_equal(b.view.image.data, old_residual, equal_nan=True)
    # and back: a click with editing on adds it again
    panel.editing = True
    row = int(np.flatnonzero(np.asarray(b.view.catalog["id"]) == old_ids[0])[0])
    b.view.select([row])
    assert panel.wait_idle(180)
    panel.refresh()
    assert old_ids[0] in panel.psf_star_ids
    assert b.pipeline.params(2)["include_stars"] == str(old_ids[0])


def test_fit_parameter_refits_only_this_stage_and_previews(setup):
    b, panel = setup
    runs = dict(b.pipeline.runs)
    psf = panel.result.psf
    b.view.zoom(4.0)
    panel.set_params(fit_shape=7)
    assert panel.wait_idle(180)
    panel.refresh()
    assert b.pipeline.runs["psf_photometry"] == runs["psf_photometry"] + 1
    assert b.pipeline.runs["background_subtraction"] == runs["background_subtraction"]
    assert b.pipeline.runs["source_detection"] == runs["source_detection"]
    assert panel.result.psf is psf  # the PSF was not rebuilt
    assert panel.result.catalog.meta["fit_shape"] == 7
    # a preview fits the visible region only
    panel.preview(wait=True)
    prev = panel.preview_result
    assert prev is not None and 0 < len(prev.catalog) < len(panel.result.catalog)
    x0, x1, y0, y1 = b.view.view_range
    assert (np.asarray(prev.catalog["x_init"]) >= x0 - 1).all()
    assert (np.asarray(prev.catalog["x_init"]) <= x1 + 1).all()


def test_clicking_the_comparison_selects_everywhere(setup):
    b, panel = setup
    k = 3
    row = int(panel.compare_rows[k])
    panel.compare_mark.selected = [k]
    assert b.view.selected == [row]
    assert b.catalog_table.selected == [row]
    rows, m_ap, m_psf = panel.aperture_comparison()
    assert len(rows) == len(m_ap) == len(m_psf)
    bright = m_psf < np.percentile(m_psf, 30)
    assert np.median(np.abs(m_psf - m_ap)[bright]) < 0.05  # the same sources, the same fluxes
