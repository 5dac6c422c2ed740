"""Roboflow exports: COCO, YOLO (v5/v8/v9/v11), Pascal VOC, CreateML, classification folders,
multi-label ``_classes.csv``, and the object-detection CSV. Each is a thin declaration over the
generic reader; only what Roboflow does differently lives here.
"""

from __future__ import annotations

# one module per registry name; importing this one registers them all (and keeps the old names)
from .roboflow_coco import RoboflowCocoConnector  # noqa: F401
from .roboflow_createml import RoboflowCreateMLConnector  # noqa: F401
from .roboflow_csv import RoboflowCsvConnector  # noqa: F401
from .roboflow_folder import RoboflowFolderConnector  # noqa: F401
from .roboflow_multilabel import RoboflowMultilabelConnector  # noqa: F401
from .roboflow_voc import RoboflowVocConnector  # noqa: F401
from .roboflow_yolo import RoboflowYoloConnector  # noqa: F401
