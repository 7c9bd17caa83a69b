#!/usr/bin/env python
"""Load test and benchmark of `vitpose serve`: real server processes, real HTTP, a real photo, checked answers.

    python benchmarks/serve_load.py               # ViT-S (random weights), 3 repetitions (a few minutes)
    python benchmarks/serve_load.py --quick --out /tmp/serve_quick.md   # tiny model, few requests (< 60 s)
    python benchmarks/serve_load.py --repeats 0 --overload-s 300         # only the overload scenario, longer

The benchmark starts `python -m vitpose serve --model M --device cpu --detector full-image --host 127.0.0.1
--port P [...]` as subprocesses (each on a free port, 127.0.0.1 only), waits for /readyz, and stops them with
SIGTERM at the end (SIGKILL after 30 s). C client threads, each with its own keep-alive connection
(`http.client`), send one COCO photo with its one annotated person box (multipart `image` + form field `boxes`) to
POST /v1/pose, N requests in all or until a time limit, whichever comes first.

Servers: "batched" (the default options: --max-batch 16, --max-wait-ms 5, --queue-size 64), "max-batch 1" (the
same with --max-batch 1) and "overload" (--queue-size Q). They are all started at once at the beginning (start-up is
not measured) but only one is under load at any time; the others sit idle (a blocked worker thread, an idle event
loop).

Scenarios, per repetition (the order of each pair alternates between repetitions to cancel drift):
  - batched server, 1 client, and right next to it the in-process `PoseEstimator.predict([rgb], boxes=[[box]])`
    on the same checkpoint, decoded image and box, in this process while the servers are idle (Target B: the
    service's overhead, median service latency / median in-process call - 1), then the max-batch 1 server at 1
    client (no batching window: what the --max-wait-ms wait costs one client);
  - batched server, 4 clients;
  - batched server and max-batch 1 server, 16 clients each (Target A: the throughput ratio, micro-batching gain).
Then once: the overload server with 4 x Q clients firing without pause for a fixed time (Target C).

Every answer is checked after the timed window (so checking costs the clients nothing while they measure): a 200
must parse, hold one person with 17 keypoints whose box is the box sent and whose keypoints equal, within 1e-4 px,
the in-process result of the same crop in a network batch of some size 1..max-batch (the worker's batches mix
requests; float rounding of a different batch shape moves a random-weight model's keypoints by up to ~1e-2 px, so
the reference is the set of results of every batch size, computed in-process at the start); a non-200 must be a 503
with Retry-After and a JSON {"error": ...}; every request sent must get an answer (lost = sent - answered = 0).
The server's resident memory (VmRSS) is sampled every 50 ms while a scenario runs.

Timing: a throughput is answers / wall time of the scenario; a latency is the client's, from sending the request to
having read the whole answer. Ratios are per repetition, from the two measurements run back to back, and the
figure reported is the median over repetitions: this cancels most of the drift of a machine shared with others.
Weights are random (speed does not depend on their values) unless --model names a checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py
from machine import cpu_model, load_average, module_versions, quiet

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VITPOSE_TEST_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_IMAGE = DATA / "coco" / "000000000785.jpg"
TOLERANCE_PX = 1e-4
TARGETS = {"batching": 1.3, "overhead": 0.10, "memory": 0.05}
DEFAULT_MAX_BATCH = 16  # `vitpose serve`'s default --max-batch


# --------------------------------------------------------------------------------------------- settings
@dataclass
class Settings:
    requests: dict[int, int]  # clients -> requests per scenario
    time_limit_s: float  # wall-time limit of one scenario (it stops by itself at either bound)
    repeats: int
    inprocess_calls: int  # timed in-process calls per repetition (Target B)
    overload_s: float  # Target C: how long the clients fire
    queue_size: int  # Target C: the overload server's --queue-size
    warmup: int  # requests per client sent to each server before the first scenario (not counted)


FULL = Settings({1: 30, 4: 64, 16: 160}, 60.0, 3, 30, 30.0, 4, 3)
QUICK = Settings({1: 6, 4: 12, 16: 32}, 20.0, 2, 6, 3.0, 4, 1)


# --------------------------------------------------------------------------------------------- machine
def machine_description(threads: int | None) -> dict[str, str]:
    import torch

    info = {
        "CPU": cpu_model(),
        "logical cores": str(os.cpu_count()),
        "memory": _mem_total(),
        "torch threads": f"{torch.get_num_threads()} intra-op in this process; the servers: "
        + (f"OMP_NUM_THREADS={threads}" if threads else "torch's default too (nothing set)"),
        "python": platform.python_version(),
    }
    info.update(
        module_versions(
            ("torch", "transformers", "numpy", "PIL", "fastapi", "starlette", "uvicorn", "h11", "httptools")
        )
    )
    return info


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "n/a"


def rss_mb(pid: int) -> float | None:
    """Resident memory of process `pid` in MiB (VmRSS; psutil where /proc is not there), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except Exception:
        return None


# --------------------------------------------------------------------------------------------- model and inputs
def build_checkpoint(directory: Path, tiny: bool) -> tuple[Path, str]:
    """A random-init checkpoint in the hub format: ViT-S (hidden 384, 12 layers, 12 heads, MLP 1536, 256 x 192,
    simple decoder) or, for --quick, the tests' tiny model (hidden 96, 2 layers, 4 heads)."""
    import torch
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    if tiny:
        sizes = {"hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "part_features": 24}
        name = "tiny (hidden 96, 2 layers, random weights)"
    else:
        sizes = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 12, "part_features": 96}
        name = "ViT-S simple (hidden 384, 12 layers, 12 heads, MLP 1536, 256 x 192, random weights)"
    backbone = VitPoseBackboneConfig(
        **sizes, mlp_ratio=4, image_size=[256, 192], out_indices=[sizes["num_hidden_layers"]]
    )
    config = VitPoseConfig(backbone_config=backbone, num_labels=17, use_simple_decoder=True)
    torch.manual_seed(0)
    with quiet():
        VitPoseForPoseEstimation(config).eval().save_pretrained(directory)
    return directory, name


def image_box(image: Path, box: str | None) -> list[float]:
    """The person box of `image`: --box, else its first annotation in test_coco.json beside it."""
    if box:
        values = [float(v) for v in box.split(",")]
        if len(values) != 4:
            raise SystemExit(f"--box: expected x,y,w,h, got {box!r}")
        return values
    annotations = json.loads((image.parent / "test_coco.json").read_text())
    ids = [im["id"] for im in annotations["images"] if im["file_name"] == image.name]
    boxes = [a["bbox"] for a in annotations["annotations"] if ids and a["image_id"] == ids[0]]
    if not boxes:
        raise SystemExit(f"no annotated person box for {image.name} in {image.parent / 'test_coco.json'}; give --box")
    return [float(v) for v in boxes[0]]


def multipart(image: Path, box: list[float]) -> tuple[bytes, str]:
    """The request body (built once, sent as is by every client) and its Content-Type."""
    boundary = "vitpose-load-" + uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{image.name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="boxes"\r\n\r\n{json.dumps([box])}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    return head + image.read_bytes() + tail, f"multipart/form-data; boundary={boundary}"


@dataclass
class Reference:
    """The in-process results for the box: batch 1, and every distinct one of batches 1..max_batch."""

    keypoints: np.ndarray  # (17, 2), batch 1
    variants: list[np.ndarray]  # distinct (17, 2) results over batch sizes
    spread_px: float  # largest distance of a variant from the batch-1 result


def reference(estimator: Any, rgb: np.ndarray, box: list[float], max_batch: int) -> Reference:
    first = estimator.predict([rgb], boxes=[[box]])[0].keypoints[0]
    variants: dict[bytes, np.ndarray] = {first.tobytes(): first}
    for n in range(1, max_batch + 1):
        for keypoints in estimator.predict([rgb], boxes=[[box] * n])[0].keypoints:
            variants.setdefault(keypoints.tobytes(), keypoints)
    spread = max(float(np.abs(v - first).max()) for v in variants.values())
    return Reference(first, list(variants.values()), spread)


# --------------------------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(port: int, path: str, timeout: float = 5.0) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if body else None
    finally:
        conn.close()


ABORT = threading.Event()  # set when the benchmark is stopped: the clients send no more


METRICS = ("vitpose_batch_size_count", "vitpose_batch_size_sum", "vitpose_batch_seconds_sum")


def scrape(port: int) -> dict[str, float] | None:
    """The worker's counters from GET /metrics (network calls, crops, network seconds); None without /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10.0)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        if resp.status != 200:
            return None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in METRICS:
            with contextlib.suppress(ValueError):
                found[name] = float(value)
    return found if len(found) == len(METRICS) else None


def batching(before: dict[str, float] | None, after: dict[str, float] | None, wall_s: float) -> dict[str, float] | None:
    """What the worker did between two scrapes: network calls, crops, mean crops per call, share of the wall time
    spent in the network."""
    if before is None or after is None:
        return None
    calls = after["vitpose_batch_size_count"] - before["vitpose_batch_size_count"]
    crops = after["vitpose_batch_size_sum"] - before["vitpose_batch_size_sum"]
    seconds = after["vitpose_batch_seconds_sum"] - before["vitpose_batch_seconds_sum"]
    return {
        "calls": calls,
        "crops": crops,
        "mean_batch": crops / calls if calls else 0.0,
        "network_s": seconds,
        "network_share": seconds / wall_s if wall_s > 0 else 0.0,
        "network_ms_per_crop": 1e3 * seconds / crops if crops else 0.0,
    }


class Server:
    """`python -m vitpose serve` in a subprocess on 127.0.0.1 (its output in a log file)."""

    def __init__(self, name: str, model: Path, options: list[str], workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.options = options
        self.model = model
        self.log_path = workdir / f"server-{name.replace(' ', '_')}.log"
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.exit_code: int | None = None
        self.stop_s: float | None = None
        self.killed = False

    @property
    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "vitpose", "serve", "--model", str(self.model), "--device", "cpu",
            "--detector", "full-image", "--host", "127.0.0.1", "--port", str(self.port), *self.options,
        ]  # fmt: skip

    def shown(self) -> str:
        return " ".join(["vitpose serve --model M --device cpu --detector full-image", *self.options])

    def start(self) -> None:
        self.port = free_port()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env
        )
        log.close()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"server {self.name!r} exited before it was ready:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                if get_json(self.port, "/readyz", timeout=2.0)[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server {self.name!r} not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def rss(self) -> float | None:
        return None if self.proc is None else rss_mb(self.proc.pid)

    def stop(self, grace_s: float = 30.0) -> None:
        if self.proc is None or self.exit_code is not None:
            return
        start = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        self.stop_s = time.perf_counter() - start

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_count(self, text: str) -> int:
        try:
            return self.log_path.read_text(errors="replace").count(text)
        except OSError:
            return 0


# --------------------------------------------------------------------------------------------- load
@dataclass
class Answer:
    status: int | None  # None: no answer (connection error, time-out): lost
    latency_s: float
    body: bytes = b""
    retry_after: str | None = None
    content_type: str = ""
    error: str = ""


@dataclass
class Load:
    """What one scenario's clients sent and got, before checking."""

    clients: int
    answers: list[Answer]
    sent: int
    wall_s: float
    stopped_by: str  # "requests" or "time limit"
    rss: list[float] = field(default_factory=list)
    rss_start: float | None = None
    rss_end: float | None = None
    batches: dict[str, float] | None = None


class _Client:
    """One keep-alive connection to the server (reopened after a failure)."""

    def __init__(self, port: int, body: bytes, content_type: str, timeout_s: float) -> None:
        self.port = port
        self.body = body
        self.headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def send(self) -> Answer:
        start = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = self._connect()
            self.conn.request("POST", "/v1/pose", body=self.body, headers=self.headers)
            resp = self.conn.getresponse()
            data = resp.read()
            latency = time.perf_counter() - start
            if resp.will_close:
                self.close()
            return Answer(resp.status, latency, data, resp.getheader("Retry-After"), resp.getheader("Content-Type", ""))
        except (OSError, http.client.HTTPException) as err:
            self.close()
            return Answer(None, time.perf_counter() - start, error=f"{type(err).__name__}: {err}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_load(
    server: Server,
    body: bytes,
    content_type: str,
    clients: int,
    requests: int | None,
    time_limit_s: float,
    warm: int = 1,
) -> Load:
    """`clients` threads send until `requests` are sent in all or `time_limit_s` is over; the server's RSS sampled."""
    lock = threading.Lock()
    answers: list[Answer] = []
    state: dict[str, Any] = {"sent": 0, "start": 0.0, "deadline": 0.0, "stopped_by": "requests", "rss": None}
    state["metrics"] = None

    def release() -> None:  # runs once all are at the barrier (warm-up done), before any goes on
        state["metrics"] = scrape(server.port)
        state["rss"] = server.rss()
        state["start"] = time.perf_counter()
        state["deadline"] = state["start"] + time_limit_s

    barrier = threading.Barrier(clients + 1, action=release)
    failures: list[BaseException] = []

    def ticket() -> bool:
        with lock:
            if ABORT.is_set():
                return False
            if requests is not None and state["sent"] >= requests:
                return False
            if time.perf_counter() >= state["deadline"]:
                state["stopped_by"] = "time limit"
                return False
            state["sent"] += 1
            return True

    def client() -> None:
        c = _Client(server.port, body, content_type, timeout_s=max(60.0, time_limit_s))
        try:
            for _ in range(warm):  # not counted: wakes the server's threads
                c.send()
            # A fresh connection for the timed requests: this one may have sat idle at the barrier past the server's
            # keep-alive time-out (uvicorn: 5 s), and a request on a connection the server has just closed fails
            # without ever reaching it (a load-test artefact, not a lost request).
            c.close()
            barrier.wait()
            mine = []
            while ticket():
                mine.append(c.send())
            with lock:
                answers.extend(mine)
        except BaseException as err:  # a bug in the load test itself: reported, never hidden
            failures.append(err)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.abort()
        finally:
            c.close()

    threads = [threading.Thread(target=client, name=f"load-client-{i}", daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    samples: list[float] = []
    running = threading.Event()

    def sample() -> None:
        while running.is_set():
            value = server.rss()
            if value is not None:
                samples.append(value)
            time.sleep(0.05)

    barrier_ok = True
    try:
        barrier.wait(timeout=max(120.0, time_limit_s))
    except threading.BrokenBarrierError:
        barrier_ok = False
    running.set()
    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - state["start"]
    running.clear()
    sampler.join()
    if failures or not barrier_ok:
        raise RuntimeError(f"the load clients failed: {failures[:3]!r}")
    load = Load(clients, answers, state["sent"], wall, state["stopped_by"], samples, state["rss"], server.rss())
    load.batches = batching(state["metrics"], scrape(server.port), wall)
    return load


# --------------------------------------------------------------------------------------------- checking
@dataclass
class Checked:
    """One scenario's figures, after checking every answer."""

    name: str
    server: str
    clients: int
    repetition: int
    sent: int
    ok: int
    refused: int
    wrong: int
    lost: int
    statuses: dict[str, int]
    problems: dict[str, int]  # why answers were wrong (or lost), with counts
    wall_s: float
    stopped_by: str
    rps: float
    answered_rps: float
    latencies_ms: list[float]  # of the 200 answers
    refused_latencies_ms: list[float]
    timings: dict[str, list[float]]  # the server's own read_ms, pose_ms, total_ms of the 200 answers
    net_ms: list[float]  # per 200 answer: client latency - the server's total_ms (HTTP, multipart, JSON, hops)
    max_dev_px: float  # largest keypoint distance of a 200 answer from the batch-1 reference
    rss_start: float | None
    rss_max: float | None
    rss_end: float | None
    rss_samples: int
    rss_halves: tuple[float | None, float | None]  # largest sample of the first and of the second half of the run
    batches: dict[str, float] | None = None  # from /metrics before and after (None: the server has no /metrics)
    rss_tenths: list[float] = field(default_factory=list)  # largest sample of each tenth of the run

    @property
    def nothing_lost(self) -> bool:
        return self.lost == 0 and self.wrong == 0 and self.sent == self.ok + self.refused

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else None

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("latencies_ms", "refused_latencies_ms", "net_ms")}
        out["timings"] = {k: _round(v) for k, v in self.timings.items()}
        out["latencies_ms"] = _round(self.latencies_ms)
        out["refused_latencies_ms"] = _round(self.refused_latencies_ms)
        out["net_ms"] = _round(self.net_ms)
        out.update(
            nothing_lost=self.nothing_lost,
            p50_ms=self.percentile(50),
            p95_ms=self.percentile(95),
            p99_ms=self.percentile(99),
        )
        return out


def _round(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


def check(load: Load, ref: Reference, box: list[float], name: str, server: str, repetition: int) -> Checked:
    statuses: dict[str, int] = {}
    problems: dict[str, int] = {}
    ok = refused = wrong = lost = 0
    latencies, refused_latencies, net = [], [], []
    timings: dict[str, list[float]] = {"read_ms": [], "pose_ms": [], "total_ms": []}
    max_dev = 0.0

    def problem(why: str) -> None:
        problems[why] = problems.get(why, 0) + 1

    for a in load.answers:
        key = "no answer" if a.status is None else str(a.status)
        statuses[key] = statuses.get(key, 0) + 1
        if a.status is None:
            lost += 1
            problem(a.error.split(":")[0] or "no answer")
        elif a.status == 200:
            why, dev, answer = _check_pose(a.body, ref, box)
            if why:
                wrong += 1
                problem(why)
                continue
            ok += 1
            max_dev = max(max_dev, dev)
            latencies.append(a.latency_s * 1e3)
            t = answer["timings"]
            for k in timings:
                timings[k].append(float(t[k]))
            net.append(a.latency_s * 1e3 - float(t["total_ms"]))
        elif a.status == 503:
            why = _check_refusal(a)
            if why:
                wrong += 1
                problem(why)
                continue
            refused += 1
            refused_latencies.append(a.latency_s * 1e3)
        else:
            wrong += 1
            problem(f"status {a.status}: {a.body[:200].decode(errors='replace')}")
    lost += load.sent - len(load.answers)  # sent, no answer recorded at all (none expected)
    rss = [v for v in (load.rss_start, *load.rss, load.rss_end) if v is not None]
    return Checked(
        name=name,
        server=server,
        clients=load.clients,
        repetition=repetition,
        sent=load.sent,
        ok=ok,
        refused=refused,
        wrong=wrong,
        lost=lost,
        statuses=statuses,
        problems=problems,
        wall_s=load.wall_s,
        stopped_by=load.stopped_by,
        rps=ok / load.wall_s if load.wall_s > 0 else 0.0,
        answered_rps=(ok + refused) / load.wall_s if load.wall_s > 0 else 0.0,
        latencies_ms=latencies,
        refused_latencies_ms=refused_latencies,
        timings=timings,
        net_ms=net,
        max_dev_px=max_dev,
        rss_start=load.rss_start,
        rss_max=max(rss) if rss else None,
        rss_end=load.rss_end,
        rss_samples=len(load.rss),
        batches=load.batches,
        rss_tenths=[float(max(part)) for part in np.array_split(np.asarray(load.rss), 10) if len(part)],
        rss_halves=(
            max(load.rss[: len(load.rss) // 2], default=None),
            max(load.rss[len(load.rss) // 2 :], default=None),
        ),
    )


def _check_pose(body: bytes, ref: Reference, box: list[float]) -> tuple[str, float, Any]:
    """('' if right else why, distance from the batch-1 reference in px, the parsed answer)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return "200 not JSON", 0.0, None
    try:
        people = answer["people"]
        if not isinstance(people, list) or len(people) != 1:
            return f"200 with {len(people) if isinstance(people, list) else people!r} people, expected 1", 0.0, answer
        person = people[0]
        keypoints = np.asarray(person["keypoints"], dtype=np.float64)
        scores = np.asarray(person["keypoint_scores"], dtype=np.float64)
        if keypoints.shape != (17, 2) or scores.shape != (17,):
            return f"200 with keypoints {keypoints.shape}, scores {scores.shape}", 0.0, answer
        if not np.isfinite(keypoints).all() or not np.isfinite(scores).all():
            return "200 with non-finite keypoints or scores", 0.0, answer
        if np.abs(np.asarray(person["bbox"], dtype=np.float64) - box).max() > 1e-3:
            return "200 with another box than the one sent", 0.0, answer
        if not all(isinstance(answer["timings"][k], int | float) for k in ("read_ms", "pose_ms", "total_ms")):
            return "200 without its timings", 0.0, answer
    except (KeyError, TypeError, ValueError, IndexError) as err:
        return f"200 not the pose schema ({type(err).__name__}: {err})", 0.0, answer
    nearest = min(float(np.abs(keypoints - v).max()) for v in ref.variants)
    if nearest > TOLERANCE_PX:
        return f"keypoints off the in-process result by {nearest:.2g} px", nearest, answer
    return "", float(np.abs(keypoints - ref.keypoints).max()), answer


def _check_refusal(a: Answer) -> str:
    if not a.retry_after:
        return "503 without Retry-After"
    try:
        body = json.loads(a.body)
    except ValueError:
        return "503 not JSON"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"]:
        return "503 without an error message"
    return ""


# --------------------------------------------------------------------------------------------- in-process
def time_inprocess(estimator: Any, rgb: np.ndarray, box: list[float], calls: int) -> list[float]:
    """Milliseconds of `estimator.predict([rgb], boxes=[[box]])`, one warm-up call first."""
    estimator.predict([rgb], boxes=[[box]])
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        estimator.predict([rgb], boxes=[[box]])
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def time_decode(image: Path, calls: int) -> list[float]:
    """Milliseconds of `vitpose.media.load_image(path)`: what the server's read does, minus its temporary file."""
    from vitpose.media import load_image

    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        load_image(image)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


# --------------------------------------------------------------------------------------------- report
def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def _f(value: float | None, fmt: str = ".1f") -> str:
    return "n/a" if value is None or value != value else format(value, fmt)


def _mb(c: list[Checked]) -> str:
    starts = [s.rss_start for s in c if s.rss_start is not None]
    maxes = [s.rss_max for s in c if s.rss_max is not None]
    ends = [s.rss_end for s in c if s.rss_end is not None]
    if not starts:
        return "n/a"
    return f"{starts[0]:.0f} / {max(maxes):.0f} / {ends[-1]:.0f}"


def pooled(group: list[Checked]) -> dict[str, Any]:
    """One row's figures over the repetitions: counts summed, rates the median of the repetitions, latency
    percentiles over every 200 answer of every repetition."""
    lat = [v for c in group for v in c.latencies_ms]
    statuses: dict[str, int] = {}
    for c in group:
        for k, v in c.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    return {
        "sent": sum(c.sent for c in group),
        "ok": sum(c.ok for c in group),
        "refused": sum(c.refused for c in group),
        "wrong": sum(c.wrong for c in group),
        "lost": sum(c.lost for c in group),
        "statuses": statuses,
        "rps": median([c.rps for c in group]),
        "answered_rps": median([c.answered_rps for c in group]),
        "p50": float(np.percentile(lat, 50)) if lat else None,
        "p95": float(np.percentile(lat, 95)) if lat else None,
        "p99": float(np.percentile(lat, 99)) if lat else None,
        "nothing_lost": all(c.nothing_lost for c in group),
        "max_dev_px": max(c.max_dev_px for c in group),
        "stopped_by": sorted({c.stopped_by for c in group}),
        "http_ms": median([v for c in group for v in c.net_ms]),
        "mean_batch": _sum_ratio(group, "crops", "calls"),
        "network_share": median([c.batches["network_share"] for c in group if c.batches]) if group[0].batches else None,
        "network_ms_per_crop": 1e3 * _sum_ratio(group, "network_s", "crops") if group[0].batches else None,
    }


def _sum_ratio(group: list[Checked], num: str, den: str) -> float | None:
    if not all(c.batches for c in group):
        return None
    total = sum(c.batches[den] for c in group)  # type: ignore[index]
    return sum(c.batches[num] for c in group) / total if total else None  # type: ignore[index]


def scenario_rows(groups: dict[str, list[Checked]], servers: dict[str, Server]) -> list[list[str]]:
    rows = []
    for name, group in groups.items():
        p = pooled(group)
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(p["statuses"].items()))
        options = " ".join(servers[group[0].server].options) or "(defaults)"
        rows.append([
            name, f"`{options}`",
            str(group[0].clients), str(len(group)), str(p["sent"]), statuses, str(p["lost"]), str(p["wrong"]),
            "yes" if p["nothing_lost"] else "**no**", _f(p["rps"], ".2f"), _f(p["p50"]), _f(p["p95"]), _f(p["p99"]),
            _f(p["http_ms"]), _f(p["mean_batch"]), _f(p["network_ms_per_crop"]),
            _f(None if p["network_share"] is None else 100 * p["network_share"], ".0f"), _mb(group),
        ])  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, few requests: keeps the script working")
    parser.add_argument("--model", help="checkpoint to serve (default: a random-init ViT-S built here)")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE), help="the photo every request sends")
    parser.add_argument("--box", help="x,y,w,h person box (default: the image's annotation in test_coco.json)")
    parser.add_argument("--repeats", type=int, help="repetitions of the interleaved scenarios")
    parser.add_argument("--overload-s", type=float, help="seconds the overload clients fire")
    parser.add_argument("--queue-size", type=int, help="--queue-size of the overload server")
    parser.add_argument("--time-limit-s", type=float, help="wall-time limit of one scenario")
    parser.add_argument(
        "--threads", type=int, help="torch threads here and OMP_NUM_THREADS of the servers (default: torch's own; "
        "--quick: 1, which keeps a busy shared machine from stalling tiny models on OpenMP barriers)"
    )  # fmt: skip
    parser.add_argument("--out", help="the markdown report (default benchmarks/SERVE_RESULTS.md; --quick: a temp file)")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--logs", help="copy the servers' logs (uvicorn's access log, warnings) into this folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    overrides = {
        "repeats": args.repeats,
        "overload_s": args.overload_s,
        "queue_size": args.queue_size,
        "time_limit_s": args.time_limit_s,
    }
    settings = Settings(**{**settings.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    threads = args.threads or (1 if args.quick else None)
    command = "python benchmarks/serve_load.py " + " ".join(argv if argv is not None else sys.argv[1:])
    image = Path(args.image)
    if not image.is_file():
        raise SystemExit(f"no image {image} (the shared COCO data; give --image)")
    box = image_box(image, args.box)
    body, content_type = multipart(image, box)

    # A SIGTERM to the benchmark stops its servers too (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    import torch

    if threads:
        torch.set_num_threads(threads)
    machine = machine_description(threads)
    load_start = load_average()
    started = time.perf_counter()
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.setdefault("PYTHONUNBUFFERED", "1")

    with tempfile.TemporaryDirectory(prefix="vitpose_serve_load_") as tmp:
        workdir = Path(tmp)
        if args.model:
            model, model_name = Path(args.model), f"checkpoint {args.model}"
        else:
            model, model_name = build_checkpoint(workdir / "model", tiny=args.quick)
        q = settings.queue_size
        servers = {
            "batched": Server("batched", model, [], workdir, env),
            "max-batch 1": Server("max-batch 1", model, ["--max-batch", "1"], workdir, env),
            "overload": Server("overload", model, ["--queue-size", str(q)], workdir, env),
        }
        try:
            for s in servers.values():
                s.start()
            print(f"servers starting: {', '.join(f'{n} on port {s.port}' for n, s in servers.items())}", flush=True)
            from vitpose import PoseEstimator
            from vitpose.media import load_image

            with quiet():
                estimator = PoseEstimator.from_pretrained(model, device="cpu", detector="full-image")
            rgb = load_image(image)[0]
            ref = reference(estimator, rgb, box, DEFAULT_MAX_BATCH)
            print(f"reference: {len(ref.variants)} distinct in-process results over batches 1..{DEFAULT_MAX_BATCH},"
                  f" spread {ref.spread_px:.2g} px", flush=True)  # fmt: skip
            for s in servers.values():
                s.wait_ready(timeout_s=300.0)
            print(f"servers ready after {time.perf_counter() - started:.1f} s", flush=True)
            results = measure(servers, settings, body, content_type, ref, box, estimator, rgb, image)
        finally:
            ABORT.set()
            for s in servers.values():
                s.stop()
        stops = {n: {"exit_code": s.exit_code, "stop_s": s.stop_s, "killed": s.killed} for n, s in servers.items()}
        warnings_logged = {n: s.log_count("warning:") for n, s in servers.items()}
        if args.logs:
            Path(args.logs).mkdir(parents=True, exist_ok=True)
            for s in servers.values():
                shutil.copy(s.log_path, Path(args.logs, s.log_path.name))

    machine["load average (start -> end)"] = f"{load_start} -> {load_average()}"
    machine["run time"] = f"{time.perf_counter() - started:.0f} s"
    report, raw = build_report(
        command.strip(), machine, model_name, image, box, settings, servers, ref, results, stops, warnings_logged
    )
    out = args.out or (str(Path(tempfile.gettempdir(), "vitpose_serve_quick.md")) if args.quick else None)
    out = out or str(ROOT / "benchmarks" / "SERVE_RESULTS.md")
    Path(out).write_text(report)
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1) + "\n")
    print(report)
    print(f"written to {out}" + (f" and {args.json}" if args.json else ""))
    return 0


@dataclass
class Results:
    checked: list[Checked]
    inprocess_ms: list[list[float]]  # per repetition
    decode_ms: list[float]
    ratios_batching: list[float]
    ratios_overhead: list[float]
    ratios_overhead_nowait: list[float]
    after_overload: dict[str, Any]


def measure(
    servers: dict[str, Server],
    settings: Settings,
    body: bytes,
    content_type: str,
    ref: Reference,
    box: list[float],
    estimator: Any,
    rgb: np.ndarray,
    image: Path,
) -> Results:
    limit = settings.time_limit_s
    batched, single, overload = servers["batched"], servers["max-batch 1"], servers["overload"]
    for s in (batched, single) if settings.repeats else ():  # warm-up: the batch sizes to come, threads awake
        run_load(s, body, content_type, 16, 16 * settings.warmup, limit, warm=0)
        run_load(s, body, content_type, 1, settings.warmup, limit, warm=0)

    checked: list[Checked] = []
    inprocess: list[list[float]] = []
    ratios_a, ratios_b, ratios_b0 = [], [], []

    def scenario(name: str, server: Server, clients: int, rep: int) -> Checked:
        load = run_load(server, body, content_type, clients, settings.requests[clients], limit)
        c = check(load, ref, box, name, server.name, rep)
        checked.append(c)
        print(f"  rep {rep}: {name}: {c.ok}/{c.sent} ok, {c.refused} refused, {c.lost} lost, {c.wrong} wrong, "
              f"{c.rps:.2f} req/s, p50 {_f(c.percentile(50))} ms", flush=True)  # fmt: skip
        return c

    for rep in range(settings.repeats):
        flip = rep % 2 == 1
        # Target B: service at one client next to the in-process call (servers idle meanwhile).
        if flip:
            inproc = time_inprocess(estimator, rgb, box, settings.inprocess_calls)
            one = scenario("1 client", batched, 1, rep)
        else:
            one = scenario("1 client", batched, 1, rep)
            inproc = time_inprocess(estimator, rgb, box, settings.inprocess_calls)
        one_nowait = scenario("1 client, max-batch 1", single, 1, rep)
        inprocess.append(inproc)
        print(f"  rep {rep}: in-process predict: median {median(inproc):.1f} ms", flush=True)
        if one.latencies_ms:
            ratios_b.append(median(one.latencies_ms) / median(inproc))
        if one_nowait.latencies_ms:
            ratios_b0.append(median(one_nowait.latencies_ms) / median(inproc))
        scenario("4 clients", batched, 4, rep)
        # Target A: micro-batching vs max-batch 1 at 16 clients, back to back.
        pair = [("16 clients", batched), ("16 clients, max-batch 1", single)]
        got = {name: scenario(name, server, 16, rep) for name, server in (pair[::-1] if flip else pair)}
        if got["16 clients, max-batch 1"].rps > 0:
            ratios_a.append(got["16 clients"].rps / got["16 clients, max-batch 1"].rps)

    # Target C: 4 x queue-size clients without pause for a fixed time; a short burst first (not counted) so that
    # the start figure of the memory is the server's working size, not its idle size before any batch.
    q = settings.queue_size
    run_load(overload, body, content_type, 4 * q, None, max(1.0, settings.overload_s / 5), warm=1)
    load = run_load(overload, body, content_type, 4 * q, None, settings.overload_s, warm=0)
    c = check(load, ref, box, f"overload: {4 * q} clients, queue {q}", overload.name, 0)
    checked.append(c)
    print(f"  overload: {c.ok} ok, {c.refused} refused, {c.lost} lost, {c.wrong} wrong, RSS "
          f"{_f(c.rss_start, '.0f')} / {_f(c.rss_max, '.0f')} / {_f(c.rss_end, '.0f')} MiB", flush=True)  # fmt: skip
    time.sleep(0.5)
    try:
        status, ready = get_json(overload.port, "/readyz")
        after = {"readyz_status": status, "readyz": ready, "rss_idle_mb": overload.rss()}
    except (OSError, http.client.HTTPException, ValueError) as err:
        after = {"readyz_status": None, "error": repr(err), "rss_idle_mb": overload.rss()}
    decode = time_decode(image, max(10, settings.inprocess_calls))
    return Results(checked, inprocess, decode, ratios_a, ratios_b, ratios_b0, after)


def _ratios(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def target_a(groups: dict[str, list[Checked]], r: Results) -> list[str]:
    ratio = median(r.ratios_batching) if r.ratios_batching else None
    pool_b, pool_1 = pooled(groups["16 clients"]), pooled(groups["16 clients, max-batch 1"])
    per_crop = ""
    if pool_b["network_ms_per_crop"] and pool_1["network_ms_per_crop"]:
        per_crop = (
            f"; {_f(pool_b['mean_batch'])} crops per network call; network {pool_b['network_ms_per_crop']:.1f} vs "
            f"{pool_1['network_ms_per_crop']:.1f} ms per crop; worker in the network "
            f"{100 * pool_b['network_share']:.0f}% vs {100 * pool_1['network_share']:.0f}% of the time"
        )
    return [
        "A: micro-batching throughput, 16 clients (max-batch 16 / max-batch 1)", f">= {TARGETS['batching']}x",
        _f(ratio, ".2f") + "x", _met(ratio is not None and ratio >= TARGETS["batching"]),
        f"{pool_b['rps']:.2f} vs {pool_1['rps']:.2f} req/s (medians); per repetition {_ratios(r.ratios_batching)}"
        f"{per_crop}",
    ]  # fmt: skip


def target_b(groups: dict[str, list[Checked]], r: Results, split: dict[str, float]) -> list[str]:
    """Target B's row; `split` gets the parts of the one-client latency (ms)."""
    one, one_nowait = groups["1 client"], groups["1 client, max-batch 1"]
    overhead = median(r.ratios_overhead) - 1 if r.ratios_overhead else None
    overhead_nowait = median(r.ratios_overhead_nowait) - 1 if r.ratios_overhead_nowait else None
    split.update(
        latency=median([v for c in one for v in c.latencies_ms]),
        inprocess=median([v for rep in r.inprocess_ms for v in rep]),
        http=median([v for c in one for v in c.net_ms]),
        read=median([v for c in one for v in c.timings["read_ms"]]),
        pose=median([v for c in one for v in c.timings["pose_ms"]]),
        total=median([v for c in one for v in c.timings["total_ms"]]),
        pose_max_batch_1=median([v for c in one_nowait for v in c.timings["pose_ms"]]),
        latency_max_batch_1=median([v for c in one_nowait for v in c.latencies_ms]),
        decode_inprocess=median(r.decode_ms),
    )
    nowait = _f(None if overhead_nowait is None else overhead_nowait * 100)
    return [
        "B: service overhead at 1 client (median latency / in-process predict - 1)", f"<= {TARGETS['overhead']:.0%}",
        _f(None if overhead is None else overhead * 100, ".1f") + "%",
        _met(overhead is not None and overhead <= TARGETS["overhead"]),
        f"per repetition {_ratios(r.ratios_overhead)} (service / in-process); all answers pooled: "
        f"{split['latency']:.1f} vs {split['inprocess']:.1f} ms; with max-batch 1: {nowait}%; split below",
    ]  # fmt: skip


def target_c(over: Checked, settings: Settings) -> list[list[str]]:
    growth = over.rss_max / over.rss_start - 1 if over.rss_start and over.rss_max else None
    halves = " / ".join(_f(v, ".0f") for v in over.rss_halves)
    ok = over.nothing_lost and over.refused > 0 and set(over.statuses) <= {"200", "503"}
    return [
        [f"C: 4x overload ({4 * settings.queue_size} clients, queue {settings.queue_size}, {settings.overload_s:g} s):"
         " nothing lost or wrong, refusals only 503", "0 lost, 0 wrong, only 503",
         f"{over.lost} lost, {over.wrong} wrong, statuses {_statuses(over.statuses)}", _met(ok),
         f"{over.ok} answered 200, {over.refused} refused (503 + Retry-After + JSON error)"],
        ["C: memory under overload (max RSS / RSS at start - 1)", f"<= {TARGETS['memory']:.0%}",
         _f(None if growth is None else growth * 100, ".1f") + "%",
         _met(growth is not None and growth <= TARGETS["memory"]),
         f"RSS start / max / end {_f(over.rss_start, '.0f')} / {_f(over.rss_max, '.0f')} / {_f(over.rss_end, '.0f')} "
         f"MiB, sampled every 50 ms; largest of the first / second half {halves} MiB"],
    ]  # fmt: skip


def split_rows(p: dict[str, float]) -> list[list[str]]:
    return [
        ["client latency (service)", _f(p["latency"]), ""],
        ["in-process `PoseEstimator.predict([rgb], boxes=[[box]])`", _f(p["inprocess"]), ""],
        ["overhead", _f(p["latency"] - p["inprocess"]),
         f"{(p['latency'] / p['inprocess'] - 1) * 100:.1f}% of the in-process call"],
        ["  outside the server's timings (client latency - server total_ms)", _f(p["http"]),
         "HTTP, reading the body, multipart parsing, the threadpool hop, the answer's JSON"],
        ["  server read_ms (admission, header check, decode)", _f(p["read"]),
         f"the bare decode `load_image(path)` in-process: {p['decode_inprocess']:.1f} ms"],
        ["  server pose_ms - in-process predict (the batcher: queue hop, any batching wait)",
         _f(p["pose"] - p["inprocess"]),
         f"pose_ms {p['pose']:.1f} ms; with max-batch 1 pose_ms {p['pose_max_batch_1']:.1f} ms, latency "
         f"{p['latency_max_batch_1']:.1f} ms"],
        ["server total_ms", _f(p["total"]), ""],
    ]  # fmt: skip


def build_report(
    command: str,
    machine: dict[str, str],
    model_name: str,
    image: Path,
    box: list[float],
    settings: Settings,
    servers: dict[str, Server],
    ref: Reference,
    r: Results,
    stops: dict[str, Any],
    warnings_logged: dict[str, int],
) -> tuple[str, dict[str, Any]]:
    groups: dict[str, list[Checked]] = {}
    for c in r.checked:
        groups.setdefault(c.name, []).append(c)
    over = next(c for c in r.checked if c.name.startswith("overload"))
    all_ok = all(c.nothing_lost for c in r.checked)
    ran = "16 clients" in groups  # --repeats 0: the overload scenario only
    split: dict[str, float] = {}
    if ran:
        targets = [target_a(groups, r), target_b(groups, r, split)]
    else:
        targets = [[name, goal, "n/a", "not run", "--repeats 0"] for name, goal in (
            ("A: micro-batching throughput, 16 clients (max-batch 16 / max-batch 1)", f">= {TARGETS['batching']}x"),
            ("B: service overhead at 1 client (median latency / in-process predict - 1)",
             f"<= {TARGETS['overhead']:.0%}"),
        )]  # fmt: skip
    targets += target_c(over, settings)

    out = ["# vitpose serve: load test and benchmark", "", f"Command: `{command}`", ""]
    out += ["| machine | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in machine.items()]
    out += [f"| model | {model_name} |", f"| request | `{image.name}` ({image.stat().st_size:,} bytes) with one box "
            f"{json.dumps([round(v, 2) for v in box])}, multipart, keep-alive `http.client` connections |"]  # fmt: skip
    out += ["", "## Targets", ""]
    out += _md_table(["target", "goal", "measured", "", "note"], targets)
    out += ["", "## Scenarios", ""]
    out += [
        "Counts are summed over the repetitions; req/s is the median over repetitions (200 answers / the "
        "scenario's wall time); latency percentiles (ms, client side, request sent -> answer read) pool every 200 "
        "answer of every repetition. 'nothing lost': sent = 200 + 503, no request without an answer, every 200 "
        f"right (one person, 17 keypoints, the box sent, keypoints within {TOLERANCE_PX:g} px of the in-process "
        "result) and every 503 with Retry-After and a JSON error. RSS: the server's VmRSS (MiB) at the start of the "
        "first repetition / the largest sample of any / at the end of the last. 'outside server ms': median of the "
        "client latency minus the server's own total_ms (HTTP, body, multipart, threadpool hop, JSON, waiting for "
        "the event loop). From the server's /metrics, "
        "scraped before and after each run: crops per network call (the batches the worker formed), network time "
        "per crop, and the share of the wall time the worker spent in the network (median over repetitions).",
        "",
    ]
    out += _md_table(
        ["scenario", "server options", "clients", "reps", "sent", "answers by status", "lost", "wrong",
         "nothing lost", "req/s", "p50", "p95", "p99", "outside server ms", "crops / call", "network ms / crop",
         "network busy %", "RSS start / max / end"],
        scenario_rows(groups, servers),
    )  # fmt: skip
    if split:
        out += ["", "## Target B: where the one-client latency goes", ""]
        out += [
            "Medians over every 1-client answer of the batched server (the server's own `timings` of the same "
            "answers) and over the in-process calls timed next to them in this process (same decoded image and box, "
            "same torch threads, servers idle). The parts are medians of their own, so they add up only roughly.",
            "",
        ]
        out += _md_table(["part", "ms", "note"], split_rows(split))
    out += ["", "## Target C: overload", ""]
    out += [
        "The server's RSS (MiB), largest sample of each tenth of the run: "
        + ", ".join(f"{v:.0f}" for v in over.rss_tenths)
        + f"; after the run, idle: {_f(r.after_overload.get('rss_idle_mb'), '.0f')}.",
        "",
    ]
    out += _md_table(
        ["clients", "queue size", "seconds", "sent", "200", "503", "other", "lost", "answers/s", "200/s",
         "p50 200 ms", "p99 200 ms", "p50 503 ms", "RSS start / max / end MiB", "after: /readyz"],
        [[str(over.clients), str(settings.queue_size), f"{over.wall_s:.1f}", str(over.sent), str(over.ok),
          str(over.refused), str(over.wrong), str(over.lost), f"{over.answered_rps:.1f}", f"{over.rps:.2f}",
          _f(over.percentile(50)), _f(over.percentile(99)), _f(median(over.refused_latencies_ms)),
          f"{_f(over.rss_start, '.0f')} / {_f(over.rss_max, '.0f')} / {_f(over.rss_end, '.0f')}",
          f"{r.after_overload.get('readyz_status')} {json.dumps(r.after_overload.get('readyz'))}"]],
    )  # fmt: skip
    notes = [
        f"Reference: the in-process results of the box in network batches of 1..{DEFAULT_MAX_BATCH} crops give "
        f"{len(ref.variants)} distinct keypoint sets, up to {ref.spread_px:.2g} px apart (float rounding of another "
        "batch shape, amplified by the flat heatmaps of random weights); every 200 answer matched one of them within "
        f"{TOLERANCE_PX:g} px" + ("" if all_ok else " **except those counted wrong**") + ". Largest distance of an "
        f"answer from the batch-1 result: {max(c.max_dev_px for c in r.checked):.2g} px.",
        "Servers stopped with SIGTERM: " + "; ".join(
            f"{n}: exit {s['exit_code']} after {_f(s['stop_s'], '.1f')} s" + (" (killed)" if s["killed"] else "")
            for n, s in stops.items()
        ) + ".",
        "Problems (wrong or lost answers): "
        + ("; ".join(f"{c.name} (rep {c.repetition}): {c.problems}" for c in r.checked if c.problems) or "none")
        + ".",
        "Warning lines in the servers' logs: " + ", ".join(f"{n} {v}" for n, v in warnings_logged.items()) + ".",
        "The servers run in their own processes on the same cores as the clients (this process): the client threads' "
        "own CPU time is part of every figure.",
    ]  # fmt: skip
    busiest = busy_load(machine.get("load average (start -> end)", ""))
    if busiest is not None and busiest >= 0.5 * (os.cpu_count() or 1):
        notes.append(
            f"The machine was busy with other work (1-minute load average {busiest:.2f} on {os.cpu_count()} cores "
            "when the run started, before its own load): two torch threads stall on each other when "
            "a core is taken away, so absolute times are noisy; the ratios are per repetition of back-to-back "
            "measurements, but re-run on a quiet machine for final figures."
        )
    out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    text = "\n".join(out) + "\n"
    raw = {
        "command": command,
        "machine": machine,
        "model": model_name,
        "image": str(image),
        "box": box,
        "settings": settings.__dict__,
        "servers": {n: {"options": s.options, "command": s.shown(), **stops[n]} for n, s in servers.items()},
        "reference": {"variants": len(ref.variants), "spread_px": ref.spread_px, "tolerance_px": TOLERANCE_PX},
        "scenarios": [c.summary() for c in r.checked],
        "pooled": {name: pooled(group) for name, group in groups.items()},
        "inprocess_ms": [_round(v) for v in r.inprocess_ms],
        "decode_ms": _round(r.decode_ms),
        "ratios": {
            "batching": r.ratios_batching,
            "overhead": r.ratios_overhead,
            "overhead_max_batch_1": r.ratios_overhead_nowait,
        },
        "overhead_split_ms": split,
        "after_overload": r.after_overload,
        "warnings_logged": warnings_logged,
        "targets": [dict(zip(["target", "goal", "measured", "state", "note"], t, strict=True)) for t in targets],
        "all_nothing_lost": all_ok,
    }
    return text, raw


def busy_load(text: str) -> float | None:
    """The 1-minute load average at the start of the run (before this benchmark's own load), from "start -> end"."""
    try:
        return float(text.split("->")[0].split("/")[0])
    except ValueError:
        return None


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def _statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))


if __name__ == "__main__":
    sys.exit(main())
