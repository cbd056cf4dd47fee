"""jwst_widgets.mast: search, product lists, downloads and errors, on replayed MAST answers.

The replay (tests/mast_plugin.py) stands in for the network at the HTTP
transport; astroquery, requests and urllib3 run for real above it. A few
tests use real sockets on 127.0.0.1 (a refused port, a silent server, a
server whose connection breaks) to prove time limits and resume end to end.
Tests marked remote_data run against the real archive with --remote-data.
"""

import contextlib
import hashlib
import http.server
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from jwst_widgets.errors import Cancelled, InputError
from jwst_widgets.mast import (MastArchiveError, MastAuthError, MastClient, MastError,
                               MastNetworkError, MastTimeoutError, format_bytes)

pytest_plugins = ["mast_plugin"]

DOWNLOAD = "/api/v0.1/Download/file"
INVOKE = "/api/v0/invoke"
I2D = "jw02733-o001_t001_nircam_clear-f090w_i2d.fits"
CAL = "jw02733001001_02101_00001_nrcb1_cal.fits"
TOKEN = "mast-token-4f1d9c2b7e6a48d1a0c3e5f7b9d2c4e6"


def mjd(text):
    from astropy.time import Time
    return float(Time(text).mjd)


def position_of(exchange):
    return [float(v) for v in exchange.mashup["params"]["position"].split(",")]


@pytest.fixture(scope="module")
def observations(tmp_path_factory):
    """The replayed search around NGC 3132 (made once: tests only read it)."""
    from mast_plugin import MastReplay

    client = MastClient(cache_dir=tmp_path_factory.mktemp("cache"), transport=MastReplay())
    return client.search(target="NGC 3132", instrument="NIRCAM/IMAGE")


@pytest.fixture
def i2d_product(mast_client, mast_replay, product_fits):
    products = mast_client.products(["87602001"], product_type="i2d")
    mast_replay.add_file(products[0]["dataURI"], product_fits(I2D))
    return products


# --------------------------------------------------------------------------
# search


def test_search_by_target_sends_the_resolved_position_and_criteria(mast_client, mast_replay):
    obs = mast_client.search(target="NGC 3132", instrument="nircam/image", filters=["f090w"],
                             program=2733, calib_level=3, radius=0.02)
    resolver, config, query = mast_replay.log
    assert resolver.host == "mastresolver.stsci.edu" and resolver.query["name"] == "NGC 3132"
    assert config.form == {"colConfigId": "Mast.Caom.Cone"}
    assert query.service == "Mast.Caom.Filtered.Position"
    assert position_of(query) == pytest.approx([151.757083, -40.436389, 0.02])
    filters = query.filters()
    assert filters["obs_collection"] == (["JWST"], None)
    assert filters["instrument_name"] == (["NIRCAM/IMAGE"], None)
    assert filters["filters"] == (["F090W"], None)
    assert filters["proposal_id"] == (["2733"], None)
    assert filters["calib_level"] == (["3"], None)
    assert filters["dataproduct_type"] == (["image"], None)
    # the table is MAST's answer, row for row
    assert list(obs["obs_id"]) == ["jw02733-o001_t001_nircam_clear-f090w",
                                   "jw02733-o001_t001_nircam_clear-f212n",
                                   "jw02733-o001_t001_nircam_clear-f444w",
                                   "jw02733001001_02101_00001_nrcb1"]
    assert list(obs["calib_level"]) == [3, 3, 3, 2]
    assert "_selected_" not in obs.colnames
    assert obs.meta["rows_total"] == 4
    assert obs.meta["position"] == pytest.approx((151.757083, -40.436389, 0.02))


def test_search_equals_astroquery_on_the_same_answers(mast_client, mast_replay):
    """Our table is what astroquery's own query_criteria makes of the same answer."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astroquery.mast import ObservationsClass

    ours = mast_client.search(ra=151.757083, dec=-40.436389, radius=3 * u.arcmin,
                              instrument="NIRCAM/IMAGE")
    ref = ObservationsClass()
    ref._portal_api_connection._column_configs = {}
    ref._session.mount("https://", mast_replay)
    theirs = ref.query_criteria(coordinates=SkyCoord(151.757083, -40.436389, unit="deg"),
                                radius=0.05 * u.deg, obs_collection="JWST",
                                intentType="science", dataproduct_type="image",
                                instrument_name="NIRCAM/IMAGE")
    assert ours.colnames == theirs.colnames
    for name in ours.colnames:
        a, b = np.asarray(ours[name]), np.asarray(theirs[name])
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b)
        else:
            assert list(a) == list(b), name
    mine, ref_query = mast_replay.requests_to(INVOKE)
    assert position_of(mine) == pytest.approx(position_of(ref_query))
    assert mine.filters() == ref_query.filters()


@pytest.mark.parametrize("kwargs", [
    dict(ra=151.757083, dec=-40.436389),
    dict(ra="10:07:01.70", dec="-40:26:11.0"),
    dict(coordinates="151.757083 -40.436389"),
    dict(coordinates="10h07m01.70s -40d26m11.0s"),
])
def test_search_by_coordinates_in_degrees_or_sexagesimal(mast_client, mast_replay, kwargs):
    mast_client.search(**kwargs, radius=0.05)
    (query,) = mast_replay.requests_to(INVOKE)
    assert position_of(query) == pytest.approx([151.757083, -40.436389, 0.05], abs=1e-5)
    assert mast_replay.requests_to("/Santa-war/query") == []


def test_search_without_position_uses_the_filtered_service(mast_client, mast_replay):
    obs = mast_client.search(program=["2733", 1345], instrument="NIRCAM")
    (query,) = mast_replay.requests_to(INVOKE)
    assert query.service == "Mast.Caom.Filtered"
    assert "position" not in query.mashup["params"]
    filters = query.filters()
    assert filters["proposal_id"] == (["2733", "1345"], None)
    assert filters["instrument_name"] == ([], "NIRCAM%")   # any NIRCam mode
    assert len(obs) == 4


def test_search_dates_rights_and_page_size(mast_client, mast_replay):
    from astropy.time import Time

    before = float(Time.now().mjd)
    mast_client.search(program=2733, date_start="2022-06-01", date_end="2022-06-30",
                       rights="public", max_results=50)
    after = float(Time.now().mjd)
    (query,) = mast_replay.requests_to(INVOKE)
    values, _ = query.filters()["t_min"]
    assert values == [{"min": mjd("2022-06-01"), "max": mjd("2022-07-01")}]  # end day included
    (release,), _ = query.filters()["t_obs_release"]
    assert release["min"] == 0.0 and before <= release["max"] <= after
    assert query.mashup["pagesize"] == 50 and query.mashup["page"] == 1

    mast_client.search(program=2733, rights="proprietary", date_start="2022-06-01T12:00:00")
    query = mast_replay.requests_to(INVOKE)[-1]
    (release,), _ = query.filters()["t_obs_release"]
    assert release["min"] >= before and release["max"] > 60000
    (window,), _ = query.filters()["t_min"]
    assert window["min"] == mjd("2022-06-01") + 0.5


def test_search_without_match_is_a_zero_row_table_with_the_same_columns(mast_client,
                                                                        mast_replay):
    full = mast_client.search(target="NGC 3132")
    mast_replay.route("search_empty.json", path=INVOKE, service="Mast.Caom.Filtered.Position")
    empty = mast_client.search(target="NGC 3132", filters="F070W")
    assert len(empty) == 0
    assert empty.colnames == full.colnames
    assert empty.meta["rows_total"] == 0


def test_unknown_target_is_an_input_error_before_any_query(mast_client, mast_replay):
    with pytest.raises(InputError, match="'Nowhere 42' is not known") as info:
        mast_client.search(target="Nowhere 42")
    assert info.value.param == "target"
    assert mast_replay.requests_to(INVOKE) == []


@pytest.mark.parametrize("kwargs, param, words", [
    (dict(radius=0), "radius", "between 0 and 10"),
    (dict(radius=25), "radius", "between 0 and 10"),
    (dict(radius="wide"), "radius", "must be an angle"),
    (dict(ra=400, dec=0), "ra", "between 0 and 360"),
    (dict(ra=10, dec=-100), "dec", "between -90 and 90"),
    (dict(ra=10), "dec", "dec is needed"),
    (dict(ra="ten", dec=3), "ra", "sexagesimal"),
    (dict(coordinates="somewhere"), "coordinates", "RA Dec"),
    (dict(target="M 16", ra=274.7, dec=-13.8), "target", "give one position"),
    (dict(instrument="WFC3"), "instrument", "'NIRCAM', 'NIRISS'"),
    (dict(filters="F2 00W"), "filters", "F200W"),
    (dict(program="abc"), "program", "between 1 and 99999"),
    (dict(program=0), "program", "between 1 and 99999"),
    (dict(calib_level=4), "calib_level", "1, 2 or 3"),
    (dict(calib_level=True), "calib_level", "1, 2 or 3"),
    (dict(date_start="last tuesday"), "date_start", "2022-07-12"),
    (dict(date_start="2023-01-01", date_end="2022-01-01"), "date_start", "before date_end"),
    (dict(rights="open"), "rights", "'any', 'public' or 'proprietary'"),
    (dict(max_results=0), "max_results", "between 1 and 50000"),
    (dict(dataproduct_type="photo"), "dataproduct_type", "'image'"),
])
def test_bad_search_options_name_the_parameter_and_send_nothing(mast_client, mast_replay,
                                                                 kwargs, param, words):
    with pytest.raises(InputError, match=words) as info:
        mast_client.search(**kwargs)
    assert info.value.param == param
    assert param in str(info.value) or param == "target"
    assert mast_replay.log == []


def test_bad_client_settings():
    with pytest.raises(InputError, match="timeout must be seconds") as info:
        MastClient(timeout=-1)
    assert info.value.param == "timeout"
    with pytest.raises(InputError, match="total_timeout"):
        MastClient(total_timeout=0)


# --------------------------------------------------------------------------
# products


def test_products_lists_science_fits_once_each_with_sizes(mast_client, mast_replay, observations):
    products = mast_client.products(observations[:1])
    config, query = mast_replay.log[-2:]
    assert config.form == {"colConfigId": "Mast.Caom.Products"}
    assert query.service == "Mast.Caom.Products"
    assert query.mashup["params"] == {"obsid": "87602001"}
    assert list(products["productFilename"]) == [
        I2D, "jw02733-o001_t001_nircam_clear-f090w_segm.fits", CAL,
        "jw02733001001_02101_00001_nrcb1_rate.fits", "jw02733001001_02101_00001_nrcb1_uncal.fits"]
    assert list(products["size"]) == [279360, 16793280, 210240, 83954880, 142341120]
    assert all(uri.startswith("mast:JWST/product/") for uri in products["dataURI"])


def test_products_equal_astroquery_filter_on_the_same_answer(mast_client, mast_replay,
                                                            observations):
    from astroquery.mast import ObservationsClass, utils

    ours = mast_client.products(observations[:2], product_type=["CAL", "i2d"])
    ref = ObservationsClass()
    ref._portal_api_connection._column_configs = {}
    ref._session.mount("https://", mast_replay)
    theirs = ref.get_product_list(observations[:2])
    theirs = ref.filter_products(theirs, productType="SCIENCE", extension="fits",
                                 productSubGroupDescription=["CAL", "I2D"])
    theirs = utils.remove_duplicate_products(theirs, "dataURI")
    assert sorted(ours["dataURI"]) == sorted(theirs["dataURI"])
    assert sorted(ours["size"]) == sorted(theirs["size"]) == [210240, 279360]
    assert mast_replay.requests_to(INVOKE)[-2].mashup["params"] == \
        {"obsid": "87602001,87602002"}


def test_products_other_extensions_and_types(mast_client, observations):
    every = mast_client.products(observations[:1], extension=None, science_only=False)
    assert len(every) == 8                       # 9 rows, one duplicate
    assert "jw02733-o001_t001_nircam_clear-f090w_cat.ecsv" in list(every["productFilename"])
    catalogs = mast_client.products(observations[:1], product_type="cat", extension="ecsv")
    assert list(catalogs["productSubGroupDescription"]) == ["CAT"]
    none = mast_client.products(observations[:1], product_type="x1d")
    assert len(none) == 0 and none.colnames == every.colnames


def assert_same_table(a, b):
    assert a.colnames == b.colnames
    for name in a.colnames:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
        np.testing.assert_array_equal(np.ma.getmaskarray(a[name]), np.ma.getmaskarray(b[name]))


def test_products_does_not_modify_the_observations(mast_client, observations):
    before = observations.copy()
    mast_client.products(observations[:2], product_type="cal")
    assert_same_table(observations, before)


@pytest.mark.parametrize("given, words", [
    ([], "observations is empty"),
    (["jw02733-o001_t001_nircam_clear-f090w"], "is not a MAST obsid"),
])
def test_bad_observations_for_products(mast_client, mast_replay, given, words):
    with pytest.raises(InputError, match=words) as info:
        mast_client.products(given)
    assert info.value.param == "observations"
    assert mast_replay.log == []


def test_products_by_obsid_strings(mast_client, mast_replay):
    products = mast_client.products(["87602001"], product_type="i2d")
    assert list(products["productFilename"]) == [I2D]


# --------------------------------------------------------------------------
# download


def test_download_gives_the_file_ready_for_load_image(mast_client, mast_replay, i2d_product,
                                                   product_fits):
    from jwst_widgets import load_image

    calls = []
    (path,) = mast_client.download(i2d_product, progress=lambda *a: calls.append(a))
    assert path == os.path.join(mast_client.cache_dir, I2D)
    with open(path, "rb") as fh:
        assert fh.read() == product_fits(I2D)
    assert not os.path.exists(path + ".part")
    image = load_image(path)
    assert image.data.shape == (128, 128)
    assert str(image.unit) == "MJy / sr"
    done = [c[0] for c in calls]
    assert done == sorted(done) and calls[-1] == (279360, 279360, I2D)
    (request,) = mast_replay.requests_to(DOWNLOAD)
    assert request.query["uri"] == "mast:JWST/product/" + I2D
    assert "Range" not in request.headers
    assert mast_client.is_cached(i2d_product[0])


def test_download_again_comes_from_the_cache(mast_client, mast_replay, i2d_product):
    first = mast_client.download(i2d_product)
    calls = []
    again = mast_client.download(i2d_product, progress=lambda *a: calls.append(a))
    assert again == first
    assert len(mast_replay.requests_to(DOWNLOAD)) == 1
    assert calls == [(279360, 279360, I2D)]


def test_download_resumes_a_partial_file(mast_client, mast_replay, i2d_product, product_fits):
    data = product_fits(I2D)
    os.makedirs(mast_client.cache_dir)
    with open(os.path.join(mast_client.cache_dir, I2D + ".part"), "wb") as fh:
        fh.write(data[:100000])
    calls = []
    (path,) = mast_client.download(i2d_product, progress=lambda *a: calls.append(a))
    (request,) = mast_replay.requests_to(DOWNLOAD)
    assert request.headers["Range"] == "bytes=100000-"
    assert request.status == 206 and request.sent_bytes == len(data) - 100000
    with open(path, "rb") as fh:
        assert fh.read() == data
    assert calls[0][0] == 100000 and calls[-1][:2] == (len(data), len(data))


def test_an_interrupted_download_resumes_where_it_stopped(mast_client, mast_replay,
                                                          i2d_product, product_fits):
    data = product_fits(I2D)
    mast_replay.fail("break:150000", path=DOWNLOAD, times=1)
    with pytest.raises(MastNetworkError, match="connection to MAST broke while downloading"):
        mast_client.download(i2d_product)
    part = os.path.join(mast_client.cache_dir, I2D + ".part")
    kept = os.path.getsize(part)
    assert 0 < kept <= 150000
    assert not os.path.exists(os.path.join(mast_client.cache_dir, I2D))
    with open(part, "rb") as fh:
        assert fh.read() == data[:kept]
    (path,) = mast_client.download(i2d_product)
    second = mast_replay.requests_to(DOWNLOAD)[-1]
    assert second.headers["Range"] == f"bytes={kept}-"
    assert second.sent_bytes == len(data) - kept
    with open(path, "rb") as fh:
        assert hashlib.sha256(fh.read()).digest() == hashlib.sha256(data).digest()


def test_a_stale_part_longer_than_the_product_is_replaced(mast_client, mast_replay,
                                                          i2d_product, product_fits):
    os.makedirs(mast_client.cache_dir)
    with open(os.path.join(mast_client.cache_dir, I2D + ".part"), "wb") as fh:
        fh.write(b"\0" * 300000)
    (path,) = mast_client.download(i2d_product)
    assert "Range" not in mast_replay.requests_to(DOWNLOAD)[0].headers
    with open(path, "rb") as fh:
        assert fh.read() == product_fits(I2D)


def test_a_size_other_than_listed_is_refused(mast_client, mast_replay, i2d_product):
    wrong = i2d_product.copy()
    wrong["size"][0] = 279000
    with pytest.raises(MastArchiveError, match="sends 279360 bytes but lists 279000"):
        mast_client.download(wrong)
    assert os.listdir(mast_client.cache_dir) == []
    (path,) = mast_client.download(wrong, verify_size=False)
    assert os.path.getsize(path) == 279360


def test_download_does_not_modify_the_product_table(mast_client, i2d_product):
    before = i2d_product.copy()
    mast_client.download(i2d_product)
    assert_same_table(i2d_product, before)


def test_download_by_uri_without_a_listed_size(mast_client, mast_replay, i2d_product):
    calls = []
    (path,) = mast_client.download("mast:JWST/product/" + I2D,
                                   progress=lambda *a: calls.append(a))
    assert os.path.getsize(path) == 279360
    assert calls[-1] == (279360, 279360, I2D)


def test_a_cancelled_download_keeps_its_part(mast_client, mast_replay, i2d_product):
    cancel = threading.Event()
    with pytest.raises(Cancelled, match="cancelled"):
        mast_client.download(i2d_product, cancel=cancel, progress=lambda *a: cancel.set())
    assert not os.path.exists(os.path.join(mast_client.cache_dir, I2D))
    (path,) = mast_client.download(i2d_product)
    assert os.path.getsize(path) == 279360


@pytest.mark.parametrize("given, words", [
    ([], "products is empty"),
    ("https://example.org/evil.fits", "is not a MAST data URI"),
    ("mast:JWST/product/../../etc/passwd", "is not a MAST data URI"),
])
def test_bad_products_for_download(mast_client, mast_replay, given, words):
    with pytest.raises(InputError, match=words) as info:
        mast_client.download(given)
    assert info.value.param == "products"
    assert mast_replay.log == []


# --------------------------------------------------------------------------
# errors in words


FAULTS = [
    ("offline", MastNetworkError, "cannot reach MAST while {what}: no network"),
    ("timeout", MastTimeoutError, "did not answer within 60 s while {what}"),
    ("connect-timeout", MastTimeoutError, "did not answer within 60 s while {what}"),
    (503, MastArchiveError, r"HTTP 503 Service Unavailable\) while {what}"),
    (500, MastArchiveError, r"HTTP 500 Internal Server Error\) while {what}"),
    ("not-json", MastArchiveError, "cannot be read while {what}"),
]


@pytest.mark.parametrize("fault, error, words", FAULTS + [
    ("error-status", MastArchiveError, "reported an error while {what}: Error converting"),
])
def test_search_errors_in_words(mast_client, mast_replay, fault, error, words):
    mast_replay.fail(fault, path=INVOKE)
    with pytest.raises(error, match=words.format(what="searching JWST observations")) as info:
        mast_client.search(program=2733)
    assert isinstance(info.value, MastError) and isinstance(info.value, InputError)


@pytest.mark.parametrize("fault, error, words", FAULTS)
def test_product_list_errors_in_words(mast_client, mast_replay, observations, fault, error,
                                      words):
    mast_replay.fail(fault, path=INVOKE, service="Mast.Caom.Products")
    with pytest.raises(error, match=words.format(what="listing products")):
        mast_client.products(observations[:1])


@pytest.mark.parametrize("fault, error, words", FAULTS[:5] + [
    (404, MastArchiveError, "no such file or service \\(HTTP 404\\)"),
    (401, MastAuthError, "refused access \\(HTTP 401\\) while downloading .*proprietary"),
    (403, MastAuthError, "refused access \\(HTTP 403\\) while downloading .*login"),
])
def test_download_errors_in_words(mast_client, mast_replay, i2d_product, fault, error, words):
    mast_replay.fail(fault, path=DOWNLOAD)
    with pytest.raises(error, match=words.format(what=f"downloading {I2D}")):
        mast_client.download(i2d_product)
    assert not os.path.exists(os.path.join(mast_client.cache_dir, I2D))


def test_a_query_still_executing_is_given_up_after_total_timeout(mast_replay, tmp_path):
    client = MastClient(cache_dir=tmp_path, transport=mast_replay, total_timeout=0.2)
    mast_replay.fail("executing", path=INVOKE)
    with pytest.raises(MastTimeoutError, match="did not finish searching JWST observations "
                                               "within 0.2 s"):
        client.search(program=2733)
    assert len(mast_replay.requests_to(INVOKE)) >= 2          # it polled, then gave up


def test_resolver_errors_in_words(mast_client, mast_replay):
    mast_replay.fail("offline", host="mastresolver.stsci.edu")
    with pytest.raises(MastNetworkError, match="while resolving the target name 'NGC 3132'"):
        mast_client.search(target="NGC 3132")


@contextlib.contextmanager
def _listening_socket():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", sock
    finally:
        sock.close()


def test_a_refused_connection_is_no_network(tmp_path):
    with _listening_socket() as (url, _):
        pass                                     # closed again: nothing listens there
    client = MastClient(server=url, cache_dir=tmp_path, timeout=2)
    with pytest.raises(MastNetworkError, match="cannot reach MAST while searching"):
        client.search(program=2733)


def test_a_silent_server_times_out(tmp_path):
    """A real socket that accepts and never answers: the read limit ends the wait."""
    with _listening_socket() as (url, _):
        client = MastClient(server=url, cache_dir=tmp_path, timeout=(2, 0.3))
        with pytest.raises(MastTimeoutError, match="did not answer within 2 s while searching"):
            client.search(program=2733)


class _FlakyFile(http.server.BaseHTTPRequestHandler):
    """Serves ``data`` honouring Range; the first answer breaks after 150000 bytes."""

    data = b""
    answers = []

    def do_GET(self):
        rng = self.headers.get("Range")
        start = int(rng[6:].split("-")[0]) if rng else 0
        body = self.data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(self.data) - 1}/"
                                              f"{len(self.data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        first = not self.answers
        self.answers.append(rng)
        self.wfile.write(body[:150000] if first else body)
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_a_broken_connection_resumes_over_real_sockets(tmp_path, product_fits):
    data = product_fits(CAL)
    handler = type("Handler", (_FlakyFile,), {"data": data, "answers": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = MastClient(server=f"http://127.0.0.1:{server.server_port}",
                            cache_dir=tmp_path / "cache", timeout=(2, 5))
        product = [{"dataURI": "mast:JWST/product/" + CAL, "size": len(data)}]
        with pytest.raises(MastNetworkError, match="broke while downloading"):
            client.download(product)
        kept = os.path.getsize(tmp_path / "cache" / (CAL + ".part"))
        (path,) = client.download(product)
        assert handler.answers == [None, f"bytes={kept}-"]
        with open(path, "rb") as fh:
            assert fh.read() == data
    finally:
        server.shutdown()
        server.server_close()


def test_every_request_has_a_time_limit(mast_client, mast_replay, i2d_product):
    mast_client.search(target="NGC 3132")
    mast_client.download(i2d_product)
    assert {e.path for e in mast_replay.log} == {
        "/Santa-war/query", "/portal/Mashup/Mashup.asmx/columnsconfig", INVOKE, DOWNLOAD}
    assert all(e.timeout == (10.0, 60.0) for e in mast_replay.log)


# --------------------------------------------------------------------------
# login and the token


def test_login_allows_proprietary_downloads_and_sends_the_token_to_mast_only(
        mast_client, mast_replay, i2d_product, product_fits):
    mast_replay.add_file(i2d_product[0]["dataURI"], product_fits(I2D), proprietary=True)
    with pytest.raises(MastAuthError, match="proprietary .*client.login"):
        mast_client.download(i2d_product)
    mast_replay.accept_token(TOKEN)
    mast_client.login(TOKEN)
    assert mast_client.authenticated
    (path,) = mast_client.download(i2d_product)
    assert os.path.getsize(path) == 279360
    whoami = mast_replay.requests_to("/whoami")[-1]
    assert f"mast_token={TOKEN}" in whoami.headers["Cookie"]
    mast_client.search(target="NGC 3132")
    resolver = mast_replay.requests_to("/Santa-war/query")[-1]
    assert TOKEN not in str(resolver.headers)          # the name resolver never sees it
    assert TOKEN in mast_replay.requests_to(INVOKE)[-1].headers["Cookie"]
    mast_client.logout()
    assert not mast_client.authenticated
    mast_client.search(program=2733)
    assert "Cookie" not in mast_replay.requests_to(INVOKE)[-1].headers


def test_a_refused_token_is_an_auth_error_and_is_forgotten(mast_client, mast_replay):
    with pytest.raises(MastAuthError, match="did not accept the token") as info:
        mast_client.login("not-a-valid-token")
    assert info.value.param == "token"
    assert "not-a-valid-token" not in str(info.value)
    assert not mast_client.authenticated
    mast_client.search(program=2733)
    assert "Cookie" not in mast_replay.requests_to(INVOKE)[-1].headers


def test_a_token_without_access_says_so(mast_client, mast_replay, i2d_product):
    mast_replay.accept_token(TOKEN)
    mast_client.login(TOKEN)
    mast_replay.fail(403, path=DOWNLOAD)
    with pytest.raises(MastAuthError, match="your MAST token does not give access"):
        mast_client.download(i2d_product)


@pytest.mark.parametrize("token", ["", "   ", None, 12345])
def test_a_missing_token_is_an_input_error(mast_client, mast_replay, token):
    with pytest.raises(InputError, match="token must be a MAST API token") as info:
        mast_client.login(token)
    assert info.value.param == "token"
    assert mast_replay.log == []


def test_the_token_never_lands_in_a_file_a_log_or_a_repr(mast_client, mast_replay,
                                                          i2d_product, tmp_path, product_fits):
    """Log in, search, list, download (with a resume and a failure): scan all that is written."""
    from astroquery import log as astroquery_log

    records = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: records.append(handler.format(record))
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(), astroquery_log, logging.getLogger("urllib3"),
               logging.getLogger("jwst_widgets")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)        # astroquery logs request headers at DEBUG
    try:
        mast_replay.accept_token(TOKEN)
        mast_replay.add_file(i2d_product[0]["dataURI"], product_fits(I2D), proprietary=True)
        mast_client.login(TOKEN)
        obs = mast_client.search(target="NGC 3132", calib_level=[2, 3])
        products = mast_client.products(obs[:2], product_type=["cal", "i2d"])
        mast_replay.add_file(products[1]["dataURI"], product_fits(CAL))
        mast_replay.fail("break:60000", path=DOWNLOAD, times=1)
        with pytest.raises(MastNetworkError) as broken:
            mast_client.download(products)
        paths = mast_client.download(products)
        mast_replay.fail(503, path=INVOKE)
        with pytest.raises(MastArchiveError) as failed:
            mast_client.search(program=2733)
        shown = [repr(mast_client), str(mast_client), repr(obs), str(obs.meta),
                 str(products.meta), repr(products), str(broken.value), str(failed.value),
                 repr(broken.value.__cause__)]
        products.write(tmp_path / "products.ecsv")
        obs.write(tmp_path / "observations.ecsv")
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
    with open(tmp_path / "session.log", "w") as fh:
        fh.write("\n".join(records))
    assert any("astroquery" in r for r in records)          # the loggers were listening
    assert len(paths) == 2 and all(os.path.getsize(p) > 0 for p in paths)
    needle = TOKEN.encode()
    scanned = 0
    for root, _, files in os.walk(tmp_path):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                assert needle not in fh.read(), f"the token is in {name}"
            scanned += 1
    assert scanned >= 5
    assert mast_client.cache_dir.startswith(str(tmp_path))
    for text in shown + records:
        assert TOKEN not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(mast_client)


# --------------------------------------------------------------------------
# the rest


def test_import_is_cheap():
    code = ("import sys, jwst_widgets.mast; "
            "print(sorted(m for m in ('astroquery', 'requests', 'astropy', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("n, text", [(None, "size unknown"), (512, "512 bytes"),
                                     (279360, "279.4 kB"), (83954880, "84.0 MB"),
                                     (2.5e9, "2.5 GB")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


# --------------------------------------------------------------------------
# the real archive (pytest --remote-data)


@pytest.mark.remote_data
def test_remote_search_products_and_resumed_download(remote_client):
    obs = remote_client.search(target="NGC 3132", instrument="NIRCAM/IMAGE", filters="F090W",
                               calib_level=3, rights="public")
    assert len(obs) >= 1
    assert set(obs["obs_collection"]) == {"JWST"}
    assert all(name.startswith("NIRCAM") for name in obs["instrument_name"])
    products = remote_client.products(obs[:1], product_type="i2d")
    assert len(products) >= 1 and all(products["size"] > 0)
    small = remote_client.products(obs[:1], extension=None, science_only=False)
    smallest = small[int(np.argmin(small["size"]))]
    (path,) = remote_client.download(smallest)
    with open(path, "rb") as fh:
        data = fh.read()
    assert len(data) == smallest["size"]
    os.replace(path, path + ".part")
    with open(path + ".part", "r+b") as fh:
        fh.truncate(len(data) // 2)
    (again,) = remote_client.download(smallest)
    with open(again, "rb") as fh:
        assert fh.read() == data


@pytest.mark.remote_data
def test_remote_empty_search_and_unknown_target(remote_client):
    empty = remote_client.search(ra=0.001, dec=0.001, radius=0.001, program=2733)
    assert len(empty) == 0 and "obs_id" in empty.colnames
    with pytest.raises(InputError, match="is not known"):
        remote_client.search(target="No Such Object 0000xyz")


@pytest.mark.remote_data
def test_remote_refused_token(remote_client):
    with pytest.raises(MastAuthError):
        remote_client.login("0" * 32)
