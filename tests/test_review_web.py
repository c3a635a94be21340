"""The review web app through Starlette's TestClient: pages, escaping, token, CSRF, origin and 409 checks; and
`hguard review` on the command line (refusals without a token or with a missing queue)."""

from __future__ import annotations

import errno
import html
import inspect
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from hguard.audit import AuditLog, verify
from hguard.cli.review import main as review_cli
from hguard.errors import AuditError, InputError, PolicyError
from hguard.testing import guard_queue, log_decision
from hguard.review import ReviewQueue, _auth, create_app, make_server, serve, web

TOKEN = "test-token-0123456789abcdef"
MAKE_TOKEN = "export HGUARD_REVIEW_TOKEN=$(python -c 'import secrets;print(secrets.token_urlsafe(32))')"
BASE = "http://127.0.0.1:8765"
SAME_ORIGIN = {"Origin": BASE}
XSS = "<script>alert('pwned')</script>"


def make_item(audit_id, **over):
    item = {
        "audit_id": audit_id,
        "question": f"Question {audit_id}?",
        "answer": f"Answer {audit_id}.",
        "context": None,
        "domain": "geography",
        "risk": 0.5,
        "signals": {"h_neuron": 0.5},
        "reasons": ["between thresholds: review"],
        "time": "2025-03-01T10:00:00+00:00",
    }
    item.update(over)
    return item


@pytest.fixture
def audit(tmp_path):
    return AuditLog(tmp_path / "audit.jsonl")


@pytest.fixture
def queue(tmp_path, audit):
    q = guard_queue(tmp_path / "review.sqlite3", audit=audit)  # each item's decision logged, as the guard does
    q.enqueue(make_item("low", risk=0.21))
    q.enqueue(make_item("high", risk=0.93, answer=XSS, question="Is <b>bold</b> & safe?",
                        context="Retrieved: <img src=x onerror=alert(1)>",
                        signals={"h_neuron": 0.93, "entropy": 2.5, "grounding": None},
                        reasons=["risk 0.930 >= abstain_above <i>0.8</i>", "no grounding"]))  # fmt: skip
    q.enqueue(make_item("mid", risk=0.6, domain="medicine",
                        reasons=["domain 'medicine' chosen with similarity 0.61", "question out of the calibration distribution"]))
    q.enqueue(make_item("nodom", risk=0.4, domain=None))
    return q


def client_for(queue, token=TOKEN, audit=None, read_only_open=False, address="127.0.0.1"):
    app = create_app(queue, token=token, audit=audit, read_only_open=read_only_open)
    return TestClient(app, base_url=BASE, follow_redirects=False, client=(address, 50000))


def csrf_of(page: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m, "no CSRF field in the page"
    return m.group(1)


def login(client) -> None:
    page = client.get("/login")
    r = client.post("/login", data={"token": TOKEN, "csrf_token": csrf_of(page.text), "next": "/"}, headers=SAME_ORIGIN)
    assert r.status_code == 303, r.text
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()


def decide_form(client, item_id, **fields):
    page = client.get(f"/items/{item_id}")
    return {"csrf_token": csrf_of(page.text), "reviewer": "alice", **fields}


# ----------------------------------------------------------------------------------------------- reading


def test_index_lists_pending_by_risk_with_counts(queue):
    c = client_for(queue)
    login(c)
    r = c.get("/")
    assert r.status_code == 200
    assert re.findall(r'data-item-id="([^"]+)"', r.text) == ["high", "mid", "nodom", "low"]
    counts = r.text[r.text.index('id="counts"') : r.text.index("</table>")]
    assert re.search(r"geography</a></td>\s*<td class=\"count\">2</td><td class=\"count\">0</td>", counts)
    assert "(no domain)" in counts
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["x-frame-options"] == "DENY"

    # the list says why each answer was held, not where it was routed
    assert "question out of the calibration distribution" in r.text and "chosen with similarity" not in r.text
    assert re.findall(r'data-item-id="([^"]+)"', c.get("/?domain=geography").text) == ["high", "low"]
    assert re.findall(r'data-item-id="([^"]+)"', c.get("/?domain=-").text) == ["nodom"]
    assert re.findall(r'data-item-id="([^"]+)"', c.get("/?order=time&domain=medicine").text) == ["mid"]


def test_item_page_shows_everything_and_escapes_untrusted_text(queue):
    c = client_for(queue)
    login(c)
    r = c.get("/items/high")
    assert r.status_code == 200
    body = r.text
    for raw in (XSS, "<b>bold</b>", "<img src=x", "<i>0.8</i>"):
        assert raw not in body
    assert html.escape(XSS, quote=True) in body or "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in body
    assert "Is &lt;b&gt;bold&lt;/b&gt; &amp; safe?" in body
    assert "Retrieved: &lt;img src=x onerror=alert(1)&gt;" in body
    assert "0.930" in body
    for signal in ("h_neuron", "entropy", "grounding"):
        assert f"<td>{signal}</td>" in body
    assert "no grounding" in body
    # question, answer and passage take their direction from their own text: an Arabic passage ran left to right,
    # its full stop at the sentence's start (a multilingual agency's trial)
    for part in ("question", "answer", "context"):
        assert re.search(rf'<pre class="text[^"]*" id="{part}" dir="auto">', body), part
    assert body.count('<td dir="auto">') == 0 and '<td dir="auto"><a href="/items/' in c.get("/").text


def test_unknown_item_is_404_and_foreign_host_is_400(queue):
    c = client_for(queue)
    login(c)
    assert c.get("/items/ghost").status_code == 404
    r = c.get("/", headers={"Host": "evil.example:8765"})
    assert r.status_code == 400 and "evil.example" in r.text


@pytest.mark.parametrize("path", ["/", "/?domain=geography&order=time", "/decided", "/items/high", "/items/ghost"])
def test_reading_needs_the_token(queue, path):
    c = client_for(queue)
    r = c.get(path)
    # Redirected to the login page and back; nothing from the queue (not even whether an id exists) is shown.
    assert r.status_code == 303 and r.headers["location"] == "/login?next=" + quote(path, safe="")
    for text in ("Question", "Answer", "geography", "bold", "pwned", "no review item"):
        assert text not in r.text
    page = c.get(r.headers["location"])
    assert page.status_code == 200 and f'name="next" value="{html.escape(path)}"' in page.text
    for text in ("Question high", "Answer low", "data-item-id"):
        assert text not in page.text
    # A forged session cookie reads nothing either.
    c.cookies.set(web.SESSION_COOKIE, "9999999999.bm9uY2U.AAAA")
    assert c.get(path).status_code == 303


def test_login_returns_to_the_page_asked_for(queue):
    c = client_for(queue)
    csrf = csrf_of(c.get("/login?next=/items/high").text)
    r = c.post("/login", data={"token": TOKEN, "csrf_token": csrf, "next": "/items/high"}, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/items/high"
    assert "Is &lt;b&gt;bold&lt;/b&gt; &amp; safe?" in c.get("/items/high").text
    # the login page's own header link does not send the reviewer back to the login page
    page = client_for(queue, read_only_open=True).get("/login").text
    assert 'href="/login?next=/"' in page and 'href="/login?next=/login"' not in page


def test_read_only_open_lets_anyone_read_and_still_needs_the_token_to_decide(queue):
    c = client_for(queue, read_only_open=True)
    r = c.get("/")
    assert r.status_code == 200 and re.findall(r'data-item-id="([^"]+)"', r.text) == ["high", "mid", "nodom", "low"]
    page = c.get("/items/low").text
    assert 'name="verdict"' not in page and "Log in with the review token" in page
    form = {"csrf_token": csrf_of(c.get("/login").text), "reviewer": "alice", "verdict": "correct"}
    r = c.post("/items/low", data=form, headers=SAME_ORIGIN)
    assert r.status_code == 403 and "not logged in" in r.text
    assert queue.get("low").status == "pending"


def test_item_page_offers_form_only_after_login(queue):
    c = client_for(queue, read_only_open=True)
    page = c.get("/items/low").text
    assert 'name="verdict"' not in page and "Log in with the review token" in page
    login(c)
    page = c.get("/items/low").text
    assert 'value="correct"' in page and 'value="hallucinated"' in page and 'value="corrected"' in page
    assert 'value="not_in_context"' not in page  # answered without a passage
    page = c.get("/items/high").text  # answered with one
    assert 'value="not_in_context"' in page and "The passage does not answer this" in page


def test_a_passage_that_does_not_answer_is_a_verdict_of_its_own(queue, audit):
    c = client_for(queue)
    login(c)
    r = c.post("/items/high", data=decide_form(c, "high", verdict="not_in_context"), headers=SAME_ORIGIN)
    assert r.status_code == 303, r.text
    assert queue.get("high").verdict.verdict == "not_in_context"
    (rec,) = [x for x in audit if x["kind"] == "review_verdict"]
    assert (rec["verdict"], rec["label"]) == ("not_in_context", "hallucinated")
    r = c.post("/items/low", data=decide_form(c, "low", verdict="not_in_context"), headers=SAME_ORIGIN)
    assert r.status_code == 400 and "answered without context" in r.text
    assert queue.get("low").status == "pending"


# ----------------------------------------------------------------------------------------------- writing


def test_logged_in_reviewer_records_a_verdict_with_audit_record(queue, audit):
    c = client_for(queue)
    login(c)
    r = c.post("/items/low", data=decide_form(c, "low", verdict="correct", note="fine"), headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/?done=low"
    assert "Recorded: correct by alice on item low." in c.get(r.headers["location"]).text
    v = queue.get("low").verdict
    assert (v.verdict, v.reviewer, v.note) == ("correct", "alice", "fine")
    (rec,) = [x for x in audit if x["kind"] == "review_verdict"]
    assert rec["item_id"] == "low" and rec["reviewer"] == "alice"
    assert verify(audit.path).ok
    assert 'value="alice"' in c.get("/items/mid").text  # the name is remembered for the next item
    decided = c.get("/decided").text
    assert 'href="/items/low"' in decided and "<td>alice</td>" in decided


def test_a_reviewer_name_outside_latin_1_is_recorded_answered_and_remembered(queue, audit):
    c = client_for(queue)
    login(c)
    form = {**decide_form(c, "low", verdict="correct"), "reviewer": "Łukasz Nowak"}
    r = c.post("/items/low", data=form, headers=SAME_ORIGIN)
    assert r.status_code == 303, r.text  # the verdict was recorded: so says the answer (it was a 500)
    assert queue.get("low").verdict.reviewer == "Łukasz Nowak"
    assert 'value="Łukasz Nowak"' in c.get("/items/mid").text  # remembered for the next item, as typed


def test_corrected_answer_is_stored_and_missing_one_is_400(queue):
    c = client_for(queue)
    login(c)
    page = c.get("/items/mid").text  # the box says what saving it means ("Better answer" read as a rewording)
    assert "Saving it marks the model's answer hallucinated" in page and "Wrong: save the right answer" in page
    r = c.post("/items/mid", data=decide_form(c, "mid", verdict="corrected", corrected_answer=""), headers=SAME_ORIGIN)
    assert r.status_code == 400 and "needs the right answer" in r.text
    assert queue.get("mid").status == "pending"
    r = c.post("/items/mid", data=decide_form(c, "mid", verdict="corrected", corrected_answer="Canberra"),
               headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 303
    assert queue.get("mid").verdict.corrected_answer == "Canberra"


def test_second_decision_is_409_and_changes_nothing(queue, audit):
    c = client_for(queue)
    login(c)
    form = decide_form(c, "high", verdict="hallucinated")
    assert c.post("/items/high", data=form, headers=SAME_ORIGIN).status_code == 303
    first = queue.get("high").verdict
    form2 = {**form, "verdict": "correct", "reviewer": "bob"}
    r = c.post("/items/high", data=form2, headers=SAME_ORIGIN)
    assert r.status_code == 409
    assert f"already decided by alice at {first.decided_at}" in r.text
    assert queue.get("high").verdict == first
    assert len([x for x in audit if x["kind"] == "review_verdict"]) == 1


def test_no_token_is_refused_unless_reading_is_opened_explicitly(queue):
    with pytest.raises(InputError, match=re.escape(MAKE_TOKEN)) as e:
        create_app(queue, token=None)
    assert "--read-only-open" in str(e.value) and "\n" not in str(e.value)


def test_post_without_configured_token_is_refused_as_read_only(queue):
    c = client_for(queue, token=None, read_only_open=True)
    page = c.get("/items/low")
    assert "Read-only" in page.text and 'name="verdict"' not in page.text
    assert "any local process" in page.text
    # Refused before any other check: even a request that passed them all would be.
    form = {"csrf_token": "irrelevant", "reviewer": "alice", "verdict": "correct"}
    r = c.post("/items/low", data=form, headers=SAME_ORIGIN)
    assert r.status_code == 403 and "read-only" in r.text and web.TOKEN_ENV in r.text
    assert c.post("/login", data={**form, "token": TOKEN}, headers=SAME_ORIGIN).status_code == 403
    assert queue.get("low").status == "pending"


def test_post_without_login_is_refused(queue):
    c = client_for(queue)
    form = {"csrf_token": csrf_of(c.get("/login").text), "reviewer": "alice", "verdict": "correct"}
    r = c.post("/items/low", data=form, headers=SAME_ORIGIN)
    assert r.status_code == 403 and "not logged in" in r.text
    assert queue.get("low").status == "pending"


def test_forged_session_cookie_is_refused(queue):
    c = client_for(queue)
    form = {"csrf_token": csrf_of(c.get("/login").text), "reviewer": "mallory", "verdict": "correct"}
    c.cookies.set(web.SESSION_COOKIE, "9999999999.bm9uY2U.AAAA")
    assert c.post("/items/low", data=form, headers=SAME_ORIGIN).status_code == 403
    assert queue.get("low").status == "pending"


@pytest.mark.parametrize(
    "csrf, headers, expected",
    [
        (None, SAME_ORIGIN, "CSRF token is missing"),
        ("forged", SAME_ORIGIN, "CSRF token is missing or does not match"),
        ("valid", {"Origin": "http://evil.example"}, "Origin 'http://evil.example' is not this server"),
        ("valid", {"Origin": "null"}, "is not this server"),
        ("valid", {"Referer": "http://evil.example/page"}, "Referer 'http://evil.example/page' is not this server"),
        ("valid", {}, "neither an Origin nor a Referer"),
    ],
)
def test_cross_site_posts_are_refused(queue, csrf, headers, expected):
    c = client_for(queue)
    login(c)
    form = decide_form(c, "low", verdict="correct")
    if csrf is None:
        del form["csrf_token"]
    elif csrf == "forged":
        form["csrf_token"] = "A" * 43
    r = c.post("/items/low", data=form, headers=headers)
    assert r.status_code == 403 and expected in html.unescape(r.text)
    assert queue.get("low").status == "pending"


def test_same_origin_referer_is_accepted_when_origin_is_absent(queue):
    c = client_for(queue)
    login(c)
    r = c.post("/items/low", data=decide_form(c, "low", verdict="correct"), headers={"Referer": f"{BASE}/items/low"})
    assert r.status_code == 303


def test_wrong_token_is_refused_and_repeated_failures_lock_login(queue, audit):
    c = client_for(queue)
    csrf = csrf_of(c.get("/login").text)
    for _ in range(10):
        r = c.post("/login", data={"token": "wrong-token-xxxxxxxx", "csrf_token": csrf}, headers=SAME_ORIGIN)
        assert r.status_code == 403 and "wrong review token" in r.text
    r = c.post("/login", data={"token": TOKEN, "csrf_token": csrf}, headers=SAME_ORIGIN)
    assert r.status_code == 429
    assert web.SESSION_COOKIE not in c.cookies
    # each failure is on record for an auditor, the last one saying the address is now locked
    failed = [x for x in audit if x["kind"] == "review_login_failed"]
    assert len(failed) == 10 and not failed[0]["locked"] and failed[-1]["locked"] and failed[-1]["client"]
    login(client_for(queue))
    assert [x["kind"] for x in audit][-1] == "review_login"


DISK_FULL = "could not write to audit log audit.jsonl: [Errno 28] No space left on device; the record was not stored"


def unwritable(queue, monkeypatch):
    """The queue's audit log refusing every append (a full disk), as AuditLog says it."""

    def append(record, *, kind="decision"):
        raise AuditError(DISK_FULL)

    monkeypatch.setattr(queue.audit, "append", append)


def test_a_login_that_cannot_be_recorded_is_refused_naming_the_cause(queue, audit, monkeypatch, caplog):
    c = client_for(queue)
    csrf = csrf_of(c.get("/login").text)
    unwritable(queue, monkeypatch)
    with caplog.at_level(logging.ERROR, logger="hguard.review"):
        r = c.post("/login", data={"token": TOKEN, "csrf_token": csrf, "next": "/items/low"}, headers=SAME_ORIGIN)
    # no session without its record: an auditor reading the log sees every login that read the queue
    assert r.status_code == 503, r.text
    assert web.SESSION_COOKIE not in c.cookies and web.SESSION_COOKIE not in r.headers.get("set-cookie", "")
    shown = html.unescape(r.text)
    assert (
        "Not logged in: this login could not be recorded because the audit log audit.jsonl could not be "
        "written (AuditError: could not write to audit log audit.jsonl: [Errno 28] No space left on device" in shown
    )
    assert "fix the audit log and log in again" in shown and str(audit.path.parent) not in shown
    assert c.get("/items/low").status_code == 303  # still not logged in
    assert "review login from 127.0.0.1 refused" in caplog.text and "No space left on device" in caplog.text
    assert not [x for x in audit if x["kind"] == "review_login"]


def test_a_failed_login_that_cannot_be_recorded_gets_the_recorded_failures_page(queue, audit, monkeypatch, caplog):
    """A wrong token's 403 says nothing about recording: someone guessing tokens is not told that its attempts go
    unlogged. The operator's log says it (an error), and the lockout holds with nothing on record."""
    c = client_for(queue)
    csrf = csrf_of(c.get("/login").text)

    def wrong_token():
        return c.post("/login", data={"token": "wrong-token-xxxxxxxx", "csrf_token": csrf}, headers=SAME_ORIGIN)

    recorded = wrong_token()
    assert recorded.status_code == 403 and [x["kind"] for x in audit][-1] == "review_login_failed"
    unwritable(queue, monkeypatch)
    with caplog.at_level(logging.ERROR, logger="hguard.review"):
        r = wrong_token()
    assert r.status_code == 403 and web.SESSION_COOKIE not in c.cookies
    assert r.text == recorded.text  # the same page as a failure on record
    shown = html.unescape(r.text)
    assert "wrong review token" in shown and "recorded" not in shown and "No space left" not in shown
    (logged,) = [x for x in caplog.records if x.name == "hguard.review._app"]
    assert logged.levelno == logging.ERROR and "failed review login from 127.0.0.1 was not recorded" in logged.message
    assert "No space left on device" in logged.message
    for _ in range(8):  # ten wrong tokens in a minute (one of them on record) lock the address all the same
        assert wrong_token().status_code == 403
    r = c.post("/login", data={"token": TOKEN, "csrf_token": csrf}, headers=SAME_ORIGIN)
    assert r.status_code == 429 and web.SESSION_COOKIE not in c.cookies
    assert len([x for x in audit if x["kind"] == "review_login_failed"]) == 1


def test_a_login_recorded_before_its_append_raised_stands_and_is_logged(tmp_path, monkeypatch, caplog):
    class Mirrored(AuditLog):  # a subclass that mirrors each record elsewhere, the mirror failing after the write
        def append(self, record, *, kind="decision"):
            receipt = super().append(record, kind=kind)
            if kind == "review_login":
                raise OSError("mirror unreachable")
            return receipt

    audit = Mirrored(tmp_path / "audit.jsonl")
    c = client_for(guard_queue(tmp_path / "q.sqlite3", audit=audit))
    with caplog.at_level(logging.WARNING, logger="hguard.review"):
        login(c)  # on record: the login goes on
    assert [x["kind"] for x in audit][-1] == "review_login"
    assert "is written to the audit log" in caplog.text and "mirror unreachable" in caplog.text


def test_a_login_whose_append_raises_a_raw_os_error_is_refused_as_not_recorded(queue, audit, monkeypatch, caplog):
    """Not only an AuditError: an append raising an OSError of its own (a disk error surfacing raw) gets no session."""
    c = client_for(queue)
    csrf = csrf_of(c.get("/login").text)

    def append(record, *, kind="decision"):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(queue.audit, "append", append)
    with caplog.at_level(logging.ERROR, logger="hguard.review"):
        r = c.post("/login", data={"token": TOKEN, "csrf_token": csrf, "next": "/"}, headers=SAME_ORIGIN)
    assert r.status_code == 503 and web.SESSION_COOKIE not in c.cookies
    assert "could not be written (OSError: [Errno 5] Input/output error); fix the audit log" in html.unescape(r.text)
    assert "review login from 127.0.0.1 refused" in caplog.text and "Input/output error" in caplog.text


@pytest.mark.parametrize("failure", [AuditError(DISK_FULL), OSError(errno.EIO, "Input/output error"),
                                     PermissionError(errno.EACCES, "Permission denied")])  # fmt: skip
def test_a_verdict_whose_record_cannot_be_written_is_not_recorded_says_why_and_is_logged(queue, audit, monkeypatch,
                                                                                        caplog, failure):  # fmt: skip
    """A verdict's append raising anything but an HGuardError (a disk error surfacing raw as an OSError) gave
    Starlette's bare 500 and told the operator nothing. It gets the page's own answer, as an AuditError does: not
    recorded, why, the item still pending (the queue's transaction rolled back), and the error in the server's log."""
    c = client_for(queue)
    login(c)
    form = decide_form(c, "low", verdict="hallucinated", note="made up")

    def append(record, *, kind="decision"):
        raise failure

    monkeypatch.setattr(queue.audit, "append", append)
    with caplog.at_level(logging.ERROR, logger="hguard.review"):
        r = c.post("/items/low", data=form, headers=SAME_ORIGIN)
    assert_error_page(r, 503)  # the log, not the queue: as a login that cannot be recorded
    shown = html.unescape(r.text)
    why = DISK_FULL if isinstance(failure, AuditError) else f"{type(failure).__name__}: {failure}"
    assert (
        f"Not recorded: review queue review.sqlite3: the verdict on item 'low' was not recorded because the audit log "
        f"audit.jsonl could not be written ({why}); the item is still pending, fix the audit log and decide again" in shown
    )
    assert str(audit.path.parent) not in shown and '<textarea name="note" dir="auto">made up</textarea>' in r.text  # kept
    (logged,) = [x for x in caplog.records if x.name == "hguard.review._app"]
    assert logged.levelno == logging.ERROR and "verdict hallucinated by 'alice' on review item 'low' not recorded" in logged.message
    assert why in logged.message
    assert queue.get("low").status == "pending" and not [x for x in audit if x["kind"] == "review_verdict"]
    monkeypatch.undo()  # the log fixed: the same verdict is recorded, nothing of the first try in the way
    r = c.post("/items/low", data=decide_form(c, "low", verdict="hallucinated"), headers=SAME_ORIGIN)
    assert r.status_code == 303 and queue.get("low").verdict.verdict == "hallucinated"
    assert [x["item_id"] for x in audit if x["kind"] == "review_verdict"] == ["low"] and verify(audit.path).ok


def unreadable(queue, monkeypatch, failure):
    """The queue's audit log failing to be read: ``failure`` raised by its reader after one record (a disk error or a
    permission surfacing raw), or, for ``"damaged"``, a line of the file itself that is not a record (returned: undo)."""
    if failure == "damaged":
        before = queue.audit.path.read_bytes()
        queue.audit.path.write_bytes(before + b"\xff\xfe{not a record\n")
        return lambda: queue.audit.path.write_bytes(before)
    history = queue.audit.history

    def failing(since=None):
        yield next(history())
        raise failure

    monkeypatch.setattr(queue.audit, "history", failing)
    return monkeypatch.undo


READ_FAILURES = [OSError(errno.EIO, "Input/output error"), PermissionError(errno.EACCES, "Permission denied"), "damaged"]


def said_why(failure) -> str:
    if failure == "damaged":
        return "audit.jsonl line 6: "
    return f"{type(failure).__name__}: {failure}; check that this process may read it and the disk it is on"


def assert_error_page(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'") and r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store" and r.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("failure", READ_FAILURES)
def test_an_item_whose_audit_log_cannot_be_read_gets_a_503_page_naming_the_log(queue, audit, monkeypatch, caplog,
                                                                               failure):  # fmt: skip
    """The item page reads the log (is a verdict refused? the earlier turns?): a log that could not be read answered
    Starlette's bare 500 (a raw OSError) with no word to the reviewer. It is the project's 503 page naming the log and
    what to do, the item not shown without its check, and the error in the server's log."""
    c = client_for(queue)
    login(c)
    unreadable(queue, monkeypatch, failure)
    with caplog.at_level(logging.ERROR, logger="hguard.review"):
        r = c.get("/items/low")
    assert_error_page(r, 503)
    shown = html.unescape(r.text)
    assert "<title>Audit log unavailable" in shown and "Question low?" not in shown
    assert ("review queue review.sqlite3: could not check item 'low' against its decision record: the audit log "
            f"audit.jsonl could not be read ({said_why(failure)}") in shown  # fmt: skip
    assert shown.count("fix the audit log and try again") == 1 and str(audit.path.parent) not in shown
    (logged,) = [x for x in caplog.records if x.name == "hguard.review._app"]
    assert logged.levelno == logging.ERROR and "review item 'low' not shown" in logged.message
    assert logged.exc_info is not None and "audit.jsonl could not be read" in logged.message


@pytest.mark.parametrize("failure", READ_FAILURES)
@pytest.mark.parametrize("decided_without_log", [False, True])
def test_a_verdict_whose_audit_log_cannot_be_read_is_not_recorded_says_why_and_is_recorded_once_fixed(
        queue, audit, monkeypatch, caplog, failure, decided_without_log):  # fmt: skip
    """A verdict reads the log before it is recorded (the item's decision record; the verdicts on it): a log that
    could not be read answered a bare 500. It is the 503 page, the reviewer's form kept, nothing recorded (the item
    as it was), the error in the server's log; once the log is fixed the same verdict is recorded, once."""
    if decided_without_log:  # `hguard review decide --no-audit`: the page puts that verdict on record
        ReviewQueue(queue.path).decide("low", verdict="hallucinated", reviewer="bob")
    c = client_for(queue)
    login(c)
    form = decide_form(c, "low", verdict="hallucinated", note="made up")
    before = queue.get("low")
    fixed = unreadable(queue, monkeypatch, failure)
    log_bytes = audit.path.read_bytes()
    with caplog.at_level(logging.ERROR, logger="hguard.review"):
        r = c.post("/items/low", data=form, headers=SAME_ORIGIN)
    assert_error_page(r, 503)
    shown = html.unescape(r.text)
    assert ("Not recorded: review queue review.sqlite3: could not record the verdict on item 'low': the audit log "
            f"audit.jsonl could not be read ({said_why(failure)}") in shown  # fmt: skip
    assert shown.count("nothing was recorded; fix the audit log and decide again") == 1
    assert str(audit.path.parent) not in shown
    if not decided_without_log:  # the form is kept, to submit again (a decided item's page shows its verdict)
        assert '<textarea name="note" dir="auto">made up</textarea>' in r.text
    (logged,) = [x for x in caplog.records if x.name == "hguard.review._app"]
    assert logged.levelno == logging.ERROR and "verdict hallucinated by 'alice' on review item 'low' not recorded" in logged.message
    assert logged.exc_info is not None
    assert queue.get("low") == before and audit.path.read_bytes() == log_bytes  # nothing recorded, nothing changed
    fixed()
    r = c.post("/items/low", data=decide_form(c, "low", verdict="hallucinated"), headers=SAME_ORIGIN)
    assert r.status_code == 303 and queue.get("low").verdict.reviewer == "alice"
    assert [x["item_id"] for x in audit if x["kind"] == "review_verdict"] == ["low"] and verify(audit.path).ok


def test_login_lockout_is_per_client_address_and_loopback_is_one(queue):
    app = create_app(queue, token=TOKEN)
    attacker = TestClient(app, base_url=BASE, follow_redirects=False, client=("10.0.0.9", 40000))
    reviewer = TestClient(app, base_url=BASE, follow_redirects=False, client=("127.0.0.1", 50000))
    csrf = csrf_of(attacker.get("/login").text)
    for _ in range(10):
        r = attacker.post("/login", data={"token": "wrong-token-xxxxxxxx", "csrf_token": csrf}, headers=SAME_ORIGIN)
        assert r.status_code == 403
    r = attacker.post("/login", data={"token": TOKEN, "csrf_token": csrf}, headers=SAME_ORIGIN)
    assert r.status_code == 429 and "from this address" in r.text
    # Another address still logs in with the right token, and then reads the queue.
    login(reviewer)
    assert re.findall(r'data-item-id="([^"]+)"', reviewer.get("/").text) == ["high", "mid", "nodom", "low"]
    # ... and its own wrong tries are counted apart: nine of them do not lock it.
    other = TestClient(app, base_url=BASE, follow_redirects=False, client=("::1", 50001))
    csrf = csrf_of(other.get("/login").text)
    for _ in range(9):
        assert other.post("/login", data={"token": "nope-nope-nope-nope", "csrf_token": csrf},
                          headers=SAME_ORIGIN).status_code == 403  # fmt: skip
    login(other)
    # every loopback address is one client: a local process guessed 10 tokens a minute from each of 127.0.0.0/8
    # (380 guesses in a minute), so the tenth wrong token from any of them locks them all
    local = TestClient(app, base_url=BASE, follow_redirects=False, client=("127.0.0.77", 50002))
    csrf = csrf_of(local.get("/login").text)
    assert local.post("/login", data={"token": "nope-nope-nope-nope", "csrf_token": csrf},
                      headers=SAME_ORIGIN).status_code == 403  # fmt: skip
    r = local.post("/login", data={"token": TOKEN, "csrf_token": csrf}, headers=SAME_ORIGIN)
    assert r.status_code == 429


def test_lockout_table_stays_bounded(queue, monkeypatch):
    monkeypatch.setattr(_auth, "_MAX_TRACKED_CLIENTS", 3)
    auth = _auth._Auth(TOKEN)
    for _ in range(10):
        auth.note_failure("locked")
    for i in range(5):
        auth.note_failure(f"10.0.0.{i}")
    assert len(auth._failures) == 3
    assert auth.login_locked("locked") is False  # the stalest client was forgotten, not a fresh one
    assert auth.login_locked("10.0.0.4") is False and "10.0.0.4" in auth._failures


def test_login_redirect_stays_on_this_server(queue):
    c = client_for(queue)
    csrf = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"token": TOKEN, "csrf_token": csrf, "next": "//evil.example/x"}, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_logout_ends_the_session(queue):
    c = client_for(queue)
    login(c)
    kept = c.cookies.get(web.SESSION_COOKIE)  # a copy of the session cookie, taken before logging out
    # put back under the server's own domain, as a browser holds it, so that the next login's cookie replaces it
    # (httpx's jar kept a domain-less copy beside the new one and sent both: the stale one won on older test clients)
    domain = next(k.domain for k in c.cookies.jar if k.name == web.SESSION_COOKIE)
    csrf = csrf_of(c.get("/").text)
    assert c.post("/logout", data={"csrf_token": csrf}, headers=SAME_ORIGIN).status_code == 303
    r = c.get("/items/low")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fitems%2Flow"
    assert "Answer low" not in r.text
    c.cookies.set(web.SESSION_COOKIE, kept, domain=domain)  # it read the queue for 12 more hours
    r = c.get("/items/low")
    assert r.status_code == 303 and "Answer low" not in r.text
    login(c)  # a new session works
    assert "Answer low" in c.get("/items/low").text
    # nor after a restart of the server (the logout was held in memory): a restart ends every session
    fresh = client_for(queue)
    fresh.cookies.set(web.SESSION_COOKIE, kept)
    assert fresh.get("/items/low").status_code == 303


def test_app_audit_argument_logs_verdicts_of_a_queue_without_one(tmp_path):
    q = ReviewQueue(tmp_path / "q.sqlite3")
    q.enqueue(make_item("a"))
    audit = AuditLog(tmp_path / "web-audit.jsonl")
    log_decision(audit, make_item("a"))  # the guard's decision record, in the log the page is given
    c = client_for(q, audit=audit)
    login(c)
    assert c.post("/items/a", data=decide_form(c, "a", verdict="correct"), headers=SAME_ORIGIN).status_code == 303
    assert [r["item_id"] for r in audit if r["kind"] == "review_verdict"] == ["a"]


def test_short_token_is_refused(queue):
    with pytest.raises(InputError, match="at least 16 characters"):
        create_app(queue, token="changeme")


# ----------------------------------------------------------------------------------------------- binding


def test_server_binds_to_loopback_by_default_and_refuses_other_hosts(queue, monkeypatch):
    monkeypatch.setenv(web.TOKEN_ENV, TOKEN)
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    server = make_server(queue)
    assert (server.config.host, server.config.port) == ("127.0.0.1", 8765)
    assert server.config.app.state.writable is True and server.config.app.state.read_only_open is False
    with pytest.raises(InputError, match="refusing to serve the review queue on 0.0.0.0"):
        make_server(queue, host="0.0.0.0")
    with pytest.warns(UserWarning, match="reachable from other machines"):
        remote = make_server(queue, host="0.0.0.0", allow_remote=True)
    assert remote.config.host == "0.0.0.0"


def test_a_wrong_policy_or_queue_path_is_named_before_the_missing_token(tmp_path, monkeypatch):
    monkeypatch.delenv(web.TOKEN_ENV, raising=False)
    with pytest.raises(PolicyError, match="nope.toml"):
        make_server(tmp_path / "nope.toml")
    with pytest.raises(InputError, match="no review queue at .*nope.sqlite3: it does not exist"):
        make_server(tmp_path / "nope.sqlite3")
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_server_without_token_is_refused_unless_read_only_open(queue, monkeypatch):
    monkeypatch.delenv(web.TOKEN_ENV, raising=False)
    with pytest.raises(InputError, match=re.escape(MAKE_TOKEN)):
        make_server(queue)
    monkeypatch.setenv(web.TOKEN_ENV, "")  # empty counts as unset
    with pytest.raises(InputError, match="no review token is configured"):
        make_server(queue)
    server = make_server(queue, read_only_open=True)
    assert server.config.app.state.writable is False  # no token: nothing can be recorded
    assert server.config.app.state.read_only_open is True
    # Open reading is for this machine only, token or not.
    monkeypatch.setenv(web.TOKEN_ENV, TOKEN)
    with pytest.raises(InputError, match="refusing --read-only-open on 0.0.0.0"):
        make_server(queue, host="0.0.0.0", allow_remote=True, read_only_open=True)


def test_missing_queue_file_or_folder_is_an_error_not_a_new_queue(tmp_path, monkeypatch):
    monkeypatch.setenv(web.TOKEN_ENV, TOKEN)
    missing_dir = tmp_path / "no-such-dir"
    with pytest.raises(InputError, match=f"folder that does not exist \\({re.escape(str(missing_dir))}\\)"):
        make_server(missing_dir / "q.sqlite3")
    with pytest.raises(InputError, match="no review queue at .*q.sqlite3: it does not exist"):
        make_server(tmp_path / "q.sqlite3")
    with pytest.raises(InputError, match="is a folder, not a queue file"):
        make_server(tmp_path)
    with pytest.raises(InputError, match="the audit log .* is in a folder that does not exist"):
        make_server(ReviewQueue(tmp_path / "real.sqlite3"), audit=missing_dir / "audit.jsonl")
    assert not missing_dir.exists() and not (tmp_path / "q.sqlite3").exists()


def test_policy_queue_is_created_only_where_its_folder_exists(tmp_path, monkeypatch):
    monkeypatch.setenv(web.TOKEN_ENV, TOKEN)
    policy = tmp_path / "policy.toml"
    policy.write_text('version = 1\n[review]\nqueue = "runs/rq.sqlite3"\n[audit]\npath = "runs/pa.jsonl"\n')
    with pytest.raises(InputError, match=r"review.queue in .*policy.toml.*mkdir -p"):
        make_server(policy)
    assert not (tmp_path / "runs").exists()  # neither the queue's folder nor the audit log's was created
    (tmp_path / "runs").mkdir()
    server = make_server(policy)
    assert server.config.app.state.queue.path == tmp_path / "runs" / "rq.sqlite3"
    assert (tmp_path / "runs" / "rq.sqlite3").is_file()


def test_server_reads_token_from_environment_and_queue_from_policy(tmp_path, monkeypatch):
    monkeypatch.setenv(web.TOKEN_ENV, TOKEN)
    policy = tmp_path / "policy.toml"
    policy.write_text('version = 1\n[review]\nqueue = "rq.sqlite3"\n[audit]\npath = "pa.jsonl"\n')
    server = make_server(policy, port=0)
    app = server.config.app
    assert app.state.writable is True
    assert app.state.queue.path == tmp_path / "rq.sqlite3"
    assert app.state.queue.audit.path == tmp_path / "pa.jsonl"


# ----------------------------------------------------------------------------------------------- command line


@pytest.fixture
def no_run(monkeypatch):
    """Stops `hguard review serve` at the point where it would start serving; records the server."""
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: started.append(self))
    return started


def test_cli_serve_without_token_refuses_to_start_with_one_line(queue, monkeypatch, capsys, no_run):
    monkeypatch.delenv(web.TOKEN_ENV, raising=False)
    assert review_cli(["serve", "--queue", str(queue.path), "--no-audit"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hguard review: error: no review token is configured")
    assert MAKE_TOKEN in err and "--read-only-open" in err
    assert no_run == []


def test_cli_serve_read_only_open_says_what_it_exposes(queue, monkeypatch, capsys, no_run):
    monkeypatch.delenv(web.TOKEN_ENV, raising=False)
    assert review_cli(["serve", "--queue", str(queue.path), "--no-audit", "--read-only-open", "--port", "0"]) == 0
    (server,) = no_run
    assert server.config.app.state.read_only_open is True and server.config.app.state.writable is False
    assert "ANY local process can read the queue; read-only" in capsys.readouterr().err
    monkeypatch.setenv(web.TOKEN_ENV, TOKEN)
    assert review_cli(["serve", "--queue", str(queue.path), "--audit", str(queue.audit.path), "--port", "0"]) == 0
    assert no_run[1].config.app.state.read_only_open is False
    assert f"reading and verdicts need the review token; verdicts logged to {queue.audit.path})" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["serve", "--no-audit"], ["list"], ["export", "--no-audit", "--out", "x.jsonl"]])
def test_cli_queue_in_a_missing_folder_is_an_error(tmp_path, monkeypatch, capsys, no_run, command):
    monkeypatch.setenv(web.TOKEN_ENV, TOKEN)
    target = tmp_path / "typo" / "review.sqlite3"
    assert review_cli([command[0], "--queue", str(target), *command[1:]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(target) in err and f"({target.parent})" in err and "--policy" in err
    assert not target.parent.exists() and no_run == []


def test_hguard_review_serve_without_token_exits_non_zero_without_traceback(queue, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != web.TOKEN_ENV}
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "hguard", "review", "serve", "--queue", str(queue.path), "--no-audit"],
        capture_output=True, text=True, env={**env, "HGUARD_THREADS": "1"}, cwd=root, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # exactly one line
    assert "Traceback" not in proc.stderr and MAKE_TOKEN in proc.stderr


def refusing_appends_to(path, monkeypatch):
    """``path`` read-only for this process (as a chmod 444 file is for any user but root): opened to append, refused."""
    real_open = os.open

    def opened(file, flags, *args, **kwargs):
        if os.fspath(file) == os.fspath(path) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", opened)


def keyed_queue(tmp_path, monkeypatch):
    """A queue whose audit log is written with an HMAC key, and a process without that key (HGUARD_KEY unset)."""
    for name in ("HGUARD_KEY", "HGUARD_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    q = guard_queue(tmp_path / "keyed.sqlite3", audit=AuditLog(tmp_path / "keyed.jsonl", key=b"k" * 32))
    q.enqueue(make_item("a"))
    return q


@pytest.mark.parametrize("case, cause, fix", [
    ("key", "carry a keyed MAC but no key is configured in this process", "set HGUARD_KEY_FILE"),
    ("anchor", "acknowledged records were cut off", "says what is missing: restore the log from a copy"),
    ("unwritable", "cannot open audit log {log} for appending: [Errno 13] Permission denied", "check its permissions"),
])  # fmt: skip
def test_a_server_whose_audit_log_would_refuse_its_records_does_not_start(queue, tmp_path, monkeypatch, case, cause,
                                                                          fix):  # fmt: skip
    """Every login and verdict is recorded in the audit log: a log that would refuse them (the HMAC key missing, the
    anchor's head cut off the log's end, a file this process cannot write) was found only at the first login or
    verdict. It is checked when the server is made, as a guard checks its log when it starts (check_writable)."""
    if case == "key":
        queue = keyed_queue(tmp_path, monkeypatch)
        log = queue.audit
    elif case == "anchor":
        log = AuditLog(tmp_path / "anchored.jsonl", anchor=tmp_path / "anchored.anchor")
        queue = guard_queue(tmp_path / "anchored.sqlite3", audit=log)
        queue.enqueue(make_item("a"))
        queue.enqueue(make_item("b"))
        log.path.write_bytes(b"".join(log.path.read_bytes().splitlines(keepends=True)[:-1]))  # the last record cut
    else:
        log = queue.audit
        refusing_appends_to(log.path, monkeypatch)
    before = log.path.read_bytes()
    with pytest.raises(AuditError) as info:
        make_server(queue.path, port=0, token=TOKEN, audit=log.path if case == "key" else log)  # the key: this process's
    said = str(info.value)
    # the log named once, by the cause (the lead named it too: "in the audit log X, which would refuse them: ...X...")
    assert said.startswith("not serving the review queue: every login and verdict is recorded in the audit log, "
                           "which would refuse them: ")  # fmt: skip
    assert said.count(str(log.path)) == (2 if case == "anchor" else 1)  # and in the anchor's `hguard audit verify LOG`
    assert said.count(str(log.path)) == 1 + said.count(f"verify {log.path}")
    assert cause.format(log=log.path) in said and fix in said and "\n" not in said
    # and how to serve it meanwhile, which the lines below do
    assert said.endswith(
        f"; or, to serve the queue read-only meanwhile (no login or verdict, so nothing recorded), "
        f"start it with --read-only-open (read_only_open=True) and {web.TOKEN_ENV} unset (token=None)"
    )
    assert log.path.read_bytes() == before  # nothing written
    # reading only (no token): no login or verdict is ever written, so the log is not in the way of reading the queue
    monkeypatch.delenv(web.TOKEN_ENV, raising=False)
    reader = make_server(queue.path, port=0, audit=log.path if case == "key" else log, read_only_open=True)
    assert reader.config.app.state.writable is False


def test_a_start_refusal_whose_cause_does_not_name_the_log_names_it_once(queue, monkeypatch):
    def check_writable():
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(queue.audit, "check_writable", check_writable)
    with pytest.raises(AuditError) as info:
        create_app(queue, token=TOKEN)
    said = str(info.value)
    assert (f"every login and verdict is recorded in the audit log {queue.audit.path}, which would refuse them: "
            "OSError: [Errno 5] Input/output error; or, to serve") in said and said.count(str(queue.audit.path)) == 1


@pytest.mark.parametrize("case", ["key", "unwritable"])
def test_cli_serve_refuses_to_start_on_an_audit_log_that_would_refuse_its_records(queue, tmp_path, monkeypatch,
                                                                                  capsys, no_run, case):  # fmt: skip
    monkeypatch.setenv(web.TOKEN_ENV, TOKEN)
    if case == "key":
        queue = keyed_queue(tmp_path, monkeypatch)
    else:
        refusing_appends_to(queue.audit.path, monkeypatch)
    assert review_cli(["serve", "--queue", str(queue.path), "--audit", str(queue.audit.path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "hguard review: error: not serving the review queue: every login and verdict is recorded in the audit log, "
        "which would refuse them: "
    )
    assert err.count(str(queue.audit.path)) == 1  # named once, by the cause
    assert ("set HGUARD_KEY_FILE" if case == "key" else "Permission denied") in err
    assert no_run == []
    # what it says to do to serve the queue meanwhile starts it, and the start line says that nothing is recorded
    assert f"start it with --read-only-open (read_only_open=True) and {web.TOKEN_ENV} unset (token=None)\n" in err
    monkeypatch.delenv(web.TOKEN_ENV)
    args = ["serve", "--queue", str(queue.path), "--audit", str(queue.audit.path), "--port", "0", "--read-only-open"]
    assert review_cli(args) == 0 and len(no_run) == 1 and no_run[0].config.app.state.writable is False
    started = capsys.readouterr().err
    assert "; read-only (HGUARD_REVIEW_TOKEN is not set); nothing is recorded: no login or verdict without the token)" in started
    assert "logged to" not in started


def test_hguard_review_serve_on_a_keyed_log_without_the_key_exits_non_zero_without_traceback(tmp_path, monkeypatch):
    queue = keyed_queue(tmp_path, monkeypatch)
    env = {k: v for k, v in os.environ.items() if k not in ("HGUARD_KEY", "HGUARD_KEY_FILE")}
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "hguard", "review", "serve", "--queue", str(queue.path), "--audit", str(queue.audit.path),
         "--port", "0"],
        capture_output=True, text=True, env={**env, web.TOKEN_ENV: TOKEN, "HGUARD_THREADS": "1"}, cwd=root, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # exactly one line
    assert "Traceback" not in proc.stderr and "hguard review: serving" not in proc.stderr
    assert "the audit log, which would refuse them: " in proc.stderr and "HGUARD_KEY_FILE" in proc.stderr
    assert proc.stderr.count(str(queue.audit.path)) == 1


def test_a_verdict_on_an_item_edited_in_the_queue_file_is_refused_as_a_conflict(queue, audit):
    import sqlite3

    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET answer = 'about 27 mg' WHERE id = 'low'")
    c = client_for(queue, audit=audit)
    login(c)
    r = c.post("/items/low", data=decide_form(c, "low", verdict="correct"), headers=SAME_ORIGIN)
    assert r.status_code == 409 and "differs from its decision record" in r.text
    assert queue.get("low").status == "pending" and not [x for x in audit if x["kind"] == "review_verdict"]


def test_a_refusal_on_the_page_names_the_files_not_the_servers_folders(queue, audit):
    """A logged-in reviewer learns which file is wrong (its name), not where the server keeps it."""
    import sqlite3

    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET answer = 'about 27 mg' WHERE id = 'low'")
    c = client_for(queue, audit=audit)
    login(c)
    for r in (c.get("/items/low"), c.post("/items/low", data=decide_form(c, "low", verdict="correct"), headers=SAME_ORIGIN)):
        assert f"review queue {queue.path.name}:" in r.text, r.text
        assert str(queue.path.parent) not in r.text and str(queue.path.resolve().parent) not in r.text


def test_the_page_shows_the_turns_a_follow_up_refers_to_from_its_decision_record(tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    q = ReviewQueue(tmp_path / "review.sqlite3", audit=audit)
    item = make_item("x", question="And for children?")
    audit.append({"request_id": "x", "route": "review", **{k: item[k] for k in ("question", "context", "answer", "domain",
                 "risk", "signals", "reasons")}, "history": [{"role": "user", "content": "What is the <b>adult</b> dose?"},
                 {"role": "assistant", "content": "Two tablets."}]}, kind="decision")  # fmt: skip
    q.enqueue(item)
    c = client_for(q, audit=audit)
    login(c)
    page = c.get("/items/x").text
    assert 'id="history"' in page and "What is the &lt;b&gt;adult&lt;/b&gt; dose?" in page and "Two tablets." in page
    assert "A verdict cannot be recorded here" not in page
    q.enqueue(make_item("y"))  # no decision record: no turns, and the refusal as before
    page = c.get("/items/y").text
    assert 'id="history"' not in page and "A verdict cannot be recorded here" in page


def test_in_a_redacting_log_the_page_says_a_follow_up_has_earlier_turns_it_cannot_show(tmp_path):
    """The record holds the turns' hash: the page showed "And what about physiotherapy for her?" alone, with no word
    that earlier turns existed (a data-protection officer's trial)."""
    audit = AuditLog(tmp_path / "audit.jsonl", redact=True)
    q = ReviewQueue(tmp_path / "review.sqlite3", audit=audit)
    item = make_item("x", question="And for her?")
    audit.append({"request_id": "x", "route": "review", **{k: item[k] for k in ("question", "context", "answer", "domain",
                 "risk", "signals", "reasons")}, "fingerprints": {"history_fingerprint": "2-turns:0123abcd"},
                 "history": [{"role": "user", "content": "What may Johanna take?"}, {"role": "assistant", "content": "Rest."}]},
                 kind="decision")  # fmt: skip
    q.enqueue(item)
    c = client_for(q, audit=audit)
    login(c)
    page = c.get("/items/x").text
    assert 'id="history"' in page and "follows 2 earlier turn(s)" in page and "Johanna" not in page


def test_an_item_edited_in_the_queue_file_is_flagged_when_the_page_is_opened(queue, audit):
    import sqlite3

    c = client_for(queue, audit=audit)
    login(c)
    assert "differs from its decision record" not in c.get("/items/low").text  # unedited: no warning
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET answer = 'about 27 mg' WHERE id = 'low'")
    r = c.get("/items/low")
    assert r.status_code == 200
    assert "A verdict cannot be recorded here" in r.text and "differs from its decision record" in r.text


@pytest.mark.parametrize("edit", ["domain = 'chemistry'", "risk = 0.01", """reasons = '["grounded in an approved source"]'""",
                                  """signals = '{"h_neuron": 0.01, "entropy": 2.5, "grounding": null}'"""])
def test_an_item_whose_domain_risk_or_reasons_were_edited_in_the_queue_file_is_refused(queue, audit, edit):
    """What the page shows beside the answer sways the verdict: why the guard held it (reasons, signals) must be
    the decision record's too."""
    import sqlite3

    with sqlite3.connect(queue.path) as conn:
        conn.execute(f"UPDATE review_items SET {edit} WHERE id = 'low'")
    c = client_for(queue, audit=audit)
    login(c)
    field = edit.split()[0]
    assert f"the {field} of item &#39;low&#39; differs from its decision record" in c.get("/items/low").text
    r = c.post("/items/low", data=decide_form(c, "low", verdict="correct"), headers=SAME_ORIGIN)
    assert r.status_code == 409 and queue.get("low").status == "pending"


def test_a_domain_name_with_spaces_around_it_does_not_look_like_another(tmp_path, audit, capsys):
    """"policy " (a caller's typo, routed to review) showed as a second "policy" row on the page and in the list."""
    q = guard_queue(tmp_path / "spaces.sqlite3", audit=audit)
    q.enqueue(make_item("plain", domain="policy"))
    q.enqueue(make_item("spaced", domain="policy "))
    c = client_for(q)
    login(c)
    page = c.get("/").text
    assert "&#34;policy &#34;" in page and ">policy</a>" in page
    assert "&#34;policy &#34;" in c.get("/items/spaced").text
    from hguard.cli.review import main as review_cli

    assert review_cli(["list", "--queue", str(q.path)]) == 0
    out = capsys.readouterr().out
    assert '"policy ": 1 pending, 0 decided' in out and "policy: 1 pending, 0 decided" in out


def test_behind_a_tls_proxy_the_public_url_is_the_origin_and_cookies_are_secure(queue):
    """Behind a TLS proxy the server sees plain HTTP, so a browser's https Origin was refused on every POST (login
    included) and no cookie was Secure."""
    app = create_app(queue, token=TOKEN, public_url="https://review.example.org")
    c = TestClient(app, base_url="http://review.example.org", follow_redirects=False)  # as the proxy forwards it
    page = c.get("/login")
    assert page.status_code == 200 and "secure" in page.headers["set-cookie"].lower()
    from http.cookies import SimpleCookie

    def jar(*responses) -> str:  # the browser sends Secure cookies over https to the proxy; the test client would not
        cookies = SimpleCookie()
        for resp in responses:
            for header in resp.headers.get_list("set-cookie"):
                cookies.load(header)
        return "; ".join(f"{k}={m.value}" for k, m in cookies.items())

    public = {"Origin": "https://review.example.org", "Cookie": jar(page)}
    r = c.post("/login", data={"token": TOKEN, "csrf_token": csrf_of(page.text), "next": "/"}, headers=public)
    assert r.status_code == 303, r.text
    assert "secure" in r.headers["set-cookie"].lower()
    session = jar(page, r)
    index = c.get("/", headers={"Cookie": session})
    assert index.status_code == 200 and "data-item-id" in index.text
    # another origin is still refused, the plain-HTTP one included
    r = c.post("/logout", data={"csrf_token": csrf_of(index.text)},
               headers={"Origin": "http://review.example.org", "Cookie": session})
    assert r.status_code == 403 and "is not this server (https://review.example.org)" in r.text
    r = c.post("/logout", data={"csrf_token": csrf_of(index.text)},
               headers={"Origin": "https://review.example.org", "Cookie": session})
    assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()  # the deleting cookie too
    # the default port named (https://...:443): a browser's Origin leaves it out, and every login was refused
    on_443 = create_app(queue, token=TOKEN, public_url="https://review.example.org:443")
    c = TestClient(on_443, base_url="http://review.example.org", follow_redirects=False)
    page = c.get("/login")
    r = c.post("/login", data={"token": TOKEN, "csrf_token": csrf_of(page.text), "next": "/"},
               headers={"Origin": "https://review.example.org", "Cookie": jar(page)})
    assert r.status_code == 303, r.text
    for bad in ("review.example.org", "https://review.example.org/path", "ftp://x", "https://u@x.org"):
        with pytest.raises(InputError, match="public_url must be the address reviewers open"):
            create_app(queue, token=TOKEN, public_url=bad)


def test_a_server_error_page_carries_the_security_headers(queue):
    """The 500 page (the server's own, outside the app's middleware) had none of the headers, nor the traceback."""
    c = TestClient(create_app(queue, token=TOKEN), base_url=BASE, follow_redirects=False, raise_server_exceptions=False)
    login(c)
    queue.pending = None  # the queue breaks under the page
    r = c.get("/")
    assert r.status_code == 500 and r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["x-frame-options"] == "DENY" and "Traceback" not in r.text


def enqueue_given(queue, audit_id, served, **over):
    """An item whose decision judged an answer given to Guard.check (``served``: False for an evaluation's)."""
    item = make_item(audit_id, **over)
    fields = {k: item.get(k) for k in ("question", "context", "answer", "domain", "risk", "signals", "reasons")}
    queue.audit.append({"request_id": audit_id, "route": "review", **fields, "answer_source": "given",
                        "given_answer": {"tokens": 1, "own_tokens": 0, "served": served}}, kind="decision")
    ReviewQueue(queue.path, audit=queue.audit).enqueue(item)


def test_the_page_marks_an_evaluations_items_and_filters_them_as_the_cli_does(queue, audit, capsys):
    """A trial: `hguard review list` and `show` marked an evaluation's item (served=False: no user waits on it), the
    page did not, so a reviewer working from it could not tell it from a live held answer. The list marks it with the
    CLI's words and predicate, its domain's counts say how many are an evaluation's, ?evaluation=exclude|only filters
    as `list --evaluation` does (before the page's limit), and the item page says evaluation or live as `show` does.
    A decision record not found is taken as live; untrusted text stays escaped beside the mark."""
    enqueue_given(queue, "eval", False, risk=0.99, question=f"Eval {XSS}?", domain="medicine")
    enqueue_given(queue, "served", True, risk=0.98)
    ReviewQueue(queue.path, audit=audit).enqueue(make_item("ghost", risk=0.97))  # its decision is not in the log
    c = client_for(queue)
    login(c)
    page = c.get("/").text
    rows = dict(re.findall(r'<tr data-item-id="([^"]+)">(.*?)</tr>', page, re.S))
    assert [i for i, row in rows.items() if "[evaluation: served to no user]" in row] == ["eval"]
    assert XSS not in page and "Eval &lt;script&gt;" in page
    counts = page[page.index('id="counts"'): page.index("</table>")]
    assert re.search(r'medicine</a></td>.*?<td class="evaluation-count">1 pending, 0 decided</td>', counts, re.S)
    assert re.search(r'geography</a></td>.*?<td class="evaluation-count"></td>', counts, re.S)
    listed = lambda q: re.findall(r'data-item-id="([^"]+)"', c.get(f"/?{q}").text)  # noqa: E731
    assert listed("evaluation=only") == ["eval"]
    assert listed("evaluation=exclude") == ["served", "ghost", "high", "mid", "nodom", "low"]
    assert listed("evaluation=only&domain=geography") == []
    assert "Nothing is waiting for review in this domain among an evaluation&#39;s items." in \
        c.get("/?evaluation=only&domain=geography").text
    assert 'href="/?domain=medicine&amp;order=risk&amp;evaluation=only"' in c.get("/?evaluation=only").text
    r = c.get("/?evaluation=some")
    assert r.status_code == 400 and "evaluation must be &#39;exclude&#39; or &#39;only&#39;" in r.text
    # the item page says it in `hguard review show`'s words
    from hguard.review._items import evaluation_said

    for item_id, told in (("eval", True), ("served", False), ("high", False), ("ghost", None)):
        body = c.get(f"/items/{item_id}").text
        said = re.search(r'<dd id="evaluation">(.*?)</dd>', body).group(1)
        assert html.unescape(said) == evaluation_said(told, True), item_id
        assert ("[evaluation: served to no user]</strong></h1>" in body) == (told is True), item_id
    assert "cannot be told (its decision record is not in the audit log); take it as live" in evaluation_said(None, True)
    # the CLI reads it alike
    assert review_cli(["show", "eval", "--queue", str(queue.path), "--audit", str(audit.path)]) == 0
    assert "evaluation: " + evaluation_said(True, True) in capsys.readouterr().out
    # the decided page marks it too, as `list --decided` does
    ReviewQueue(queue.path, audit=audit).decide("eval", verdict="correct", reviewer="r")
    ReviewQueue(queue.path, audit=audit).decide("served", verdict="correct", reviewer="r")
    decided = c.get("/decided").text
    assert decided.count("[evaluation: served to no user]") == 1
    assert re.search(r'\[evaluation: served to no user\]</strong> <a href="/items/eval">', decided)


def test_the_decided_page_filters_an_evaluations_items_and_headings_say_what_the_filter_leaves(queue, audit):
    """An ops trial: /decided?evaluation=only listed every verdict (the filter ignored, none offered) while
    /?evaluation=bogus was a 400 and `review list --decided --evaluation only` filtered; and under a filter the
    pending page's heading said "Pending review (16)" above 2 rows. /decided filters as the pending page does (a bad
    value refused alike), and each heading says how many rows the filter leaves of how many."""
    enqueue_given(queue, "eval", False, risk=0.99, domain="medicine")
    enqueue_given(queue, "served", True, risk=0.98)
    c = client_for(queue)
    login(c)
    heading = lambda body: html.unescape(re.search(r"<h1>(.*?)</h1>", body, re.S).group(1))  # noqa: E731
    assert heading(c.get("/").text) == 'Pending review <span class="muted count">(6)</span>'
    assert heading(c.get("/?evaluation=only").text).endswith("(1 of 6: an evaluation's items only)</span>")
    assert heading(c.get("/?evaluation=exclude").text).endswith("(5 of 6: an evaluation's items left out)</span>")
    assert "The counts above are unfiltered" in c.get("/?evaluation=only").text
    assert "The counts above are unfiltered" not in c.get("/").text
    live_medicine = len(queue.pending("medicine", limit=None)) - 1  # all but "eval"
    assert heading(c.get("/?domain=medicine&evaluation=exclude").text).endswith(
        f"({live_medicine} of 6: an evaluation's items left out, in medicine)</span>")
    assert heading(c.get("/?domain=geography").text).endswith(
        f"({len(queue.pending('geography', limit=None))} of 6: in geography)</span>")
    for item_id in ("eval", "served", "high"):
        ReviewQueue(queue.path, audit=audit).decide(item_id, verdict="correct", reviewer="r")
    decided = lambda q: re.findall(r'<a href="/items/([^"]+)">', c.get(f"/decided{q}").text)  # noqa: E731
    assert sorted(decided("")) == ["eval", "high", "served"]
    assert decided("?evaluation=only") == ["eval"]
    assert sorted(decided("?evaluation=exclude")) == ["high", "served"]
    body = c.get("/decided?evaluation=only").text
    assert heading(body).endswith("(1 of 3: an evaluation's items only)</span>")
    assert 'href="/decided?evaluation=exclude"' in body and 'id="evaluation-only"' in body
    assert heading(c.get("/decided").text).endswith("(latest 3)</span>")
    r = c.get("/decided?evaluation=bogus")
    assert r.status_code == 400 and "evaluation must be &#39;exclude&#39; or &#39;only&#39;, got &#39;bogus&#39;" in r.text


def test_the_decided_page_filters_by_domain_as_the_pending_page_does(queue, audit):
    """/decided had no domain filter while / has one: ?domain=NAME (``-``: the items without one) lists that domain's
    verdicts, offered as the pending page offers it (one link per domain of the queue, with the evaluation filter
    kept), the heading saying how many it leaves of how many, with the evaluation filter too."""
    enqueue_given(queue, "eval", False, risk=0.99, domain="medicine")
    for item_id in ("eval", "mid", "high", "nodom"):
        ReviewQueue(queue.path, audit=audit).decide(item_id, verdict="correct", reviewer="r")
    c = client_for(queue)
    login(c)
    decided = lambda q: sorted(re.findall(r'<a href="/items/([^"]+)">', c.get(f"/decided{q}").text))  # noqa: E731
    heading = lambda q: html.unescape(re.search(r"<h1>(.*?)</h1>", c.get(f"/decided{q}").text, re.S).group(1))  # noqa: E731
    assert decided("") == ["eval", "high", "mid", "nodom"]
    assert decided("?domain=medicine") == ["eval", "mid"] and decided("?domain=geography") == ["high"]
    assert decided("?domain=-") == ["nodom"] and decided("?domain=medicine&evaluation=exclude") == ["mid"]
    assert heading("?domain=medicine").endswith("(2 of 4: in medicine)</span>")
    assert heading("?domain=medicine&evaluation=only").endswith("(1 of 4: an evaluation's items only, in medicine)</span>")
    assert heading("").endswith("(latest 4)</span>")
    body = c.get("/decided?evaluation=only").text
    for link in ('href="/decided?evaluation=only" class="active">all</a>',
                 'href="/decided?domain=medicine&amp;evaluation=only"\n class="">medicine</a>',
                 'href="/decided?domain=-&amp;evaluation=only"\n class="">(no domain)</a>'):
        assert link in body, link
    assert 'href="/decided?domain=geography"\n class="active">geography</a>' in c.get("/decided?domain=geography").text
    assert "No verdicts yet in this domain." in c.get("/decided?domain=nowhere").text
    # the pending page's links are the same markup (one macro): its own filters still read as before
    page = c.get("/?order=time&evaluation=only").text
    assert 'href="/?domain=geography&amp;order=time&amp;evaluation=only"\n class="">geography</a>' in page
    assert 'href="/?order=time&amp;evaluation=only" class="active">all</a>' in page


def test_a_page_load_reads_only_what_was_appended_to_the_audit_log_and_a_changed_log_anew(queue, audit, monkeypatch):
    """The pending and decided pages read the whole audit log on each load (20 -> 175 ms at 5,000 items). A load reads
    only the lines appended since the last one, and none when nothing was: a record appended after the first load
    appears; a rotated log's fresh file is read from its start (its archive, the file that was the log, not again); a
    log edited in place (a line damaged before the last read ended) is refused as a full read refuses it, and read
    anew once put back; one truncated and rewritten is read anew."""
    import hguard._audit_files as files

    c = client_for(queue)
    login(c)
    parsed: list[dict] = []  # each line the page parsed; each load parses each file's first line (is it a rotation's?)
    parse = files._parse_line
    monkeypatch.setattr(files, "_parse_line", lambda raw, canonical=True: (parsed.append(raw), parse(raw, canonical))[1])
    read = lambda files=1: [json.loads(raw) for raw in parsed[files:]]  # noqa: E731 - those read past the openings'

    listed = lambda q="": re.findall(r'data-item-id="([^"]+)"', c.get(f"/{q}").text)  # noqa: E731
    marked = lambda q="": [i for i, row in re.findall(r'<tr data-item-id="([^"]+)">(.*?)</tr>', c.get(f"/{q}").text,  # noqa: E731
                                                      re.S) if "[evaluation: served to no user]" in row]
    assert listed("?evaluation=only") == []
    assert len(read()) == len(audit.path.read_bytes().splitlines())  # the first load reads the whole log
    for url in ("/?evaluation=only", "/", "/decided"):
        parsed.clear()
        assert c.get(url).status_code == 200 and read() == [], url  # nothing appended: nothing read
    parsed.clear()
    enqueue_given(queue, "eval", False, risk=0.99)  # appended after the first load: it appears, marked
    parsed.clear()
    assert listed("?evaluation=only") == ["eval"]
    assert [(rec["kind"], rec.get("question")) for rec in read()] == [("decision", "Question eval?")]  # that line alone
    assert marked() == ["eval"]
    # rotated: the fresh file is read (its first record), the archive (the log it was) is not read again
    audit.rotate()
    enqueue_given(queue, "eval2", False, risk=0.98)
    parsed.clear()
    assert listed("?evaluation=only") == ["eval", "eval2"]
    assert [rec["kind"] for rec in read(files=2)] == ["log_continued", "decision"]
    # a line read before damaged in place (the file's size and identity unchanged): refused as a full read refuses it
    archive = next(audit.path.parent.glob("audit.*-*.jsonl"))
    before = audit.path.read_bytes()
    lines = before.splitlines(keepends=True)
    audit.path.write_bytes(lines[0] + b"x" + lines[1][1:] + b"".join(lines[2:]))  # the same size
    r = c.get("/?evaluation=only")
    assert_error_page(r, 503)
    assert "audit.jsonl line 2: damaged" in html.unescape(r.text)
    assert "Which items are an evaluation's (served to no user) cannot be told" in html.unescape(c.get("/").text)
    audit.path.write_bytes(before)  # put back: read anew
    parsed.clear()
    assert listed("?evaluation=only") == ["eval", "eval2"] and len(read(files=2)) == 2
    # truncated and rewritten in place (the decision of eval2 gone): read anew, eval2 now live (its decision not found)
    audit.path.write_bytes(lines[0])
    assert listed("?evaluation=only") == ["eval"]
    assert archive.is_file()


def test_the_item_page_and_a_verdict_read_only_what_was_appended_to_the_audit_log_and_an_edited_log_anew(queue, audit,
                                                                                                         monkeypatch):
    """The item page and a verdict posted read the whole audit log on each request (the item's decision record, the
    verdicts on it: 3.4 s at 50,000 items), as the lists did before they kept what they read. They read with the
    lists' reader: only the lines appended since the last read, none when nothing was; a decision or a verdict
    appended since is seen (a verdict the queue never committed refuses another, on the page and when posted); a log
    edited in place is read anew: a damaged line refused (503, nothing recorded), a decision record edited so that it
    still parses refused as failing its own check, as a full read refuses them; put back, it is read anew."""
    import sqlite3

    import hguard._audit_files as files

    c = client_for(queue)
    login(c)
    parsed: list[bytes] = []  # each line parsed; each read also parses the log's first line (is it a rotation's?)
    parse = files._parse_line
    monkeypatch.setattr(files, "_parse_line", lambda raw, canonical=True: (parsed.append(raw), parse(raw, canonical))[1])
    opening = audit.path.read_bytes().split(b"\n", 1)[0]
    read = lambda: [json.loads(raw) for raw in parsed if raw != opening]  # noqa: E731 - those read past the opening
    refused = "A verdict cannot be recorded here"

    assert refused not in c.get("/items/low").text  # the first request reads the whole log
    parsed.clear()
    r = c.get("/items/low")
    assert r.status_code == 200 and refused not in r.text and read() == []  # nothing appended: nothing read
    queue.enqueue(make_item("new"))  # its decision appended: seen, that line alone read
    parsed.clear()
    r = c.get("/items/new")
    assert r.status_code == 200 and refused not in r.text
    assert [(rec["kind"], rec.get("question")) for rec in read()] == [("decision", "Question new?")]
    # a verdict on mid logged by another process that stopped before the queue committed it: seen, and it refuses
    ReviewQueue(queue.path, audit=audit).decide("mid", verdict="correct", reviewer="bob")
    with sqlite3.connect(queue.path) as conn:
        conn.execute("UPDATE review_items SET status='pending', verdict=NULL, reviewer=NULL, decided_at=NULL, "
                     "verdict_audit_id=NULL, verdict_audit_hash=NULL WHERE id = 'mid'")
    parsed.clear()
    r = c.get("/items/mid")
    assert refused in r.text and "already holds a verdict on the decision item 'mid' judges" in html.unescape(r.text)
    assert [(rec["kind"], rec["reviewer"]) for rec in read()] == [("review_verdict", "bob")]
    form = decide_form(c, "mid", verdict="hallucinated")
    parsed.clear()
    r = c.post("/items/mid", data=form, headers=SAME_ORIGIN)
    assert r.status_code == 409 and "already holds a verdict" in html.unescape(r.text) and read() == []
    assert queue.get("mid").status == "pending"
    form = decide_form(c, "new", verdict="correct")
    parsed.clear()
    assert c.post("/items/new", data=form, headers=SAME_ORIGIN).status_code == 303 and read() == []
    parsed.clear()
    assert refused not in c.get("/items/low").text  # the verdict on new, appended by the post, read alone
    assert [(rec["kind"], rec["item_id"], rec["reviewer"]) for rec in read()] == [("review_verdict", "new", "alice")]
    # a line read before damaged in place (the file's size and identity unchanged): refused, nothing recorded
    before = audit.path.read_bytes()
    lines = before.splitlines(keepends=True)
    assert b'"id":"high","kind":"decision"' in lines[1]  # high's decision, read by every request since the first
    form = decide_form(c, "low", verdict="correct")
    audit.path.write_bytes(lines[0] + b"x" + lines[1][1:] + b"".join(lines[2:]))
    r = c.get("/items/low")
    assert_error_page(r, 503)
    assert "audit.jsonl line 2: damaged" in html.unescape(r.text)
    r = c.post("/items/low", data=form, headers=SAME_ORIGIN)
    assert r.status_code == 503 and "Not recorded" in r.text and "audit.jsonl line 2: damaged" in html.unescape(r.text)
    # edited in place so that it still parses (low's answer): read anew, the record fails its own check
    assert before.count(b"Answer low.") == 1
    audit.path.write_bytes(before.replace(b"Answer low.", b"Answer lol."))
    r = c.get("/items/low")
    assert r.status_code == 200 and refused in r.text and "fails its own check" in r.text
    r = c.post("/items/low", data=form, headers=SAME_ORIGIN)
    assert r.status_code == 409 and "fails its own check" in r.text
    assert queue.get("low").status == "pending" and [x["item_id"] for x in audit if x["kind"] == "review_verdict"] == [
        "mid", "new"]
    audit.path.write_bytes(before)  # put back: read anew, and the verdict is recorded
    parsed.clear()
    assert refused not in c.get("/items/low").text and len(read()) >= len(lines) - 1
    assert c.post("/items/low", data=form, headers=SAME_ORIGIN).status_code == 303
    assert queue.get("low").verdict.verdict == "correct" and verify(audit.path).ok


def test_the_pending_page_counts_an_evaluations_items_without_reading_every_item_whole(queue, audit, monkeypatch):
    """The pending page's per-domain counts of an evaluation's items read every item of the queue whole (question,
    passage, answer, signals: most of a 3.4 s load at 50,000 items) for its id, decision, domain and status.
    It reads those alone (ReviewQueue.item_keys); the page lists the first 500 whole, as before, and the counts are
    the same."""
    enqueue_given(queue, "eval", False, risk=0.99, domain="medicine")
    ReviewQueue(queue.path, audit=audit).decide("eval", verdict="correct", reviewer="r")
    enqueue_given(queue, "eval2", False, risk=0.98, domain="medicine")
    c = client_for(queue)
    login(c)
    whole: list = []
    for name in ("pending", "decided"):
        read = getattr(queue, name)
        monkeypatch.setattr(queue, name, lambda *a, _read=read, _name=name, **kw: (whole.append((_name, a, kw)),
                                                                                   _read(*a, **kw))[1])
    page = c.get("/").text
    counts = page[page.index('id="counts"'): page.index("</table>")]
    assert re.search(r'medicine</a></td>.*?<td class="evaluation-count">1 pending, 1 decided</td>', counts, re.S)
    assert whole == [("pending", (None, "risk", 501), {})]  # the listed page's items alone


def test_the_page_without_the_audit_log_cannot_tell_an_evaluations_items_and_refuses_the_filter(tmp_path):
    """Without the audit log which items are an evaluation's cannot be told: none is marked, the item page says so and
    how to give the log, no filter is offered and one asked for is refused in one line naming the fix."""
    q = ReviewQueue(tmp_path / "review.sqlite3")
    q.enqueue(make_item("one"))
    c = client_for(q)
    login(c)
    page = c.get("/").text
    assert "[evaluation" not in page and 'id="evaluation-only"' not in page and "Of them an evaluation" not in page
    for url in ("/?evaluation=only", "/decided?evaluation=only"):
        r = c.get(url)
        assert r.status_code == 400 and "evaluation=only needs the audit log" in r.text and "--audit LOG" in r.text
    assert 'id="evaluation-only"' not in c.get("/decided").text
    assert ("cannot be told without the audit log (give --policy FILE or --audit LOG); take it as live: a user may "
            "wait") in c.get("/items/one").text


@pytest.mark.parametrize("failure", READ_FAILURES)
def test_the_list_whose_audit_log_cannot_be_read_takes_every_item_as_live_and_says_why(queue, audit, monkeypatch,
                                                                                       caplog, failure):
    """The list reads the audit log to mark an evaluation's items: a log that cannot be read leaves every item live
    (a user may wait), said on the page and in the server's log; the filter, which cannot be applied, is a 503."""
    enqueue_given(queue, "eval", False)
    c = client_for(queue)
    login(c)
    unreadable(queue, monkeypatch, failure)
    with caplog.at_level(logging.ERROR, logger="hguard.review"):
        r = c.get("/")
    assert r.status_code == 200 and "[evaluation: served to no user]" not in r.text
    assert set(re.findall(r'data-item-id="([^"]+)"', r.text)) == {"eval", "high", "mid", "nodom", "low"}
    shown = html.unescape(r.text)
    assert "Which items are an evaluation's (served to no user) cannot be told: review queue review.sqlite3" in shown
    assert "Each is taken as live (a user may wait)." in shown and str(audit.path.parent) not in shown
    assert any("which items are an evaluation's not told" in x.message for x in caplog.records)
    assert_error_page(c.get("/?evaluation=exclude"), 503)
    assert_error_page(c.get("/decided?evaluation=exclude"), 503)
    assert "[evaluation" not in c.get("/decided").text
