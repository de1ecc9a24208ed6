"""``make run``: the whole stack in one terminal (Ctrl-C stops every process it started).

Starts the embedded Redis when ``REDIS_URL`` is unset, migrates, creates the demo user if
there is no user yet, then runs the Procfile's processes (daphne and a Celery worker) with
honcho. Production runs the same Procfile lines on as many machines as needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Printer

from .embedded_redis import EmbeddedRedis, urls

BASE_DIR = Path(__file__).resolve().parent.parent


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "true")
    env.setdefault("PYTHONUNBUFFERED", "1")
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    data_dir = Path(env.get("DREAMLAYER_DATA_DIR", BASE_DIR / "data")).resolve()
    redis = None
    if not env.get("REDIS_URL"):
        redis = EmbeddedRedis(data_dir)
        redis.start()
        print(f"embedded Redis on {urls(data_dir)['redis']}", flush=True)
    try:
        manage = [sys.executable, str(BASE_DIR / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput"], env=env, check=True, cwd=BASE_DIR)
        subprocess.run([*manage, "ensure_demo_user"], env=env, check=True, cwd=BASE_DIR)
        procfile = parse_procfile((BASE_DIR / "Procfile").read_text())
        manager = Manager(Printer(sys.stdout))
        for name, command in procfile.processes.items():
            manager.add_process(name, command, env=env, cwd=str(BASE_DIR))
        host, port = env.get("HOST", "127.0.0.1"), env.get("PORT", "8000")
        print(f"DreamLayer on http://{host}:{port}/  (Ctrl-C stops everything)", flush=True)
        manager.loop()
        return manager.returncode or 0
    except subprocess.CalledProcessError as exc:
        return exc.returncode
    finally:
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())
