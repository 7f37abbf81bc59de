"""synclog/later.py: writes nobody reads in the request, sent together at the end of it."""

import pytest
from django.db import IntegrityError, connection, transaction

from synclog import later
from synclog.models import SyncLogEntry

pytestmark = pytest.mark.django_db

TABLE = SyncLogEntry._meta.db_table
INSERT = (
    f"INSERT INTO {TABLE} (created_at, provider_id, provider_label, user_id, user_label, "
    "change_type, attribute, old_value, new_value, request_id) "
    "VALUES (CURRENT_TIMESTAMP, NULL, '', NULL, %s, 'user_added', '', '', '', '')"
)


def labels() -> list[str]:
    return sorted(SyncLogEntry.objects.values_list("user_label", flat=True))


def test_outside_a_block_a_statement_runs_at_once():
    later.run(INSERT, ["now"])
    assert labels() == ["now"]


def test_inside_a_block_statements_run_in_order_when_it_ends():
    seen_inside = None
    with transaction.atomic(), later.together():
        later.run(INSERT, ["a"])
        later.run(f"UPDATE {TABLE} SET user_label = %s WHERE user_label = %s", ["b", "a"])
        seen_inside = labels()
    assert seen_inside == []  # the contract: nothing in the block reads them
    assert labels() == ["b"]  # the UPDATE ran after the INSERT it follows


def test_a_block_that_raises_sends_nothing():
    with pytest.raises(LookupError), transaction.atomic(), later.together():
        later.run(INSERT, ["lost"])
        raise LookupError
    assert labels() == []


def test_a_savepoint_opened_in_the_block_keeps_its_writes_to_itself():
    with transaction.atomic(), later.together():
        later.run(INSERT, ["kept"])
        try:
            with transaction.atomic():  # a savepoint: its statement runs at once
                later.run(INSERT, ["rolled back"])
                assert "rolled back" in labels()
                raise ValueError
        except ValueError:
            pass
        with transaction.atomic(savepoint=False):  # no savepoint: queued with the rest
            later.run(INSERT, ["queued"])
        assert labels() == []
    assert labels() == ["kept", "queued"]


def test_blocks_do_not_nest():
    with transaction.atomic(), later.together():
        with pytest.raises(RuntimeError), later.together():
            pass


def test_an_error_in_a_queued_statement_surfaces_when_the_block_ends():
    with pytest.raises(IntegrityError), transaction.atomic(), later.together():
        later.run(INSERT.replace("VALUES (CURRENT_TIMESTAMP", "VALUES (NULL"), ["bad"])
        later.run(INSERT, ["after"])
    assert labels() == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pipeline mode is PostgreSQL's")
def test_on_postgresql_the_queue_goes_out_in_one_pipeline():
    pipelined = []

    def spy(execute, sql, params, many, context):
        pipelined.append(connection.connection._pipeline is not None)
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(spy), later.together():
        later.run(INSERT, ["a"])
        later.run(INSERT, ["b"])
    assert pipelined == [True, True]
    assert labels() == ["a", "b"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pipeline mode is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_one_transaction_commits_all_or_nothing_without_begin():
    with later.one_transaction():
        later.run(INSERT, ["a"])
        later.run(INSERT, ["b"])
        assert labels() == []  # queued: the block must not read what it writes
    assert labels() == ["a", "b"]
    with pytest.raises(IntegrityError), later.one_transaction():
        later.run(INSERT, ["sent, then rolled back"])
        later.run(INSERT.replace("VALUES (CURRENT_TIMESTAMP", "VALUES (NULL"), ["bad"])
        later.run(INSERT, ["never run"])
    assert labels() == ["a", "b"]  # the server rolled the first one back with the failure
    assert connection.connection.info.transaction_status == 0  # idle: nothing left open


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pipeline mode is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_one_transaction_rolls_back_what_went_out_before_a_client_side_failure():
    with pytest.raises(UnicodeEncodeError), later.one_transaction():
        later.run(INSERT, ["sent first"])
        later.run(INSERT, ["x\ud800"])  # psycopg cannot encode it: fails in the client
    assert labels() == []
    assert connection.connection.info.transaction_status == 0
    assert connection.is_usable()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pipeline mode is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_queued_statement_can_hand_its_row_back():
    got = []
    returning = INSERT + " RETURNING user_label"
    with later.one_transaction():
        later.run(returning, ["a"], got.append)
        later.run(INSERT, ["b"])
        later.run(returning, ["c"], got.append)
        assert got == []
    assert got == [("a",), ("c",)]
    later.run(returning, ["d"], got.append)  # outside a block: at once
    assert got[-1] == ("d",)


def test_one_transaction_refuses_an_open_transaction():
    with pytest.raises(RuntimeError), transaction.atomic(), later.one_transaction():
        pass


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pipeline mode is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_transaction_block_commits_in_the_pipeline_of_its_statements():
    sent = []

    def spy(execute, sql, params, many, context):
        sent.append((sql, connection.connection._pipeline is not None))
        return execute(sql, params, many, context)

    committed_by_django = []
    with connection.execute_wrapper(spy), later.transaction():
        later.run(INSERT, ["a"])
        later.run(INSERT, ["b"])
        transaction.on_commit(lambda: committed_by_django.append(True))
    assert [pipelined for _, pipelined in sent] == [True, True]
    assert labels() == ["a", "b"]
    assert committed_by_django == [True]  # Django's commit still ran its hooks
    assert connection.connection.info.transaction_status == 0


@pytest.mark.django_db(transaction=True)
def test_a_failing_transaction_block_commits_nothing():
    with pytest.raises(IntegrityError), later.transaction():
        later.run(INSERT, ["a"])
        later.run(INSERT.replace("VALUES (CURRENT_TIMESTAMP", "VALUES (NULL"), ["bad"])
    assert labels() == []
    with pytest.raises(LookupError), later.transaction():
        later.run(INSERT, ["a"])
        raise LookupError
    assert labels() == []


def test_a_transaction_block_inside_a_transaction_is_a_savepoint():
    with transaction.atomic():
        with later.transaction():
            later.run(INSERT, ["kept"])
        try:
            with later.transaction():
                later.run(INSERT, ["rolled back"])
                raise ValueError
        except ValueError:
            pass
        assert labels() == ["kept"]
