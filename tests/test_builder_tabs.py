"""The builder's tabs not shown first make their panels when first shown, or asked for.

Each widget made in a kernel is a message to the browser: a new builder makes
only what is on screen (the Catalog tab is the one shown first), and the
Statistics, Export, MAST and "Apply to files" panels are made when their tab
is selected or their attribute is read.
"""

import ipywidgets as w
import pytest
from ipywidgets.widgets.widget import _instances

from jwst_widgets import InputError, PipelineBuilder
from jwst_widgets.datasets import nircam_like
from jwst_widgets.widgets.batch_panel import BatchPanel
from jwst_widgets.widgets.export_panel import ExportPanel
from jwst_widgets.widgets.mast_browser import MastBrowser
from jwst_widgets.widgets.stats_panel import StatisticsPanel
from jwst_widgets.widgets.tabs import DeferredTab

#: tab title -> (builder attribute, panel class)
DEFERRED = {"Statistics": ("stats_panel", StatisticsPanel),
            "Export": ("export_panel", ExportPanel),
            "MAST": ("mast", MastBrowser),
            "Apply to files": ("batch_panel", BatchPanel)}
PANEL_CLASSES = (StatisticsPanel, ExportPanel, MastBrowser, BatchPanel)


@pytest.fixture(scope="module")
def frame():
    return nircam_like(shape=(256, 256), seed=11, n_stars=40, n_galaxies=10)


class Made:
    """The widget models made since this was created."""

    def __init__(self):
        self.before = set(_instances)

    def __call__(self, cls=w.Widget):
        return [x for k, x in list(_instances.items())
                if k not in self.before and isinstance(x, cls)]


@pytest.fixture
def made():
    return Made()


@pytest.fixture
def builder(frame, made):
    b = PipelineBuilder(frame.image, width=300, height=280,
                        stages=[("source_detection", {"threshold_sigma": 5.0, "fwhm": 2.0})])
    yield b
    b.close()


def tab_of(builder, title):
    return builder.tabs.children[builder.tabs.titles.index(title)]


def test_a_new_builder_makes_none_of_the_hidden_panels(builder, made):
    assert builder.tabs.titles == ("Catalog", *DEFERRED, "Sky")
    assert builder.tabs.selected_index == 0
    assert builder.tabs.children[0] is builder.catalog_table
    assert made(PANEL_CLASSES) == []
    for title in DEFERRED:
        tab = tab_of(builder, title)
        assert isinstance(tab, DeferredTab) and tab.content is None and tab.children == ()
    assert builder.sky_tab.sky is None
    assert builder.wait_idle(60) and made(PANEL_CLASSES) == []  # a result changes nothing


@pytest.mark.parametrize("title", list(DEFERRED))
def test_selecting_a_tab_makes_its_panel_once(builder, made, title):
    attr, cls = DEFERRED[title]
    tab = tab_of(builder, title)
    n = len(made())
    # as the browser does when the tab is clicked
    builder.tabs.set_state({"selected_index": builder.tabs.titles.index(title)})
    panels = made(cls)
    assert len(panels) == 1 and tab.content is panels[0] and tab.children == (panels[0],)
    assert len(made()) - n > 10  # its widget models are made now, not with the builder
    assert getattr(builder, attr) is panels[0]
    # the other hidden panels are still not made
    assert made(PANEL_CLASSES) == panels
    builder.tabs.selected_index = 0
    builder.tabs.selected_index = builder.tabs.titles.index(title)
    assert made(cls) == panels


@pytest.mark.parametrize("title", list(DEFERRED))
def test_reading_the_attribute_makes_the_panel_once(builder, made, title):
    attr, cls = DEFERRED[title]
    panel = getattr(builder, attr)
    assert isinstance(panel, cls) and made(PANEL_CLASSES) == [panel]
    assert getattr(builder, attr) is panel
    assert tab_of(builder, title).children == (panel,)
    builder.tabs.selected_index = builder.tabs.titles.index(title)
    assert made(cls) == [panel]


def test_the_panels_made_late_work(builder, tmp_path):
    assert builder.wait_idle(60)
    builder.tabs.selected_index = builder.tabs.titles.index("Export")
    export = tab_of(builder, "Export").content
    export.folder.value = str(tmp_path)
    export.stem.value = "late"
    export.buttons["fits"].click()
    export.buttons["ecsv"].click()
    assert "wrote" in export.message.value
    assert (tmp_path / "late.fits").exists() and (tmp_path / "late_catalog.ecsv").exists()

    builder.tabs.selected_index = builder.tabs.titles.index("Statistics")
    builder.stats_panel.button.click()
    assert "biweight" in builder.stats_panel.output.value

    # the MAST browser's "open in the pipeline builder" loads into this builder
    mast = builder.mast
    mast.paths = [str(tmp_path / "late.fits")]
    mast.open_files()
    assert builder.wait_idle(60)
    assert builder.image.meta.get("path") == str(tmp_path / "late.fits")
    assert builder.downloads == [str(tmp_path / "late.fits")]
    builder.tabs.selected_index = builder.tabs.titles.index("Apply to files")
    batch = tab_of(builder, "Apply to files").content
    batch.use_downloads()  # the batch panel sees the builder's downloads
    assert batch.patterns() == [str(tmp_path / "late.fits")]


def test_a_deferred_tab_says_why_it_could_not_be_made_and_tries_again():
    answers = [InputError("not now"), w.Label("made")]

    def make():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    tab = DeferredTab(make)
    tabs = w.Tab(children=[w.Label("first"), tab])
    tab.watch(tabs)
    assert tab.content is None
    tabs.selected_index = 1
    assert tab.content is None and "not now" in tab.children[0].value
    tabs.selected_index = 0
    tabs.selected_index = 1
    assert tab.content.value == "made" and tab.children == (tab.content,)
