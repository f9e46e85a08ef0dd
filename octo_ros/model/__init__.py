"""Octo (1.5) in pure PyTorch: checkpoint reading without JAX, tokenizers, transformer, heads."""

from .checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    read_official_checkpoint,
    write_official_checkpoint,
)
from .config import OctoConfigError, UnsupportedComponentError, parse_config
from .normalization import NormalizationType, unnormalize_actions
from .policy import OctoPolicy, SampledActions, convert_checkpoint, load_module, tune_malloc
from .text import T5TextTokenizer
from .weights import MissingParameterError, ParameterError, ParameterShapeError, UnexpectedParameterError

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "MissingParameterError",
    "NormalizationType",
    "OctoConfigError",
    "OctoPolicy",
    "ParameterError",
    "ParameterShapeError",
    "SampledActions",
    "T5TextTokenizer",
    "UnexpectedParameterError",
    "UnsupportedComponentError",
    "convert_checkpoint",
    "load_module",
    "parse_config",
    "read_official_checkpoint",
    "tune_malloc",
    "unnormalize_actions",
    "write_official_checkpoint",
]
