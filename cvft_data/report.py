"""``cvft report``: one self-contained HTML page of plots, findings and annotated previews.

Plots are drawn with matplotlib and previews by :mod:`cvft_data.render`; both are embedded as
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
import os
import random
from pathlib import Path

import numpy as np

from . import progress
from .checks import CheckOptions, CheckReport, check
from .report_plots import deployment_table
from .report_plots import plots as make_plots


def preview_rows(dsd, n: int, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` sample rows as (split, index), from every split: each split gets its share of ``n``
    by size, and at least one row."""
    splits = [s for s in dsd if len(dsd[s])]
    if not splits or n <= 0:
        return []
    total = sum(len(dsd[s]) for s in splits)
    quota = {s: max(1, round(n * len(dsd[s]) / total)) for s in splits}
    while sum(quota.values()) > max(n, len(splits)):   # rounding up gave too many: trim the largest
        quota[max(quota, key=quota.get)] -= 1
    rng = random.Random(seed)
    return [(s, i) for s in splits for i in sorted(rng.sample(range(len(dsd[s])), min(quota[s], len(dsd[s]))))]


def tile(row: dict, split: str, names: list[str], side: int = 256) -> dict:
    """One preview: the annotated image scaled to the tile (small images enlarged) and its caption
    (image id, split, labels or label status)."""
    from .render import annotated, fit, labels_of

    im = fit(annotated(row, names, side), side)
    labels = labels_of(row, names)
    text = ", ".join(sorted(set(labels), key=labels.index)) if labels else row["label_status"]
    return {"image": im, "image_id": row["image_id"], "split": split, "caption": text}


def _tiles(dsd, names: list[str], picks: list[tuple[str, int]], side: int) -> list[dict]:
    from .store import bytes_view

    views = {}
    out = []
    for split, i in progress.bar(picks, total=len(picks), desc="report: previews"):
        if split not in views:   # bytes, not PIL images: the renderer decodes at the tile's size
            views[split] = bytes_view(dsd[split])
        out.append(tile(views[split][i], split, names, side))
    return out


def preview_grid(path: str | os.PathLike, n: int = 12, seed: int = 0, tile_side: int = 256,
                 tiles: list[dict] | None = None) -> np.ndarray:
    """A grid of ``n`` sample images from every split, boxes, masks and labels drawn, each tile
    captioned under its own image with its split, image id and labels."""
    from PIL import Image, ImageDraw

    if tiles is None:
        from .api import info as read_info
        from .api import load

        dsd = load(path)
        tiles = _tiles(dsd, read_info(path)["classes"], preview_rows(dsd, n, seed), tile_side)
    if not tiles:
        return np.full((tile_side, tile_side, 3), 255, np.uint8)
    cols = min(4, len(tiles))
    rows = (len(tiles) + cols - 1) // cols
    cap = 30
    sheet = Image.new("RGB", (cols * tile_side, rows * (tile_side + cap)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, t in enumerate(tiles):
        x0, y0 = (k % cols) * tile_side, (k // cols) * (tile_side + cap)
        im = t["image"]
        sheet.paste(im, (x0 + (tile_side - im.width) // 2, y0 + (tile_side - im.height) // 2))
        draw.text((x0 + 4, y0 + tile_side + 2), f"{t['split']}: {t['image_id']}"[:42], fill="#555")
        draw.text((x0 + 4, y0 + tile_side + 15), t["caption"][:42], fill="black")
    return np.asarray(sheet)


def _b64(im, fmt: str = "JPEG") -> str:
    from .render import encode

    return base64.b64encode(encode(im, fmt)).decode("ascii")


def _figure(t: dict) -> str:
    return (f"<figure class='tile'><img alt='{html.escape(t['image_id'])}' src='data:image/jpeg;base64,{_b64(t['image'])}'>"
            f"<figcaption><b>{html.escape(t['caption'])}</b><br><small>{html.escape(t['split'])}: "
            f"{html.escape(t['image_id'])}</small></figcaption></figure>")


#: checks whose findings name images a person compares side by side
PAIRED_CHECKS = ("duplicate", "near_duplicate", "leakage")


def finding_sets(report: CheckReport, limit: int = 6) -> list[tuple[str, list[list[str]]]]:
    """Per duplicate, near-duplicate or leakage finding, the image sets to show side by side: the
    near pairs, or the duplicate group (the first ``limit``)."""
    out = []
    for f in report.findings:
        if f.check not in PAIRED_CHECKS or not f.image_ids or f.details.get("kind") == "group":
            continue
        sets = [p[:2] for p in f.details["pairs"][:limit]] if f.details.get("pairs") else [f.image_ids[:4]]
        out.append((f.message, sets))
    return out


def _finding_thumbnails(dsd, names: list[str], report: CheckReport, side: int = 160) -> str:
    sets = finding_sets(report)
    if not sets:
        return ""
    from .store import column

    where = {iid: (s, i) for s in dsd for i, iid in enumerate(column(dsd[s], "image_id"))}
    wanted = sorted({where[iid] for _, group in sets for ids in group for iid in ids if iid in where})
    tiles = dict(zip(wanted, _tiles(dsd, names, wanted, side)))
    blocks = []
    for message, group in sets:
        rows = "".join("<div class='pair'>" + "".join(_figure(tiles[where[iid]]) for iid in ids if iid in where)
                       + "</div>" for ids in group)
        blocks.append(f"<h3>{html.escape(message)}</h3>{rows}")
    return "<h2>Duplicates and leakage</h2><p>The images each finding names, side by side.</p>" + "".join(blocks)


def write_report(path: str | os.PathLike, out: str | os.PathLike, options: CheckOptions | None = None,
                 report: CheckReport | None = None, preview: int = 12) -> Path:
    """Write the HTML report of the dataset at ``path`` to ``out``; the preview grid goes to
    ``<out stem>_preview.png``. Returns the page's path."""
    from PIL import Image

    from .api import info as read_info
    from .api import load

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = report or check(path, options)
    plots = make_plots(report)
    meta = read_info(path)
    dsd = load(path)
    names = meta["classes"]
    tiles = _tiles(dsd, names, preview_rows(dsd, preview), 256)
    grid = preview_grid(path, tiles=tiles)
    preview_png = out.with_name(out.stem + "_preview.png")
    Image.fromarray(grid).save(preview_png)
    st = report.stats
    classification = st["task"] == "classification"
    ledger = meta.get("ledger", {})
    ledger_rows = "".join(f"<tr><td>{html.escape(str(r))}</td><td>{n}</td></tr>"
                          for r, n in (ledger.get("by_reason") or {}).items()) or \
        "<tr><td colspan=2>nothing dropped or changed</td></tr>"
    rows = "".join(
        f"<tr class='{f.severity}'><td>{f.severity}</td><td>{html.escape(f.check)}</td>"
        f"<td>{html.escape(f.message)}</td><td>{html.escape(', '.join(f.image_ids[:5]))}"
        f"{' &hellip; +' + str(len(f.image_ids) - 5) if len(f.image_ids) > 5 else ''}</td></tr>"
        for f in report.findings) or "<tr><td colspan=4>no findings</td></tr>"
    null_head = "" if classification else "<th>null images</th><th>null share</th>"
    split_rows = "".join(f"<tr><td>{html.escape(s)}</td><td>{v['images']}</td>" + (
        "" if classification else f"<td>{v['null']}</td><td>{v['null_share']:.0%}</td>") + "</tr>"
        for s, v in st["splits"].items())
    figures = "".join(f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,{b}'>"
                      f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, b in plots)
    n_classes = len(st["classes"])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cvft report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
tr.error td:first-child {{ color: #b00; font-weight: bold; }} tr.warning td:first-child {{ color: #b60; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }} img {{ max-width: 100%; }}
figure.tile {{ width: 256px; }} figure.tile img {{ display: block; width: 256px; height: 256px; object-fit: contain;
  background: #f4f4f4; }} figure.tile figcaption {{ font-size: 13px; overflow-wrap: anywhere; }}
.pair figure.tile, .pair figure.tile img {{ width: 160px; height: auto; }} .pair {{ margin-bottom: 1em; }}
</style></head><body>
<h1>cvft report: {html.escape(str(path))}</h1>
<p>{html.escape(st['task'])} dataset, {n_classes} {'class' if n_classes == 1 else 'classes'}.</p>
<h2>Splits</h2><table><tr><th>split</th><th>images</th>{null_head}</tr>{split_rows}</table>
<h2>Ingest ledger</h2><p>What was dropped or changed while building the dataset (every entry is in
<code>ledger.jsonl</code>): camera clock problems, skipped annotations, conversions.</p>
<table><tr><th>reason</th><th>entries</th></tr>{ledger_rows}</table>
<h2>Findings</h2><table><tr><th>severity</th><th>check</th><th>message</th><th>rows</th></tr>{rows}</table>
{_finding_thumbnails(dsd, names, report)}
{deployment_table(st)}
<h2>Plots</h2>{figures}
<h2>Preview</h2><p>Samples from every split; each caption names the image's labels, split and id
(<code>cvft view {html.escape(str(path))}</code> browses them all).</p>
<div id="preview">{"".join(_figure(t) for t in tiles)}</div>
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
