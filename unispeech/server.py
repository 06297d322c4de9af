"""HTTP service: FastAPI app with transcribe / phonemize / compare endpoints and a web page.

The model is loaded once (lifespan). Every CPU-heavy step (decoding audio, G2P, inference) runs on one
worker thread, off the event loop; inference requests are grouped into batches there, so the CPU is used
well, threads are never oversubscribed, and `/health` answers while work runs. Request limits are enforced
while the body streams in (uploads.py).
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from .adapt import AdaptOptions, TogetherOptions
from .audio import AudioTooLong, decode_audio
from .metrics import ErrorCounts, edit_ops
from .transcribe import Cancelled, Recognizer
from .uploads import (
    PHONEMIZE_BODY,
    ApiError,
    ServerLimits,
    audio_body,
    error_responses,
    prepared_upload,
    read_json,
    read_upload,
)
from .voices import Voices, add_voice_routes, trainable_copy

PAGE = Path(__file__).parent / "static" / "index.html"
DOCS_PAGE = """<!doctype html><meta charset="utf-8"><title>unispeech API</title>
<p>The API is described in OpenAPI 3 at <a href="/openapi.json">/openapi.json</a>; load it in any OpenAPI viewer.
(This page has no interactive viewer: its assets would come from a CDN, which an offline server cannot reach.)"""
__all__ = ["ServerLimits", "create_app", "serve"]


class Batcher:
    """Collects prepared waveforms from concurrent requests and runs them through the model together, on the
    one worker thread that also does the other CPU-heavy steps (`run`)."""

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

    async def run(self, fn, *args):
        """`fn(*args)` on the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def logits(self, wav: np.ndarray, recognizer: Recognizer | None = None) -> np.ndarray:
        """`wav` through `recognizer` (a voice's, voices.py; by default the served one), batched with the other
        requests for the same recognizer."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((recognizer or self.recognizer, wav, future))
        return await future  # a timeout cancels the future: the batch then drops this request's work

    async def _run(self) -> None:
        while True:
            groups: dict[int, list] = {}
            for item in await self._next_batch():
                groups.setdefault(id(item[0]), []).append(item)
            for items in groups.values():
                await self._run_batch(items[0][0], [w for _, w, _ in items], [f for _, _, f in items])

    async def _run_batch(self, recognizer: Recognizer, wavs: list[np.ndarray], futures: list) -> None:
        try:
            results = await self.run(self._infer, recognizer, wavs, futures)
            for future, logits in zip(futures, results):
                if not future.done():
                    future.set_result(logits)
        except Cancelled:  # every caller of this batch timed out
            pass
        except Exception as e:  # reported to every waiting request; the batcher keeps serving
            for future in futures:
                if not future.done():
                    future.set_exception(e)

    async def _next_batch(self) -> list:
        loop = asyncio.get_running_loop()
        items = [await self.queue.get()]
        deadline = loop.time() + self.limits.batch_wait_seconds
        while len(items) < self.limits.max_batch and (left := deadline - loop.time()) > 0:
            try:
                items.append(await asyncio.wait_for(self.queue.get(), left))
            except asyncio.TimeoutError:
                break
        return [item for item in items if not item[2].done()]  # callers that timed out while queued

    @staticmethod
    def _infer(recognizer: Recognizer, wavs: list[np.ndarray], futures: list) -> list[np.ndarray]:
        # Checked between forward passes: a long file's remaining windows are not computed for nobody.
        return recognizer.logits_batch(wavs, len(wavs), cancelled=lambda: all(f.done() for f in futures))


def create_app(
    model: str | None = None,
    recognizer: Recognizer | None = None,
    limits: ServerLimits = ServerLimits(),
    model_name: str | None = None,
    adapt: AdaptOptions | None = None,
    voice_options: TogetherOptions = TogetherOptions(),
):
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if recognizer is None:
            from . import load_model

            app.state.recognizer = load_model(model, adapt=adapt)
        else:
            app.state.recognizer = recognizer
        app.state.model_name = model_name or model or "bundled demo model"
        app.state.voices = Voices(
            limits.max_voices,
            lambda: trainable_copy(app.state.recognizer, model, loadable=recognizer is None),
            voice_options,
            per_client=limits.max_voices_per_client,
        )
        app.state.batcher = Batcher(app.state.recognizer, limits)
        app.state.batcher.start()
        yield
        await app.state.batcher.stop()

    app = FastAPI(
        title="unispeech",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description='Speech to phones with UniSpeech CTC models (Kyrgyz first). Errors: {"error": message}.',
    )
    add_error_handlers(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return PAGE.read_text(encoding="utf-8")

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    @app.get("/redoc", response_class=HTMLResponse, include_in_schema=False)
    async def docs():
        return DOCS_PAGE

    @app.get("/health")
    async def health(request: Request):
        state = request.app.state
        runs = state.recognizer.describe()  # backend, precision, and whether it adapts to each utterance
        voices = {"held": len(state.voices), "max": state.voices.max_voices, "per_client": state.voices.per_client}
        queued = state.batcher.queue.qsize()
        return {"status": "ok", "model": state.model_name, "runs": runs, "queued": queued, "voices": voices}

    add_speech_routes(app, limits)
    add_scoring_route(app, limits)
    add_voice_routes(app, limits)
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error in the API's shape, {"error": message}, FastAPI's and Starlette's own included."""

    @app.exception_handler(ApiError)
    async def api_error(_, e: ApiError):
        return JSONResponse({"error": e.message}, status_code=e.status)

    @app.exception_handler(HTTPException)
    async def http_error(_, e: HTTPException):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_, e: RequestValidationError):
        fields = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        return JSONResponse({"error": f"invalid request: {fields}"}, status_code=422)


def add_speech_routes(app: FastAPI, limits: ServerLimits) -> None:
    """The API: transcribe, phonemize, compare."""
    audio_errors = error_responses(400, 404, 413, 415, 422, 504)

    @app.post(
        "/v1/transcribe",
        summary="Audio (multipart field `file`, or the raw body) -> phones with times",
        openapi_extra=audio_body(with_text=False),
        responses=audio_errors,
    )
    async def transcribe(request: Request):
        data, fields = await read_upload(request, limits)
        return await run_transcription(request, data, fields, limits)

    @app.post(
        "/v1/phonemize",
        summary='Text -> phones: JSON {"text": str | [str], "word_boundaries": bool}',
        openapi_extra=PHONEMIZE_BODY,
        responses=error_responses(400, 413, 415, 422),
    )
    async def phonemize_route(request: Request):
        body = await read_json(request, limits)
        text = body.get("text")
        if not isinstance(text, (str, list)) or (isinstance(text, list) and not all(isinstance(t, str) for t in text)):
            raise ApiError(422, "field 'text' must be a string or a list of strings")
        phones = await run_g2p(request, text, bool(body.get("word_boundaries", False)))
        return {"phones": phones}

    @app.post(
        "/v1/compare",
        summary="Audio + Kyrgyz text -> recognised vs expected phones, aligned, with PER",
        openapi_extra=audio_body(with_text=True),
        responses=audio_errors,
    )
    async def compare(request: Request):
        data, fields = await read_upload(request, limits)
        text = (fields.get("text") or request.query_params.get("text") or "").strip()
        if not text:
            raise ApiError(422, "missing field 'text' (the sentence the speaker read)")
        expected = await run_g2p(request, text, False)
        if not expected:
            raise ApiError(422, "the text has no pronounceable words")
        result = await run_transcription(request, data, fields, limits)
        return {**result, **comparison(expected, result["phones"])}


def add_scoring_route(app: FastAPI, limits: ServerLimits) -> None:
    @app.post(
        "/v1/score",
        summary="Audio + Kyrgyz text -> pronunciation scores (0-1) per phone, word and utterance, with verdicts",
        openapi_extra=audio_body(with_text=True),
        responses=error_responses(400, 404, 413, 415, 422, 504),
    )
    async def score_route(request: Request):
        data, fields = await read_upload(request, limits)
        text = (fields.get("text") or request.query_params.get("text") or "").strip()
        if not text:
            raise ApiError(422, "missing field 'text' (the sentence that should have been said)")
        return await run_scoring(request, data, fields, text, limits)


async def run_scoring(request, data: bytes, fields: dict, text: str, limits: ServerLimits) -> dict:
    from .scoring import score

    recognizer, voice = chosen_voice(request, fields)
    rate = recognizer.audio.sampling_rate

    def work():
        notes: list[str] = []
        wav = decode_audio(io.BytesIO(data), "upload", rate, limits.max_seconds, notes=notes)
        return score(recognizer, wav, text, sampling_rate=rate), notes

    try:  # on the worker thread, like inference; a timeout answers 504 (the scoring itself runs to its end)
        result, warnings = await asyncio.wait_for(request.app.state.batcher.run(work), limits.timeout_seconds)
    except AudioTooLong as e:
        raise ApiError(413, str(e)) from e
    except ValueError as e:  # unusable audio, no pronounceable words, audio too short for the text
        raise ApiError(422, str(e)) from e
    except asyncio.TimeoutError as e:
        raise ApiError(504, f"no result within {limits.timeout_seconds:g} s; the server is busy, try again") from e
    return {**result.to_dict(), "warnings": warnings, **answered_by(request, voice)}


def chosen_voice(request: Request, fields: dict) -> tuple[Recognizer, str | None]:
    """The recognizer of the request's `voice` (form field or query parameter), else the served one."""
    voice = fields.get("voice") or request.query_params.get("voice")
    if not voice:
        return request.app.state.recognizer, None
    return request.app.state.voices.get(voice), voice


def answered_by(request: Request, voice: str | None) -> dict:
    return {"model": request.app.state.model_name, **({"voice": voice} if voice else {})}


def comparison(expected: list[str], recognised: list[str]) -> dict:
    ops = edit_ops(expected, recognised)
    counts = ErrorCounts().add(ops)
    return {
        "expected": expected,
        "per": counts.per,
        "substitutions": counts.substitutions,
        "deletions": counts.deletions,
        "insertions": counts.insertions,
        "alignment": [{"op": op, "expected": r, "recognised": h} for op, r, h in ops],
    }


async def run_g2p(request, text: str | list[str], word_boundaries: bool):
    from .g2p import phonemize

    return await request.app.state.batcher.run(lambda: phonemize(text, word_boundaries=word_boundaries))


async def run_transcription(request, data: bytes, fields: dict, limits: ServerLimits) -> dict:
    recognizer, voice = chosen_voice(request, fields)
    batcher: Batcher = request.app.state.batcher
    warnings: list[str] = []
    wav = await batcher.run(prepared_upload, recognizer, data, "upload", limits.max_seconds, warnings)
    try:
        logits = await asyncio.wait_for(batcher.logits(wav, recognizer), limits.timeout_seconds)
    except asyncio.TimeoutError as e:
        raise ApiError(504, f"no result within {limits.timeout_seconds:g} s; the server is busy, try again") from e
    result = recognizer.decode(logits, wav.size)
    return {**result.to_dict(), "warnings": warnings, **answered_by(request, voice)}


def _version() -> str:
    from . import __version__

    return __version__


def serve(
    model: str | None,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits = ServerLimits(),
    adapt: AdaptOptions | None = None,
) -> None:
    import uvicorn

    uvicorn.run(create_app(model, limits=limits, adapt=adapt), host=host, port=port, log_level="info")
