"""GMSA training: autoencoder pretraining and KEFT on Hugging Face `Trainer`."""

from ..data.records import AERow, DataError, QARow, read_rows
from .objective import GMSACollator, GMSAObjective
from .trainer import TrainConfig, select_trainable, train

__all__ = [
    "AERow",
    "DataError",
    "GMSACollator",
    "GMSAObjective",
    "QARow",
    "TrainConfig",
    "read_rows",
    "select_trainable",
    "train",
]
