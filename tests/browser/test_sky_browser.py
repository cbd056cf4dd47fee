"""The sky view in Chromium: Aladin Lite from the local copy, and the message when it cannot load.

1. JupyterLab, ``aladin_lite="local"``: the browser gets Aladin Lite from the
   kernel (nothing is asked of esm.sh); the sky survey's requests are
   answered by a stub (a flat tile), so nothing leaves the machine. On
   screen, the footprint and the sources are drawn where Aladin Lite's own
   view WCS puts the image's corners and the catalog's RA/Dec; a click on a
   source on the sky selects its row in the catalog table and in the image
   view; a row chosen in the catalog table is highlighted on the sky, which
   moves to it.
2. Voila and JupyterLab, ``aladin_lite="cdn"`` with esm.sh unreachable: the
   view says in words that Aladin Lite could not be loaded and what to do,
   and the rest of the builder works.

Aladin Lite comes from the npm package, fetched once into the cache
(``python -m jwst_widgets.aladin_offline fetch``; the fixture does it when
it is missing and the npm registry can be reached).
"""

import io
import json
import os
import re
import time

import nbformat
import numpy as np
import pytest

from browser_page import (BQPLOT_IMAGE, assert_no_errors, element_pixels, kernel, log_of,
                          open_notebook, open_voila, run_all, save_screenshot, wait_until)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SURVEY_HOSTS = re.compile(r"^https://[^/]*\.unistra\.fr/")
ESM_SH = r"^https://esm\.sh/"

BUILDER_CELL = """\
import json
import numpy as np
from jwst_widgets import PipelineBuilder
from jwst_widgets.widgets.sky import add_sky_tab

builder = PipelineBuilder("hst_abell2744", width=420, height=400, stages=[
    ("background_subtraction", {"box_size": 40}),
    ("source_detection", {"threshold_sigma": 5.0})])
tab = add_sky_tab(builder, aladin_lite=%(mode)r, height=360)
assert builder.wait_idle(120)
builder.tabs.selected_index = len(builder.tabs.children) - 1   # show the sky
sky = tab.sky
builder
"""

# Canvas positions (x right, y down) of the sources and of points along the
# footprint's edges, from Aladin Lite's own view WCS as its front end reported it.
SCENE_CODE = """\
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
_view = dict(sky.aladin._wcs)
_w = WCS(_view)
def _canvas(ra, dec):
    x, y = _w.world_to_pixel(SkyCoord(np.atleast_1d(ra), np.atleast_1d(dec), unit="deg"))
    return np.asarray(x, float).tolist(), (_view["NAXIS2"] - 1 - np.asarray(y, float)).tolist()
_c = sky.corners
_t = np.linspace(0.05, 0.95, 19)
_edge = np.concatenate([_c[i] + _t[:, None] * (_c[(i + 1) % 4] - _c[i]) for i in range(4)])
print(json.dumps({
    "size": [_view["NAXIS1"], _view["NAXIS2"]],
    "rows": [int(r) for r in sky.table["row"]],
    "ids": [int(v) for v in builder.result.catalog["id"]],
    "sources": _canvas(sky.table["ra"].value, sky.table["dec"].value),
    "edges": _canvas(_edge[:, 0], _edge[:, 1]),
    "target": [sky.aladin.target.ra.deg, sky.aladin.target.dec.deg],
}))
"""


# -------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def aladin_lite_copy():
    """The local copy of Aladin Lite (fetched from the npm registry when missing)."""
    from jwst_widgets import aladin_offline
    from jwst_widgets.errors import InputError

    path = aladin_offline.local_copy()
    if path is None:
        try:
            path = aladin_offline.fetch(timeout=60)
        except InputError as exc:
            message = ("no local copy of Aladin Lite and it cannot be fetched "
                       f"(python -m jwst_widgets.aladin_offline fetch): {exc}")
            if os.environ.get("CI") or os.environ.get("JW_REQUIRE_BROWSER"):
                pytest.fail(message)
            pytest.skip(message)
    return path


def flat_jpeg(size=512, value=(12, 12, 30)):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), value).save(buf, "JPEG")
    return buf.getvalue()


PROPERTIES = "\n".join([
    "creator_did = ivo://jwst-widgets/test/flat", "obs_title = flat test sky",
    "dataproduct_type = image", "hips_version = 1.4", "hips_frame = equatorial",
    "hips_order = 9", "hips_order_min = 0", "hips_tile_width = 512",
    "hips_tile_format = jpeg", "hips_initial_fov = 60", ""])


def stub_survey(page):
    """Answer the sky survey (CDS, unistra.fr): properties and a flat tile; abort the rest.

    Without answers Aladin Lite keeps asking; with them it settles. Aborted
    asks (MOC, all-sky mosaics, MocServer) are logged as outside requests.
    Returns the list of URLs answered.
    """
    jpeg, answered, log = flat_jpeg(), [], log_of(page)
    cors = {"Access-Control-Allow-Origin": "*"}

    def handle(route):
        url = route.request.url
        if url.split("?")[0].endswith("/properties"):
            route.fulfill(status=200, body=PROPERTIES,
                          headers={**cors, "Content-Type": "text/plain"})
        elif "AladinLiteLogger" in url:
            route.fulfill(status=200, body="", headers=cors)
        elif re.search(r"/Norder\d+/Dir\d+/Npix\d+\.jpg$", url.split("?")[0]):
            route.fulfill(status=200, body=jpeg, headers={**cors, "Content-Type": "image/jpeg"})
        else:
            log.outside.append(url)
            route.abort("blockedbyclient")
            return
        answered.append(url)

    page.context.route(SURVEY_HOSTS, handle)
    return answered


def write_notebook(path, source):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))
    return path




def canvas_pixels(page, canvas):
    """What is on screen over Aladin Lite's canvas (all its layers), RGBA (H, W, 4)."""
    from PIL import Image

    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    png = page.screenshot(clip=box, animations="disabled")
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGBA")).astype(int)


def colour_mask(rgba, colour):
    r, g, b = rgba[..., 0], rgba[..., 1], rgba[..., 2]
    if colour == "green":      # sources, #39ff14
        return (g > 150) & (g - np.maximum(r, b) > 80)
    if colour == "cyan":       # footprint, #00e5ff
        return (b > 150) & (g > 130) & (r < 110)
    if colour == "red":        # selection, #ff3030
        return (r > 150) & (r - np.maximum(g, b) > 80)
    raise ValueError(colour)


def near(mask, x, y, radius):
    """True if ``mask`` has a pixel within ``radius`` of (x, y)."""
    h, w = mask.shape
    x0, x1 = max(int(round(x)) - radius, 0), min(int(round(x)) + radius + 1, w)
    y0, y1 = max(int(round(y)) - radius, 0), min(int(round(y)) + radius + 1, h)
    return x0 < x1 and y0 < y1 and bool(mask[y0:y1, x0:x1].any())


def inside(xs, ys, size, margin):
    w, h = size
    return [(x, y) for x, y in zip(xs, ys) if margin <= x < w - margin and margin <= y < h - margin]


def isolated(scene, margin=25, apart=25):
    """Catalog rows whose source is on the canvas and has no other source near it."""
    xs, ys = (np.array(v) for v in scene["sources"])
    w, h = scene["size"]
    rows = []
    for i, row in enumerate(scene["rows"]):
        d = np.hypot(xs - xs[i], ys - ys[i])
        d[i] = np.inf
        if margin <= xs[i] < w - margin and margin <= ys[i] < h - margin and d.min() > apart:
            rows.append((row, xs[i], ys[i]))
    return rows


def settled_scene(page):
    """The scene once Aladin Lite stopped moving (its view WCS is the same twice)."""
    last = [None]

    def stable():
        now = json.loads(kernel(page, SCENE_CODE))
        same = now == last[0]
        last[0] = now
        return now if same else None
    return wait_until(page, stable, timeout=30_000, message="Aladin Lite's view settles")


# ----------------------------------------------------------------------------- tests

def test_sky_view_with_local_aladin_lite_draws_and_selects(jupyterlab_server, lab_page,
                                                           aladin_lite_copy, tmp_path,
                                                           record_timing):
    page = lab_page
    answered = stub_survey(page)
    nb = write_notebook(tmp_path / "sky_local.ipynb", BUILDER_CELL % {"mode": "local"})
    rel = jupyterlab_server.add(nb, "sky/sky_local.ipynb")
    started = time.monotonic()
    open_notebook(page, jupyterlab_server, rel)
    run_all(page, timeout=180_000)
    canvas = page.locator(".jw-sky-view .aladin-catalogCanvas").first
    canvas.wait_for(state="visible", timeout=60_000)

    # The browser reports the footprint and the sources drawn.
    wait_until(page, lambda: {"footprint", "sources"} <= set(json.loads(kernel(
        page, "print(json.dumps(sorted(sky.drawn)))"))), timeout=60_000,
        message="the browser reports the footprint and the sources drawn")
    assert kernel(page, "print(sky.status, sky.source)").split() == ["ready", "local"]
    record_timing("sky view (local Aladin Lite): open, run, footprint and sources drawn",
                  time.monotonic() - started)
    scene = settled_scene(page)
    page.wait_for_timeout(500)       # the last frame after the view stopped
    shot = canvas_pixels(page, canvas)
    save_screenshot(page.locator(".jw-sky-view").first, "sky-local-drawn")
    assert shot.shape[:2] == (scene["size"][1], scene["size"][0])

    # Sources: green marks where the view WCS puts each source, and nowhere else.
    green = colour_mask(shot, "green")
    on_canvas = inside(*scene["sources"], scene["size"], margin=8)
    assert len(on_canvas) >= 10
    missing = [(x, y) for x, y in on_canvas if not near(green, x, y, 9)]
    assert not missing, f"no source mark near {missing} (of {len(on_canvas)})"
    gy, gx = np.nonzero(green)
    sx, sy = (np.array(v) for v in scene["sources"])
    far = np.hypot(gx[:, None] - sx[None, :], gy[:, None] - sy[None, :]).min(axis=1) > 12
    assert far.mean() < 0.02, "green pixels away from every source"

    # Footprint: cyan along the image's edges, where the view WCS puts them.
    cyan = colour_mask(shot, "cyan")
    edge = inside(*scene["edges"], scene["size"], margin=4)
    assert len(edge) >= 10
    on_edge = [near(cyan, x, y, 3) for x, y in edge]
    assert np.mean(on_edge) > 0.9, f"footprint found at {sum(on_edge)} of {len(edge)} points"

    # Sky -> catalog table and image view: click a source on the sky.
    choices = isolated(scene)
    assert len(choices) >= 2
    row, x, y = choices[0]
    canvas.click(position={"x": float(x), "y": float(y)})
    header = page.locator(".jw-sky-header").first
    page.wait_for_function(
        "([el, text]) => el.innerText.includes(text)",
        arg=[header.element_handle(), f"selected: row {row}"], timeout=30_000)
    assert kernel(page, "print(builder.catalog_table.selected, builder.view.selected)") \
        .split() == [f"[{row}]", f"[{row}]"]
    # the catalog table, in the browser, shows that row selected
    page.locator(".widget-tab .lm-TabBar-tab", has_text="Catalog").first.click()
    rows_select = page.locator(".jw-catalog-rows select").first
    rows_select.wait_for(state="visible")
    chosen = rows_select.evaluate(
        "s => Array.from(s.selectedOptions).map(o => o.textContent.trim().split(/\\s+/)[0])")
    assert chosen == [str(scene["ids"][row])]

    # Catalog table -> sky: choose another row; the sky highlights it and goes there.
    other, ox, oy = next(c for c in choices[1:] if np.hypot(c[1] - x, c[2] - y) > 60)
    rows_select.select_option(index=other)
    page.locator(".widget-tab .lm-TabBar-tab", has_text="Sky").first.click()
    canvas.wait_for(state="visible")
    page.wait_for_function(
        "([el, text]) => el.innerText.includes(text)",
        arg=[header.element_handle(), f"selected: row {other}"], timeout=30_000)
    wait_until(page, lambda: kernel(page, "from astropy.coordinates import SkyCoord\n"
                                    "print(sky.aladin.target.separation(SkyCoord("
                                    "sky.table['ra'][sky.table['row'] == %d][0], "
                                    "sky.table['dec'][sky.table['row'] == %d][0])).arcsec "
                                    "< 0.05)" % (other, other)).strip() == "True",
               timeout=30_000, message="the browser's sky view moves to the chosen source")
    moved = settled_scene(page)
    w, h = moved["size"]

    def red_at_centre():
        red = colour_mask(canvas_pixels(page, canvas), "red")
        return near(red, (w - 1) / 2, (h - 1) / 2, 16)
    wait_until(page, red_at_centre, timeout=15_000,
               message="the chosen source is circled in red at the centre of the sky view")
    save_screenshot(page.locator(".jw-sky-view").first, "sky-local-selected")

    # Nothing asked of esm.sh (the local copy was used); the survey was answered locally.
    outside = log_of(page).outside
    assert not [u for u in outside if "esm.sh" in u]
    assert any(u.split("?")[0].endswith("/properties") for u in answered)
    assert_no_errors(page, allow_outside=[SURVEY_HOSTS.pattern])


FAILED_NOTE = ".jw-sky-view .jw-aladin-note.jw-aladin-failed"


def check_failure_is_said(page):
    note = page.locator(FAILED_NOTE).first
    note.wait_for(state="visible", timeout=60_000)
    text = note.inner_text()
    assert "could not load Aladin Lite from https://esm.sh/aladin-lite@" in text
    assert "Everything else keeps working" in text
    assert "python -m jwst_widgets.aladin_offline fetch" in text
    message = page.locator(".jw-sky-view .jw-sky-message").first
    page.wait_for_function("el => el.innerText.includes('not available')",
                           arg=message.element_handle(), timeout=30_000)
    assert page.locator(".jw-sky-view .aladin-catalogCanvas").count() == 0
    # the rest of the builder works: the image is drawn and the catalog is listed
    page.wait_for_selector(BQPLOT_IMAGE, timeout=30_000)
    image = element_pixels(page.locator(".jw-image-figure").first)
    assert image[..., :3].std() > 5
    outside = log_of(page).unexpected_outside()
    assert outside and all(re.match(ESM_SH, u) for u in outside)
    assert_no_errors(page, allow_outside=[ESM_SH])


def test_sky_view_says_when_aladin_lite_cannot_load_voila(voila_server, page, tmp_path):
    nb = write_notebook(tmp_path / "sky_offline.ipynb", BUILDER_CELL % {"mode": "cdn"})
    server = voila_server(nb)
    open_voila(page, server)
    check_failure_is_said(page)
    save_screenshot(page.locator(".jw-sky-view").first, "sky-voila-cannot-load")


def test_sky_view_says_when_aladin_lite_cannot_load_lab(jupyterlab_server, lab_page, tmp_path):
    nb = write_notebook(tmp_path / "sky_offline.ipynb", BUILDER_CELL % {"mode": "cdn"})
    rel = jupyterlab_server.add(nb, "sky/sky_offline.ipynb")
    open_notebook(lab_page, jupyterlab_server, rel)
    run_all(lab_page, timeout=180_000)
    check_failure_is_said(lab_page)
    assert kernel(lab_page, "print(sky.status)").strip() == "failed"
