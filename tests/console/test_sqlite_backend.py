"""console/sqlite3: Django's SQLite backend, its %s → ? rewrite remembered per statement."""

import sqlite3

import pytest
from django.db import connection

from console.sqlite3 import base, checkpoint

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backend only"),
]


def test_settings_choose_it_for_sqlite_urls():
    assert connection.settings_dict["ENGINE"] == "console.sqlite3"


def test_connections_read_pages_through_a_memory_map():
    # The test database is a file too (settings TEST NAME), so the map applies to it.
    fresh = connection.get_new_connection(connection.get_connection_params())
    try:
        assert fresh.execute("PRAGMA mmap_size").fetchone()[0] == 256 * 1024 * 1024
        assert fresh.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        fresh.close()


def test_lower_folds_every_letter_as_python_does():
    with connection.cursor() as cursor:
        cursor.execute("SELECT lower(%s), lower(NULL), lower(5)", ["USER@EXÄMPLE.COM"])
        assert cursor.fetchone() == ("user@exämple.com", None, "5")


def test_the_rewrite_is_django_s_and_is_remembered():
    sql = "SELECT %s, '%%', %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [1, "two"])
        assert cursor.fetchone() == (1, "%", "two")
    assert base._CONVERTED[sql] == "SELECT ?, '%', ?"


def test_named_parameters_are_rewritten_each_time():
    with connection.cursor() as cursor:
        cursor.execute("SELECT %(a)s, %(b)s", {"a": 1, "b": 2})
        assert cursor.fetchone() == (1, 2)
        cursor.execute("SELECT %(a)s, %(b)s", {"b": 3, "a": 4})
        assert cursor.fetchone() == (4, 3)


def test_the_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(base, "_LIMIT", 3)
    base._CONVERTED.clear()
    with connection.cursor() as cursor:
        for n in range(1, 6):
            cursor.execute("SELECT " + ", ".join(["%s"] * n), list(range(n)))
            assert cursor.fetchone() == tuple(range(n))
    assert len(base._CONVERTED) <= 3


# --- checkpoints in the background (console/sqlite3/checkpoint.py) -------------------------


def _wal_database(path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # only our checkpoint may copy pages back
    db.execute("CREATE TABLE t (x TEXT)")
    for i in range(50):
        db.execute("INSERT INTO t VALUES (?)", ["x" * 3000 + str(i)])
    return db


def test_a_checkpoint_copies_the_log_back_and_keeps_its_connection(tmp_path):
    path = tmp_path / "db.sqlite3"
    writer = _wal_database(str(path))
    assert path.stat().st_size < 50 * 3000  # the rows are still only in the -wal log
    reused = checkpoint.checkpoint_once(str(path))
    assert reused is not None
    assert path.stat().st_size > 50 * 3000  # copied back into the database file
    writer.execute("INSERT INTO t VALUES ('more')")  # writers go on beside it
    assert checkpoint.checkpoint_once(str(path), reused) is reused
    reused.close()
    writer.close()


def test_a_missing_database_is_skipped_not_created(tmp_path):
    path = tmp_path / "absent.sqlite3"
    assert checkpoint.checkpoint_once(str(path)) is None
    assert not path.exists()


def test_request_connections_of_a_web_process_leave_checkpoints_to_the_thread(monkeypatch):
    monkeypatch.setattr(checkpoint, "_path", "/somewhere/gatehouse.sqlite3")  # as start() does
    fresh = connection.get_new_connection(connection.get_connection_params())
    try:
        pages = fresh.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    finally:
        fresh.close()
    assert pages == checkpoint.AUTOCHECKPOINT_PAGES


def test_other_processes_keep_sqlite_s_own_checkpoints(monkeypatch):
    monkeypatch.setattr(checkpoint, "_path", None)
    fresh = connection.get_new_connection(connection.get_connection_params())
    try:
        assert fresh.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        fresh.close()


def test_start_runs_one_thread_per_process(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoint, "_path", None)
    started = []
    monkeypatch.setattr(
        checkpoint.threading, "Thread", lambda **kw: started.append(kw) or _NoThread()
    )
    checkpoint.start(tmp_path / "a.sqlite3")
    checkpoint.start(tmp_path / "a.sqlite3")
    assert len(started) == 1 and started[0]["daemon"] is True


class _NoThread:
    def start(self):
        pass
