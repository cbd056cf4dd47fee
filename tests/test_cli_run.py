"""``jwst-widgets run`` from the command line, and `run_batch` on a cluster of its own processes.

A Dask scheduler and two workers are started here as separate processes
(``dask scheduler``, ``dask worker``) on 127.0.0.1 and stopped at the end of
the module; the CLI runs as ``python -m jwst_widgets.cli``.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable, Table

from jwst_widgets import Pipeline, datasets, load_image, run_batch
from jwst_widgets.pipeline.outputs import output_paths

RECIPE = Pipeline([
    ("background_subtraction", {"box_size": 64, "filter_size": 3}),
    ("source_detection", {"method": "daofind", "threshold_sigma": 5.0, "fwhm": 2.2}),
    ("aperture_photometry", {"radius": 4.0, "annulus_inner": 8.0, "annulus_outer": 12.0}),
]).to_recipe()

# Holds a worker for about half a second per 384^2 frame.
SLOW_RECIPE = Pipeline([("noise_reduction", {"method": "median", "kernel_size": 11})]).to_recipe()

DASK = os.path.join(os.path.dirname(sys.executable), "dask")
START_TIMEOUT = 120


def cli(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "jwst_widgets.cli", "run", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def partial_files(directory):
    return [n for n in os.listdir(directory) if n.startswith(".jw-") or n.endswith(".part")]


def stop(proc):
    """Stop a process group we started: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """``dask scheduler`` and ``dask worker --nworkers 2`` on 127.0.0.1; yields the address."""
    from distributed import Client

    d = tmp_path_factory.mktemp("dask")
    sched_file = d / "scheduler.json"
    logs = []
    procs = []

    def start(args, name):
        log = open(d / f"{name}.log", "wb")
        logs.append(log)
        procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True, cwd=d))
        return procs[-1]

    try:
        scheduler = start([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                           "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                           "--scheduler-file", str(sched_file)], "scheduler")
        deadline = time.monotonic() + START_TIMEOUT
        address = None
        while address is None:
            assert scheduler.poll() is None, (d / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            try:
                address = json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        assert address.startswith("tcp://127.0.0.1:")
        start([DASK, "worker", address, "--nworkers", "2", "--nthreads", "1", "--host",
               "127.0.0.1", "--no-dashboard", "--local-directory", str(d / "work")], "workers")
        with Client(address, set_as_default=False, timeout="30s") as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT)
        yield address
    finally:
        for proc in reversed(procs):
            stop(proc)
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    paths = []
    for seed in (11, 12):
        path = d / f"deep{seed}_cal.fits"
        datasets.nircam_like(shape=(320, 320), seed=seed).write(path)
        paths.append(path)
    recipe = tmp_path_factory.mktemp("recipe") / "recipe.json"
    recipe.write_text(json.dumps(RECIPE))
    return {"dir": d, "good": paths, "recipe": recipe}


def test_cli_on_a_scheduler_started_by_hand(external, frames, tmp_path, unchanged_files):
    d = tmp_path / "in"
    shutil.copytree(frames["dir"], d)
    (d / "broken_cal.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 100)
    files = sorted(d.iterdir())
    unchanged_files(*files)
    out = tmp_path / "out"

    first = cli(frames["recipe"], d, "-o", out, "--scheduler", external, "-q")
    assert first.returncode == 1, first.stderr
    assert "2 done, 0 skipped, 1 failed" in first.stdout
    assert "failed: " in first.stderr and "broken_cal.fits" in first.stderr
    summary = Table.read(out / "batch_summary.ecsv", format="ascii.ecsv")
    assert list(summary["file"]) == [str(p) for p in files]
    assert list(summary["status"]) == ["failed", "done", "done"]
    assert summary.meta["scheduler"] == external
    pipe = Pipeline.from_recipe(RECIPE)
    for path in frames["good"]:
        mine = d / path.name
        paths = output_paths(mine, out)
        direct = pipe.run(load_image(mine))
        with fits.open(paths["fits"]) as hdul:
            np.testing.assert_allclose(hdul["SCI"].data, direct.image, rtol=1e-6, atol=1e-7)
        catalog = QTable.read(paths["catalog"], format="ascii.ecsv")
        assert len(catalog) == len(direct.catalog) > 0
    stacked = QTable.read(out / "catalog_all.ecsv", format="ascii.ecsv")
    assert sorted(set(stacked["file"])) == [str(d / p.name) for p in frames["good"]]
    assert partial_files(out) == []

    # Again, the good ones only (a glob): skipped, nothing failed, exit status 0.
    third = cli(frames["recipe"], d / "deep*_cal.fits", "-o", out, "--scheduler", external)
    assert third.returncode == 0, third.stderr
    assert "0 done, 2 skipped, 0 failed" in third.stdout
    assert f"worker(s) at {external}" in third.stderr  # the progress report
    assert "2/2 files" in third.stderr


def test_run_batch_on_a_scheduler_address(external, frames, tmp_path, unchanged_files):
    unchanged_files(*frames["good"])
    summary = run_batch(frames["recipe"], frames["good"], tmp_path / "out", scheduler=external,
                        progress=False)
    assert list(summary["status"]) == ["done", "done"]
    assert all(n > 0 for n in summary["n_sources"])
    assert summary.meta["n_workers"] == 2
    for path in frames["good"]:
        assert os.path.exists(output_paths(path, tmp_path / "out")["catalog"])


def test_cli_bad_recipe_exits_2(frames, tmp_path):
    recipe = tmp_path / "bad.json"
    recipe.write_text(json.dumps({**RECIPE, "stages": [
        {"stage": "background_subtraction", "params": {"box_size": "big"}}]}))
    result = cli(recipe, frames["dir"], "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "box_size" in result.stderr
    result = cli(tmp_path / "missing.json", frames["dir"], "-o", tmp_path / "out")
    assert result.returncode == 2 and "no such file" in result.stderr
    result = cli(frames["recipe"], tmp_path / "nothing*.fits", "-o", tmp_path / "out")
    assert result.returncode == 2 and "no FITS files match" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_unreachable_scheduler_exits_2(frames, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli(frames["recipe"], frames["dir"], "-o", tmp_path / "out", "--scheduler",
                 f"127.0.0.1:{port}", env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert result.returncode == 2
    assert f"could not reach the Dask scheduler at 127.0.0.1:{port}" in result.stderr
    result = cli(frames["recipe"], frames["dir"], "-o", tmp_path / "out", "--scheduler",
                 "http://127.0.0.1:8787/status")
    assert result.returncode == 2 and "web address" in result.stderr


def test_cli_local_cluster_interrupted_then_resumed(tmp_path, unchanged_files):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(3)
    files = []
    for i in range(6):
        files.append(d / f"slow{i}.fits")
        fits.writeto(files[-1], rng.normal(size=(384, 384)).astype(np.float32))
    unchanged_files(*files)
    recipe = tmp_path / "slow.json"
    recipe.write_text(json.dumps(SLOW_RECIPE))
    out = tmp_path / "out"
    args = [sys.executable, "-m", "jwst_widgets.cli", "run", str(recipe), str(d), "-o",
            str(out), "--workers", "2"]
    # Ctrl-C in a terminal: SIGINT to the whole process group, workers included.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (out.is_dir() and any(n.endswith("_processed.fits") for n in os.listdir(out))):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        stop(proc)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Run the same command again to resume" in stderr
    summary = Table.read(out / "batch_summary.ecsv", format="ascii.ecsv")
    assert len(summary) == 6
    interrupted = [r["file"] for r in summary if "interrupted" in r["message"]]
    assert interrupted and all(r["status"] == "failed" for r in summary
                               if r["file"] in interrupted)
    assert partial_files(out) == []
    written = {str(p) for p in files if os.path.exists(output_paths(p, out)["fits"])}
    # Files running at Ctrl-C may still finish as the workers close; the others never start.
    assert 1 <= len(written) < 6
    for path in written:  # what was written is whole
        with fits.open(output_paths(path, out)["fits"]) as hdul:
            assert hdul["SCI"].data.shape == (384, 384)

    resumed = subprocess.run(args + ["-q"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = Table.read(out / "batch_summary.ecsv", format="ascii.ecsv")
    status = dict(zip(summary["file"], summary["status"]))
    assert {f for f, s in status.items() if s == "skipped"} == written
    assert {f for f, s in status.items() if s == "done"} == {str(p) for p in files} - written
    assert partial_files(out) == []
