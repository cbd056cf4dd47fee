"""The builder's "Apply to files" tab, driven in the kernel on a real local Dask cluster."""

import os

import pytest
from astropy.table import Table

from jwst_widgets import InputError, Pipeline, PipelineBuilder, load_image
from jwst_widgets.datasets import nircam_like

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    paths = []
    for seed in (1, 2, 3):
        path = folder / f"field{seed}_cal.fits"
        nircam_like(shape=(256, 256), seed=seed, n_stars=40, n_galaxies=10).write(path)
        paths.append(path)
    broken = folder / "broken_cal.fits"
    broken.write_bytes(paths[0].read_bytes()[:4000])
    return folder, paths, broken


@pytest.fixture
def builder(frames):
    _, paths, _ = frames
    b = PipelineBuilder(str(paths[0]), width=300, height=280,
                        stages=[("background_subtraction", {"box_size": 32}),
                                ("source_detection", {"threshold_sigma": 6.0, "fwhm": 2.2})])
    assert b.wait_idle(120)
    yield b
    b.close()


def test_apply_to_files_fills_the_table_and_opens_outputs(builder, frames, tmp_path,
                                                         unchanged_files):
    folder, paths, broken = frames
    unchanged_files(*paths, broken)
    panel = builder.batch_panel
    panel.run([str(folder / "*.fits")], tmp_path / "out", workers=1)
    assert panel.running or panel.summary is not None  # returned at once, work goes on
    assert builder.wait_idle(30)  # the builder stays usable meanwhile
    builder.set_params(1, threshold_sigma=7.0)
    assert panel.wait_idle(300) and panel.error is None
    summary = panel.summary
    assert len(summary) == 4 and panel.progress.value == 4
    status = dict(zip([os.path.basename(f) for f in summary["file"]], summary["status"]))
    assert status["broken_cal.fits"] == "failed"
    assert [status[p.name] for p in paths] == ["done"] * 3
    assert "failed" in panel.table.options[0][0] or any("failed" in o[0]
                                                        for o in panel.table.options)
    # the recipe applied is the builder's at the moment of the run (threshold 6)
    fresh = Pipeline([("background_subtraction", {"box_size": 32}),
                      ("source_detection", {"threshold_sigma": 6.0, "fwhm": 2.2})])
    expected = len(fresh.run(load_image(paths[1])).catalog)
    i = [os.path.basename(f) for f in summary["file"]].index(paths[1].name)
    assert summary["n_sources"][i] == expected
    assert len(Table.read(tmp_path / "out" / "catalog_all.ecsv")) == sum(
        n for n in summary["n_sources"] if n > 0)
    # open an output back in the builder
    out = panel.open_output(i)
    assert builder.wait_idle(60)
    assert builder.image.meta["path"] == os.path.abspath(out) or builder.image.origin == out
    with pytest.raises(InputError, match="no processed output"):
        panel.open_output([os.path.basename(f) for f in summary["file"]].index("broken_cal.fits"))
    # the chain changed meanwhile (threshold 7): a new run redoes the files ...
    panel.run(wait=True)
    assert sorted(set(panel.summary["status"])) == ["done", "failed"]
    # ... and once more with the same chain, everything up to date is skipped
    panel.run(wait=True)
    assert sorted(set(panel.summary["status"])) == ["failed", "skipped"]


def test_apply_to_files_refuses_nothing_to_do(builder, tmp_path):
    panel = builder.batch_panel
    with pytest.raises(InputError, match="no"):
        panel.run([str(tmp_path / "nothing_here_*.fits")], tmp_path / "out")
    panel.files.value = ""
    panel.run_button.click()
    assert "c0392b" in panel.status.value  # the message is shown, nothing raised
    assert not panel.running


def test_cancel_writes_the_summary_and_leaves_no_partial_file(builder, frames, tmp_path):
    folder, paths, _ = frames
    panel = builder.batch_panel
    panel.run([str(p) for p in paths], tmp_path / "out", workers=1)
    panel.cancel()
    assert panel.wait_idle(300)
    assert panel.summary is not None and len(panel.summary) == 3
    assert set(panel.summary["status"]) <= {"done", "failed"}
    left = [n for n in os.listdir(tmp_path / "out") if n.endswith(".part")]
    assert left == []
    assert (tmp_path / "out" / "batch_summary.ecsv").exists()
