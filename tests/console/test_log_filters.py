"""Log lines a client can shape: written on one line, control characters escaped."""

import logging

import pytest
from django.test import Client

from console.log_filters import EscapedAccessLog, OneLineDisallowedHost


def test_the_access_log_escapes_control_characters_of_path_and_query():
    # As granian's access logger is called: a format and a dict of atoms.
    line = '"%(method)s %(path)s?%(query_string)s" %(status)d'
    record = logging.LogRecord(
        "granian.access", logging.INFO, __file__, 1, line,
        {"method": "GET", "path": "/scim/v2/a/Users\n2026 ERROR forged\x1b[31m",
         "query_string": "x=\r\n", "status": 401},
        None,
    )  # fmt: skip
    assert EscapedAccessLog().filter(record)
    assert record.getMessage() == (
        '"GET /scim/v2/a/Users\\x0a2026 ERROR forged\\x1b[31m?x=\\x0d\\x0a" 401'
    )
    record.args = {"method": "GET", "path": "/a\x85b\x9b1m\u2028c", "query_string": "", "status": 1}
    assert EscapedAccessLog().filter(record)
    assert record.getMessage() == '"GET /a\\x85b\\x9b1m\\u2028c?" 1'
    record.args = {"method": "GET", "path": "/a\\x0a\u202e", "query_string": "", "status": 1}
    assert EscapedAccessLog().filter(record)
    assert record.getMessage() == '"GET /a\\\\x0a\\u202e?" 1'  # a literal \x0a stays one


@pytest.mark.django_db
def test_a_disallowed_host_is_one_warning_line_without_a_traceback(caplog):
    host = "evil.example" + "x" * 4000
    with caplog.at_level(logging.WARNING, logger="django.security.DisallowedHost"):
        response = Client(HTTP_HOST=host).get("/scim/v2/okta/Users")
    assert response.status_code == 400
    [record] = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "\n" not in record.getMessage() and len(record.getMessage()) <= 301


def test_the_filters_are_installed_where_the_lines_are_written():
    assert any(
        isinstance(f, OneLineDisallowedHost)
        for f in logging.getLogger("django.security.DisallowedHost").filters
    )
    import console.wsgi  # noqa: F401 - installs the access log's filter in a web worker

    assert any(isinstance(f, EscapedAccessLog) for f in logging.getLogger("granian.access").filters)
