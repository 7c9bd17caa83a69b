"""`vitpose serve --engine ray`: the service's FastAPI app on Ray Serve replicas (optional extra `vitpose[ray]`).

Each replica is a Ray actor that builds its own estimator (`make_estimator()`, called in the replica: the model is
loaded there, never pickled from the driver) and its own app (`vitpose.serve.create_app`) with its own
`MicroBatcher`: the crops of the requests a replica holds share its network batches, and Serve's HTTP proxy spreads
the requests over the replicas. The app's lifespan, which opens and closes the batcher, runs in the replica: Serve
runs an ingress app's startup when the replica starts and its shutdown when the replica stops (after the requests
it holds are answered). Every answer carries `X-Replica`: the Serve id of the replica that made it (so /metrics,
which is each replica's own, can be told apart).

`run_replicas(...)` opens the Ray session (`vitpose.integrations.ray.ray_session`), starts Serve's HTTP proxy on
`host:port`, deploys the replicas, and waits for SIGTERM or SIGINT. Then it drains them as the local service
drains: every replica answers the requests it holds and refuses new ones with 503 and Retry-After (/healthz and
/metrics still answer), for at most a request's time limit and 5 s; then Serve is shut down (the replicas, whose
apps' lifespans close their batchers, then the proxy: new connections are refused) and it returns 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from vitpose.errors import VitPoseError

__all__ = ["APP_NAME", "DEPLOYMENT_NAME", "MAX_ONGOING_REQUESTS", "REPLICA_HEADER", "run_replicas"]

APP_NAME = "vitpose"
DEPLOYMENT_NAME = "VitPoseService"
REPLICA_HEADER = "X-Replica"
# Requests a replica holds at once (Serve's max_ongoing_requests), at least this many. The handlers are async and
# the network runs on the batcher's worker thread, so a replica takes many requests together (their crops share
# batches); Serve's default of 5 starved the batcher (measured on 2 cores: 10 req/s with a sync handler and 5,
# 88 req/s async with 64).
MAX_ONGOING_REQUESTS = 64
# Beyond its --queue-size a replica still takes this many more, which its app refuses at once with 503 and
# Retry-After as the local service does (without them Serve would queue the overload in its proxy, unbounded).
OVERFLOW_REQUESTS = 8
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
OPEN_WHILE_STOPPING = ("/healthz", "/metrics")  # liveness and scrapes still answered while a replica drains
_FAILED = "vitpose replica failed: "  # marks a replica's own error in the traceback Serve reports


class _Drain:
    """The driver's word to stop (a Ray actor, each replica waiting on it), and each replica's answer once it has
    nothing in progress."""

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._idle: set[str] = set()

    async def stopping(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        self._stopping.set()

    async def idle(self, replica: str) -> None:
        self._idle.add(replica)

    async def idle_count(self) -> int:
        return len(self._idle)


class _ReplicaGate:
    """ASGI middleware of a replica's app: `X-Replica: <id>` on every answer, the count of requests in progress, and
    once the service stops, 503 with Retry-After for every new request but /healthz and /metrics (without it, Serve's
    proxy would answer 404 once the application is deleted)."""

    def __init__(self, app: Any, replica: ServiceReplica) -> None:
        self.app = app
        self.replica = replica
        self.header = (REPLICA_HEADER.lower().encode(), replica.replica.encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        if self.replica.stopping and scope.get("path") not in OPEN_WHILE_STOPPING:
            body = json.dumps({"error": "the service is shutting down; try again shortly"}).encode()
            headers = [(b"content-type", b"application/json"), (b"retry-after", b"1")]
            await tagged({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        self.replica.in_progress += 1
        try:
            await self.app(scope, receive, tagged)
        finally:
            self.replica.in_progress -= 1


class ServiceReplica:
    """One replica's state: the estimator built in the replica, then the app around it (`build_app`)."""

    def __init__(
        self,
        make_estimator: Callable[[], Any],
        app_options: dict[str, Any],
        switch_interval_s: float | None = None,
        drain: Any = None,
    ) -> None:
        _internal_grpc_on_loopback()
        if switch_interval_s is not None:
            sys.setswitchinterval(switch_interval_s)  # this replica's own process (see vitpose.cli.serve)
        try:
            self.estimator = make_estimator()
        except (VitPoseError, OSError) as err:  # the user's to fix: one line the driver finds in Serve's status
            text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
            raise VitPoseError(f"{_FAILED}{text}") from None
        self.app_options = dict(app_options)
        self.replica = _replica_id()
        self.stopping = False
        self.in_progress = 0
        if drain is not None:
            threading.Thread(target=self._drain, args=(drain,), name="vitpose-drain", daemon=True).start()

    def build_app(self) -> Any:
        from vitpose.serve import create_app

        app = create_app(self.estimator, **self.app_options)
        app.add_middleware(_ReplicaGate, replica=self)
        return app

    def _drain(self, drain: Any) -> None:
        """Wait for the driver's word to stop; then refuse new requests, and say so once none is in progress."""
        import ray

        try:
            ray.get(drain.stopping.remote())
        except Exception:  # the driver has gone: no one to answer for any more
            pass
        self.stopping = True
        while self.in_progress > 0:
            time.sleep(0.02)
        try:
            ray.get(drain.idle.remote(self.replica))
        except Exception:
            pass


def _internal_grpc_on_loopback() -> None:
    """On a node at 127.0.0.1 (the local Ray), bind the replica's inter-deployment gRPC server to 127.0.0.1.

    Ray Serve (2.60) starts that server on "[::]:0", every interface, whatever the node's address (no setting
    changes it; it carries handle calls only when RAY_SERVE_USE_GRPC_BY_DEFAULT is on, and peers reach it at the
    node's address). It is started after the user's constructor, so the replaced bind applies to it. On a cluster
    node (another address) Ray's bind is left as it is."""
    try:
        import ray
        from ray.serve._private import replica as serve_replica
    except ImportError:
        return
    bind = getattr(serve_replica, "add_port_to_grpc_server", None)
    if bind is None or getattr(bind, "vitpose_loopback", False) or ray.util.get_node_ip_address() != "127.0.0.1":
        return

    def loopback_bind(server: Any, address: str) -> Any:
        if address.startswith("[::]:"):
            address = "127.0.0.1:" + address[len("[::]:") :]
        return bind(server, address)

    loopback_bind.vitpose_loopback = True  # type: ignore[attr-defined]
    serve_replica.add_port_to_grpc_server = loopback_bind


def _replica_id() -> str:
    try:
        from ray import serve

        return serve.get_replica_context().replica_tag
    except Exception:  # outside a replica (a test building the app directly)
        return "local"


def _deployment(replicas: int, num_cpus: float, num_gpus: float, graceful_s: float, queue_size: int) -> Any:
    """The Serve deployment of `ServiceReplica` (its app bound late: built in each replica, after its estimator)."""
    from ray import serve

    @serve.ingress()  # no app here: `__serve_build_asgi_app__` builds it in the replica
    class VitPoseService(ServiceReplica):
        def __serve_build_asgi_app__(self) -> Any:
            return self.build_app()

    return serve.deployment(
        VitPoseService,
        name=DEPLOYMENT_NAME,
        num_replicas=replicas,
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
        max_ongoing_requests=max(MAX_ONGOING_REQUESTS, queue_size + OVERFLOW_REQUESTS),
        graceful_shutdown_timeout_s=graceful_s,
        graceful_shutdown_wait_loop_s=0.5,
        max_constructor_retry_count=1,
    )


def _check_resources(ray: Any, replicas: int, num_cpus: float, num_gpus: float) -> None:
    """A one-line error when the local Ray cannot place every replica (Serve would wait for them forever)."""
    total = ray.cluster_resources()
    for name, each in (("CPU", num_cpus), ("GPU", num_gpus)):
        have = float(total.get(name, 0))
        if each and replicas * each > have + 1e-9:
            option = "--num-cpus" if name == "CPU" else "--num-gpus"
            raise VitPoseError(
                f"{replicas} replicas x {option} {each:g} need {replicas * each:g} {name}s; this machine's Ray has "
                f"{have:g}: fewer --replicas or a smaller {option}"
            )


def _check_no_serve(ray: Any, address: str) -> None:
    """A one-line error when Ray Serve already runs on the cluster: the service starts (and at the end shuts down)
    its own Serve, with its own HTTP proxy, and must not take over or end another one's applications."""
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return  # no Serve there
    raise VitPoseError(
        f"Ray Serve already runs on the cluster at {address}; vitpose serve --engine ray starts its own Serve and "
        "shuts it down at the end: use a cluster without Serve (or stop it there with `serve shutdown`)"
    )


def run_replicas(
    make_estimator: Callable[[], Any],
    *,
    replicas: int = 1,
    num_cpus: float = 0.5,
    num_gpus: float = 0.0,
    host: str = "127.0.0.1",
    port: int = 8000,
    app_options: dict[str, Any] | None = None,
    address: str | None = None,
    keep_alive_s: float = 5.0,
    switch_interval_s: float | None = None,
    stop: threading.Event | None = None,
    log: Callable[[str], None] | None = None,
) -> int:
    """Serve `create_app(make_estimator(), **app_options)` on `replicas` Ray Serve replicas until SIGTERM / SIGINT.

    `make_estimator`: a picklable callable (e.g. `functools.partial(PoseEstimator.from_pretrained, ...)`) that each
    replica calls to build its estimator. `num_cpus` / `num_gpus`: each replica's Ray resources. `host:port`: where
    Serve's HTTP proxy listens (`keep_alive_s`: its idle-connection timeout). `address`: the Ray cluster (None: a
    local Ray on 127.0.0.1, shut down at the end). `switch_interval_s`: `sys.setswitchinterval` in each replica.
    `stop`: an event that ends the service as the signals do (in the main thread SIGTERM and SIGINT set it). `log`:
    where the lines saying where the service listens and that it stops go (default: stderr). Returns 0 once the
    replicas have answered what they accepted and Serve is shut down.
    """
    from vitpose.integrations.ray import ray_session

    options = dict(app_options or {})
    stop = stop or threading.Event()
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    previous: dict[Any, Any] = {}
    if threading.current_thread() is threading.main_thread():  # before ray.init, which keeps them (ray_session)
        previous = {sig: signal.signal(sig, lambda number, frame: stop.set()) for sig in STOP_SIGNALS}
    http_options = {"host": host, "port": port, "keep_alive_timeout_s": max(1, math.ceil(keep_alive_s))}
    # As the local service's drain: a replica answers what it holds for at most a request's time limit and a bit.
    graceful_s = float(math.ceil(options.get("timeout_s", 30)) + 5)
    try:
        with warnings.catch_warnings():
            # Ray's own deprecation notices (pydantic fields, Ray Data settings): nothing the user can act on.
            for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
                warnings.simplefilter("ignore", category)
            with ray_session(address) as ray:
                if address is None:
                    _check_resources(ray, replicas, num_cpus, num_gpus)
                else:
                    _check_no_serve(ray, address)
                from ray import serve

                logging.getLogger("ray.serve").setLevel(logging.WARNING)  # Serve's INFO lines; ours say where
                serve.start(http_options=http_options)
                try:
                    queue_size = options.get("queue_size", 64)
                    deployment = _deployment(replicas, num_cpus, num_gpus, graceful_s, queue_size)
                    try:
                        drain = ray.remote(num_cpus=0)(_Drain).remote()
                        application = deployment.bind(make_estimator, options, switch_interval_s, drain)
                        serve.run(application, name=APP_NAME)
                    except RuntimeError as err:  # a replica's constructor failed (a bad model, ...)
                        raise VitPoseError(f"the replicas did not start: {_reason(serve, err)}") from None
                    plural = "s" if replicas != 1 else ""
                    say(
                        f"vitpose serve: {replicas} replica{plural} on Ray Serve at http://{host}:{port} "
                        "(SIGTERM or Ctrl-C stops)"
                    )
                    while not stop.wait(0.1):
                        pass
                    say("vitpose serve: stopping: the replicas answer the requests they hold, and refuse new ones")
                    _drain_replicas(ray, drain, replicas, graceful_s)
                finally:
                    serve.shutdown()  # the replicas stop (each app's lifespan closes its batcher), then the proxy
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _drain_replicas(ray: Any, drain: Any, replicas: int, limit_s: float) -> None:
    """Tell the replicas to stop taking requests (they answer 503), and wait until each has answered those it had
    (at most `limit_s`; deleting the application then gives Serve's own drain what is left)."""
    ray.get(drain.stop.remote())
    end = time.monotonic() + limit_s
    while time.monotonic() < end and ray.get(drain.idle_count.remote()) < replicas:
        time.sleep(0.1)


def _reason(serve: Any, err: BaseException) -> str:
    """Why the replicas failed: the replica's own error line when it raised one, else the last error line of the
    traceback Serve keeps in the deployment's status, else Serve's message."""
    try:
        deployments = serve.status().applications[APP_NAME].deployments.values()
        text = "\n".join(d.message for d in deployments if d.message)
    except Exception:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if _FAILED in line:
            return line.split(_FAILED, 1)[1]
    errors = [line for line in lines if "Error: " in line or "Exception: " in line]
    return errors[-1] if errors else " ".join(str(err).split())
