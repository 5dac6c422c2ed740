"""Weed-AI: WeedCOCO samples, the dataset download (against a local HTTP server), segmentation."""

from __future__ import annotations

import http.server
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

import connectors
import cvft_data
from builders import LocalServer, write_image
from cvft_data.download import DownloadError, fetch_weedai
from cvft_data.errors import MalformedFileError, UnsafePathError

WEEDAI = "weedai"


def _count(doc) -> dict:
    names = {c["id"]: c["name"] for c in doc["categories"]}
    out: dict = {}
    for a in doc["annotations"]:
        out[names[a["category_id"]]] = out.get(names[a["category_id"]], 0) + 1
    return out


def _counts(path) -> dict:
    c: dict = {}
    for s in cvft_data.info(path)["splits"].values():
        for k, v in s["class_counts"].items():
            if v:
                c[k] = c.get(k, 0) + v
    return c


@pytest.mark.real_fixtures
def test_real_weedai_zip(real, tmp_path):
    src = real / WEEDAI / "upload_zip_fixture" / "weedcoco.zip"
    assert connectors.detect(src).name == "weedai"
    info = cvft_data.ingest(src, tmp_path / "ds")
    doc = json.loads((real / WEEDAI / "upload_zip_fixture" / "weedcoco.json").read_text())
    assert _counts(tmp_path / "ds") == _count(doc) and info["splits"]["train"]["images"] == len(doc["images"])
    row = cvft_data.load(tmp_path / "ds")["train"][0]
    assert row["meta"]["agcontext"]["crop_type"] == "wheat" and row["group"] == "agcontext-0"
    cats = {c["name"]: c for c in info["categories"]}
    assert cats["weed: lolium rigidum"]["role"] == "weed" and cats["weed: lolium rigidum"]["taxon"] == "lolium rigidum"
    assert "metadata" in info["source"]["info"]["weedai"]


@pytest.mark.real_fixtures
@pytest.mark.parametrize("sample", ["weedcoco_samples/deposit_data_basic_1", "weedcoco_samples/deposit_data_subcat",
                                    "coco_plus_agcontext_upload"])
def test_real_weedcoco_samples_with_their_images(real, tmp_path, sample):
    """The samples carry no pixels: write images of the declared size under images/, as a download has."""
    src = tmp_path / "src"
    shutil.copytree(real / WEEDAI / sample, src)
    doc_name = "weedcoco.json" if (src / "weedcoco.json").exists() else "coco.json"
    doc = json.loads((src / doc_name).read_text())
    for img in doc["images"]:
        write_image(src / "images" / Path(img["file_name"]).name, img["width"], img["height"], fmt="PNG")
    info = cvft_data.ingest(src, tmp_path / "ds")
    assert info["source"]["connector"] == "weedai"
    assert _counts(tmp_path / "ds") == _count(doc)
    row = cvft_data.load(tmp_path / "ds")["train"][0]
    assert row["meta"]["agcontext"]["id"] == 0 and row["group"]
    if "subcat" in sample:
        sub = next(c for c in info["categories"] if c["name"].endswith("(growing point)"))
        assert sub["subcategory"] == "growing point" and sub["taxon"] == "lolium perenne"


# --- download against a local server ---------------------------------------------------------------

def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in entries.items():
            z.writestr(k, v)
    return buf.getvalue()


class _Server(LocalServer):
    """A local HTTP server for /code/download/<id>.zip with Range support and failure modes."""

    def __init__(self, payload: bytes, mode: str = "ok"):
        self.payload, self.mode, self.requests = payload, mode, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests.append(self.headers.get("Range"))
                if not self.path.startswith("/code/download/"):
                    self.send_error(404)
                    return
                data, start = outer.payload, 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.mode == "cut" and len(outer.requests) == 1:
                    self.wfile.write(body[: len(body) // 2])  # the connection drops half way
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(body)

        super().__init__(Handler)


@pytest.fixture
def fixture_zip(real):
    p = real / WEEDAI / "upload_zip_fixture" / "weedcoco.zip"
    if not p.exists():
        pytest.skip("real fixtures absent")
    return p.read_bytes()


def test_download_clean_then_cached(fixture_zip, tmp_path, capsys):
    from cvft_data.cli import ingest as ingest_cli

    with _Server(fixture_zip) as srv:
        folder = fetch_weedai("ds1", base_url=srv.url, cache=tmp_path / "cache", progress=False)
        assert (folder / "weedcoco" / "weedcoco.json").is_file()
        assert fetch_weedai("ds1", base_url=srv.url, cache=tmp_path / "cache", progress=False) == folder
        assert len(srv.requests) == 1, "the second call uses the cache"
    # the CLI: weedai:<id> with the base URL from the environment
    with _Server(fixture_zip) as srv:
        import os
        os.environ["CVFT_WEEDAI_URL"] = srv.url
        os.environ["CVFT_CACHE"] = str(tmp_path / "cache2")
        try:
            assert ingest_cli.main(["weedai:ds2", "--out", str(tmp_path / "ds"), "--quiet"]) == 0
        finally:
            del os.environ["CVFT_WEEDAI_URL"], os.environ["CVFT_CACHE"]
    assert cvft_data.info(tmp_path / "ds")["splits"]["train"]["images"] == 3


def test_download_cut_in_the_middle_resumes(fixture_zip, tmp_path):
    with _Server(fixture_zip, mode="cut") as srv:
        with pytest.raises(DownloadError, match="resume|bytes"):
            fetch_weedai("ds1", base_url=srv.url, cache=tmp_path, progress=False)
        part = tmp_path / "weedai" / "ds1.zip.part"
        assert 0 < part.stat().st_size < len(fixture_zip)
        folder = fetch_weedai("ds1", base_url=srv.url, cache=tmp_path, progress=False)
        assert srv.requests[-1] == f"bytes={len(fixture_zip) // 2}-", "the second request asks for the rest"
    assert (tmp_path / "weedai" / "ds1.zip").read_bytes() == fixture_zip
    assert (folder / "weedcoco" / "images").is_dir()


def test_corrupted_zip_is_refused_and_deleted(fixture_zip, tmp_path):
    bad = bytearray(fixture_zip)
    bad[len(bad) // 3: len(bad) // 3 + 64] = b"\0" * 64   # damage a member's data: its CRC fails
    with _Server(bytes(bad)) as srv:
        with pytest.raises(MalformedFileError, match="CRC|not a valid zip"):
            fetch_weedai("ds1", base_url=srv.url, cache=tmp_path, progress=False)
    assert not (tmp_path / "weedai" / "ds1.zip").exists() and not (tmp_path / "weedai" / "ds1").exists()


def test_zip_slip_is_refused(tmp_path):
    evil = _zip_bytes({"weedcoco.json": b"{}", "../../escaped.txt": b"owned", "/abs.txt": b"x"})
    with _Server(evil) as srv:
        with pytest.raises(UnsafePathError, match="outside"):
            fetch_weedai("evil", base_url=srv.url, cache=tmp_path / "cache", progress=False)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "cache" / "escaped.txt").exists()
    assert not (tmp_path / "cache" / "weedai" / "evil").exists()


def test_size_bomb_is_refused(tmp_path):
    from cvft_data.download import safe_extract

    p = tmp_path / "bomb.zip"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (50 << 20))
    with pytest.raises(MalformedFileError, match="expands"):
        safe_extract(p, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_network_errors_are_clear(tmp_path):
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch_weedai("x", base_url="http://127.0.0.1:9", cache=tmp_path, progress=False)
    with _Server(b"") as srv:
        srv.httpd.RequestHandlerClass.do_GET = lambda self: self.send_error(404)
        with pytest.raises(DownloadError, match="HTTP 404"):
            fetch_weedai("missing", base_url=srv.url, cache=tmp_path, progress=False)


@pytest.mark.slow
def test_weedai_segmentation_one_epoch(tmp_path, monkeypatch):
    pytest.importorskip("ultralytics")
    from cvft_train import fit

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ul"))
    monkeypatch.setenv("CVFT_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "weedcoco"
    images, anns = [], []
    for i in range(8):
        write_image(src / "images" / f"{i:03d}.png", 96, 64, fmt="PNG", seed=i)
        images.append({"id": i, "file_name": f"images/{i:03d}.png", "width": 96, "height": 64, "agcontext_id": i % 2})
        x = 5 + 4 * i
        anns.append({"id": i, "image_id": i, "category_id": i % 2,
                     "segmentation": [[x, 10, x + 30, 10, x + 30, 40, x, 40]], "iscrowd": 0})
    (src / "weedcoco.json").write_text(json.dumps({
        "images": images, "annotations": anns, "info": {"description": "t", "metadata": {"name": "t"}},
        "categories": [{"id": 0, "name": "weed: lolium rigidum"}, {"id": 1, "name": "crop: triticum aestivum"}],
        "agcontexts": [{"id": 0, "agcontext_name": "field_a"}, {"id": 1, "agcontext_name": "field_b"}]}))
    cvft_data.ingest(src, tmp_path / "ds")
    cvft_data.split(tmp_path / "ds", tmp_path / "split", "0.5,0.5", by="group")
    objects = sum(s["objects"] for s in cvft_data.info(tmp_path / "split")["splits"].values())
    summary = cvft_data.export(tmp_path / "split", "yolo", tmp_path / "yolo")
    lines = sum(len(p.read_text().splitlines()) for p in (tmp_path / "yolo" / "labels").rglob("*.txt"))
    assert lines == objects == summary["objects"] == 8, "no label lost between the dataset and YOLO"
    m = fit(tmp_path / "split", model="yolo11n-seg.yaml", epochs=1, imgsz=64, batch=4, workers=0, device="cpu",
            out=str(tmp_path / "run"))
    assert "map50" in m["final"] and Path(m["weights"]["last"]).is_file()
