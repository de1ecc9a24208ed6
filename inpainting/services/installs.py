"""Model installs: a model of any kind the library holds, from a Hugging Face repository (by
repo id, optional revision and subfolder), one file of one (a hub file URL) or a plain
``https://`` URL to a file (the Civitai pattern), downloaded by the housekeeping worker with
progress, cancel and resume, then recorded by the scan (that item only).

Each source is a type of its own (``services.install_sources``: ``HubRepo``, ``HubFile``,
``UrlFile``), which lists what it fetches and fetches it; this module is the flow around any
of them. Rules, each here and nowhere else:

- What is fetched: safetensors weights and configuration (``.json``, ``.txt``, tokenizer
  ``.model``), GGUF transformers, ONNX for mask models and LaMa, and for an upscaler a
  weights-only ``.pth`` (the scan loads it with torch's weights-only loader and refuses one
  that needs more); never a pickle otherwise (the weights files of each kind:
  ``services.library``'s table, the scan's too).
- The Hugging Face token: the one staff set in the admin (encrypted with the secret key), else
  ``HF_TOKEN``; it is sent to the hub only and never shown or logged.
- The licence recorded: a starter list entry's, else the model card's (the rule that refuses a
  non-commercial one where ``ALLOW_NONCOMMERCIAL_MODELS`` is false, at install and at each
  job, is ``services.licences``'s).
- The free disk is checked against what is left to download before the first byte.
- A failed install keeps what it downloaded (installing the same thing again resumes); a
  cancelled one deletes it, so no partial model is ever in the library.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from .. import fleet
from ..conf import lama_file
from ..engine import memory
from ..engine.families import FAMILIES
from ..engine.families import Unsupported as FamilyUnsupported
from ..engine.probe import PICKLE_SUFFIXES, Unsupported
from ..engine.selection import Unsupported as MaskUnsupported
from ..errors import ClientError, echoed
from ..models import INSTALL_KINDS, LAMA, HubToken, LibraryModel, ModelInstall
from ..progress import Event, publish_to_user
from . import queue
from .install_sources import (
    DiskFull,
    HubFile,
    HubRepo,
    InstallCancelled,
    InstallFailed,
    UrlFile,
    allowed_file,
    disk_check,
    hub_reachable,
    hub_source,
    offline_message,
    size_check,
    source_of,
    source_parsed,
)
from .library import (
    WEIGHTS_SUFFIXES,
    library_folder,
    library_scan_item,
    memory_needs_gb,
    memory_words,
    weights_sha256,
)
from .licences import Licence, catalogue, licence_allowed, licence_of, licence_refusal

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][\w.+-]{0,199}$")
#: How often a running install writes its progress (the row, the websocket) and looks for a
#: cancel.
PROGRESS_EVERY_SECONDS = 0.5


# --- the starter list -----------------------------------------------------------------------


@dataclass(frozen=True)
class Starter:
    key: str
    label: str
    repo: str
    kind: str
    family: str
    licence: Licence
    gated: bool
    size_gb: float
    #: A diffusion model's weights in the dtype it runs in (its GPU memory is computed from
    #: them: ``vram``); another kind's GPU memory as the list gives it.
    parts: memory.Parts | None = None
    vram_given: float | None = None
    file: str = ""

    @property
    def vram(self) -> str:
        """Its GPU memory for people: computed as the library computes an installed model's
        (``library.memory_needs_gb``), or as the list gives it."""
        if self.parts is not None:
            return memory_words(memory_needs_gb(self.parts))
        return f"{self.vram_given:g} GB"

    @property
    def name(self) -> str:
        """The name it installs under: its key, with its file's suffix for a file (the scan
        reads a file's kind by its suffix: ``real-esrgan-x4.pth``)."""
        return self.key + Path(self.file).suffix.lower() if self.file else self.key

    def describe(self) -> dict:
        described = asdict(self)  # the licence too, as its ``describe``
        del described["parts"], described["vram_given"]
        by_plan = memory_needs_gb(self.parts) if self.parts is not None else None
        return {
            **described,
            "name": self.name,
            "file": self.file or None,
            "allowed": licence_allowed(self.licence),
            # GB all on the GPU; by memory plan where it has plans (a diffusion model)
            "vram_gb": by_plan[memory.GPU] if by_plan else self.vram_given,
            "vram_by_plan_gb": by_plan,
            "vram": self.vram,
        }


def starters() -> list[Starter]:
    return [
        Starter(
            key=entry["key"],
            label=entry["label"],
            repo=entry["repo"],
            file=entry.get("file", ""),
            kind=entry["kind"],
            family=entry["family"],
            licence=licence_of(entry["licence"]),
            gated=entry["gated"],
            size_gb=entry["size_gb"],
            parts=_parts(entry),
            vram_given=entry.get("vram_gb"),
        )
        for entry in catalogue()["models"]
    ]


def _parts(entry: dict) -> memory.Parts | None:
    """A diffusion model's ``parts_gb`` as the scan would measure them (bytes; fp8 storage
    offered for a transformer, not a UNet)."""
    parts = entry.get("parts_gb")
    if parts is None:
        return None
    family = FAMILIES[entry["family"]]
    return memory.Parts(
        **{part: round(gb * 1e9) for part, gb in parts.items()},
        fp8=family.denoiser == "transformer",
    )


def install_starters_described() -> list[dict]:
    return [starter.describe() for starter in starters()]


@dataclass(frozen=True)
class Here:
    """What this server's live inference workers run on, for the Model installs page: the
    largest GPU's memory (GB; None: no worker has a GPU), and whether any worker reported."""

    workers: int
    gpu_gb: float | None

    @property
    def words(self) -> str:
        if not self.workers:
            return "No inference worker is running now: what runs here is said once one is."
        if self.gpu_gb is None:
            return (
                f"This server's {self.workers} inference worker(s) have no GPU: a diffusion "
                "model runs on the CPU, a picture in minutes at best; LaMa, the mask models "
                "and the upscalers run on the CPU."
            )
        return f"This server's largest GPU has {self.gpu_gb:g} GB of memory."


def install_here() -> Here:
    """This server's workers as their reports say (``fleet``): the largest GPU's memory."""
    reports = fleet.fleet_summary(names=False) or []
    gpus = [r["gpu_memory"] / 1e9 for r in reports if r.get("gpu_memory")]
    return Here(len(reports), round(max(gpus), 1) if gpus else None)


def starter_fits(starter: dict, here: Here) -> str:
    """Whether a starter (``Starter.describe``) runs on this server's GPU, in words: all of it
    on the GPU, with a memory plan, or not; another kind than a diffusion model runs on the
    CPU too."""
    needs = starter["vram_by_plan_gb"]
    if not needs:
        return "runs here (on the CPU too)"
    if not here.workers:
        return "-"
    if here.gpu_gb is None:
        return "no GPU here: on the CPU, minutes a picture"
    least = min(gb for plan, gb in needs.items() if plan != memory.SEQUENTIAL)
    if needs[memory.GPU] <= here.gpu_gb:
        return "fits this GPU"
    if least <= here.gpu_gb:
        return f"fits this GPU with a memory plan (from {least:g} GB)"
    return f"needs more than this GPU's {here.gpu_gb:g} GB"


# --- the Hugging Face token ------------------------------------------------------------------


def _fernet() -> Fernet:
    key = hashlib.sha256(b"dreamlayer hub token:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def hub_token_set(*, token: str) -> None:
    """Keep ``token`` (encrypted with the secret key) as the deployment's Hugging Face token;
    an empty one removes it (``HF_TOKEN`` is then used, if set)."""
    token = token.strip()
    if not token:
        HubToken.objects.filter(pk=1).delete()
        return
    encrypted = _fernet().encrypt(token.encode()).decode()
    HubToken.objects.update_or_create(pk=1, defaults={"encrypted": encrypted})


def hub_token_source() -> str | None:
    """Where the token comes from ("the admin", "HF_TOKEN") or None: what pages may show."""
    if HubToken.objects.filter(pk=1).exists():
        return "the admin"
    return "HF_TOKEN" if settings.HF_TOKEN else None


def _hub_token() -> str | None:
    row = HubToken.objects.filter(pk=1).first()
    if row is not None:
        try:
            return _fernet().decrypt(row.encrypted.encode()).decode()
        except InvalidToken:
            logger.warning(
                "the Hugging Face token set in the admin cannot be read (the secret "
                "key changed): set it again"
            )
    return settings.HF_TOKEN or None


# --- what to install -------------------------------------------------------------------------


def _refuse_weights_file(name: str, kind: str) -> None:
    if allowed_file(name, kind):
        return
    suffix = Path(name).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ClientError(
            f"{echoed(name)} is a pickle ({suffix}): loading one can run any code inside it, so "
            "it is refused. Install its .safetensors release, or convert it.",
            field="source",
        )
    takes = "; ".join(
        f"{' or '.join(suffixes)} for {LibraryModel.Kind(each).label}s"
        for each, suffixes in WEIGHTS_SUFFIXES.items()
    )
    raise ClientError(
        f"{echoed(name)} is not a weights file an install takes ({takes}; .onnx for LaMa). For "
        "a download link that names no file (Civitai's), give the model's name with its suffix "
        "(name=style.safetensors).",
        field="source",
    )


def _target(kind: str, name: str) -> Path:
    return lama_file() if kind == LAMA else library_folder(kind) / name


def may_install(user) -> bool:
    """Whether ``user`` may install models, cancel installs and set the Hugging Face token
    (the API, the admin's Model installs page): staff with the ``add_modelinstall``
    permission (superusers have it). Staff without it review the installs only: a checkpoint
    installed joins every user's list, and a download fills the disk."""
    return bool(user.is_active and user.is_staff and user.has_perm("inpainting.add_modelinstall"))


def _staging(install: ModelInstall) -> Path:
    """Where an install downloads before its model joins the library (a dot folder: the scan
    never reads it): one folder per source, revision and subfolder, so a new install of the
    same thing resumes, and one of another source under the same name never continues the
    first one's file."""
    what = "\x00".join((install.source, install.revision, install.subfolder)).encode()
    digest = hashlib.sha256(what).hexdigest()[:16]
    return Path(settings.MODELS_DIR) / ".installs" / f"{install.kind}-{install.name}-{digest}"


def install_create(
    *,
    user,
    source: str,
    kind: str = "",
    revision: str = "",
    subfolder: str = "",
    name: str = "",
    queued: bool = True,
) -> ModelInstall:
    """Check the request and queue the install (the housekeeping worker runs it; ``queued``
    false: the caller runs it, as ``manage.py models install`` does). ``source`` is a starter
    list key, a repo id, a hub URL or a plain URL."""
    starter = next((s for s in starters() if s.key == source.strip()), None)
    licence = ""
    if starter is not None:
        if not licence_allowed(starter.licence):
            raise ClientError(
                licence_refusal(starter.label, starter.licence), field="source", status=403
            )
        parsed = hub_source(starter.repo, starter.file)
        kind, name, licence = kind or starter.kind, name or starter.name, starter.licence.key
    else:
        parsed, revision = source_parsed(source, revision)
    kind = kind or LibraryModel.Kind.CHECKPOINT
    if kind not in dict(INSTALL_KINDS):
        kinds = ", ".join(dict(INSTALL_KINDS))
        raise ClientError(f"Unknown kind {echoed(kind)}; the kinds: {kinds}.", field="kind")
    if isinstance(parsed, UrlFile) and not Path(parsed.file_name).suffix and name:
        # A download link that names no file (Civitai's): the name says what it is, and the
        # scan then reads its header (a pickle there is refused and deleted).
        _refuse_weights_file(name, kind)
    elif parsed.single_file:
        _refuse_weights_file(parsed.file_name, kind)
    if not parsed.reachable():
        raise ClientError(offline_message(parsed), field="source", status=503)
    subfolder = subfolder.strip("/")
    if subfolder and (not isinstance(parsed, HubRepo) or ".." in subfolder.split("/")):
        raise ClientError("A subfolder is for a whole repository.", field="subfolder")
    if kind == LAMA:
        name = lama_file().name
    if kind == LibraryModel.Kind.IP_ADAPTER and isinstance(parsed, HubFile):
        name = name or Path(parsed.file_name).stem  # a folder: the file and its image encoder
    name = name or parsed.default_name(subfolder)
    if not _NAME.match(name) or name.startswith("."):
        raise ClientError(
            f"{echoed(name)} cannot name a model: letters, digits, '.', '_', '+' and '-'.",
            field="name",
        )
    with transaction.atomic():
        running = ModelInstall.objects.filter(
            kind=kind, name=name, status__in=ModelInstall.ACTIVE
        ).first()
        if running is not None:
            return running  # the same model asked for twice: one install
        if _target(kind, name).exists():
            raise ClientError(
                f"{name} is in the library already ({_target(kind, name)}); remove it first to "
                "install it again.",
                field="name",
                status=409,
            )
        install = ModelInstall.objects.create(
            requested_by=user if getattr(user, "pk", None) else None,
            source=parsed.stored,
            revision=revision,
            subfolder=subfolder,
            kind=kind,
            name=name,
            starter=starter.key if starter else "",
            licence=licence,
        )
        if queued:
            transaction.on_commit(lambda: queue.send_install(install))
    return install


#: The starter that gives the lama engine its file (``lama_auto_install``).
LAMA_STARTER = "lama"
#: A running install that has written no progress for this long has no process left (a
#: running one writes it every PROGRESS_EVERY_SECONDS).
STALE_INSTALL_SECONDS = 300


def lama_auto_install(*, say: Callable[[str], None]) -> ModelInstall | None:
    """What ``make run`` does at its start, in the background (``LAMA_AUTO_INSTALL``): while
    the lama engine has no file, install the starter list's LaMa (``LAMA_STARTER``: checked
    against the hub's SHA-256, resumed if an earlier start was cut), telling ``say`` how it
    goes; offline, one line that says the classical engine runs and how to copy the file in.
    The install's row and its progress show in the admin and the studio as any install's."""
    if not settings.LAMA_AUTO_INSTALL or lama_file().is_file():
        return None
    starter = next(s for s in starters() if s.key == LAMA_STARTER)
    where = f"{starter.repo}/{starter.file}"
    if not hub_reachable():
        say(
            f"LaMa is not installed and {settings.HF_ENDPOINT} does not answer: the classical "
            f"engine removes objects. To add LaMa, copy {starter.file} ({where}) to "
            f"{lama_file()} (or set LAMA_MODEL); LAMA_AUTO_INSTALL=false silences this."
        )
        return None
    # An earlier start's install whose process was killed (no progress written for minutes)
    # is over: it is marked so, and this one resumes its download.
    stale = timezone.now() - timedelta(seconds=STALE_INSTALL_SECONDS)
    for dead in ModelInstall.objects.filter(
        kind=LAMA, status=ModelInstall.Status.RUNNING, updated__lt=stale
    ):
        install_interrupted(install=dead)
    install = install_create(user=None, source=LAMA_STARTER, queued=False)
    if install.status != ModelInstall.Status.QUEUED:
        say(f"LaMa is being installed already ({install.status}).")
        return install
    say(f"Installing LaMa ({where}, {starter.size_gb:g} GB) in the background ...")
    shown = [-1]

    def progress(row: ModelInstall) -> None:
        if row.bytes_total:
            tenth = 10 * row.bytes_done // row.bytes_total
            if tenth > shown[0]:
                shown[0] = tenth
                say(f"LaMa: {10 * tenth} % of {row.bytes_total / 1e6:.0f} MB")

    try:
        done = install_run(install_id=str(install.pk), observer=progress)
    except KeyboardInterrupt:  # the stack stopped: the next start resumes it
        install_interrupted(install=install)
        say("LaMa's install stopped with the stack; the next start resumes it.")
        return install
    if done.status == ModelInstall.Status.SUCCEEDED:
        say(f"LaMa installed (sha256 {done.sha256[:16]}...): removals without a prompt run on it.")
    else:
        say(f"LaMa was not installed ({done.status}): {done.error} The classical engine runs.")
    return done


def install_cancel(*, install: ModelInstall) -> bool:
    """Cancel a queued or running install (the worker stops within a progress tick and
    deletes what it downloaded); False when it had ended."""
    cancelled = ModelInstall.objects.filter(pk=install.pk, status__in=ModelInstall.ACTIVE).update(
        status=ModelInstall.Status.CANCELLED, bytes_per_second=None
    )
    if cancelled and install.status == ModelInstall.Status.QUEUED:
        shutil.rmtree(_staging(install), ignore_errors=True)
    install.refresh_from_db()
    _publish(install)
    return bool(cancelled)


def install_interrupted(*, install: ModelInstall) -> None:
    """An install whose process was stopped (Ctrl-C in the CLI): failed, its download kept
    for the next install of the same model to resume."""
    ModelInstall.objects.filter(pk=install.pk, status__in=ModelInstall.ACTIVE).update(
        status=ModelInstall.Status.FAILED,
        bytes_per_second=None,
        error="Interrupted; install it again to resume the download.",
    )


def installs_recent(*, limit: int = 50):
    return ModelInstall.objects.select_related("requested_by")[:limit]


def install_describe(install: ModelInstall) -> dict:
    licence = licence_of(install.licence) if install.licence else None
    return {
        "id": str(install.pk),
        "source": install.source,
        "revision": install.revision or None,
        "subfolder": install.subfolder or None,
        "kind": install.kind,
        "name": install.name,
        "starter": install.starter or None,
        "licence": licence.describe() if licence else None,
        "status": install.status,
        "bytes_done": install.bytes_done,
        "bytes_total": install.bytes_total,
        "bytes_per_second": install.bytes_per_second,
        "seconds_left": install.seconds_left,
        "sha256": install.sha256 or None,
        "error": install.error or None,
        "created": install.created.isoformat(),
    }


def _publish(install: ModelInstall) -> None:
    if install.requested_by_id:
        publish_to_user(
            install.requested_by_id, {"type": Event.INSTALL, **install_describe(install)}
        )


# --- the job ---------------------------------------------------------------------------------


class _Meter:
    """Counts the bytes of an install as they arrive, writes them to its row (and the
    requester's websocket) at most every PROGRESS_EVERY_SECONDS, and stops the download
    (``InstallCancelled``) once the row says cancelled."""

    def __init__(self, install: ModelInstall, observer: Callable[[ModelInstall], None] | None):
        self.install = install
        self.observer = observer
        self.done = 0  # bytes on disk of the files finished, resumed or being written
        self.written_at: float = 0.0
        self.window: list[tuple[float, int]] = []

    def add(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.written_at >= PROGRESS_EVERY_SECONDS:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.written_at = now
        self.window = [(t, b) for t, b in self.window if now - t <= 5.0] + [(now, self.done)]
        (first_t, first_b), (last_t, last_b) = self.window[0], self.window[-1]
        speed = (last_b - first_b) / (last_t - first_t) if last_t > first_t else None
        updated = ModelInstall.objects.filter(
            pk=self.install.pk, status=ModelInstall.Status.RUNNING
        ).update(bytes_done=self.done, bytes_per_second=speed)
        self.install.bytes_done, self.install.bytes_per_second = self.done, speed
        if not updated:
            raise InstallCancelled
        _publish(self.install)
        if self.observer is not None:
            self.observer(self.install)

    def tqdm_class(self) -> type[tqdm]:
        """A tqdm class for huggingface_hub's downloads that reports to this meter."""
        meter = self

        class Bar(tqdm):
            def __init__(self, *args, **kwargs):
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)
                meter.add(kwargs.get("initial") or 0)  # the bytes a resume starts from

            def update(self, n=1):
                meter.add(n or 0)

        return Bar


def _on_disk(staging: Path, path: str) -> int:
    done = staging / path
    return done.stat().st_size if done.is_file() else 0


def install_run(
    *, install_id: str, observer: Callable[[ModelInstall], None] | None = None
) -> ModelInstall:
    """Run a queued install to its end (the housekeeping worker's task; ``manage.py models
    install`` runs it in its own process with ``observer`` drawing a progress bar)."""
    claimed = ModelInstall.objects.filter(pk=install_id, status=ModelInstall.Status.QUEUED).update(
        status=ModelInstall.Status.RUNNING, error=""
    )
    install = ModelInstall.objects.get(pk=install_id)
    if not claimed:
        return install  # cancelled before it started, or run already
    staging = _staging(install)
    _publish(install)
    try:
        _download_and_record(install, staging, _Meter(install, observer))
    except InstallCancelled:
        shutil.rmtree(staging, ignore_errors=True)
        install.refresh_from_db()
        install.bytes_per_second = None
    except (InstallFailed, ClientError) as exc:
        install.status, install.error = ModelInstall.Status.FAILED, str(exc)
        if isinstance(exc, DiskFull):  # nothing kept: a disk filled would stay full
            shutil.rmtree(staging, ignore_errors=True)
    except Exception as exc:
        install.status = ModelInstall.Status.FAILED
        if not source_of(install).reachable():  # the network went: said in words, no trace
            install.error = offline_message(source_of(install))
            logger.warning("model install %s failed: %s", install.pk, install.error)
        else:
            logger.exception("model install %s failed", install.pk)
            install.error = f"The install failed ({type(exc).__name__}: {exc}); " + _again(staging)
    else:
        install.status = ModelInstall.Status.SUCCEEDED
    if install.status != ModelInstall.Status.CANCELLED:
        install.bytes_per_second = None
        ModelInstall.objects.filter(pk=install.pk, status=ModelInstall.Status.RUNNING).update(
            status=install.status,
            error=install.error,
            bytes_done=install.bytes_done,
            bytes_total=install.bytes_total,
            bytes_per_second=None,
            sha256=install.sha256,
            licence=install.licence,
        )
        install.refresh_from_db()
        if install.status == ModelInstall.Status.CANCELLED:
            shutil.rmtree(staging, ignore_errors=True)  # cancelled in its last moment
    _publish(install)
    if observer is not None:
        observer(install)
    return install


def _download_and_record(install: ModelInstall, staging: Path, meter: _Meter) -> None:
    token = _hub_token()
    staging.mkdir(parents=True, exist_ok=True)
    source = source_of(install)
    listing = source.listing(install, token)
    if not install.licence and listing.licence:
        install.licence = listing.licence
        ModelInstall.objects.filter(pk=install.pk).update(licence=listing.licence)
        if not licence_allowed(licence_of(listing.licence)):
            raise InstallFailed(licence_refusal(source.repo, licence_of(listing.licence)))
    sizes = [size for _, size in listing.files]
    install.bytes_total = sum(sizes) if None not in sizes else None
    ModelInstall.objects.filter(pk=install.pk).update(bytes_total=install.bytes_total)
    already = sum(_on_disk(staging, path) for path, _ in listing.files)
    if install.bytes_total is not None:
        size_check(install.bytes_total)
        disk_check(staging, install.bytes_total - already)
    meter.done = already  # files a failed attempt finished (a part-file counts when resumed)
    checked = source.fetch(install, staging, listing, token, meter)
    meter.flush()
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's resume bookkeeping
    root = source.landed(staging, install)
    target = _target(install.kind, install.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if root.is_file():  # a file is read once: its checked digest is its digest
        install.sha256 = checked.get(root) or weights_sha256(root)
    shutil.move(root, target)
    shutil.rmtree(staging, ignore_errors=True)
    if install.kind == LAMA:
        return  # the lama engine reads its file where it is: nothing to record
    try:
        row = library_scan_item(kind=install.kind, path=target, sha256=install.sha256 or None)
    except (Unsupported, FamilyUnsupported, MaskUnsupported, OSError) as exc:
        _remove(target)
        raise InstallFailed(f"The library refused it: {exc}") from None
    row.licence, row.source = install.licence, install.source
    row.save(update_fields=["licence", "source"])
    install.sha256 = row.sha256


def _again(staging: Path) -> str:
    """What installing again does: resume from the bytes a failed attempt kept, or start over."""
    files = staging.rglob("*") if staging.is_dir() else ()
    kept = sum(f.stat().st_size for f in files if f.is_file())
    if kept:
        return f"try again: it resumes from the {kept / 1e6:,.1f} MB kept."
    return "try again."


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
