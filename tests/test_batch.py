"""Batch runs on a real Dask cluster of worker processes (`run_batch`).

The clusters here live on 127.0.0.1 only, without dashboards. One local
cluster is shared by the module; one test starts its own through
``run_batch(scheduler=None)``, the default path. Workers that "die" are real
worker processes killed by pid while they process a real (slow) file.
"""

import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable, Table, vstack

from jwst_widgets import InputError, Pipeline, datasets, load_image, run_batch
from jwst_widgets.io import read_provenance
from jwst_widgets.pipeline import batch
from jwst_widgets.pipeline.outputs import output_paths

pytestmark = pytest.mark.timeout(300)  # a batch left without workers waits; fail instead

SHAPE = (384, 384)
SEEDS = (1, 2, 3)

RECIPE = Pipeline([
    ("background_subtraction", {"box_size": 64, "filter_size": 3}),
    ("noise_reduction", {"method": "gaussian", "sigma": 0.7}),
    ("source_detection", {"method": "daofind", "threshold_sigma": 5.0, "fwhm": 2.2}),
    ("aperture_photometry", {"radius": 4.0, "annulus_inner": 8.0, "annulus_outer": 12.0}),
]).to_recipe()

# A recipe whose one stage holds a worker busy for about a second on a 512^2 frame.
SLOW_RECIPE = Pipeline([("noise_reduction", {"method": "median", "kernel_size": 11})]).to_recipe()


def partial_files(directory):
    return [n for n in os.listdir(directory) if n.startswith(".jw-") or n.endswith(".part")]


def write_bad_files(directory, good):
    """Files a batch must report as failed, each for its own reason."""
    bad = {}
    bad["not_fits"] = directory / "notes.fits"
    bad["not_fits"].write_text("this is a text file, not FITS\n" * 20)
    raw = good.read_bytes()
    bad["truncated"] = directory / "truncated_cal.fits"
    bad["truncated"].write_bytes(raw[: len(raw) // 3])
    bad["one_d"] = directory / "spectrum.fits"
    fits.writeto(bad["one_d"], np.linspace(0, 1, 500, dtype=np.float32))
    # A valid image smaller than the recipe's background boxes: the stage refuses it.
    bad["too_small"] = directory / "tiny_cal.fits"
    fits.writeto(bad["too_small"], np.random.default_rng(5).normal(size=(40, 40)).astype("f4"))
    return bad


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("inputs")
    good, truths = [], {}
    for seed in SEEDS:
        frame = datasets.nircam_like(shape=SHAPE, seed=seed)
        path = directory / f"frame{seed}_cal.fits"
        frame.write(path)
        good.append(path)
        truths[str(path)] = frame.truth.stars
    bad = write_bad_files(directory, good[0])
    slow = directory / "slow_cal.fits"
    rng = np.random.default_rng(9)
    fits.writeto(slow, rng.normal(size=(512, 512)).astype(np.float32))
    return {"dir": directory, "good": good, "bad": bad, "truths": truths, "slow": slow}


@pytest.fixture(scope="module")
def shared_cluster():
    """Two single-threaded worker processes, set up as run_batch sets up its own (retries=1)."""
    from distributed import Client

    cl = batch._local_cluster(2, dashboard_address=None, retries=1)
    client = Client(cl, set_as_default=False)
    yield cl, client
    client.close()
    cl.close()


@pytest.fixture
def cluster(shared_cluster):
    """The shared cluster, with both its workers up (after the tests that kill them).

    A worker whose restart takes longer than ``distributed.deploy.lost-worker-timeout``
    (15 s: a loaded machine) is dropped by the cluster; asking for 2 brings it back.
    """
    cl, client = shared_cluster
    deadline = time.monotonic() + 180
    while len(client.nthreads()) < 2:
        assert time.monotonic() < deadline, "the shared cluster did not get its workers back"
        cl.scale(2)
        time.sleep(0.5)
    return shared_cluster


@pytest.fixture(scope="module")
def first_run(inputs, shared_cluster, tmp_path_factory):
    """The good and bad files through the shared cluster once."""
    outdir = tmp_path_factory.mktemp("first")
    files = [str(p) for p in inputs["good"]] + [str(p) for p in inputs["bad"].values()]
    summary = run_batch(RECIPE, files, outdir, scheduler=shared_cluster[1], progress=False)
    return files, outdir, summary


def by_file(summary):
    return {row["file"]: row for row in summary}


def check_complete_outputs(summary, files, outdir, inputs, expect_status):
    """Every good file's FITS and catalog exist, are readable and match a direct run."""
    rows = by_file(summary)
    assert list(summary["file"]) == files
    pipe = Pipeline.from_recipe(RECIPE)
    for path in map(str, inputs["good"]):
        row = rows[path]
        assert row["status"] == expect_status, row["message"]
        out = output_paths(path, outdir)
        assert row["outputs"].split(";") == [out["fits"], out["catalog"]]
        prov = read_provenance(out["fits"])
        assert prov["recipe"]["stages"] == RECIPE["stages"]
        assert prov["input"] == os.path.basename(path)
        direct = pipe.run(load_image(path))
        with fits.open(out["fits"]) as hdul:
            np.testing.assert_allclose(hdul["SCI"].data, direct.image, rtol=1e-6, atol=1e-7)
        catalog = QTable.read(out["catalog"], format="ascii.ecsv")
        assert len(catalog) == row["n_sources"] == len(direct.catalog) > 0
        np.testing.assert_allclose(catalog["x_centroid"], direct.catalog["x_centroid"], atol=1e-4)
        np.testing.assert_allclose(catalog["flux"].value, direct.catalog["flux"].value,
                                   rtol=1e-5)
    assert partial_files(outdir) == []


def test_bad_files_fail_and_the_others_finish(first_run, inputs):
    files, outdir, summary = first_run
    assert summary.colnames == ["file", "status", "seconds", "n_sources", "outputs", "message"]
    check_complete_outputs(summary, files, outdir, inputs, "done")
    rows = by_file(summary)
    for why, path in inputs["bad"].items():
        row = rows[str(path)]
        assert row["status"] == "failed" and row["outputs"] == "" and row["n_sources"] == -1
        assert row["message"], why
        assert not os.path.exists(output_paths(path, outdir)["fits"])
    assert "not a FITS file" in rows[str(inputs["bad"]["not_fits"])]["message"]
    assert "1-D" in rows[str(inputs["bad"]["one_d"])]["message"]
    assert "box_size" in rows[str(inputs["bad"]["too_small"])]["message"]
    # The summary on disk is the table returned.
    on_disk = Table.read(os.path.join(outdir, "batch_summary.ecsv"), format="ascii.ecsv")
    assert list(on_disk["file"]) == list(summary["file"])
    assert list(on_disk["status"]) == list(summary["status"])
    assert list(on_disk["n_sources"]) == list(summary["n_sources"])
    assert on_disk.meta["recipe"]["stages"] == RECIPE["stages"]


def test_inputs_are_not_modified(inputs, cluster, tmp_path, unchanged_files):
    files = [str(p) for p in inputs["good"][:1]] + [str(inputs["bad"]["truncated"])]
    unchanged_files(*files)
    run_batch(RECIPE, files, tmp_path / "out", scheduler=cluster[1], progress=False)


def test_stacked_catalog_holds_each_files_sources(first_run, inputs):
    files, outdir, summary = first_run
    stacked = QTable.read(os.path.join(outdir, "catalog_all.ecsv"), format="ascii.ecsv")
    assert stacked.colnames[0] == "file"
    for path in map(str, inputs["good"]):
        mine = stacked[stacked["file"] == path]
        catalog = QTable.read(output_paths(path, outdir)["catalog"], format="ascii.ecsv")
        assert len(mine) == len(catalog)
        np.testing.assert_allclose(mine["x_centroid"], catalog["x_centroid"])
        # Against the truth: the rows labelled with this file find this frame's
        # bright stars, and far fewer of another frame's.
        stars = inputs["truths"][path]
        bright = stars[(stars["snr"] > 50) & (stars["x"] > 8) & (stars["x"] < SHAPE[1] - 8)
                       & (stars["y"] > 8) & (stars["y"] < SHAPE[0] - 8)]
        assert len(bright) >= 2

        def matched(table):
            d = np.hypot(np.asarray(mine["x_centroid"])[:, None] - np.asarray(table["x"])[None],
                         np.asarray(mine["y_centroid"])[:, None] - np.asarray(table["y"])[None])
            return int((d.min(axis=0) < 1.5).sum())

        assert matched(bright) >= 0.8 * len(bright)
        other = inputs["truths"][str(next(p for p in inputs["good"] if str(p) != path))]
        other_bright = other[other["snr"] > 50]
        assert matched(other_bright) <= 0.3 * len(other_bright)
    assert set(stacked["file"]) == set(map(str, inputs["good"]))
    assert len(stacked) == sum(r["n_sources"] for r in summary if r["status"] == "done")
    # The same table as astropy's vstack of the files' catalogs, column by column.
    tables = []
    for path in files:
        name = output_paths(path, outdir)["catalog"]
        if os.path.exists(name):
            table = QTable.read(name, format="ascii.ecsv")
            table.add_column(np.full(len(table), path), name="file", index=0)
            tables.append(table)
    reference = vstack(tables, metadata_conflicts="silent")
    assert stacked.colnames == reference.colnames
    for name in reference.colnames:
        assert getattr(stacked[name], "unit", None) == getattr(reference[name], "unit", None)
        np.testing.assert_array_equal(np.asarray(stacked[name]), np.asarray(reference[name]))
    assert stacked.meta["recipe"]["stages"] == RECIPE["stages"]


def test_stacked_catalog_of_files_with_different_columns(inputs, cluster, tmp_path):
    """A frame without WCS or unit has no sky or calibrated columns: those rows are masked."""
    bare = tmp_path / "bare.fits"
    with fits.open(inputs["good"][0]) as hdul:
        fits.writeto(bare, np.asarray(hdul["SCI"].data, dtype=np.float32))
    files = [str(inputs["good"][0]), str(bare)]
    summary = run_batch(RECIPE, files, tmp_path / "out", scheduler=cluster[1], progress=False)
    assert list(summary["status"]) == ["done", "done"]
    one, two = (QTable.read(output_paths(f, tmp_path / "out")["catalog"], format="ascii.ecsv")
                for f in files)
    missing = set(one.colnames) - set(two.colnames)
    assert "ra" in missing
    stacked = QTable.read(tmp_path / "out" / "catalog_all.ecsv", format="ascii.ecsv")
    assert len(stacked) == len(one) + len(two)
    assert set(stacked.colnames) == {"file"} | set(one.colnames) | set(two.colnames)
    rows_two = stacked["file"] == str(bare)
    assert np.all(stacked["ra"].mask[rows_two]) and not np.any(stacked["ra"].mask[~rows_two])
    np.testing.assert_allclose(np.asarray(stacked["x_centroid"][rows_two]),
                               np.asarray(two["x_centroid"]))


def test_second_run_skips_everything_done(first_run, inputs, cluster, tmp_path):
    files, outdir, _ = first_run
    outdir2 = tmp_path / "again"
    shutil.copytree(outdir, outdir2)
    before = {n: os.stat(outdir2 / n).st_mtime_ns for n in os.listdir(outdir2)
              if n.endswith(("_processed.fits", "_catalog.ecsv"))}
    summary = run_batch(RECIPE, files, outdir2, scheduler=cluster[1], progress=False)
    rows = by_file(summary)
    assert {rows[str(p)]["status"] for p in inputs["good"]} == {"skipped"}
    assert {rows[str(p)]["status"] for p in inputs["bad"].values()} == {"failed"}
    check_complete_outputs(summary, files, outdir2, inputs, "skipped")
    after = {n: os.stat(outdir2 / n).st_mtime_ns for n in before}
    assert after == before  # nothing was rewritten
    stacked = QTable.read(outdir2 / "catalog_all.ecsv", format="ascii.ecsv")
    assert len(stacked) == sum(r["n_sources"] for r in summary if r["status"] == "skipped")

    # overwrite=True redoes them.
    summary = run_batch(RECIPE, files[:1], outdir2, scheduler=cluster[1], overwrite=True,
                        progress=False)
    assert list(summary["status"]) == ["done"]
    name = os.path.basename(output_paths(files[0], outdir2)["fits"])
    assert os.stat(outdir2 / name).st_mtime_ns > before[name]


def test_resume_redoes_only_what_is_missing_or_stale(first_run, inputs, cluster, tmp_path):
    files, outdir, _ = first_run
    good = [str(p) for p in inputs["good"]]
    resumed = tmp_path / "resumed"
    shutil.copytree(outdir, resumed)
    # As if the batch had stopped: one file never written, one with only its
    # catalog written (the FITS, with the provenance, is written last).
    os.unlink(output_paths(good[0], resumed)["fits"])
    os.unlink(output_paths(good[0], resumed)["catalog"])
    os.unlink(output_paths(good[1], resumed)["fits"])
    summary = run_batch(RECIPE, good, resumed, scheduler=cluster[1], progress=False)
    assert list(summary["status"]) == ["done", "done", "skipped"]
    for path in good:
        assert os.path.exists(output_paths(path, resumed)["fits"])

    # Another recipe: nothing matches its provenance, everything is redone.
    other = Pipeline.from_recipe(RECIPE)
    other.set_params(2, threshold_sigma=8.0)
    summary = run_batch(other.to_recipe(), good, resumed, scheduler=cluster[1], progress=False)
    assert set(summary["status"]) == {"done"}
    assert read_provenance(output_paths(good[0], resumed)["fits"])["recipe"]["stages"][2][
        "params"]["threshold_sigma"] == 8.0

    # A changed input (same name, other pixels) is redone; the others skipped.
    changed = tmp_path / "inputs"
    changed.mkdir()
    copies = [shutil.copy(p, changed / os.path.basename(p)) for p in good]
    moved = tmp_path / "moved"
    shutil.copytree(outdir, moved)
    with fits.open(copies[2], mode="update") as hdul:
        hdul["SCI"].data[10:20, 10:20] += 1.0
    summary = run_batch(RECIPE, copies, moved, scheduler=cluster[1], progress=False)
    assert list(summary["status"]) == ["skipped", "skipped", "done"]


def _worker_pids(cl):
    """Worker address -> pid of the worker process (from the in-process nannies).

    Only workers up and running: a nanny restarting a worker still holds the
    old address, and a process killed while it starts is not restarted.
    """
    from distributed.core import Status

    return {n.worker_address: n.process.pid for n in cl.workers.values()
            if n.status == Status.running and n.process is not None
            and n.process.status == Status.running and n.process.pid is not None}


def _kill_worker_running(cl, client, index, timeout=120):
    """SIGKILL the worker process that is running task ``index`` of the batch; return its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for address, keys in client.processing().items():
            if any(str(k).startswith("jwst-batch-") and str(k).rsplit("-", 1)[1] == str(index)
                   for k in keys):
                pid = _worker_pids(cl).get(address)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    # Wait for the scheduler to see the death, so that a next
                    # call does not find the task still listed at this address.
                    while address in client.scheduler_info(n_workers=-1)["workers"]:
                        assert time.monotonic() < deadline, f"{address} never went away"
                        time.sleep(0.02)
                    return pid
        time.sleep(0.02)
    raise AssertionError(f"task {index} was never seen running")


def _run_in_thread(**kwargs):
    out = {}

    def target():
        try:
            out["summary"] = run_batch(**kwargs)
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def _pid_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_killed_worker_task_is_retried(inputs, cluster, tmp_path, unchanged_files):
    cl, client = cluster
    files = [str(inputs["slow"]), str(inputs["good"][0])]
    unchanged_files(*files)
    outdir = tmp_path / "killed"
    thread, out = _run_in_thread(recipe=SLOW_RECIPE, files=files, outdir=outdir,
                                 scheduler=client, progress=False)
    pid = _kill_worker_running(cl, client, 0)
    thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in out
    assert _pid_gone(pid)
    summary = out["summary"]
    assert list(summary["status"]) == ["done", "done"], list(summary["message"])
    with fits.open(output_paths(files[0], outdir)["fits"]) as hdul:
        assert hdul["SCI"].data.shape == (512, 512)
        assert np.isfinite(hdul["SCI"].data).all()
    assert partial_files(outdir) == []


def test_worker_that_keeps_dying_gives_a_failed_row(inputs, cluster, tmp_path):
    cl, client = cluster
    files = [str(inputs["slow"])]
    outdir = tmp_path / "dying"
    thread, out = _run_in_thread(recipe=SLOW_RECIPE, files=files, outdir=outdir,
                                 scheduler=client, progress=False)
    # The cluster forgives one death (retries=1): the second fails the file.
    for _ in range(2):
        assert _pid_gone(_kill_worker_running(cl, client, 0))
    thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in out
    row = out["summary"][0]
    assert row["status"] == "failed"
    assert "died 2 times" in row["message"] and "memory" in row["message"]
    assert not os.path.exists(output_paths(files[0], outdir)["fits"])
    assert partial_files(outdir) == []


def test_default_local_cluster_and_progress(inputs, tmp_path, capsys, unchanged_files):
    files = [str(inputs["good"][0]), str(inputs["bad"]["not_fits"])]
    unchanged_files(*files)
    recipe = Pipeline([("noise_reduction", {"method": "gaussian", "sigma": 1.0})]).to_recipe()
    summary = run_batch(recipe, files, tmp_path / "local", workers=2, dashboard_address=None)
    assert list(summary["status"]) == ["done", "failed"]
    with fits.open(tmp_path / "local" / "frame1_cal_processed.fits") as hdul:
        direct = Pipeline.from_recipe(recipe).run(load_image(files[0])).image
        np.testing.assert_allclose(hdul["SCI"].data, direct, rtol=1e-6, atol=1e-7)
    assert summary.meta["n_workers"] == 2
    assert summary.meta["scheduler"].startswith("tcp://127.0.0.1:")
    err = capsys.readouterr().err
    assert "2 worker(s)" in err
    assert "2/2 files: 1 done, 0 skipped, 1 failed" in err
    assert partial_files(tmp_path / "local") == []


# -- refusals, before any work -------------------------------------------------------
def test_bad_recipe_is_refused_before_anything_starts(inputs, tmp_path):
    bad = {**RECIPE, "stages": [{"stage": "no_such_stage", "params": {}}]}
    with pytest.raises(InputError, match="no stage named 'no_such_stage'"):
        run_batch(bad, [str(inputs["good"][0])], tmp_path / "out")
    with pytest.raises(InputError, match="box_size"):
        run_batch({**RECIPE, "stages": [{"stage": "background_subtraction",
                                         "params": {"box_size": 2}}]},
                  [str(inputs["good"][0])], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_clashing_outputs_are_refused(inputs, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(inputs["good"][0], a / "x_cal.fits")
    shutil.copy(inputs["good"][0], b / "x_cal.fits")
    with pytest.raises(InputError, match="would write the same output x_cal_processed.fits"):
        run_batch(RECIPE, [a / "x_cal.fits", b / "x_cal.fits"], tmp_path / "out")
    shutil.copy(inputs["good"][0], a / "x_cal_processed.fits")
    with pytest.raises(InputError, match="written over") as info:
        run_batch(RECIPE, [a / "x_cal.fits", a / "x_cal_processed.fits"], a)
    assert info.value.param == "outdir"


def test_bad_cluster_options(inputs, tmp_path):
    files = [str(inputs["good"][0])]
    with pytest.raises(InputError, match="workers must be an integer between 1 and") as info:
        run_batch(RECIPE, files, tmp_path / "out", workers=0)
    assert info.value.param == "workers"
    with pytest.raises(InputError, match="workers applies to the local cluster only"):
        run_batch(RECIPE, files, tmp_path / "out", workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(InputError, match="retries must be"):
        run_batch(RECIPE, files, tmp_path / "out", retries=-1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        run_batch(RECIPE, files, tmp_path / "file")


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(60)
def test_unreachable_scheduler_is_an_input_error(inputs, tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(InputError, match="could not reach the Dask scheduler at " + address) as info:
        run_batch(RECIPE, [str(inputs["good"][0])], tmp_path / "out", scheduler=address,
                  timeout=2)
    assert info.value.param == "scheduler"
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(60)
def test_scheduler_without_workers_is_an_input_error(inputs, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                      scheduler_kwargs={"dashboard": False}) as empty:
        with pytest.raises(InputError, match="has no workers"):
            run_batch(RECIPE, [str(inputs["good"][0])], tmp_path / "out",
                      scheduler=empty.scheduler_address, timeout=1)


# -- expand_inputs -----------------------------------------------------------------
def test_expand_inputs(tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    for name in ("b_cal.fits", "a_i2d.fits.gz", "notes.txt", "sub/c.fits"):
        (d / name).write_bytes(b"")
    assert batch.expand_inputs([str(d)]) == [str(d / "a_i2d.fits.gz"), str(d / "b_cal.fits")]
    assert batch.expand_inputs(str(d / "*")) == [str(d / "a_i2d.fits.gz"), str(d / "b_cal.fits")]
    assert batch.expand_inputs([str(d / "**" / "*.fits")]) == [str(d / "b_cal.fits"),
                                                              str(d / "sub" / "c.fits")]
    # duplicates go, order stays, a named file is kept whatever its name
    assert batch.expand_inputs([str(d / "b_cal.fits"), str(d), str(d / "notes.txt")]) == [
        str(d / "b_cal.fits"), str(d / "a_i2d.fits.gz"), str(d / "notes.txt")]
    # a missing file is the batch's to report; a pattern matching nothing is an error
    assert batch.expand_inputs([str(d / "missing.fits")]) == [str(d / "missing.fits")]
    with pytest.raises(InputError, match="no FITS files match"):
        batch.expand_inputs([str(d / "*.fts")])
    with pytest.raises(InputError, match="holds no FITS files"):
        batch.expand_inputs([str(d / "sub" / ".." / "sub"), str(tmp_path)])
    with pytest.raises(InputError, match="no input files"):
        batch.expand_inputs([])


def test_missing_file_is_a_failed_row(inputs, cluster, tmp_path):
    missing = str(tmp_path / "missing_cal.fits")
    summary = run_batch(RECIPE, [missing, str(inputs["good"][0])], tmp_path / "out",
                        scheduler=cluster[1], progress=False)
    assert list(summary["status"]) == ["failed", "done"]
    assert "no such file" in summary["message"][0]


def test_recipe_without_catalog(inputs, cluster, tmp_path):
    recipe = Pipeline([("noise_reduction", {"method": "gaussian", "sigma": 1.0})]).to_recipe()
    files = [str(p) for p in inputs["good"][:2]]
    summary = run_batch(recipe, files, tmp_path / "out", scheduler=cluster[1], progress=False)
    assert list(summary["status"]) == ["done", "done"]
    assert list(summary["n_sources"]) == [-1, -1]
    stacked = QTable.read(tmp_path / "out" / "catalog_all.ecsv", format="ascii.ecsv")
    assert stacked.colnames == ["file"] and len(stacked) == 0
    summary = run_batch(recipe, files, tmp_path / "out", scheduler=cluster[1], progress=False)
    assert list(summary["status"]) == ["skipped", "skipped"]


def test_a_given_cluster_is_left_running(inputs, cluster, tmp_path):
    cl, client = cluster
    files = [str(inputs["good"][1])]
    summary = run_batch(RECIPE, files, tmp_path / "a", scheduler=cl, progress=False)
    assert list(summary["status"]) == ["done"]
    summary = run_batch(RECIPE, files, tmp_path / "b", scheduler=client, progress=False)
    assert list(summary["status"]) == ["done"]
    assert summary.meta["scheduler"] == cl.scheduler_address
    assert client.status == "running"
    assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2


def test_own_cluster_brings_back_a_worker_it_dropped(inputs, tmp_path):
    """A worker killed, and dropped by the cluster before its restart: the batch finishes.

    With ``lost-worker-timeout`` at 0 the cluster gives up on a dead worker at
    once (as it does after 15 s on a loaded machine); run_batch must scale
    its own cluster back to size instead of waiting for ever.
    """
    import dask
    import distributed  # noqa: F401  (its settings must be loaded before they are changed)
    import psutil

    d = tmp_path / "in"
    d.mkdir()
    files = [shutil.copy(inputs["slow"], d / f"slow{i}.fits") for i in range(3)]
    outdir = tmp_path / "out"
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "0s"}):
        thread, out = _run_in_thread(recipe=SLOW_RECIPE, files=files, outdir=outdir,
                                     workers=1, dashboard_address=None, progress=False)
        deadline = time.monotonic() + 240
        while not (outdir / "slow0_processed.fits").exists():
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        workers = [p for p in me.children(recursive=True) if p.pid not in before
                   and "spawn_main" in " ".join(p.cmdline())
                   and "resource_tracker" not in " ".join(p.cmdline())]
        assert len(workers) == 1
        workers[0].kill()
        thread.join(timeout=280)
    assert not thread.is_alive() and "error" not in out
    status = list(out["summary"]["status"])
    # The first file may have been written just before its worker died: its retry skips it.
    assert status[0] in ("done", "skipped") and status[1:] == ["done", "done"], status
    assert partial_files(outdir) == []
