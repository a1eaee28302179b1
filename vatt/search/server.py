"""`python -m vatt.search serve INDEX_DIR`: a local web page to search an index (Starlette + uvicorn).

Bound to 127.0.0.1 unless told otherwise. Everything the page needs is served from `static/` (no CDN, no
external fonts or scripts). Media is served by file id, so only files of the index can be fetched; a bad
request (unknown id, absurd k, empty query, an upload of the wrong type or size) gets a 4xx with a JSON
`{"error": ...}`, never a traceback.

    GET  /                          the page
    GET  /api/info                  what the index holds
    GET  /api/search?q=TEXT&k=&per_file=      text → video windows (S_vt)
    POST /api/search  (multipart: file, k, per_file)   audio or video → video windows (S_va)
    GET  /media/{file id}           an indexed file (range requests: the player seeks)
    GET  /thumbnail/{window id}     a JPEG of a video window's first frame
"""
from __future__ import annotations

import functools
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import simplejpeg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vatt.data import transforms
from vatt.data.decode import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, MediaError, MediaFile
from vatt.errors import UserError
from vatt.search.query import Hit, Searcher

STATIC = Path(__file__).with_name("static")
MAX_UPLOAD_BYTES = 256 * 2**20
THUMBNAIL_SIZE = 160  # pixels on the short side
THUMBNAILS_CACHED = 1024
UPLOAD_MODALITIES = {**{e: "video" for e in VIDEO_EXTENSIONS}, **{e: "audio" for e in AUDIO_EXTENSIONS}}


def _problem(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def _k(value: str | None) -> int:
    try:
        return int(value) if value not in (None, "") else 10
    except ValueError:
        raise _problem(400, f"k must be a whole number, got {value!r}") from None


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "on", "yes")


def thumbnail_jpeg(path: str, time: float) -> bytes:
    """The frame shown at `time`, its short side resized to THUMBNAIL_SIZE, as JPEG."""
    with MediaFile(path) as media:
        frame = media.frames_at([max(time, media.info.start)])  # [1, H, W, 3]
    small = transforms.resize_short_side(transforms.frames_tensor(frame), THUMBNAIL_SIZE)  # [1, 3, h, w]
    return simplejpeg.encode_jpeg(np.ascontiguousarray(small[0].permute(1, 2, 0).numpy()), quality=85)


class SearchPage:
    """The routes over one Searcher; searches run in worker threads, one at a time (one model, one database)."""

    def __init__(self, searcher: Searcher):
        self.searcher = searcher
        self.lock = threading.Lock()
        self.thumbnail = functools.lru_cache(maxsize=THUMBNAILS_CACHED)(self._thumbnail)

    def _locked(self, function, *args):
        with self.lock:
            return function(*args)

    async def _run(self, function, *args):
        try:
            return await run_in_threadpool(self._locked, function, *args)
        except UserError as exc:
            raise _problem(400, str(exc)) from None

    def _answer(self, hits: list[Hit]) -> JSONResponse:
        return JSONResponse({"results": [{**h.to_dict(), "name": Path(h.path).name, "media": f"/media/{h.file}",
                                          "thumbnail": f"/thumbnail/{h.window}" if h.kind == "video" else None}
                                         for h in hits]})

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def info(self, request: Request) -> Response:
        counts = await self._run(self.searcher.index.counts)
        return JSONResponse({"index": str(self.searcher.index.directory), "model": self.searcher.model.path, **counts})

    async def search_text(self, request: Request) -> Response:
        text = (request.query_params.get("q") or "").strip()
        if not text:
            raise _problem(400, "the query is empty: type what you are looking for")
        hits = await self._run(self.searcher.text, [text], _k(request.query_params.get("k")),
                               _flag(request.query_params.get("per_file")))
        return self._answer(hits[0])

    async def search_upload(self, request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_BYTES:
            raise _problem(413, f"uploads are limited to {MAX_UPLOAD_BYTES // 2**20} MiB")
        form = await request.form(max_files=1, max_fields=8)
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise _problem(400, "attach an audio or video file as 'file'")
        suffix = Path(upload.filename).suffix.lower()
        if suffix not in UPLOAD_MODALITIES:
            raise _problem(415, f"{upload.filename}: not an audio or video file (accepted: "
                                f"{', '.join(sorted(UPLOAD_MODALITIES))})")
        k, per_file = _k(form.get("k")), _flag(form.get("per_file"))
        handle, name = tempfile.mkstemp(suffix=suffix, prefix="vatt-query-")
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := await upload.read(2**20):
                    out.write(chunk)
            hits = await self._run(self.searcher.media, name, UPLOAD_MODALITIES[suffix], k, per_file)
        except HTTPException as exc:  # name the user's file, not the temporary copy
            raise _problem(exc.status_code, str(exc.detail).replace(name, upload.filename)) from None
        finally:
            os.unlink(name)
        return self._answer(hits)

    def _indexed_file(self, file_id: int) -> str:
        path = self.searcher.index.file_path(file_id)
        if path is None or not Path(path).is_file():
            raise _problem(404, f"no indexed file {file_id}")
        return path

    async def media(self, request: Request) -> Response:
        path = await run_in_threadpool(self._locked, self._indexed_file, request.path_params["file_id"])
        return FileResponse(path)

    def _thumbnail(self, window_id: int) -> bytes:
        window = self.searcher.index.window(window_id)
        if window is None or window.kind != "video":
            raise _problem(404, f"no video window {window_id}")
        try:
            return thumbnail_jpeg(window.path, window.start)
        except MediaError as exc:
            raise _problem(404, f"no thumbnail: {exc}") from None

    async def thumbnail_image(self, request: Request) -> Response:
        jpeg = await run_in_threadpool(self._locked, self.thumbnail, request.path_params["window_id"])
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


async def _json_problem(request: Request, exc: HTTPException) -> Response:
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


async def _hidden_failure(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)


def create_app(searcher: Searcher) -> Starlette:
    page = SearchPage(searcher)
    routes = [
        Route("/", page.page),
        Route("/api/info", page.info),
        Route("/api/search", page.search_text, methods=["GET"]),
        Route("/api/search", page.search_upload, methods=["POST"]),
        Route("/media/{file_id:int}", page.media),
        Route("/thumbnail/{window_id:int}", page.thumbnail_image),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _json_problem, Exception: _hidden_failure})


def serve(searcher: Searcher, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn
    print(f"serving {searcher.index.directory} on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(searcher), host=host, port=port, log_level="warning")
