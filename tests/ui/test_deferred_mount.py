"""The service mounts the UI deferred: start-up does not wait for the build, /ui waits for it."""

from __future__ import annotations

import contextlib
import threading
import time

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from gridcast.settings import Settings
from ui.app import deferred_ui_app


def _slow_app(release: threading.Event, events: list[str]):
    def build() -> Starlette:
        events.append("build started")
        release.wait(10)

        @contextlib.asynccontextmanager
        async def lifespan(_):
            events.append("ui lifespan up")
            yield
            events.append("ui lifespan down")

        async def home(request):
            return PlainTextResponse(f"ui at {request.scope.get('root_path', '')!r}")

        events.append("build done")
        return Starlette(routes=[Route("/", home)], lifespan=lifespan)

    return build


def test_startup_returns_before_the_build_and_requests_wait_for_it():
    release, events = threading.Event(), []
    app = deferred_ui_app(Settings(), build=_slow_app(release, events))
    t0 = time.monotonic()
    with TestClient(app) as client:
        started = time.monotonic() - t0
        assert started < 5  # the lifespan did not wait for the 10 s build
        threading.Timer(0.3, release.set).start()
        r = client.get("/")  # waits for the build, then the real app answers
        assert r.status_code == 200 and r.text.startswith("ui at")
        assert events[:3] == ["build started", "build done", "ui lifespan up"]
    assert events[-1] == "ui lifespan down"  # the real app's lifespan ends with the service's


def test_a_failed_build_answers_503_with_the_reason_and_nothing_else_breaks():
    def broken():
        raise RuntimeError("gradio is missing")

    with TestClient(deferred_ui_app(Settings(), build=broken)) as client:
        r = client.get("/")
        assert r.status_code == 503 and "gradio is missing" in r.json()["detail"]


def test_the_build_waits_for_the_service_and_a_shutdown_meanwhile_does_not_hang():
    """``after``: Gradio's import starts only once the service says its start-up is done."""
    release, events = threading.Event(), []
    release.set()
    up = threading.Event()
    app = deferred_ui_app(Settings(), build=_slow_app(release, events), after=up.is_set)
    with TestClient(app) as client:
        time.sleep(0.3)
        assert events == []  # the service is not up: no build yet
        up.set()
        r = client.get("/")
        assert r.status_code == 200 and events[:2] == ["build started", "build done"]
    # shut down while the build still waits: the wait is cancelled, no build, no hang
    never, events2 = threading.Event(), []
    t0 = time.monotonic()
    with TestClient(deferred_ui_app(Settings(), build=_slow_app(release, events2), after=never.is_set)):
        time.sleep(0.2)
    assert events2 == [] and time.monotonic() - t0 < 5
