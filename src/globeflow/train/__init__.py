"""Training: one straight loop (warm-up and cosine learning rate, clipping, EMA, NaN guard, DDP, exact
resume) for every model kind, and its optimisers."""

from .config import TrainConfig, TrainingError
from .loop import TrainResult, evaluate_loss, train
from .optim import Lamb, build_optimizer, warmup_cosine

__all__ = ["TrainConfig", "TrainingError", "TrainResult", "train", "evaluate_loss", "Lamb", "build_optimizer",
           "warmup_cosine"]
