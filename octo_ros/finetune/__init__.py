"""Fine-tuning Octo in PyTorch from LeRobot v3 datasets (``octo-ros finetune``)."""

from .train import FinetuneConfig, FinetuneError, Finetuner, finetune

__all__ = ["FinetuneConfig", "FinetuneError", "Finetuner", "finetune"]
