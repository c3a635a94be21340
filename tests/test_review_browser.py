"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, against the review server
running on 127.0.0.1. The pages send a reviewer without a session to the login page; the reviewer logs in,
approves one item, rejects another and corrects a third; then the queue database and the audit log must say
exactly that. Screenshots land in test-artifacts/ (review-queue.png, the queue after the three verdicts, and
review-item.png, one item's page).

Chromium is not optional here: CI installs it (apt-get install -y chromium), and a missing browser must fail
the run rather than skip the only test that clicks through the real pages.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from hguard.audit import AuditLog, verify
from hguard.review import make_server
from hguard.testing import guard_queue

CHROMIUM = Path("/usr/bin/chromium")
# The flags Chromium needs on a sandboxed root machine with no network beyond loopback.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TOKEN = "browser-test-token-0123456789"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.timeout(120)


def _item(audit_id, risk, question, answer, **over):
    item = {
        "audit_id": audit_id,
        "question": question,
        "answer": answer,
        "context": None,
        "domain": "geography",
        "risk": risk,
        "signals": {"h_neuron": risk, "entropy": round(risk * 3, 3)},
        "reasons": [f"risk {risk:.3f} between accept_below 0.200 and abstain_above 0.800 for geography: review"],
        "model_fingerprint": "sha256:smollm2-135m",
        "probe_id": "geography-probe-1",
        "time": "2025-03-01T10:00:00+00:00",
    }
    item.update(over)
    return item


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test needs Debian's Chromium; install it with "
            "`apt-get install -y chromium` (CI installs it)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(f"the browser test needs the playwright package ({e}); install it with `pip install playwright` "
                    "(no `playwright install`: it drives /usr/bin/chromium)")  # fmt: skip
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def server(tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    queue = guard_queue(tmp_path / "review.sqlite3", audit=audit)  # each item's decision logged, as the guard does
    queue.enqueue(_item("approve-me", 0.35, "What is the capital of France?", "The capital of France is Paris."))
    queue.enqueue(_item("reject-me", 0.88, "Who was the first person on Mars?",
                        "Neil Armstrong walked on Mars in 1969. <script>document.title='pwned'</script>"))  # fmt: skip
    queue.enqueue(_item("correct-me", 0.62, "What is the capital of Australia?", "Sydney is the capital.",
                        context="Canberra is the capital city of Australia."))  # fmt: skip
    queue.enqueue(_item("leave-me", 0.47, "How tall is Mount Kosciuszko?", "About 2,228 metres.", domain="landmarks"))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = make_server(queue, "127.0.0.1", port, token=TOKEN, log_level="warning")
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the review server did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", queue, audit
    finally:
        srv.should_exit = True
        thread.join(10)
        sock.close()


def test_reviewer_logs_in_and_decides_three_items_in_chromium(browser, server):
    base, queue, audit = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    # Reading needs the token: the queue sends a stranger to the login page and shows none of its items.
    page.goto(base + "/")
    page.wait_for_url(base + "/login?next=%2F")
    assert page.locator("#pending").count() == 0 and "capital of France" not in page.content()
    page.goto(base + "/items/approve-me")
    page.wait_for_url(base + "/login?next=%2Fitems%2Fapprove-me")
    assert "capital of France" not in page.content()

    page.fill("input[name=token]", TOKEN)
    page.click("button:has-text('Log in')")
    page.wait_for_url(base + "/items/approve-me")  # back where the reviewer was going
    assert page.locator("text=signed in").count() == 1
    page.goto(base + "/")
    assert page.locator("#pending tbody tr").count() == 4
    # Highest risk first.
    assert page.locator("#pending tbody tr").first.get_attribute("data-item-id") == "reject-me"

    def open_item(item_id):
        page.click(f"#pending tr[data-item-id='{item_id}'] a")
        page.wait_for_url(f"{base}/items/{item_id}")

    open_item("approve-me")
    page.fill("input[name=reviewer]", "Ada Reviewer")
    page.click("button[value=correct]")
    page.wait_for_url(base + "/?done=approve-me")
    assert "Recorded: correct by Ada Reviewer" in page.inner_text("#message")

    open_item("reject-me")
    # The injected script is shown as text, never run.
    assert "<script>" in page.inner_text("#answer") and page.title() != "pwned"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-item.png"), full_page=True)
    assert page.input_value("input[name=reviewer]") == "Ada Reviewer"  # remembered from the first verdict
    page.fill("textarea[name=note]", "nobody has walked on Mars")
    page.click("button[value=hallucinated]")
    page.wait_for_url(base + "/?done=reject-me")

    open_item("correct-me")
    assert "Canberra is the capital city" in page.inner_text("#context")
    page.fill("textarea[name=corrected_answer]", "Canberra")
    page.click("button[value=corrected]")
    page.wait_for_url(base + "/?done=correct-me")

    rows = page.locator("#pending tbody tr")
    assert rows.count() == 1 and rows.first.get_attribute("data-item-id") == "leave-me"
    page.screenshot(path=str(ARTIFACTS / "review-queue.png"), full_page=True)

    # A decided item shows its verdict and offers no form for a second one.
    page.goto(base + "/items/approve-me")
    assert "Ada Reviewer" in page.inner_text("#verdict") and page.locator("button[value=correct]").count() == 0

    verdicts = {i.id: i.verdict for i in queue.decided()}
    assert set(verdicts) == {"approve-me", "reject-me", "correct-me"}
    assert verdicts["approve-me"].verdict == "correct"
    assert verdicts["reject-me"].verdict == "hallucinated" and verdicts["reject-me"].note == "nobody has walked on Mars"
    assert verdicts["correct-me"].verdict == "corrected" and verdicts["correct-me"].corrected_answer == "Canberra"
    assert all(v.reviewer == "Ada Reviewer" for v in verdicts.values())
    assert [i.id for i in queue.pending()] == ["leave-me"]

    records = [r for r in audit if r["kind"] == "review_verdict"]
    assert len(records) == 3
    assert {r["item_id"]: r["verdict"] for r in records} == {
        "approve-me": "correct", "reject-me": "hallucinated", "correct-me": "corrected",
    }  # fmt: skip
    assert {r["id"] for r in records} == {v.audit_record_id for v in verdicts.values()}
    report = verify(audit.path)
    assert report.ok, report.summary()
    assert (ARTIFACTS / "review-queue.png").stat().st_size > 10_000
