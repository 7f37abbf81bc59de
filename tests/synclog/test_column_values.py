"""synclog/column_values.py skips get_db_prep_save only where it gives the value back as it is."""

import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection, models

from identity.models import User
from identity.writes import insert, update_columns
from provisioning.models import ProviderUser
from synclog.column_values import Prepared, plain_types
from synclog.models import AuditLogEntry, SyncLogEntry

pytestmark = pytest.mark.django_db


def test_text_boolean_and_foreign_keys_to_auto_ids_are_plain():
    assert plain_types(User._meta.get_field("username")) == (str, type(None))
    assert plain_types(User._meta.get_field("email")) == (str, type(None))  # EmailField
    assert plain_types(SyncLogEntry._meta.get_field("old_value")) == (str, type(None))
    assert plain_types(User._meta.get_field("legal_hold")) == (bool, type(None))
    assert plain_types(User._meta.get_field("organization")) == (int, type(None))


def test_fields_whose_chain_changes_values_are_always_prepared():
    # SQLite stores dates as text; JSON needs its adapter; PostgreSQL types integers for
    # server-side binding (IntegerField overrides get_db_prep_value); UUIDs are hex on SQLite.
    assert plain_types(User._meta.get_field("created_at")) == ()
    assert plain_types(AuditLogEntry._meta.get_field("detail")) == ()
    assert plain_types(SyncLogEntry._meta.get_field("user_id")) == ()  # BigIntegerField
    assert plain_types(ProviderUser._meta.get_field("scim_id")) == ()
    assert plain_types(ProviderUser._meta.get_field("version")) == ()


def test_a_field_class_that_overrides_the_chain_is_never_skipped():
    class Upper(models.CharField):
        def get_prep_value(self, value):
            return super().get_prep_value(value).upper()

    class Stripped(models.CharField):
        def to_python(self, value):
            return super().to_python(value).strip()

    assert plain_types(Upper(max_length=5)) == ()
    assert Prepared([Upper(max_length=5)]).values(["abc"], connection) == ["ABC"]
    assert plain_types(Stripped(max_length=5)) == ()
    assert Prepared([Stripped(max_length=5)]).values([" a "], connection) == ["a"]


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (
            SyncLogEntry,
            {
                "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                "provider_id": 7,
                "provider_label": "okta",
                "user_id": None,
                "old_value": "",
                "new_value": "x" * 3,
            },
        ),
        (AuditLogEntry, {"detail": {"a": "b"}, "actor_label": "okta", "request_id": ""}),
        (ProviderUser, {"scim_id": uuid.uuid4(), "version": 3, "external_id": "e"}),
    ],
)
def test_prepared_values_equal_what_the_orm_prepares(model, values):
    fields = [model._meta.get_field(name) for name in values]
    expected = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(fields, values.values(), strict=True)
    ]
    got = Prepared(fields).values(list(values.values()), connection)
    assert [repr(v) for v in got] == [repr(v) for v in expected]


def test_rows_prepare_a_value_shared_by_the_rows_once_and_equal_to_the_orm(monkeypatch):
    fields = [SyncLogEntry._meta.get_field(n) for n in ("created_at", "user_id", "new_value")]
    now, later = datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    rows = [(now, 10**12, "a"), (now, 10**12, "b"), (later, None, "c")]
    expected = [
        field.get_db_prep_save(value, connection)
        for row in rows
        for field, value in zip(fields, row, strict=True)
    ]
    prepared = Prepared(fields)
    calls = []
    real = type(fields[0]).get_db_prep_save
    monkeypatch.setattr(
        type(fields[0]), "get_db_prep_save", lambda f, v, c: calls.append(v) or real(f, v, c)
    )
    assert [repr(v) for v in prepared.rows(rows, connection)] == [repr(v) for v in expected]
    assert calls == [now, later]  # the shared date once; a new one prepared again


def test_a_value_of_another_type_still_goes_through_the_field():
    field = User._meta.get_field("username")
    # Not a str: the ORM turns it into one, so must we.
    assert Prepared([field]).values([12], connection) == ["12"]


def test_insert_and_update_columns_round_trip_through_the_database(default_org):
    user = User(username="prep@example.com", organization=default_org, external_id="x")
    user.set_unusable_password()
    assert insert(user)
    update_columns(user, department="Finance", legal_hold=True)
    stored = User.objects.get(pk=user.pk)
    assert (stored.department, stored.legal_hold, stored.has_usable_password()) == (
        "Finance",
        True,
        False,
    )
    assert stored.password.startswith("!") and len(stored.password) == 41
    assert not insert(
        User(username="prep@example.com", organization=default_org), ignore_conflicts=True
    )
