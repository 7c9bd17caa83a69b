"""`vitpose serve` over real sockets (127.0.0.1 only): a client that goes away frees its queued work, and SIGTERM
answers every accepted request before the command exits."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

from conftest import coco_images_and_boxes, make_hf_model, save_hf
from vitpose.inference.estimator import PoseEstimator

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

pytestmark = pytest.mark.slow


def wait_for(condition, timeout=20.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def multipart(image: bytes, **fields: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + image
        + b"\r\n"
    ]
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_pose(port: int, image: bytes, boxes, timeout=60.0, **fields):
    body, content_type = multipart(image, boxes=json.dumps(np.asarray(boxes).tolist()), **fields)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", "/v1/pose", body=body, headers={"Content-Type": content_type})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture(scope="module")
def photo(coco_dir):
    path, boxes = coco_images_and_boxes()[0]
    return path, path.read_bytes(), boxes[:1]


class Gate:
    """Wraps the batcher's model: each call says it started, then waits until the gate opens."""

    def __init__(self, batcher):
        self.model, self.entered, self.event = batcher.model, threading.Event(), threading.Event()
        batcher.model = self

    def __call__(self, pixel_values, **kwargs):
        self.entered.set()
        assert self.event.wait(20)
        return self.model(pixel_values, **kwargs)


def test_a_client_that_goes_away_frees_its_queued_work(checkpoint, photo):
    from vitpose.serve import create_app

    estimator = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image")
    app = create_app(estimator, model_name="tiny", max_wait_ms=0)
    batcher, metrics = app.state.batcher, app.state.metrics
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started)
        port = server.servers[0].sockets[0].getsockname()[1]
        gate = Gate(batcher)
        _, image, boxes = photo
        first: list = []
        asking = threading.Thread(target=lambda: first.append(post_pose(port, image, boxes)))
        asking.start()
        assert gate.entered.wait(20)  # the first request's crop holds the worker
        body, content_type = multipart(image, boxes=json.dumps(boxes.tolist()))
        gone = socket.create_connection(("127.0.0.1", port))
        head = f"POST /v1/pose HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        gone.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        wait_for(lambda: batcher.submitted == 2)  # its crop is queued behind the held one
        assert batcher.pending == 2
        gone.close()  # the client goes away
        wait_for(lambda: metrics.cancelled._value.get() == 1)
        assert batcher.pending == 1 and batcher.dropped == 1 and batcher.queued == 0
        gate.event.set()
        asking.join(30)
        status, answer = first[0]
        assert status == 200 and len(answer["people"]) == 1
        assert batcher.crops == 1  # the crop of the request whose client went away never ran
        assert batcher.model_calls == 1
    finally:
        server.should_exit = True
        thread.join(30)
    assert not batcher._thread.is_alive()  # the lifespan's end closed the worker


def test_sigterm_answers_every_accepted_request_then_exits(checkpoint, photo, tmp_path):
    with socket.socket() as probe:  # a free port on the loopback interface
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "vitpose", "serve", "--model", str(checkpoint), "--device", "cpu"]
    command += ["--detector", "full-image", "--port", str(port), "--max-batch", "1", "--max-wait-ms", "0"]
    log = open(tmp_path / "serve.log", "w+")  # read back after the process ends
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:

        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/readyz")
                return conn.getresponse().status == 200
            except OSError:
                return False

        wait_for(ready, timeout=60)
        _, image, boxes = photo
        many = np.repeat(boxes, 10, axis=0)  # 10 crops each, one crop per network call: the requests take a while
        answers: list = []
        clients = [
            threading.Thread(target=lambda: answers.append((*post_pose(port, image, many), time.monotonic())))
            for _ in range(4)
        ]
        for client in clients:
            client.start()

        def depth() -> float:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            return float(next(line.split()[1] for line in text.splitlines() if line.startswith("vitpose_queue_depth")))

        wait_for(lambda: depth() == 4)  # all four accepted and in progress
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return False
            except OSError:
                return True

        wait_for(refused)  # no new connections once the signal is taken
        for client in clients:
            client.join(60)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log.seek(0)
    text = log.read()
    log.close()
    assert [status for status, _, _ in answers] == [200] * 4, text
    assert all(len(answer["people"]) == 10 for _, answer, _ in answers)
    assert all(done > signalled for _, _, done in answers)  # answered during the drain, after the signal
    assert "Shutting down" in text
