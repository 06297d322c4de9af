"""Voices on the server: copies of the served model adapted once to a speaker's recordings (`POST /v1/voices`,
adapt.adapted_to), held in memory under an unguessable id that later requests pass as `voice`. The recordings
themselves are not kept. At most `max_voices` are held, the least recently used forgotten first, and at most
`per_client` of one client (by address): its own least recently used goes first, so one client cannot push out more
than that many of the others' voices. A restart forgets them all. Each holds a float32 copy of the model (29 MB for
the bundled one, 1.3 GB for UniSpeech-Large)."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from .adapt import Adaptation, TogetherOptions, plain_float32, save_adapted
from .transcribe import Recognizer
from .uploads import ApiError, ServerLimits, error_responses, prepared_upload, read_uploads

VOICE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            }
        },
    }
}


class Voices:
    """The voices a server holds, least recently used first. `trainable()` gives the recognizer to adapt (the
    served model in torch float32); it is asked once, on the worker thread, when the first voice is made."""

    def __init__(
        self, max_voices: int, trainable: Callable[[], Recognizer], options: TogetherOptions, per_client: int = 0
    ):
        self.max_voices, self.per_client, self.options = max_voices, min(per_client or max_voices, max_voices), options
        self._trainable, self._base = trainable, None
        self._held: OrderedDict[str, tuple[Recognizer, dict]] = OrderedDict()  # and what the voice is made of
        self._client: dict[str, str] = {}  # whose request made it

    def __len__(self) -> int:
        return len(self._held)

    def base(self) -> Recognizer:
        if self._base is None:
            self._base = self._trainable()
        return self._base

    def add(self, recognizer: Recognizer, made_of: dict, client: str = "") -> str:
        theirs = [v for v in self._held if self._client[v] == client]  # least recently used first
        for old in theirs[: max(0, len(theirs) + 1 - self.per_client)]:
            self._drop(old)
        voice = "v-" + secrets.token_urlsafe(12)
        self._held[voice], self._client[voice] = (recognizer, {"voice": voice, **made_of}), client
        while len(self._held) > self.max_voices:
            self._drop(next(iter(self._held)))
        return voice

    def _drop(self, voice: str) -> None:
        del self._held[voice], self._client[voice]

    def get(self, voice: str) -> Recognizer:
        return self.made_of(voice)[0]

    def made_of(self, voice: str) -> tuple[Recognizer, dict]:
        if voice not in self._held:
            shown = voice if len(voice) <= 40 else voice[:40] + "..."  # a field may be up to a megabyte
            raise ApiError(
                404,
                f"unknown voice {shown!r}: this server holds {self.max_voices} voices at most and forgets the least "
                "recently used, and all of them when it restarts; adapt to the recordings again (POST /v1/voices)",
            )
        self._held.move_to_end(voice)
        return self._held[voice]

    def forget(self, voice: str) -> None:
        self.get(voice)
        self._drop(voice)


def add_voice_routes(app: FastAPI, limits: ServerLimits) -> None:
    @app.post(
        "/v1/voices",
        status_code=201,
        summary="Recordings of one speaker (multipart fields `file`, no transcript) -> a voice id: the model adapted "
        "to them, for later requests' `voice` field",
        openapi_extra=VOICE_BODY,
        responses=error_responses(400, 403, 413, 415, 422, 504),
    )
    async def create_voice(request: Request):
        voices: Voices = request.app.state.voices
        if voices.max_voices < 1:
            raise ApiError(403, "this server adapts to no voices (it was started with --max-voices 0)")
        files, _ = await read_uploads(request, limits, max_files=limits.max_voice_files)
        batcher = request.app.state.batcher

        async def adapt():  # each step a task of the worker thread: requests queued meanwhile run between steps
            adaptation, seconds, warnings = await batcher.run(start_adapting, voices, files, limits)
            while await batcher.run(adaptation.step):
                pass
            return adaptation.result(), seconds, warnings

        try:  # a timeout stops it after the step under way
            recognizer, seconds, warnings = await asyncio.wait_for(adapt(), limits.timeout_seconds)
        except asyncio.TimeoutError as e:
            raise ApiError(
                504,
                f"adapting took longer than {limits.timeout_seconds:g} s (send less audio, or adapt offline with "
                "`unispeech adapt` and serve that folder)",
            ) from e
        if recognizer.runner.used == 0:
            raise ApiError(
                422,
                f"nothing in the recordings was heard as speech (a piece needs {voices.options.min_spoken_frames} "
                "frames heard as phones): record a few spoken sentences",
            )
        made_of = {"recordings": len(files), "seconds": round(seconds, 2), "adapted": recognizer.runner.note}
        client = request.client.host if request.client else ""
        voice = voices.add(recognizer, {**made_of, "model": request.app.state.model_name}, client)
        return {**voices.made_of(voice)[1], "warnings": warnings}

    @app.get("/v1/voices/{voice}", summary="What a voice the server holds is made of", responses=error_responses(404))
    async def voice_info(voice: str, request: Request):
        return request.app.state.voices.made_of(voice)[1]

    @app.get(
        "/v1/voices/{voice}/model",
        summary="A voice as a model folder (zip: float32 weights, config, vocabulary, decoding) for any --model",
        response_class=FileResponse,
        responses=error_responses(404),
    )
    async def voice_model(voice: str, request: Request):
        recognizer = request.app.state.voices.get(voice)
        folder = Path(tempfile.mkdtemp(prefix="unispeech-voice-"))
        try:
            saved = await request.app.state.batcher.run(save_adapted, recognizer, folder / voice)
            archive = await asyncio.to_thread(zipped, saved)  # seconds of deflating: off the worker thread
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        cleanup = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
        return FileResponse(archive, media_type="application/zip", filename=archive.name, background=cleanup)

    @app.delete(
        "/v1/voices/{voice}",
        summary="Forget a voice",
        responses=error_responses(404),
    )
    async def delete_voice(voice: str, request: Request):
        request.app.state.voices.forget(voice)
        return {"forgotten": voice}


def start_adapting(voices: Voices, files: list[bytes], limits: ServerLimits) -> tuple[Adaptation, float, list[str]]:
    """-> (the served model's adaptation to the recordings, not yet stepped; their seconds; notes for the client)."""
    base = voices.base()
    rate, notes, wavs = base.audio.sampling_rate, [], []
    for number, data in enumerate(files, 1):
        what = f"recording {number}" if len(files) > 1 else "upload"
        wavs.append(prepared_upload(base, data, what, limits.max_seconds, notes))
    return Adaptation(base, wavs, voices.options), sum(w.size for w in wavs) / rate, notes


def zipped(folder: Path) -> Path:
    """`folder` zipped beside it (the archive's top folder: the folder's name)."""
    return Path(shutil.make_archive(str(folder), "zip", folder.parent, folder.name))


def trainable_copy(served: Recognizer, model: str | None, loadable: bool) -> Recognizer:
    """The served recognizer where it runs torch float32 weights, else `model` loaded so (with the served decoding)
    where the server loaded it itself (`loadable`)."""
    if plain_float32(served.runner):
        return served
    if not loadable:
        raise ApiError(
            403,
            f"this server adapts to no voices: its model runs {served.runner.describe()} and was handed to it "
            "loaded, so it has no float32 weights to adapt (adapting takes gradients)",
        )
    from . import load_model
    from .checkpoint import DEFAULT_MODEL_DIR

    device = getattr(served.runner, "device", "cpu")
    folder = DEFAULT_MODEL_DIR if model in (None, "default") else model  # (no second demo-model notice)
    try:
        return load_model(folder, device=device, dtype="float32", backend="torch", decoder=served.decoder)
    except ValueError as e:  # an ONNX export's folder has no weights to adapt, say
        raise ApiError(
            403, f"this server adapts to no voices: its model's float32 weights cannot be loaded: {e}"
        ) from e
