"""``cvft view``: the API refuses anything that is not a split and a row; the page, driven in
Debian's headless Chromium (Playwright), loads, filters by class, opens an image and draws its
boxes, shows predictions beside the labels and near duplicates side by side."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from dsfactory import row, scene, write_dataset

from cvft_data.checks import CheckOptions, check
from cvft_data.view.app import create_app
from cvft_data.view.index import ViewIndex

CLASSES = ["fox", "cat", "owl"]
#: screenshots for people (the closing note, a reviewer): kept under the project's test output
SHOTS = Path(os.environ.get("CVFT_TEST_OUTPUT", Path(__file__).resolve().parents[1] / "test-output")) / "view"


def _dataset(tmp_path: Path) -> Path:
    train, val = [], []
    for k in range(30):
        boxes = [] if k % 5 == 4 else [(k % 3, (4.0 + k % 7, 5.0, 30.0, 20.0))] + ([(2, (50.0, 30.0, 20.0, 15.0))] if k % 4 == 0 else [])
        train.append(row(f"train/{k}.jpg", scene(k), boxes=boxes, group=f"site{k % 3}"))
    for k in range(100, 110):
        val.append(row(f"validation/{k}.jpg", scene(k), boxes=[(k % 2, (10.0, 10.0, 25.0, 18.0))], group="site9"))
    val.append(row("validation/copy_of_3.jpg", scene(3, quality=60), boxes=[(0, (4.0, 5.0, 30.0, 20.0))], group="site9"))
    return write_dataset(tmp_path / "ds", {"train": train, "validation": val}, CLASSES)


def _predictions(tmp_path: Path) -> Path:
    rows = [row(f"train/{k}.jpg", scene(k), boxes=[(1, (6.0, 6.0, 28.0, 19.0))], status="predicted") for k in range(30)]
    for r in rows:
        r["object_attributes"] = [{"score": 0.75}]
    return write_dataset(tmp_path / "preds", {"train": rows}, CLASSES)


def _index(tmp_path: Path, predictions: bool = False) -> ViewIndex:
    ds = _dataset(tmp_path)
    found = check(ds, CheckOptions(min_images_per_class=1, workers=1)).findings
    return ViewIndex.build(ds, findings=found, predictions=_predictions(tmp_path) if predictions else None)


def test_api_serves_rows_and_nothing_else(tmp_path):
    client = create_app(_index(tmp_path)).test_client()
    summary = client.get("/api/summary").get_json()
    assert summary["images"] == 41 and summary["facets"]["class"]["owl"] > 0
    assert "near_duplicate" in summary["facets"]["finding"], "the re-encoded copy across splits is found"
    owls = client.get("/api/images?class=owl&per_page=500").get_json()
    assert owls["total"] == summary["facets"]["class"]["owl"] and all("owl" in i["labels"] for i in owls["images"])
    assert client.get("/api/images?class=unicorn").status_code == 400
    d = client.get("/api/image/train/0").get_json()
    assert [a["class"] for a in d["annotations"]] == ["fox", "owl"] and d["annotations"][0]["bbox"] == [4, 5, 30, 20]
    assert client.get("/image/train/0").data[:2] == b"\xff\xd8", "the stored bytes, as they are"
    assert client.get("/thumb/train/0").mimetype == "image/jpeg"
    for url in ("/image/train/41", "/image/../0", "/image/..%2f..%2fetc%2fpasswd/0", "/image/train/-1",
                "/static/../app.py", "/static/%2e%2e%2fapp.py", "/thumb/nosuchsplit/0", "/api/image/train/x"):
        assert client.get(url).status_code == 404, url
    assert client.get("/", headers={"Host": "evil.example:8765"}).status_code == 403, "DNS rebinding is refused"
    assert client.get("/", headers={"Host": "127.0.0.1:8765"}).status_code == 200


def test_near_duplicates_are_pairs_to_compare(tmp_path):
    index = _index(tmp_path)
    related = index.related("validation/copy_of_3.jpg")
    near = [r for r in related if r["check"] == "near_duplicate"]
    assert near and near[0]["severity"] == "error" and near[0]["compare"][0]["image_id"] == "train/3.jpg"


@pytest.fixture
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def served(tmp_path):
    """``cvft view`` on the test dataset with predictions, on a free port, in a thread."""
    from cvft_data.view import serve

    ds = _dataset(tmp_path)
    started = threading.Event()
    box = {}

    def ready(url, server):
        box.update(url=url, server=server)
        started.set()

    t = threading.Thread(target=serve, args=(ds,), daemon=True, kwargs=dict(
        port=0, predictions=_predictions(tmp_path), options=CheckOptions(min_images_per_class=1, workers=1),
        open_browser=False, ready=ready))
    t.start()
    assert started.wait(120), "the server did not start"
    yield box["url"]
    box["server"].shutdown()


def test_view_in_a_browser(browser, served):
    SHOTS.mkdir(parents=True, exist_ok=True)
    # bypass_csp: the page forbids eval, which Playwright's wait_for_function uses
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(served)
    page.wait_for_selector("#grid[data-ready='1']")
    assert page.locator("figure.thumb").count() == 41
    # the first rows are in view (the rest load lazily): every one of them decoded
    page.wait_for_function("[...document.querySelectorAll('figure.thumb img')].slice(0, 8)"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(SHOTS / "grid.png"))

    owls = sum(1 for k in range(30) if k % 5 != 4 and (k % 3 == 2 or k % 4 == 0))   # as _dataset plants them
    page.select_option("select[name=class]", "owl")
    page.wait_for_function(f"document.querySelector('#pageinfo').textContent.startsWith('{owls} images')")
    captions = page.locator("figure.thumb figcaption b").all_inner_texts()
    assert len(captions) == owls and all("owl" in c for c in captions)

    page.locator("figure.thumb[data-image-id='train/0.jpg']").click()
    page.wait_for_selector("#detail:not([hidden])")
    assert page.locator("#canvas g.labels rect.box").count() == 2
    assert page.locator("#canvas g.labels text").all_text_contents() == ["fox", "owl"]
    assert page.locator("#canvas g.predictions rect.pred").count() == 1
    assert page.locator("#canvas g.predictions text").all_text_contents() == ["cat 0.75"]
    box = page.locator("#canvas g.labels rect.box").first.bounding_box()
    svg = page.locator("#canvas").bounding_box()
    assert box["width"] > 0 and svg["x"] <= box["x"] and box["x"] + box["width"] <= svg["x"] + svg["width"]
    # the box sits where the label says: 4 px of 96 from the left, 30 px wide
    assert abs((box["x"] - svg["x"]) / svg["width"] - 4 / 96) < 0.02 and abs(box["width"] / svg["width"] - 30 / 96) < 0.02
    page.screenshot(path=str(SHOTS / "detail.png"))

    page.keyboard.press("Escape")
    page.select_option("select[name=class]", "")
    page.select_option("select[name=finding]", "near_duplicate")
    page.wait_for_function("document.querySelector('#pageinfo').textContent.startsWith('2 images')")
    page.locator("figure.thumb[data-image-id='validation/copy_of_3.jpg']").click()
    page.wait_for_selector("#detail:not([hidden]) .compare figure")
    assert page.locator(".compare figure").all_inner_texts()[1].endswith("train/3.jpg")
    page.screenshot(path=str(SHOTS / "near_duplicates.png"))
    assert not errors, errors


def test_a_port_in_use_is_refused_before_the_checks_run(tmp_path, monkeypatch):
    import socket

    import cvft_data.checks
    from cvft_data.cli import main as cvft_cli

    monkeypatch.setattr(cvft_data.checks, "check", lambda *a, **k: pytest.fail("the checks ran first"))
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        assert cvft_cli.main(["view", str(_dataset(tmp_path)), "--port", str(port), "--no-browser"]) == 2
