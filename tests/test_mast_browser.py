"""The MAST browser widget, driven in the kernel on replayed MAST answers."""

import datetime
import os

import pytest

from jwst_widgets.widgets.mast_browser import MastBrowser

pytest_plugins = ["mast_plugin"]

I2D = "jw02733-o001_t001_nircam_clear-f090w_i2d.fits"
CAL = "jw02733001001_02101_00001_nrcb1_cal.fits"
INVOKE = "/api/v0/invoke"
DOWNLOAD = "/api/v0.1/Download/file"
TOKEN = "mast-token-0b7c1e9d5a3f42c8b6e4d2a0f8c6e4b2"


@pytest.fixture
def browser(mast_client, mast_replay, product_fits):
    for name in (I2D, CAL):
        mast_replay.add_file("mast:JWST/product/" + name, product_fits(name))
    opened = []
    b = MastBrowser(mast_client, on_open=opened.append, background=False)
    b.opened = opened
    return b


def all_widgets(widget):
    """The widget and every widget inside it."""
    out = [widget]
    for child in getattr(widget, "children", ()):
        out.extend(all_widgets(child))
    return out


def label_of(select, value):
    return dict((v, k) for k, v in select.options)[value]


def test_the_form_becomes_a_search(browser, mast_replay):
    browser.target.value = "NGC 3132"
    browser.radius.value = 1.2                       # arcmin
    browser.instrument.value = "NIRCAM/IMAGE"
    browser.filters.value = "F090W, f212n"
    browser.program.value = "2733"
    browser.calib_level.value = 3
    browser.date_start.value = datetime.date(2022, 6, 1)
    browser.date_end.value = datetime.date(2022, 6, 30)
    browser.rights.value = "public"
    browser.search_button.click()

    assert browser.error == ""
    (query,) = mast_replay.requests_to(INVOKE)
    position = [float(v) for v in query.mashup["params"]["position"].split(",")]
    assert position[2] == pytest.approx(0.02)
    filters = query.filters()
    assert filters["filters"] == (["F090W", "F212N"], None)
    assert filters["proposal_id"] == (["2733"], None)
    assert filters["calib_level"] == (["3"], None)
    assert filters["instrument_name"] == (["NIRCAM/IMAGE"], None)
    assert filters["t_min"][0] == [{"min": 59731.0, "max": 59761.0}]
    assert "t_obs_release" in filters
    # the results: a table to read and a list to choose from
    assert len(browser.results.options) == 4
    assert label_of(browser.results, 0).startswith("jw02733-o001_t001_nircam_clear-f090w")
    table = browser.results_table.value
    assert table.count("<tr>") == 5                 # header + 4 rows
    assert "NGC-3132" in table and "2022-06-03" in table and "public" in table
    assert "4 observations" in browser.status.value
    assert browser.list_button.disabled             # nothing chosen yet
    browser.results.value = (0,)
    assert not browser.list_button.disabled


def test_search_list_download_open_in_the_background(mast_client, mast_replay, product_fits):
    mast_replay.add_file("mast:JWST/product/" + I2D, product_fits(I2D))
    opened = []
    b = MastBrowser(mast_client, on_open=opened.append)          # background=True
    b.target.value = "NGC 3132"
    b.search_button.click()
    assert b.wait_idle(30)
    assert len(b.results.options) == 4
    b.results.value = (0,)
    b.product_type.value = ("i2d",)
    b.list_button.click()
    assert b.wait_idle(30)
    assert [label for label, _ in b.product_list.options] == [f"{I2D}  (279.4 kB)"]
    b.product_list.value = (0,)
    assert not b.download_button.disabled
    b.download_button.click()
    assert b.wait_idle(30)
    assert b.error == ""
    assert b.paths == [os.path.join(mast_client.cache_dir, I2D)]
    with open(b.paths[0], "rb") as fh:
        assert fh.read() == product_fits(I2D)
    assert b.progress.value == b.progress.max
    assert "279.4 kB of 279.4 kB" in b.progress_label.value
    assert "Downloaded 1 file" in b.status.value
    assert not b.open_button.disabled
    b.open_button.click()
    assert opened == [b.paths]
    # listed again, the file shows as cached
    b.list_button.click()
    assert b.wait_idle(30)
    assert b.product_list.options[0][0].endswith("✓ cached")


def test_products_of_several_observations_and_types(browser, mast_replay):
    browser.target.value = "NGC 3132"
    browser.search_button.click()
    browser.results.value = (0, 3)
    browser.product_type.value = ("cal", "i2d")
    browser.list_button.click()
    (query,) = [e for e in mast_replay.requests_to(INVOKE) if e.service == "Mast.Caom.Products"]
    assert query.mashup["params"] == {"obsid": "87602001,87601234"}
    labels = [label for label, _ in browser.product_list.options]
    assert labels == [f"{I2D}  (279.4 kB)", f"{CAL}  (210.2 kB)"]
    assert "2 files (489.6 kB)" in browser.status.value
    browser.product_list.value = (0, 1)
    browser.download_button.click()
    assert [os.path.basename(p) for p in browser.paths] == [I2D, CAL]


@pytest.mark.parametrize("fault, words", [
    ("offline", "cannot reach MAST while searching"),
    ("timeout", "did not answer within 60 s while searching"),
    (503, "HTTP 503 Service Unavailable"),
    ("error-status", "MAST reported an error while searching"),
])
def test_archive_errors_are_shown_in_words(browser, mast_replay, fault, words):
    mast_replay.fail(fault, path=INVOKE)
    browser.program.value = "2733"
    browser.search_button.click()
    assert words in browser.error
    assert words.split(" while")[0] in browser.status.value
    assert "Traceback" not in browser.status.value
    assert not browser.search_button.disabled        # the widget is usable again
    mast_replay.clear_faults()
    browser.search_button.click()
    assert browser.error == "" and len(browser.results.options) == 4


@pytest.mark.parametrize("field, value, words", [
    ("ra", "400", "ra must be between 0 and 360"),
    ("program", "twenty", "program must be a JWST program number"),
    ("instrument", "WFC3/UVIS", "instrument must be one of"),
    ("target", "Nowhere 42", "'Nowhere 42' is not known"),
])
def test_bad_form_values_are_shown_in_words(browser, mast_replay, field, value, words):
    if field == "ra":
        browser.dec.value = "-40.4"
    getattr(browser, field).value = value
    browser.search_button.click()
    assert words in browser.error
    assert mast_replay.requests_to(INVOKE) == []


def test_no_match_says_so(browser, mast_replay):
    mast_replay.route("search_empty.json", path=INVOKE, service="Mast.Caom.Filtered.Position")
    browser.ra.value, browser.dec.value = "10:07:01.7", "-40:26:11"
    browser.search_button.click()
    assert browser.results.options == () and browser.results_table.value == ""
    assert "No JWST observation matches" in browser.status.value


def test_actions_out_of_order_are_explained(browser):
    """Buttons are disabled until they make sense; a click anyway is explained."""
    assert browser.list_button.disabled and browser.download_button.disabled
    assert browser.open_button.disabled
    browser.list_button.click()
    assert "choose at least one observation" in browser.error
    browser.download_button.click()
    assert "choose at least one file" in browser.error
    browser.open_button.click()
    assert "download files first" in browser.error


def test_open_without_a_builder_tells_where_the_files_are(mast_client, mast_replay,
                                                          product_fits):
    mast_replay.add_file("mast:JWST/product/" + I2D, product_fits(I2D))
    b = MastBrowser(mast_client, background=False)
    b.target.value = "NGC 3132"
    b.search_button.click()
    b.results.value = (0,)
    b.product_type.value = ("i2d",)
    b.list_button.click()
    b.product_list.value = (0,)
    b.download_button.click()
    b.open_button.click()
    assert "no pipeline builder is connected" in b.error
    assert b.paths[0] in b.error


def test_a_proprietary_file_asks_for_a_login_then_downloads(browser, mast_replay,
                                                            product_fits):
    mast_replay.add_file("mast:JWST/product/" + I2D, product_fits(I2D), proprietary=True)
    mast_replay.accept_token(TOKEN)
    browser.target.value = "NGC 3132"
    browser.search_button.click()
    browser.results.value = (0,)
    browser.product_type.value = ("i2d",)
    browser.list_button.click()
    browser.product_list.value = (0,)
    browser.download_button.click()
    assert "proprietary" in browser.error and "log in" in browser.error
    assert browser.paths == []

    browser.token.value = TOKEN
    browser.login_button.click()
    assert browser.token.value == ""                  # not kept in the widget's state
    assert browser.client.authenticated and browser.login_button.description == "Log out"
    browser.download_button.click()
    assert browser.error == "" and len(browser.paths) == 1
    for widget in all_widgets(browser):
        assert TOKEN not in str(widget.get_state())
    assert TOKEN not in repr(browser)
    browser.login_button.click()
    assert not browser.client.authenticated and browser.login_button.description == "Log in"


def test_a_refused_token_is_cleared_and_explained(browser, mast_replay):
    browser.token.value = "mistyped-token"
    browser.login_button.click()
    assert browser.token.value == ""
    assert "did not accept the token" in browser.error
    assert "mistyped-token" not in browser.status.value
    assert not browser.client.authenticated


def test_busy_and_cancel(mast_client, mast_replay, product_fits):
    """A held download: other actions wait, Cancel stops it, the part resumes later."""
    mast_replay.add_file("mast:JWST/product/" + I2D, product_fits(I2D))
    b = MastBrowser(mast_client)
    b.target.value = "NGC 3132"
    b.search_button.click()
    b.wait_idle(30)
    b.results.value = (0,)
    b.product_type.value = ("i2d",)
    b.list_button.click()
    b.wait_idle(30)
    b.product_list.value = (0,)
    gate = mast_replay.hold(path=DOWNLOAD)
    b.download_button.click()
    assert b.busy and b.search_button.disabled and b.download_button.disabled
    b.search_button.click()
    assert "Busy" in b.error
    b.cancel_button.click()
    gate.set()
    assert b.wait_idle(30)
    assert "Cancelled" in b.error
    assert b.paths == [] and not os.path.exists(os.path.join(mast_client.cache_dir, I2D))
    assert not b.download_button.disabled
    mast_replay.release()
    b.download_button.click()
    assert b.wait_idle(30)
    assert b.error == "" and os.path.getsize(b.paths[0]) == 279360


def test_the_builder_does_not_import_astroquery_until_the_archive_is_used(tmp_path):
    """astroquery.mast takes ~1 s to import: the builder's MAST tab makes its client (and
    imports astroquery) only when a search or a login needs it."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from jwst_widgets import PipelineBuilder\n"
            "b = PipelineBuilder(np.ones((64, 64), np.float32), width=200, height=200)\n"
            "print('astroquery' in sys.modules)\n"
            "client = b.mast.client\n"
            "print('astroquery' in sys.modules, client is b.mast.client)\n"
            "b.close()\n")
    env = dict(os.environ, JWST_WIDGETS_CACHE=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"]
