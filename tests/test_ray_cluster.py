"""`vitpose predict --engine ray --address` on a two-node Ray cluster on this one machine: `ray start --head` and a
second node joined with `ray start --address`, 1 CPU each, everything on 127.0.0.1. The job (two pose actors, the
boxes from a file) writes the local path's predictions (to 1e-5); its two pose actors sit one on each node and both run
pose batches; every socket of the cluster is on the loopback interface; and no process of the cluster outlives the
test, whatever happens (killed by session and temp dir, not `ray stop`, which would stop every Ray on the machine).

Ray is never imported into the pytest process here: the cluster, the job and the queries about it are subprocesses."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import pytest

from conftest import assert_same_results, make_hf_model, read_predictions, save_hf
from vitpose.cli import main
from vitpose.integrations.ray import LOCAL_RAY_ENV

psutil = pytest.importorskip("psutil")
if importlib.util.find_spec("ray") is None:  # not `importorskip`: importing ray here would fix its settings early
    pytest.skip("could not import 'ray': the Ray engine needs vitpose[ray]", allow_module_level=True)

pytestmark = pytest.mark.slow
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}
IMAGES = 8
POSE_BATCH = "MapWorker(MapBatches(PoseStage)).submit"  # the Ray task of one pose batch: Ray Data's actor method
# Ray Data's settings for the job's driver, which spread the pose batches over both actors (no result changes): an
# actor pool waits for all its actors before its first batch (else the first one up may run them all while the other
# still loads), and an actor holds one batch at a time, so that the second batch, given out with the first, goes to the
# other actor. That holds for the job's first stage only: a later stage gets its batches one by one, as the stage
# before finishes them, and one actor may take them all (as the pose stage after a detection stage did, at times).
# So the job has no detection stage: its boxes come from a file (--boxes).
SHARED_BATCHES = {
    "RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "120",
    "RAY_DATA_ACTOR_DEFAULT_MAX_TASKS_IN_FLIGHT_TO_MAX_CONCURRENCY_FACTOR": "1",
}

RAY_CLI = "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"
# `ray start --address` (a node joining a cluster) refuses to run under RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ("Multi-node
# Ray clusters are not supported on Windows and OSX"), and with it on (Linux's default) Ray rewrites 127.0.0.1, in
# --address as in --node-ip-address, into this machine's network address. So the joining node runs the same CLI with
# LOCAL_RAY_ENV and that one check of the CLI lifted: every address stays 127.0.0.1.
JOIN_CLI = """
import sys, types
import ray._private.ray_constants as constants
from ray.scripts import scripts
assert hasattr(scripts, "ray_constants"), "ray's CLI no longer reads ray_constants: see tests/test_ray_cluster.py"
scripts.ray_constants = types.SimpleNamespace(**{**vars(constants), "ENABLE_RAY_CLUSTER": True})
sys.argv = ["ray", "start", *sys.argv[1:]]
scripts.main()
"""
# The cluster's nodes, and the job's stage tasks (pose batches, actor set-ups) with the actor and the node each ran
# on: the task events the GCS keeps (the cluster has no dashboard, which `ray.util.state` asks through), polled until
# every pose batch has been reported.
QUERY = """
import json, logging, sys, time
import grpc, ray
from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

address, want = sys.argv[1], int(sys.argv[2])
ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
nodes = [{"id": n["NodeID"], "alive": n["Alive"], "ip": n["NodeManagerAddress"], "cpus": n["Resources"].get("CPU")}
         for n in ray.nodes()]
ray.shutdown()
stub = gcs_service_pb2_grpc.TaskInfoGcsServiceStub(grpc.insecure_channel(address))
deadline = time.monotonic() + 20
while True:
    reply = stub.GetTaskEvents(gcs_service_pb2.GetTaskEventsRequest(limit=10000), timeout=20)
    tasks = [[e.task_info.name, e.task_info.actor_id.hex(), e.state_updates.node_id.hex()] for e in reply.events_by_task
             if e.task_info.name.startswith("MapWorker(") and e.state_updates.node_id]
    if sum(t[0] == POSE_BATCH for t in tasks) >= want or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(json.dumps({"nodes": nodes, "tasks": tasks}))
""".replace("POSE_BATCH", repr(POSE_BATCH))


@dataclass
class Cluster:
    temp: str
    address: str = ""
    sessions: set[int] = field(default_factory=set)  # every process started here leads a session of its own


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def ray_env() -> dict[str, str]:
    """The environment of every Ray process here, the job's driver included: with --address, vitpose leaves Ray's
    settings as they are, and without RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray turns --address 127.0.0.1:PORT into
    this machine's network address, where no GCS listens (the job then waits for it without end)."""
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    return {**env, **LOCAL_RAY_ENV}


def run(
    cluster: Cluster, command: list[str], timeout: float, env: dict | None = None, *, ray_settings: bool = True
) -> subprocess.CompletedProcess:
    """`command` in a session of its own (what it leaves running is found and killed at the end), its output kept;
    with `ray_settings` False, without LOCAL_RAY_ENV (a vitpose command sets them itself for a loopback address)."""
    base = ray_env()
    if not ray_settings:
        base = {name: value for name, value in base.items() if name not in LOCAL_RAY_ENV}
    env = {**base, **(env or {})}
    pipe = subprocess.PIPE
    with subprocess.Popen(command, env=env, stdout=pipe, stderr=pipe, text=True, start_new_session=True) as process:
        cluster.sessions.add(process.pid)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"{command[:4]} ran past {timeout} s: {err[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def cluster_processes(cluster: Cluster) -> list:
    """The processes of the cluster: those in the sessions started here, those naming its temp dir, their children
    (Ray's agents and workers rename themselves, e.g. `ray::IDLE`)."""
    found = {}
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getsid(process.pid) in cluster.sessions or cluster.temp in " ".join(process.info["cmdline"] or []):
                found[process.pid] = process
                found.update((child.pid, child) for child in process.children(recursive=True))
        except (psutil.Error, OSError):
            continue
    return list(found.values())


def stop(cluster: Cluster) -> None:
    """Kill every process of the cluster (not `ray stop`, which stops every Ray on the machine) and remove its temp
    dir; fails if any survives."""
    for _ in range(3):
        processes = cluster_processes(cluster)
        if not processes:
            break
        for process in processes:
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(processes, timeout=10)
    shutil.rmtree(cluster.temp, ignore_errors=True)
    left = [(p.pid, p.info["cmdline"]) for p in cluster_processes(cluster)]
    assert not left, f"processes of the cluster left running: {left}"


@pytest.fixture
def cluster():
    """Two Ray nodes of 1 CPU on 127.0.0.1: a head (GCS on a free port, no dashboard) and a node joined to it."""
    cluster = Cluster(tempfile.mkdtemp(prefix="vc", dir="/tmp"))  # short: Ray's Unix socket paths stay < 107 bytes
    gcs, client, head_agent, node_agent = free_ports(4)  # not Ray's fixed defaults, which another Ray may hold
    node = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", str(100 * 1024 * 1024)]
    node += ["--disable-usage-stats"]
    head = [sys.executable, "-c", RAY_CLI, "start", "--head", "--port", str(gcs), "--temp-dir", cluster.temp]
    head += ["--include-dashboard", "false", "--ray-client-server-port", str(client)]
    head += ["--dashboard-agent-listen-port", str(head_agent), *node]
    join = [sys.executable, "-c", JOIN_CLI, "--address", f"127.0.0.1:{gcs}"]  # its files go in the head's temp dir
    join += ["--dashboard-agent-listen-port", str(node_agent), *node]
    try:
        for command in (head, join):
            started = run(cluster, command, timeout=120)
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-3000:]
        cluster.address = f"127.0.0.1:{gcs}"
        yield cluster
    finally:
        stop(cluster)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture
def images(coco_dir, tmp_path):
    """IMAGES copies of the shared COCO images, and a boxes file of their detections (as test_coco_det_AP_H_56.json,
    by file name)."""
    folder = tmp_path / "images"
    folder.mkdir()
    coco = json.loads((coco_dir / "test_coco.json").read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    detections = json.loads((coco_dir / "test_coco_det_AP_H_56.json").read_text())
    sources = sorted(names.values())
    boxes = []
    for i in range(IMAGES):
        name, source = f"img_{i:02d}.jpg", sources[i % len(sources)]
        shutil.copy(coco_dir / source, folder / name)
        boxes += [{**entry, "file_name": name} for entry in detections if names[entry["image_id"]] == source]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    return folder


def test_predict_on_a_two_node_cluster_uses_both_nodes(cluster, checkpoint, images, tmp_path):
    # --batch-size 4: one image to a Ray batch (batch_size // 4), 8 batches for the two pose actors.
    common = [str(images), "--model", str(checkpoint), "--boxes", str(tmp_path / "boxes.json"), "--batch-size", "4"]
    out = tmp_path / "ray"
    engine = ["--engine", "ray", "--address", cluster.address, "--actors", "2", "--num-cpus", "0.5"]
    command = [sys.executable, "-m", "vitpose", "predict", *common, *engine, "--out", str(out)]
    job = run(cluster, command, timeout=240, env=SHARED_BATCHES, ray_settings=False)  # the command's own settings
    assert job.returncode == 0, job.stderr[-3000:]
    assert f"{IMAGES} images, " in job.stdout
    assert main(["predict", *common, "--device", "cpu", "--out", str(tmp_path / "local")]) == 0
    assert_same_results(read_predictions(out), read_predictions(tmp_path / "local"))
    assert len({p["file_name"] for p in read_predictions(out)}) == IMAGES

    query = run(cluster, [sys.executable, "-c", QUERY, cluster.address, str(IMAGES)], timeout=120)
    assert query.returncode == 0, query.stderr[-3000:]
    facts = json.loads(query.stdout.strip().splitlines()[-1])
    nodes = facts["nodes"]
    assert [(n["alive"], n["ip"], n["cpus"]) for n in nodes] == [(True, "127.0.0.1", 1.0)] * 2, nodes
    tasks = facts["tasks"]
    batches = [(actor, node) for name, actor, node in tasks if name == POSE_BATCH]
    stages = sorted(
        {(name.split("(")[-1].split(")")[0], actor[:6], node[:6], name.split(".")[-1]) for name, actor, node in tasks}
    )
    counts = {(actor[:6], node[:6]): sum(b == (actor, node) for b in batches) for actor, node in set(batches)}
    why = f"pose batches per (actor, node): {counts}; stage tasks (stage, actor, node, method): {stages}"
    assert len(batches) == IMAGES, why  # one pose batch per image, each run once
    node_of = dict(batches)
    assert len(node_of) == 2 and len(set(node_of.values())) == 2, why  # two actors, one on each node
    assert set(node_of.values()) == {n["id"] for n in nodes}
    assert all(node_of[actor] == where for actor, where in batches), why

    addresses = set()
    for process in cluster_processes(cluster):
        try:
            addresses |= {c.laddr.ip for c in process.net_connections(kind="inet")}
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
    assert addresses, "no socket of the cluster found"
    assert addresses <= LOOPBACK, addresses
