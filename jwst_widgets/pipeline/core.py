"""The incremental, memoised processing chain."""

import collections
import dataclasses
import json
import threading
import time
import uuid

import numpy as np

from .._lru import ByteCache
from ..errors import Cancelled, InputError
from ..io import Image, load_image
from ..io.image import content_key
from .registry import default_registry

__all__ = ["StageOutput", "Stage", "StageResult", "PipelineResult", "Pipeline"]


@dataclasses.dataclass(frozen=True)
class StageOutput:
    """What a stage function returns.

    ``image`` is the image after the stage (the input itself when the stage
    only measures); ``products`` are named results (``background``,
    ``background_rms``, ``catalog``, ``segmentation``, ``statistics``...);
    ``messages`` are facts for the panel in words ("no sources found").
    """

    image: Image
    products: dict = dataclasses.field(default_factory=dict)
    messages: tuple = ()

    @property
    def nbytes(self):
        total = 0
        for value in [self.image.data, *self.products.values()]:
            total += getattr(value, "nbytes", 0) if isinstance(value, np.ndarray) else 0
        return total


@dataclasses.dataclass
class Stage:
    """One step of a pipeline: a declared stage with its parameter values."""

    spec: object
    params: dict
    enabled: bool = True
    uid: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def name(self):
        return self.spec.name

    def snapshot(self):
        return Stage(self.spec, dict(self.params), self.enabled, self.uid)

    def to_dict(self):
        return {"stage": self.spec.name, "version": self.spec.version,
                "enabled": self.enabled, "params": dict(self.params)}


@dataclasses.dataclass(frozen=True)
class StageResult:
    """One stage's part of a run: its outputs, time and whether it came from the cache."""

    index: int
    name: str
    params: dict
    enabled: bool
    output: StageOutput = None
    seconds: float = 0.0
    cached: bool = False
    key: str = ""

    @property
    def image(self):
        return None if self.output is None else self.output.image.data

    @property
    def products(self):
        return {} if self.output is None else self.output.products

    @property
    def messages(self):
        return () if self.output is None else self.output.messages

    def __getitem__(self, name):
        if name == "image":
            return self.image
        return self.products[name]


@dataclasses.dataclass(frozen=True)
class PipelineResult:
    """The result of :meth:`Pipeline.run`.

    Attributes
    ----------
    image : ndarray
        The final image.
    final : Image
        The final image with its mask, error, WCS and unit.
    catalog : QTable or None
        The latest catalog in the chain (detection, then photometry adds
        columns); None when no stage makes one.
    stages : list of StageResult
        Per-stage outputs and timings.
    products : dict
        Every named product, later stages winning.
    input : Image
        The image the chain started from.
    """

    final: Image
    stages: list
    products: dict
    input: Image
    seconds: float

    @property
    def image(self):
        return self.final.data

    @property
    def catalog(self):
        return self.products.get("catalog")

    @property
    def segmentation(self):
        return self.products.get("segmentation")

    def stage(self, name_or_index):
        if isinstance(name_or_index, int):
            return self.stages[name_or_index]
        for s in self.stages:
            if s.name == name_or_index:
                return s
        raise KeyError(name_or_index)

    def output_of(self, index):
        """The image as it leaves stage ``index`` (-1: the input)."""
        if index < 0:
            return self.input
        for s in reversed(self.stages[: index + 1]):
            if s.output is not None:
                return s.output.image
        return self.input


class StageCache(ByteCache):
    """The stage outputs of a pipeline, ``(output, seconds)`` by key, bounded in bytes."""

    def __init__(self, max_bytes=2 * 2**30):
        super().__init__(max_bytes, size=lambda item: item[0].nbytes)

    def put(self, key, output, seconds):
        super().put(key, (output, seconds))


def _canonical(params):
    return json.dumps(params, sort_keys=True, default=str)


class Pipeline:
    """A chain of processing stages, run incrementally.

    Parameters
    ----------
    stages : iterable
        Each a stage name, a ``("name", {params})`` pair, or a :class:`Stage`.
    registry : Registry, optional
        Where stage names are looked up (the package's stages by default).
    cache_bytes : int
        The most memory the cache of stage outputs may hold.

    Notes
    -----
    Each stage's output is cached under a key made of the identity of the
    image reaching it, its name, version and parameters, and the keys of the
    products of earlier stages it reads (``StageSpec.uses``). A parameter
    change therefore re-runs only its stage and the ones after it that
    depend on it; the earlier outputs come from the cache. Every method
    that changes the chain validates first and changes nothing when a value
    is refused.

    Examples
    --------
    >>> from jwst_widgets import Pipeline, datasets
    >>> frame = datasets.nircam_like(shape=(256, 256), seed=1)
    >>> pipe = Pipeline([("background_subtraction", {"box_size": 32}),
    ...                  ("source_detection", {"threshold_sigma": 5})])
    >>> result = pipe.run(frame.image)
    >>> len(result.catalog) > 0
    True
    """

    def __init__(self, stages=(), *, registry=None, cache_bytes=2 * 2**30):
        self.registry = registry or default_registry()
        self._stages = []
        self._lock = threading.RLock()
        self.cache = StageCache(cache_bytes)
        self.runs = collections.Counter()  # stage name -> computations (not cache hits)
        for s in stages:
            self._stages.append(self._make_stage(s))

    # -- building -----------------------------------------------------------
    def _make_stage(self, item):
        if isinstance(item, Stage):
            return Stage(item.spec, item.spec.validate(item.params), item.enabled)
        if isinstance(item, str):
            name, params = item, {}
        else:
            try:
                name, params = item
            except (TypeError, ValueError):
                raise InputError(f"a stage is given as 'name' or ('name', {{params}}); got {item!r}") from None
        spec = self.registry[name]
        if not isinstance(params, dict):
            raise InputError(f"{name}: parameters must be a dict; got {params!r}", stage=name)
        return Stage(spec, spec.validate(params))

    @property
    def stages(self):
        """The stages (copies: change them through the methods)."""
        with self._lock:
            return [s.snapshot() for s in self._stages]

    def __len__(self):
        return len(self._stages)

    def _index(self, i):
        n = len(self._stages)
        if not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise InputError(f"stage index {i!r} is out of range for a pipeline of {n} stage(s)")
        return int(i) % n

    def add(self, name, index=None, **params):
        """Add a stage (at the end, or before ``index``); returns its index."""
        stage = self._make_stage((name, params))
        with self._lock:
            if index is None:
                self._stages.append(stage)
                return len(self._stages) - 1
            index = max(0, min(int(index), len(self._stages)))
            self._stages.insert(index, stage)
            return index

    def remove(self, i):
        with self._lock:
            return self._stages.pop(self._index(i)).name

    def move(self, i, j):
        """Move stage ``i`` to position ``j``."""
        with self._lock:
            i = self._index(i)
            j = self._index(j)
            self._stages.insert(j, self._stages.pop(i))

    def set_enabled(self, i, enabled=True):
        with self._lock:
            self._stages[self._index(i)].enabled = bool(enabled)

    def set_stages(self, stages):
        """Replace every stage: ``(name, params, enabled)`` triples, validated first."""
        new = []
        for name, params, enabled in stages:
            stage = self._make_stage((name, params))
            stage.enabled = bool(enabled)
            new.append(stage)
        with self._lock:
            self._stages = new

    def set_params(self, i, **params):
        """Change parameters of stage ``i``; validated first, nothing changes on error."""
        with self._lock:
            stage = self._stages[self._index(i)]
            new = stage.spec.validate(params, partial=True)
            stage.params = {**stage.params, **new}
            return dict(stage.params)

    def params(self, i):
        with self._lock:
            return dict(self._stages[self._index(i)].params)

    # -- running ------------------------------------------------------------
    def check(self, image, stages=None):
        """Raise InputError when the chain cannot run on ``image`` as set.

        With ``image=None`` only the order of the stages is checked (each
        stage's needs are made by an earlier one).
        """
        products = set()
        for s in (stages if stages is not None else self.stages):
            if not s.enabled:
                continue
            missing = [n for n in s.spec.needs if n not in products]
            if missing:
                raise InputError(f"{s.name} needs a {missing[0]} from an earlier stage "
                                 f"(add a stage that makes one before it)", stage=s.name)
            if s.spec.check is not None and image is not None:
                s.spec.check(s.params, image)
            products.update(s.spec.outputs)

    def run(self, image, *, cancel=None, upto=None):
        """Run the chain on an image; returns a :class:`PipelineResult`.

        Parameters
        ----------
        image : Image, path or array
            The input (anything :func:`~jwst_widgets.load_image` takes).
        cancel : callable, optional
            Called between stages; when it returns True the run stops with
            :class:`~jwst_widgets.errors.Cancelled` (a newer request took over).
        upto : int, optional
            Run only the stages up to and including this index.
        """
        image = load_image(image) if not isinstance(image, Image) else image
        stages = self.stages
        if upto is not None:
            stages = stages[: upto + 1]
        self.check(image, stages)
        t_start = time.perf_counter()
        current = image
        products, product_keys = {}, {}
        results = []
        for i, stage in enumerate(stages):
            if not stage.enabled:
                results.append(StageResult(i, stage.name, stage.params, False, key=current.key))
                continue
            used = {n: products[n] for n in stage.spec.uses if n in products}
            key = content_key(current.key, stage.name, stage.spec.version,
                              _canonical(stage.params),
                              *(f"{n}={product_keys[n]}" for n in sorted(used)))
            hit = self.cache.get(key)
            if hit is not None:
                output, seconds = hit
                cached = True
            else:
                if cancel is not None and cancel():
                    raise Cancelled()
                t0 = time.perf_counter()
                output = self._call(stage, current, used)
                seconds = time.perf_counter() - t0
                if output.image is not current:
                    output = dataclasses.replace(output, image=output.image.replace(key=key))
                self.cache.put(key, output, seconds)
                self.runs[stage.name] += 1
                cached = False
            results.append(StageResult(i, stage.name, stage.params, True, output, seconds,
                                       cached, key))
            current = output.image
            products = {**products, **output.products}
            product_keys.update({n: key for n in output.products})
        return PipelineResult(final=current, stages=results, products=products, input=image,
                              seconds=time.perf_counter() - t_start)

    @staticmethod
    def _call(stage, image, products):
        try:
            out = stage.spec.func(image, products, **stage.params)
        except InputError as exc:
            if exc.stage is None:
                exc.stage = stage.name
            raise
        if not isinstance(out, StageOutput):  # pragma: no cover - a programming error
            raise TypeError(f"stage {stage.name} returned {type(out).__name__}, not StageOutput")
        return out

    # -- recipes ------------------------------------------------------------
    def to_recipe(self):
        """The chain as plain data (see :mod:`jwst_widgets.pipeline.recipe`)."""
        from .recipe import make_recipe
        return make_recipe(self.stages)

    @classmethod
    def from_recipe(cls, recipe, **kwargs):
        """Build a pipeline from a recipe (a dict, JSON text or a path); validated."""
        from .recipe import parse_recipe
        pipe = cls(**kwargs)
        pipe._stages = [Stage(spec, params, enabled)
                        for spec, params, enabled in parse_recipe(recipe, pipe.registry)]
        return pipe

    def __repr__(self):
        body = ", ".join(f"{s.name}{'' if s.enabled else ' (off)'}" for s in self._stages)
        return f"Pipeline([{body}])"
