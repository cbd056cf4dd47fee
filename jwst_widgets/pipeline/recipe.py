"""Recipes: a pipeline as versioned, validated JSON.

A recipe is plain data, never code::

    {
      "format": "jwst-widgets-recipe",
      "format_version": 1,
      "stages": [
        {"stage": "background_subtraction", "version": 1, "enabled": true,
         "params": {"box_size": 64, "filter_size": 3, "sigma_clip": 3.0, "estimator": "median"}},
        ...
      ]
    }

Loading validates every stage name, version, parameter name and value; an
error names the stage (by position and name) and the parameter, and lists
the valid ones. Renamed parameters keep working through their aliases.
"""

import json
import os

from ..errors import InputError, describe_choices
from ..io.write import atomic_write

__all__ = ["FORMAT", "FORMAT_VERSION", "make_recipe", "parse_recipe", "read_recipe",
           "write_recipe"]

FORMAT = "jwst-widgets-recipe"
FORMAT_VERSION = 1
MAX_RECIPE_BYTES = 1 << 20


def make_recipe(stages):
    """Return the recipe dict for a list of :class:`~jwst_widgets.pipeline.core.Stage`."""
    from ..io.write import package_versions
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": f"jwst-widgets {package_versions().get('jwst-widgets', 'unknown')}",
        "stages": [s.to_dict() for s in stages],
    }


def read_recipe(source):
    """Return the recipe dict from a dict, JSON text or a path to a JSON file."""
    if isinstance(source, dict):
        return source
    if isinstance(source, (bytes, bytearray)):
        if source[:2] == b"\x80\x04" or b"\x00" in source[:64]:
            raise InputError("a recipe is JSON text; this is binary data (a pickle?), which "
                             "is never loaded")
        source = source.decode("utf-8-sig", errors="replace")
    if isinstance(source, os.PathLike) or (isinstance(source, str)
                                            and not source.lstrip().startswith(("{", "["))):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise InputError(f"recipe {path}: no such file")
        if os.path.getsize(path) > MAX_RECIPE_BYTES:
            raise InputError(f"recipe {path}: too large to be a recipe")
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:2] == b"\x80\x04" or b"\x00" in raw[:64]:
            raise InputError(f"recipe {path}: binary data (a pickle?), not JSON text; "
                             "recipes are never unpickled")
        text = raw.decode("utf-8-sig", errors="replace")
        where = f"recipe {os.path.basename(path)}"
    elif isinstance(source, str):
        text, where = source, "recipe"
    else:
        raise InputError(f"a recipe is a dict, JSON text or a path; got {type(source).__name__}")
    try:
        recipe = json.loads(text.lstrip("\ufeff"))
    except ValueError as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{where}: nested too deeply to be a recipe") from None
    if not isinstance(recipe, dict):
        raise InputError(f"{where}: must be a JSON object with 'format' and 'stages'")
    return recipe


def parse_recipe(source, registry):
    """Validate a recipe; return a list of ``(spec, params, enabled)``."""
    recipe = read_recipe(source)
    fmt = recipe.get("format")
    if fmt != FORMAT:
        raise InputError(f"not a jwst-widgets recipe: 'format' is {fmt!r}, expected {FORMAT!r}")
    version = recipe.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"recipe 'format_version' must be a positive integer; got {version!r}")
    if version > FORMAT_VERSION:
        raise InputError(f"this recipe was written by a newer jwst-widgets (recipe format "
                         f"{version}); this version reads format {FORMAT_VERSION} and older: "
                         "upgrade jwst-widgets to read it")
    stages = recipe.get("stages")
    if not isinstance(stages, list):
        raise InputError("recipe 'stages' must be a list of stages")
    out = []
    for n, entry in enumerate(stages, 1):
        if not isinstance(entry, dict):
            raise InputError(f"recipe stage {n} must be an object with 'stage' and 'params'")
        unknown = set(entry) - {"stage", "version", "enabled", "params"}
        if unknown:
            raise InputError(f"recipe stage {n}: unknown key(s) {sorted(unknown)}; a stage has "
                             "'stage', 'version', 'enabled' and 'params'")
        name = entry.get("stage")
        if not isinstance(name, str) or name not in registry:
            raise InputError(f"recipe stage {n}: no stage named {name!r}; the stages are "
                             f"{describe_choices(registry.names)}", stage=str(name))
        spec = registry[name]
        sv = entry.get("version", spec.version)
        if not isinstance(sv, int) or isinstance(sv, bool):
            raise InputError(f"recipe stage {n} ({name}): 'version' must be an integer; got {sv!r}",
                             stage=name)
        if sv > spec.version:
            raise InputError(f"recipe stage {n} ({name}) is version {sv}, newer than this "
                             f"jwst-widgets knows ({spec.version}): upgrade jwst-widgets",
                             stage=name)
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise InputError(f"recipe stage {n} ({name}): 'enabled' must be true or false; "
                             f"got {enabled!r}", stage=name)
        params = entry.get("params", {})
        if not isinstance(params, dict):
            raise InputError(f"recipe stage {n} ({name}): 'params' must be an object", stage=name)
        try:
            params = spec.validate(params)
        except InputError as exc:
            raise InputError(f"recipe stage {n}: {exc.message}", param=exc.param,
                             stage=name) from None
        out.append((spec, params, enabled))
    return out


def write_recipe(recipe, path):
    """Write a recipe as indented JSON, atomically."""
    text = json.dumps(recipe, indent=2, sort_keys=False) + "\n"
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return os.fspath(path)
