"""The registry of stages, built on first use (no work at import)."""

import functools

from .schema import Registry

__all__ = ["default_registry", "algorithms"]


@functools.lru_cache(maxsize=None)
def default_registry():
    """The package's stages (built once, on first call)."""
    from .stages import STAGES
    return Registry(STAGES)


def algorithms():
    """List every stage in the research document's registry format.

    Returns
    -------
    list of dict
        One dict per stage: ``name``, ``category``, ``description``,
        ``version``, ``parameters`` (each with ``type``, ``default``, and
        ``min``/``max``/``enum``/``unit`` where they apply), ``outputs``,
        ``needs``.

    Examples
    --------
    >>> from jwst_widgets import algorithms
    >>> [a["name"] for a in algorithms()][:2]
    ['background_subtraction', 'noise_reduction']
    """
    return default_registry().describe()
