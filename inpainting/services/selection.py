"""Selecting an object with a mask model (SAM 2.1, SAM 3, a rembg model): never in the web
process. The web side checks the request and the image, keeps the image's bytes in Redis for
a while (under its sha256, per user), sends a ``run_selection`` task to the ``select`` queue
and waits for the answer on a Redis list of its own. A selection worker (the Procfile's
``select`` process) loads the model once, keeps each image's embedding
(``engine.selection.EmbeddingCache``, by model and image sha256) and answers the mask; a
further click on the same image costs only SAM's prompt decoder. The web side waits without
holding a thread (``selection_make`` is a coroutine)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from celery import current_app
from django.conf import settings
from kombu.exceptions import OperationalError
from PIL import Image

from dreamlayer_site.redis_pool import SharedConnectionPool

from .. import engine
from ..engine import segment, selection
from ..engine.images import encode_mask_png
from ..errors import ClientError, echoed
from ..models import LibraryModel
from ..uploads import IMAGE_FORMATS, decode_image, image_size, read_upload
from .mask_models import library_mask_model_for, library_mask_model_local_path

logger = logging.getLogger(__name__)

RUN_SELECTION = "inpainting.tasks.run_selection"
SELECT_QUEUE = "select"
#: How long an image sent for selection stays in Redis after its last use (further clicks
#: on it do not need it while its embedding is cached; a new worker or model does).
IMAGE_TTL_SECONDS = 600
#: How many images one user may have waiting there at a time (the oldest are dropped).
IMAGES_PER_USER = 4
_REPLY_TTL_SECONDS = 60


def _redis() -> redis.Redis:
    return redis.Redis(connection_pool=SharedConnectionPool.from_url(settings.REDIS_URL))


def _image_key(user_id, sha256: str) -> str:
    return f"dreamlayer:select:image:{user_id}:{sha256}"


def _keep_image(user_id, sha256: str, data: bytes) -> str:
    """Keep an image's bytes for the selection worker (IMAGE_TTL_SECONDS after its last use),
    at most IMAGES_PER_USER per user, the least recently used dropped: one person cannot fill
    Redis. Each use puts the image first in the user's list again."""
    connection = _redis()
    key = _image_key(user_id, sha256)
    recent = f"dreamlayer:select:images:{user_id}"
    with connection.pipeline() as pipe:
        pipe.set(key, data, ex=IMAGE_TTL_SECONDS, nx=True).expire(key, IMAGE_TTL_SECONDS)
        pipe.lrem(recent, 0, key).lpush(recent, key)
        pipe.lrange(recent, IMAGES_PER_USER, -1).ltrim(recent, 0, IMAGES_PER_USER - 1)
        pipe.expire(recent, IMAGE_TTL_SECONDS)
        gone = pipe.execute()[4]
    if gone:
        connection.delete(*gone)
    return key


def _send(request: dict) -> None:
    current_app.send_task(
        RUN_SELECTION,
        args=[request],
        queue=SELECT_QUEUE,
        expires=settings.SELECT_WAIT_SECONDS,  # nobody waits for it after that
    )


def _unavailable() -> ClientError:
    return ClientError("The queue is unreachable; try again shortly.", status=503)


@dataclass(frozen=True)
class Selection:
    """A selection's answer: the mask PNG, and what the worker did."""

    png: bytes
    model: str
    embedding: str  # "cached" or "computed" ("none": a model without one)
    timings: dict[str, float]  # seconds: read, wait, select (the worker's), encode


@dataclass(frozen=True)
class Pending:
    """A selection sent to the selection worker, whose answer comes to ``reply``."""

    reply: str
    model: str
    mask_mode: str
    in_flight: str  # the user's counter of selections in flight
    started: float
    sent: float


def selection_send(
    *,
    user,
    image_file,
    method: str,
    model: str | None,
    prompt: selection.Prompt,
    mask_mode: str = "black_inpaints",
) -> Pending:
    """Check a selection with the mask model for ``method`` (``sam``, ``text``,
    ``background``; the one named, else the first installed) and send it to the selection
    worker. A client error for a bad request (every limit checked before any pixel work); a
    503 when no such model is installed or the queue cannot be reached; a 429 while the user
    has SELECT_IN_FLIGHT_PER_USER selections waiting already."""
    choice = library_mask_model_for(method, model)
    started = time.perf_counter()
    data = read_upload(image_file, field="image")
    # The header alone (type, pixel limits, upright size): the worker decodes the pixels, and
    # only when it has no embedding of this image yet.
    size = image_size(data, field="image", formats=IMAGE_FORMATS)
    selection.check_prompt(prompt, size)
    segment.selection_to_mask(np.zeros((1, 1), bool), mask_mode)  # the mode, checked
    sha256 = hashlib.sha256(data).hexdigest()
    in_flight = f"dreamlayer:select:in-flight:{user.pk}"
    try:
        connection = _redis()
        with connection.pipeline() as pipe:
            count = pipe.incr(in_flight).expire(in_flight, _REPLY_TTL_SECONDS).execute()[0]
        if count > settings.SELECT_IN_FLIGHT_PER_USER:
            _release(connection, in_flight)
            raise ClientError(
                "Your previous selections are still running; wait for their answers.",
                status=429,
            )
        reply = f"dreamlayer:select:reply:{uuid.uuid4().hex}"
        try:
            key = _keep_image(user.pk, sha256, data)
            _send(
                {
                    "reply": reply,
                    "image_key": key,
                    "image_sha256": sha256,
                    "cache_scope": str(user.pk),
                    "model": choice.model.name,
                    "detector": choice.detector.name if choice.detector else None,
                    "prompt": asdict(prompt),
                }
            )
        except (redis.RedisError, OperationalError):
            _release(connection, in_flight)
            raise
    except (redis.RedisError, OperationalError):
        raise _unavailable() from None
    return Pending(reply, choice.model.name, mask_mode, in_flight, started, time.perf_counter())


#: One selection no longer in flight: the count goes down, and a count at zero (or one whose
#: key expired meanwhile, which DECR would leave at -1 for ever) is removed.
_RELEASE = """
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1]) else redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def _release(connection, in_flight: str):
    """``_RELEASE`` on a Redis client (a coroutine on an asyncio one)."""
    return connection.eval(_RELEASE, 1, in_flight, _REPLY_TTL_SECONDS)


async def selection_wait(pending: Pending) -> dict:
    """The selection worker's answer (on a Redis list; no thread held while waiting), or a
    503 when none comes within SELECT_WAIT_SECONDS. The selection leaves the user's in-flight
    count however the wait ends (an answer, none, an error, the client gone)."""
    client = aioredis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=settings.SELECT_WAIT_SECONDS + 10
    )
    try:
        answer = await client.blpop([pending.reply], timeout=settings.SELECT_WAIT_SECONDS)
    except redis.RedisError:
        raise _unavailable() from None
    finally:
        try:
            await _release(client, pending.in_flight)
        except redis.RedisError:
            pass  # its expiry ends it
        await client.aclose()
    if answer is None:
        raise ClientError(
            f"No selection worker answered within {settings.SELECT_WAIT_SECONDS:g} s: is the "
            "`select` process (Procfile) running?",
            status=503,
        )
    return json.loads(answer[1])


def selection_answer(pending: Pending, body: dict) -> Selection:
    """The worker's answer as the mask PNG in the requested polarity (or its error)."""
    answered = time.perf_counter()
    if "error" in body:
        raise ClientError(body["error"], field=body.get("field"), status=body["status"])
    height, width = body["shape"]
    bits = np.frombuffer(base64.b64decode(body["mask"]), np.uint8)
    selected = np.unpackbits(bits, count=height * width).reshape(height, width).astype(bool)
    png = encode_mask_png(np.asarray(segment.selection_to_mask(selected, pending.mask_mode)))
    timings = {
        "read": pending.sent - pending.started,  # the upload read, its header checked, sent
        "wait": answered - pending.sent - body["seconds"],  # queue, transport, the worker's
        "select": body["seconds"],  # the worker: the encoder (first click), the decoder
        "encode": time.perf_counter() - answered,  # the mask PNG
    }
    return Selection(png, pending.model, body["embedding"], timings)


async def selection_make(**request) -> Selection:
    """``selection_send``, then wait for the answer (no thread held), then
    ``selection_answer``."""
    pending = await sync_to_async(selection_send)(**request)
    body = await selection_wait(pending)
    return await sync_to_async(selection_answer)(pending, body)


# ----- the selection worker -----------------------------------------------------------------
_SELECTORS: dict[str, tuple[str, object]] = {}  # model name -> (its sha256, the selector)
_LOAD_LOCK = threading.Lock()
_CACHE: selection.EmbeddingCache | None = None


def _cache() -> selection.EmbeddingCache:
    global _CACHE
    if _CACHE is None:
        _CACHE = selection.EmbeddingCache(size=settings.SELECT_CACHE_IMAGES)
    return _CACHE


def _selector(model: LibraryModel, path: Path, detector: tuple[LibraryModel, Path] | None):
    """The loaded selector of ``model`` (with ``detector``: a GroundingDINO model and its
    folder) in this process, loaded again when a file changed."""
    key = model.name + (f"+{detector[0].name}" if detector else "")
    version = model.sha256 + (detector[0].sha256 if detector else "")
    with _LOAD_LOCK:
        loaded = _SELECTORS.get(key)
        if loaded is None or loaded[0] != version:
            selector = selection.load_selector(
                model.family, path, detector[1] if detector else None
            )
            _SELECTORS[key] = (version, selector)
        return _SELECTORS[key][1], f"{key}:{version}"


class _Refused(Exception):
    def __init__(self, message: str, *, status: int, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


def _local(name: str) -> tuple[LibraryModel, Path]:
    """A mask model of the library and its file or folder on this worker's disk."""
    model = LibraryModel.objects.mask_models().filter(name=name, enabled=True).first()
    if model is None:
        raise _Refused(f"The mask model {echoed(name)} is no longer in the library.", status=503)
    path = library_mask_model_local_path(model)
    if path is None:
        raise _Refused(
            f"The mask model {model.name} is not on this selection worker's disk "
            f"(MASK_MODELS_DIR): copy it there.",
            status=503,
        )
    return model, path


def _select(request: dict) -> dict:
    model, path = _local(request["model"])
    detector = _local(request["detector"]) if request.get("detector") else None
    selector, model_key = _selector(model, path, detector)

    def image_loader() -> Image.Image:
        data = _redis().get(request["image_key"])
        if data is None:
            raise _Refused("The image expired before its selection ran: send it again.", status=409)
        return decode_image(data, field="image", formats=IMAGE_FORMATS)

    prompt = selection.Prompt(
        **{
            **request["prompt"],
            "points": tuple(tuple(p) for p in request["prompt"]["points"]),
            "box": tuple(request["prompt"]["box"]) if request["prompt"]["box"] else None,
        }
    )
    done = selection.run_selection(
        selector,
        _cache(),
        model_key=model_key,
        # Per user: whether an image's embedding was cached says nothing of other users.
        image_sha256=f"{request['cache_scope']}:{request['image_sha256']}",
        image_loader=image_loader,
        prompt=prompt,
    )
    return {
        "mask": base64.b64encode(np.packbits(done.mask).tobytes()).decode(),  # 1 bit a pixel
        "shape": list(done.mask.shape),
        "embedding": "none"
        if not selector.reuses_embedding
        else "cached"
        if done.cached
        else "computed",
        "seconds": round(done.seconds, 4),
    }


def selection_run(request: dict) -> None:
    """Run one selection request in a selection worker and push the answer (or the error a
    client can act on) to the web process that waits for it."""
    try:
        body = _select(request)
    except _Refused as exc:
        body = {"error": str(exc), "status": exc.status, "field": exc.field}
    except ClientError as exc:  # the engine's InvalidInput too
        body = {"error": exc.message, "status": exc.status, "field": exc.field}
    except engine.EngineError as exc:
        logger.warning("selection failed: %s", exc)
        body = {"error": str(exc), "status": 503, "field": "model"}
    except Exception:  # the web process waits for an answer: never leave it without one
        logger.exception("selection failed")
        body = {"error": "The selection failed in the worker (see its log).", "status": 500}
    with _redis().pipeline() as pipe:
        pipe.rpush(request["reply"], json.dumps(body)).expire(request["reply"], _REPLY_TTL_SECONDS)
        pipe.execute()
