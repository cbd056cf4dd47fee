"""The composition layer: schemas, registry, incremental runs, recipes."""

import json

import numpy as np
import pytest

import jwst_widgets
from jwst_widgets import InputError, Pipeline, algorithms
from jwst_widgets.pipeline import default_registry
from jwst_widgets.pipeline.recipe import FORMAT_VERSION


@pytest.fixture(scope="module")
def frame():
    return jwst_widgets.datasets.nircam_like(shape=(384, 384), seed=3)


CHAIN = [("background_subtraction", {"box_size": 32}),
         ("noise_reduction", {"method": "gaussian", "sigma": 1.0}),
         ("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.5}),
         ("aperture_photometry", {"radius": 4.0, "annulus_inner": 8.0, "annulus_outer": 12.0}),
         ("statistics", {})]


def test_registry_lists_research_document_vocabulary():
    reg = {a["name"]: a for a in algorithms()}
    assert list(reg) == ["background_subtraction", "noise_reduction", "enhancement",
                         "source_detection", "statistics", "aperture_photometry",
                         "psf_photometry"]
    bg = reg["background_subtraction"]["parameters"]
    assert {"box_size", "filter_size", "sigma_clip"} <= set(bg)
    assert bg["box_size"] == {**bg["box_size"], "type": "integer", "default": 50}
    nr = reg["noise_reduction"]["parameters"]
    assert nr["method"]["enum"] == ["gaussian", "median", "astropy_gaussian", "bilateral"]
    assert {"kernel_size", "sigma"} <= set(nr)
    sd = reg["source_detection"]["parameters"]
    assert {"method", "threshold_sigma", "fwhm"} <= set(sd)
    assert set(sd["method"]["enum"]) >= {"daofind", "segmentation"}
    for stage in reg.values():
        assert stage["category"] and stage["description"]
        for p in stage["parameters"].values():
            assert p["type"] in ("integer", "float", "string", "boolean", "box")
            assert "default" in p
    json.dumps(algorithms())  # plain data


def test_declared_choices_match_processing_modules():
    from jwst_widgets.processing import background, enhance, filters
    reg = default_registry()
    assert reg["background_subtraction"].param("estimator").choices == tuple(background.ESTIMATORS)
    assert reg["noise_reduction"].param("method").choices == tuple(filters.METHODS)
    assert reg["noise_reduction"].param("kernel_size").max == filters.KERNEL_SIZE_MAX
    assert reg["noise_reduction"].param("sigma").max == filters.SIGMA_MAX
    assert reg["enhancement"].param("stretch").choices == tuple(enhance.STRETCHES)
    assert reg["enhancement"].param("interval").choices == tuple(enhance.INTERVALS)


def test_every_bad_value_is_refused_by_name():
    """Generated from the declarations: every parameter refuses every bad value."""
    count = 0
    for spec in default_registry():
        for p in spec.params:
            for bad in p.bad_values():
                with pytest.raises(InputError) as info:
                    spec.validate({p.name: bad})
                assert p.name in str(info.value) and info.value.param == p.name
                count += 1
    assert count > 150


def test_validation_messages():
    pipe = Pipeline(["background_subtraction"])
    with pytest.raises(InputError, match=r"box_size must be between 4 and 1024 px; got 2000"):
        pipe.set_params(0, box_size=2000)
    with pytest.raises(InputError, match="no parameter 'boxsize'.*box_size"):
        pipe.set_params(0, boxsize=3)
    with pytest.raises(InputError, match="estimator must be one of .*'biweight'"):
        pipe.set_params(0, estimator="magic")
    with pytest.raises(InputError, match="no stage named 'denoise'"):
        Pipeline(["denoise"])
    assert pipe.params(0)["box_size"] == 50  # nothing changed


def test_run_outputs_and_catalog(frame):
    pipe = Pipeline(CHAIN)
    result = pipe.run(frame.image)
    assert result.image.shape == frame.image.data.shape
    bg = result.stage("background_subtraction")
    assert bg["background"].shape == frame.image.data.shape
    assert bg["background_rms"].shape == frame.image.data.shape
    assert all(s.seconds >= 0 for s in result.stages)
    cat = result.catalog
    assert len(cat) > 10
    for col in ("id", "x_centroid", "y_centroid", "aperture_sum", "flux", "flux_jy", "mag_ab",
                "ra", "dec"):
        assert col in cat.colnames
    assert "statistics" in result.products


def test_incremental_runs_only_what_changed_and_equals_fresh_run(frame):
    pipe = Pipeline(CHAIN)
    first = pipe.run(frame.image)
    assert all(not s.cached for s in first.stages)
    runs_before = dict(pipe.runs)
    pipe.set_params(2, threshold_sigma=8.0)
    second = pipe.run(frame.image)
    # statistics reads only the image, which detection does not change: cached too
    assert [s.cached for s in second.stages] == [True, True, False, False, True]
    assert pipe.runs["background_subtraction"] == runs_before["background_subtraction"]
    assert pipe.runs["noise_reduction"] == runs_before["noise_reduction"]
    assert pipe.runs["source_detection"] == runs_before["source_detection"] + 1
    fresh = Pipeline(CHAIN)
    fresh.set_params(2, threshold_sigma=8.0)
    again = fresh.run(frame.image)
    np.testing.assert_array_equal(second.image, again.image)
    assert len(second.catalog) == len(again.catalog) < len(first.catalog)
    np.testing.assert_array_equal(second.catalog["flux"], again.catalog["flux"])
    # back to the first value: everything from the cache
    pipe.set_params(2, threshold_sigma=5.0)
    third = pipe.run(frame.image)
    assert all(s.cached for s in third.stages)
    np.testing.assert_array_equal(third.catalog["flux"], first.catalog["flux"])


def test_disable_move_remove(frame):
    pipe = Pipeline(CHAIN[:3])
    pipe.set_enabled(1, False)
    res = pipe.run(frame.image)
    assert not res.stages[1].enabled
    np.testing.assert_array_equal(res.output_of(1).data, res.output_of(0).data)
    pipe.move(2, 0)
    with pytest.raises(InputError, match="stage index 7"):
        pipe.move(7, 0)
    assert pipe.remove(0) == "source_detection"
    assert [s.name for s in pipe.stages] == ["background_subtraction", "noise_reduction"]


def test_checks_against_the_image(frame):
    pipe = Pipeline([("background_subtraction", {"box_size": 1000})])
    with pytest.raises(InputError, match="box_size must be between 4 and 384 pixels for a "
                                         "384x384 image; got 1000"):
        pipe.run(frame.image)
    with pytest.raises(InputError, match="aperture_photometry needs a catalog"):
        Pipeline(["aperture_photometry"]).run(frame.image)
    with pytest.raises(InputError, match="annulus_inner must be larger than radius"):
        Pipeline(["source_detection", ("aperture_photometry",
                                       {"radius": 9, "annulus_inner": 8})]).run(frame.image)


def test_recipe_round_trip_identical_results(frame, tmp_path):
    pipe = Pipeline(CHAIN)
    pipe.set_enabled(1, False)
    recipe = pipe.to_recipe()
    assert recipe["format"] == "jwst-widgets-recipe"
    assert recipe["format_version"] == FORMAT_VERSION
    text = json.dumps(recipe)
    path = tmp_path / "chain.json"
    jwst_widgets.pipeline.write_recipe(recipe, path)
    for source in (recipe, text, path, str(path)):
        again = Pipeline.from_recipe(source)
        assert again.to_recipe()["stages"] == recipe["stages"]
    a = pipe.run(frame.image)
    b = Pipeline.from_recipe(path).run(frame.image)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.catalog["aperture_sum"], b.catalog["aperture_sum"])


def _recipe(**stage):
    return {"format": "jwst-widgets-recipe", "format_version": 1,
            "stages": [{"stage": "background_subtraction", "params": {}, **stage}]}


@pytest.mark.parametrize("recipe,match", [
    ({"format": "something"}, "not a jwst-widgets recipe"),
    ({"format": "jwst-widgets-recipe", "format_version": 99, "stages": []},
     "newer jwst-widgets"),
    (_recipe(stage="blur"), r"recipe stage 1: no stage named 'blur'; the stages are"),
    (_recipe(params={"box": 3}), "no parameter 'box'.*box_size"),
    (_recipe(params={"box_size": "big"}), "box_size must be a number|box_size must be an integer"),
    (_recipe(version=7), "version 7, newer"),
    (_recipe(code="import os"), "unknown key"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
])
def test_bad_recipes(recipe, match):
    with pytest.raises(InputError, match=match):
        Pipeline.from_recipe(recipe if not isinstance(recipe, dict) else json.dumps(recipe))


def test_recipe_aliases_for_renamed_parameters():
    recipe = {"format": "jwst-widgets-recipe", "format_version": 1, "stages": [
        {"stage": "source_detection", "params": {"method": "segmentation", "npixels": 7,
                                                 "nlevels": 16}}]}
    params = Pipeline.from_recipe(recipe).params(0)
    assert params["n_pixels"] == 7 and params["n_levels"] == 16
    assert "npixels" not in params


@pytest.mark.parametrize("method", ["daofind", "iraf", "segmentation"])
def test_stage_messages_and_zero_row_catalog(method):
    # pure noise at a high threshold: zero rows, same columns, photometry still runs
    noise = np.random.default_rng(5).normal(10.0, 1.0, (128, 128))
    res = Pipeline([("background_subtraction", {"box_size": 32}),
                    ("source_detection", {"threshold_sigma": 50, "method": method}),
                    "aperture_photometry"]).run(jwst_widgets.Image.from_array(noise))
    assert len(res.catalog) == 0
    assert {"x_centroid", "y_centroid", "aperture_sum", "flux"} <= set(res.catalog.colnames)
    assert any("no sources found" in m for m in res.stage("source_detection").messages)


def test_import_is_cheap():
    import subprocess
    import sys
    code = ("import sys, jwst_widgets; jwst_widgets.algorithms(); "
            "heavy = [m for m in ('photutils', 'bqplot', 'dask', 'astroquery', 'ipywidgets') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
