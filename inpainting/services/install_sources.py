"""Where an install's files come from: three typed sources, each listing what it will fetch
(with the sizes, licence and checksums it knows) and fetching it into the install's staging
folder with progress and resume.

- ``HubRepo``: a Hugging Face repository, all of it or of a subfolder (a diffusers folder:
  its parts and configuration; never the single files beside them or the ``.fp16`` copies).
- ``HubFile``: one file of a repository (a hub ``resolve``/``blob`` link; an IP-Adapter file
  brings the image encoder beside it).
- ``UrlFile``: a plain ``https://`` URL to a file (the Civitai pattern), through the one URL
  fetcher (``remote.download``).

The hub is ``HF_ENDPOINT`` (a hub file URL names its repository and file, never a host to
connect to). What a source may fetch is ``services.library``'s table of weights files; the
flow around a source (staging, licence, disk, the scan) is ``services.installs``'."""

from __future__ import annotations

import errno
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from django.conf import settings
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub import errors as hf_errors

from .. import remote
from ..engine.families import INDEX_FILES
from ..engine.probe import PICKLE_SUFFIXES
from ..errors import ClientError, RemoteInputError, echoed
from ..models import LAMA, LibraryModel, ModelInstall
from .library import is_weights_file, weights_sha256

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_CONFIG_SUFFIXES = (".json", ".txt", ".model")


class InstallFailed(Exception):
    """An install that cannot go on, with the message its requester reads."""


class DiskFull(InstallFailed):
    """No room for the download: the disk filled up, or it would pass INSTALL_MAX_BYTES or
    the free-disk margin. What was downloaded is deleted, not kept to resume (it could never
    finish, and a disk filled would stay full)."""


class InstallCancelled(Exception):
    """Raised from the progress callback when the install was cancelled."""


class Meter(Protocol):
    """What a fetch reports its bytes to (``installs._Meter``)."""

    done: int

    def add(self, count: int) -> None: ...

    def tqdm_class(self) -> type: ...


@dataclass
class Listing:
    """What a source will fetch: its files (path in the source, size when known), the
    licence its card names and whether it is gated."""

    files: list[tuple[str, int | None]]
    licence: str = ""
    gated: bool = False
    #: The SHA-256 the hub reports for each of its LFS files (path -> hex): what lands on disk
    #: is checked against it.
    sha256: dict[str, str] = field(default_factory=dict)


def allowed_file(name: str, kind: str) -> bool:
    """Whether an install of ``kind`` fetches the file ``name`` as weights."""
    if kind == LAMA:
        return Path(name).suffix.lower() == ".onnx"
    return is_weights_file(name, kind)


# --- the three sources -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Hub:
    """A source on the hub (HF_ENDPOINT): what both hub sources list and fetch alike."""

    repo: str
    where = "the Hugging Face hub"

    def reachable(self) -> bool:
        return hub_reachable()

    def listing(self, install: ModelInstall, token: str | None) -> Listing:
        api = HfApi(endpoint=settings.HF_ENDPOINT, token=token or False)
        try:
            info = api.model_info(self.repo, revision=install.revision or None, files_metadata=True)
        except (hf_errors.HfHubHTTPError, OSError) as exc:
            raise _hub_error(exc, install, self.repo) from None
        if info.gated and not token:
            raise gated(self.repo)
        card = info.card_data.to_dict() if info.card_data is not None else {}
        siblings = {s.rfilename: s.size for s in info.siblings or []}
        return Listing(
            self._chosen(install, siblings),
            str(card.get("license_name") or card.get("license") or ""),
            bool(info.gated),
            {s.rfilename: s.lfs.sha256 for s in info.siblings or [] if s.lfs},
        )

    def _chosen(self, install: ModelInstall, siblings: dict) -> list[tuple[str, int | None]]:
        raise NotImplementedError

    def fetch(
        self, install: ModelInstall, staging: Path, listing: Listing, token: str | None, meter
    ) -> dict[Path, str]:
        """Download the listed files (each checked against the hub's checksum); the digests
        checked, by file."""
        checked: dict[Path, str] = {}
        for path, _ in listing.files:
            _download_hub_file(install, self.repo, path, staging, token, meter)
            if digest := _check_sha256(staging, path, listing.sha256.get(path)):
                checked[staging / path] = digest
        return checked


@dataclass(frozen=True)
class HubRepo(_Hub):
    """A whole repository (or its ``subfolder``): a diffusers folder, or a model's files."""

    single_file = False

    @property
    def stored(self) -> str:
        return self.repo

    def default_name(self, subfolder: str) -> str:
        return (subfolder or self.repo).rsplit("/", 1)[-1]

    def _chosen(self, install: ModelInstall, siblings: dict) -> list[tuple[str, int | None]]:
        prefix = f"{install.subfolder}/" if install.subfolder else ""
        within = {p[len(prefix) :]: s for p, s in siblings.items() if p.startswith(prefix)}
        diffusers = any(name in within for name in INDEX_FILES)
        chosen = []
        for path, size in within.items():
            suffix = Path(path).suffix.lower()
            if suffix in _CONFIG_SUFFIXES and not Path(path).name.startswith("."):
                chosen.append((prefix + path, size))
            elif allowed_file(path, install.kind) and suffix != ".pth":
                if diffusers and "/" not in path:
                    continue  # a single-file checkpoint beside the diffusers parts
                stem = Path(path).name.split(".")
                if len(stem) > 2 and path.replace(f".{stem[-2]}.", ".") in within:
                    continue  # the .fp16 (or other variant) copy of weights it has in full
                chosen.append((prefix + path, size))
        quantized = sorted(p for p, _ in chosen if Path(p).suffix.lower() == ".gguf")
        if quantized and not diffusers:  # one transformer in several quantizations: name one
            link = f"{settings.HF_ENDPOINT.rstrip('/')}/{self.repo}/resolve/main/"
            raise InstallFailed(
                f"{self.repo} holds {len(quantized)} GGUF file(s), one transformer in each "
                f"quantization ({', '.join(quantized[:8])}{', …' if len(quantized) > 8 else ''})"
                f": install the one you want by its link ({link}{quantized[0]})."
            )
        if not any(allowed_file(p, install.kind) for p, _ in chosen):
            pickles = [p for p in within if Path(p).suffix.lower() in PICKLE_SUFFIXES]
            if pickles:
                raise InstallFailed(
                    f"{self.repo} has only pickle weights ({', '.join(sorted(pickles)[:3])}): "
                    "loading one can run any code inside it, so they are refused. Look for a "
                    ".safetensors release of the model."
                )
            where = f"{self.repo}{'/' + install.subfolder if prefix else ''}"
            raise InstallFailed(f"{where} has no weights.")
        return chosen

    def landed(self, staging: Path, install: ModelInstall) -> Path:
        """What joins the library once fetched: the repository's folder (or its subfolder)."""
        return staging / install.subfolder if install.subfolder else staging


@dataclass(frozen=True)
class HubFile(_Hub):
    """One file of a repository (an IP-Adapter's with the image encoder beside it)."""

    file: str = ""
    single_file = True

    @property
    def stored(self) -> str:
        return f"{self.repo}/{self.file}"

    @property
    def file_name(self) -> str:
        return Path(self.file).name

    def default_name(self, subfolder: str) -> str:
        return self.file_name

    def _chosen(self, install: ModelInstall, siblings: dict) -> list[tuple[str, int | None]]:
        if self.file not in siblings:
            raise InstallFailed(f"{self.repo} has no file {self.file!r}.")
        chosen = [(self.file, siblings[self.file])]
        if install.kind == LibraryModel.Kind.IP_ADAPTER:
            chosen += _image_encoder_beside(self.repo, self.file, siblings)
        return chosen

    def landed(self, staging: Path, install: ModelInstall) -> Path:
        """The file, or for an IP-Adapter the folder of the file and its image encoder."""
        if install.kind == LibraryModel.Kind.IP_ADAPTER:
            return staging / Path(self.file).parent
        return staging / self.file


@dataclass(frozen=True)
class UrlFile:
    """A plain http(s) URL to one file, fetched by the one URL fetcher."""

    url: str
    repo = ""
    single_file = True

    @property
    def where(self) -> str:
        return urlsplit(self.url).netloc

    def reachable(self) -> bool:
        """Its host is asked when it is fetched (the one URL fetcher says what failed)."""
        return True

    @property
    def stored(self) -> str:
        return self.url

    @property
    def file_name(self) -> str:
        return Path(unquote(urlsplit(self.url).path)).name

    def default_name(self, subfolder: str) -> str:
        return self.file_name

    def listing(self, install: ModelInstall, token: str | None) -> Listing:
        return Listing([(self.file_name, None)])  # its size comes with the answer's head

    def fetch(
        self, install: ModelInstall, staging: Path, listing: Listing, token: str | None, meter
    ) -> dict[Path, str]:
        _download_url(install, self.url, staging / self.file_name, meter)
        return {}

    def landed(self, staging: Path, install: ModelInstall) -> Path:
        return staging / self.file_name


Source = HubRepo | HubFile | UrlFile


def _hub_hosts() -> set[str]:
    return {"huggingface.co", "www.huggingface.co", urlsplit(settings.HF_ENDPOINT).netloc}


def source_parsed(text: str, revision: str) -> tuple[Source, str]:
    """The source and revision a request names: a repo id, a hub URL (a repository's page, or
    a file's ``resolve``/``blob`` link with its revision) or a plain http(s) URL to a file."""
    text = text.strip()
    if _REPO_ID.match(text):
        return HubRepo(text), revision
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ClientError(
            f"{echoed(text)} is neither a Hugging Face repo id (org/name) nor an http(s) URL.",
            field="source",
        )
    if parts.netloc in _hub_hosts():
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        repo = "/".join(segments[:2])
        if len(segments) == 2 and _REPO_ID.match(repo):
            return HubRepo(repo), revision
        if len(segments) >= 5 and segments[2] in ("resolve", "blob") and _REPO_ID.match(repo):
            return HubFile(repo, file="/".join(segments[4:])), revision or segments[3]
        raise ClientError(
            "A Hugging Face URL must name a repository (https://huggingface.co/org/name) or a "
            "file of one (…/org/name/resolve/main/file.safetensors).",
            field="source",
        )
    return UrlFile(text), revision


def hub_source(repo: str, file: str = "") -> Source:
    """A repository, or one ``file`` of it (a starter list entry)."""
    return HubFile(repo, file=file) if file else HubRepo(repo)


def source_of(install: ModelInstall) -> Source:
    """The source an install row names (``stored``)."""
    if install.source.startswith(("http://", "https://")):
        return UrlFile(install.source)
    parts = install.source.split("/", 2)
    return hub_source("/".join(parts[:2]), parts[2] if len(parts) > 2 else "")


# --- the hub ---------------------------------------------------------------------------------

#: Seconds the hub has to answer before an install (or a start-up) says it is offline.
HUB_PROBE_SECONDS = 5.0


def hub_reachable() -> bool:
    """Whether ``HF_ENDPOINT`` answers at all (any status): an offline machine, or one whose
    network refuses the hub, is told so at once instead of failing an install."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(settings.HF_ENDPOINT, method="HEAD"), timeout=HUB_PROBE_SECONDS
        ):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False


def offline_message(source: Source) -> str:
    """An install that cannot reach its source (the hub: a URL's host is asked when fetched,
    and the URL fetcher says what failed), in words: why, and the way without a network (the
    files copied in, then scanned)."""
    return (
        f"This server cannot reach {source.where} ({settings.HF_ENDPOINT}): it has no "
        "internet, or its network refuses it. "
        "Download the model on a machine that can, copy its file or folder into this server's "
        "folder for its kind (MODELS_DIR for a diffusion model, LORAS_DIR for a LoRA; "
        'docs/model-library.md, "Copying files") and run `manage.py models scan`.'
    )


def gated(repo: str) -> InstallFailed:
    page = f"{settings.HF_ENDPOINT.rstrip('/')}/{repo}"
    return InstallFailed(
        f"{repo} is gated: accept its licence at {page} with your Hugging Face account, then "
        "set that account's token (Model installs -> Hugging Face token in the admin, or "
        "HF_TOKEN) and install it again."
    )


def _hub_error(exc: Exception, install: ModelInstall, repo: str) -> InstallFailed:
    if not hub_reachable():
        return InstallFailed(offline_message(source_of(install)))
    if isinstance(exc, hf_errors.GatedRepoError):
        return gated(repo)
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return InstallFailed(f"{repo} has no revision {install.revision!r}.")
    if isinstance(exc, hf_errors.RemoteEntryNotFoundError):
        return InstallFailed(f"{repo} has no file {install.source.removeprefix(repo + '/')!r}.")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return InstallFailed(
            f"{repo} was not found on {settings.HF_ENDPOINT} (a private repository needs a "
            "token that can read it)."
        )
    return InstallFailed(f"The hub could not be reached or answered an error: {exc}")


def _image_encoder_beside(repo: str, file: str, siblings: dict) -> list[tuple[str, int | None]]:
    """The image encoder of an IP-Adapter file: the ``image_encoder/`` folder beside it (as
    h94/IP-Adapter publishes several adapters that share one), its configuration and
    safetensors weights; the install makes one folder of the two, as the library keeps it."""
    folder = f"{Path(file).parent}/image_encoder/".removeprefix("./")
    chosen = [
        (path, size)
        for path, size in siblings.items()
        if path.startswith(folder)
        and not Path(path).name.startswith(".")
        and Path(path).suffix.lower() in (*_CONFIG_SUFFIXES, ".safetensors")
    ]
    if not any(path.lower().endswith(".safetensors") for path, _ in chosen):
        raise InstallFailed(
            f"{repo} has no image encoder beside {file} ({folder} with config.json and "
            ".safetensors weights): an IP-Adapter needs one."
        )
    return chosen


def _download_hub_file(
    install: ModelInstall, repo: str, path: str, staging: Path, token: str | None, meter: Meter
) -> None:
    try:
        hf_hub_download(
            repo,
            path,
            revision=install.revision or None,
            local_dir=staging,
            token=token or False,
            endpoint=settings.HF_ENDPOINT,
            tqdm_class=meter.tqdm_class(),
        )
    except InstallCancelled:
        raise
    except (hf_errors.HfHubHTTPError, hf_errors.EntryNotFoundError) as exc:
        raise _hub_error(exc, install, repo) from None
    except OSError as exc:
        if _disk_full(exc):
            raise DiskFull(f"The disk filled up while downloading {path}.") from None
        raise


def _check_sha256(staging: Path, path: str, expected: str | None) -> str | None:
    """A downloaded file is the one the hub describes: its SHA-256 is the hub's for it, where
    the hub gives one (its LFS files: weights, ONNX graphs); else it is deleted and the install
    fails (a corrupted or substituted download never joins the library). Its digest, when
    checked."""
    if not expected:
        return None
    done = staging / path
    found = weights_sha256(done)
    if found != expected.lower():
        done.unlink(missing_ok=True)
        raise InstallFailed(
            f"{path} is not the file the hub describes: its SHA-256 is {found[:16]}..., the "
            f"hub's is {expected[:16]}...; it was deleted. Try the install again."
        )
    return found


# --- a plain URL -----------------------------------------------------------------------------


def _download_url(install: ModelInstall, url: str, dest: Path, meter: Meter) -> None:
    """A plain URL's file: its size is known from the answer's head, so the disk is checked
    at the first block (a resume: from what is there)."""
    meter.done = dest.stat().st_size if dest.exists() else 0

    def on_bytes(count: int, total: int | None) -> None:
        if total is not None and install.bytes_total != total:
            install.bytes_total = total
            ModelInstall.objects.filter(pk=install.pk).update(bytes_total=total)
            size_check(total)
            disk_check(dest.parent, total - meter.done)
        meter.add(count)
        if total is None:  # no length said: the cap and the margin as it comes
            size_check(meter.done)
            if meter.done % (256 * 1024 * 1024) < count:
                disk_check(dest.parent, 0)

    try:
        remote.download(url, dest, field="source", on_bytes=on_bytes)
    except RemoteInputError as exc:
        raise InstallFailed(exc.message) from None
    except OSError as exc:
        if _disk_full(exc):
            raise DiskFull(f"The disk filled up while downloading {dest.name}.") from None
        raise


# --- room for it -----------------------------------------------------------------------------


def size_check(total: int) -> None:
    """A download of ``total`` bytes in all is within INSTALL_MAX_BYTES."""
    if total > (most := settings.INSTALL_MAX_BYTES):
        raise DiskFull(
            f"The download is {total / 1e9:.2f} GB; installs here are at most "
            f"{most / 1e9:.2f} GB (INSTALL_MAX_BYTES)."
        )


def disk_check(staging: Path, needed: int) -> None:
    """``needed`` more bytes fit on the disk with INSTALL_FREE_DISK_BYTES left free."""
    probe_at = staging
    while not probe_at.exists():
        probe_at = probe_at.parent
    free = shutil.disk_usage(probe_at).free
    margin = settings.INSTALL_FREE_DISK_BYTES
    if needed + margin > free:
        raise DiskFull(
            f"Not enough disk: the download needs {needed / 1e9:.2f} GB more, "
            f"{free / 1e9:.2f} GB are free, and installs leave {margin / 1e9:.2f} GB free "
            "(INSTALL_FREE_DISK_BYTES)."
        )


def _disk_full(exc: OSError) -> bool:
    return exc.errno == errno.ENOSPC or "No space left" in str(exc)
