"""The WSGI application the web server serves: SCIM requests take the short middleware chain,
console pages the full one (console/wsgi.py)."""

import io
import json
import sys

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from console.wsgi import application
from identity.models import User


def _call(path: str, headers: dict | None = None, method: str = "GET"):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        **(headers or {}),
    }
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = dict(response_headers)

    # As Django's test client does: the handler would close the test's database connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = application(environ, start_response)
        body = b"".join(response)
        response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return started["status"], started["headers"], body


@pytest.mark.django_db
def test_a_scim_request_is_served_through_the_short_chain_with_security_headers(scim):
    status, headers, body = _call(
        "/scim/v2/" + scim.provider.slug + "/ServiceProviderConfig",
        {"HTTP_AUTHORIZATION": f"Bearer {scim.secret}"},
    )
    assert status == 200, body
    assert headers["Content-Type"] == "application/scim+json"
    assert headers["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware is kept
    # CommonMiddleware is kept: without a length the server would send the body chunked.
    assert headers["Content-Length"] == str(len(body))
    assert "Set-Cookie" not in headers and "Vary" not in headers  # no session, no CSRF


@pytest.mark.django_db
def test_a_scim_request_with_wrong_credentials_is_refused_through_the_short_chain(scim):
    status, headers, body = _call(
        "/scim/v2/" + scim.provider.slug + "/Users", {"HTTP_AUTHORIZATION": "Bearer nope"}
    )
    assert status == 401, body
    assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_console_pages_keep_the_full_chain():
    status, headers, body = _call("/console/login/")
    assert status == 200, body
    assert headers["X-Frame-Options"] == "DENY"
    assert "csrftoken" in headers.get("Set-Cookie", "")


def _chunked_post(scim, body: bytes):
    return _call(
        "/scim/v2/" + scim.provider.slug + "/Users",
        {
            "HTTP_AUTHORIZATION": f"Bearer {scim.secret}",
            "CONTENT_TYPE": "application/scim+json",
            "HTTP_TRANSFER_ENCODING": "chunked",  # and no CONTENT_LENGTH
            "wsgi.input": io.BytesIO(body),  # the server hands the decoded body over
        },
        method="POST",
    )


@pytest.mark.django_db
def test_a_chunked_scim_request_body_is_read(scim):
    body = b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"c@example.com"}'
    status, headers, answer = _chunked_post(scim, body)
    assert status == 201, answer
    assert User.objects.filter(username="c@example.com").exists()


@pytest.mark.django_db
def test_an_oversized_chunked_body_is_refused_without_reading_it_all(scim, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    stream = io.BytesIO(b'{"userName":"' + b"a" * 5000 + b'"}')
    status, headers, answer = _call(
        "/scim/v2/" + scim.provider.slug + "/Users",
        {
            "HTTP_AUTHORIZATION": f"Bearer {scim.secret}",
            "CONTENT_TYPE": "application/scim+json",
            "HTTP_TRANSFER_ENCODING": "chunked",
            "wsgi.input": stream,
        },
        method="POST",
    )
    assert status == 413, answer
    assert json.loads(answer)["status"] == "413"
    assert stream.tell() == 1001  # read one byte over the limit, no more
    assert not User.objects.filter(is_local=False).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("req-42.a:b_C", True),
        ("x" * 64, True),
        ("x" * 65, False),  # too long
        ("two words", False),
        ("<script>", False),
        ("café", False),
    ],
)
def test_a_client_request_id_is_echoed_only_when_it_is_a_plain_token(scim, given, kept):
    response = scim.get("/ServiceProviderConfig", HTTP_X_REQUEST_ID=given)
    assert response.status_code == 200
    echoed = response["X-Request-ID"]
    assert (echoed == given) is kept
    assert 1 <= len(echoed) <= 64 and echoed.isascii()


@pytest.mark.django_db
def test_a_base_url_pasted_with_its_trailing_slash_still_serves(scim):
    # The IdP joins ".../okta/" and "/Users".
    status, _, body = _call(
        "/scim/v2/" + scim.provider.slug + "//Users",
        {"HTTP_AUTHORIZATION": f"Bearer {scim.secret}"},
    )
    assert status == 200, body
    assert json.loads(body)["totalResults"] == 0


@pytest.mark.django_db
def test_a_host_outside_allowed_hosts_gets_a_scim_error_under_scim(scim):
    status, headers, body = _call(
        "/scim/v2/" + scim.provider.slug + "/Users",
        {"HTTP_HOST": "evil.example", "HTTP_AUTHORIZATION": f"Bearer {scim.secret}"},
    )
    assert status == 400, body
    assert headers["Content-Type"] == "application/scim+json"
    error = json.loads(body)
    assert error["status"] == "400" and "ALLOWED_HOSTS" in error["detail"]
    status, headers, _ = _call("/console/login/", {"HTTP_HOST": "evil.example"})
    assert status == 400 and headers["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_a_204_or_304_carries_no_content_length(scim):
    # RFC 9110 §8.6: a 204 MUST NOT; a 304's would have to be the 200's length.
    uid = scim.post("/Users", {"userName": "len@example.com"}).json()["id"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {scim.secret}"}
    path = "/scim/v2/" + scim.provider.slug + "/Users/" + uid
    status, headers, _ = _call(path, {**auth, "HTTP_IF_NONE_MATCH": 'W/"1"'})
    assert status == 304 and "Content-Length" not in headers and headers["ETag"] == 'W/"1"'
    status, headers, _ = _call(path, auth, method="DELETE")
    assert status == 204 and "Content-Length" not in headers
    status, headers, body = _call(path, auth)
    assert status == 404 and headers["Content-Length"] == str(len(body))
