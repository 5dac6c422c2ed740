"""cvft_train: the thin trainer (torchvision classifiers, Ultralytics YOLO, W&B logging).

Empty for now: the trainer lands with its own issue. Importing it needs nothing beyond the core.
"""

__all__: list[str] = []
