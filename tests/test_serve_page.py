"""The web page of `vitpose serve` in a real browser: Debian's chromium driven by Playwright against a real uvicorn
server on 127.0.0.1 (a tiny random model). The canvas is read back pixel by pixel: the keypoints must be drawn, in
their data set's colours, exactly where the answer puts them, and the photo untouched everywhere else.

Without chromium or Playwright the module is skipped on a developer's machine and fails in CI (CI set)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_hf_model, save_hf
from vitpose.inference.estimator import PoseEstimator
from vitpose.serve import create_app

pytestmark = pytest.mark.slow

uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

PHOTO = "000000040083.jpg"  # 500 x 333, no ICC profile: chromium's pixels are Pillow's (a profile is colour-managed)
API_KEY = "page-test-key"

READ_CANVAS = """() => {
  const canvas = document.getElementById("canvas");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let text = "";
  for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  return [canvas.width, canvas.height, btoa(text)];
}"""

SET_THRESHOLD = """(value) => {
  const slider = document.getElementById("threshold");
  slider.value = String(value);
  slider.dispatchEvent(new Event("input", {bubbles: true}));
}"""


def _unavailable(message: str) -> None:
    """As tests/conftest.py treats a missing optional dependency: a skip locally, a failure in CI."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def chromium_browser():
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        _unavailable("chromium not found (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=executable,
                # A fake camera (a test pattern) that needs no permission prompt, for the camera test.
                args=["--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
            )
        except sync_api.Error as err:
            _unavailable(f"chromium at {executable} does not start: {err}")
        yield browser
        browser.close()


class Service:
    """A uvicorn server of `app` on a free port of 127.0.0.1; `received` records each POST /v1/pose as the service
    got it (headers, body chunks): Chromium does not give Playwright the bodies of uploads made of files."""

    def __init__(self, app) -> None:
        self.app = app
        self.received: list[tuple[dict[str, str], list[bytes]]] = []
        self.server = uvicorn.Server(uvicorn.Config(self, host="127.0.0.1", port=_free_port(), log_level="warning"))
        self.url = f"http://127.0.0.1:{self.server.config.port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        end = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < end, "the server did not start"
            time.sleep(0.01)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v1/pose":
            return await self.app(scope, receive, send)
        # Recorded before the app runs (it reads the whole body before it answers): complete by the answer.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        chunks: list[bytes] = []
        self.received.append((headers, chunks))

        async def recording():
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        await self.app(scope, recording, send)

    def last_body(self) -> bytes:
        return b"".join(self.received[-1][1])

    def last_form(self) -> str:
        return self.last_body().decode("latin-1")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.app.state.batcher.close()


@pytest.fixture(scope="module")
def serve():
    """serve(estimator, **create_app options) -> a running Service (stopped at the module's end)."""
    running = []

    def start(estimator, **options):
        running.append(Service(create_app(estimator, model_name="tiny", **options)))
        return running[-1]

    yield start
    for service in running:
        service.stop()


@pytest.fixture(scope="module")
def estimator(tmp_path_factory):
    checkpoint = save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")
    return PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image", batch_size=4)


@pytest.fixture(scope="module")
def plus_estimator():
    """A ViTPose++-style model serving three data sets (heads for COCO, AI Challenger and MPII)."""
    import torch

    from vitpose import VitPoseConfig, VitPoseForPoseEstimation

    torch.manual_seed(0)
    config = VitPoseConfig.from_preset("tiny", num_hidden_layers=1, associate_num_labels=[14, 16])
    return PoseEstimator(VitPoseForPoseEstimation(config).eval(), detector="full-image", batch_size=4)


@pytest.fixture(scope="module")
def service(serve, estimator):
    return serve(estimator)


@pytest.fixture(scope="module")
def photo(coco_dir):
    path = coco_dir / PHOTO
    with Image.open(path) as image:
        assert "icc_profile" not in image.info  # else chromium colour-manages it and its pixels are not Pillow's
        pixels = np.asarray(image.convert("RGB")).astype(int)
    return path, pixels


class Session:
    """A fresh browser context on one server: its page, every request the page made and its script's errors."""

    def __init__(self, browser, service: Service, init_script: str | None = None) -> None:
        self.service = service
        self.base = service.url
        self.context = browser.new_context(viewport={"width": 1200, "height": 800}, accept_downloads=True)
        if init_script:
            self.context.add_init_script(init_script)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20000)
        self.requests = []
        self.errors: list[str] = []  # uncaught exceptions of the page's script
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(self.base + "/")

    def poses(self):
        return [r for r in self.requests if r.method == "POST" and r.url == self.base + "/v1/pose"]

    def foreign(self) -> list[str]:
        own = (self.base + "/", "blob:" + self.base + "/")
        return [r.url for r in self.requests if not r.url.startswith(own)]

    def wait_state(self, state: str) -> None:
        self.page.wait_for_function(f"document.body.dataset.state === {state!r}")

    def upload(self, path: Path) -> dict:
        """Choose `path` with the file input; returns the pose answer once it is drawn."""
        with self.page.expect_response(lambda r: r.url == self.base + "/v1/pose") as response:
            self.page.set_input_files("#file-input", str(path))
        assert response.value.status == 200
        self.wait_state("drawn")
        return response.value.json()

    def canvas(self) -> np.ndarray:
        width, height, data = self.page.evaluate(READ_CANVAS)
        return np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)[..., :3].astype(int)

    def sizes(self) -> tuple[int, int]:
        data = self.page.eval_on_selector("#canvas", "c => [Number(c.dataset.radius), Number(c.dataset.lineWidth)]")
        return data[0], data[1]

    def client_point(self, x: float, y: float) -> tuple[float, float]:
        """Where image point (x, y) (pixel-centre convention) is on the screen: the canvas is scaled by CSS."""
        box = self.page.locator("#canvas").bounding_box()
        width, height = self.page.eval_on_selector("#canvas", "c => [c.width, c.height]")
        return box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height


@pytest.fixture
def session(chromium_browser, service):
    """session(service=the tiny model's, init_script=None) -> a new Session (its context closed after the test)."""
    sessions = []

    def make(on=service, init_script=None):
        sessions.append(Session(chromium_browser, on, init_script))
        return sessions[-1]

    yield make
    for s in sessions:
        s.context.close()
        assert not s.foreign(), f"the page loaded URLs outside the service: {s.foreign()}"
        assert not s.errors, f"the page's script raised: {s.errors}"


def model_info(service: Service, key: str | None = None) -> dict:
    request = urllib.request.Request(service.url + "/v1/model", headers={"X-API-Key": key} if key else {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


# ------------------------------------------------------------------------------------------------ geometry
def drawn_points(answer: dict, thr: float, width: int, height: int) -> list[tuple[int, int, float, float, float]]:
    """(person, keypoint, x, y, score) of every keypoint the page draws at threshold `thr` (score > thr) inside the
    image."""
    out = []
    for p, person in enumerate(answer["people"]):
        for j, ((x, y), score) in enumerate(zip(person["keypoints"], person["keypoint_scores"], strict=True)):
            if score > thr and -0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5:
                out.append((p, j, x, y, score))
    return out


def count_drawn(answer: dict, thr: float) -> int:
    """How many keypoints the page draws at `thr`, inside the image or not (the canvas clips them)."""
    return sum(score > thr for person in answer["people"] for score in person["keypoint_scores"])


def overlay_mask(answer: dict, layout: dict, thr: float, radius: int, line_width: int, margin: float = 2.0):
    """The pixels the drawing may touch at threshold `thr` (boxes, links, keypoints), widened by `margin`."""
    width, height = answer["image_size"]
    ys, xs = np.mgrid[0:height, 0:width].astype(float)
    mask = np.zeros((height, width), bool)

    def segment(p, q, reach):
        p, q = np.asarray(p, float), np.asarray(q, float)
        d = q - p
        t = np.clip(((xs - p[0]) * d[0] + (ys - p[1]) * d[1]) / max(float(d @ d), 1e-12), 0, 1)
        mask[(xs - p[0] - t * d[0]) ** 2 + (ys - p[1] - t * d[1]) ** 2 <= reach**2] = True

    for person in answer["people"]:
        x, y, w, h = person["bbox"]
        corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        for i in range(4):
            segment(corners[i], corners[(i + 1) % 4], line_width / 2 + margin)
        kps, scores = person["keypoints"], person["keypoint_scores"]
        for a, b in layout["skeleton"]:
            if scores[a] > thr and scores[b] > thr:
                segment(kps[a], kps[b], line_width / 2 + margin)
        for (kx, ky), score in zip(kps, scores, strict=True):
            if score > thr:
                segment((kx, ky), (kx, ky), radius + margin)
    return mask


def isolated(points, radius: int) -> list:
    """The points no other drawn keypoint can cover (further apart than two radii and a margin)."""
    out = []
    for i, (_, _, x, y, _) in enumerate(points):
        if all(
            (x - ox) ** 2 + (y - oy) ** 2 > (2 * radius + 3) ** 2
            for k, (_, _, ox, oy, _) in enumerate(points)
            if k != i
        ):
            out.append(points[i])
    return out


def assert_keypoints_drawn(canvas, answer, layout, thr, radius, photo_pixels=None, at_least=3) -> int:
    """At each isolated keypoint drawn at `thr`, the pixel is its data set's colour (checked: the count)."""
    height, width = canvas.shape[:2]
    colors = layout["keypoint_colors"]
    checked = 0
    for p, j, x, y, _ in isolated(drawn_points(answer, thr, width, height), radius):
        px, py = round(x), round(y)
        color = np.array(colors[j])
        if photo_pixels is not None and np.abs(photo_pixels[py, px] - color).max() <= 24:
            continue  # the photo is that colour there already: no evidence either way
        got = canvas[py, px]
        assert np.abs(got - color).max() <= 1, f"person {p} keypoint {j} at ({x:.1f}, {y:.1f}): {got} != {color}"
        checked += 1
    assert checked >= at_least, f"only {checked} isolated keypoints to check"
    return checked


def threshold_between(scores) -> float:
    """A slider value (a multiple of 0.01 inside (0, 1)) with keypoint scores on both sides, none within 0.003."""
    scores = np.sort(np.asarray(scores))
    best = None
    for value in np.round(np.arange(0.05, 0.96, 0.01), 2):
        below, above = (scores < value).sum(), (scores > value).sum()
        if np.abs(scores - value).min() > 0.003 and below >= 3 and above >= 3:
            balance = min(below, above)
            if best is None or balance > best[0]:
                best = (balance, float(value))
    assert best is not None, f"no threshold splits the scores {scores}"
    return best[1]


# ------------------------------------------------------------------------------------------------ tests
def test_photo_is_drawn_with_each_keypoint_in_its_colour_where_the_answer_puts_it(session, service, photo):
    path, pixels = photo
    s = session()
    s.wait_state("idle")
    assert s.page.is_hidden("#dataset-field")  # one data set: no picker
    answer = s.upload(path)
    model = model_info(service)
    layout = model["layouts"][answer["dataset"]]
    assert answer["image_size"] == [pixels.shape[1], pixels.shape[0]]
    assert s.page.evaluate("window.vitposeLast") == answer

    canvas = s.canvas()
    assert canvas.shape == pixels.shape  # the canvas is the image at its natural size
    radius, line_width = s.sizes()
    assert radius >= 3
    thr = float(s.page.input_value("#threshold"))
    assert s.page.eval_on_selector("#canvas", "c => Number(c.dataset.keypointsDrawn)") == count_drawn(answer, thr)
    assert_keypoints_drawn(canvas, answer, layout, thr, radius, pixels, at_least=5)

    # Everywhere the drawing cannot reach, the photo's own pixels (same decoder family: equal up to rounding).
    untouched = ~overlay_mask(answer, layout, thr, radius, line_width)
    assert untouched.mean() > 0.5
    diff = np.abs(canvas - pixels).max(axis=-1)[untouched]
    assert diff.max() <= 3, f"{(diff > 3).sum()} photo pixels changed away from the drawing"
    # And the drawing did change the photo (the links and boxes are there, not only the points).
    assert (np.abs(canvas - pixels).max(axis=-1)[~untouched] > 30).mean() > 0.2

    people = len(answer["people"])
    assert s.page.text_content("#people-count") == f"{people} {'person' if people == 1 else 'people'} found"
    assert f"{people} {'person' if people == 1 else 'people'}" in s.page.text_content("#status")
    assert s.page.get_attribute("#canvas", "aria-label").startswith(PHOTO)


def test_threshold_slider_redraws_without_a_new_request(session, service, photo):
    path, pixels = photo
    s = session()
    answer = s.upload(path)
    layout = model_info(service)["layouts"][answer["dataset"]]
    radius, line_width = s.sizes()
    height, width = pixels.shape[:2]
    before = len(s.poses())
    draws = s.page.eval_on_selector("#canvas", "c => Number(c.dataset.draws)")

    scores = [score for *_, score in drawn_points(answer, -1.0, width, height)]
    thr = threshold_between([v for v in scores if 0 < v < 1])
    s.page.evaluate(SET_THRESHOLD, thr)
    assert s.page.eval_on_selector("#canvas", "c => Number(c.dataset.draws)") == draws + 1
    assert s.page.text_content("#threshold-value") == f"{thr:.2f}"
    canvas = s.canvas()
    assert s.page.eval_on_selector("#canvas", "c => Number(c.dataset.keypointsDrawn)") == count_drawn(answer, thr)
    assert_keypoints_drawn(canvas, answer, layout, thr, radius, pixels, at_least=2)

    # The keypoints now below it are gone: where nothing else is drawn, the photo shows again.
    mask = overlay_mask(answer, layout, thr, radius, line_width)
    gone = [(x, y) for _, _, x, y, score in drawn_points(answer, 0.0, width, height) if score < thr]
    clear = [(round(x), round(y)) for x, y in gone if not mask[round(y), round(x)]]
    assert len(clear) >= 2, "no hidden keypoint clear of the rest of the drawing"
    for x, y in clear:
        assert np.abs(canvas[y, x] - pixels[y, x]).max() <= 3, f"keypoint at ({x}, {y}) still drawn"
    assert len(s.poses()) == before  # redrawn from the last answer

    s.page.evaluate(SET_THRESHOLD, 1.0)  # everything scoring above 1 only
    assert s.page.eval_on_selector("#canvas", "c => Number(c.dataset.keypointsDrawn)") == count_drawn(answer, 1.0)
    assert len(s.poses()) == before


def test_hovering_a_keypoint_shows_its_name_score_and_person(session, service, photo):
    path, _ = photo
    s = session()
    s.page.set_viewport_size({"width": 820, "height": 700})  # the canvas scaled down by CSS
    answer = s.upload(path)
    names = model_info(service)["layouts"][answer["dataset"]]["keypoint_names"]
    shown = s.page.locator("#canvas").bounding_box()["width"]
    assert shown < 0.9 * answer["image_size"][0], shown
    radius, _ = s.sizes()
    width, height = answer["image_size"]
    points = isolated(drawn_points(answer, float(s.page.input_value("#threshold")), width, height), radius)
    assert points
    for p, j, x, y, score in points[:2]:
        s.page.mouse.move(*s.client_point(x, y))
        s.page.wait_for_selector("#tooltip:not([hidden])")
        text = s.page.text_content("#tooltip")
        assert names[j] in text and f"person {p + 1}" in text, text
        assert f"score {score:.3f}" in text or f"score {score:.4f}"[:-1] in text, text
    s.page.mouse.move(1, 1)  # off the canvas
    s.page.wait_for_selector("#tooltip", state="hidden")


def test_a_broken_file_shows_the_services_reason(session, service, photo, tmp_path):
    path, _ = photo
    s = session()
    cases = [
        ("notes.jpg", b"these are not the pixels you are looking for\n"),
        ("cut.jpg", path.read_bytes()[:4000]),  # a truncated JPEG
    ]
    for name, data in cases:
        request = urllib.request.Request(service.url + "/v1/pose", data=data, headers={"Content-Type": "image/jpeg"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 400
        reason = json.load(caught.value)["error"]
        with s.page.expect_response(lambda r: r.url == service.url + "/v1/pose"):
            s.page.set_input_files("#file-input", files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}])
        s.wait_state("error")
        text = s.page.text_content("#error")
        assert s.page.is_visible("#error") and reason in text and "400" in text, text
        assert s.page.evaluate("window.vitposeLast") is None
        assert s.page.is_disabled("#download-button")

    s.upload(path)  # and the page recovers
    assert s.page.is_hidden("#error")


def test_network_failure_is_said_in_words(session, photo):
    path, _ = photo
    s = session()
    s.page.route("**/v1/pose", lambda route: route.abort("connectionrefused"))
    s.page.set_input_files("#file-input", str(path))
    s.wait_state("error")
    assert "could not reach the service" in s.page.text_content("#error")


def test_dataset_picker_of_a_vitpose_plus_model_resends_and_redraws(session, serve, plus_estimator, photo):
    path, pixels = photo
    plus = serve(plus_estimator)
    model = model_info(plus)
    assert model["datasets"] == ["coco", "aic", "mpii"]
    s = session(plus)
    s.page.wait_for_selector("#dataset-field:not([hidden])")
    options = s.page.eval_on_selector_all("#dataset-select option", "os => os.map(o => o.value)")
    assert options == model["datasets"]
    assert s.page.input_value("#dataset-select") == model["dataset"]
    first = s.upload(path)
    assert first["dataset"] == "coco" and len(first["people"][0]["keypoints"]) == 17
    assert 'name="dataset"\r\n\r\ncoco\r\n' in plus.last_form()

    thr = float(s.page.input_value("#threshold"))
    for name in ("aic", "mpii"):
        count = len(model["layouts"][name]["keypoint_names"])
        with s.page.expect_response(lambda r: r.url == plus.url + "/v1/pose") as response:
            s.page.select_option("#dataset-select", name)
        assert f'name="dataset"\r\n\r\n{name}\r\n' in plus.last_form()
        s.wait_state("drawn")
        answer = response.value.json()
        assert answer["dataset"] == name and len(answer["people"][0]["keypoints"]) == count
        assert s.page.evaluate("window.vitposeLast") == answer
        radius, _ = s.sizes()
        assert s.page.eval_on_selector("#canvas", "c => Number(c.dataset.keypointsDrawn)") == count_drawn(answer, thr)
        assert_keypoints_drawn(s.canvas(), answer, model["layouts"][name], thr, radius, pixels, at_least=2)
        assert str(count) in s.page.text_content("#people-list")


def test_download_json_is_the_answer(session, photo):
    path, _ = photo
    s = session()
    answer = s.upload(path)
    with s.page.expect_download() as download:
        s.page.click("#download-button")
    assert download.value.suggested_filename == PHOTO.replace(".jpg", ".pose.json")
    assert json.loads(Path(download.value.path()).read_text()) == answer


def test_api_key_is_asked_for_on_401_and_sent_on_retry(session, serve, estimator, photo):
    path, _ = photo
    locked = serve(estimator, api_key=API_KEY)
    s = session(locked)
    s.wait_state("error")  # GET /v1/model answered 401
    s.page.wait_for_selector("#key-form:not([hidden])")
    assert "401" in s.page.text_content("#error")
    s.page.fill("#api-key", "wrong")
    with s.page.expect_response(lambda r: r.url == locked.url + "/v1/model"):
        s.page.click("#key-form button[type=submit]")
    s.wait_state("error")
    assert "401" in s.page.text_content("#error") and s.page.is_visible("#key-form")

    s.page.fill("#api-key", API_KEY)
    s.page.click("#key-form button[type=submit]")
    s.page.wait_for_selector("#key-form", state="hidden")
    s.wait_state("idle")
    s.upload(path)
    assert s.poses()[-1].headers.get("x-api-key") == API_KEY == locked.received[-1][0]["x-api-key"]
    stored = s.page.evaluate("[document.cookie, localStorage.length, sessionStorage.length]")
    assert stored == ["", 0, 0]  # the key is kept in memory only


def test_paste_and_drop_send_the_photo(session, photo):
    path, _ = photo
    s = session()
    data = base64.b64encode(path.read_bytes()).decode()
    for kind in ("paste", "drop"):
        with s.page.expect_response(lambda r: r.url.endswith("/v1/pose")) as response:
            s.page.evaluate(
                """([kind, data]) => {
                  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                  const transfer = new DataTransfer();
                  transfer.items.add(new File([bytes], "shot.jpg", {type: "image/jpeg"}));
                  const event = kind === "paste"
                    ? new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true})
                    : new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true});
                  document.body.dispatchEvent(event);
                }""",
                [kind, data],
            )
        s.wait_state("drawn")
        assert response.value.status == 200
        assert 'filename="shot.jpg"' in s.service.last_form()


def test_camera_snapshot_is_sent_as_jpeg(session):
    s = session()
    s.page.click("#camera-button")
    s.page.wait_for_function("document.getElementById('camera-video').videoWidth > 0")
    size = s.page.eval_on_selector("#camera-video", "v => [v.videoWidth, v.videoHeight]")
    with s.page.expect_response(lambda r: r.url.endswith("/v1/pose")):
        s.page.click("#snapshot-button")
    s.wait_state("drawn")
    body = s.service.last_body()
    assert b'filename="camera.jpg"' in body and b"Content-Type: image/jpeg" in body
    assert s.page.evaluate("window.vitposeLast.image_size") == size
    s.page.click("#camera-close")
    assert s.page.is_hidden("#camera-panel") and s.page.is_visible("#camera-button")


def test_no_camera_button_without_getusermedia(session):
    s = session(init_script="Object.defineProperty(navigator, 'mediaDevices', {value: undefined});")
    s.wait_state("idle")
    assert s.page.is_hidden("#camera-button")


def test_the_page_loads_only_the_services_own_urls_and_a_screenshot(session, photo, tmp_path):
    path, _ = photo
    s = session()
    s.upload(path)
    s.page.evaluate(SET_THRESHOLD, 0.5)
    with s.page.expect_download():
        s.page.click("#download-button")
    shot = tmp_path / "serve_page.png"
    s.page.screenshot(path=str(shot))
    with Image.open(shot) as image:
        assert image.size == (1200, 800)
    urls = [r.url for r in s.requests]
    assert {s.base + "/", s.base + "/static/app.js", s.base + "/static/style.css", s.base + "/v1/model"} <= set(urls)
    assert not s.foreign(), s.foreign()
