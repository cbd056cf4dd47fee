"""The export tab: FITS with provenance, catalogs (ECSV, DS9), PNG, recipes."""

import html
import os

import ipywidgets as w

from ..errors import InputError
from ._html import error_html

__all__ = ["ExportPanel"]


class ExportPanel(w.VBox):
    """Buttons that call the builder's ``export_*`` and ``load_recipe`` methods."""

    def __init__(self, builder):
        self._builder = builder
        self.folder = w.Text(value=os.getcwd(), description="folder",
                             layout=w.Layout(width="480px"))
        self.stem = w.Text(value="", placeholder="file name stem (default: the image's name)",
                           description="name", layout=w.Layout(width="480px"))
        actions = [("FITS", "processed image with provenance", "fits", ".fits"),
                   ("catalog ECSV", "catalog as ECSV", "ecsv", "_catalog.ecsv"),
                   ("DS9 regions", "catalog as DS9 regions", "ds9", "_catalog.reg"),
                   ("PNG", "the view as shown", "png", ".png"),
                   ("recipe", "the chain as a JSON recipe", "recipe", "_recipe.json")]
        self.buttons = {}
        for label, tip, kind, suffix in actions:
            b = w.Button(description=label, tooltip=tip, icon="download",
                         layout=w.Layout(width="140px"))
            b.on_click(lambda _, k=kind, s=suffix: self._export(k, s))
            self.buttons[kind] = b
        self.recipe_path = w.Text(placeholder="recipe.json", description="recipe",
                                  layout=w.Layout(width="400px"))
        load = w.Button(description="load recipe", icon="upload", layout=w.Layout(width="140px"))
        load.on_click(lambda _: self._load_recipe())
        self.recipe_upload = w.FileUpload(accept=".json", multiple=False,
                                          description="upload recipe")
        self.recipe_upload.observe(self._on_upload, "value")
        self.message = w.HTML("")
        self.message.add_class("jw-export-message")
        super().__init__([self.folder, self.stem, w.HBox(list(self.buttons.values())),
                          w.HBox([self.recipe_path, load, self.recipe_upload]), self.message])

    def path_for(self, suffix):
        image = self._builder.image
        stem = self.stem.value.strip() or (
            _stem(image.name) + "_jw" if image is not None else "jwst_widgets")
        return os.path.join(os.path.expanduser(self.folder.value.strip() or "."), stem + suffix)

    def _export(self, kind, suffix):
        b = self._builder
        path = self.path_for(suffix)
        try:
            if kind == "fits":
                b.export_fits(path)
            elif kind in ("ecsv", "ds9"):
                b.export_catalog(path, format=kind)
            elif kind == "png":
                b.export_png(path)
            else:
                b.export_recipe(path)
            self.message.value = f"wrote {html.escape(path)}"
        except (InputError, OSError) as exc:
            self.message.value = error_html(exc)

    def _load_recipe(self):
        try:
            self._builder.load_recipe(self.recipe_path.value.strip())
            self.message.value = "recipe loaded"
        except InputError as exc:
            self.message.value = error_html(exc)

    def _on_upload(self, change):
        files = change["new"]
        if not files:
            return
        try:
            self._builder.load_recipe(bytes(files[0]["content"]).decode("utf-8", "replace"))
            self.message.value = "recipe loaded"
        except InputError as exc:
            self.message.value = error_html(exc)


def _stem(name):
    from ..pipeline.outputs import _stem as stem
    return stem(name)
