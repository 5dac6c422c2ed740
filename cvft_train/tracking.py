"""Weights & Biases logging (off by default; ``WANDB_MODE=offline`` works with no network).

A run gets the resolved config (and, for YOLO, the Ultralytics arguments actually used), each
epoch's metrics as they are produced, the confusion matrix, the dataset as an artifact (its
``cvft.json`` and content hash, so the exact data version is known) and the best model.
"""

from __future__ import annotations

from pathlib import Path

from cvft_data.store import OpenedDataset

from .config import TrainConfig


class WandbLogger:
    def __init__(self, cfg: TrainConfig, data: OpenedDataset, run: Path):
        import wandb

        info = data.info
        self.wandb = wandb
        self.run = wandb.init(project=cfg.wandb_project, config={**cfg.to_dict(), "dataset": str(data.path),
                                                                  "dataset_content_hash": info["content_hash"]},
                              dir=str(run), job_type="train", reinit="finish_previous")
        art = wandb.Artifact(f"dataset-{info['content_hash'][:16]}", type="dataset",
                             metadata={"content_hash": info["content_hash"], "task": info["task"],
                                       "classes": info["classes"], "splits": info["splits"]})
        art.add_file(str(data.path / "cvft.json"))
        self.run.log_artifact(art)

    def update_config(self, values: dict) -> None:
        """Arguments decided after start (the Ultralytics arguments cvft passed)."""
        self.run.config.update(values, allow_val_change=True)

    def log_epoch(self, record: dict, confusion: list | None, names: list[str]) -> None:
        flat = {k: v for k, v in record.items() if isinstance(v, (int, float))}
        if confusion is not None:
            table = self.wandb.Table(columns=["true", "predicted", "count"],
                                     data=[[names[i], names[j], int(confusion[i][j])]
                                           for i in range(len(names)) for j in range(len(names)) if confusion[i][j]])
            flat["confusion_matrix"] = table
        self.wandb.log(flat, step=int(record.get("epoch", 0)))

    def finish(self, best_model: Path | None, final: dict, exit_code: int = 0) -> None:
        numbers = {k: v for k, v in final.items() if isinstance(v, (int, float))}
        self.run.summary.update(numbers)
        if best_model is not None and Path(best_model).is_file():
            art = self.wandb.Artifact(f"model-{self.run.id}", type="model", metadata={"final": numbers})
            art.add_file(str(best_model))
            self.run.log_artifact(art)
        self.run.finish(exit_code=exit_code)
