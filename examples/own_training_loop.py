"""Plug a cvft dataset into your own training code: a plain torch loop, Hugging Face Trainer, timm.

    python examples/own_training_loop.py DATASET_DIR

The dataset is the folder ``cvft-ingest`` wrote. Nothing here is cvft-specific beyond the two
torch datasets: ``ClassificationDataset`` and ``DetectionDataset`` (+ ``collate_detection``).
"""

from __future__ import annotations

import sys

import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

import cvft_data
from cvft_train import ClassificationDataset, DetectionDataset, collate_detection


def plain_torch(path: str) -> None:
    dsd = cvft_data.load(path)
    tf = v2.Compose([v2.PILToTensor(), v2.Resize(128, antialias=True), v2.CenterCrop(128),
                     v2.ToDtype(torch.float32, scale=True)])
    train = ClassificationDataset(dsd["train"], tf, imgsz=128)        # JPEGs decoded at reduced size
    loader = DataLoader(train, batch_size=32, shuffle=True, num_workers=2)
    import torchvision

    model = torchvision.models.resnet18(num_classes=train.num_classes)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"loss {loss.item():.3f}")
        break


def hugging_face_trainer(path: str) -> None:
    """HF Trainer takes any torch Dataset returning dicts; wrap ClassificationDataset."""
    from transformers import Trainer, TrainingArguments  # pip install transformers

    class AsDict(torch.utils.data.Dataset):
        def __init__(self, ds):
            self.ds = ds

        def __len__(self):
            return len(self.ds)

        def __getitem__(self, i):
            x, y = self.ds[i]
            return {"pixel_values": x, "labels": y}

    dsd = cvft_data.load(path)
    tf = v2.Compose([v2.PILToTensor(), v2.Resize(224, antialias=True), v2.CenterCrop(224),
                     v2.ToDtype(torch.float32, scale=True)])
    train = AsDict(ClassificationDataset(dsd["train"], tf, imgsz=224))
    from transformers import AutoModelForImageClassification
    model = AutoModelForImageClassification.from_pretrained("google/vit-base-patch16-224",
                                                            num_labels=train.ds.num_classes,
                                                            ignore_mismatched_sizes=True)
    Trainer(model=model, args=TrainingArguments("hf-run", num_train_epochs=1, per_device_train_batch_size=16),
            train_dataset=train).train()


def timm_model(path: str) -> None:
    import timm  # pip install timm

    dsd = cvft_data.load(path)
    tf = v2.Compose([v2.PILToTensor(), v2.Resize(224, antialias=True), v2.CenterCrop(224),
                     v2.ToDtype(torch.float32, scale=True)])
    train = ClassificationDataset(dsd["train"], tf, imgsz=224)
    model = timm.create_model("convnext_tiny", pretrained=False, num_classes=train.num_classes)
    x, y = next(iter(DataLoader(train, batch_size=8)))
    print(model(x).shape)


def detection(path: str) -> None:
    """torchvision detection models take (list of images, list of target dicts)."""
    import torchvision

    dsd = cvft_data.load(path)
    ds = DetectionDataset(dsd["train"], transforms=v2.ToDtype(torch.float32, scale=True))
    loader = DataLoader(ds, batch_size=4, collate_fn=collate_detection)
    n_classes = len(cvft_data.info(path)["classes"]) + 1  # + background
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None,
                                                                           num_classes=n_classes)
    images, targets = next(iter(loader))
    targets = [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets]
    losses = model(list(images), targets)
    print({k: round(float(v), 3) for k, v in losses.items()})


if __name__ == "__main__":
    path = sys.argv[1]
    task = cvft_data.info(path)["task"]
    detection(path) if task in ("detection", "instance_segmentation") else plain_torch(path)
