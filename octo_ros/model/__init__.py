"""Octo (1.5) in pure PyTorch: checkpoint reading without JAX, tokenizers, transformer, heads."""

from .checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    make_random_checkpoint,
    read_official_checkpoint,
    write_official_checkpoint,
)
from .config import OctoConfigError, UnsupportedComponentError, parse_config
from .normalization import NormalizationType, unnormalize_actions
from .policy import ActionChunk, OctoPolicy, convert_checkpoint, load_module
from .text import T5TextTokenizer
from .weights import MissingParameterError, ParameterError, ParameterShapeError, UnexpectedParameterError

__all__ = [
    "ActionChunk",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CorruptCheckpointError",
    "MissingParameterError",
    "NormalizationType",
    "OctoConfigError",
    "OctoPolicy",
    "ParameterError",
    "ParameterShapeError",
    "T5TextTokenizer",
    "UnexpectedParameterError",
    "UnsupportedComponentError",
    "convert_checkpoint",
    "load_module",
    "make_random_checkpoint",
    "parse_config",
    "read_official_checkpoint",
    "unnormalize_actions",
    "write_official_checkpoint",
]
