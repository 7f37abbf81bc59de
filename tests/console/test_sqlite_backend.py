"""console/sqlite3: Django's SQLite backend, its %s → ? rewrite remembered per statement."""

import pytest
from django.db import connection

from console.sqlite3 import base

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backend only"),
]


def test_settings_choose_it_for_sqlite_urls():
    assert connection.settings_dict["ENGINE"] == "console.sqlite3"


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
