"""HTTP service: FastAPI app with transcribe / phonemize / compare endpoints and a web page.

The model is loaded once (lifespan). Inference runs on one worker thread fed by a queue that groups
concurrent requests into batches, so the CPU is used well and threads are never oversubscribed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from .audio import AudioError, AudioTooLong, decode_audio
from .metrics import ErrorCounts, edit_ops
from .transcribe import Recognizer

PAGE = Path(__file__).parent / "static" / "index.html"


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    max_upload_bytes: int = 25 * 1024 * 1024
    max_seconds: float = 600.0  # longest audio accepted
    timeout_seconds: float = 120.0  # a request waiting longer (queue + inference) gets 504
    max_batch: int = 8  # requests run together
    batch_wait_seconds: float = 0.01  # how long the batcher waits for company


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Batcher:
    """Collects prepared waveforms from concurrent requests and runs them through the model together."""

    def __init__(self, recognizer: Recognizer, limits: ServerLimits):
        self.recognizer, self.limits = recognizer, limits
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unispeech-infer")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def logits(self, wav: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((wav, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            deadline = loop.time() + self.limits.batch_wait_seconds
            while len(items) < self.limits.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    items.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
            items = [(w, f) for w, f in items if not f.done()]  # callers that timed out
            if not items:
                continue
            try:
                results = await loop.run_in_executor(
                    self.executor, self.recognizer.logits_batch, [w for w, _ in items], len(items)
                )
                for (_, future), logits in zip(items, results):
                    if not future.done():
                        future.set_result(logits)
            except Exception as e:  # reported to every waiting request; the batcher keeps serving
                for _, future in items:
                    if not future.done():
                        future.set_exception(e)


def create_app(
    model: str | None = None,
    recognizer: Recognizer | None = None,
    limits: ServerLimits = ServerLimits(),
    model_name: str | None = None,
):
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if recognizer is None:
            from . import load_model

            app.state.recognizer = load_model(model)
        else:
            app.state.recognizer = recognizer
        app.state.model_name = model_name or model or "bundled demo model"
        app.state.batcher = Batcher(app.state.recognizer, limits)
        app.state.batcher.start()
        yield
        await app.state.batcher.stop()

    app = FastAPI(
        title="unispeech",
        version=_version(),
        lifespan=lifespan,
        description="Speech to phones with UniSpeech CTC models (Kyrgyz first).",
    )

    @app.exception_handler(ApiError)
    async def api_error(_, e: ApiError):
        return JSONResponse({"error": e.message}, status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_, e: RequestValidationError):
        fields = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        return JSONResponse({"error": f"invalid request: {fields}"}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return PAGE.read_text(encoding="utf-8")

    @app.get("/health")
    async def health(request: Request):
        return {
            "status": "ok",
            "model": request.app.state.model_name,
            "queued": request.app.state.batcher.queue.qsize(),
        }

    add_speech_routes(app, limits)
    return app


def add_speech_routes(app: FastAPI, limits: ServerLimits) -> None:
    """The API: transcribe, phonemize, compare."""

    @app.post("/v1/transcribe", summary="Audio (multipart field `file`, or the raw body) -> phones with times")
    async def transcribe(request: Request):
        data, _ = await read_upload(request, limits)
        return await run_transcription(request, data, limits)

    @app.post("/v1/phonemize", summary='Text -> phones: JSON {"text": str | [str], "word_boundaries": bool}')
    async def phonemize_route(request: Request):
        body = await read_json(request)
        text = body.get("text")
        if not isinstance(text, (str, list)) or (isinstance(text, list) and not all(isinstance(t, str) for t in text)):
            raise ApiError(422, "field 'text' must be a string or a list of strings")
        from .g2p import phonemize

        phones = phonemize(text, word_boundaries=bool(body.get("word_boundaries", False)))
        return {"phones": phones}

    @app.post("/v1/compare", summary="Audio + Kyrgyz text -> recognised vs expected phones, aligned, with PER")
    async def compare(request: Request):
        data, fields = await read_upload(request, limits)
        text = (fields.get("text") or request.query_params.get("text") or "").strip()
        if not text:
            raise ApiError(422, "missing field 'text' (the sentence the speaker read)")
        from .g2p import phonemize

        expected = phonemize(text)
        if not expected:
            raise ApiError(422, "the text has no pronounceable words")
        result = await run_transcription(request, data, limits)
        ops = edit_ops(expected, result["phones"])
        counts = ErrorCounts().add(ops)
        return {
            **result,
            "expected": expected,
            "per": counts.per,
            "substitutions": counts.substitutions,
            "deletions": counts.deletions,
            "insertions": counts.insertions,
            "alignment": [{"op": op, "expected": r, "recognised": h} for op, r, h in ops],
        }


async def read_upload(request, limits: ServerLimits) -> tuple[bytes, dict]:
    """The audio bytes (multipart `file`, or the raw body) and any other form fields."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limits.max_upload_bytes + 64 * 1024:
        raise ApiError(413, f"upload larger than the limit of {limits.max_upload_bytes} bytes")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict = {}
    if ctype == "multipart/form-data":
        form = await request.form(max_part_size=limits.max_upload_bytes + 1)
        upload = form.get("file")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "missing file field 'file' in the multipart form")
        data = await upload.read(limits.max_upload_bytes + 1)
    elif ctype.startswith("audio/") or ctype in ("application/octet-stream", ""):
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limits.max_upload_bytes:
                break
        data = bytes(data)
    else:
        raise ApiError(
            415,
            f"unsupported content type {ctype!r}: send multipart/form-data with a 'file' field, "
            "or the audio itself as audio/* or application/octet-stream",
        )
    if len(data) > limits.max_upload_bytes:
        raise ApiError(413, f"upload larger than the limit of {limits.max_upload_bytes} bytes")
    if not data:
        raise ApiError(422, "empty upload: no audio bytes")
    return data, fields


async def run_transcription(request, data: bytes, limits: ServerLimits) -> dict:
    recognizer: Recognizer = request.app.state.recognizer
    rate = recognizer.audio.sampling_rate
    try:
        wav = await asyncio.to_thread(decode_audio, io.BytesIO(data), "upload", rate, limits.max_seconds)
        wav = recognizer.prepare(wav, rate)
    except AudioTooLong as e:
        raise ApiError(413, str(e)) from e
    except AudioError as e:
        raise ApiError(422, str(e)) from e
    try:
        logits = await asyncio.wait_for(request.app.state.batcher.logits(wav), limits.timeout_seconds)
    except asyncio.TimeoutError as e:
        raise ApiError(504, f"no result within {limits.timeout_seconds:g} s; the server is busy, try again") from e
    result = recognizer.decode(logits, wav.size)
    return {**result.to_dict(), "model": request.app.state.model_name}


async def read_json(request) -> dict:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "send a JSON body with content type application/json")
    try:
        body = await request.json()
    except ValueError as e:
        raise ApiError(400, "the body is not valid JSON") from e
    if not isinstance(body, dict):
        raise ApiError(422, "the JSON body must be an object")
    return body


def _version() -> str:
    from . import __version__

    return __version__


def serve(model: str | None, host: str = "127.0.0.1", port: int = 8000, limits: ServerLimits = ServerLimits()) -> None:
    import uvicorn

    uvicorn.run(create_app(model, limits=limits), host=host, port=port, log_level="info")
