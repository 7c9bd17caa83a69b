"""The HTTP service: `create_app(estimator)` -> a FastAPI app (POST /v1/pose, GET /v1/model, /healthz, /readyz).

The detector (when a request gives no boxes) runs in the request's thread, through the service's one estimator's
detector under a lock: it is its own network with its own batching over images, and keeping it off the worker
keeps the worker's batches to pose crops only, so a slow detection never delays other requests' keypoints.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import io
import json
import math
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from vitpose.detectors.boxes import box_misfits
from vitpose.device import dtype_name
from vitpose.errors import ImageReadError, VitPoseError
from vitpose.inference.estimator import PoseEstimator, dataset_info_for
from vitpose.media import decode_image, encode_image
from vitpose.serve import DEFAULT_MAX_PIXELS
from vitpose.serve.batching import BatchedModel, MicroBatcher, QueueFull, RequestCancelled, RequestTimeout, Ticket
from vitpose.serve.metrics import MetricsMiddleware, ServiceMetrics

# `format`: the answer of POST /v1/pose, JSON or the annotated image (name -> media type, file suffix).
IMAGE_FORMATS = {"png": ("image/png", ".png"), "jpeg": ("image/jpeg", ".jpg"), "jpg": ("image/jpeg", ".jpg")}
DEFAULT_DRAW_KPT_THR = 0.3  # as `vitpose predict --kpt-thr`
# How often a request waiting for its answer checks that its client is still there.
DISCONNECT_POLL_S = 0.05

# The web page: plain HTML, CSS and JavaScript shipped in the package (no build step, no CDN: works offline).
STATIC_DIR = Path(__file__).with_name("static")


class ErrorBody(BaseModel):
    error: str


def _error_doc(text: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": text}


POSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The people found: {people: [person ...], skipped_boxes: [{index, bbox, reason} ...], "
        "image_size: [w, h], model, dataset, keypoint_names, timings}; each person is vitpose's one person schema "
        "(bbox, box_score, score, keypoints, keypoint_scores); skipped_boxes: the given boxes that gave no person "
        "(outside the image, or far larger than it). With format=png or jpeg: the image with the poses drawn (header "
        "X-People: the number of people).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    400: _error_doc("Not an image, an empty or truncated upload, or no `image` field: the reason."),
    401: _error_doc("Missing or wrong API key (the service was started with one)."),
    413: _error_doc("The upload is over the size limit, or the image over the pixel limit."),
    422: _error_doc("Bad boxes, data set, flip_test, kpt_thr or format."),
    503: _error_doc("The queue is full: try again after Retry-After seconds."),
    504: _error_doc("The request took longer than the time limit."),
}

BOXES_FORMAT = "coco-boxes"  # the schema's name for a JSON list of COCO [x, y, w, h] boxes with w, h > 0
BOXES_DOC = "JSON list of COCO [x, y, w, h] person boxes (finite numbers, w and h > 0); without: the detector's"
RAW_TYPES = ("image/jpeg", "image/png", "application/octet-stream")


def pose_fields(datasets: list[str]) -> dict[str, dict[str, Any]]:
    """The options of POST /v1/pose (query parameters or multipart form fields) as JSON schemas."""
    return {
        "boxes": {"type": "string", "format": BOXES_FORMAT, "description": BOXES_DOC},
        "dataset": {"type": "string", "enum": datasets, "description": "ViTPose++: the data set"},
        "flip_test": {"type": "boolean", "description": "average with the mirrored crop (default: the service's)"},
        "kpt_thr": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": f"keypoint score threshold for drawing ({DEFAULT_DRAW_KPT_THR})",
        },
        "format": {
            "type": "string",
            "enum": ["json", *IMAGE_FORMATS],
            "description": "json (default), or png / jpeg: the image with the poses drawn",
        },
    }


def pose_openapi(datasets: list[str]) -> dict[str, Any]:
    """POST /v1/pose's parameters and request body in the OpenAPI schema (`datasets`: the names served)."""
    fields = pose_fields(datasets)
    binary = {"type": "string", "format": "binary"}
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": schema, "description": schema["description"]}
            for name, schema in fields.items()
        ],
        "requestBody": {
            "description": "The image: a multipart upload (field `image`; the options may also be form fields) or "
            "the raw file as the body.",
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {"image": binary, **fields},
                        "additionalProperties": False,
                    },
                    "encoding": {"image": {"contentType": "image/jpeg, image/png, application/octet-stream"}},
                },
                **{media: {"schema": binary} for media in RAW_TYPES},
            },
        },
    }


class ServiceError(VitPoseError):
    """An answer other than 200: `status`, the message, and headers (Retry-After). A `VitPoseError`, as every error
    of the package: what the client can fix is said in the message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class _SharedDetector:
    """The service estimator's detector (built on first use), one call at a time; a request waiting for its turn
    stops waiting when its client goes away or its time is up."""

    def __init__(self, estimator: PoseEstimator, batcher: MicroBatcher) -> None:
        self._estimator = estimator
        self._batcher = batcher
        self._lock = threading.Lock()

    def __call__(self, images: Any, names: Any) -> Any:
        ticket = self._batcher.ticket
        while not self._lock.acquire(timeout=DISCONNECT_POLL_S):
            if ticket is not None:
                ticket.check()
        try:
            return self._estimator.detector(images, names)
        finally:
            self._lock.release()


class PoseService:
    """What the endpoints call: the estimator views that run on the batcher, and the request logic."""

    def __init__(self, estimator: PoseEstimator, batcher: MicroBatcher, *, max_pixels: int | None, name: str) -> None:
        self.estimator = estimator
        self.batcher = batcher
        self.max_pixels = max_pixels
        self.name = name
        self._model = BatchedModel(estimator.model, batcher)
        self._detector = _SharedDetector(estimator, batcher)
        self._views: dict[tuple[Any, Any], PoseEstimator] = {}
        self._lock = threading.Lock()

    def view(self, dataset: str | None, flip_test: bool | None) -> PoseEstimator:
        """The estimator with the batched model, for a request's data set and flip test (cached)."""
        flip = self.estimator.flip_test if flip_test is None else flip_test
        key = (dataset, flip)
        with self._lock:
            found = self._views.get(key)
        if found is not None:
            return found
        base = self.estimator
        if dataset is None:
            view = copy.copy(base)
            view.model = self._model
            view.flip_test = flip
        else:
            try:
                view = PoseEstimator(
                    self._model,
                    base.processor,
                    None,
                    flip_test=flip,
                    dataset=dataset,
                    nms_thr=base.nms_thr,
                    rescore_thr=base.rescore_thr,
                    det_thr=base.det_thr,
                )
            except (VitPoseError, KeyError) as err:
                raise ServiceError(422, f"dataset {dataset!r}: {_one_line(err)}") from None
        view.batch_size = self.batcher.max_batch
        view._detector = self._detector
        with self._lock:
            return self._views.setdefault(key, view)

    def estimate(
        self,
        data: bytes,
        boxes: Any,
        dataset: str | None,
        flip_test: bool | None,
        ticket: Ticket,
        image_format: str | None = None,
        kpt_thr: float | None = None,
    ) -> dict[str, Any] | tuple[bytes, str, int]:
        """The answer for one image: the JSON dict, or (encoded image, media type, people) for `image_format`."""
        start = time.perf_counter()
        estimator = self.view(dataset, flip_test)
        with self.batcher.serving(ticket):  # the handler reserved the request's place before reading the upload
            rgb = self._read(data)
            read = time.perf_counter()
            ticket.check()
            result = estimator.predict([rgb], boxes=None if boxes is None else [boxes])[0]
        done = time.perf_counter()
        if image_format is not None:
            ticket.check()
            media_type, suffix = IMAGE_FORMATS[image_format]
            thr = DEFAULT_DRAW_KPT_THR if kpt_thr is None else kpt_thr
            return encode_image(result.draw(rgb, kpt_thr=thr), suffix), media_type, len(result)
        skipped = [] if boxes is None else box_misfits(boxes, result.image_size)
        return {
            "people": result.people(),
            "skipped_boxes": [{"index": row, "bbox": boxes[row], "reason": reason} for row, reason in skipped],
            "image_size": list(result.image_size),
            "model": self.name,
            "dataset": result.dataset.name,
            "keypoint_names": list(result.dataset.keypoint_names),
            "timings": {
                "read_ms": round((read - start) * 1000, 3),
                "pose_ms": round((done - read) * 1000, 3),
                "total_ms": round((done - start) * 1000, 3),
            },
        }

    def _read(self, data: bytes) -> Any:
        if not data:
            raise ServiceError(400, "empty upload (0 bytes)")
        if self.max_pixels is not None:
            from PIL import Image

            try:
                with Image.open(io.BytesIO(data)) as image:  # the header only
                    width, height = image.size
            except Exception:  # not an image: decode_image below says why
                width = height = 0
            if width * height > self.max_pixels:
                raise ServiceError(
                    413,
                    f"image of {width} x {height} = {width * height:,} pixels, over the limit of "
                    f"{self.max_pixels:,} pixels",
                )
        try:
            return decode_image(data)
        except ImageReadError as err:  # 413 over the decompression-bomb limit of the reader (--max-pixels 0)
            raise ServiceError(413 if err.too_large else 400, err.reason) from None

    def model_info(self) -> dict[str, Any]:
        """What `GET /v1/model` answers: the default data set's layout, every data set served with its layout
        (`layouts`: keypoint names, skeleton, colours, for drawing), the input size (w, h), the device and dtype the
        network runs on and in, and the batching."""
        est = self.estimator
        cfg = est.model.config
        height, width = cfg.backbone_config.image_size
        infos = [est.dataset]
        if cfg.selects_dataset:  # ViTPose++: every head, each with the layout the estimator would use for it
            infos = [dataset_info_for(est.model, i) for i in range(1 + len(cfg.associate_num_labels))]
        return {
            "model": self.name,
            "dataset": est.dataset.name,
            "datasets": [info.name for info in infos],
            "keypoint_names": list(est.dataset.keypoint_names),
            "skeleton": [list(edge) for edge in est.dataset.skeleton],
            "layouts": {info.name: _layout(info) for info in infos},
            "input_size": [width, height],
            "flip_test": est.flip_test,
            "device": str(est.device),
            "dtype": dtype_name(est.model.dtype),
            "max_batch": self.batcher.max_batch,
        }


def _layout(info: Any) -> dict[str, Any]:
    """A data set's drawing layout: keypoint names, skeleton (index pairs), RGB colours per keypoint and link."""
    return {
        "display_name": info.display_name or info.name,
        "keypoint_names": list(info.keypoint_names),
        "skeleton": [list(edge) for edge in info.skeleton],
        "keypoint_colors": [list(c) for c in info.keypoint_colors],
        "link_colors": [list(c) for c in info.link_colors],
    }


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def parse_boxes(text: str | None) -> list[list[float]] | None:
    """The `boxes` parameter: a JSON list of COCO [x, y, w, h] boxes with finite values and w, h > 0 (422 else)."""
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ServiceError(422, f"boxes: not JSON ({err})") from None
    if not isinstance(value, list):
        raise ServiceError(422, "boxes: expected a JSON list of [x, y, w, h] boxes")
    boxes = []
    for i, box in enumerate(value):
        ok = isinstance(box, list) and len(box) == 4
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box)
        if not ok or box[2] <= 0 or box[3] <= 0:
            raise ServiceError(422, f"boxes[{i}]: expected [x, y, w, h] with finite numbers and w, h > 0, got {box!r}")
        boxes.append([float(v) for v in box])
    return boxes


def _parse_bool(text: str, what: str) -> bool:
    """`true` or `false` (as JSON and the OpenAPI schema write them); 422 for anything else."""
    lowered = text.strip()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ServiceError(422, f"{what}: expected true or false, got {text!r}")


def _parse_thr(text: str) -> float:
    """`kpt_thr`: a number in [0, 1]; 422 for anything else."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise ServiceError(422, f"kpt_thr: expected a number in [0, 1], got {text!r}")
    return value


async def _unless_gone(request: Request, work: asyncio.Future, ticket: Ticket) -> Any:
    """`work`'s result; if the client disconnects first, its ticket is cancelled (its queued crops are dropped and
    it stops at its next step) and `RequestCancelled` raised once the work has stopped."""
    while True:
        done, _ = await asyncio.wait({work}, timeout=DISCONNECT_POLL_S)
        if done:
            return work.result()
        if await request.is_disconnected():
            ticket.cancel()
            try:
                await work  # returns soon: the thread stops at its next step
            except Exception:
                pass
            raise RequestCancelled("the client went away")


def _parse_format(text: str) -> str | None:
    """`format`: None for JSON, else a key of IMAGE_FORMATS (422 for anything else)."""
    if text == "json":
        return None
    if text not in IMAGE_FORMATS:
        raise ServiceError(422, f"format: expected json, {', '.join(IMAGE_FORMATS)}, got {text!r}")
    return text


def create_app(
    estimator: PoseEstimator,
    *,
    max_batch: int = 16,
    max_wait_ms: float = 5,
    queue_size: int = 64,
    max_upload_mb: float = 20,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    timeout_s: float = 30,
    api_key: str | None = None,
    model_name: str | None = None,
) -> FastAPI:
    """The service of `estimator` (loaded once; its model then runs only on the batcher's worker thread)."""
    batcher = MicroBatcher(estimator.model, max_batch=max_batch, max_wait_ms=max_wait_ms, queue_size=queue_size)
    name = model_name or getattr(estimator.model.config, "_name_or_path", "") or "vitpose"
    service = PoseService(estimator, batcher, max_pixels=max_pixels, name=str(name))
    metrics = ServiceMetrics(batcher)
    max_bytes = int(max_upload_mb * 1024 * 1024)
    key_bytes = None if not api_key else api_key.encode()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.open()  # again if a server stopped and started the app anew
        yield
        batcher.close()  # after the last accepted request: what is queued is computed first

    from vitpose import __version__

    app = FastAPI(title="vitpose", version=__version__, lifespan=lifespan)
    app.state.service = service
    app.state.batcher = batcher
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, err: ServiceError) -> JSONResponse:
        return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in err.errors()]
        return JSONResponse({"error": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception) -> JSONResponse:  # a bug of ours: said, not hidden
        return JSONResponse({"error": f"internal error ({type(err).__name__}: {_one_line(err)})"}, status_code=500)

    def check_key(request: Request) -> None:
        if key_bytes is None:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), key_bytes):
            raise ServiceError(
                401, "missing or wrong API key (X-API-Key or Authorization: Bearer)", {"WWW-Authenticate": "Bearer"}
            )

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise ServiceError(413, f"upload of {int(length):,} bytes, over the limit of {max_bytes:,} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():  # refused while streaming, not after reading it all
            size += len(chunk)
            if size > max_bytes:
                raise ServiceError(413, f"upload over the limit of {max_bytes:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    datasets = service.model_info()["datasets"]
    option_names = list(pose_fields(datasets))

    def parse_options(pairs: Any, where: str) -> dict[str, Any]:
        """The options given in the query or the form, each checked (422 for an unknown, repeated or bad one)."""
        given: dict[str, str] = {}
        for key, value in pairs:
            if key not in option_names:
                raise ServiceError(422, f"unknown option {key!r} ({where}); the options are {', '.join(option_names)}")
            if key in given or not isinstance(value, str):
                raise ServiceError(422, f"option {key!r} given twice in the {where}, or as a file: give it once")
            given[key] = value
        parsed: dict[str, Any] = {}
        if "boxes" in given:
            parsed["boxes"] = parse_boxes(given["boxes"])
        if "dataset" in given:
            if given["dataset"] not in datasets:
                raise ServiceError(422, f"dataset {given['dataset']!r}: this model serves {', '.join(datasets)}")
            parsed["dataset"] = given["dataset"]
        if "flip_test" in given:
            parsed["flip_test"] = _parse_bool(given["flip_test"], "flip_test")
        if "kpt_thr" in given:
            parsed["kpt_thr"] = _parse_thr(given["kpt_thr"])
        if "format" in given:
            parsed["format"] = _parse_format(given["format"])
        return parsed

    @app.post("/v1/pose", responses=POSE_RESPONSES, openapi_extra=pose_openapi(datasets), summary="Poses in an image")
    async def pose(request: Request) -> Response:
        ticket = Ticket(timeout_s)
        check_key(request)
        options = parse_options(request.query_params.multi_items(), "query")
        try:  # a place in the queue before the upload is read: a refusal under overload costs next to nothing
            batcher.reserve(ticket)
        except QueueFull as err:
            raise ServiceError(503, str(err), {"Retry-After": "1"}) from None
        try:
            return await answer_pose(request, ticket, options)
        finally:
            batcher.release(ticket)

    async def answer_pose(request: Request, ticket: Ticket, options: dict[str, Any]) -> Response:
        body = await read_body(request)
        if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            request._body = body  # parsed from the bytes read (and counted) above
            try:
                form = await request.form()
            except Exception as err:
                raise ServiceError(400, f"cannot parse the multipart body: {err}") from None
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise ServiceError(400, "no file in the multipart field 'image'")
            try:
                data = await upload.read()
                fields = [(k, v) for k, v in form.multi_items() if k != "image"]
            finally:
                await form.close()  # the upload's spooled file, at once (not left to the garbage collector)
            options.update(parse_options(fields, "form"))  # a form field's value wins over the query's
        else:
            data = body
        given, dataset, flip = options.get("boxes"), options.get("dataset"), options.get("flip_test")
        thr, image_format = options.get("kpt_thr"), options.get("format")
        work = asyncio.ensure_future(
            run_in_threadpool(service.estimate, data, given, dataset or None, flip, ticket, image_format, thr)
        )
        try:
            answer = await _unless_gone(request, work, ticket)
        except RequestCancelled:
            metrics.cancelled.inc()
            return Response(status_code=499)  # nobody reads it: the client has gone
        except QueueFull as err:  # the worker closed (shutting down) while the request was being read
            raise ServiceError(503, str(err), {"Retry-After": "1"}) from None
        except RequestTimeout as err:
            raise ServiceError(504, f"{err} ({timeout_s:g} s)") from None
        except ServiceError:
            raise  # already an answer (413 over the pixel limit, 422 for the data set, ...)
        except ImageReadError as err:
            raise ServiceError(400, err.reason) from None
        except VitPoseError as err:
            raise ServiceError(422, _one_line(err)) from None
        if isinstance(answer, tuple):
            encoded, media_type, people = answer
            return Response(encoded, media_type=media_type, headers={"X-People": str(people)})
        return JSONResponse(answer)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=metrics.content_type)

    @app.get("/v1/model", responses={401: _error_doc("Missing or wrong API key.")}, summary="The model served")
    def model(request: Request) -> dict[str, Any]:
        check_key(request)
        return service.model_info()

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", summary="Alive")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: _error_doc("The queue is full.")}, summary="Model loaded, queue not full")
    def readyz() -> JSONResponse:
        body = {"ready": not batcher.full, "pending": batcher.pending, "queue_size": batcher.queue_size}
        return JSONResponse(body, status_code=503 if batcher.full else 200)

    return app


__all__ = ["DEFAULT_MAX_PIXELS", "ServiceError", "create_app", "parse_boxes"]
