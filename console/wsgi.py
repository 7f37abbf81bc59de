"""The WSGI application the web server (granian) serves: the console and the SCIM service.

SCIM requests go through a handler with a shorter middleware chain (``SCIM_MIDDLEWARE`` in
console/settings.py): an identity provider sends no cookies and gets no HTML, so sessions,
CSRF, messages, authentication middleware and static files have nothing to do there, and
skipping them is about 0.1 ms of every SCIM request. Security headers and Content-Length
(CommonMiddleware) stay, except on a 204 or 304 (console/middleware.py). Tests drive the
full chain through Django's test client; tests/scim/test_wsgi.py checks this one.
"""

import io
import logging
import os
import re

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

from console import warm_up
from console.log_filters import EscapedAccessLog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
console_application = get_wsgi_application()  # sets Django up


class ScimWSGIHandler(WSGIHandler):
    def load_middleware(self, is_async=False):
        # BaseHandler builds its chain from settings.MIDDLEWARE; build this one from
        # SCIM_MIDDLEWARE, once, when the process starts.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.SCIM_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


scim_application = ScimWSGIHandler()

if settings.DATABASES["default"]["ENGINE"] == "console.sqlite3":
    from console.sqlite3 import checkpoint

    # WAL checkpoints beside requests instead of inside every ~35th create.
    checkpoint.start(settings.DATABASES["default"]["NAME"])

warm_up.start()  # the URLconf and the broker, before the first request needs them

# The web server's access log, written in this process: control characters escaped.
logging.getLogger("granian.access").addFilter(EscapedAccessLog())

_SCIM_PREFIX = "/scim/"
_SLASHES = re.compile("/{2,}")


def _with_length(environ) -> None:
    """A chunked request (``Transfer-Encoding: chunked``, no ``Content-Length``) has its
    body in ``wsgi.input``, decoded by the server, but Django reads ``CONTENT_LENGTH`` bytes:
    zero, so a chunked SCIM POST was answered "userName is required". Read the body here,
    at most one byte over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, so that Django still refuses an
    oversized one (SCIM: 413) instead of this reading it all."""
    if (
        environ.get("CONTENT_LENGTH")
        or "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    ):
        return
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    stream = environ["wsgi.input"]
    body = stream.read() if limit is None else stream.read(limit + 1)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


def application(environ, start_response):
    _with_length(environ)
    path = environ.get("PATH_INFO", "")
    if path.startswith(_SCIM_PREFIX):
        if "//" in path:
            # A base URL pasted with its trailing slash: the IdP asks ".../okta//Users".
            environ["PATH_INFO"] = _SLASHES.sub("/", path)
        return scim_application(environ, start_response)
    return console_application(environ, start_response)
