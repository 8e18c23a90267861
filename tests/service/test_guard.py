"""GuardMiddleware's hand-off of the forecast routes to the service's handler (no service needed)."""

from __future__ import annotations

from starlette.testclient import TestClient

from service.guard import GuardMiddleware


async def _bentoml(scope, receive, send):  # what answers when the guard does not
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"bentoml"})


def _client(handler, cors=()) -> TestClient:
    guard = GuardMiddleware(_bentoml, openapi=dict, fast=lambda: handler, cors_origins=cors)
    return TestClient(guard)


def test_forecast_routes_go_to_the_handler_with_the_body_and_its_status_and_headers():
    seen = []

    async def handler(path: str, body: bytes):
        seen.append((path, body))
        return 503, b'{"error":"model_unavailable"}', [(b"retry-after", b"1")]

    r = _client(handler).post("/forecast_batch", content=b'{"requests": []}',
                              headers={"content-type": "application/json"})
    assert (r.status_code, r.headers["retry-after"], r.json()) == (503, "1", {"error": "model_unavailable"})
    assert seen == [("/forecast_batch", b'{"requests": []}')]
    # other routes, and the forecast routes while the service has no handler, go to BentoML
    assert _client(handler).post("/recent", json={"region": "x"}).text == "bentoml"
    assert _client(None).post("/forecast", json={"region": "x"}).text == "bentoml"


def test_the_handlers_answers_carry_cors_headers_for_allowed_origins_only():
    async def handler(path: str, body: bytes):
        return 200, b"{}", []

    client = _client(handler, cors=("https://dash.example",))
    ok = client.post("/forecast", json={}, headers={"origin": "https://dash.example"})
    assert ok.headers["access-control-allow-origin"] == "https://dash.example"
    other = client.post("/forecast", json={}, headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in _client(handler).post(
        "/forecast", json={}, headers={"origin": "https://dash.example"}).headers


def test_a_refusal_is_sent_before_the_body_is_read_and_the_handler_never_runs():
    called, bodies_read = [], []
    busy = [True]

    async def handler(path: str, body: bytes):
        called.append(body)
        return 200, b"{}", []

    def refusal():
        return (503, b'{"error":"overloaded"}', [(b"retry-after", b"1")]) if busy[0] else None

    async def receive():
        bodies_read.append(1)
        return {"type": "http.request", "body": b'{"region": "x"}', "more_body": False}

    guard = GuardMiddleware(_bentoml, openapi=dict, fast=lambda: handler, refusal=refusal)
    sent = []

    async def send(message):
        sent.append(message)

    import asyncio

    scope = {"type": "http", "method": "POST", "path": "/forecast", "headers": [(b"content-type", b"application/json")]}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 503 and (b"retry-after", b"1") in sent[0]["headers"]
    assert sent[1]["body"] == b'{"error":"overloaded"}'
    assert bodies_read == [] and called == []
    # not busy: the body is read and handed over; other routes are never refused this way
    busy[0] = False
    sent.clear()
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 200 and called == [b'{"region": "x"}']
    busy[0] = True
    r = TestClient(guard).post("/recent", json={"region": "x"})
    assert r.text == "bentoml"


def test_each_forecast_answer_is_observed_with_its_route_and_status_and_others_are_not():
    seen = []

    async def handler(path: str, body: bytes):
        return (404 if b"nowhere" in body else 200), b"{}", []

    guard = GuardMiddleware(_bentoml, openapi=dict, fast=lambda: handler,
                            refusal=lambda: None, observe=lambda *a: seen.append(a))
    client = TestClient(guard)
    client.post("/forecast", json={"region": "x"})
    client.post("/forecast_batch", json={"region": "nowhere"})
    client.post("/recent", json={"region": "x"})  # BentoML's route: BentoML's own metrics
    assert [(route, status) for route, status, _ in seen] == [("/forecast", 200), ("/forecast_batch", 404)]
    assert all(0 <= seconds < 5 for *_, seconds in seen)


def test_the_served_app_has_the_guard_outermost_around_bentomls_whole_app(app):
    """BentoML's own middleware stack (metrics, tracing, timeout) sits inside the guard
    (``app``: the conftest's ``Gridcast.to_asgi()``, what BentoML's worker serves)."""
    from service.service import Gridcast

    assert isinstance(app, GuardMiddleware)
    assert type(app.app).__name__ == "Starlette" and not isinstance(app.app, GuardMiddleware)
    # and the guard is not installed a second time inside BentoML's stack
    assert all(cls is not GuardMiddleware for cls, _ in Gridcast.middlewares)
