"""console/postgresql: the health check polls the socket; a connection the server dropped is
found unusable and replaced, with no failed request."""

import time

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the PostgreSQL backend's health check")


def _terminate(pid: int) -> None:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_healthy_idle_connection_is_usable():
    connection.ensure_connection()
    assert connection.settings_dict["ENGINE"] == "console.postgresql"
    assert connection.is_usable()


def test_a_connection_the_server_terminated_is_unusable_and_replaced_before_the_next_query():
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    _terminate(pid)
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.01)  # the termination message reaches the socket asynchronously
    assert not connection.is_usable()
    # What Django does at the start of a request with CONN_HEALTH_CHECKS: close it, then the
    # next query opens a new connection instead of failing.
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_connection_left_in_a_transaction_is_unusable():
    connection.ensure_connection()
    raw = connection.connection  # Django keeps it in autocommit between requests
    raw.execute("BEGIN")
    # Nothing is readable on the socket, yet the next request's work would land in it.
    assert not connection.is_usable()
    with pytest.raises(psycopg.errors.DivisionByZero):
        raw.execute("SELECT 1 / 0")
    assert not connection.is_usable()  # failed: every query would fail
    raw.execute("ROLLBACK")
    assert connection.is_usable()
