"""The command line as scripts use it: JSON shapes of `ask`, `evaluate`, the
demo, and clear errors, on the real default model with the reference probes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hguard import REFERENCE_PROBES as PROBES
from hguard import policy_copy

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.default_model


def hguard(*args, check=True, timeout=600):
    r = subprocess.run(
        [sys.executable, "-m", "hguard", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**__import__("os").environ, "HGUARD_THREADS": "1"},
    )
    if check and r.returncode != 0:
        raise AssertionError(f"hguard {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def test_ask_json_prints_the_whole_result(tmp_path):
    ctx = tmp_path / "ctx.txt"
    ctx.write_text("Canberra is the capital city of Australia.")
    pol = policy_copy(tmp_path)
    r = hguard("ask", "What is the capital of Australia?", "--context", str(ctx), "--domain", "general", "--policy", str(pol), "--json")
    res = json.loads(r.stdout)
    assert {"answer", "route", "risk", "signals", "reasons", "domain", "audit_id"} <= set(res)
    assert res["route"] in ("accept", "review", "abstain") and res["domain"] == "general"
    assert {"neuron_risk", "mean_logprob", "grounding_lexical", "grounding_embedding", "grounding"} <= set(res["signals"])
    v = hguard("audit", "verify", str(tmp_path / "audit.jsonl"))
    assert "OK, 1 records, hash chain intact" in v.stdout
    # the plain output shows a held answer to the operator, beside the message users see (a README walk-through:
    # the reasons quoted the answer's figures, and only --json showed the answer they referred to)
    plain = hguard("ask", "What is the capital of Australia?", "--context", str(ctx), "--domain", "general", "--policy",
                   str(pol)).stdout.splitlines()
    assert res["route"] != "accept" and plain[0] == "This answer is held until a reviewer has checked it."
    assert plain[1].startswith("held answer, not shown to users: ") and plain[2].startswith("[route=")


def test_ask_scores_an_answer_given_in_a_file_as_the_guard_scored_its_own(tmp_path):
    # `hguard ask --answer FILE` scores an answer produced elsewhere (Guard.check): the guard's own answer, saved with
    # the line end an editor adds, decides as the guard decided it; an edited one goes to review, its record says so
    pol = policy_copy(tmp_path)
    q = ["What is the capital of France?", "--domain", "geography", "--policy", str(pol), "--json"]
    own = json.loads(hguard("ask", *q).stdout)
    saved = tmp_path / "answer.txt"
    saved.write_text(own["answer"] + "\n")
    again = json.loads(hguard("ask", *q, "--answer", str(saved)).stdout)
    assert (again["route"], again["reasons"]) == (own["route"], own["reasons"]) and again["answer"] == own["answer"]
    assert again["risk"] == pytest.approx(own["risk"], abs=1e-6)
    assert (own["answer_source"], again["answer_source"]) == ("generated", "given")  # as their records say
    saved.write_text("The capital of France is Marseille, a city in the south of the country.")
    other = json.loads(hguard("ask", *q, "--answer", str(saved)).stdout)
    assert other["route"] == "review" and any("tokens differ from its greedy choice" in r for r in other["reasons"])
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    decisions = [r for r in records if r.get("kind") == "decision"]
    assert [d.get("answer_source") for d in decisions] == [None, "given", "given"]
    assert decisions[2]["given_answer"]["own_tokens"] < decisions[2]["given_answer"]["tokens"]
    assert [d["given_answer"]["served"] for d in decisions[1:]] == [False, False]  # an evaluation unless --served


def test_evaluate_json_contract(tmp_path):
    rows = [json.loads(l) for l in (ROOT / "calibration" / "data" / "chemistry.jsonl").read_text().splitlines()[:12]]
    data = tmp_path / "chem.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = hguard("evaluate", "--probes", "package:smollm2-135m", "--data", str(data), "--json")  # as a policy names it
    res = json.loads(r.stdout)
    m = res["domains"]["chemistry"]
    assert m["n"] == 12 and 0 <= m["hallucination_rate"] <= 1 and 0 <= m["refusal_rate"] <= 1
    assert m["correct"] + m["hallucinated"] == m["n_scored"] and m["refusals"] == m["n"] - m["n_scored"]
    assert set(m["auroc"]) >= {"probe", "merged", "mean_logprob", "min_logprob", "entropy", "length", "random_neurons"}
    # every answer with the judge's label and reason, so a user can check the judge on their rows
    assert [a["id"] for a in m["answers"]] == [r["id"] for r in rows]
    assert all(a["label"] in ("correct", "hallucinated", "refusal") and a["judge_reason"] for a in m["answers"])
    assert all((a["merged_risk"] is None) == (a["label"] == "refusal") for a in m["answers"])
    # and where the probe file's thresholds route each (a reply that declines abstains; a far one reviews)
    from hguard.domain import CalibratedDomain

    th = CalibratedDomain.load(PROBES / "chemistry.json").thresholds
    for a in m["answers"]:
        if a["label"] == "refusal":
            assert a["route_at_probe_thresholds"] == "abstain" and a["ood_distance"] is None
        elif a["out_of_distribution"]:
            assert a["route_at_probe_thresholds"] == "review"
        else:
            want = "abstain" if a["merged_risk"] >= th.abstain_above else "accept" if a["merged_risk"] < th.accept_below else "review"
            assert a["route_at_probe_thresholds"] == want and a["ood_distance"] > 0
    # each signal's score per answer: every AUROC above recomputes from the answers alone (a trial could check the
    # merged risk's only)
    import numpy as np

    from hguard._stats import auroc

    scored = [a for a in m["answers"] if a["label"] != "refusal"]
    assert all(a["scores"] is None for a in m["answers"] if a["label"] == "refusal")
    y = np.array([a["label"] == "hallucinated" for a in scored], dtype=int)
    for signal, value in m["auroc"].items():
        assert auroc(y, np.array([a["scores"][signal] for a in scored])) == value, signal
    assert all(a["scores"]["merged"] == a["merged_risk"] and a["family"] for a in scored)


def test_bad_data_file_names_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "q?", "answers": ["x"], "domain": "geo"}\n{"id": "b", "question": "q?", "answers": "x", "domain": "geo"}\n')
    r = hguard("evaluate", "--probes", str(PROBES), "--data", str(bad), "--json", check=False)
    assert r.returncode == 2 and "line 2" in r.stderr and "answers" in r.stderr


def test_demo_runs_and_verifies_its_audit_log(tmp_path):
    r = hguard("demo", "--out", str(tmp_path))
    out = r.stdout
    from hguard.demo import SCRIPT

    kinds = {kind for kind, *_ in SCRIPT}
    table = [l for l in out.splitlines() if any(l.startswith(k) for k in kinds) and l.rstrip().endswith(("accept", "review", "abstain"))]
    assert len(table) == len(SCRIPT), out  # one routed row per scripted question
    assert out.count("fabricated entity") >= 2 and "RAG, misleading passage" in out
    assert f"OK, {len(SCRIPT)} records, hash chain intact" in out
    n_review = sum(l.rstrip().endswith("review") for l in table)
    assert f"{n_review} item(s) enqueued" in out
    from hguard.demo import review_command

    assert f"(list them: {review_command(tmp_path)})" in out  # its own queue, not the default policy's


def test_calibrate_and_calibrate_rag_take_the_policys_system_prompt(monkeypatch, tmp_path):
    """Both take the policy's system prompt and max_new_tokens (calibrate-rag had no --max-new-tokens: a guard
    generating 48 tokens could not get RAG probes of its own length from the command line)."""
    import hguard.calibrate.pipeline as pipeline
    import hguard.calibrate.rag as rag
    from hguard.cli import main

    seen = {}
    lengths = {}

    def fake(name):
        def run(*a, **kw):
            seen[name] = kw["system_prompt"]
            lengths[name] = kw.get("max_new_tokens")
            raise SystemExit(0)
        return run

    monkeypatch.setattr(pipeline, "calibrate", fake("calibrate"))
    monkeypatch.setattr(rag, "calibrate_rag", fake("calibrate_rag"))
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "q1", "question": "capital of france ?", "answers": ["paris"], "domain": "geo", "context": "x"}\n')
    for cmd in ("calibrate", "calibrate-rag"):
        with pytest.raises(SystemExit):
            main([cmd, "--data", str(data), "--out", str(tmp_path / "o"), "--system-prompt", "You are a patient-education assistant."])
    assert seen == {"calibrate": "You are a patient-education assistant.", "calibrate_rag": "You are a patient-education assistant."}
    for cmd in ("calibrate", "calibrate-rag"):
        with pytest.raises(SystemExit):
            main([cmd, "--data", str(data), "--out", str(tmp_path / "o"), "--max-new-tokens", "48"])
    assert lengths == {"calibrate": 48, "calibrate_rag": 48}


def test_calibrate_exits_1_when_a_domain_gets_no_probe(monkeypatch, tmp_path, capsys):
    import hguard.calibrate.pipeline as pipeline
    from hguard.cli import main

    why = "the training split has 5 correct and 4 hallucinated answers; at least 8 of each are needed"
    monkeypatch.setattr(pipeline, "calibrate", lambda *a, **kw: {
        "domains": {}, "skipped": {"it_tiny": why}, "probe_fit": {"method": "memory", "reason": "small"}})
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "q1", "question": "capital of france ?", "answers": ["paris"], "domain": "geo"}\n')
    assert main(["calibrate", "--data", str(data), "--out", str(tmp_path / "o")]) == 1
    out, err = capsys.readouterr()
    assert f"it_tiny: skipped: {why}" in out and "1 domain(s) got no probe (it_tiny)" in err


def test_the_demo_never_deletes_a_log_or_queue_it_did_not_write(tmp_path):
    """`hguard demo --out FOLDER` deleted the audit log and review queue there (the default policy's own state
    folder: 21 records, verdicts included, replaced by the demo's 11, which verify called OK)."""
    from hguard.demo import DEMO_MARK, prepare_out
    from hguard.errors import InputError

    real = tmp_path / "state"
    real.mkdir()
    (real / "audit.jsonl").write_text('{"kind": "decision"}\n')
    (real / "review.sqlite3").write_bytes(b"queue")
    (real / "audit.0-29.jsonl").write_text("{}\n")
    with pytest.raises(InputError, match=r"holds audit.0-29.jsonl, audit.jsonl, review.sqlite3, which the demo did not "
                                         r"write; .* pass a new or empty folder with --out"):
        prepare_out(real, own=False)
    assert (real / "audit.jsonl").read_text() == '{"kind": "decision"}\n' and (real / "review.sqlite3").exists()
    r = hguard("demo", "--out", str(real), check=False)  # refused before the model loads, in one line
    assert r.returncode == 2 and "which the demo did not write" in r.stderr and (real / "audit.jsonl").exists()
    with pytest.raises(InputError, match=r"--out .*audit.jsonl is a file; pass a folder"):  # it said "File exists"
        prepare_out(real / "audit.jsonl", own=False)
    # the demo's own folder (marked by an earlier run, or its default one) is emptied for the next run
    mine = tmp_path / "demo"
    prepare_out(mine, own=False)
    (mine / "audit.jsonl").write_text("{}\n")
    prepare_out(mine, own=False)
    assert (mine / DEMO_MARK).exists() and not (mine / "audit.jsonl").exists()
    (real / DEMO_MARK).unlink(missing_ok=True)
    prepare_out(real, own=True)
    assert not (real / "audit.jsonl").exists()


def _ascii_locale() -> dict:
    """An environment whose locale encoding is ASCII, as a server's C locale is when Python's UTF-8 mode and locale
    coercion are off (an ISO-8859 locale behaves alike for text outside it)."""
    import os

    return {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
            "PYTHONIOENCODING": ""}


def test_the_command_line_writes_text_its_locale_cannot_encode_as_escapes(tmp_path):
    """A multilingual agency's trial: under de_DE.ISO-8859-1, `hguard audit show` stopped after 3 of 35 records with
    a UnicodeEncodeError on an Arabic question, exiting 1 as a log that does not verify does."""
    from hguard.audit import AuditLog

    log = AuditLog(tmp_path / "audit.jsonl")
    log.append({"question": "\u0645\u0627 \u0647\u064a \u0627\u0644\u0645\u062f\u0629\u061f", "route": "review"}, kind="decision")
    log.append({"question": "second", "route": "review"}, kind="decision")
    out = subprocess.run([sys.executable, "-X", "utf8=0", "-m", "hguard", "audit", "show", str(log.path)],
                         capture_output=True, env=_ascii_locale(), timeout=300)
    text = out.stdout.decode("ascii")
    assert out.returncode == 0, out.stderr.decode("ascii", "replace")
    assert "\\u0645\\u0627" in text and "second" in text


def test_a_calibration_report_is_written_as_utf8_whatever_the_locale(tmp_path):
    """The same trial: report.md was written in the locale's encoding, so a German system prompt's dash failed the
    end of a long calibration after report.json was written, and report.md was missing."""
    report = json.loads((PROBES / "report.json").read_text(encoding="utf-8"))
    report["system_prompt"] = "Antworte kurz \u2013 auf Deutsch"
    (tmp_path / "in.json").write_text(json.dumps(report), encoding="utf-8")
    code = ("import json, sys; from hguard.calibrate.report import write_report; "
            "write_report(json.loads(open(sys.argv[1], encoding='utf-8').read()), sys.argv[2], plots=False)")
    out = subprocess.run([sys.executable, "-X", "utf8=0", "-c", code, str(tmp_path / "in.json"), str(tmp_path)],
                         capture_output=True, env=_ascii_locale(), timeout=300)
    assert out.returncode == 0, out.stderr.decode("ascii", "replace")[-400:]
    assert "Antworte kurz \u2013 auf Deutsch" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_a_utf16_context_file_is_told_to_be_converted_from_utf16(tmp_path):
    """A multilingual agency's trial: a UTF-16 file was told to convert with `iconv -f latin1`, which made a passage of
    NUL-padded text that was then answered."""
    from hguard.cli import read_text_file
    from hguard.errors import InputError

    (tmp_path / "u16.txt").write_text("Die Kündigungsfrist beträgt 30 Tage.", encoding="utf-16")
    (tmp_path / "l1.txt").write_bytes("Kündigung".encode("latin-1"))
    with pytest.raises(InputError, match=r"it reads as UTF-16\); convert it, e.g. `iconv -f utf-16 -t utf-8`"):
        read_text_file(str(tmp_path / "u16.txt"), "context")
    # a Windows "ANSI" file is Windows-1252: `-f latin1` (told before) made its "€" the control character U+0080, the
    # guard answered from that passage and the number hold no longer saw a currency (a French team's trial)
    (tmp_path / "cp.txt").write_bytes("La franchise s’élève à 1.200,50 € par sinistre.".encode("cp1252"))
    for name in ("l1.txt", "cp.txt"):
        with pytest.raises(InputError, match=r"convert it, e.g. `iconv -f cp1252 -t utf-8`"):
            read_text_file(str(tmp_path / name), "context")
    # 0x81: no Windows-1252 character; Latin-1 would make it a control character the guard refuses (a review)
    (tmp_path / "other.txt").write_bytes(b"K\xfcndigung \x81")
    with pytest.raises(InputError, match=r"is neither UTF-8 nor Windows-1252 text \(byte 1: b'\\xfc'\); find its "
                                         r"encoding \(`file -i FILE`\)"):
        read_text_file(str(tmp_path / "other.txt"), "context")
    (tmp_path / "bom.txt").write_text("Le délai de carence est de 6 mois.", encoding="utf-8-sig")  # a Windows editor's
    assert read_text_file(str(tmp_path / "bom.txt"), "context") == "Le délai de carence est de 6 mois."
