"""The web page in a real headless Chromium (Debian's, driven by Python Playwright) against a real `rookery serve`.

The server runs the session's tiny trained model (tests/conftest.py) with an API key, so the first upload
also walks through the key prompt. The model is weak (one epoch at 64 px): the page's numbers are checked
against the API's answer for the same photo, never against a truth. conf=0.001 (typed into the page's
options) keeps its weak proposals, so there are boxes to draw and a class to hide.

Screenshots of the result page (desktop 1280x800 and phone 390x844) go to $ROOKERY_SCREENSHOTS_DIR when set,
else to a temporary folder; the path is printed (pytest -s or -rA shows it).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from processes import free_port, stop_process, wait_ready

httpx = pytest.importorskip("httpx")
sync_api = pytest.importorskip("playwright.sync_api", reason="Python Playwright is not installed (dev extra)")

CHROMIUM = Path("/usr/bin/chromium")
API_KEY = "web-test-key"
CONF = "0.001"
MLFLOW_UI = "http://127.0.0.1:5999"  # only shown as a link: nothing is fetched from it
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

if not CHROMIUM.exists():
    pytest.skip(f"Debian chromium is not installed at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": API_KEY}, timeout=60)


@pytest.fixture(scope="module")
def server(_trained_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`rookery serve` as a real process on loopback, following the champion of the session's model."""
    home = tmp_path_factory.mktemp("web-home")
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ROOKERY_HISTORY_URL", "ROOKERY_MODEL_URI", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")
    }
    env |= {
        "ROOKERY_HOME": str(home),
        "ROOKERY_TRACKING_URI": _trained_model.tracking_uri,
        "ROOKERY_API_KEY": API_KEY,
        "ROOKERY_MLFLOW_UI_URL": MLFLOW_UI,
    }
    log = home / "serve.log"
    cmd = [sys.executable, "-m", "rookery", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        wait_ready(url, proc, log)
        print(f"\nrookery serve ready in {time.monotonic() - started:.1f} s at {url}")
        yield Server(url, log)
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("ROOKERY_SCREENSHOTS_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nweb page screenshots: {folder}")
    return folder


class Page:
    """A browser tab that records the page's JavaScript errors, so any of them fails the test."""

    def __init__(self, browser: Any, server: Server, viewport: dict[str, int], with_key: bool, **options: Any):
        self.context = browser.new_context(viewport=viewport, **options)
        if with_key:  # as if the key had been typed on an earlier visit
            self.context.add_init_script(f"localStorage.setItem('rookery.apiKey', {API_KEY!r})")
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.url = server.url

    def goto(self, path: str) -> Any:
        return self.page.goto(self.url + path)

    def close(self, *, allow: str | None = None) -> None:
        self.context.close()
        # The browser logs each refused request (401 before the key, the bad upload's 415) as a console error.
        errors = [e for e in self.errors if not (allow and re.search(allow, e))]
        assert not errors, f"JavaScript errors on the page: {errors}"


def shown_counts(page: Any) -> tuple[dict[str, int], int]:
    rows = page.locator("#counts tbody tr")
    counts = {
        rows.nth(i).get_attribute("data-class"): int(rows.nth(i).locator("td.count .n").inner_text())
        for i in range(rows.count())
    }
    return counts, int(page.locator("#total .n").inner_text())


def shown_cells(page: Any) -> tuple[dict[str, str], str]:
    """The counts table's cells as the reader sees them: "12 (8–17)" per class and for the total."""
    rows = page.locator("#counts tbody tr")
    cells = {
        rows.nth(i).get_attribute("data-class"): rows.nth(i).locator("td.count").inner_text()
        for i in range(rows.count())
    }
    return cells, page.locator("#total").inner_text()


def with_interval(n: int, bounds: list[int]) -> str:
    return f"{n} ({bounds[0]}–{bounds[1]})"


def boxes_drawn(page: Any) -> int:
    return int(page.locator("#viewer-canvas").get_attribute("data-shown"))


def test_upload_shows_the_counts_the_api_gives(server: Server, browser: Any, shots: Path, _trained_model: Any) -> None:
    expect = sync_api.expect
    photo = sorted(_trained_model.photos.iterdir())[0]
    tab = Page(browser, server, DESKTOP, with_key=False)
    page = tab.page
    tab.goto("/")
    expect(page.locator("#api-key-panel")).to_be_visible()  # the server has a key and this browser none
    page.locator("details.options summary").click()
    page.fill("input[name=conf]", CONF)
    page.set_input_files("#files", str(photo))

    # Sent without the key anyway: the API answers 401; the key typed then sends the upload again.
    expect(page.locator("#progress")).to_have_attribute("data-state", "error")
    expect(page.locator("#api-key-panel")).to_be_visible()
    page.fill("#api-key", API_KEY)
    page.get_by_role("button", name="Save key").click()
    expect(page.locator("#result")).to_be_visible()
    expect(page.locator("#viewer-canvas")).to_have_attribute("data-shown", re.compile(r"\d+"))
    expect(page.locator("#progress")).to_have_attribute("data-state", "done")

    counts, total = shown_counts(page)
    prediction_id = page.locator("#result-link").get_attribute("href").rsplit("/", 1)[-1]
    with server.api() as api:
        stored = api.get(f"/api/v1/predictions/{prediction_id}").json()
        model = api.get("/api/v1/model").json()
        with photo.open("rb") as f:  # the same photo straight to the API: the page must show the same numbers
            fresh = api.post("/api/v1/predict", files={"files": (photo.name, f)}, data={"conf": CONF}).json()
    assert stored["file_name"] == photo.name
    assert counts == stored["counts"] == fresh["results"][0]["counts"]
    assert list(counts) == model["class_names"]  # every class of the model, zeros included, in its order
    assert total == stored["total"] == sum(counts.values())
    assert boxes_drawn(page) == len(stored["detections"]) == total
    # Each count with its 90 % interval, as the API gives it ("n (lo–hi)"), the total's too; one line says so.
    cells, total_cell = shown_cells(page)
    assert stored["intervals"] == fresh["results"][0]["intervals"]
    assert cells == {n: with_interval(counts[n], stored["intervals"][n]) for n in counts}
    assert total_cell == with_interval(total, stored["total_interval"])
    expect(page.locator("#interval-note")).to_contain_text("90 % interval")
    expect(page.locator("#interval-note")).to_contain_text("uncalibrated")  # the session model has no calibration
    bars = page.locator("#chart svg g.bar-interval")  # an error bar per class
    assert [[int(bars.nth(i).get_attribute(f"data-{e}")) for e in ("lo", "hi")] for i in range(bars.count())] == list(
        stored["intervals"].values()
    )
    page.screenshot(path=shots / "web-desktop-result.png", full_page=True)

    # Hiding a class takes its boxes off the photo (and fades its bar); showing it brings them back.
    per_class = Counter(d["class_name"] for d in stored["detections"])
    name = max(counts, key=lambda n: (per_class[n], n))
    toggle = page.locator(f'#counts tr[data-class="{name}"] input[type=checkbox]')
    toggle.uncheck()
    expect(page.locator("#viewer-canvas")).to_have_attribute("data-hidden-classes", name)
    expect(page.locator("#viewer-canvas")).to_have_attribute("data-shown", str(total - per_class[name]))
    assert page.locator("#chart svg g[opacity='0.3']").count() == 1
    toggle.check()
    expect(page.locator("#viewer-canvas")).to_have_attribute("data-shown", str(total))

    # Zoom by the slider's buttons; the photo stays drawn.
    page.get_by_role("button", name="Zoom in").click()
    expect(page.locator("#zoom-value")).to_have_text("1.5×")
    page.get_by_role("button", name="Fit").click()
    expect(page.locator("#zoom-value")).to_have_text("1.0×")

    # The JSON download is the API's prediction.
    with page.expect_download() as download:
        page.get_by_role("button", name="JSON").click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert (saved["id"], saved["counts"], saved["detections"]) == (prediction_id, counts, stored["detections"])
    with page.expect_download() as download:
        page.get_by_role("button", name="Counts CSV").click()
    rows = Path(download.value.path()).read_text().splitlines()
    ends = [f"{c}_{end}" for c in (*counts, "total") for end in ("lo", "hi")]
    bounds = [v for lo_hi in (*stored["intervals"].values(), stored["total_interval"]) for v in lo_hi]
    header = ",".join(["image", *counts, "total", *ends])  # the columns of `rookery predict`'s counts.csv
    row = ",".join([photo.name, *map(str, counts.values()), str(total), *map(str, bounds)])
    assert rows == [header, row]

    tab.close(allow=r"401")

    # On a phone: the same upload, then the stored result page (from the history store) with the same counts.
    tab = Page(browser, server, PHONE, with_key=True, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = tab.page
    tab.goto("/")
    expect(page.locator("#api-key-panel")).to_be_hidden()  # the key from an earlier visit
    page.locator("details.options summary").click()
    page.fill("input[name=conf]", CONF)
    page.set_input_files("#files", str(photo))
    expect(page.locator("#viewer-canvas")).to_have_attribute("data-shown", str(total))
    assert shown_counts(page) == (counts, total)
    page.screenshot(path=shots / "web-phone-result.png", full_page=True)

    tab.goto(f"/predictions/{prediction_id}")
    if stored.get("upload_url"):  # the server gives the photo itself back: boxes are drawn (and toggled) on it
        expect(page.locator("#viewer-canvas")).to_have_attribute("data-shown", str(total))
    else:  # only the server's annotated copy: shown as it is
        expect(page.locator("#viewer-note")).to_contain_text("as the server annotated it")
    assert shown_counts(page) == (counts, total)
    assert shown_cells(page) == (cells, total_cell)
    page.screenshot(path=shots / "web-phone-stored.png", full_page=True)
    tab.close()


def test_history_and_model_pages(server: Server, browser: Any, shots: Path, _trained_model: Any) -> None:
    expect = sync_api.expect
    photo = sorted(_trained_model.photos.iterdir())[-1]
    with server.api() as api:
        with photo.open("rb") as f:
            newest = api.post("/api/v1/predict", files={"files": (photo.name, f)}, data={"conf": CONF}).json()
        newest = newest["results"][0]
        model = api.get("/api/v1/model").json()
    tab = Page(browser, server, DESKTOP, with_key=True)
    page = tab.page

    tab.goto("/history")
    first = page.locator("#history tbody tr").first
    expect(first).to_have_attribute("data-id", newest["id"])  # newest first
    total_cell = with_interval(newest["total"], newest["total_interval"])
    assert first.locator("td.total").inner_text() == total_cell
    class_cells = [first.locator("td.class-count").nth(i).inner_text() for i in range(len(newest["counts"]))]
    assert class_cells == [with_interval(n, newest["intervals"][c]) for c, n in newest["counts"].items()]
    first.get_by_role("link", name=photo.name).click()
    expect(page).to_have_url(f"{server.url}/predictions/{newest['id']}")
    expect(page.locator("#total")).to_have_text(total_cell)
    expect(page.locator("#interval-note")).to_contain_text("90 % interval")
    page.goto(f"{server.url}/history")
    expect(page.locator("#history tbody tr").first).to_be_visible()
    page.screenshot(path=shots / "web-desktop-history.png", full_page=True)

    # One per page: the second page holds the second newest, as the API pages it.
    with server.api() as api:
        second = api.get("/api/v1/predictions", params={"page": 2, "per_page": 1}).json()["items"][0]
    tab.goto("/history?per_page=1")
    expect(page.locator("#history tbody tr")).to_have_count(1)
    expect(page.locator("#newer")).to_be_hidden()
    page.get_by_role("link", name="Older →").click()
    expect(page.locator("#history tbody tr").first).to_have_attribute("data-id", second["id"])
    expect(page.locator("#page-info")).to_contain_text("Page 2 of")

    tab.goto("/model")
    expect(page.locator('#model-facts dd[data-field="version"]')).to_have_text(str(model["version"]))
    expect(page.locator('#model-facts dd[data-field="alias"]')).to_have_text(model["alias"] or "—")
    assert page.locator("#metrics tbody tr").count() == len(model["metrics"])
    expect(page.locator('#card-facts dd[data-card="intended-use"]')).to_have_text(model["card"]["intended_use"])
    expect(page.locator('#card-facts dd[data-card="trained-on"]')).to_have_text(model["card"]["trained_on"])
    link = page.locator("#mlflow-version").get_attribute("href")
    assert link == model["mlflow_ui_url"] and link.startswith(MLFLOW_UI)
    page.screenshot(path=shots / "web-desktop-model.png", full_page=True)

    # An unknown prediction is a 404 page, not an empty result view.
    response = tab.goto("/predictions/" + "0" * 32)
    assert response.status == 404
    expect(page.locator("#error-message")).to_contain_text("No prediction has this id")
    tab.close(allow=r"404")


def test_bad_uploads_show_the_api_sentence(
    server: Server, browser: Any, shots: Path, tmp_path: Path, _trained_model: Any
) -> None:
    expect = sync_api.expect
    fake = tmp_path / "notes.jpg"
    fake.write_text("these are field notes, not a photo\n")
    with server.api() as api, fake.open("rb") as f:
        answer = api.post("/api/v1/predict", files={"files": (fake.name, f)})
    assert 400 <= answer.status_code < 500
    detail = answer.json()["detail"]

    # Alone, through the file picker: nothing counted, the API's sentence on the page.
    tab = Page(browser, server, DESKTOP, with_key=True)
    page = tab.page
    tab.goto("/")
    page.set_input_files("#files", str(fake))
    expect(page.locator("#error")).to_contain_text(detail)
    assert page.locator("#result").is_hidden()
    page.screenshot(path=shots / "web-desktop-bad-upload.png")

    # Dropped on the page together with a photo: the photo is counted and the bad file named with its reason.
    photo = sorted(_trained_model.photos.iterdir())[1]
    page.evaluate(
        """async (files) => {
            const dt = new DataTransfer();
            for (const [name, b64] of files) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
            }
            const zone = document.querySelector("#dropzone");
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [[f.name, base64.b64encode(f.read_bytes()).decode()] for f in (fake, photo)],
    )
    expect(page.locator("#batch")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#batch-table tbody tr[data-id] th")).to_have_text([photo.name])
    expect(page.locator("#batch-errors li")).to_have_text([f"{fake.name}: {detail}"])
    expect(page.locator("#result-title")).to_have_text(photo.name)
    tab.close(allow=rf"\b{answer.status_code}\b")
