"""Label Studio's own web UI in headless Chromium, clicked as an annotator would: connect the
model, Retrieve Predictions, open a task, submit a label; then the Data Manager shows the new
version's predictions. Screenshots in test-output/label-studio-ui/ (gitignored)."""
import time
from pathlib import Path

from tests.e2e.test_label_studio_loop import CONFIG, _annotate, _dataset, _predictions, _wait, _wait_backend

OUT = Path(__file__).resolve().parents[2] / "test-output" / "label-studio-ui"


def _settle(page, seconds: float = 3.0) -> None:
    page.wait_for_load_state("networkidle")
    time.sleep(seconds)  # Label Studio's UI keeps rendering after the network is idle


def login(browser, ls):
    """A browser context logged in to Label Studio as its admin, and its page."""
    password = ls.proc.args[ls.proc.args.index("--password") + 1]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{ls.url}/user/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    _settle(page, 2)
    return context, page


def test_an_annotator_runs_the_loop_in_label_studios_ui(label_studio, backend_factory, browser):
    ls = label_studio
    backend = backend_factory(MIN_LABELS="8")  # with credentials: each version's scores are pushed
    rows = _dataset(per_intent=6)
    pid = ls.api("POST", "/api/projects", json={"title": "UI smoke", "label_config": CONFIG})["id"]
    ls.api("POST", f"/api/projects/{pid}/import", json=[{"text": t} for t, _ in rows])
    tasks = ls.api("GET", "/api/tasks", params={"project": pid, "page_size": 100})["tasks"]
    truth = {t["id"]: y for t, (_, y) in zip(sorted(tasks, key=lambda t: t["id"]), rows)}
    OUT.mkdir(parents=True, exist_ok=True)
    context, page = login(browser, ls)

    # 1. connect the model: Settings -> Model -> Connect Model
    page.goto(f"{ls.url}/projects/{pid}/settings/ml")
    _settle(page)
    page.get_by_text("Connect Model").first.click()
    time.sleep(2)
    page.fill("input[name=title]", "baal-al")
    page.fill("input[name=url]", backend.url)
    page.get_by_text("Validate and Save").first.click()
    _wait(lambda: ls.api("GET", "/api/ml", params={"project": pid}), 60, "the model is connected")
    page.screenshot(path=str(OUT / "01-model-connected.png"))

    # 2. Data Manager: select all, Actions -> Retrieve Predictions -> OK
    page.goto(f"{ls.url}/projects/{pid}/data")
    _settle(page, 4)
    page.click('input[aria-label="Select all rows"]')
    time.sleep(1)
    page.get_by_text(f"{len(tasks)} Tasks", exact=True).first.click()  # the Actions menu, once rows are selected
    time.sleep(1)
    page.get_by_text("Retrieve Predictions").first.click()
    time.sleep(2)
    page.screenshot(path=str(OUT / "02-retrieve-confirm.png"))
    confirm = page.locator("button", has_text="OK")
    if confirm.count():  # the confirmation dialog, when Label Studio shows one
        confirm.first.click()
    _wait(lambda: len(_predictions(ls, pid)) >= len(tasks), 120, "Retrieve Predictions stored one per task")
    page.screenshot(path=str(OUT / "02-predictions-retrieved.png"))

    # labels a team already gave (through the API), one short of MIN_LABELS ...
    for task_id in sorted(truth)[:7]:
        _annotate(ls, task_id, truth[task_id])
    # 3. ... and one more, clicked in the labeling view: open a task, tick its class, Submit
    page.goto(f"{ls.url}/projects/{pid}/data")
    _settle(page, 4)
    target = sorted(truth)[7]
    page.locator(".lsf-table-row", has_text=rows[7][0][:30]).first.click()
    _settle(page, 4)
    page.locator(".lsf-choice", has_text=truth[target]).locator(".lsf-choice__checkbox").first.click()
    page.get_by_role("button", name="Submit").click()
    _wait(lambda: len(ls.api("GET", f"/api/tasks/{target}/annotations")) == 1, 30, "the annotation is saved")
    page.screenshot(path=str(OUT / "03-label-submitted.png"))

    # 4. the backend trains a version on the 8 labels and pushes its scores; the Data Manager shows them
    body = _wait_backend(backend, pid, lambda b: b["versions"] and b["labels"] == 8, 240, "a version on 8 labels")
    version = body["studio_version"]
    _wait(lambda: ls.api("GET", f"/api/projects/{pid}")["model_version"] == version, 120, "the version is pushed")
    page.goto(f"{ls.url}/projects/{pid}/data")
    _settle(page, 4)
    page.get_by_text("Columns").first.click()
    time.sleep(1)
    for column in ("Prediction score", "Prediction model versions"):
        page.get_by_text(column, exact=True).first.click()
        time.sleep(1)
    page.keyboard.press("Escape")
    _settle(page, 3)
    table = page.inner_text(".lsf-table, [class*=table]")
    assert version in table, table[:2000]
    page.screenshot(path=str(OUT / "04-new-version-scores.png"), full_page=True)
    context.close()
