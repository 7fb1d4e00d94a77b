"""Voice fine-tuning: a speaker's recordings into a training set (``prepare``), XTTS v2's GPT
fine-tuned on it (``train``); the result is a folder ``--xtts-dir`` loads."""

from s3tvr.finetune.prepare import PrepareOptions, Preparer, PrepareResult
from s3tvr.finetune.train import TrainOptions, TrainResult, train

__all__ = ["Preparer", "PrepareOptions", "PrepareResult", "TrainOptions", "TrainResult", "train"]
