"""The report's plots (matplotlib, embedded as base64 PNGs): class balance, null images, objects
per image, box sizes, groups and the camera-trap timeline.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plots(report) -> list[tuple[str, str]]:
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
    if st["task"] != "classification":   # a classified image has a class: there is no null image to plot
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(splits, [st["splits"][s]["null_share"] for s in splits], color="#888")
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of null images")
        ax.set_title("null (empty) images per split")
        out.append(("Null images", _png(fig)))
    if st.get("boxes_per_image"):
        from matplotlib.ticker import MaxNLocator

        fig, ax = plt.subplots(figsize=(5, 3))
        k, v = zip(*sorted((int(n), c) for n, c in st["boxes_per_image"].items()))
        ax.bar(k, v, width=0.8)   # a numeric axis: 0, 1, 2 ... 40 spaced as numbers, not as labels
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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
    if st.get("class_pixels"):   # semantic masks: the share of labelled pixels each class covers
        pix = st["class_pixels"]
        total = max(sum(pix.values()), 1)
        fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(pix) + 2), 3))
        ax.bar(list(pix), [v / total for v in pix.values()], color="#4a8")
        ax.set_ylabel("share of labelled pixels")
        ax.tick_params(axis="x", rotation=45)
        ax.set_title("pixels per class")
        out.append(("Class pixels", _png(fig)))
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


def deployment_table(st: dict) -> str:
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
