"""The HTTP service: `create_app(estimator)` -> a FastAPI app (POST /v1/pose, GET /v1/model, /healthz, /readyz).

The detector (when a request gives no boxes) runs in the request's thread, through the service's one estimator's
detector under a lock: it is its own network with its own batching over images, and keeping it off the worker
keeps the worker's batches to pose crops only, so a slow detection never delays other requests' keypoints.
"""

from __future__ import annotations

import copy
import hmac
import io
import json
import math
import os
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from vitpose.errors import ImageReadError, VitPoseError
from vitpose.inference.estimator import PoseEstimator, dataset_info_for
from vitpose.serve import DEFAULT_MAX_PIXELS
from vitpose.serve.batching import BatchedModel, MicroBatcher, QueueFull, RequestTimeout

# The web page: plain HTML, CSS and JavaScript shipped in the package (no build step, no CDN: works offline).
STATIC_DIR = Path(__file__).with_name("static")


class ErrorBody(BaseModel):
    error: str


def _error_doc(text: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": text}


POSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The people found: {people: [person ...], image_size: [w, h], model, dataset, "
        "keypoint_names, timings}; each person is vitpose's one person schema (bbox, box_score, score, "
        "keypoints, keypoint_scores)."
    },
    400: _error_doc("Not an image, an empty or truncated upload, or no `image` field: the reason."),
    401: _error_doc("Missing or wrong API key (the service was started with one)."),
    413: _error_doc("The upload is over the size limit, or the image over the pixel limit."),
    422: _error_doc("Bad boxes, data set, flip_test or kpt_thr."),
    503: _error_doc("The queue is full: try again after Retry-After seconds."),
    504: _error_doc("The request took longer than the time limit."),
}

POSE_BODY = {
    "requestBody": {
        "description": "The image: a multipart upload (field `image`, optional form fields `boxes`, `dataset`, "
        "`flip_test`, `kpt_thr`, as the query parameters) or the raw file as the body.",
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "boxes": {"type": "string", "description": "JSON list of COCO [x, y, w, h] boxes"},
                        "dataset": {"type": "string"},
                        "flip_test": {"type": "boolean"},
                        "kpt_thr": {"type": "number"},
                    },
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
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
    """The service estimator's detector (built on first use), one call at a time."""

    def __init__(self, estimator: PoseEstimator) -> None:
        self._estimator = estimator
        self._lock = threading.Lock()

    def __call__(self, images: Any, names: Any) -> Any:
        with self._lock:
            return self._estimator.detector(images, names)


class PoseService:
    """What the endpoints call: the estimator views that run on the batcher, and the request logic."""

    def __init__(
        self, estimator: PoseEstimator, batcher: MicroBatcher, *, max_pixels: int | None, timeout_s: float, name: str
    ) -> None:
        self.estimator = estimator
        self.batcher = batcher
        self.max_pixels = max_pixels
        self.timeout_s = timeout_s
        self.name = name
        self._model = BatchedModel(estimator.model, batcher)
        self._detector = _SharedDetector(estimator)
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

    def estimate(self, data: bytes, boxes: Any, dataset: str | None, flip_test: bool | None) -> dict[str, Any]:
        start = time.perf_counter()
        estimator = self.view(dataset, flip_test)
        with self.batcher.admit(self.timeout_s):
            rgb = self._read(data)
            read = time.perf_counter()
            result = estimator.predict([rgb], boxes=None if boxes is None else [boxes])[0]
        done = time.perf_counter()
        return {
            "people": result.people(),
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
            except Exception:  # not an image: load_image below says why
                width = height = 0
            if width * height > self.max_pixels:
                raise ServiceError(
                    413,
                    f"image of {width} x {height} = {width * height:,} pixels, over the limit of "
                    f"{self.max_pixels:,} pixels",
                )
        # load_image (the package's one image loader) reads files: the upload goes to a temporary one.
        handle, path = tempfile.mkstemp(prefix="vitpose-upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            from vitpose.media import load_image

            return load_image(path)[0]
        except ImageReadError as err:
            raise ServiceError(400, err.reason) from None
        finally:
            os.unlink(path)

    def model_info(self) -> dict[str, Any]:
        """What `GET /v1/model` answers: the default data set's layout, every data set served with its layout
        (`layouts`: keypoint names, skeleton, colours, for drawing), the input size (w, h) and the batching."""
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


def _parse_bool(text: Any, what: str) -> bool | None:
    if text is None or isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ServiceError(422, f"{what}: expected true or false, got {text!r}")


def _parse_thr(text: Any) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise ServiceError(422, f"kpt_thr: expected a number in [0, 1], got {text!r}")
    return value


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
    service = PoseService(estimator, batcher, max_pixels=max_pixels, timeout_s=timeout_s, name=str(name))
    max_bytes = int(max_upload_mb * 1024 * 1024)
    key_bytes = None if not api_key else api_key.encode()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()

    from vitpose import __version__

    app = FastAPI(title="vitpose", version=__version__, lifespan=lifespan)
    app.state.service = service
    app.state.batcher = batcher

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

    @app.post("/v1/pose", responses=POSE_RESPONSES, openapi_extra=POSE_BODY, summary="Poses of the people in an image")
    async def pose(
        request: Request,
        boxes: str | None = Query(None, description="JSON list of COCO [x, y, w, h] person boxes"),
        dataset: str | None = Query(None, description="ViTPose++: the data set (name or index)"),
        flip_test: str | None = Query(None, description="average with the mirrored crop (true/false)"),
        kpt_thr: str | None = Query(None, description="keypoint score threshold in [0, 1] (for drawing)"),
    ) -> JSONResponse:
        check_key(request)
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
            data = await upload.read()
            boxes = form.get("boxes", boxes)  # type: ignore[assignment]
            dataset = form.get("dataset", dataset)  # type: ignore[assignment]
            flip_test = form.get("flip_test", flip_test)  # type: ignore[assignment]
            kpt_thr = form.get("kpt_thr", kpt_thr)  # type: ignore[assignment]
        else:
            data = body
        given = parse_boxes(boxes)
        flip = _parse_bool(flip_test, "flip_test")
        _parse_thr(kpt_thr)
        try:
            answer = await run_in_threadpool(service.estimate, data, given, dataset or None, flip)
        except QueueFull as err:
            raise ServiceError(503, str(err), {"Retry-After": "1"}) from None
        except RequestTimeout as err:
            raise ServiceError(504, f"{err} ({timeout_s:g} s)") from None
        except ServiceError:
            raise  # already an answer (413 over the pixel limit, 422 for the data set, ...)
        except ImageReadError as err:
            raise ServiceError(400, err.reason) from None
        except VitPoseError as err:
            raise ServiceError(422, _one_line(err)) from None
        return JSONResponse(answer)

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
