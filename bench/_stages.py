"""One benchmark stage per process (so peak memory is the stage's own): prints one JSON line.

    python bench/_stages.py STAGE CORPUS_DIR N WORK_DIR [WORKERS]
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: The dataset each ingest stage writes (under the work folder).
OUTPUTS = {"cvft ingest": "cvft_ds", "cvft ingest detection": "cvft_ds_det",
           "imagefolder+save_to_disk": "imagefolder_ds", "from_dict+cast_column+save_to_disk": "fromdict_ds"}
SAMPLE_DECODE = 400  # decode stages time a sample: full-size decode costs ~20 ms an image


def _files(corpus: Path) -> list[Path]:
    return sorted((corpus / "tree").rglob("*.JPG"))


def _dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0


def _preimport(name: str) -> None:
    """Import what the stage needs before the clock starts: every tool is timed on its work."""
    import datasets  # noqa: F401
    import xxhash  # noqa: F401
    if "cvft" in name:
        import polars  # noqa: F401  (the species sheet is read with it)

        import connectors  # noqa: F401
        import cvft_data.builder  # noqa: F401
        import cvft_data.cli.ingest  # noqa: F401
    if "supervision" in name:
        import supervision  # noqa: F401
    if name.startswith("loader"):
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    if name.startswith("loader640"):
        import ultralytics  # noqa: F401


def _copy_out(files: list[Path], out: Path, arrow: bool = False) -> int:
    """The least an ingest must do: read each file (into one reused buffer), hash it, append it to
    an output file. ``arrow``: also read its header (size and EXIF, no pixels) and write Arrow IPC
    record batches of 32 images (the bytes column is the buffer, no copy). Returns bytes written."""
    import pyarrow as pa
    import xxhash
    from PIL import Image

    buf = bytearray(64 * 2**20)
    view = memoryview(buf)
    total, used, sizes = 0, 0, []
    schema = pa.schema([("image", pa.binary())])
    with open(out, "wb", buffering=0) as sink:
        writer = pa.ipc.new_stream(pa.PythonFile(sink), schema) if arrow else None

        def flush():
            offsets = pa.py_buffer(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32))
            col = pa.BinaryArray.from_buffers(pa.binary(), len(sizes), [None, offsets, pa.py_buffer(view[:used])])
            writer.write_batch(pa.RecordBatch.from_arrays([col], schema=schema))

        for f in files:
            with open(f, "rb", buffering=0) as src:
                n = src.readinto(view[used:])
            xxhash.xxh3_128_intdigest(view[used:used + n])
            total += n
            if not arrow:
                sink.write(view[:n])
                continue
            with Image.open(io.BytesIO(bytes(view[used:used + min(n, 256 * 1024)]))) as im:
                _ = im.size, im.getexif()
            used += n
            sizes.append(n)
            if len(sizes) == 32:
                flush()
                used, sizes = 0, []
        if arrow:
            if sizes:
                flush()
            writer.close()
    return total


def stage(name: str, corpus: Path, n: int, work: Path, workers: int) -> dict:
    from PIL import Image

    _preimport(name)
    files = _files(corpus)
    if name in OUTPUTS:  # every tool writes a new dataset: removing an old one is not timed
        shutil.rmtree(work / OUTPUTS[name], ignore_errors=True)
    t0 = time.perf_counter()
    out_bytes = 0
    images = n
    t_end = None  # set by stages that measure their output after the clock stops
    if name == "read":
        for f in files:
            f.read_bytes()
    elif name == "read+hash":
        import xxhash
        for f in files:
            xxhash.xxh3_128_hexdigest(f.read_bytes())
    elif name in ("read+hash+write", "read+hash+header+Arrow"):
        parts = [files[k::max(workers, 1)] for k in range(max(workers, 1))]
        arrow = [name != "read+hash+write"] * len(parts)
        outs = [work / f"copy_out_{k}.bin" for k in range(len(parts))]
        if workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor
            pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))
            for fut in [pool.submit(os.getpid) for _ in range(workers)]:  # started before the clock
                fut.result()
            t0 = time.perf_counter()
            out_bytes = sum(pool.map(_copy_out, parts, outs, arrow))
            seconds = time.perf_counter() - t0
            pool.shutdown()
        else:
            t0 = time.perf_counter()
            out_bytes = _copy_out(files, outs[0], arrow[0])
            seconds = time.perf_counter() - t0
        for o in outs:
            o.unlink()
        return {"images": images, "seconds": seconds, "output_bytes": out_bytes}
    elif name == "header":
        for f in files:
            with Image.open(f) as im:
                _ = im.size
                im.getexif()
    elif name in ("decode full", "decode draft 224"):
        files = files[:SAMPLE_DECODE]
        images = len(files)
        t0 = time.perf_counter()
        for f in files:
            with Image.open(f) as im:
                if name != "decode full":
                    im.draft("RGB", (400, 224))
                im = im.convert("RGB")
                im.resize((224, 224)) if name != "decode full" else im.load()
    elif name == "cvft ingest":
        from cvft_data.cli.ingest import main
        out = work / "cvft_ds"
        main([str(corpus / "tree"), "--format", "camera-trap", "--out", str(out), "--overwrite", "--quiet",
              "--workers", str(workers), "--option", f"species={corpus / 'species.csv'}"])
        t_end = time.perf_counter()
        out_bytes = _dir_size(out)
    elif name == "imagefolder+save_to_disk":
        import datasets
        datasets.disable_progress_bars()
        ds = datasets.load_dataset("imagefolder", data_dir=str(corpus / "classes"), split="train",
                                   cache_dir=str(work / "hf_cache"))
        ds.save_to_disk(str(work / "imagefolder_ds"))
        t_end = time.perf_counter()
        out_bytes = _dir_size(work / "imagefolder_ds")
        shutil.rmtree(work / "imagefolder_ds")  # measured; not used later (disk space at 20,000 images)
    elif name == "from_dict+cast_column+save_to_disk":
        import datasets
        datasets.disable_progress_bars()
        ds = datasets.Dataset.from_dict({"image": [str(f) for f in files]}).cast_column("image", datasets.Image())
        ds.save_to_disk(str(work / "fromdict_ds"))
        t_end = time.perf_counter()
        out_bytes = _dir_size(work / "fromdict_ds")
        shutil.rmtree(work / "fromdict_ds")
    elif name == "supervision from_coco":
        import supervision as sv
        ds = sv.DetectionDataset.from_coco(images_directory_path=str(corpus),
                                           annotations_path=str(corpus / "coco.json"))
        images = len(ds)
    elif name == "supervision from_yolo":
        import supervision as sv
        y = corpus / "yolo"
        ds = sv.DetectionDataset.from_yolo(images_directory_path=str(y / "images" / "train"),
                                           annotations_directory_path=str(y / "labels" / "train"),
                                           data_yaml_path=str(y / "data.yaml"))
        images = len(ds)
    elif name.startswith("loader224"):
        import torch
        from torch.utils.data import DataLoader
        from torchvision.transforms import v2
        tf = v2.Compose([v2.PILToTensor(), v2.Resize(224, antialias=True), v2.CenterCrop(224),
                         v2.ToDtype(torch.float32, scale=True)])
        if name == "loader224 cvft":
            import cvft_data
            from cvft_train import ClassificationDataset
            ds = ClassificationDataset(cvft_data.load(work / "cvft_ds")["train"], tf, imgsz=224, null_label=0)
        else:
            import torchvision
            ds = torchvision.datasets.ImageFolder(str(corpus / "classes"), tf)
        images = min(len(ds), 1024)
        sub = torch.utils.data.Subset(ds, list(range(images)))
        t0 = time.perf_counter()
        for _ in DataLoader(sub, batch_size=64, num_workers=workers):
            pass
    elif name.startswith("loader640"):
        os.environ.setdefault("YOLO_CONFIG_DIR", str(work / "ulcfg"))
        from ultralytics.cfg import get_cfg
        from ultralytics.data import build_dataloader, build_yolo_dataset
        from ultralytics.data.utils import check_det_dataset
        if name == "loader640 cvft":
            # cvft trains YOLO on an exported layout, made once per content hash and cached:
            # the export is reported apart, the epoch runs Ultralytics' loader on it
            import cvft_data
            t_exp = time.perf_counter()
            cvft_data.export(work / "cvft_ds_det", "yolo", work / "cvft_yolo", overwrite=True)
            export_s = time.perf_counter() - t_exp
            yaml_path = work / "cvft_yolo" / "data.yaml"
        else:
            export_s, yaml_path = 0.0, corpus / "yolo" / "data.yaml"
        data = check_det_dataset(str(yaml_path))
        cfg = get_cfg(overrides={"imgsz": 640, "batch": 16, "workers": workers, "task": "detect", "mode": "train"})
        ds = build_yolo_dataset(cfg, data["train"], 16, data, mode="val", rect=False)
        loader = build_dataloader(ds, 16, workers, shuffle=False)
        images = 0
        t0 = time.perf_counter()
        for batch in loader:
            images += len(batch["img"])
            if images >= 1024:
                break
        return {"images": images, "seconds": time.perf_counter() - t0, "output_bytes": 0, "export_s": export_s}
    elif name == "cvft ingest detection":
        from cvft_data.cli.ingest import main
        out = work / "cvft_ds_det"
        main([str(corpus / "coco.json"), "--format", "coco", "--out", str(out), "--overwrite", "--quiet",
              "--workers", str(workers)])
        t_end = time.perf_counter()
        out_bytes = _dir_size(out)
    else:
        raise SystemExit(f"unknown stage {name}")
    return {"images": images, "seconds": (t_end or time.perf_counter()) - t0, "output_bytes": out_bytes}


if __name__ == "__main__":
    name, corpus, n, work = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    workers = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(stage(name, corpus, n, work, workers)))
    shutil.rmtree(work / "hf_cache", ignore_errors=True)
    sys.stdout.flush()
