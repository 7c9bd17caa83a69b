"""Write docs/serve_page.png: the page of `vitpose serve` with one real photo drawn (the README shows it).

    python scripts/serve_page_screenshot.py [OUT.png]

The service runs in-process on 127.0.0.1 on a tiny random model with heads for three data sets (COCO, AI Challenger,
MPII, as tests/test_serve_page.py builds it, so the page shows its data-set picker; the keypoints are meaningless) and
the full-image "detector". Debian's chromium, driven by Playwright, uploads a shared COCO photo through the file
input; the page is captured 1000 px wide and saved with a 256-colour palette (small enough for the README). Nothing
leaves the machine.
"""

from __future__ import annotations

import io
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "coco" / "000000000785.jpg"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(out: Path) -> int:
    import torch
    import uvicorn
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from vitpose import VitPoseConfig, VitPoseForPoseEstimation
    from vitpose.inference.estimator import PoseEstimator
    from vitpose.serve import create_app

    torch.manual_seed(0)
    config = VitPoseConfig.from_preset("tiny", num_hidden_layers=1, associate_num_labels=[14, 16])
    estimator = PoseEstimator(VitPoseForPoseEstimation(config).eval(), detector="full-image", batch_size=4)
    app = create_app(estimator, model_name="tiny-random")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > end or not thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1000, "height": 700}, color_scheme="light")
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("window.vitposeModel !== undefined")
            page.set_input_files("#file-input", str(PHOTO))
            page.wait_for_function("document.body.dataset.state === 'drawn'", timeout=30000)
            # Hover the drawn keypoint nearest the middle of the photo, so the tooltip shows in the picture.
            box = page.locator("#canvas").bounding_box()
            answer = page.evaluate("window.vitposeLast")
            width, height = answer["image_size"]
            person = answer["people"][0]
            drawn = [p for p, s in zip(person["keypoints"], person["keypoint_scores"], strict=True) if s > 0.3]
            x, y = min(drawn, key=lambda p: (p[0] - width / 2) ** 2 + (p[1] - height / 2) ** 2)
            scale = box["width"] / width
            page.mouse.move(box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale)
            page.wait_for_selector("#tooltip:not([hidden])")
            shot = page.screenshot()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.batcher.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(io.BytesIO(shot)) as image:
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "serve_page.png"))
