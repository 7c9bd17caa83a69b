"""`vitpose serve --model M [--host 127.0.0.1] [--port 8000] ...`: thin argument parsing over `vitpose.serve`."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys

from vitpose.cli.common import (
    add_detector_options,
    add_model_options,
    add_threshold_options,
    estimator_from_args,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

API_KEY_ENV = "VITPOSE_API_KEY"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SWITCH_INTERVAL_S = 0.0005


def _serve(args: argparse.Namespace) -> int:
    from vitpose.serve import require_serve

    require_serve()  # before loading the model: one line naming the extra
    import uvicorn

    from vitpose.serve import create_app

    # The network's thread dispatches its operators one by one, each needing the GIL back from the request threads
    # (decoding, JSON); a shorter switch interval than Python's 5 ms gives it back sooner (measured on 2 cores with
    # 16 clients: about 7% more throughput with micro-batching, no change with --max-batch 1).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    args.batch_size = args.max_batch
    estimator = estimator_from_args(args)
    app = create_app(
        estimator,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        queue_size=args.queue_size,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels or None,
        timeout_s=args.timeout_s,
        api_key=api_key,
        model_name=str(args.model),
    )
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


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `serve` on the `vitpose` command's subparsers."""
    from vitpose.serve import DEFAULT_MAX_PIXELS

    serve = subparsers.add_parser(
        "serve",
        help='an HTTP service: POST /v1/pose (needs: pip install "vitpose[serve]")',
        description="Serve the model over HTTP: POST /v1/pose (an image -> the people's keypoints, JSON), GET "
        "/v1/model, /healthz, /readyz; the OpenAPI schema at /openapi.json. The person crops of concurrent requests "
        'share network batches on one worker thread. Needs: pip install "vitpose[serve]".',
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
    serve.set_defaults(func=_serve)
