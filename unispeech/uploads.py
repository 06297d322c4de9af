"""Reading HTTP request bodies within limits that hold however the body arrives (Content-Length or chunked):
the bytes are counted as they are received and the request is refused the moment one is passed, so an
oversize body is never read, stored or spooled in full."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from .audio import AudioError, AudioTooLong, decode_audio


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    max_upload_bytes: int = 25 * 1024 * 1024  # a whole audio request body (the form, fields included)
    max_text_bytes: int = 1024 * 1024  # a JSON body, or one text field of a form
    max_fields: int = 8  # text fields of a form
    max_seconds: float = 600.0  # longest audio accepted
    timeout_seconds: float = 120.0  # a request waiting longer (queue + inference) gets 504; its work is dropped
    max_batch: int = 8  # requests run together
    batch_wait_seconds: float = 0.01  # how long the batcher waits for company
    max_voices: int = 4  # adapted copies of the model held at once (voices.py; 0: the server adapts to none)
    max_voices_per_client: int = 2  # of those, made by one client address (0: no limit but max_voices)
    max_voice_files: int = 20  # recordings in one request to adapt to


class ApiError(Exception):
    """An answer with a 4xx/5xx status and the API's error shape, {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def limited(request: Request, max_bytes: int, what: str) -> Request:
    """The same request, whose body raises a 413 ApiError as soon as more than `max_bytes` have arrived."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:  # refused before a byte is read
        raise ApiError(413, f"{what} larger than the limit of {max_bytes} bytes")
    received = 0

    async def receive():
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise ApiError(413, f"{what} larger than the limit of {max_bytes} bytes")
        return message

    return Request(request.scope, receive)


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_upload(request: Request, limits: ServerLimits) -> tuple[bytes, dict]:
    """The audio bytes (multipart field `file`, or the raw body) and the form's text fields."""
    files, fields = await read_uploads(request, limits, max_files=1)
    return files[0], fields


async def read_uploads(request: Request, limits: ServerLimits, max_files: int) -> tuple[list[bytes], dict]:
    """The audio of each multipart field `file` (up to `max_files`; or the raw body, one file) and the form's text
    fields."""
    body = limited(request, limits.max_upload_bytes, "upload")
    ctype = content_type(request)
    fields: dict = {}
    if ctype == "multipart/form-data":
        try:  # files spool to disk past 1 MB, but never past the body limit
            form = await body.form(
                max_files=max_files, max_fields=limits.max_fields, max_part_size=limits.max_text_bytes
            )
        except HTTPException as e:  # starlette's own multipart errors: too many fields or files, bad form
            raise ApiError(e.status_code, f"bad multipart form: {e.detail}") from e
        except MultiPartException as e:
            raise ApiError(400, f"bad multipart form: {e.message}") from e
        uploads = [u for u in form.getlist("file") if not isinstance(u, str)]
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not uploads:
            raise ApiError(422, "missing file field 'file' in the multipart form")
        files = [await upload.read() for upload in uploads]
    elif ctype.startswith("audio/") or ctype in ("application/octet-stream", ""):
        files = [await body.body()]
    else:
        raise ApiError(
            415,
            f"unsupported content type {ctype!r}: send multipart/form-data with a 'file' field, "
            "or the audio itself as audio/* or application/octet-stream",
        )
    if not all(files):
        raise ApiError(422, "empty upload: no audio bytes")
    return files, fields


def prepared_upload(recognizer, data: bytes, what: str, max_seconds: float, notes: list[str]) -> np.ndarray:
    """An upload's audio as `recognizer`'s input (what the client should know, a truncated file say, added to
    `notes`), or the ApiError the client should get: 413 over `max_seconds`, 422 unusable or too short."""
    rate = recognizer.audio.sampling_rate
    try:
        return recognizer.prepare(decode_audio(io.BytesIO(data), what, rate, max_seconds, notes=notes), rate)
    except AudioTooLong as e:
        raise ApiError(413, str(e)) from e
    except AudioError as e:
        raise ApiError(422, str(e)) from e


async def read_json(request: Request, limits: ServerLimits) -> dict:
    if content_type(request) != "application/json":
        raise ApiError(415, "send a JSON body with content type application/json")
    raw = await limited(request, limits.max_text_bytes, "JSON body").body()
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise ApiError(400, "the body is not valid JSON") from e
    if not isinstance(body, dict):
        raise ApiError(422, "the JSON body must be an object")
    return body


# OpenAPI: what the routes read by hand (they take the raw request, so FastAPI cannot infer it) and what
# errors they answer with.
ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
BINARY = {"type": "string", "format": "binary"}


def error_responses(*codes: int) -> dict:
    reasons = {
        400: "malformed request (bad JSON, bad multipart form, too many fields or files)",
        413: "body, field or audio over a limit",
        403: "this server adapts to no voices",
        404: "unknown voice (forgotten: adapt again)",
        415: "unsupported content type",
        422: "unusable input (not audio, empty, too short, NaN, missing field)",
        504: "no result within the request timeout",
    }
    return {c: {"description": reasons[c], "content": {"application/json": {"schema": ERROR_SCHEMA}}} for c in codes}


VOICE = {"type": "string", "description": "a voice id from POST /v1/voices: the model adapted to the speaker"}


def audio_body(with_text: bool) -> dict:
    form = {"type": "object", "required": ["file"] + (["text"] if with_text else []), "properties": {"file": BINARY}}
    if with_text:
        form["properties"]["text"] = {"type": "string", "description": "the sentence that was read"}
    form["properties"]["voice"] = VOICE
    content = {"multipart/form-data": {"schema": form}}
    if not with_text:
        content.update({"audio/*": {"schema": BINARY}, "application/octet-stream": {"schema": BINARY}})
    query = [{"name": "voice", "in": "query", "required": False, "schema": VOICE}]
    return {"requestBody": {"required": True, "content": content}, "parameters": query}


PHONEMIZE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {
                        "text": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                        "word_boundaries": {"type": "boolean", "default": False},
                    },
                }
            }
        },
    }
}
