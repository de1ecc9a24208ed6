"""``make run``: the whole stack in one terminal (Ctrl-C stops every process it started and
exits 0).

Starts the embedded Redis when ``REDIS_URL`` is unset, migrates, creates the demo user if
there is no user yet, then runs the Procfile's processes (daphne and the Celery workers and
beat) with honcho. Production runs the same Procfile lines on as many machines as needed.

It is not a debug server: ``DJANGO_DEBUG`` stays off unless the environment sets it (the
secret key is generated once into the data folder). The console is kept for what a person
needs: Celery's banners and its warning about running as root are left out, the processes log
warnings and errors (``LOG_LEVEL=INFO`` for every request and task), and once the web process
answers, the address and the demo credentials are printed last, in a box.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Printer

from .embedded_redis import EmbeddedRedis

BASE_DIR = Path(__file__).resolve().parent.parent
#: Python's warning that a Celery worker runs as root (containers and CI run as root).
ROOT_WARNING = "ignore:You're running the worker with superuser privileges"


def quiet(command: str) -> str:
    """A Procfile line as ``make run`` starts it: a Celery command without its banner."""
    return command.replace("celery --app", "celery --quiet --app", 1)


def box(lines: list[str]) -> str:
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


def announce_when_up(url: str, lines: list[str], stop: threading.Event) -> None:
    """Print ``lines`` in a box once ``url`` answers (the web process is up)."""
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"{url}api/health", timeout=2):
                break
        except OSError:
            stop.wait(0.5)
    else:
        return
    time.sleep(1.0)  # the workers' own start-up lines come first
    print("\n" + box(lines) + "\n", flush=True)


def start_lama_install(manage: list[str], env: dict[str, str]) -> subprocess.Popen:
    """``manage.py models lama-auto`` beside the stack (start-up never waits for it): LaMa
    installed at the first start when the hub answers, its progress on this console (a thread
    prints its lines); offline, one line. ``stop_lama_install`` ends it with the stack."""
    process = subprocess.Popen(
        [*manage, "models", "lama-auto"],
        env=env,
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def show() -> None:
        for line in process.stdout:
            print(f"lama | {line.rstrip()}", flush=True)

    threading.Thread(target=show, daemon=True, name="lama").start()
    return process


def stop_lama_install(process: subprocess.Popen | None) -> None:
    """As Ctrl-C: the install records where it stopped, and the next start resumes it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def process_env(environ: dict[str, str]) -> dict[str, str]:
    """The Procfile's environment: ``environ`` with the console scripts of the packages this
    Python imports first on ``PATH`` (the Procfile runs ``celery`` by name): each
    ``PYTHONPATH`` folder's ``bin`` (where ``pip install --target DIR`` puts them, as on a
    lent GPU machine: ``docs/performance.md``), then this interpreter's folder (the venv's, as
    ``make run`` starts it)."""
    env = dict(environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("LOG_LEVEL", "WARNING")
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), ROOT_WARNING]))
    carried = [
        str(Path(folder) / "bin")
        for folder in env.get("PYTHONPATH", "").split(os.pathsep)
        if folder and (Path(folder) / "bin").is_dir()
    ]
    scripts = [*carried, str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join([*scripts, env.get("PATH", "")])
    return env


def main() -> int:
    env = process_env(dict(os.environ))
    data_dir = Path(env.get("DREAMLAYER_DATA_DIR", BASE_DIR / "data")).resolve()
    redis = None
    if not env.get("REDIS_URL"):
        redis = EmbeddedRedis(data_dir)
        redis.start()
    stop = threading.Event()
    lama = None
    try:
        manage = [sys.executable, str(BASE_DIR / "manage.py")]
        print("Preparing the database ...", flush=True)
        subprocess.run(
            [*manage, "migrate", "--noinput", "--verbosity", "0"], env=env, check=True, cwd=BASE_DIR
        )
        demo = subprocess.run(
            [*manage, "ensure_demo_user"],
            env=env,
            check=True,
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
        ).stdout.strip()
        procfile = parse_procfile((BASE_DIR / "Procfile").read_text())
        manager = Manager(Printer(sys.stdout))
        for name, command in procfile.processes.items():
            manager.add_process(name, quiet(command), env=env, cwd=str(BASE_DIR))
        host, port = env.get("HOST", "127.0.0.1"), env.get("PORT", "8000")
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = f"http://{shown}:{port}/"
        lines = [f"DreamLayer is ready on {url}", demo or "Log in with your account.", ""]
        lines.append("Ctrl-C stops everything.")
        threading.Thread(
            target=announce_when_up, args=(url, lines, stop), daemon=True, name="announce"
        ).start()
        lama = start_lama_install(manage, env)
        manager.loop()
        # Stopped by Ctrl-C or SIGTERM (honcho's 130 and 143): what was asked, not a failure.
        return 0 if manager.returncode in (130, 143) else (manager.returncode or 0)
    except subprocess.CalledProcessError as exc:
        print(exc.stderr or "", file=sys.stderr)
        return exc.returncode
    finally:
        stop.set()
        stop_lama_install(lama)
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())
