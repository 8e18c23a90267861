"""The UI in a real browser: headless Chromium on ``/ui`` of a served gridcast.

Proves what callback tests cannot: that the Gradio app mounted on the Bento service
under ``/ui`` loads every asset and event through the prefix, that a forecast renders
as a chart and a table with the requested number of points without an error toast, and
that a bad upload tells the person which column is missing. Screenshots of each tab go
to ``tests/artifacts/ui/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: git-ignored; screenshots for a person to look at
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 120_000
HORIZON = 36

#: the mean trace(s) of the forecast chart, read from plotly's own data on the page
MEAN_POINTS_JS = """(sel) => {
  const div = document.querySelector(sel + ' .js-plotly-plot');
  return div ? div.data.filter(t => t.meta === 'forecast-mean').map(t => t.x.length) : null;
}"""


def mean_points(page, selector: str) -> list[int]:
    """Lengths of the forecast-mean traces of a chart, once plotly has drawn it."""
    page.wait_for_function(f"document.querySelector('{selector} .js-plotly-plot')?.data !== undefined")
    return page.evaluate(MEAN_POINTS_JS, selector)


def _bad_csv(path: Path) -> Path:
    path.write_text("timestamp,temperature_c\n2023-04-30T00:00:00Z,25.0\n2023-04-30T01:00:00Z,24.5\n")
    return path


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.integration
def test_ui_in_headless_chromium(service_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # the first forecasts wait for cold models on a busy machine
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.on("response", lambda r: server_errors.append(f"{r.status} {r.url}") if r.status >= 500 else None)
            # gr.Warning and gr.Error toasts (the app raises warnings: ui/app.py _guarded/_toast);
            # Gradio renders them as `.toast-body.<type>`
            errors = page.locator(".toast-body.warning, .toast-body.error")

            # Live: embedded mode says so, and still shows history + a forecast
            page.goto(service_url + "/ui/")
            expect(page.locator("#live-status")).to_contain_text("No live data")
            expect(page.locator("#live-status")).to_contain_text("Last observation")
            assert mean_points(page, "#live-plot") == [24]
            page.screenshot(path=ARTIFACTS / "1_live.png", full_page=True)

            # Forecast: the requested horizon → that many points in the chart and the table
            page.get_by_role("tab", name="Forecast").click()
            horizon = page.locator("#fc-horizon input[type=number]")
            horizon.fill(str(HORIZON))
            horizon.press("Enter")
            page.locator("#fc-compare").get_by_label("naive").check()
            page.locator("#fc-run").click()
            expect(page.locator("#fc-status")).to_contain_text(f"{HORIZON} points")
            assert mean_points(page, "#fc-plot") == [HORIZON, HORIZON]  # chosen model + naive
            grid = page.locator("#fc-table [role=grid]")
            expect(grid).to_have_attribute("aria-rowcount", str(HORIZON + 1))  # header + points
            expect(grid).to_contain_text("upper 95% (MW)")
            expect(page.locator("#fc-csv")).to_contain_text(".csv")
            assert errors.count() == 0, errors.all_inner_texts()
            page.screenshot(path=ARTIFACTS / "2_forecast.png", full_page=True)

            # a history upload without the load column: the message names it
            page.get_by_text("history CSV (optional").click()
            # wait on the application's state (the server holds the file), not on how the file
            # component happens to render its name (it once split it: "no_load .csv")
            with page.expect_response(lambda r: "/upload" in r.url and r.request.method == "POST") as upload:
                page.locator("#fc-upload input[type=file]").set_input_files(_bad_csv(tmp_path / "no_load.csv"))
            assert upload.value.ok and "no_load.csv" in upload.value.text(), upload.value.text()
            page.locator("#fc-run").click()
            expect(page.locator("#fc-status")).to_contain_text("no column 'load_mw'")
            # the app's warning toast, found by the same selector the error checks use
            expect(errors.filter(has_text="load_mw").first).to_be_visible()
            page.screenshot(path=ARTIFACTS / "3_forecast_bad_upload.png", full_page=True)
            page.locator(".toast-close").first.click()  # out of the next screenshots' way
            expect(page.locator(".toast-body")).to_have_count(0)

            # Models: one row per served model, the comparison with naive, the error curves
            page.get_by_role("tab", name="Models").click()
            expect(page.locator("#models-status")).to_contain_text("served models")
            expect(page.locator("#models-table [role=grid]")).to_contain_text("naive")
            expect(page.locator("#models-plot .js-plotly-plot")).to_be_visible()
            # error by lead and by hour of day: the quick models recorded them at training time
            expect(page.locator("#models-lead .js-plotly-plot")).to_be_visible()
            expect(page.locator("#models-hour .js-plotly-plot")).to_be_visible()
            page.screenshot(path=ARTIFACTS / "4_models.png", full_page=True)

            # Data quality: the faulty demo → report and the four data-layer plots
            page.get_by_role("tab", name="Data quality").click()
            page.locator("#dq-run").click()
            expect(page.locator("#dq-status")).to_contain_text("rows in")
            expect(page.locator("#dq-checks [role=grid]")).to_contain_text("duplicates_exact")
            expect(page.locator("#dq-plots img")).to_have_count(4)
            page.screenshot(path=ARTIFACTS / "5_data_quality.png", full_page=True)
            assert errors.count() == 0, errors.all_inner_texts()
        finally:
            browser.close()
    assert not server_errors, server_errors
