"""The fast paths of ingest and loading give exactly what the plain paths give: the image arena and
column-wise Arrow conversion, header facts reused from the connector, the PNG probe that does not
decode, the camera-trap EXIF pass on the worker pool, and the threaded batch decode."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

import connectors
import cvft_data
from builders import camera_jpeg, image_bytes, make_archive
from cvft_data import shardwriter
from cvft_data.errors import CorruptImageError
from cvft_data.imageinfo import HEADER_PREFIX, probe
from cvft_data.schema import features_for
from cvft_data.shardwriter import ImageArena, ShardWriter


def _detection_row(i: int, data, classes=("cat", "dog")) -> dict:
    return {"image_id": f"img{i}.jpg", "image": {"bytes": data, "path": None}, "width": 24, "height": 16,
            "objects": {"bbox": [[1.0, 2.0, 3.5, 4.0]] * (i % 3), "category": [classes[i % 2]] * (i % 3),
                        "area": [14.0] * (i % 3), "iscrowd": [False] * (i % 3),
                        "segmentation": [{"polygons": [[1.0, 2.0, 4.5, 2.0, 4.5, 6.0]],
                                          "rle": {"size": [16, 24], "counts": "PP1"} if i % 2 else None}] * (i % 3)},
            "object_attributes": [{"occluded": bool(i % 2), "note": "é"}] * (i % 3),
            "label_status": "labeled" if i % 3 else "empty", "group": f"site{i % 4}" if i % 5 else None,
            "meta": {"i": i, "nested": {"list": [1, 2.5, None]}}}


def _read_stream(path):
    with pa.OSFile(str(path), "rb") as f:
        return pa.ipc.open_stream(f).read_all()


def test_shard_writer_matches_datasets_encoding(tmp_path, monkeypatch):
    """Arena batches flushed early (small arena), an image larger than the arena, a dropped row
    rolled back, a row whose bytes are not in the arena: the file reads back as datasets encodes."""
    from datasets import Dataset

    monkeypatch.setattr(shardwriter, "ARENA_BYTES", 4000)
    monkeypatch.setattr(shardwriter, "_FREE_ARENAS", [])
    files = []
    for i in range(40):
        files.append(tmp_path / f"img{i}.jpg")
        files[-1].write_bytes(image_bytes(24 if i != 7 else 160, 16 if i != 7 else 120, seed=i, quality=95))
    assert files[7].stat().st_size > 4000 > files[0].stat().st_size * 2, "one image does not fit the arena"
    features = features_for("detection", ["cat", "dog"])
    writer = ShardWriter(tmp_path / "part.arrow", features)
    expected = []
    for i, f in enumerate(files):
        mark = writer.arena.mark()
        data = writer.arena.read_file(f)
        if i % 11 == 5:  # dropped after reading: its bytes must not stay in the batch
            writer.arena.rollback(mark)
            continue
        if i == 12:  # bytes from elsewhere (a zip member, a downscaled image)
            data = f.read_bytes()
        row = _detection_row(i, data)
        writer.write(row)
        expected.append({**row, "image": {"bytes": f.read_bytes(), "path": None}})
    assert writer.close() == len(expected)
    got = Dataset(_read_stream(tmp_path / "part.arrow")).with_format(None)
    from datasets import Image as HFImage

    got = got.cast_column("image", HFImage(decode=False))
    want = Dataset.from_list(expected, features=features).cast_column("image", HFImage(decode=False))
    assert got.features == want.features
    assert got.to_list() == want.to_list()


def test_arena_rollback_after_an_early_flush():
    flushed = []
    arena = ImageArena(10)
    arena.on_full = lambda: (flushed.append(bytes(arena.view[:arena.used])), arena.reset())
    arena.add(b"abcdef")
    mark = arena.mark()
    arena.add(b"ghijkl")  # does not fit: the pending batch is written first
    assert flushed == [b"abcdef"] and arena.used == 6
    arena.rollback(mark)  # the mark is from the written batch: everything since goes
    assert arena.used == 0
    big = arena.add(b"x" * 25)  # bigger than the arena: a bigger buffer
    assert bytes(big) == b"x" * 25 and arena.owns(big)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def _png(chunks) -> bytes:
    body = b"".join(struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d)) for t, d in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


def test_png_probe_does_not_decode_and_reads_orientation(monkeypatch):
    from PIL.PngImagePlugin import PngImageFile

    plain = image_bytes(24, 16, "PNG")
    rotated = image_bytes(24, 16, "PNG", orientation=6)
    chunks = _png_chunks(rotated)
    assert [t for t, _ in chunks].index(b"eXIf") < [t for t, _ in chunks].index(b"IDAT")
    late = _png([c for c in chunks if c[0] != b"eXIf" and c[0] != b"IEND"]
                + [c for c in chunks if c[0] == b"eXIf"] + [(b"IEND", b"")])
    assert probe(late, name="late.png").width == 16, "an eXIf chunk after the pixels is still read"
    monkeypatch.setattr(PngImageFile, "load", lambda self: pytest.fail("probe decoded a PNG"))
    assert (probe(plain, name="a.png").width, probe(plain, name="a.png").height) == (24, 16)
    info = probe(memoryview(rotated), name="r.png")
    assert (info.width, info.height, info.orientation) == (16, 24, 6)


def test_jpeg_header_beyond_the_prefix_is_parsed_whole():
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes(), icc_profile=bytes(HEADER_PREFIX + 5000))  # APP2 chunks past it
    data = buf.getvalue()
    info = probe(memoryview(data), name="big-header.jpg")
    assert (info.width, info.height, info.orientation) == (40, 60, 6)
    assert info.xxh3 == probe(data, name="same.jpg").xxh3
    with pytest.raises(CorruptImageError, match="truncated"):
        probe(memoryview(data[:-2]), name="cut.jpg")


def test_camera_trap_header_reuse_still_catches_truncation(tmp_path):
    """The connector's header facts spare a second parse, not the end-marker check."""
    src = make_archive(tmp_path)
    victim = src / "2019/set_01/site_A/cam1/IMG_0002.JPG"
    victim.write_bytes(victim.read_bytes()[:-200])
    rec = next(r for r in connectors.get("camera-trap")(src).records() if r.image_id.endswith("cam1/IMG_0002.JPG"))
    assert rec.header is not None and rec.header[:2] == Image.open(victim).size
    info = cvft_data.ingest(src, tmp_path / "ds", format="camera-trap", on_error="skip",
                            species=str(tmp_path / "species.csv"))
    entries = [e for e in cvft_data.read_ledger(tmp_path / "ds") if e.action == "dropped_image"]
    assert [e.item for e in entries] == ["2019/set_01/site_A/cam1/IMG_0002.JPG"] and "truncated" in entries[0].detail
    assert info["splits"]["train"]["images"] == 9


def test_camera_trap_exif_on_the_pool_gives_the_same_dataset(tmp_path):
    from datetime import datetime, timedelta

    from connectors import camera_traps

    src = tmp_path / "arch"
    rows = ["RelativePath,File,Species"]
    for i in range(300):
        rel = f"2021/s1/site{i % 3}/cam{i % 2}"
        p = src / rel / f"IMG_{i:05d}.JPG"
        p.parent.mkdir(parents=True, exist_ok=True)
        j = i // 6  # the image's place in its camera: bursts of three, 2 s apart, 10 minutes between bursts
        when = datetime(2021, 3, 1, 10) + timedelta(minutes=10 * (j // 3), seconds=2 * (j % 3))
        p.write_bytes(camera_jpeg(when.strftime("%Y:%m:%d %H:%M:%S"), seed=i, w=32, h=24))
        rows.append(f"{rel},IMG_{i:05d}.JPG,{('fox', 'emu', 'none')[i % 3]}")
    (tmp_path / "sheet.csv").write_text("\n".join(rows) + "\n")
    assert 300 > 2 * camera_traps.EXIF_TASK_IMAGES, "several EXIF tasks per folder"
    one = cvft_data.ingest(src, tmp_path / "one", format="camera-trap", species=str(tmp_path / "sheet.csv"),
                           workers=1, group_by="sequence")
    two = cvft_data.ingest(src, tmp_path / "two", format="camera-trap", species=str(tmp_path / "sheet.csv"),
                           workers=2, group_by="sequence")
    assert one["content_hash"] == two["content_hash"] and one["splits"] == two["splits"]
    assert len({r["group"] for r in cvft_data.load(tmp_path / "two")["train"]}) == 6 * 17, "bursts from EXIF times"


def test_batch_decode_equals_item_decode(tmp_path):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from cvft_data.sample import write_coco_sample
    from cvft_train import ClassificationDataset, DetectionDataset, data

    src = write_coco_sample(tmp_path / "src", n_images=12)
    cvft_data.ingest(src, tmp_path / "det")
    det = DetectionDataset(cvft_data.load(tmp_path / "det")["train"])
    batch = det.__getitems__(list(range(len(det))))
    for k, (image, target) in enumerate(batch):
        one_image, one_target = det[k]
        assert torch.equal(image, one_image) and torch.equal(target["boxes"], one_target["boxes"])
        assert target["image_id"] == one_target["image_id"]
    cvft_data.ingest(tmp_path / "src" / "images", tmp_path / "cls", format="folder")
    cls = ClassificationDataset(cvft_data.load(tmp_path / "cls")["train"], imgsz=32)
    xs, ys = next(iter(DataLoader(cls, batch_size=len(cls), num_workers=0)))
    assert all(torch.equal(xs[k], cls[k][0]) and ys[k] == cls[k][1] for k in range(len(cls)))
    assert data.decode_threads() >= 1
    images = cls.ds[list(range(len(cls)))]["image"]
    serial = [np.asarray(im) for im in data.decode_many(images, 32, threads=1)]
    threaded = [np.asarray(im) for im in data.decode_many(images, 32, threads=3)]
    assert all(np.array_equal(a, b) for a, b in zip(serial, threaded))


def test_prefetch_is_harmless(tmp_path):
    from cvft_data.paths import prefetch

    f = tmp_path / "a.jpg"
    f.write_bytes(image_bytes())
    prefetch([f, tmp_path / "missing.jpg", tmp_path])  # a missing file and a folder: nothing raised
    assert f.read_bytes() == image_bytes()
