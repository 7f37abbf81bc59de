"""Bad configuration stops start-up with one line naming the variable, never a traceback."""

import os
import runpy
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


def _settings(tmp_path, monkeypatch, **env):
    """console/settings.py read again, in this process, with ``env`` set."""
    monkeypatch.setenv("GATEHOUSE_VAR_DIR", str(tmp_path))
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    return runpy.run_path(str(ROOT / "console" / "settings.py"))


@pytest.mark.parametrize(
    "variable, value",
    [
        ("GATEHOUSE_SCIM_RATE_LIMIT", "abc"),  # was a 500 on every SCIM request
        ("GATEHOUSE_SCIM_RATE_LIMIT", "0/m"),
        ("GATEHOUSE_SCIM_RATE_LIMIT", "100/x"),
        ("GATEHOUSE_SCIM_RATE_LIMIT", "100/M"),
        ("GATEHOUSE_SYNC_LOG_RETENTION_DAYS", "-5"),  # the purge would have emptied the log
        ("GATEHOUSE_SYNC_LOG_RETENTION_DAYS", "0"),
        ("GATEHOUSE_WEB_WORKERS", "abc"),
        ("GATEHOUSE_WEB_THREADS", "0"),
        ("GATEHOUSE_GUARD_SHARE", "abc"),
        ("GATEHOUSE_GUARD_SHARE", "nan"),
        ("GATEHOUSE_GUARD_MIN", "1.5"),
        ("GATEHOUSE_DEACTIVATION_SWEEP_SECONDS", "0"),
        ("GATEHOUSE_DEACTIVATION_SWEEP_SECONDS", "inf"),
        ("GATEHOUSE_DEACTIVATION_SWEEP_SECONDS", "1e-9"),
        ("DATABASE_CONN_MAX_AGE", "x"),
        ("SECURE_HSTS_SECONDS", "-1"),
        ("DEBUG", "maybe"),
        ("DATABASE_PREPARED_STATEMENTS", "ture"),
        ("LOG_LEVEL", "LOUD"),
        ("CACHE_URL", "foo://"),
        ("GATEHOUSE_BASE_URL", "https://gh.example.com/?q=1"),
        ("GATEHOUSE_BASE_URL", "https://gh.example.com:99999"),
        ("PORT", "abc"),
        ("PORT", "70000"),
    ],
)
def test_a_bad_value_of_any_knob_is_refused_naming_it(tmp_path, monkeypatch, variable, value):
    with pytest.raises(SystemExit) as stopped:
        _settings(tmp_path, monkeypatch, **{variable: value})
    message = str(stopped.value)
    assert message.startswith("Gatehouse configuration error: ") and variable in message
    assert "\n" not in message


def test_good_values_are_read(tmp_path, monkeypatch):
    read = _settings(
        tmp_path, monkeypatch, DEBUG="Yes", GATEHOUSE_SCIM_RATE_LIMIT=" 500/hour ",
        GATEHOUSE_SYNC_LOG_RETENTION_DAYS="30", GATEHOUSE_GUARD_SHARE="0.5", LOG_LEVEL="warning",
        GATEHOUSE_WEB_WORKERS=" 3 ",
    )  # fmt: skip
    assert read["DEBUG"] is True
    assert read["GATEHOUSE_SCIM_RATE_LIMIT"] == "500/hour"
    assert read["GATEHOUSE_SYNC_LOG_RETENTION_DAYS"] == 30
    assert read["GATEHOUSE_GUARD_SHARE"] == 0.5
    assert read["LOGGING"]["root"]["level"] == "WARNING"
    assert read["GATEHOUSE_WEB_WORKERS"] == 3

    # What was accepted before stays accepted: DRF's long periods, django-environ's booleans,
    # logging's other level names, a sweep under a second; set but empty is false.
    read = _settings(
        tmp_path, monkeypatch, GATEHOUSE_SCIM_RATE_LIMIT="1000/minutes", DEBUG="y",
        LOG_LEVEL="WARN", GATEHOUSE_DEACTIVATION_SWEEP_SECONDS="0.5",
        DATABASE_PREPARED_STATEMENTS="",
    )  # fmt: skip
    assert read["GATEHOUSE_SCIM_RATE_LIMIT"] == "1000/minutes" and read["DEBUG"] is True
    assert read["GATEHOUSE_DEACTIVATION_SWEEP_SECONDS"] == 0.5
    assert read["LOGGING"]["root"]["level"] == "WARN"


def test_unset_the_base_url_is_the_console_s_own_port(tmp_path, monkeypatch):
    monkeypatch.delenv("GATEHOUSE_BASE_URL", raising=False)
    assert _settings(tmp_path, monkeypatch, PORT="9000")["GATEHOUSE_BASE_URL"] == (
        "http://localhost:9000"
    )
    monkeypatch.delenv("PORT")
    assert _settings(tmp_path, monkeypatch)["GATEHOUSE_BASE_URL"] == "http://localhost:8000"


def test_a_short_credential_key_is_a_warning_not_a_refusal(tmp_path):
    # Every command's checks say so (serve's migrate too), not only check --deploy.
    result = _check(tmp_path, GATEHOUSE_CREDENTIAL_KEY="short")
    assert result.returncode == 0, result.stderr
    assert "gatehouse.W001" in result.stderr + result.stdout


def test_a_blank_credential_key_is_no_key(tmp_path, monkeypatch):
    read = _settings(tmp_path, monkeypatch, GATEHOUSE_CREDENTIAL_KEY="   ")
    assert read["GATEHOUSE_CREDENTIAL_KEY"] == (tmp_path / "credential_key").read_text().strip()
