"""The engine is plain Python: importing all of it loads no Django."""

import subprocess
import sys


def test_engine_imports_no_django():
    code = (
        "import sys\n"
        "import inpainting.engine\n"
        "import inpainting.engine.backends.classical, inpainting.engine.backends.diffusers\n"
        "import inpainting.testing.tiny_model\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'rest_framework', 'channels', 'celery'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "[]"
