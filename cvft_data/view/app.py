"""``cvft view``: the Flask app that serves a dataset to the browser, straight from its Arrow files.

Every URL names a split (one of the dataset's) and a row number, never a path: nothing the browser
sends reaches the file system. Image bytes are read from the Arrow table; thumbnails and mask
overlays are drawn on request (:mod:`cvft_data.render`) and kept in a small cache.

Example:
    >>> import pathlib, tempfile, cvft_data
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=6), tmp / "ds")
    >>> client = create_app(ViewIndex.build(tmp / "ds", findings=[])).test_client()
    >>> client.get("/api/images?status=labeled").get_json()["total"] > 0
    True
    >>> client.get("/image/train/99").status_code, client.get("/image/..%2f..%2fetc/0").status_code
    (404, 404)
"""

from __future__ import annotations

import functools
import threading
from importlib.resources import files

from ..imageinfo import sniff_extension
from .index import ViewIndex

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
MIME = {".jpg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".bmp": "image/bmp",
        ".webp": "image/webp", ".tif": "image/tiff"}
THUMB_SIDE = 256
#: full-size views are sent at most this long on their long side (the browser scales the SVG)
VIEW_SIDE = 1600


def create_app(index: ViewIndex, *, loopback_only: bool = True):
    """The app for ``index``. ``loopback_only``: refuse requests whose Host is not this machine
    (a web page elsewhere cannot reach the server through DNS rebinding)."""
    from flask import Flask, abort, jsonify, request

    from .. import render
    from ..store import bytes_view, open_dataset

    app = Flask("cvft_view", static_folder=None)
    lock = threading.Lock()   # Arrow reads and the caches are shared by the server's threads
    dsd = open_dataset(index.path)
    raw = {s: bytes_view(dsd[s]) for s in dsd}
    preds = {s: bytes_view(d) for s, d in open_dataset(index.predictions_path).items()} if index.predictions else {}
    names = index.classes

    def row_at(split: str, idx: int) -> dict:
        if split not in raw or not 0 <= idx < len(raw[split]):
            abort(404)
        with lock:
            return raw[split][idx]

    @functools.lru_cache(maxsize=2048)
    def thumb(split: str, idx: int) -> bytes:
        return render.encode(render.annotated(row_at(split, idx), names, THUMB_SIDE))

    @functools.lru_cache(maxsize=256)
    def overlay(split: str, idx: int) -> bytes:
        from PIL import Image

        row = row_at(split, idx)
        scale = min(1.0, VIEW_SIDE / max(row["width"], row["height"]))
        w, h = max(1, round(row["width"] * scale)), max(1, round(row["height"] * scale))
        found = render.mask_overlay(row, h, w)
        if found is None:
            abort(404)
        return render.encode(Image.fromarray(found), "PNG")

    @app.before_request
    def only_this_machine():
        if loopback_only and (request.host or "").rsplit(":", 1)[0] not in LOOPBACK_NAMES:
            abort(403)

    @app.after_request
    def headers(resp):
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"
        return resp

    @app.get("/")
    def page():
        return files("cvft_data.view").joinpath("static/viewer.html").read_text(encoding="utf-8")

    @app.get("/static/<name>")
    def static(name: str):
        allowed = {"viewer.js": "text/javascript", "viewer.css": "text/css"}
        if name not in allowed:
            abort(404)
        return app.response_class(files("cvft_data.view").joinpath("static", name).read_bytes(), mimetype=allowed[name])

    @app.get("/api/summary")
    def summary():
        return jsonify({"path": str(index.path), "task": index.task, "classes": names, "splits": index.splits,
                        "facets": index.facets(), "palette": render.PALETTE, "images": len(index.entries),
                        "predictions": bool(index.predictions),
                        "findings": [{"check": f.check, "severity": f.severity, "message": f.message,
                                      "images": len(f.image_ids)} for f in index.findings]})

    @app.get("/api/images")
    def images():
        args = request.args
        cls = args.get("class") or None
        if cls is not None and cls not in names:
            abort(400, f"unknown class {cls!r}")
        picked = index.select(split=args.get("split") or None, cls=names.index(cls) if cls is not None else None,
                              status=args.get("status") or None, group=args.get("group") or None,
                              finding=args.get("finding") or None)
        per_page = min(max(int(args.get("per_page", 48)), 1), 500)
        page_no = max(int(args.get("page", 1)), 1)
        shown = picked[(page_no - 1) * per_page: page_no * per_page]
        return jsonify({"total": len(picked), "page": page_no, "per_page": per_page, "images": [
            {"key": e.key, "image_id": e.image_id, "split": e.split, "status": e.status, "group": e.group,
             "labels": [names[c] for c in sorted(e.classes)], "findings": list(e.findings)} for e in shown]})

    @app.get("/api/image/<split>/<int:idx>")
    def detail(split: str, idx: int):
        row = row_at(split, idx)
        out = {"key": f"{split}/{idx}", "split": split, "image_id": row["image_id"], "width": row["width"],
               "height": row["height"], "status": row["label_status"], "group": row.get("group"),
               "meta": row.get("meta"), "annotations": _annotations(row, names),
               "has_masks": render.has_masks(row),
               "ledger": index.ledger.get(row["image_id"], []), "findings": index.related(row["image_id"])}
        found = index.predictions.get(row["image_id"])
        if found is not None:
            with lock:
                prow = preds[found[0]][found[1]]
            out["predictions"] = _annotations(prow, index.prediction_classes)
            out["prediction_meta"] = {k: v for k, v in (prow.get("meta") or {}).items() if k in ("classifications",)}
        return jsonify(out)

    @app.get("/thumb/<split>/<int:idx>")
    def thumbnail(split: str, idx: int):
        return app.response_class(thumb(split, idx), mimetype="image/jpeg",
                                  headers={"Cache-Control": "max-age=3600"})

    @app.get("/image/<split>/<int:idx>")
    def image(split: str, idx: int):
        row = row_at(split, idx)
        if max(row["width"], row["height"]) > VIEW_SIDE:   # a 24-megapixel frame: sent at screen size
            return app.response_class(render.encode(render.open_image(row["image"], VIEW_SIDE)), mimetype="image/jpeg")
        data = render.image_data(row["image"])
        kind = sniff_extension(data[:16])
        if kind not in (".jpg", ".png", ".gif", ".webp", ".bmp"):   # TIFF: browsers cannot show it
            return app.response_class(render.encode(render.open_image(row["image"])), mimetype="image/jpeg")
        # raw bytes: the browser turns them upright by their EXIF orientation, as the row's size is
        return app.response_class(data, mimetype=MIME[kind])

    @app.get("/mask/<split>/<int:idx>")
    def mask(split: str, idx: int):
        return app.response_class(overlay(split, idx), mimetype="image/png")

    return app


def _annotations(row: dict, names: list[str]) -> list[dict]:
    """A row's labels as the browser draws them: boxes (x, y, w, h in pixels of the upright image),
    polygons, class names and colours, scores; image-level labels without a box."""
    from ..render import colour

    out = []
    objects = row.get("objects")
    if objects is not None:
        attrs = row.get("object_attributes") or [{}] * len(objects["bbox"])
        for k, (box, cls) in enumerate(zip(objects["bbox"], objects["category"])):
            a = attrs[k] or {}
            out.append({"class": names[cls], "class_id": cls, "colour": colour(cls), "bbox": [float(v) for v in box],
                        "polygons": objects["segmentation"][k].get("polygons") or [],
                        "score": a.get("score", a.get("confidence")),
                        "attributes": {key: v for key, v in a.items() if key not in ("coco", "score", "confidence")}})
    elif row.get("segments_info") is not None:
        for s in row["segments_info"]:
            out.append({"class": names[s["category"]], "class_id": s["category"], "colour": colour(s["category"]),
                        "bbox": [float(v) for v in s["bbox"]], "polygons": [], "segment": s["id"]})
    elif row.get("mask_classes") is not None:   # semantic: the classes the mask shows (drawn as the overlay)
        out += [{"class": names[c], "class_id": c, "colour": colour(c)} for c in row["mask_classes"]]
    elif row.get("label") is not None:
        out.append({"class": names[row["label"]], "class_id": row["label"], "colour": colour(row["label"])})
    else:
        out += [{"class": names[c], "class_id": c, "colour": colour(c)} for c in row.get("labels") or []]
    return out
