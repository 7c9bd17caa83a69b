"""`vitpose serve --engine ray`: the service on Ray Serve replicas (a local Ray on 127.0.0.1), each with its own
model and micro-batcher: the same keypoints as the local estimator, both replicas serving, the API key, health and
metrics, every Ray socket on loopback, and SIGTERM -> exit 0 with no Ray process left. Also the option errors."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import numpy as np
import pytest

from conftest import coco_images_and_boxes, make_hf_model, save_hf
from vitpose.cli import main
from vitpose.inference.estimator import PoseEstimator

# Ray's settings for a local Ray, read when ray is imported (here and in the service's process): no usage report,
# no auth token file, the cluster on the loopback interface only.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
os.environ.update(RAY_ENV)

pytest.importorskip("fastapi")

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}
KEY = "replica-test-key"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port, method, path, body=None, headers=None, timeout=60.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def post_pose(port, image, boxes=None, key=KEY):
    headers = {"Content-Type": "image/jpeg"}
    if key is not None:
        headers["X-API-Key"] = key
    path = (
        "/v1/pose" if boxes is None else "/v1/pose?boxes=" + urllib.parse.quote(json.dumps(np.asarray(boxes).tolist()))
    )
    status, headers, body = request(port, "POST", path, image, headers)
    return status, headers.get("x-replica"), json.loads(body)


def post_pose_sent(port, image, boxes, sent: threading.Event):
    """`post_pose` that sets `sent` once the whole request is written (before its answer is read)."""
    path = "/v1/pose?boxes=" + urllib.parse.quote(json.dumps(np.asarray(boxes).tolist()))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", path, body=image, headers={"Content-Type": "image/jpeg", "X-API-Key": KEY})
        sent.set()
        response = conn.getresponse()
        return response.status, response.getheader("x-replica"), json.loads(response.read())
    finally:
        conn.close()


def ask(port, image, answers):
    answers.append(post_pose(port, image))


def assert_same(answer, expected):
    assert len(answer["people"]) == len(expected)
    got = np.array([p["keypoints"] for p in answer["people"]]).reshape(-1, expected.num_keypoints, 2)
    np.testing.assert_allclose(got, expected.keypoints, atol=1e-5, rtol=0)
    scores = np.array([p["keypoint_scores"] for p in answer["people"]]).reshape(expected.keypoint_scores.shape)
    np.testing.assert_allclose(scores, expected.keypoint_scores, atol=1e-5, rtol=0)


def pose_requests_answered(metrics_text: str) -> float:
    """vitpose_requests_total of POST /v1/pose answered 200, in one replica's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "vitpose_requests_total" and labels.get("path") == "/v1/pose":
                total += sample.value if labels.get("status") == "200" else 0
    return total


def descendants(psutil, pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(psutil, process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_engine_options_need_engine_ray(capsys):
    assert main(["serve", "--model", "never-loaded", "--replicas", "2", "--num-cpus", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "vitpose serve: error: --replicas, --num-cpus need --engine ray (with --engine local the service runs in "
        "this process)"
    )
    assert main(["serve", "--model", "never-loaded", "--address", "auto"]) == 2
    assert "--address needs --engine ray" in capsys.readouterr().err


def test_engine_ray_without_ray_is_one_line(monkeypatch, capsys):
    for name in ("ray", "ray.data", "ray.serve"):
        monkeypatch.setitem(sys.modules, name, None)  # `import ray` raises ImportError
    assert main(["serve", "--engine", "ray", "--model", "never-loaded"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['vitpose serve: error: the Ray engine needs Ray Data: pip install "vitpose[ray]"']


@pytest.mark.slow
def test_replicas_serve_the_local_keypoints_and_stop_on_sigterm(coco_dir, tmp_path):
    pytest.importorskip("ray.serve")
    psutil = pytest.importorskip("psutil")
    checkpoint = save_hf(make_hf_model(), tmp_path / "model")
    port = free_port()
    command = [sys.executable, "-m", "vitpose", "serve", "--engine", "ray", "--replicas", "2", "--num-cpus", "0.5"]
    command += ["--model", str(checkpoint), "--detector", "full-image", "--host", "127.0.0.1", "--port", str(port)]
    log_path = tmp_path / "serve.log"
    log = open(log_path, "w")
    env = {**os.environ, **RAY_ENV, "PYTHONUNBUFFERED": "1", "VITPOSE_API_KEY": KEY}  # the key from the environment
    # Its own session: Ray's processes (and the ones they start) can be found and ended even if the test fails.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    seen = []  # every Ray process of the service, for the cleanup
    try:
        end = time.monotonic() + 120
        while "replicas on Ray Serve at" not in log_path.read_text():  # written once both replicas are running
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < end, log_path.read_text()
            time.sleep(0.1)
        seen = descendants(psutil, process.pid)
        assert sum("ServeReplica" in p.name() for p in seen) == 2, [p.name() for p in seen]

        status, headers, body = request(port, "GET", "/readyz")
        assert status == 200 and json.loads(body)["ready"] is True and headers.get("x-replica")
        status, _, body = request(port, "GET", "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok"}
        status, headers, body = request(port, "GET", "/")
        assert status == 200 and headers["content-type"].startswith("text/html") and b"<html" in body.lower()

        path, boxes = coco_images_and_boxes()[0]
        image = path.read_bytes()
        assert post_pose(port, image, key=None)[0] == 401
        assert post_pose(port, image, key="wrong")[0] == 401
        local = PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image")
        status, _, answer = post_pose(port, image)  # no boxes: the replica's full-image detector
        assert status == 200, answer
        assert_same(answer, local.predict([path])[0])
        status, _, answer = post_pose(port, image, boxes[:3])
        assert status == 200, answer
        assert_same(answer, local.predict([path], boxes=[boxes[:3]])[0])
        posts = 2  # answered 200 so far

        replicas: set[str] = set()
        for _ in range(3):  # Serve picks the less loaded of two replicas: concurrent requests reach both
            answers: list = []
            clients = [threading.Thread(target=ask, args=(port, image, answers)) for _ in range(8)]
            for client in clients:
                client.start()
            for client in clients:
                client.join(60)
            assert [status for status, _, _ in answers] == [200] * 8
            posts += 8
            replicas |= {replica for _, replica, _ in answers}
            if len(replicas) == 2:
                break
        assert len(replicas) == 2, replicas

        # /metrics is each replica's own: between them they counted every pose request.
        counted: dict[str, float] = {}
        end = time.monotonic() + 20
        while len(counted) < 2 or sum(counted.values()) != posts:  # a request is counted once its last byte is sent
            assert time.monotonic() < end, (counted, posts)
            status, headers, body = request(port, "GET", "/metrics")
            assert status == 200
            counted[headers["x-replica"]] = pose_requests_answered(body.decode())
        assert set(counted) == replicas, counted

        addresses, listening = set(), set()
        for ray_process in descendants(psutil, process.pid):
            try:
                connections = ray_process.net_connections(kind="inet")
            except (psutil.AccessDenied, psutil.NoSuchProcess):
                continue
            addresses |= {c.laddr.ip for c in connections}
            listening |= {c.laddr for c in connections if c.status == psutil.CONN_LISTEN}
        assert ("127.0.0.1", port) in {(a.ip, a.port) for a in listening}
        assert addresses and addresses <= LOOPBACK, addresses

        # SIGTERM with requests in progress: they are answered, new ones get 503 meanwhile, then the command exits 0.
        many = np.repeat(boxes[:1], 400, axis=0)  # 400 crops: a request that takes seconds
        long_answers: list = []
        sent = [threading.Event(), threading.Event()]
        long_requests = [
            threading.Thread(target=lambda event=event: long_answers.append(post_pose_sent(port, image, many, event)))
            for event in sent
        ]
        for thread in long_requests:
            thread.start()
        # Sent in full, then a moment for the proxy to hand them to replicas. (Not watched through /metrics: the
        # proxy sends a scrape to the less loaded replica, so one replica holding both is never scraped.)
        assert all(event.wait(60) for event in sent)
        time.sleep(2.0)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        refused = None
        while refused is None and time.monotonic() < signalled + 20:
            try:
                status, headers, body = request(port, "GET", "/readyz")
                if status == 503:
                    refused = headers, json.loads(body), post_pose(port, image)
            except OSError:  # the proxy has closed: the drain is over
                break
            time.sleep(0.05)
        for thread in long_requests:
            thread.join(60)
        assert [status for status, _, _ in long_answers] == [200, 200]
        assert all(len(answer["people"]) == 400 for _, _, answer in long_answers)
        assert refused is not None, "no 503 while the replicas drained"
        headers, body, (status, _, answer) = refused
        assert headers["retry-after"] == "1" and "shutting down" in body["error"]
        assert status == 503 and "shutting down" in answer["error"]
        assert process.wait(45) == 0, log_path.read_text()
        stopped = time.monotonic() - signalled
        end = time.monotonic() + 15
        while any(alive(psutil, p) for p in seen):
            assert time.monotonic() < end, [p.name() for p in seen if alive(psutil, p)]
            time.sleep(0.2)
        assert not os.path.exists(f"/tmp/vitpose-ray-{process.pid}")
        assert stopped < 30
    finally:
        for leftover in [*seen, *descendants(psutil, process.pid)]:  # Ray's workers are in sessions of their own
            try:
                leftover.kill()
            except psutil.NoSuchProcess:
                pass
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(f"/tmp/vitpose-ray-{process.pid}", ignore_errors=True)  # the session's Ray files, if left
        log.close()
    text = log_path.read_text()
    assert "vitpose serve: 2 replicas on Ray Serve at" in text and "stopping" in text
    assert "warning" not in text, text
