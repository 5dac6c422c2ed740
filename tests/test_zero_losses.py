"""Zero silent losses and hardened input: an ingest reads everything or says why, and hostile
input (links out of the source, zip bombs, replaced archives, redirects) is refused by name."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

import cvft_data
from builders import (
    LocalServer,
    ingest_ledger,
    ledger_summary,
    make_coco,
    make_folder,
    make_voc,
    make_yolo,
    write_image,
    write_json,
)
from cvft_data.cli import ingest as ingest_cli
from cvft_data.errors import EmptyDatasetError, MalformedFileError, UnsafePathError

# --- an ingest that ends with nothing is an error ----------------------------------------------------


def test_zero_images_is_an_error_with_the_ledger_and_a_suggestion(tmp_path, capsys):
    src = make_coco(tmp_path / "src")
    for p in (src / "images").rglob("*.jpg"):
        p.unlink()
    with pytest.raises(EmptyDatasetError, match="holds no images") as caught:
        cvft_data.ingest(src, tmp_path / "ds", format="coco", on_error="skip")
    assert caught.value.ledger and all(e["action"] == "dropped_image" for e in caught.value.ledger)
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".ds.cvft-partial"))
    rc = ingest_cli.main([str(src), "--out", str(tmp_path / "ds"), "--format", "coco", "--on-error", "skip", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "holds no images" in err and "missing_image" in err
    assert "--on-error skip" not in err, "never suggest the flag the user already gave"


def test_every_annotation_dropped_is_an_error(tmp_path):
    src = make_yolo(tmp_path / "src", names=("cat",))   # every "1 ..." line names an unknown class
    for p in (src / "labels").rglob("*.txt"):
        p.write_text("7 0.5 0.5 0.2 0.2\n")
    info, ledger = ingest_ledger(src, tmp_path / "ds", on_error="skip")
    assert info is None and ledger_summary(ledger)["by_reason"]["unknown_class"] == 3


def test_a_source_with_only_blank_images_is_still_a_dataset(tmp_path):
    """Nothing was dropped: a set of background images is a legitimate (null-image) dataset."""
    src = make_yolo(tmp_path / "src")
    for p in (src / "labels").rglob("*.txt"):
        p.unlink()
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["splits"]["train"]["empty"] == 3


# --- links out of the source, in every connector -----------------------------------------------------


def _link_out(path: Path, outside: Path) -> None:
    write_image(outside, seed=9)
    path.unlink()
    path.symlink_to(outside)


@pytest.mark.parametrize("maker,victim", [
    (make_yolo, "images/train/a.jpg"),
    (make_voc, "JPEGImages/c78.jpg"),
    (make_folder, "train/cat/a.jpg"),
    (make_coco, "images/train/1.jpg"),
])
def test_an_image_linked_out_of_the_source_is_refused(tmp_path, maker, victim):
    src = maker(tmp_path / "src")
    _link_out(src / victim, tmp_path / "secret" / "private.jpg")
    with pytest.raises(UnsafePathError, match="leads out of the source"):
        cvft_data.ingest(src, tmp_path / "raise")
    info, ledger = ingest_ledger(src, tmp_path / "skip", on_error="skip")
    refused = [e for e in ledger if e.reason == "unsafe_path"]
    assert refused and refused[0].action == "dropped_image"
    if info is not None:
        ids = [r for s in cvft_data.load(tmp_path / "skip").values() for r in s["image_id"]]
        assert not any(i.endswith(Path(victim).name) for i in ids)


def test_an_images_folder_the_user_names_may_live_elsewhere(tmp_path):
    from builders import MAKESENSE_CSV, make_makesense

    src = make_makesense(tmp_path / "src")
    pics = tmp_path / "pics"
    pics.mkdir()
    for p in src.glob("*.jpg"):
        p.rename(pics / p.name)
    info = cvft_data.ingest(src / MAKESENSE_CSV, tmp_path / "ds", format="makesense", images=str(pics))
    assert info["splits"]["train"]["objects"] == 3


# --- zips read in place ------------------------------------------------------------------------------


def test_a_zip_member_that_inflates_too_far_is_refused(tmp_path):
    from builders import cvat_images_xml

    p = tmp_path / "bomb.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("annotations.xml", cvat_images_xml(""))
        z.writestr("images/img0.jpg", b"\xff\xd8" + b"\0" * (8 << 20))   # 8 MiB of zeros: ~1000x
    with pytest.raises(MalformedFileError, match="expands"):
        cvft_data.ingest(p, tmp_path / "ds", format="cvat")


def test_a_replaced_archive_is_never_served_from_a_stale_handle(tmp_path):
    from cvft_data.archive import read_member

    p = tmp_path / "a.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x.jpg", b"first")
    assert read_member(p, "x.jpg") == b"first"
    tmp = tmp_path / "b.zip"
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr("x.jpg", b"second version")
    os.replace(tmp, p)
    assert read_member(p, "x.jpg") == b"second version"


# --- downloads ---------------------------------------------------------------------------------------


def _zip_of(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in entries.items():
            z.writestr(k, v)
    return buf.getvalue()


def test_many_small_members_cannot_add_up_to_a_bomb(tmp_path):
    from cvft_data.download import safe_extract

    p = tmp_path / "many.zip"
    p.write_bytes(_zip_of({f"f{i:04d}.bin": b"\0" * (512 << 10) for i in range(64)}))   # 32 MiB, ~1000x
    with pytest.raises(MalformedFileError, match="in all"):
        safe_extract(p, tmp_path / "out")
    assert not (tmp_path / "out").exists()


class _Redirector(LocalServer):
    """A local server whose download URL redirects (to another host, or to itself)."""

    def __init__(self, target: str, payload: bytes = b""):
        import http.server

        outer = self
        self.target, self.payload = target, payload

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path.startswith("/final/"):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(outer.payload)))
                    self.end_headers()
                    self.wfile.write(outer.payload)
                    return
                self.send_response(302)
                self.send_header("Location", outer.target.format(port=self.server.server_address[1]))
                self.end_headers()

        super().__init__(Handler)


def test_a_redirect_to_another_host_is_refused_and_one_to_the_same_host_followed(tmp_path):
    from cvft_data.download import DownloadError, fetch_weedai

    with _Redirector("http://localhost:{port}/final/x.zip") as srv:   # localhost != 127.0.0.1
        with pytest.raises(DownloadError, match="another host"):
            fetch_weedai("x", base_url=srv.url, cache=tmp_path, progress=False)
    payload = _zip_of({"weedcoco.json": b"{}"})
    with _Redirector("http://127.0.0.1:{port}/final/x.zip", payload) as srv:
        folder = fetch_weedai("x", base_url=srv.url, cache=tmp_path / "c2", progress=False)
    assert (folder / "weedcoco.json").is_file()


def test_a_pinned_hash_refuses_another_archive_and_deletes_it(tmp_path):
    import hashlib

    from cvft_data.download import DownloadError, fetch_weedai

    payload = _zip_of({"weedcoco.json": b"{}"})
    with _Redirector("http://127.0.0.1:{port}/final/x.zip", payload) as srv:
        with pytest.raises(DownloadError, match="SHA-256"):
            fetch_weedai("x", base_url=srv.url, cache=tmp_path, progress=False, sha256="0" * 64)
        assert not (tmp_path / "weedai" / "x.zip").exists()
        good = hashlib.sha256(payload).hexdigest()
        assert (fetch_weedai("x", base_url=srv.url, cache=tmp_path, progress=False, sha256=good)
                / "weedcoco.json").is_file()


def test_a_bomb_download_is_deleted_from_the_cache(tmp_path):
    from cvft_data.download import fetch_weedai

    payload = _zip_of({"zeros.bin": b"\0" * (8 << 20)})
    with _Redirector("http://127.0.0.1:{port}/final/x.zip", payload) as srv:
        with pytest.raises(MalformedFileError, match="deleted from the cache"):
            fetch_weedai("x", base_url=srv.url, cache=tmp_path, progress=False)
    assert not (tmp_path / "weedai" / "x.zip").exists()


def test_sha256_on_a_local_source_is_a_usage_error(tmp_path, capsys):
    src = make_yolo(tmp_path / "src")
    assert ingest_cli.main([str(src), "--out", str(tmp_path / "ds"), "--sha256", "ab", "--quiet"]) == 2
    assert "downloaded source" in capsys.readouterr().err





# --- layouts read whole, or refused by name ------------------------------------------------------------


@pytest.mark.parametrize("images,labels", [("images/train", "labels/train"), ("Images", "Annotations")])
def test_darknet_obj_names_without_obj_data_is_read_whole(tmp_path, images, labels):
    src = tmp_path / "src"
    (src).mkdir()
    (src / "obj.names").write_text("cat\ndog\n")
    for i in range(3):
        write_image(src / images / f"{i}.jpg", seed=i)
        (src / labels).mkdir(parents=True, exist_ok=True)
        (src / labels / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.5\n")
    if images.startswith("images"):
        write_image(src / "images" / "val" / "v.jpg", seed=7)
        (src / "labels" / "val").mkdir(parents=True)
        (src / "labels" / "val" / "v.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["source"]["connector"] == "yolo"
    assert info["splits"]["train"]["objects"] == 3 and info["splits"]["train"]["labeled"] == 3
    if images.startswith("images"):
        assert info["splits"]["validation"]["objects"] == 1


def test_darknet_annotations_folder_orphans_are_ledgered(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "obj.names").write_text("cat\n")
    write_image(src / "Images" / "0.jpg")
    (src / "Annotations").mkdir()
    (src / "Annotations" / "0.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    (src / "Annotations" / "gone.txt").write_text("0 0.5 0.5 0.25 0.5\n0 0.2 0.2 0.1 0.1\n")
    info = cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    assert info["ledger"]["by_reason"] == {"missing_image": 1} and info["ledger"]["annotations_dropped"] == 2


def test_a_missing_data_yaml_split_is_ledgered_and_its_folder_discovered(tmp_path, capsys):
    src = make_yolo(tmp_path / "src")
    (src / "data.yaml").write_text("train: ../somewhere/train/images\nval: gone/val\nnames: [cat, dog]\n")
    with pytest.raises(MalformedFileError, match="not found"):
        cvft_data.ingest(src, tmp_path / "raise")
    info, ledger = ingest_ledger(src, tmp_path / "skip", on_error="skip")
    reasons = {e.reason for e in ledger}
    assert {"malformed_file", "split_folder_discovered"} <= reasons
    assert info["splits"]["train"]["images"] == 3 and info["splits"]["validation"]["images"] == 1
    assert info["splits"]["train"]["objects"] == 3


def test_dota_label_txt_is_refused_not_read_as_backgrounds(tmp_path):
    src = make_yolo(tmp_path / "src")
    import shutil
    shutil.rmtree(src / "labels")
    (src / "labelTxt").mkdir()
    (src / "labelTxt" / "a.txt").write_text("imagesource:GoogleEarth\ngsd:0.1\n1 1 9 1 9 9 1 9 plane 0\n")
    for policy in ("raise", "skip"):
        with pytest.raises(MalformedFileError, match="DOTA"):
            cvft_data.ingest(src, tmp_path / policy, on_error=policy)


@pytest.mark.parametrize("annotation", ["annotations/default.json", "masks/a.png", "train/cat/labels.xml"])
def test_the_class_folder_fallback_refuses_a_tree_with_annotations(tmp_path, annotation):
    src = make_folder(tmp_path / "src")
    target = src / annotation
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix == ".png":
        write_image(target, fmt="PNG")
    else:
        target.write_text("{}" if target.suffix == ".json" else "<x/>")
    with pytest.raises(MalformedFileError, match="annotation files") as caught:
        cvft_data.ingest(src, tmp_path / "ds", format="folder", on_error="skip")
    assert annotation.split("/")[0] in str(caught.value)
    info = cvft_data.ingest(src, tmp_path / "ds2", format="folder", annotations="ignore", on_error="skip")
    assert info["task"] == "classification"


def test_coco_kind_is_decided_by_content_not_the_file_name(tmp_path):
    src = make_coco(tmp_path / "src")
    ann = src / "annotations"
    os.rename(ann / "instances_train.json", ann / "panoptic_train.json")   # misnamed instances
    import connectors
    assert connectors.detect(src).name == "coco"
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["splits"]["train"]["objects"] == 4
    # and a panoptic document named like instances is panoptic
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
           "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": []}],
           "categories": [{"id": 1, "name": "x", "isthing": 1}]}
    other = tmp_path / "p"
    write_json(other / "annotations" / "instances_train.json", doc)
    assert connectors.detect(other).name == "coco_panoptic"


# --- images without annotation files; all annotations rejected ------------------------------------------


def test_voc_flat_layout_keeps_images_without_xml_as_unlabeled(tmp_path):
    from builders import voc_xml

    src = tmp_path / "src"
    write_image(src / "a.jpg", seed=1)
    write_image(src / "b.jpg", seed=2)   # no b.xml
    (src / "a.xml").write_text(voc_xml("a.jpg", [("cat", (1, 1, 10, 8))]))
    info = cvft_data.ingest(src, tmp_path / "ds", format="voc")
    assert info["splits"]["train"]["images"] == 2 and info["splits"]["train"]["unlabeled"] == 1


def test_makesense_finds_images_in_sub_folders_and_names_the_option(tmp_path):
    from builders import make_makesense

    src = make_makesense(tmp_path / "src")
    (src / "photos" / "day1").mkdir(parents=True)
    for p in src.glob("*.jpg"):
        p.rename(src / "photos" / "day1" / p.name)
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["splits"]["train"]["objects"] == 3 and info["splits"]["train"]["images"] == 3
    (src / "photos" / "day1" / "a.jpg").unlink()
    with pytest.raises(cvft_data.MissingImageError, match="--option images=DIR"):
        cvft_data.ingest(src, tmp_path / "ds2")
    write_image(src / "photos" / "day2" / "a.jpg")
    write_image(src / "photos" / "day3" / "a.jpg")
    with pytest.raises(cvft_data.MissingImageError, match="ambiguous"):
        cvft_data.ingest(src, tmp_path / "ds3")


def test_makesense_image_whose_annotations_were_all_rejected_is_unlabeled(tmp_path):
    from builders import MAKESENSE_CSV

    src = tmp_path / "src"
    write_image(src / "a.jpg", seed=1)
    write_image(src / "b.jpg", seed=2)
    (src / MAKESENSE_CSV).write_text("cat,2,3,10,5,a.jpg,24,16\ncat,1,1,0,0,b.jpg,24,16\n")
    info = cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    rows = {r["image_id"]: r["label_status"] for r in cvft_data.load(tmp_path / "ds")["train"]}
    assert rows == {"a.jpg": "labeled", "b.jpg": "unlabeled"}
    assert info["ledger"]["annotations_dropped"] == 1


def test_multilabel_labels_outside_the_class_list_are_ledgered(tmp_path):
    from cvft_data.ledger import ErrorPolicy
    from cvft_data.records import ImageRecord
    from cvft_data.rows import RowContext, build_row

    write_image(tmp_path / "a.jpg")
    rec = ImageRecord(image_id="a.jpg", path=tmp_path / "a.jpg", labels=["cat", "unicorn"], label_status="labeled")
    policy = ErrorPolicy("skip")
    row = build_row(rec, RowContext("multilabel", ("cat",)), policy)
    assert row["labels"] == ["cat"] and [e.reason for e in policy.ledger] == ["unknown_class"]
    rec.labels = ["unicorn"]
    assert build_row(rec, RowContext("multilabel", ("cat",)), policy)["label_status"] == "unlabeled"


def test_a_listed_image_that_is_missing_counts_its_label_lines(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "obj.names").write_text("cat\n")
    (src / "obj.data").write_text("classes = 1\ntrain = train.txt\nnames = obj.names\n")
    write_image(src / "obj_train_data" / "1.jpg")
    (src / "obj_train_data" / "1.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (src / "obj_train_data" / "2.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.1 0.1\n")
    (src / "train.txt").write_text("obj_train_data/1.jpg\nobj_train_data/2.jpg\n")
    info = cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    assert info["ledger"]["images_dropped"] == 1 and info["ledger"]["annotations_dropped"] == 2


# --- COCO-family ids ---------------------------------------------------------------------------------


def _coco_two_images(tmp_path, images, annotations, categories) -> Path:
    src = tmp_path / "src"
    write_image(src / "images" / "a.jpg", seed=1)
    write_image(src / "images" / "b.jpg", seed=2)
    write_json(src / "annotations" / "instances_train.json",
               {"images": images, "annotations": annotations, "categories": categories})
    return src


def test_duplicate_coco_image_ids_never_move_boxes_to_another_image(tmp_path):
    src = _coco_two_images(
        tmp_path,
        [{"id": 1, "file_name": "a.jpg", "width": 24, "height": 16}, {"id": 1, "file_name": "b.jpg", "width": 24, "height": 16}],
        [{"id": 9, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}],
        [{"id": 1, "name": "cat"}])
    with pytest.raises(MalformedFileError, match="declared 2 times"):
        cvft_data.ingest(src, tmp_path / "raise")
    info, ledger = ingest_ledger(src, tmp_path / "skip", on_error="skip")
    assert info is None, "both images were taken out: nothing is left"
    s = ledger_summary(ledger)
    assert s["images_dropped"] == 2 and s["annotations_dropped"] == 1


def test_duplicate_coco_category_ids_never_move_boxes_to_another_class(tmp_path):
    src = _coco_two_images(
        tmp_path,
        [{"id": 1, "file_name": "a.jpg", "width": 24, "height": 16}, {"id": 2, "file_name": "b.jpg", "width": 24, "height": 16}],
        [{"id": 9, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]},
         {"id": 10, "image_id": 2, "category_id": 2, "bbox": [1, 1, 4, 4]}],
        [{"id": 1, "name": "cat"}, {"id": 1, "name": "dog"}, {"id": 2, "name": "fox"}])
    with pytest.raises(MalformedFileError, match="category id 1 is declared 2 times"):
        cvft_data.ingest(src, tmp_path / "raise")
    info = cvft_data.ingest(src, tmp_path / "skip", on_error="skip")
    assert info["classes"] == ["fox"] and info["splits"]["train"]["class_counts"] == {"fox": 1}
    assert info["ledger"]["by_reason"] == {"malformed_file": 2, "unknown_class": 1, "all_annotations_dropped": 1}


@pytest.mark.parametrize("bad_id", [[1, 2], 2.5, True])
def test_unusable_coco_ids_are_refused_by_name(tmp_path, bad_id):
    src = _coco_two_images(
        tmp_path,
        [{"id": bad_id, "file_name": "a.jpg", "width": 24, "height": 16}, {"id": 2, "file_name": "b.jpg", "width": 24, "height": 16}],
        [{"id": 9, "image_id": bad_id, "category_id": 1, "bbox": [1, 1, 4, 4]},
         {"id": 10, "image_id": 2, "category_id": 1, "bbox": [1, 1, 4, 4]}],
        [{"id": 1, "name": "cat"}])
    with pytest.raises(MalformedFileError, match="not an integer or a string"):
        cvft_data.ingest(src, tmp_path / "raise")
    info = cvft_data.ingest(src, tmp_path / "skip", on_error="skip")
    assert info["splits"]["train"]["images"] == 1 and info["ledger"]["annotations_dropped"] == 1


def test_a_second_panoptic_entry_for_one_image_is_ledgered(tmp_path):
    import numpy as np
    from PIL import Image

    src = tmp_path / "src"
    write_image(src / "images" / "a.jpg")
    (src / "annotations" / "panoptic_train").mkdir(parents=True)
    png = np.zeros((16, 24, 3), np.uint8)
    png[2:8, 2:8] = (1, 0, 0)
    Image.fromarray(png).save(src / "annotations" / "panoptic_train" / "a.png")
    seg = {"id": 1, "category_id": 1, "area": 36, "bbox": [2, 2, 6, 6], "iscrowd": 0}
    write_json(src / "annotations" / "panoptic_train.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 24, "height": 16}],
        "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [seg]},
                        {"image_id": 1, "file_name": "a.png", "segments_info": [seg]}],
        "categories": [{"id": 1, "name": "weed", "isthing": 1}]})
    info = cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    assert info["ledger"]["by_reason"] == {"malformed_file": 1} and info["splits"]["train"]["objects"] == 1


def test_camera_trap_coco_confidence_uses_the_megadetector_threshold(tmp_path):
    src = tmp_path / "src"
    write_image(src / "a.jpg", seed=1)
    write_image(src / "b.jpg", seed=2)
    write_json(src / "cct.json", {
        "info": {"detector_metadata": {"typical_detection_threshold": 0.5}},
        "images": [{"id": "a", "file_name": "a.jpg", "location": "s1", "seq_id": "q1"},
                   {"id": "b", "file_name": "b.jpg", "location": "s1", "seq_id": "q2"}],
        "annotations": [{"id": 1, "image_id": "a", "category_id": 1, "bbox": [1, 1, 5, 5], "confidence": 0.9},
                        {"id": 2, "image_id": "a", "category_id": 1, "bbox": [8, 8, 5, 5], "confidence": 0.1},
                        {"id": 3, "image_id": "b", "category_id": 1, "bbox": [1, 1, 5, 5], "confidence": 0.3}],
        "categories": [{"id": 1, "name": "animal"}]})
    info = cvft_data.ingest(src / "cct.json", tmp_path / "ds")
    assert info["splits"]["train"]["objects"] == 1 and info["ledger"]["by_reason"] == {"below_threshold": 2}
    info = cvft_data.ingest(src / "cct.json", tmp_path / "ds2", threshold="0.2")
    assert info["splits"]["train"]["objects"] == 2


# --- image facts ---------------------------------------------------------------------------------------


def test_bytes_after_the_end_marker_are_not_truncation_but_a_cut_file_is():
    from builders import image_bytes
    from cvft_data.errors import CorruptImageError
    from cvft_data.imageinfo import probe

    whole = image_bytes(64, 48)
    motion = whole + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40   # a motion photo's video
    assert probe(motion, name="m.jpg").width == 64
    png = image_bytes(64, 48, fmt="PNG") + b"padding" * 1000
    assert probe(png, name="p.png").height == 48
    with pytest.raises(CorruptImageError, match="truncated"):
        probe(whole[: len(whole) // 2], name="cut.jpg")


def test_tiff_orientation_gives_the_displayed_size():
    from PIL import Image

    from cvft_data.imageinfo import downscale, probe

    buf = io.BytesIO()
    Image.new("RGB", (30, 10)).save(buf, "TIFF", tiffinfo={274: 6})
    info = probe(buf.getvalue(), name="x.tif")
    assert (info.width, info.height, info.raw_width, info.raw_height) == (10, 30, 30, 10)
    _, w, h = downscale(buf.getvalue(), info, 15)
    assert (w, h) == (5, 15)


def test_json_integers_beyond_64_bits_are_refused_by_file(tmp_path):
    src = make_coco(tmp_path / "src")
    p = src / "annotations" / "instances_val.json"
    doc = json.loads(p.read_text())
    doc["images"][0]["camera_serial"] = 1 << 70
    p.write_text(json.dumps(doc))
    with pytest.raises(MalformedFileError, match="beyond 64 bits") as caught:
        cvft_data.ingest(src, tmp_path / "ds")
    assert "instances_val.json" in str(caught.value)


# --- library errors end as cvft errors -----------------------------------------------------------------


def test_a_library_error_from_a_connector_names_the_source(tmp_path, monkeypatch, capsys):
    import connectors.coco as coco_module

    src = make_coco(tmp_path / "src")

    def broken(*a, **k):   # a parser bug or an input no check foresaw
        raise KeyError("file_name")

    monkeypatch.setattr(coco_module, "add_annotations", broken)
    with pytest.raises(MalformedFileError, match="KeyError") as caught:
        cvft_data.ingest(src, tmp_path / "ds", format="coco")
    assert str(src) in str(caught.value)
    assert ingest_cli.main([str(src), "--out", str(tmp_path / "ds"), "--format", "coco", "--quiet"]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_a_full_disk_is_an_output_error_and_nothing_is_published(tmp_path, monkeypatch, capsys):
    import errno

    import cvft_data.builder as builder

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "ds"))

    monkeypatch.setattr(builder, "assemble", full)
    src = make_yolo(tmp_path / "src")
    rc = ingest_cli.main([str(src), "--out", str(tmp_path / "ds"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "No space left" in err and "Traceback" not in err
    assert not (tmp_path / "ds").exists()


# --- crash safety and concurrency -----------------------------------------------------------------------


def test_a_second_run_to_the_same_output_is_refused_while_the_first_runs(tmp_path):
    from cvft_data.errors import OutputError
    from cvft_data.store import output_lock

    src = make_yolo(tmp_path / "src")
    cvft_data.ingest(src, tmp_path / "ds")
    for target in ("ds2", "yolo", "split"):
        with output_lock(tmp_path / target):   # the first run, still writing
            with pytest.raises(OutputError, match="another cvft run"):
                if target == "ds2":
                    cvft_data.ingest(src, tmp_path / target)
                elif target == "yolo":
                    cvft_data.export(tmp_path / "ds", "yolo", tmp_path / target)
                else:
                    cvft_data.split(tmp_path / "ds", tmp_path / target, "0.5,0.5")
        assert not (tmp_path / target).exists()
    cvft_data.ingest(src, tmp_path / "ds2")   # released: it runs
    assert not list(tmp_path.glob(".*.cvft-lock"))


def test_the_lock_is_held_across_processes(tmp_path):
    import subprocess
    import sys
    import time

    from cvft_data.errors import OutputError

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from cvft_data.store import output_lock\n"
        f"with output_lock({str(tmp_path / 'ds')!r}):\n    print('locked', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=f"pid {holder.pid}"):
            cvft_data.ingest(make_yolo(tmp_path / "src"), tmp_path / "ds")
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    cvft_data.ingest(tmp_path / "src", tmp_path / "ds")   # the kernel released a dead holder's lock


def _interrupted_build(src, out, monkeypatch):
    """Build ``src`` with one image per shard and stop after the first two shards are committed."""
    import cvft_data.builder as builder

    real = builder.write_shard
    calls = {"n": 0}

    def stop_after_two(index, *a, **k):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(index, *a, **k)

    monkeypatch.setattr(builder, "write_shard", stop_after_two)
    conn = __import__("connectors").get("yolo")(src)
    with pytest.raises(KeyboardInterrupt):
        builder.build_dataset(conn, out, builder.BuildOptions(shard_size=1))
    monkeypatch.setattr(builder, "write_shard", real)
    assert (out.parent / f".{out.name}.cvft-partial" / "shard-000001.json").exists()


def test_resume_does_not_reuse_shards_of_a_source_that_changed(tmp_path, monkeypatch):
    import connectors
    from cvft_data.builder import BuildOptions, build_dataset

    src = make_yolo(tmp_path / "src")
    _interrupted_build(src, tmp_path / "ds", monkeypatch)
    (src / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")   # relabelled meanwhile
    build_dataset(connectors.get("yolo")(src), tmp_path / "ds", BuildOptions(shard_size=1))
    cvft_data.ingest(src, tmp_path / "fresh")
    assert cvft_data.info(tmp_path / "ds")["content_hash"] == cvft_data.info(tmp_path / "fresh")["content_hash"]


def test_resume_rewrites_a_damaged_committed_shard(tmp_path, monkeypatch):
    import connectors
    from cvft_data.builder import BuildOptions, build_dataset

    src = make_yolo(tmp_path / "src")
    _interrupted_build(src, tmp_path / "ds", monkeypatch)
    shard = next((tmp_path / ".ds.cvft-partial").glob("shard-000000.*.arrow"))
    shard.write_bytes(shard.read_bytes()[:100])   # a torn write the commit did not see
    build_dataset(connectors.get("yolo")(src), tmp_path / "ds", BuildOptions(shard_size=1))
    ds = cvft_data.load(tmp_path / "ds")
    assert sum(len(s) for s in ds.values()) == 4 and len(ds["train"][0]["objects"]["bbox"]) >= 0


def test_split_writes_a_new_content_hash(tmp_path):
    src = make_yolo(tmp_path / "src")
    before = cvft_data.ingest(src, tmp_path / "ds")["content_hash"]
    one = cvft_data.split(tmp_path / "ds", tmp_path / "s1", "0.5,0.5", seed=0, by="none")["content_hash"]
    two = cvft_data.split(tmp_path / "ds", tmp_path / "s2", "0.5,0.5", seed=3, by="none")
    again = cvft_data.split(tmp_path / "ds", tmp_path / "s3", "0.5,0.5", seed=0, by="none")["content_hash"]
    assert one != before and one == again
    if [r["image_id"] for r in cvft_data.load(tmp_path / "s1")["train"]] != \
            [r["image_id"] for r in cvft_data.load(tmp_path / "s2")["train"]]:
        assert two["content_hash"] != one
    assert cvft_data.info(tmp_path / "s1")["content_hash"] == one


# --- exit codes: 1 for the data, 2 only for usage -------------------------------------------------------


def test_source_problems_exit_1_not_2(tmp_path, capsys):
    src = make_yolo(tmp_path / "src")
    (src / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, cat]\n")
    assert ingest_cli.main([str(src), "--out", str(tmp_path / "a"), "--quiet"]) == 1
    assert "more than once" in capsys.readouterr().err
    outside = make_yolo(tmp_path / "elsewhere")
    (src / "data.yaml").write_text(f"train: {outside / 'images' / 'train'}\nval: images/val\nnames: [cat, dog]\n")
    assert ingest_cli.main([str(src), "--out", str(tmp_path / "b"), "--quiet"]) == 1
    assert "outside the dataset root" in capsys.readouterr().err


def test_pool_workers_are_told_to_die_with_the_ingest():
    import ctypes
    import signal
    import sys
    from concurrent.futures import ProcessPoolExecutor

    from cvft_data.pool import die_with_parent as _die_with_parent

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    with ProcessPoolExecutor(1, initializer=_die_with_parent) as pool:
        assert pool.submit(_parent_death_signal).result() == signal.SIGKILL
    _ = ctypes


def _parent_death_signal() -> int:
    import ctypes

    sig = ctypes.c_int(0)
    ctypes.CDLL("libc.so.6").prctl(2, ctypes.byref(sig))   # PR_GET_PDEATHSIG
    return sig.value


def test_a_panoptic_file_without_annotations_stays_panoptic(tmp_path):
    """Found by the real-export round trip: a panoptic split whose images are all unlabeled has an
    empty annotations list, which says nothing by content; its name decides."""
    from connectors.coco import json_kind

    p = tmp_path / "annotations" / "panoptic_train.json"
    write_json(p, {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [], "categories": []})
    assert json_kind(p) == "panoptic"
    q = tmp_path / "annotations" / "panoptic_val.json"
    write_json(q, {"images": [], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
                   "categories": []})
    assert json_kind(q) == "instances"


def test_roboflow_csv_keeps_unlisted_images_and_images_whose_rows_were_rejected(tmp_path):
    src = tmp_path / "src"
    for n in ("a.jpg", "b.jpg", "null.jpg"):
        write_image(src / n, seed=len(n))
    (src / "_annotations.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\n"
                                          "a.jpg,24,16,cat,1,1,5,5\nb.jpg,24,16,cat,x,1,5,5\n")
    info = cvft_data.ingest(src, tmp_path / "ds", on_error="skip")
    rows = {r["image_id"]: r["label_status"] for r in cvft_data.load(tmp_path / "ds")["train"]}
    assert rows == {"a.jpg": "labeled", "b.jpg": "unlabeled", "null.jpg": "unlabeled"}
    assert info["ledger"]["annotations_dropped"] == 1


def test_camera_trap_coco_image_whose_labels_were_all_rejected_is_unlabeled(tmp_path):
    src = tmp_path / "src"
    write_image(src / "a.jpg")
    write_image(src / "b.jpg", seed=1)
    write_json(src / "cct.json", {
        "images": [{"id": "a", "file_name": "a.jpg", "location": "s"}, {"id": "b", "file_name": "b.jpg", "location": "s"}],
        "annotations": [{"id": 1, "image_id": "a", "category_id": 9, "bbox": [1, 1, 5, 5]},
                        {"id": 2, "image_id": "b", "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "deer"}]})
    cvft_data.ingest(src / "cct.json", tmp_path / "ds", on_error="skip")
    rows = {r["image_id"]: r["label_status"] for r in cvft_data.load(tmp_path / "ds")["train"]}
    assert rows == {"a.jpg": "unlabeled", "b.jpg": "labeled"}


def test_an_annotation_member_that_inflates_too_far_is_refused(tmp_path):
    p = tmp_path / "export.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("annotations.xml", "<annotations>" + " " * (16 << 20) + "</annotations>")   # ~1000x
    with pytest.raises(MalformedFileError, match="expands"):
        cvft_data.ingest(p, tmp_path / "ds", format="cvat")


def test_an_output_under_a_file_is_an_output_error_not_a_traceback(tmp_path, capsys):
    src = make_yolo(tmp_path / "src")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    rc = ingest_cli.main([str(src), "--out", str(tmp_path / "blocker" / "ds"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot write" in err and "Traceback" not in err
