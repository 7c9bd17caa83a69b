"""`vitpose serve --model M [--host 127.0.0.1] [--port 8000] ...`: thin argument parsing over `vitpose.serve`."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys

from vitpose.cli.common import (
    add_detector_options,
    add_engine_options,
    add_model_options,
    add_threshold_options,
    estimator_from_args,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    worker_cpus,
)

API_KEY_ENV = "VITPOSE_API_KEY"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SWITCH_INTERVAL_S = 0.0005


# The options of --engine ray, and their defaults (given otherwise with --engine local: an error).
RAY_OPTIONS = {"address": None, "replicas": 1, "num_cpus": None, "num_gpus": 0.0}
# CPUs per replica by default: half a CPU packs two replicas per core's worth of Ray's bookkeeping on a small
# machine (Ray gives such a replica one torch thread); a replica with a GPU gets a whole CPU to feed it.


def _serve(args: argparse.Namespace) -> int:
    from vitpose.serve import require_serve

    _check_engine_options(args)
    require_serve()  # before loading the model: one line naming the extra
    if args.engine == "ray":
        return _serve_on_ray(args)
    import uvicorn

    from vitpose.serve import create_app

    # The network's thread dispatches its operators one by one, each needing the GIL back from the request threads
    # (decoding, JSON); a shorter switch interval than Python's 5 ms gives it back sooner (measured on 2 cores with
    # 16 clients: about 7% more throughput with micro-batching, no change with --max-batch 1).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    args.batch_size = args.max_batch
    estimator = estimator_from_args(args)
    app = create_app(estimator, **_app_options(args, api_key))
    # SIGTERM (and Ctrl-C): uvicorn stops accepting connections, answers every request already accepted (for at
    # most a request's time limit and a little more), then the worker finishes what is queued and the command
    # exits 0. uvicorn re-raises the signal once done: the handler set here takes it instead of the default one.
    stopped: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, frame: stopped.append(number)) for sig in STOP_SIGNALS}
    try:
        config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level="info",
            timeout_graceful_shutdown=math.ceil(args.timeout_s) + 5,
            timeout_keep_alive=args.keep_alive_s,
        )
        uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _check_engine_options(args: argparse.Namespace) -> None:
    """--address, --replicas, --num-cpus and --num-gpus mean something only with --engine ray."""
    from vitpose.errors import VitPoseError

    if args.engine == "ray":
        return
    given = [name for name, default in RAY_OPTIONS.items() if getattr(args, name) != default]
    if given:
        named = ", ".join("--" + name.replace("_", "-") for name in given)
        verb = "needs" if len(given) == 1 else "need"
        raise VitPoseError(f"{named} {verb} --engine ray (with --engine local the service runs in this process)")


def _app_options(args: argparse.Namespace, api_key: str | None) -> dict:
    """`create_app`'s keyword arguments from the options."""
    return {
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "queue_size": args.queue_size,
        "max_upload_mb": args.max_upload_mb,
        "max_pixels": args.max_pixels or None,
        "timeout_s": args.timeout_s,
        "api_key": api_key,
        "model_name": str(args.model),
    }


def _serve_on_ray(args: argparse.Namespace) -> int:
    """--engine ray: `--replicas` Ray Serve replicas, each with its own estimator, app and micro-batcher."""
    import functools

    from vitpose.integrations.ray import require_ray

    require_ray(args.address)  # Ray's settings before its first import; one line naming the extra when it is missing
    from vitpose.serve.replicas import run_replicas

    num_cpus = worker_cpus(args)
    model = str(args.model)
    if os.path.exists(model):  # a local checkpoint: the same file whatever a Ray worker's working directory
        model = os.path.abspath(model)
    device = args.device
    if device == "auto":  # a replica uses the GPU Ray gave it, else the CPU (as the Ray stages of predict)
        device = "cuda" if args.num_gpus else "cpu"
    fields = {"model": model, "device": device, "batch_size": args.max_batch}
    fields |= {
        name: getattr(args, name)
        for name in ("dtype", "flip_test", "dataset", "no_nms", "nms_thr", "detector", "det_thr")
    }  # --dtype auto is resolved in each replica, on its device: float16 on a GPU
    make_estimator = functools.partial(estimator_from_args, argparse.Namespace(**fields))
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    return run_replicas(
        make_estimator,
        replicas=args.replicas,
        num_cpus=num_cpus,
        num_gpus=args.num_gpus,
        host=args.host,
        port=args.port,
        app_options=_app_options(args, api_key),
        address=args.address,
        keep_alive_s=args.keep_alive_s,
        switch_interval_s=SWITCH_INTERVAL_S,
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `serve` on the `vitpose` command's subparsers."""
    from vitpose.serve import DEFAULT_MAX_PIXELS

    serve = subparsers.add_parser(
        "serve",
        help='an HTTP service: POST /v1/pose (needs: pip install "vitpose[serve]")',
        description="Serve the model over HTTP: POST /v1/pose (an image -> the people's keypoints, JSON), GET "
        "/v1/model, /healthz, /readyz; the OpenAPI schema at /openapi.json. The person crops of concurrent requests "
        "share network batches on one worker thread. --engine ray: --replicas copies of the service on Ray Serve, "
        'each with its own model and batching. Needs: pip install "vitpose[serve]" (and "vitpose[ray]").',
    )
    add_model_options(serve, model_required=True, batch_size=None)  # --batch-size is --max-batch here
    add_detector_options(serve)
    add_threshold_options(serve, kpt_thr=None)
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (127.0.0.1: this machine only)")
    serve.add_argument("--port", type=positive_int, default=8000, help="port (8000)")
    serve.add_argument(
        "--max-batch",
        "--batch-size",
        dest="max_batch",
        type=positive_int,
        default=16,
        help="most person crops per network batch, shared by concurrent requests; --batch-size is the same (16)",
    )
    serve.add_argument(
        "--max-wait-ms",
        type=non_negative_float,
        default=5.0,
        help="longest wait for more crops to fill a batch, ms (5)",
    )
    serve.add_argument(
        "--queue-size", type=positive_int, default=64, help="requests in progress at most; more get 503 (64)"
    )
    serve.add_argument("--max-upload-mb", type=positive_float, default=20.0, help="largest upload, MiB; 413 over (20)")
    serve.add_argument(
        "--max-pixels",
        type=non_negative_int,
        default=DEFAULT_MAX_PIXELS,
        help=f"largest image, pixels (decompression bombs); 413 over; 0: no limit of its own ({DEFAULT_MAX_PIXELS:,})",
    )
    serve.add_argument("--timeout-s", type=positive_float, default=30.0, help="time limit of a request, s; 504 (30)")
    serve.add_argument(
        "--keep-alive-s",
        type=positive_float,
        default=5.0,
        help="an idle connection is closed after this many seconds; clients then reconnect (5)",
    )
    serve.add_argument(
        "--api-key", default=None, help=f"require this key (X-API-Key or Authorization: Bearer); or ${API_KEY_ENV}"
    )
    add_engine_options(serve, workers="replicas")
    serve.set_defaults(func=_serve)
