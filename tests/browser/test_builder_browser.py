"""The pipeline builder in a real browser: JupyterLab and Voila on Chromium.

The product notebook `notebooks/pipeline_builder.ipynb` is run as a user runs
it; then the background and detection sliders are moved with the keyboard,
a bad value is typed, and the page is checked for errors and outside asks.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from browser_page import (assert_no_errors, element_pixels, kernel, open_notebook, open_voila,
                          run_all, save_screenshot, wait_until)

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "pipeline_builder.ipynb"

MAIN_IMAGE = ".jw-image-figure image[href^='blob:']"
FIGURE = ".jw-image-figure"


def _href(page):
    return page.locator(MAIN_IMAGE).first.get_attribute("href", timeout=60_000)


def _selected_ring(page):
    """Pixels of the selected source's red ring on screen."""
    rgba = element_pixels(page.locator(FIGURE).first).astype(int)
    r, g, b = rgba[..., 0], rgba[..., 1], rgba[..., 2]
    return int(np.count_nonzero((r > 200) & (r - np.maximum(g, b) > 120)))


def _markers(page):
    """Pixels of the source markers' green on screen (they are drawn on a picture in the
    kernel, not as SVG elements: what the user sees is all there is to count)."""
    rgba = element_pixels(page.locator(FIGURE).first).astype(int)
    r, g, b = rgba[..., 0], rgba[..., 1], rgba[..., 2]
    return int(np.count_nonzero((g > 170) & (g - np.maximum(r, b) > 100)))


def _param(page, stage, name):
    return page.locator(f".jw-stage-{stage} .jw-param-{name}").first


def _press(page, stage, name, key, times=1):
    handle = _param(page, stage, name).locator(".noUi-handle")
    handle.focus(timeout=30_000)
    for _ in range(times):
        handle.press(key)


def _wait_new_image(page, before, timeout=90_000):
    wait_until(page, lambda: _href(page) != before, timeout=timeout,
               message="the image to change")


def _wait_idle_builder(page, timeout=90_000):
    """Wait until no stage says it is running (the chain finished)."""
    wait_until(page, lambda: page.locator(".jw-stage-status:has-text('running')").count() == 0
               and page.locator(".jw-stage-status:has-text('preview')").count() == 0,
               timeout=timeout, message="the chain to finish")


def _exercise(page, tag):
    builder = page.locator(".jw-pipeline-builder").first
    builder.wait_for(timeout=120_000)
    page.locator(MAIN_IMAGE).first.wait_for(timeout=120_000)
    _wait_idle_builder(page)
    save_screenshot(builder, f"{tag}-builder-initial")
    n_before = wait_until(page, lambda: _markers(page), timeout=60_000,
                          message="the detected sources drawn on the view")

    # background slider: the image changes
    before = _href(page)
    _press(page, "background_subtraction", "box_size", "PageUp")
    _wait_new_image(page, before)
    _wait_idle_builder(page)
    box = _param(page, "background_subtraction", "box_size").locator("input[type=text]")
    assert box.input_value() != "64"

    # detection slider up: fewer markers, and the image is redrawn
    before = _href(page)
    _press(page, "source_detection", "threshold_sigma", "PageUp", times=3)
    wait_until(page, lambda: _markers(page) < n_before, timeout=90_000,
               message="fewer sources at a higher threshold")
    _wait_idle_builder(page)
    save_screenshot(page.locator(".jw-image-view").first, f"{tag}-view-after-sliders")

    # a bad value typed into the exact-value box: its message, and the chain keeps working
    box.fill("5000")
    box.press("Enter")
    error = _param(page, "background_subtraction", "box_size").locator("xpath=..") \
        .locator(".jw-error")
    wait_until(page, lambda: "box_size must be between" in error.first.inner_text(),
               timeout=30_000, message="the error message beside box_size")
    save_screenshot(page.locator(".jw-stage-background_subtraction").first,
                    f"{tag}-bad-value")
    n_now = _markers(page)
    before = _href(page)
    _press(page, "source_detection", "threshold_sigma", "PageDown", times=3)
    wait_until(page, lambda: _markers(page) > n_now, timeout=90_000,
               message="the chain to keep working after a bad value")


def _open_hidden_tabs(page, tag):
    """The tabs not shown first are filled by the kernel when clicked, and work."""
    def tab(title):
        return page.locator(".widget-tab .lm-TabBar-tab", has_text=title).first

    def button(text):
        return page.locator(f".widget-tab button:has-text('{text}')").first

    tab("Statistics").click()
    button("compute").click(timeout=30_000)
    wait_until(page, lambda: "biweight" in page.locator(".jw-statistics").first.inner_text(),
               timeout=30_000, message="statistics computed in the Statistics tab")
    tab("Export").click()
    button("DS9 regions").wait_for(state="visible", timeout=30_000)
    tab("MAST").click()
    button("Search").wait_for(state="visible", timeout=30_000)
    save_screenshot(page.locator(".widget-tab").first, f"{tag}-mast-tab")
    tab("Apply to files").click()
    button("MAST downloads").wait_for(state="visible", timeout=30_000)
    save_screenshot(page.locator(".widget-tab").first, f"{tag}-apply-to-files-tab")
    tab("Catalog").click()
    page.locator(".jw-catalog-rows select").first.wait_for(state="visible", timeout=30_000)


def _click_a_source(page, row=3):
    """Centre the view on a source, click the middle of the plot: its row is selected in
    the view and the catalog table (the click passes through the markers' picture)."""
    margin = json.loads(kernel(page, f"""
import json
from jwst_widgets.pipeline.outputs import catalog_xy
assert builder.wait_idle(60)
_x, _y = catalog_xy(builder.result.catalog)
builder.view.select([], notify=True)
builder.view.center_on(_x[{row}], _y[{row}])
print(json.dumps(builder.view.figure.fig_margin))
"""))
    page.wait_for_timeout(500)   # the scales reach the page
    box = page.locator(FIGURE).first.bounding_box()
    x = box["x"] + margin["left"] + (box["width"] - margin["left"] - margin["right"]) / 2
    y = box["y"] + margin["top"] + (box["height"] - margin["top"] - margin["bottom"]) / 2
    page.mouse.click(x, y)
    wait_until(page, lambda: kernel(page, "print(builder.view.selected, "
                                    "builder.catalog_table.selected)").split() == [f"[{row}]"] * 2,
               timeout=30_000, message=f"a click on source {row} selects its row")
    wait_until(page, lambda: _selected_ring(page) > 8, timeout=30_000,
               message="the selected source ringed in red on screen")
    save_screenshot(page.locator(".jw-image-view").first, "lab-source-clicked")


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_builder_in_jupyterlab(jupyterlab_server, make_page):
    lab_page = make_page(viewport={"width": 1400, "height": 1000})
    rel = jupyterlab_server.add(NOTEBOOK)
    open_notebook(lab_page, jupyterlab_server, rel)
    run_all(lab_page, timeout=300_000)
    _exercise(lab_page, "lab")
    _click_a_source(lab_page)
    _open_hidden_tabs(lab_page, "lab")  # last: the tabs scroll the view out of sight
    assert_no_errors(lab_page)


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_builder_in_voila(voila_server, make_page):
    page = make_page(viewport={"width": 1400, "height": 1000})
    server = voila_server(NOTEBOOK)
    open_voila(page, server, timeout=300_000)
    _exercise(page, "voila")
    _open_hidden_tabs(page, "voila")
    assert_no_errors(page)
