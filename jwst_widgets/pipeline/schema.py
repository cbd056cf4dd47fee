"""Parameter schemas and stage declarations.

One :class:`StageSpec` per stage declares its function and parameters. From
that one declaration come the registry listing (:func:`jwst_widgets.algorithms`),
the recipe keys, the validation of values, the widget controls, and the bad
values the tests generate.
"""

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from ..errors import InputError, describe_choices

__all__ = ["Param", "StageSpec", "Registry", "PARAM_TYPES"]

PARAM_TYPES = ("integer", "float", "string", "boolean", "box")


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of a stage.

    Parameters
    ----------
    name : str
        The keyword the stage function takes, and the recipe key.
    type : {"integer", "float", "string", "boolean", "box"}
        ``"box"`` is ``[x0, x1, y0, y1]`` (0-based, half-open pixel bounds).
    default
        The default value.
    min, max : float, optional
        Inclusive bounds for numbers.
    step : float, optional
        The natural step of a slider.
    choices : tuple, optional
        The valid values of a string parameter.
    unit : str, optional
        Shown beside the control (``"px"``, ``"sigma"``...).
    doc : str
        One line for the registry and the control's tooltip.
    nullable : bool
        Whether ``None`` is allowed (meaning "automatic" or "none").
    odd : bool
        Integers that must be odd (filter windows).
    pixel_length : bool
        A length in pixels: a preview on an image binned by *f* divides it by *f*.
    preview_min : float, optional
        The smallest value a preview may scale it down to (a detection kernel
        narrower than a binned pixel finds only noise).
    expensive : bool
        Moving it re-runs heavy work (the UI previews while it is dragged).
    aliases : tuple of str
        Older names accepted in recipes (renamed parameters).
    """

    name: str
    type: str
    default: Any
    min: float = None
    max: float = None
    step: float = None
    choices: tuple = None
    unit: str = None
    doc: str = ""
    nullable: bool = False
    odd: bool = False
    pixel_length: bool = False
    preview_min: float = None
    expensive: bool = False
    aliases: tuple = ()

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise ValueError(f"Param {self.name}: type must be one of {PARAM_TYPES}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    def describe(self):
        """The registry entry (the research document's format)."""
        out = {"type": self.type, "default": self.default}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.step is not None:
            out["step"] = self.step
        if self.choices is not None:
            out["enum"] = list(self.choices)
        if self.unit:
            out["unit"] = self.unit
        if self.nullable:
            out["nullable"] = True
        if self.doc:
            out["description"] = self.doc
        return out

    def validate(self, value, *, stage=None):
        """Return ``value`` converted to this parameter's type, or raise InputError."""
        where = f"{stage}: " if stage else ""
        label = f"{where}{self.name}"

        def fail(why):
            raise InputError(f"{label} {why}; got {value!r}", param=self.name, stage=stage)

        if value is None:
            if self.nullable:
                return None
            fail("cannot be empty")
        if self.type == "boolean":
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            fail("must be True or False")
        if self.type == "string":
            if not isinstance(value, str):
                fail("must be a string" + (f": one of {describe_choices(self.choices)}"
                                           if self.choices else ""))
            if self.choices is not None and value not in self.choices:
                fail(f"must be one of {describe_choices(self.choices)}")
            return value
        if self.type == "box":
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") \
                    or len(value) != 4:
                fail("must be [x0, x1, y0, y1] in whole pixels")
            box = []
            for v in value:
                whole = (isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                         ) or (isinstance(v, (float, np.floating)) and math.isfinite(v)
                               and float(v).is_integer())
                if not whole:
                    fail("must be [x0, x1, y0, y1] in whole pixels")
                box.append(int(v))
            if box[1] <= box[0] or box[3] <= box[2]:
                fail("must be [x0, x1, y0, y1] with x0 < x1 and y0 < y1")
            return box
        # numbers
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                           np.floating)):
            kind = "an integer" if self.type == "integer" else "a number"
            fail(f"must be {kind}")
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):
            fail("must be a finite number")
        if self.type == "integer":
            if isinstance(value, (float, np.floating)):
                if not float(value).is_integer():
                    fail("must be a whole number")
            value = int(value)
        else:
            try:
                value = float(value)
            except OverflowError:  # an integer beyond the float range (10**400)
                fail("must be a finite number")
        unit = f" {self.unit}" if self.unit else ""
        if self.min is not None and self.max is not None and not self.min <= value <= self.max:
            fail(f"must be between {self.min:g} and {self.max:g}{unit}")
        if self.min is not None and value < self.min:
            fail(f"must be at least {self.min:g}{unit}")
        if self.max is not None and value > self.max:
            fail(f"must be at most {self.max:g}{unit}")
        if self.odd and value % 2 == 0:
            fail("must be an odd number")
        return value

    def bad_values(self):
        """Values this parameter must refuse (for generated tests)."""
        out = [object(), [1, 2]]
        if self.type != "string":
            out.append("not a number")
        elif self.choices is not None:
            out.append("no-such-choice")
        if self.type in ("integer", "float"):
            out += [float("nan"), float("inf"), True]
            if self.min is not None:
                out.append(self.min - (1 if self.type == "integer" else abs(self.min) * 0.5 + 1))
            if self.max is not None:
                out.append(self.max + (1 if self.type == "integer" else abs(self.max) + 1))
            if self.type == "integer":
                out.append(float(self.default) + 0.5 if self.default is not None else 0.5)
        if self.type == "boolean":
            out += [1, "yes"]
        if self.type == "box":
            out += [[0, 0, 0, 0], [5, 1, 0, 4], [1, 2, 3]]
        if not self.nullable:
            out.append(None)
        return out


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """The one declaration of a stage.

    Parameters
    ----------
    name : str
        The registry and recipe name (``"background_subtraction"``).
    category : str
        ``"preprocessing"``, ``"filtering"``, ``"enhancement"``,
        ``"analysis"`` or ``"photometry"``.
    description : str
        One line for the registry.
    func : callable
        ``func(image, products, **params) -> StageOutput``: ``image`` is the
        :class:`~jwst_widgets.io.Image` reaching the stage, ``products`` the
        outputs of earlier stages (``background_rms``, ``catalog``...).
    params : tuple of Param
    version : int
        Bumped when the stage's results change for the same parameters.
    check : callable, optional
        ``check(params, image, products)`` raising InputError for combinations
        of values that cannot work on this image (a box larger than the frame).
    outputs : tuple of str
        The products it makes, for the registry.
    needs : tuple of str
        Products an earlier stage must make (``("catalog",)``).
    preview : bool
        Whether the stage runs in the builder's reduced-resolution previews
        (False for fits that mean nothing on a binned image, such as a PSF fit
        of an undersampled PSF).
    uses : tuple of str
        Products of earlier stages the function may read (``needs`` and
        optional ones such as ``background_rms``). The function is given
        only these, and its cache key covers only them, so a stage that
        merely measures (statistics) can move without re-running the others.
    """

    name: str
    category: str
    description: str
    func: Callable
    params: tuple
    version: int = 1
    check: Callable = None
    outputs: tuple = ()
    needs: tuple = ()
    uses: tuple = ()
    preview: bool = True

    def __post_init__(self):
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "uses", tuple(dict.fromkeys((*self.needs, *self.uses))))
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"stage {self.name}: duplicate parameter names")

    @property
    def param_names(self):
        return tuple(p.name for p in self.params)

    def param(self, name):
        for p in self.params:
            if p.name == name or name in p.aliases:
                return p
        raise InputError(f"{self.name} has no parameter {name!r}; its parameters are "
                         f"{describe_choices(self.param_names)}", param=name, stage=self.name)

    def defaults(self):
        return {p.name: p.default for p in self.params}

    def validate(self, params, *, partial=False):
        """Return validated, canonical parameters (defaults filled unless ``partial``)."""
        out = {} if partial else self.defaults()
        for key, value in dict(params).items():
            p = self.param(key)
            out[p.name] = p.validate(value, stage=self.name)
        return out

    def describe(self):
        return {
            "name": self.name,
            "category": self.category,
            "description": self.description,
            "version": self.version,
            "parameters": {p.name: p.describe() for p in self.params},
            "outputs": list(self.outputs),
            "needs": list(self.needs),
            "uses": list(self.uses),
        }


class Registry:
    """The stages by name; refuses duplicate names."""

    def __init__(self, specs=()):
        self._specs = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec):
        if spec.name in self._specs:
            raise ValueError(f"a stage named {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def __getitem__(self, name):
        try:
            return self._specs[name]
        except (KeyError, TypeError):
            raise InputError(f"no stage named {name!r}; the stages are "
                             f"{describe_choices(self.names)}", stage=str(name)) from None

    def __contains__(self, name):
        return name in self._specs

    def __iter__(self):
        return iter(self._specs.values())

    def __len__(self):
        return len(self._specs)

    @property
    def names(self):
        return tuple(self._specs)

    def describe(self):
        return [spec.describe() for spec in self]
