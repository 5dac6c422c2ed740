"""The canonical cvft schema, declared once as :class:`datasets.Features`.

One row per image. Common columns: ``image_id``, ``image``, ``width``, ``height``, ``label_status``,
``group``, ``meta``. Task columns:

=========================  ==========================================================
task                       columns
=========================  ==========================================================
``classification``         ``label`` (ClassLabel; None for null and unlabeled images)
``multilabel``             ``labels`` (list of ClassLabel)
``detection``              ``objects`` (bbox, category, area, iscrowd, segmentation) + ``object_attributes``
``instance_segmentation``  ``objects`` as detection, with polygons or RLE in ``segmentation``
``semantic_segmentation``  ``mask`` (Image, a PNG of class indices, bytes kept) + ``mask_classes``
``panoptic``               ``segments_info`` (list) + ``panoptic`` (Image, COCO panoptic PNG)
=========================  ==========================================================

``objects.segmentation`` holds, per object, ``polygons`` (list of flat ``[x1, y1, ...]`` lists, in
float64 so COCO coordinates round-trip exactly) and ``rle`` (COCO compressed RLE, ``counts`` a string,
``size`` ``[h, w]``; null when the object has polygons or no mask). ``object_attributes`` holds one
JSON object per object, in the order of ``objects`` (occluded, track ids, keypoints, the source's
own fields). It sits beside ``objects``, not inside it, so that ``objects`` holds numbers only and
``with_format("torch")`` gives tensors (schema version 2; version 1 kept ``attributes`` inside
``objects`` and is upgraded when opened, see :func:`upgrade_v1`).

A semantic ``mask`` holds one class index per pixel (``np.asarray(row["mask"])``), the index of a
class in the dataset's class list; pixels nobody labelled hold the ignore index (``cvft.json``
``ignore_index``, 255 by default). ``mask_classes`` lists the classes the mask shows (a
``ClassLabel`` list: class names, balance and stratified splits without decoding a mask).

Example:
    >>> f = features_for("detection", ["cat", "dog"])
    >>> f["objects"]["category"].feature.names
    ['cat', 'dog']
"""

from __future__ import annotations

from datasets import ClassLabel, Features, Image, Json, List, Value

from .errors import UsageError
from .vocabulary import (  # noqa: F401 (re-exported: the schema's vocabulary)
    CANONICAL_SPLITS,
    LABEL_STATUSES,
    OBJECT_TASKS,
    TASKS,
    LabelStatus,
    Task,
    canonical_split,
    is_split_name,
)

SCHEMA_VERSION = 2

def segmentation_feature() -> dict:
    return {
        "polygons": List(List(Value("float64"))),
        "rle": {"size": List(Value("int32"), length=2), "counts": Value("string")},
    }


def objects_feature(class_names: list[str]) -> dict:
    return {
        "bbox": List(List(Value("float32"), length=4)),
        "category": List(ClassLabel(names=class_names)),
        "area": List(Value("float32")),
        "iscrowd": List(Value("bool")),
        "segmentation": List(segmentation_feature()),
    }


def features_for(task: str, class_names: list[str]) -> Features:
    """The :class:`datasets.Features` of a cvft dataset of ``task`` with ``class_names``."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    cols: dict = {
        "image_id": Value("string"),
        "image": Image(),
        "width": Value("int32"),
        "height": Value("int32"),
    }
    if task == "classification":
        cols["label"] = ClassLabel(names=class_names)
    elif task == "multilabel":
        cols["labels"] = List(ClassLabel(names=class_names))
    elif task in OBJECT_TASKS:
        cols["objects"] = objects_feature(class_names)
        cols["object_attributes"] = List(Json())
    elif task == "semantic_segmentation":
        cols["mask"] = Image()
        cols["mask_classes"] = List(ClassLabel(names=class_names))
    else:  # panoptic
        cols["segments_info"] = List({
            "id": Value("int64"),
            "category": ClassLabel(names=class_names),
            "area": Value("float32"),
            "bbox": List(Value("float32"), length=4),
            "iscrowd": Value("bool"),
        })
        cols["panoptic"] = Image()
    cols["label_status"] = Value("string")
    cols["group"] = Value("string")
    cols["meta"] = Json()
    return Features(cols)


def task_of(features: Features) -> str:
    """Read the task back from a dataset's features."""
    if "label" in features:
        return "classification"
    if "labels" in features:
        return "multilabel"
    if "segments_info" in features:
        return "panoptic"
    if "mask" in features:
        return "semantic_segmentation"
    if "objects" in features:
        return "instance_segmentation"  # refined by cvft.json; detection and segmentation share columns
    raise UsageError("not a cvft dataset: no label, labels, objects or segments_info column")


def class_names_of(features: Features) -> list[str]:
    if "label" in features:
        return list(features["label"].names)
    if "labels" in features:
        return list(features["labels"].feature.names)
    if "objects" in features:
        return list(features["objects"]["category"].feature.names)
    if "mask_classes" in features:
        return list(features["mask_classes"].feature.names)
    return list(features["segments_info"].feature["category"].names)


def upgrade_v1(ds):
    """A schema-1 split (``attributes`` inside ``objects``) as schema 2 (``object_attributes`` beside
    it), without copying: the Arrow children are moved, not rewritten.

    >>> import datasets
    >>> f = features_for("detection", ["cat"])
    >>> old = dict(f); old["objects"] = dict(f["objects"], attributes=List(Json())); del old["object_attributes"]
    >>> row = {"image_id": "a", "image": None, "width": 4, "height": 4, "label_status": "labeled", "group": None,
    ...        "meta": {}, "objects": {"bbox": [[0, 0, 1, 1]], "category": [0], "area": [1.0], "iscrowd": [False],
    ...        "segmentation": [{"polygons": [], "rle": None}], "attributes": [{"occluded": True}]}}
    >>> new = upgrade_v1(datasets.Dataset.from_list([row], features=datasets.Features(old)))
    >>> new[0]["object_attributes"], "attributes" in new.features["objects"]
    ([{'occluded': True}], False)
    """
    import datasets
    import pyarrow as pa

    if "objects" not in ds.features or "attributes" not in ds.features["objects"]:
        return ds
    if ds._indices is not None:   # a selected view: its rows in the order it shows
        ds = ds.flatten_indices()
    table = ds.data.table
    objects = table.column("objects").combine_chunks()
    keep = [f.name for f in objects.type if f.name != "attributes"]
    moved = pa.StructArray.from_arrays([objects.field(k) for k in keep], names=keep, mask=objects.is_null())
    idx = table.schema.get_field_index("objects")
    table = table.set_column(idx, "objects", moved).append_column("object_attributes", objects.field("attributes"))
    features = datasets.Features({k: v for k, v in ds.features.items()})
    features["objects"] = {k: v for k, v in ds.features["objects"].items() if k != "attributes"}
    features["object_attributes"] = ds.features["objects"]["attributes"]
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features), split=ds.split)
