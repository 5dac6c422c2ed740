"""The checks, one small function each over the shared :class:`~cvft_data.check_facts.Facts`,
registered in :data:`RULES` in the order they run. A new check is one function with ``@rule``
and one line in :data:`cvft_data.checks.CHECKS`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Callable

from .check_facts import Facts, Finding
from .store import column

Rule = Callable[[Facts, "CheckOptions"], list[Finding]]  # noqa: F821 (CheckOptions: cvft_data.checks)
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


@rule
def check_class_balance(facts: Facts, opts) -> list:
    names, out = facts.names, []
    total: Counter = sum(facts.class_images.values(), Counter())
    for split, counter in facts.class_images.items():
        low = [names[c] for c in range(len(names)) if 0 < counter[c] < opts.min_images_per_class]
        if low:
            out.append(Finding("class_balance", "warning",
                                f"{split}: {len(low)} of {len(names)} classes have fewer than "
                                f"{opts.min_images_per_class} images: " + ", ".join(
                                    f"{n} ({counter[names.index(n)]})" for n in low[:10]),
                                details={"split": split, "classes": {n: counter[names.index(n)] for n in low}}))
    used = [c for c in range(len(names)) if total[c]]
    if len(used) > 1:
        ratio = max(total[c] for c in used) / min(total[c] for c in used)
        facts.stats["imbalance_ratio"] = ratio
        if ratio > opts.max_imbalance_ratio:
            big = max(used, key=lambda c: total[c])
            small = min(used, key=lambda c: total[c])
            out.append(Finding("class_balance", "warning",
                                f"imbalance ratio {ratio:.1f}: {names[big]} has {total[big]} images, "
                                f"{names[small]} {total[small]}; use class weights or a balanced sampler",
                                details={"ratio": ratio}))
    unused = [names[c] for c in range(len(names)) if not total[c]]
    if unused:
        out.append(Finding("unused_class", "warning", f"{len(unused)} declared classes are never used: "
                            + ", ".join(unused[:20]), details={"classes": unused}))
    return out


@rule
def check_class_missing_from_split(facts: Facts, opts) -> list:
    """A class the dataset uses that a split lacks: the model is never trained on it (train) or its
    score is never measured (validation, test)."""
    names, out = facts.names, []
    used = {c for counter in facts.class_images.values() for c, n in counter.items() if n}
    if len(facts.class_images) < 2:
        return out
    for split, counter in facts.class_images.items():
        missing = sorted(names[c] for c in used if not counter[c])
        if missing:
            why = "the model never learns them" if split == "train" else "their scores cannot be measured"
            out.append(Finding("class_missing_from_split", "warning",
                                f"{split} has no images of {len(missing)} classes ({why}): " + ", ".join(missing[:10])
                                + "; re-split with cvft split (stratified by class)",
                                details={"split": split, "classes": missing}))
    return out


@rule
def check_null_images(facts: Facts, opts) -> list:
    out = []
    shares = {s: v["null_share"] for s, v in facts.stats["splits"].items() if v["images"]}
    # classification has no null image (an image has one class; "background" is a class of its own),
    # nor has a semantic mask (its background pixels are a class)
    if facts.task not in ("panoptic", "classification", "semantic_segmentation"):
        for s, share in shares.items():
            if share == 0:
                out.append(Finding("null_images", "warning",
                                    f"{s} has no null (empty) images: the model never sees the background alone",
                                    details={"split": s}))
        if len(shares) > 1 and max(shares.values()) - min(shares.values()) > opts.null_share_tolerance:
            out.append(Finding("null_images", "warning", "null shares differ across splits: " + ", ".join(
                f"{s} {v:.0%}" for s, v in shares.items()), details={"shares": shares}))
    return out


@rule
def check_unlabeled(facts: Facts, opts) -> list:
    if not facts.unlabeled:
        return []
    return [Finding("unlabeled", "warning", f"{len(facts.unlabeled)} images have no annotation at all "
                     "(neither labelled nor verified empty)", image_ids=facts.unlabeled)]


@rule
def check_leakage(facts: Facts, opts) -> list:
    out = []
    leaked = sorted(i for i, s in facts.image_splits.items() if len(s) > 1)
    if leaked:
        out.append(Finding("leakage", "error", f"{len(leaked)} images are in more than one split",
                            image_ids=leaked, details={"kind": "image_id"}))
    groups = {g: sorted(s) for g, s in facts.group_splits.items() if len(s) > 1}
    if groups:
        out.append(Finding("leakage", "error", f"{len(groups)} groups straddle splits: " + ", ".join(
            f"{g} ({'/'.join(s)})" for g, s in list(groups.items())[:10]), details={"kind": "group", "groups": groups}))
    return out


@rule
def check_geometry(facts: Facts, opts) -> list:
    return [Finding(name, sev, f"{len(refs)} {text}", image_ids=refs)
            for name, refs, sev, text in (
                ("box_degenerate", facts.degenerate, "error", "boxes with zero or negative size"),
                ("box_tiny", facts.tiny, "warning", f"boxes with a side under {opts.min_box_side} px"),
                ("box_out_of_bounds", facts.out_of_bounds, "error", "boxes leave the image"),
                ("empty_mask", facts.empty_masks, "warning", "masks or polygons with no area"))
            if refs]


@rule
def check_decoded(facts: Facts, opts) -> list:
    """The decode pass (skipped with ``decode=False``): corrupt files, exact and near duplicates."""
    if not opts.decode:
        return []
    from .imagescan import scan_dataset

    dsd, out = facts.dataset, []
    scans = scan_dataset(facts.path, {s: len(dsd[s]) for s in dsd}, workers=opts.workers)
    facts.scans = scans
    for (split, i), cap in facts.capture_rows.items():   # tone for the camera-health checks
        cap.brightness, cap.colour = scans[split][i].brightness, scans[split][i].colour
    ids = {s: column(dsd[s], "image_id") for s in dsd}
    corrupt = [(ids[s][i], r.error) for s in dsd for i, r in enumerate(scans[s]) if r.error]
    if corrupt:
        out.append(Finding("corrupt_image", "error", f"{len(corrupt)} images do not decode: "
                            + "; ".join(f"{i}: {e}" for i, e in corrupt[:3]),
                            image_ids=[i for i, _ in corrupt], details={"errors": dict(corrupt)}))
    by_hash: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for s in dsd:
        for i, r in enumerate(scans[s]):
            by_hash[r.xxh3].append((s, ids[s][i]))
    exact_clusters = [v for v in by_hash.values() if len(v) > 1]
    for cluster in exact_clusters:
        splits = sorted({s for s, _ in cluster})
        out.append(Finding("leakage" if len(splits) > 1 else "duplicate", "error" if len(splits) > 1 else "warning",
                            f"{len(cluster)} byte-identical images" + (
                                f" across {'/'.join(splits)}" if len(splits) > 1 else f" in {splits[0]}"),
                            image_ids=[i for _, i in cluster], details={"kind": "exact_duplicate", "splits": splits}))
    exact_sets = [{i for _, i in c} for c in exact_clusters]
    items = [(s, ids[s][i], r.dhash) for s in dsd for i, r in enumerate(scans[s]) if r.dhash is not None]
    exact_of = {i: k for k, e in enumerate(exact_sets) for i in e}
    by_splits: dict[tuple, list] = defaultdict(list)
    for a, b, bits in near_pairs(items, opts.near_duplicate_distance):
        (sa, ia, _), (sb, ib, _) = items[a], items[b]
        if ia in exact_of and exact_of.get(ia) == exact_of.get(ib):
            continue  # already reported as exact duplicates
        by_splits[tuple(sorted({sa, sb}))].append((ia, ib, bits))
    for splits, pairs in sorted(by_splits.items()):
        pairs.sort(key=lambda p: (p[2], p[0], p[1]))   # the closest first: what a person checks first
        members = sorted({i for a, b, _ in pairs for i in (a, b)})
        where = f"across {'/'.join(splits)}" if len(splits) > 1 else f"in {splits[0]}"
        out.append(Finding("near_duplicate", "error" if len(splits) > 1 else "warning",
                            f"{len(pairs)} {'pair' if len(pairs) == 1 else 'pairs'} of near-identical images {where} (perceptual hash within "
                            f"{opts.near_duplicate_distance} bits), {len(members)} images; e.g. {pairs[0][0]} "
                            f"and {pairs[0][1]}",
                            image_ids=members, details={"splits": list(splits), "pairs": [list(p) for p in pairs[:5000]],
                                                        "pairs_total": len(pairs)}))
    return out


def near_pairs(items: list[tuple[str, str, int]], max_distance: int) -> list[tuple[int, int, int]]:
    """Pairs ``(a, b, bits)`` of indices into ``items`` (split, image_id, dhash) whose hashes are
    within ``max_distance`` bits. Pairs, not clusters: chaining near pairs joins a whole camera's
    night frames into one group of thousands that nobody can act on. Found through 8 bands of 8
    bits: two hashes within 7 bits share at least one band exactly (pigeonhole), so only band-mates
    are compared.

    >>> near_pairs([("train", "a", 0b1111), ("test", "b", 0b1110), ("train", "c", 0xFF00FF00)], 2)
    [(0, 1, 1)]
    """
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for idx, (_, _, h) in enumerate(items):
        for band in range(8):
            buckets[(band, (h >> (8 * band)) & 0xFF)].append(idx)
    found: dict[tuple[int, int], int] = {}
    for members in buckets.values():
        if len(members) > 2000:  # a flat colour band: too common to mean anything
            continue
        for a_i, a in enumerate(members):
            for b in members[a_i + 1:]:
                if (a, b) not in found:
                    bits = bin(items[a][2] ^ items[b][2]).count("1")
                    if bits <= max_distance:
                        found[(a, b)] = bits
    return sorted((a, b, bits) for (a, b), bits in found.items())


@rule
def check_camera_health(facts: Facts, opts) -> list:
    """Per deployment: trigger gaps, abnormal days, near-black frames, a day/night swap; the
    effort summary goes to the statistics (the report's deployment table)."""
    from . import camera_health as ch

    out = []
    summaries = {}
    for dep, caps in sorted(facts.captures.items()):
        summaries[dep] = ch.summary(caps, timedelta(minutes=opts.independence_minutes))
        times = [c.time for c in caps if c.time]
        gaps = ch.trigger_gaps(times, opts.camera_gap_days)
        if gaps:
            out.append(Finding("camera_gap", "warning", f"{dep}: {len(gaps)} gaps of more than "
                               f"{opts.camera_gap_days:g} days without a trigger (battery, card, theft?): " + ", ".join(
                                   f"{a:%Y-%m-%d} to {b:%Y-%m-%d}" for a, b in gaps[:3]),
                               details={"deployment": dep, "gaps": [[a.isoformat(), b.isoformat()] for a, b in gaps]}))
        busy = ch.abnormal_days(times)
        if busy:
            out.append(Finding("camera_abnormal_days", "warning", f"{dep}: {len(busy)} days with abnormal trigger "
                               "counts (vegetation in the wind?): " + ", ".join(f"{d} ({n})" for d, n in list(busy.items())[:3]),
                               details={"deployment": dep, "days": busy}))
        dark = [c.image_id for c in caps if c.brightness is not None and c.brightness < ch.DARK]
        toned = [c for c in caps if c.brightness is not None]
        if toned and len(dark) / len(toned) > opts.max_dark_share:
            out.append(Finding("camera_dark_frames", "warning", f"{dep}: {len(dark)} of {len(toned)} images are "
                               "near-black (night frames without infrared?)", image_ids=dark,
                               details={"deployment": dep}))
        swapped = ch.day_night_evidence(caps)
        if swapped:
            out.append(Finding("day_night", "warning", f"{dep}: images are in colour at night and grey by day "
                               f"({swapped['night_in_colour']:.0%} of {swapped['night_images']} night images in colour, "
                               f"{swapped['day_in_colour']:.0%} of {swapped['day_images']} day images): the clock is "
                               "likely 12 hours or a time zone off", details={"deployment": dep, **swapped}))
    if summaries:
        facts.stats["deployments"] = summaries
        facts.stats["independence_minutes"] = opts.independence_minutes
    return out


@rule
def check_semantic_masks(facts: Facts, opts) -> list:
    """Semantic masks (decoded with the decode pass): a size that is not the image's, indices beyond
    the classes, and how the pixels share out among the classes."""
    if facts.task != "semantic_segmentation" or not opts.decode:
        return []
    from .semantic import mask_census

    census = mask_census(facts.path, facts.dataset, len(facts.names), ignore=facts.stats.get("ignore_index", 255),
                         workers=opts.workers)
    out = []
    if census.wrong_size:
        out.append(Finding("mask_size", "error", f"{len(census.wrong_size)} masks are not the size of their image: "
                           + "; ".join(f"{i} {m} vs {im}" for i, m, im in census.wrong_size[:3]),
                           image_ids=[i for i, *_ in census.wrong_size]))
    if census.unknown:
        shown = ", ".join(str(v) for v in sorted({v for vs in census.unknown.values() for v in vs})[:10])
        out.append(Finding("mask_unknown_index", "error", f"{len(census.unknown)} masks hold indices beyond the "
                           f"{len(facts.names)} classes (not the ignore index): {shown}",
                           image_ids=sorted(census.unknown), details={"indices": {k: sorted(v) for k, v in census.unknown.items()}}))
    total = sum(census.pixels)
    facts.stats["class_pixels"] = {facts.names[c]: int(n) for c, n in enumerate(census.pixels)}
    present = [n for n in census.pixels if n]
    if total and len(present) > 1 and max(present) / min(present) > opts.max_imbalance_ratio ** 2:
        big = max(range(len(census.pixels)), key=lambda c: census.pixels[c])
        small = min((c for c in range(len(census.pixels)) if census.pixels[c]), key=lambda c: census.pixels[c])
        out.append(Finding("class_pixel_balance", "warning",
                           f"{facts.names[small]} covers {census.pixels[small] / total:.2%} of the labelled pixels, "
                           f"{facts.names[big]} {census.pixels[big] / total:.1%} ({max(present) / min(present):.0f}x): "
                           "weight the loss by class or crop around the rare class",
                           details={"shares": {facts.names[c]: n / total for c, n in enumerate(census.pixels)}}))
    return out
