"""The short form of ``make chaos``: worker kills mid-inference and a Redis restart lose and
duplicate nothing (the script runs its own stack in a temporary folder)."""

from tests.live import run_script


def test_chaos_short_form_loses_and_duplicates_nothing():
    result = run_script(
        "scripts/chaos.py", "--jobs", "6", "--kills", "2", "--timeout", "240", timeout=300
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "6 jobs, 2 kills, 0 lost, 0 duplicated" in result.stdout
    assert "redis restarted" in result.stdout
