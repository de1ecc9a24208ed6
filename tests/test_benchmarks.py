"""The CI-sized benchmarks run end to end, so they cannot rot (the full-sized runs and their
figures are in docs/performance.md)."""

from tests.live import run_script


def test_diffusers_vs_stock_runs_on_the_tiny_model():
    result = run_script("bench/diffusers_vs_stock.py", "--device", "cpu", "--runs", "2")
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "tiny model, cpu, 64 x 64, 5 steps" in result.stdout
    lines = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    for name in ("stock diffusers pipeline", "DreamLayer backend"):
        seconds = float(lines[name].split()[-2])
        assert 0 < seconds < 30, lines[name]
    assert "speed-up (stock / DreamLayer):" in result.stdout


def test_batching_runs_on_the_tiny_model():
    result = run_script("bench/batching.py", "--device", "cpu", "--runs", "1", "--jobs", "1,2")
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"]
    assert all(float(row[1]) > 0 for row in rows) and rows[0][2] == "1.00x"
