"""``cvft report``: one self-contained HTML page of plots, findings and annotated previews.

Plots are drawn with matplotlib and previews with supervision's annotators; both are embedded as
base64 PNGs, so the page is a single file that opens anywhere. The preview grid is also saved as a
PNG beside the page.

Example:
    >>> import pathlib, tempfile, cvft_data
    >>> from cvft_data.sample import write_coco_sample
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = cvft_data.ingest(write_coco_sample(tmp / "src", n_images=12), tmp / "ds")
    >>> page = write_report(tmp / "ds", tmp / "report.html")
    >>> page.is_file(), (tmp / "report_preview.png").is_file()
    (True, True)
"""

from __future__ import annotations

import base64
import html
import io
import os
import random
from pathlib import Path

import numpy as np

from .checks import CheckOptions, CheckReport, check


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(report: CheckReport) -> list[tuple[str, str]]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = report.stats
    names = st["classes"]
    splits = list(st["splits"])
    out = []
    # class histogram per split
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names) + 3), 3.5))
    width = 0.8 / max(len(splits), 1)
    x = np.arange(len(names))
    for k, s in enumerate(splits):
        ax.bar(x + k * width, [st["splits"][s]["class_images"][n] for n in names], width, label=s)
    ax.set_xticks(x + width * (len(splits) - 1) / 2, names, rotation=45, ha="right")
    ax.set_ylabel("images")
    ax.set_title("images per class and split")
    ax.legend()
    out.append(("Class balance", _png(fig)))
    # null share per split
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(splits, [st["splits"][s]["null_share"] for s in splits], color="#888")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of null images")
    ax.set_title("null (empty) images per split")
    out.append(("Null images", _png(fig)))
    if st.get("boxes_per_image"):
        fig, ax = plt.subplots(figsize=(5, 3))
        k, v = zip(*sorted(st["boxes_per_image"].items()))
        ax.bar([str(i) for i in k], v)
        ax.set_xlabel("objects in the image")
        ax.set_ylabel("images")
        ax.set_title("objects per image")
        out.append(("Objects per image", _png(fig)))
    if st.get("box_sizes"):
        wh = np.array(st["box_sizes"], dtype=float)
        wh = wh[(wh[:, 0] > 0) & (wh[:, 1] > 0)]
        if len(wh):
            fig, axes = plt.subplots(1, 2, figsize=(9, 3))
            axes[0].hist(np.sqrt(wh[:, 0] * wh[:, 1]), bins=30)
            axes[0].set_xlabel("box size, sqrt(w*h) px")
            axes[0].set_title("box sizes")
            axes[1].hist(np.log2(wh[:, 0] / wh[:, 1]), bins=30, color="#c77")
            axes[1].set_xlabel("log2 aspect (w/h)")
            axes[1].set_title("box aspect ratios")
            out.append(("Boxes", _png(fig)))
    if st.get("groups"):
        groups = sorted(st["groups"])[:40]
        fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(groups) + 2), 3.5))
        bottom = np.zeros(len(groups))
        for status, colour in (("labeled", "#4a8"), ("empty", "#aaa"), ("unlabeled", "#d84")):
            vals = np.array([st["groups"][g].get(status, 0) for g in groups])
            ax.bar(groups, vals, bottom=bottom, label=status, color=colour)
            bottom += vals
        ax.tick_params(axis="x", rotation=90)
        ax.set_title("images per group (label status)")
        ax.legend()
        out.append(("Groups", _png(fig)))
    if st.get("deployments"):
        out.append(("Camera activity", _timeline(st["deployments"], plt)))
    return out


def _timeline(deployments: dict, plt) -> str:
    """Triggers per day, one row per deployment (at most 40): gaps and busy days show at a glance."""
    from datetime import date

    deps = sorted(deployments)[:40]
    days = sorted({d for dep in deps for d in deployments[dep]["per_day"]})
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(deps) + 1.5))
    if days:
        start = date.fromisoformat(days[0])
        for y, dep in enumerate(deps):
            per_day = deployments[dep]["per_day"]
            xs = [(date.fromisoformat(d) - start).days for d in per_day]
            ax.scatter(xs, [y] * len(xs), s=[8 + 4 * min(n, 50) for n in per_day.values()], color="#4a8")
        ax.set_xlabel(f"days since {start.isoformat()}")
    ax.set_yticks(range(len(deps)), deps, fontsize=7)
    ax.set_title("triggers per day and deployment (dot size: images)")
    return _png(fig)


def _deployment_table(st: dict) -> str:
    deps = st.get("deployments") or {}
    if not deps:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(d)}</td><td>{v['images']}</td><td>{v['active_days']}</td>"
        f"<td>{html.escape(str(v['first'] or ''))[:19]}</td><td>{html.escape(str(v['last'] or ''))[:19]}</td>"
        f"<td>{v['blank_share']:.0%}</td><td>{html.escape(', '.join(f'{k} {n}' for k, n in v['species_images'].items()))}</td>"
        f"<td>{html.escape(', '.join(f'{k} {n}' for k, n in v['independent_detections'].items()))}</td></tr>"
        for d, v in sorted(deps.items()))
    gap = st.get("independence_minutes", 30)
    return ("<h2>Deployments</h2><p>Effort and species per camera deployment; independent detections are "
            f"events of a species more than {gap:g} minutes apart.</p><table><tr><th>deployment</th><th>images</th>"
            "<th>active days</th><th>first</th><th>last</th><th>blank share</th><th>images per species</th>"
            f"<th>independent detections</th></tr>{rows}</table>")


def preview_grid(path: str | os.PathLike, n: int = 12, seed: int = 0, tile: int = 256) -> np.ndarray:
    """A grid of ``n`` sample images with boxes, masks and labels drawn (supervision)."""
    import supervision as sv
    from PIL import Image, ImageOps

    from . import masks
    from .api import info as read_info
    from .api import load

    meta = read_info(path)
    dsd = load(path)
    names = meta["classes"]
    split = "train" if "train" in dsd else next(iter(dsd))
    ds = dsd[split]
    rng = random.Random(seed)
    idx = sorted(rng.sample(range(len(ds)), min(n, len(ds))))
    tiles = []
    for i in idx:
        row = ds[i]
        im = ImageOps.exif_transpose(row["image"]).convert("RGB")
        frame = np.asarray(im).copy()
        labels: list[str] = []
        if "objects" in row and row["objects"]["bbox"]:
            o = row["objects"]
            xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in o["bbox"]], dtype=float)
            h_, w_ = frame.shape[:2]
            mask_list = []
            for s in o["segmentation"]:
                if s["rle"] is not None:
                    mask_list.append(masks.decode(s["rle"]).astype(bool))
                elif s["polygons"]:
                    mask_list.append(masks.decode(masks.polygons_to_rle(s["polygons"], h_, w_)).astype(bool))
                else:
                    mask_list.append(None)
            det = sv.Detections(xyxy=xyxy, class_id=np.array(o["category"]))
            if any(m is not None for m in mask_list):
                det.mask = np.stack([m if m is not None else np.zeros((h_, w_), bool) for m in mask_list])
                frame = sv.MaskAnnotator(opacity=0.4).annotate(frame, det)
            frame = sv.BoxAnnotator(thickness=2).annotate(frame, det)
            frame = sv.LabelAnnotator(text_scale=0.4, text_padding=2).annotate(
                frame, det, labels=[names[c] for c in o["category"]])
        elif row.get("label") is not None:
            labels.append(names[row["label"]])
        elif row.get("labels"):
            labels += [names[c] for c in row["labels"]]
        im = Image.fromarray(frame)
        im.thumbnail((tile, tile))
        canvas = Image.new("RGB", (tile, tile + 18), "white")
        canvas.paste(im, ((tile - im.width) // 2, 0))
        from PIL import ImageDraw
        caption = (row["label_status"] if not labels else ", ".join(labels))[:40]
        ImageDraw.Draw(canvas).text((4, tile + 3), caption, fill="black")
        tiles.append(np.asarray(canvas))
    if not tiles:
        return np.full((tile, tile, 3), 255, np.uint8)
    cols = min(4, len(tiles))
    rows = (len(tiles) + cols - 1) // cols
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (rows * cols - len(tiles))
    return np.vstack([np.hstack(tiles[r * cols:(r + 1) * cols]) for r in range(rows)])


def write_report(path: str | os.PathLike, out: str | os.PathLike, options: CheckOptions | None = None,
                 report: CheckReport | None = None, preview: int = 12) -> Path:
    """Write the HTML report of the dataset at ``path`` to ``out``; the preview grid goes to
    ``<out stem>_preview.png``. Returns the page's path."""
    from PIL import Image

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = report or check(path, options)
    plots = _plots(report)
    grid = preview_grid(path, preview)
    preview_png = out.with_name(out.stem + "_preview.png")
    Image.fromarray(grid).save(preview_png)
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, "PNG")
    grid_b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    st = report.stats
    from .api import info as read_info

    ledger = read_info(path).get("ledger", {})
    ledger_rows = "".join(f"<tr><td>{html.escape(str(r))}</td><td>{n}</td></tr>"
                          for r, n in (ledger.get("by_reason") or {}).items()) or \
        "<tr><td colspan=2>nothing dropped or changed</td></tr>"
    rows = "".join(
        f"<tr class='{f.severity}'><td>{f.severity}</td><td>{html.escape(f.check)}</td>"
        f"<td>{html.escape(f.message)}</td><td>{html.escape(', '.join(f.image_ids[:5]))}"
        f"{' &hellip; +' + str(len(f.image_ids) - 5) if len(f.image_ids) > 5 else ''}</td></tr>"
        for f in report.findings) or "<tr><td colspan=4>no findings</td></tr>"
    split_rows = "".join(f"<tr><td>{html.escape(s)}</td><td>{v['images']}</td><td>{v['null']}</td>"
                         f"<td>{v['null_share']:.0%}</td></tr>" for s, v in st["splits"].items())
    figures = "".join(f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
                      f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, b in plots)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cvft report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
tr.error td:first-child {{ color: #b00; font-weight: bold; }} tr.warning td:first-child {{ color: #b60; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>cvft report: {html.escape(str(path))}</h1>
<p>{html.escape(st['task'])} dataset, {len(st['classes'])} classes.</p>
<h2>Splits</h2><table><tr><th>split</th><th>images</th><th>null images</th><th>null share</th></tr>{split_rows}</table>
<h2>Ingest ledger</h2><p>What was dropped or changed while building the dataset (every entry is in
<code>ledger.jsonl</code>): camera clock problems, skipped annotations, conversions.</p>
<table><tr><th>reason</th><th>entries</th></tr>{ledger_rows}</table>
<h2>Findings</h2><table><tr><th>severity</th><th>check</th><th>message</th><th>rows</th></tr>{rows}</table>
{_deployment_table(st)}
<h2>Plots</h2>{figures}
<h2>Preview</h2><figure><img alt="preview" src="data:image/png;base64,{grid_b64}"></figure>
<script>
window.addEventListener("load", () => {{
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.title = `cvft report: ${{ok}}/${{imgs.length}} images rendered`;
}});
</script>
</body></html>"""
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
