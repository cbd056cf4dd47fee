"""The harness itself, on a small notebook: a slider that replaces a bqplot image.

Runs the same checks in JupyterLab and in Voila: the figure renders, a key
press on the slider reaches the kernel and the browser shows the new image
(its pixels equal what the kernel made), nothing broke, and the page asked
for nothing outside the machine.
"""

import time
from pathlib import Path

import numpy as np
import pytest

from browser_page import (
    BQPLOT_IMAGE,
    assert_no_errors,
    element_pixels,
    image_href,
    image_pixels,
    log_of,
    open_notebook,
    open_voila,
    press_slider,
    run_all,
    save_screenshot,
    wait_image_changed,
    wait_pixels_changed,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SMOKE = Path(__file__).parent / "notebooks" / "smoke.ipynb"


def expected_frame(step, size=128):
    """The notebook's ``frame_png(step)`` as a uint8 array (the truth)."""
    y, x = np.mgrid[:size, :size]
    cx = size * (0.15 + 0.07 * step)
    cy = size * (0.85 - 0.07 * step)
    spot = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (size / 12) ** 2))
    return (255 * spot).astype(np.uint8)


def assert_shows_step(page, step):
    rgba = image_pixels(page)
    assert rgba.shape == (128, 128, 4)
    assert np.all(rgba[..., 3] == 255)
    np.testing.assert_array_equal(rgba[..., 0], expected_frame(step))
    assert page.get_by_text(f"step {step}", exact=True).is_visible()


def check_slider_changes_image(page, name):
    figure = page.locator(".bqplot").first
    page.wait_for_selector(BQPLOT_IMAGE)
    assert_shows_step(page, 0)
    save_screenshot(figure, f"smoke-{name}-step0")

    before = image_href(page)
    press_slider(page, "ArrowRight")
    wait_image_changed(page, before)
    assert_shows_step(page, 1)

    # The same, seen on screen: the figure's pixels change with the next step.
    shown = element_pixels(figure)
    press_slider(page, "ArrowRight")
    wait_pixels_changed(figure, shown)
    page.wait_for_function("() => document.body.innerText.includes('step 2')")
    assert_shows_step(page, 2)
    save_screenshot(figure, f"smoke-{name}-step2")
    assert_no_errors(page)


def test_smoke_jupyterlab(jupyterlab_server, lab_page, record_timing):
    relpath = jupyterlab_server.add(SMOKE, "harness/smoke.ipynb")
    started = time.monotonic()
    open_notebook(lab_page, jupyterlab_server, relpath)
    record_timing("JupyterLab page: open notebook until kernel idle", time.monotonic() - started)
    run_all(lab_page)
    lab_page.wait_for_selector(BQPLOT_IMAGE)
    record_timing("JupyterLab page: open, run all, figure shown", time.monotonic() - started)
    check_slider_changes_image(lab_page, "jupyterlab")
    assert log_of(lab_page).outside == []


def test_smoke_voila(voila_server, page, record_timing):
    server = voila_server(SMOKE)
    started = time.monotonic()
    open_voila(page, server)
    page.wait_for_selector(BQPLOT_IMAGE)
    record_timing("Voila page: open until figure shown", time.monotonic() - started)
    check_slider_changes_image(page, "voila")
    # Voila asked for FontAwesome on a CDN: it was aborted, and it is the only outside ask.
    outside = log_of(page).outside
    assert outside and all("fontawesome" in url for url in outside)
