"""The web app: ``GET /`` (the page), ``POST /api/predict``, ``GET /api/health``, the OpenAPI schema.

Everything the page needs is served here (its HTML, JS, CSS and the country outlines): no CDN, no
tile server, so it works on an offline machine. FastAPI's Swagger and ReDoc pages are off because
they load their scripts from a CDN; the schema itself is at ``/api/openapi.json``.

Errors are JSON, ``{"error": {"code", "message"}}``, with a 4xx status for every bad request (413:
upload or image too large; 415: not an image; 422: truncated or corrupt image, bad parameter; 503:
busy). Nothing is written to disk by the app; uploads are held in memory, and multipart parsing
spools large parts only to the system's temporary folder.
"""

from __future__ import annotations

import asyncio
import logging
import math
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..._version import __version__
from ...data.images.records import UnreadableImageError
from ...inference.evidence import Constraints, NoAllowedMass
from ...inference.evidence.constraints import parse_codes
from .assets import countries_json, world_outlines_json
from .predictor import Predictor
from .work import Busy, WorkQueue

__all__ = ["create_app", "ApiError"]

#: Room for the multipart envelope (boundaries, headers, small fields) around the image itself.
FORM_OVERHEAD = 64 * 1024
#: Sent with every response: the page loads nothing from elsewhere, and browsers must not guess types.
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                                               "frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
log = logging.getLogger("globeflow.server")


class ApiError(Exception):
    """A request error with its HTTP status and a stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class _TooLarge(Exception):
    pass


async def _read_form(request: Request, limit: int, timeout: float, max_files: int = 1) -> FormData:
    """The multipart form, refusing bodies over ``limit`` (+ envelope) without reading them whole."""
    cap = limit + FORM_OVERHEAD
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise ApiError(413, "upload_too_large", f"upload of {int(length)} bytes exceeds the limit of {limit} bytes")
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > cap:
            raise _TooLarge()
        return message

    try:
        return await asyncio.wait_for(Request(request.scope, receive).form(max_files=max_files, max_fields=12),
                                      timeout)
    except _TooLarge:
        raise ApiError(413, "upload_too_large", f"upload exceeds the limit of {limit} bytes") from None
    except asyncio.TimeoutError:
        # A client that trickles its upload would otherwise hold a queue slot forever.
        raise ApiError(408, "upload_timeout", f"the upload did not arrive within {timeout:g} s") from None


def _number(form: FormData, request: Request, name: str, default: float, low: float, high: float,
            integer: bool = False) -> float:
    raw = form.get(name, request.query_params.get(name))
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw)) if integer else float(str(raw))
    except ValueError:
        raise ApiError(422, "bad_parameter",
                       f"{name} must be a{'n integer' if integer else ' number'}, got {_short(raw)}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise ApiError(422, "bad_parameter", f"{name} must be in [{low:g}, {high:g}], got {_short(raw)}")
    return value


def _short(value: Any, limit: int = 40) -> str:
    text = repr(str(value))
    return text if len(text) <= limit else text[:limit] + "...'"


def _constraints(form: FormData, request: Request) -> Constraints:
    """What the request says is known of the place: ``within`` / ``exclude`` (comma-separated ISO
    country codes) and ``on_land`` (1/true); a bad value is a 422 naming it."""
    def text(name: str) -> str:
        return str(form.get(name, request.query_params.get(name, "")) or "")

    land = text("on_land").strip().lower()
    if land not in ("", "0", "1", "true", "false"):
        raise ApiError(422, "bad_parameter", f"on_land must be 1 or 0, got {_short(land)}")
    try:
        constraints = Constraints(within=parse_codes(text("within")), exclude=parse_codes(text("exclude")),
                                  on_land=land in ("1", "true"))
        constraints.check_known()
    except ValueError as exc:
        raise ApiError(422, "bad_constraints", str(exc).replace("--", "")) from None
    return constraints


def create_app(predictor: Predictor) -> FastAPI:
    """The app around one :class:`Predictor` (its config sets the limits)."""
    config = predictor.config
    queue = WorkQueue(config.max_pending)
    app = FastAPI(title="globeflow", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Where on Earth was this photo taken? A probability distribution over the globe.")
    app.state.queue, app.state.predictor = queue, predictor
    static = resources.files("globeflow.apps.server") / "static"

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "bad_request", str(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The server keeps answering. Details go to the server's log, not to the client.
        log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal_error", "internal error; the server's log has the details")

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    @app.get("/assets/world.json", include_in_schema=False)
    async def world() -> Response:
        return Response(world_outlines_json(), media_type="application/json",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/assets/countries.json", include_in_schema=False)
    async def countries() -> Response:
        return Response(countries_json(), media_type="application/json",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/api/health", summary="Liveness, the model and the queue")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "model": predictor.describe(),
                "queue": {"pending": queue.pending, "max_pending": queue.max_pending, "completed": queue.completed},
                "limits": {"max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels,
                           "max_guidance": config.max_guidance, "max_photos": config.max_photos}}

    @app.post("/api/predict", summary="Where was this photo taken?", openapi_extra=_PREDICT_SCHEMA,
              responses={413: {"description": "upload or image too large"}, 415: {"description": "not an image"},
                         422: {"description": "truncated or corrupt image, or a bad parameter"},
                         503: {"description": "busy: every slot of the work queue is taken"}})
    async def predict(request: Request) -> JSONResponse:
        try:
            async with queue.slot():
                form = await _read_form(request, config.max_upload_bytes * config.max_photos, config.read_timeout_s,
                                        max_files=config.max_photos)
                uploads = form.getlist("image")
                if not uploads or not all(isinstance(u, UploadFile) for u in uploads):
                    raise ApiError(422, "missing_image", "send the photo as the multipart form field 'image' "
                                                         "(several 'image' fields: photos of one place, fused)")
                guidance = _number(form, request, "guidance", 0.0, 0.0, config.max_guidance)
                seed = int(_number(form, request, "seed", 0, 0, 2**31 - 1, integer=True))
                constraints = _constraints(form, request)
                photos = []
                for upload in uploads:
                    name = upload.filename or "upload"
                    data = await upload.read(config.max_upload_bytes + 1)
                    if len(data) > config.max_upload_bytes:
                        raise ApiError(413, "upload_too_large",
                                       f"{name} exceeds the limit of {config.max_upload_bytes} bytes")
                    if not data:
                        raise ApiError(422, "empty_image", f"{name}: the uploaded file is empty")
                    photos.append((data, name))
                answer = await queue.run(predictor.answer_photos, photos, guidance, seed, constraints)
        except NoAllowedMass as exc:
            raise ApiError(422, "constraints_contradict_photo", str(exc)) from None
        except Busy as exc:
            return _error(503, "busy", f"the server is busy ({exc}); retry in a moment", {"Retry-After": "1"})
        except ClientDisconnect:
            return _error(400, "client_disconnected", "the client went away before the upload arrived")
        except UnreadableImageError as exc:
            reason = exc.reason
            if reason.startswith("decompression bomb"):
                raise ApiError(413, "image_too_large", str(exc)) from None
            if reason.startswith("not an image"):
                raise ApiError(415, "not_an_image", f"{exc} (send a JPEG, PNG, WebP, BMP or TIFF photo)") from None
            raise ApiError(422, "unreadable_image", str(exc)) from None
        return JSONResponse(answer)

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.router.on_shutdown.append(queue.close)
    return app


_PREDICT_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image"],
    "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "the photo (JPEG, PNG, WebP, BMP, TIFF); several: photos of one place, fused "
                                 "into one answer (evidence.contributions says what each added)"},
        "within": {"type": "string", "description": "only these countries: comma-separated ISO codes, e.g. FR,DE"},
        "exclude": {"type": "string", "description": "not these countries (ISO codes)"},
        "on_land": {"type": "string", "enum": ["0", "1"], "description": "1: only on land"},
        "guidance": {"type": "number", "minimum": 0, "default": 0,
                     "description": "classifier-free guidance scale w: 0 is the calibrated density, larger is sharper"},
        "seed": {"type": "integer", "minimum": 0, "default": 0, "description": "random seed of the samples"},
    }}}}}}
