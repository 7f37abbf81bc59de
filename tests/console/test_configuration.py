"""Bad configuration stops start-up with one line naming the variable, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _check(tmp_path, **env):
    run_env = {**os.environ, "GATEHOUSE_VAR_DIR": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "variable, value",
    [
        ("DATABASE_URL", "not a url at all"),
        ("DATABASE_URL", "mysql2://root@localhost/x"),
        ("CELERY_BROKER_URL", "kafka://localhost:9092"),
        ("GATEHOUSE_BASE_URL", "localhost:8000"),
    ],
)
def test_bad_setting_stops_with_one_line_naming_the_variable(tmp_path, variable, value):
    result = _check(tmp_path, **{variable: value})
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_defaults_need_no_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["GATEHOUSE_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "secret_key").exists()
