"""cvft_train: the thin trainer (torchvision classifiers, Ultralytics YOLO, W&B logging), evaluation,
prediction and model export, and torch datasets to plug cvft datasets into your own training code.

Example:
    >>> from cvft_train import TrainConfig
    >>> TrainConfig(model="resnet18", epochs=3).updated({"lr": 0.01}).lr
    0.01
"""

from .config import TrainConfig
from .data import ClassificationDataset, DetectionDataset, collate_detection, decode
from .evaluate import evaluate
from .export_model import export_model
from .fit import fit
from .predict import predict
from .predict_run import predict_to

__all__ = ["ClassificationDataset", "DetectionDataset", "TrainConfig", "collate_detection", "decode", "evaluate",
           "export_model", "fit", "predict", "predict_to"]
