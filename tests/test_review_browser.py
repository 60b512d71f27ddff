"""The review app in a real browser: Debian's chromium driven by Playwright, the server as a user starts it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from synthloom.llm import FakeBackend
from synthloom.records import Record
from synthloom.review.annotate import selective_annotation

from conftest import free_port, synthloom_cmd, wait_for_port
from review_data import make_run

CHROMIUM = Path(os.environ.get("SYNTHLOOM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "browser-test-token-0123456789"

sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(f"no chromium at {CHROMIUM} (make test installs it)", allow_module_level=True)


class Server:
    """`synthloom review DIR` in a subprocess on a fixed port and token, so it can be killed and restarted."""

    def __init__(self, path: Path, *extra: str):
        self.path = path
        self.extra = extra
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={TOKEN}"

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            synthloom_cmd("review", str(self.path), "--port", str(self.port), "--token", TOKEN, *self.extra),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        wait_for_port(self.port, self.proc)
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def server(tmp_path):
    servers = []

    def start(path: Path | None = None, *extra: str) -> Server:
        s = Server(path or make_run(tmp_path / "run"), *extra).start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    yield page
    context.close()
    assert not errors, errors
    # The app works with no network: every request the page makes goes to the review server on loopback.
    assert requested and all(u.startswith("http://127.0.0.1:") for u in requested), requested


def open_app(page, server: Server, reviewer: str | None = "alice"):
    page.goto(server.url + (f"&reviewer={reviewer}" if reviewer else ""))
    page.wait_for_selector("#record:not([hidden])")
    return page.locator("#rec-id").text_content()


def after(page, previous_id: str) -> str:
    """Wait until the page shows another record (the decision was saved), and return its id."""
    page.wait_for_function("prev => document.getElementById('rec-id').textContent !== prev", arg=previous_id)
    return page.locator("#rec-id").text_content()


def decisions(run: Path, reviewer: str | None = None) -> list[tuple]:
    db = sqlite3.connect(run / "reviews.sqlite")
    query = "SELECT record_id, reviewer, action, label, fields, undone_at IS NOT NULL FROM decisions"
    rows = db.execute(query + (" WHERE reviewer = ?" if reviewer else "") + " ORDER BY seq",
                      (reviewer,) if reviewer else ()).fetchall()
    db.close()
    return rows


def test_keyboard_session(server, page, tmp_path):
    s = server()
    first = open_app(page, s)
    assert first == "r004"  # the least confident record comes first
    assert "0 of 8 reviewed" in page.locator("#progress-text").text_content()
    page.screenshot(path=str(tmp_path / "keyboard-start.png"))

    page.keyboard.press("a")
    second = after(page, first)
    page.keyboard.press("2")  # relabel to the second label (ham)
    third = after(page, second)
    page.keyboard.press("r")
    fourth = after(page, third)
    page.keyboard.press("s")
    fifth = after(page, fourth)
    page.keyboard.press("e")
    page.locator("#edit-fields textarea").fill("Edited by keyboard")
    page.keyboard.press("Control+Enter")
    sixth = after(page, fifth)
    page.keyboard.press("l")
    page.keyboard.type("spa")
    page.keyboard.press("Enter")
    after(page, sixth)
    assert "5 of 8 reviewed" in page.locator("#progress-text").text_content()
    page.keyboard.press("u")  # undo the last (the label picked from the list)
    page.wait_for_function("id => document.getElementById('rec-id').textContent === id", arg=sixth)
    page.screenshot(path=str(tmp_path / "keyboard-undo.png"))

    rows = decisions(s.path, "alice")
    assert [(r[0], r[2], r[5]) for r in rows] == [
        (first, "accept", 0), (second, "relabel", 0), (third, "reject", 0),
        (fourth, "skip", 0), (fifth, "edit", 0), (sixth, rows[5][2], 1),
    ]
    assert rows[1][3] == "ham"
    assert json.loads(rows[4][4]) == {"text": "Edited by keyboard"}
    assert rows[5][2] in ("relabel", "accept")  # "spam" picked from the list; undone


def test_mouse_session_with_name_dialog(server, page):
    s = server()
    page.goto(s.url)
    page.locator("#name-input").fill("bob")
    page.locator("#name-form button").click()
    page.wait_for_selector("#record:not([hidden])")
    first = page.locator("#rec-id").text_content()
    page.get_by_role("button", name="Accept").click()
    second = after(page, first)
    page.locator("#quick-labels button", has_text="spam").click()
    third = after(page, second)
    page.get_by_role("button", name="Change label").click()
    page.locator("#label-options li", has_text="ham").click()
    fourth = after(page, third)
    page.get_by_role("button", name="Edit text").click()
    page.locator("#edit-fields textarea").fill("Edited by mouse")
    page.locator("#edit-label").select_option("spam")
    page.get_by_role("button", name="Save edit").click()
    fifth = after(page, fourth)
    page.get_by_role("button", name="Reject").click()
    sixth = after(page, fifth)
    page.get_by_role("button", name="Skip").click()
    after(page, sixth)
    page.get_by_role("button", name="Undo").click()
    page.wait_for_function("id => document.getElementById('rec-id').textContent === id", arg=sixth)
    # the history panel lists the decisions, newest first; a click reopens one
    page.locator("#history li").nth(2).click()
    page.wait_for_function("id => document.getElementById('rec-id').textContent === id", arg=fourth)
    assert "edited" in page.locator("#rec-status").text_content()

    rows = decisions(s.path, "bob")
    assert [(r[0], r[2]) for r in rows] == [(first, "accept"), (second, rows[1][2]), (third, rows[2][2]),
                                            (fourth, "edit"), (fifth, "reject"), (sixth, "skip")]
    assert rows[5][5] == 1  # the skip was undone
    assert json.loads(rows[3][4]) == {"text": "Edited by mouse"} and rows[3][3] == "spam"


def test_two_reviewers_in_two_browsers_at_once(server, browser, tmp_path):
    s = server()
    pages = []
    for name in ("alice", "bob"):
        context = browser.new_context()
        pages.append(context.new_page())
        open_app(pages[-1], s, name)
    alice, bob = pages
    first = alice.locator("#rec-id").text_content()
    assert bob.locator("#rec-id").text_content() == first  # both see every record
    alice.keyboard.press("a")
    bob.keyboard.press("r")
    after(alice, first), after(bob, first)
    second = alice.locator("#rec-id").text_content()
    alice.keyboard.press("1")
    bob.keyboard.press("1")
    after(alice, second), after(bob, second)
    rows = decisions(s.path)
    assert sorted((r[0], r[1], r[2]) for r in rows) == sorted(
        [(first, "alice", "accept"), (first, "bob", "reject"), (second, "alice", rows[2][2]), (second, "bob", rows[3][2])])
    alice.get_by_role("button", name="Agreement").click()
    alice.wait_for_selector("#stats-dialog[open]")
    text = alice.locator("#stats-body").text_content()
    assert "alice & bob on 2 shared records: same outcome 50.0%" in text
    alice.screenshot(path=str(tmp_path / "agreement.png"))
    for p in pages:
        p.context.close()


def _status(url: str, body: dict | None = None, headers: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_wrong_or_missing_token_is_refused(server, page):
    s = server()
    base = f"http://127.0.0.1:{s.port}"
    assert page.goto(f"{base}/").status == 401
    assert page.goto(f"{base}/?token=wrong-token-wrong-token").status == 401
    assert "valid token" in page.content()
    for path in ("/api/info", "/api/next?reviewer=eve", "/static/app.js", "/api/stats"):
        assert _status(base + path) == 401
        assert _status(base + path, headers={"X-Review-Token": "nope"}) == 401
        assert _status(base + path, headers={"X-Review-Token": TOKEN}) == 200
    assert _status(f"{base}/api/decide", {"record_id": "r001", "reviewer": "eve", "action": "accept"}) == 401
    assert not (s.path / "reviews.sqlite").exists() or decisions(s.path) == []
    # with the token, a bad decision is a clear 400, not a crash
    assert _status(f"{base}/api/decide", {"record_id": "r001", "reviewer": "eve", "action": "maybe"},
                   {"X-Review-Token": TOKEN}) == 400


def test_server_killed_mid_session_and_restarted_loses_nothing(server, page, tmp_path):
    s = server()
    current = open_app(page, s)
    decided = []
    for key in ("a", "r", "a"):
        page.keyboard.press(key)
        decided.append(current)
        current = after(page, current)
    s.kill()  # kill -9: no shutdown, no flush
    assert [r[0] for r in decisions(s.path, "alice")] == decided

    # a decision made while the server is down is kept in the page and sent when it is back
    page.keyboard.press("a")
    page.wait_for_selector("#banner:not([hidden])")
    assert "Not saved yet" in page.locator("#banner").text_content()
    page.screenshot(path=str(tmp_path / "server-down.png"))
    s.start()  # same port and token
    after(page, current)
    decided.append(current)
    assert page.locator("#banner").is_hidden()
    assert [r[0] for r in decisions(s.path, "alice")] == decided

    fresh = page.context.new_page()
    open_app(fresh, s)
    assert "4 of 8 reviewed" in fresh.locator("#progress-text").text_content()
    assert fresh.locator("#rec-id").text_content() not in decided


def test_selective_annotation_through_the_app(tmp_path, server, page):
    texts = [Record(id=f"t{i}", fields={"text": f"message {i}"}) for i in range(6)]
    confidence = {0: "1.0", 1: "0.6", 2: "0.9", 3: "0.5", 4: "0.8", 5: "1.0"}

    def votes(request):  # self-consistency: the share of samples that agree is the confidence
        i = int(request.messages[-1]["content"].split()[-1])
        agree = request.sample < round(float(confidence[i]) * 10)
        return '{"label": "%s"}' % (("a" if i % 2 else "b") if agree else ("b" if i % 2 else "a"))

    # Playwright's sync API keeps an event loop running in this thread; label in another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(selective_annotation, texts, ["a", "b"], tmp_path / "sel", 2, backend=FakeBackend(responder=votes),
                    method="votes", samples=10, embeddings=False, progress=False).result()
    s = server(tmp_path / "sel")
    first = open_app(page, s)
    assert first == "t3"
    assert page.locator("#assigned-only").is_checked()
    assert "0 of 2 reviewed" in page.locator("#progress-text").text_content()
    page.keyboard.press("2")
    second = after(page, first)
    assert second == "t1"
    page.keyboard.press("a")
    page.wait_for_selector("#empty:not([hidden])")
    assert [(r[0], r[2]) for r in decisions(s.path)] == [("t3", "relabel"), ("t1", "accept")]


def _long_run(path: Path, assigned: bool) -> Path:
    """A run whose records are long enough that the page scrolls; with `assigned`, records chosen for people."""
    from synthloom.records import read_records, write_records
    from synthloom.review import ReviewStore

    run = make_run(path, n=12)
    records = read_records(run / "curated.parquet")
    for record in records:
        record.fields["text"] = " ".join([record.fields["text"]] * 60)
    write_records(run / "curated.parquet", records, prompts=False)
    if assigned:
        with ReviewStore(run / "reviews.sqlite") as store:
            store.assign([r.id for r in records[:4]])
    return run


TOOLBAR_CONTROLS = ["#order", "#filter-label", "#filter-condition", "#filter-decision", "#stats-btn", "#help-btn"]
# What a control's centre shows when nothing covers it: the control, or its own text inside it.
HIT = """sel => {
  const el = document.querySelector(sel), box = el.getBoundingClientRect();
  const x = box.left + box.width / 2, y = box.top + box.height / 2;
  const hit = document.elementFromPoint(x, y);
  return {inside: x >= 0 && y >= 0 && x <= innerWidth && y <= innerHeight, hit: !!hit && (hit === el || el.contains(hit))};
}"""


@pytest.mark.parametrize("assigned", [False, True], ids=["run", "selected-for-people"])
def test_toolbar_stays_below_the_header_and_every_control_is_clickable(server, browser, tmp_path, assigned):
    s = server(_long_run(tmp_path / "run", assigned))
    for width in (1280, 1920):
        _check_toolbar(browser, s, tmp_path, width, assigned)


def _check_toolbar(browser, s: Server, tmp_path: Path, width: int, assigned: bool) -> None:
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    try:
        open_app(page, s)
        controls = TOOLBAR_CONTROLS + (["#assigned-only"] if assigned else [])
        assert page.locator("#assigned-wrap").is_visible() == assigned
        for scrolled in (0, 40, 600):  # at the top, a little down, far down a long record
            page.evaluate("y => window.scrollTo(0, y)", scrolled)
            page.wait_for_function("y => Math.abs(window.scrollY - y) < 1", arg=scrolled)
            header = page.locator("header.top").bounding_box()
            toolbar = page.locator("nav.toolbar").bounding_box()
            if scrolled == 0:
                page.screenshot(path=str(tmp_path / f"toolbar-{width}.png"))
            assert header["y"] + header["height"] <= toolbar["y"] + 0.5, (width, scrolled, header, toolbar)
            assert toolbar["y"] + toolbar["height"] <= 800, (width, scrolled, toolbar)
            for selector in controls:
                assert page.locator(selector).is_visible(), (width, scrolled, selector)
                where = page.evaluate(HIT, selector)
                assert where == {"inside": True, "hit": True}, (width, scrolled, selector, where)
        assert page.evaluate("window.scrollY") > 0  # the record is long: the page did scroll
        # and each one works where it stands
        page.locator("#filter-label").select_option("spam")
        page.wait_for_function("() => document.getElementById('rec-label').textContent === 'spam'")
        page.locator("#stats-btn").click()
        page.wait_for_selector("#stats-dialog[open]")
        page.keyboard.press("Escape")
        page.locator("#help-btn").click()
        page.wait_for_selector("#help-dialog[open]")
        page.keyboard.press("Escape")
        if assigned:
            page.locator("#assigned-only").click()
            assert not page.locator("#assigned-only").is_checked()
    finally:
        context.close()
