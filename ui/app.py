"""The gridcast Gradio app: four tabs wired to the views, mounted by the service at ``/ui``.

* **Live** — per region, the recent actuals and the latest forecast the streaming bridge
  published, refreshed on a timer (no bridge: the demo history and an on-demand forecast).
* **Forecast** — region, model, horizon, interval levels, an optional history CSV → an
  interactive chart with bands, a table, a CSV download; other models side by side.
* **Models** — served versions, training ranges, validation and live metrics vs the
  seasonal-naive baseline; validation error by lead (MAPE, 90 % coverage) and by hour
  of day, with the operator reference's when the training data had one.
* **Data quality** — a demo data set or an upload → the service's quality report
  (``POST /data/check``) and the data layer's plots.

The UI is a thin HTTP client of the service (:mod:`ui.client`): nothing here imports
model, feature or quality code, and every number comes from the API. Along its seams:
:mod:`ui.views` (one plain function per tab, what the tests call), :mod:`ui.figures`
(charts and tables), :mod:`ui.uploads` (files → API bodies); this module owns the
Gradio wiring only — components, callbacks, error toasts, the ASGI app the service
mounts (:func:`service_ui_app`, built after start-up by :func:`deferred_ui_app`) and
the stand-alone :func:`launch` (``gridcast ui``).
Errors a person can act on become a status line and a toast — never a traceback.

Nothing happens at import: :func:`build_app` builds the Blocks when called.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gridcast.errors import GridcastError
from ui.client import ServiceClient, ServiceError, ServiceUnavailable
from ui.views import (
    DEMO_CLEAN,
    DEMO_FAULTY,
    UPLOADED,
    Catalog,
    View,
    forecast_view,
    live_view,
    load_catalog,
    models_view,
    quality_view,
)

if TYPE_CHECKING:
    import gradio as gr
    from fastapi import FastAPI

    from gridcast.settings import Settings

logger = logging.getLogger(__name__)

ALIASES = ("best", "lstm", "sarimax", "ensemble", "naive")
LEVEL_CHOICES = ("50", "80", "90", "95", "99")


def user_message(exc: BaseException) -> str:
    """The sentence a person sees for an error — never a traceback."""
    if isinstance(exc, ServiceUnavailable):
        return f"Service unreachable: {exc.detail}"
    if isinstance(exc, ServiceError):
        where = f" (field `{exc.field}`)" if exc.field else ""
        return f"The service refused the request{where}: {exc.detail}"
    if isinstance(exc, GridcastError):
        return f"Cannot use this input: {exc.detail}"
    return "Something went wrong on our side; the details are in the server log."


def _guarded(fn: Callable[..., tuple], n_outputs: int, *, toast: bool = True) -> Callable[..., tuple]:
    """Run a callback; on error show a warning toast + status line and clear the other outputs.

    The status line is always the LAST output of a guarded callback. Timer refreshes
    pass ``toast=False``: a service that stays down must not pop a toast every tick.
    """
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any) -> tuple:
        try:
            return fn(*args)
        except GridcastError as exc:
            message = user_message(exc)
        except Exception:  # a bug: log it with the traceback, tell the person something useful
            logger.exception("UI callback %s failed", fn.__name__)
            message = user_message(RuntimeError())
        if toast:
            gr.Warning(message)
        return (*([None] * (n_outputs - 1)), f"⚠️ {message}")

    return wrapper


def _toast(view: View) -> None:
    import gradio as gr

    for note in view.warnings:
        gr.Warning(note)


def theme() -> gr.themes.Base:
    """The default theme with system fonts: the page must not fetch fonts from the internet."""
    import gradio as gr

    system = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"]
    return gr.themes.Default(font=system, font_mono=["ui-monospace", "Consolas", "monospace"])


def build_app(client: ServiceClient, *, settings: Settings) -> gr.Blocks:
    """The Blocks app (four tabs) talking to the service through ``client``."""
    import gradio as gr

    def catalog_or_empty() -> Catalog:
        try:
            return load_catalog(client)
        except GridcastError:
            return Catalog([])

    def init() -> tuple:
        catalog = catalog_or_empty()
        regions = catalog.regions
        region = regions[0] if regions else None
        status = "" if regions else f"⚠️ {user_message(ServiceUnavailable(f'no served models at {client.base_url}'))}"
        return (gr.update(choices=regions, value=region), gr.update(choices=regions, value=region),
                gr.update(choices=catalog.aliases(region), value="best"),
                gr.update(choices=catalog.aliases(region)[1:], value=[]), status)

    def on_region(region: str) -> tuple:
        aliases = catalog_or_empty().aliases(region)
        return gr.update(choices=aliases, value="best"), gr.update(choices=aliases[1:], value=[])

    def live(region: str, *, toast: bool = True) -> tuple:
        if not region:
            load_catalog(client)  # raises ServiceUnavailable when that is the reason
            return None, "⚠️ The service serves no models yet: run `gridcast train` (or `make run`)."
        view = live_view(client, region, settings=settings)
        if toast:
            _toast(view)
        return view.figure, view.status

    def live_tick(region: str) -> tuple:
        return live(region, toast=False)

    def forecast(region, model, horizon, levels, upload, time_col, load_col, temp_col, compare) -> tuple:
        view = forecast_view(client, region=region, model=model, horizon=horizon, levels=levels, settings=settings,
                             history_path=upload, time_col=time_col, load_col=load_col, temp_col=temp_col,
                             compare=compare or ())
        _toast(view)
        return view.figure, view.table, view.csv_path, view.status

    def models() -> tuple:
        view = models_view(client, settings=settings)
        lead = gr.update(value=view.lead_figure, visible=view.lead_figure is not None)
        hour = gr.update(value=view.hour_figure, visible=view.hour_figure is not None)
        return view.table, view.figure, lead, hour, view.status

    def quality(source, upload) -> tuple:
        view = quality_view(client, source, upload, settings=settings)
        checks = view.checks
        return (*view.figures, checks, view.report, view.status)

    with gr.Blocks(title="gridcast", analytics_enabled=False) as demo:
        gr.Markdown("# gridcast — electricity demand forecasts\n"
                    "Loads in MW, temperatures in °C, times in UTC (the region's local time alongside).")
        with gr.Tabs():
            with gr.Tab("Live", id="live"):
                with gr.Row():
                    live_region = gr.Dropdown(label="region", choices=[], interactive=True, elem_id="live-region")
                    live_refresh = gr.Button("Refresh now", elem_id="live-refresh", scale=0)
                live_plot = gr.Plot(label="recent load and latest forecast (MW, UTC)", elem_id="live-plot")
                live_status = gr.Markdown(elem_id="live-status")
                timer = gr.Timer(settings.ui_refresh_s)
            with gr.Tab("Forecast", id="forecast"):
                with gr.Row():
                    fc_region = gr.Dropdown(label="region", choices=[], interactive=True, elem_id="fc-region")
                    fc_model = gr.Dropdown(label="model", choices=list(ALIASES), value="best", interactive=True,
                                           elem_id="fc-model")
                    fc_horizon = gr.Slider(1, settings.max_horizon, value=min(24, settings.max_horizon), step=1,
                                           label="horizon (steps)", elem_id="fc-horizon")
                    fc_levels = gr.CheckboxGroup(list(LEVEL_CHOICES), value=[str(v) for v in settings.levels],
                                                 label="interval levels (%)", elem_id="fc-levels")
                fc_compare = gr.CheckboxGroup([], label="compare with (same chart)", elem_id="fc-compare")
                with gr.Accordion("history CSV (optional; without it the service uses its state store)", open=False):
                    fc_upload = gr.File(label="history CSV", file_types=[".csv"], type="filepath", elem_id="fc-upload")
                    with gr.Row():
                        fc_time_col = gr.Textbox("timestamp", label="timestamp column (ISO 8601; no offset = UTC)")
                        fc_load_col = gr.Textbox("load_mw", label="load column (MW)")
                        fc_temp_col = gr.Textbox("temperature_c", label="temperature column (°C, optional)")
                fc_run = gr.Button("Forecast", variant="primary", elem_id="fc-run")
                fc_status = gr.Markdown(elem_id="fc-status")
                fc_plot = gr.Plot(label="forecast (MW, UTC)", elem_id="fc-plot")
                fc_table = gr.Dataframe(label="forecast points", interactive=False, max_height=420, elem_id="fc-table")
                fc_csv = gr.File(label="download CSV", interactive=False, elem_id="fc-csv")
            with gr.Tab("Models", id="models"):
                models_refresh = gr.Button("Refresh", elem_id="models-refresh")
                models_status = gr.Markdown(elem_id="models-status")
                models_table = gr.Dataframe(label="served models", interactive=False, elem_id="models-table")
                models_plot = gr.Plot(label="validation MAPE vs naive", elem_id="models-plot")
                with gr.Row():
                    models_lead = gr.Plot(label="error by lead (MAPE and 90% coverage, steps ahead)", visible=False,
                                          elem_id="models-lead")
                    models_hour = gr.Plot(label="error by hour of day (MAPE %, local time)", visible=False,
                                          elem_id="models-hour")
            with gr.Tab("Data quality", id="quality"):
                with gr.Row():
                    dq_source = gr.Radio([DEMO_FAULTY, DEMO_CLEAN, UPLOADED], value=DEMO_FAULTY, label="data set",
                                         elem_id="dq-source")
                    dq_upload = gr.File(label="canonical table (Parquet or CSV)", file_types=[".parquet", ".csv"],
                                        type="filepath", elem_id="dq-upload")
                dq_run = gr.Button("Check", variant="primary", elem_id="dq-run")
                dq_status = gr.Markdown(elem_id="dq-status")
                dq_checks = gr.Dataframe(label="checks (count, action, examples)", interactive=False,
                                         elem_id="dq-checks")
                with gr.Column(elem_id="dq-plots"):
                    with gr.Row():
                        dq_series = gr.Plot(label="load with flags (MW, UTC)", format="png")
                        dq_profile = gr.Plot(label="daily profile by weekday (local time)", format="png")
                    with gr.Row():
                        dq_scatter = gr.Plot(label="load vs temperature (MW, °C)", format="png")
                        dq_box = gr.Plot(label="monthly boxplots (MW)", format="png")
                with gr.Accordion("full report (JSON)", open=False):
                    dq_report = gr.JSON()

        live_outputs = [live_plot, live_status]
        demo.load(init, outputs=[live_region, fc_region, fc_model, fc_compare, live_status]).then(
            _guarded(live, 2), inputs=live_region, outputs=live_outputs)
        live_region.change(_guarded(live, 2), inputs=live_region, outputs=live_outputs)
        live_refresh.click(_guarded(live, 2), inputs=live_region, outputs=live_outputs)
        timer.tick(_guarded(live_tick, 2, toast=False), inputs=live_region, outputs=live_outputs, show_progress="hidden")
        fc_region.change(on_region, inputs=fc_region, outputs=[fc_model, fc_compare])
        fc_run.click(_guarded(forecast, 4),
                     inputs=[fc_region, fc_model, fc_horizon, fc_levels, fc_upload, fc_time_col, fc_load_col,
                             fc_temp_col, fc_compare],
                     outputs=[fc_plot, fc_table, fc_csv, fc_status])
        models_outputs = [models_table, models_plot, models_lead, models_hour, models_status]
        models_refresh.click(_guarded(models, 5), outputs=models_outputs)
        demo.load(_guarded(models, 5), outputs=models_outputs)
        dq_upload.upload(lambda: UPLOADED, outputs=dq_source)
        dq_run.click(_guarded(quality, 7), inputs=[dq_source, dq_upload],
                     outputs=[dq_series, dq_profile, dq_scatter, dq_box, dq_checks, dq_report, dq_status])
    return demo


def _reachable(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else (f"[{host}]" if ":" in host else host)


def service_url_for(settings: Settings) -> str:
    """Where the UI mounted in the service reaches that same service, before it knows better."""
    return f"http://{_reachable(settings.host)}:{settings.port}"


class _FollowServerAddress:
    """ASGI middleware: point the mounted UI's client at the socket this request came in on.

    ``bentoml serve --port N`` (or a container's port flag) need not match the settings'
    port, but every request's ``scope["server"]`` is the address actually listened on,
    so the UI calls its own service there (loopback when bound to all interfaces).
    """

    def __init__(self, app: Any, client: ServiceClient) -> None:
        self.app = app
        self.client = client

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        server = scope.get("server") if scope.get("type") == "http" else None
        if server and server[1]:
            url = f"http://{_reachable(str(server[0]))}:{server[1]}"
            if url != self.client.base_url:
                logger.info("UI calls the service at %s", url)
                self.client.base_url = url
        await self.app(scope, receive, send)


def service_ui_app(settings: Settings) -> FastAPI:
    """The UI as an ASGI app for the Bento service (``@bentoml.asgi_app(..., path="/ui")``).

    A FastAPI app holding ``gr.mount_gradio_app(..., path="/")``: with BentoML 1.4.39
    and Gradio 6 this serves every asset and event under the ``/ui`` prefix, while
    ``bentoml.gradio.mount_gradio_app`` answered HTTP 500. BentoML runs this app's
    lifespan, which starts Gradio's queue.
    """
    import gradio as gr
    from fastapi import FastAPI

    client = ServiceClient(service_url_for(settings))
    demo = build_app(client, settings=settings)
    app = FastAPI(title="gridcast UI", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(_FollowServerAddress, client=client)
    return gr.mount_gradio_app(app, demo, path="/", ssr_mode=False, theme=theme(),
                               footer_links=["api", "gradio"])


#: longest wait of the deferred UI build for the service's own start-up (s)
UI_WAIT_S = 120.0


def deferred_ui_app(settings: Settings, build: Callable[[], Any] | None = None,
                    after: Callable[[], bool] | None = None) -> Any:
    """:func:`service_ui_app`, built in a background thread once the service starts.

    Importing Gradio and building the Blocks takes seconds; the API does not need them
    to answer. So the service's start-up (and ``/readyz``) does not wait for the UI:
    this app's lifespan starts the build in a thread and returns at once; when the build
    is done, the UI app's own lifespan (Gradio's queue) runs on the event loop. A
    request to ``/ui`` that arrives sooner waits for the build; if the build failed, it
    gets 503 with the reason, and the API goes on serving.

    Args:
        settings: the service's settings (for :func:`service_ui_app`).
        build: what builds the UI app (tests); by default ``service_ui_app(settings)``.
        after: the build waits until this is true (polled every 50 ms, at most
            :data:`UI_WAIT_S`): the service says when its own start-up (models loaded and
            warmed) is done, so Gradio's import does not take the GIL from it. Cancelled,
            not awaited, if the app shuts down while still waiting.
    """
    import asyncio
    import contextlib

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse

    make = build or (lambda: service_ui_app(settings))
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette):
        loop = asyncio.get_running_loop()
        ready: asyncio.Future = loop.create_future()
        state["ready"] = ready

        async def start() -> None:
            deadline = loop.time() + UI_WAIT_S
            while after is not None and not after() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            state["building"] = True
            try:
                real = await asyncio.to_thread(make)
                # the UI app's own lifespan (Gradio's queue), as BentoML runs a mounted app's
                await stack.enter_async_context(real.router.lifespan_context(real))
            except Exception as exc:  # the API serves on; /ui says why
                logger.exception("the UI could not be built; /ui answers 503")
                ready.set_exception(exc)
                return
            ready.set_result(real)
            logger.info("UI ready at /ui")

        async with contextlib.AsyncExitStack() as stack:
            task = loop.create_task(start(), name="gridcast-ui-build")
            try:
                yield
            finally:
                if not task.done():
                    if not state.get("building"):
                        task.cancel()
                    with contextlib.suppress(BaseException):
                        await task

    async def app(scope: dict, receive: Any, send: Any) -> None:
        ready = state.get("ready")
        if ready is None:
            await JSONResponse({"error": "ui_starting", "detail": "the UI is not mounted yet", "field": None},
                               status_code=503, headers={"retry-after": "1"})(scope, receive, send)
            return
        try:
            real = await asyncio.shield(ready)
        except Exception as exc:
            await JSONResponse({"error": "ui_unavailable", "detail": f"the UI could not be built: {exc}",
                                "field": None}, status_code=503)(scope, receive, send)
            return
        await real(scope, receive, send)

    outer = Starlette(lifespan=lifespan)
    outer.mount("/", app)
    return outer


def launch(client: ServiceClient, *, settings: Settings, host: str, port: int) -> None:
    """Serve the UI on its own (``gridcast ui``); blocks until interrupted."""
    demo = build_app(client, settings=settings)
    demo.queue().launch(server_name=host, server_port=port, ssr_mode=False, theme=theme(),
                        share=False, inbrowser=False, show_error=False, footer_links=["api", "gradio"])
