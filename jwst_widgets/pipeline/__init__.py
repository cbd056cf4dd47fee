"""The composition layer: stage registry, incremental pipeline, recipes, batch runs."""

from .core import Pipeline, PipelineResult, Stage, StageOutput, StageResult
from .recipe import read_recipe, write_recipe
from .registry import algorithms, default_registry
from .schema import Param, Registry, StageSpec

__all__ = ["Pipeline", "PipelineResult", "Stage", "StageOutput", "StageResult", "Param",
           "StageSpec", "Registry", "algorithms", "default_registry", "read_recipe",
           "write_recipe"]
