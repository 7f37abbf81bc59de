"""console/warm_up.py: a web process loads its URLconf and opens its broker connection as it
starts, not inside its first requests."""

import threading
import time

import pytest
from celery import Celery
from django.urls import clear_url_caches, get_resolver

from console import warm_up


def test_start_loads_the_urlconf_and_opens_the_broker_beside_it(monkeypatch):
    opened = threading.Event()
    monkeypatch.setattr(warm_up, "open_broker", lambda app=None: opened.set())
    clear_url_caches()  # a fresh resolver, as in a new process
    assert "url_patterns" not in vars(get_resolver())
    warm_up.start()
    assert "url_patterns" in vars(get_resolver())  # the URLconf and its views are loaded
    assert opened.wait(5)


@pytest.mark.integration
def test_the_configured_broker_is_connected_and_its_queue_declared():
    assert warm_up.open_broker() is True


def test_a_broker_that_is_not_there_is_given_up_quietly_and_soon(monkeypatch):
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # it would win over the argument
    # Nothing listens on port 1. Not the current app: tasks elsewhere must keep theirs.
    app = Celery("absent", broker="redis://127.0.0.1:1/0", set_as_current=False)
    started = time.monotonic()
    try:
        assert warm_up.open_broker(app) is False
    finally:
        app.close()
    assert time.monotonic() - started < 10
