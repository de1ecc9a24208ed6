"""``make chaos``: submit N jobs, SIGKILL the worker M times mid-inference, restart Redis once,
and check that every job ended exactly once with nothing lost and nothing duplicated, and how
long each killed job took from the kill to its end.

It runs its own stack in a temporary folder (SQLite, the embedded Redis it can restart, a
Celery worker and Celery beat running the reaper) with the production recovery settings
(heartbeat, reaper period), so the times it prints are what a deployment sees. The
machine's PostgreSQL and Redis are never touched.

    python scripts/chaos.py --jobs 12 --kills 4      # make chaos
    python scripts/chaos.py --jobs 6 --kills 2       # the short form CI runs

Prints ``N jobs, M kills, L lost, D duplicated, slowest recovery S s`` and exits 1 unless L and
D are 0 and every killed job ended within ``--recovery`` seconds (60) of its kill.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A job may be killed more than once here; the recovery settings are the defaults.
LIMITS = {"MAX_GENERATION_ATTEMPTS": "5"}


def configure(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="dreamlayer_site.settings",
        DJANGO_DEBUG="true",
        DREAMLAYER_DATA_DIR=str(data_dir),
        INPAINT_ENGINE="classical",
        LOAD_SD_INPAINT="false",
        MAX_ACTIVE_GENERATIONS_PER_USER="1000",
        PYTHONUNBUFFERED="1",
        **LIMITS,
    )
    os.environ.clear()
    os.environ.update(env)
    return env


class Processes:
    """The worker and beat children, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.worker: subprocess.Popen | None = None
        self.beat: subprocess.Popen | None = None
        self.housekeeping: subprocess.Popen | None = None
        self.starts = 0

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "--app", "dreamlayer_site", *args],
            cwd=ROOT,
            env=self.env,
            stdout=(self.logs / log).open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self) -> None:
        self.starts += 1
        self.worker = self._spawn(
            ["worker", "--queues", "inference", "--concurrency", "1",
             "--loglevel", "INFO", "--without-mingle", "--without-gossip",
             "--hostname", f"chaos{self.starts}@%h"],
            "worker.log",
        )  # fmt: skip

    def start_housekeeping(self) -> None:
        """The Procfile's ``housekeeping`` worker: the reaper never waits behind a job."""
        self.housekeeping = self._spawn(
            ["worker", "--queues", "default", "--pool", "threads", "--concurrency", "2",
             "--loglevel", "INFO", "--without-mingle", "--without-gossip",
             "--hostname", "housekeeping@%h"],
            "housekeeping.log",
        )  # fmt: skip

    def start_beat(self) -> None:
        schedule = self.logs / "celerybeat-schedule"
        self.beat = self._spawn(
            ["beat", "--loglevel", "INFO", "--schedule", str(schedule)], "beat.log"
        )

    def kill_worker(self, whole: bool) -> None:
        """SIGKILL the pool process running the job, or the whole worker (a lost machine)."""
        import psutil

        parent = psutil.Process(self.worker.pid)
        if whole:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
            self.start_worker()
            return
        for child in parent.children(recursive=True):
            child.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        for process in (self.worker, self.housekeeping, self.beat):
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def photo(seed: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640]
    base = np.stack([x / 640 * 255, y / 480 * 255, (x + y) / 1120 * 255], axis=-1)
    noisy = base + rng.normal(0, 25, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype("uint8"))


def png(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def submit(jobs: int):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from accounts.models import User
    from inpainting.params import GenerationParams
    from inpainting.services import generations

    # Two users: the fair-share order moves between them while workers are killed.
    users = [
        User.objects.create_user(username=name, password=f"{name}-password-1")
        for name in ("chaos", "chaos-two")
    ]
    mask = Image.new("L", (640, 480), 255)
    mask.paste(0, (120, 90, 520, 390))  # black: a large hole, about a second of PatchMatch
    ids = []
    for i in range(jobs):
        generation = generations.generation_create(
            generations.Sender(users[i % 2]),
            image_file=SimpleUploadedFile("in.png", png(photo(i))),
            mask_file=SimpleUploadedFile("mask.png", png(mask)),
            params=GenerationParams(prompt=f"chaos {i}", seed=i),
        ).generation
        ids.append(generation.pk)
    return ids


def running_job():
    from inpainting.models import Generation

    return Generation.objects.filter(status=Generation.Status.RUNNING).first()


def audit(ids) -> tuple[int, int, dict[str, int]]:
    """(lost, duplicated, status counts) from the database and the files on disk."""
    from inpainting.models import Generation

    lost = duplicated = retried = 0
    counts: dict[str, int] = {}
    for generation in Generation.objects.filter(pk__in=ids).prefetch_related("images"):
        counts[generation.status] = counts.get(generation.status, 0) + 1
        retried += generation.attempts > 1
        if generation.status not in Generation.TERMINAL:
            lost += 1
            continue
        storage = generation.source.file.storage
        if not storage.exists(generation.source.file.name) or not storage.exists(
            generation.mask.file.name
        ):
            lost += 1  # an upload disappeared
        images = list(generation.images.all())
        expected = 1 if generation.status == Generation.Status.SUCCEEDED else 0
        if len(images) > expected or len({i.index for i in images}) != len(images):
            duplicated += 1
        elif generation.status == Generation.Status.SUCCEEDED and not images:
            lost += 1
    lost += len(ids) - sum(counts.values())
    outputs = Path(os.environ["DREAMLAYER_DATA_DIR"]) / "media" / "outputs"
    stored = sum(1 for _ in outputs.rglob("*.png")) if outputs.exists() else 0
    if stored > counts.get(Generation.Status.SUCCEEDED, 0):
        duplicated += stored - counts.get(Generation.Status.SUCCEEDED, 0)
    counts["ran again after a kill"] = retried
    return lost, duplicated, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--recovery", type=float, default=60, help="seconds from kill to end")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="dreamlayer-chaos-"))
    env = configure(data_dir)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from dreamlayer_site.embedded_redis import EmbeddedRedis
    from inpainting.models import Generation

    call_command("migrate", verbosity=0)
    redis = EmbeddedRedis(data_dir)
    redis.start()
    processes = Processes(env, data_dir)
    started = time.monotonic()
    kills = redis_restarts = 0
    try:
        ids = submit(args.jobs)
        processes.start_worker()
        processes.start_housekeeping()
        processes.start_beat()
        killed: dict = {}  # job id -> when its worker was killed
        while time.monotonic() - started < args.timeout:
            done = Generation.objects.filter(pk__in=ids, status__in=Generation.TERMINAL).count()
            if done == len(ids):
                break
            job = running_job()
            if kills < args.kills and job is not None and job.pk not in killed:
                time.sleep(0.3)  # well inside the inference
                processes.kill_worker(whole=kills % 2 == 1)
                killed[job.pk] = datetime.datetime.now(datetime.UTC)
                kills += 1
                print(f"kill {kills}: SIGKILL {'worker' if kills % 2 == 0 else 'pool process'}"
                      f" during {job.pk}", flush=True)  # fmt: skip
            elif kills >= 1 and redis_restarts == 0:
                redis.stop()  # no persistence: every queued message is lost
                time.sleep(1)
                redis.start()
                redis_restarts = 1
                print("redis restarted (its queue was lost)", flush=True)
            time.sleep(0.2)
        lost, duplicated, counts = audit(ids)
        recoveries = []
        for number, (job_id, at) in enumerate(killed.items(), 1):
            job = Generation.objects.get(pk=job_id)
            end = (job.finished_at - at).total_seconds() if job.finished_at else float("inf")
            again = (job.started_at - at).total_seconds() if job.started_at else float("inf")
            recoveries.append(end)
            print(f"kill {number}: the job ran again {again:.1f} s after the kill and ended "
                  f"({job.status}, attempt {job.attempts}) {end:.1f} s after it")  # fmt: skip
    finally:
        processes.stop()
        redis.stop()
    seconds = time.monotonic() - started
    slowest = max(recoveries, default=0.0)
    print(f"statuses: {counts}; redis restarts: {redis_restarts}; {seconds:.0f} s")
    print(
        f"{len(ids)} jobs, {kills} kills, {lost} lost, {duplicated} duplicated, "
        f"slowest recovery {slowest:.1f} s"
    )
    ok = (
        lost == 0
        and duplicated == 0
        and kills == args.kills
        and redis_restarts == 1
        and slowest <= args.recovery
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
