"""``hguard demo``: the default model under the guard, on a scripted mix of questions.

Facts the model knows, facts it does not, fabricated entities; with context: a general question with a
supporting and with a misleading passage (scored by the RAG probe of the "general" domain), the same
question in a domain calibrated closed-book only (review), and a policy-assistant question from its
policy segment and one with an off-topic segment (RAG probe of the "policy" domain). Prints answer, risk, route and reasons; writes the audit log and
verifies its chain.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from pathlib import Path

from ._resources import DEFAULT_POLICY, expand_home, state_dir
from ._text import listed, shown_plainly

def review_command(out_dir: Path | None = None) -> str:
    """The command that lists the review queue a demo run wrote to ``out_dir`` (default: the demo's own folder under
    the state folder), not the default policy's: the demo keeps its log and queue apart."""
    import shlex

    out_dir = out_dir if out_dir is not None else state_dir() / "demo"
    return (f"hguard review list --queue {shlex.quote(str(out_dir / 'review.sqlite3'))} "
            f"--audit {shlex.quote(str(out_dir / 'audit.jsonl'))}")


SCRIPT = [
    # (kind, question, context, domain)
    ("known fact", "What is the capital of France?", None, None),
    ("known fact", "What is the chemical symbol of gold?", None, None),
    ("unknown fact", "What is the capital of Burkina Faso?", None, None),
    ("unknown fact", "What is the chemical symbol of the element tungsten?", None, None),
    ("fabricated entity", "What is the capital of the Republic of Veltoria?", None, None),
    ("fabricated entity", "What is the chemical symbol of the element zorvanium?", None, None),
    (
        "RAG, supporting passage",
        "What is the capital of Australia?",
        "Canberra is the capital city of Australia. It was selected as the capital in 1908 as a "
        "compromise between Sydney and Melbourne, the two largest cities.",
        "general",
    ),
    (
        "RAG, misleading passage",
        "What is the capital of Australia?",
        "Sydney is the capital of Australia and its largest city, home to the Sydney Opera House and the "
        "Harbour Bridge. Melbourne is known for its coffee culture.",
        "general",
    ),
    (
        "RAG, closed-book domain",
        "What is the capital of Australia?",
        "Canberra is the capital city of Australia.",
        "geography",
    ),
    (
        "policy, its segment",
        'Does the policy text answer the question "is my data shared with third parties"?',
        "We may share your personal information with third parties, such as advertising partners and "
        "analytics providers, to operate and improve our services.",
        "policy",
    ),
    (
        "policy, off-topic segment",
        "How long do you keep my payment details?",
        "You can change the language of the app at any time in the settings menu.",
        "policy",
    ),
]


#: the file that marks a folder as the demo's own output, which each run replaces
DEMO_MARK = ".hguard-demo"
_DEMO_FILES = ("audit.jsonl", "audit.jsonl.lock", "review.sqlite3", "review.sqlite3-wal", "review.sqlite3-shm")


def prepare_out(out_dir: Path, *, own: bool) -> None:
    """Empty the demo's log and queue in ``out_dir`` so that its verification covers just this run. A folder given
    with ``--out`` that holds an audit log, archives or a review queue the demo did not write (the default policy's
    own state folder, a policy copy's) is refused: the demo deleted them there, and verify then called the new
    log OK. ``own``: the demo's default folder, always its own."""
    from .errors import InputError

    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file; pass a folder for the demo's audit log and review queue (a new or "
                         "empty one)")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not own and not (out_dir / DEMO_MARK).exists():
        held = sorted({p.name for p in out_dir.glob("audit*.jsonl")} | {p.name for p in out_dir.glob("review.sqlite3")})
        if held:
            raise InputError(
                f"{out_dir} holds {', '.join(held)}, which the demo did not write; each demo run starts a fresh "
                "audit log and review queue in its folder and would delete them: pass a new or empty folder with --out"
            )
    for name in _DEMO_FILES:
        (out_dir / name).unlink(missing_ok=True)
    (out_dir / DEMO_MARK).write_text("hguard demo output: its audit log and review queue are replaced on each demo run\n", encoding="utf-8")


def run_demo(policy: str | None = None, model: str | None = None, out: str | None = None) -> int:
    from . import audit
    from .guard import Guard
    from .policy import load_policy

    t0 = time.perf_counter()
    pol = load_policy(policy or DEFAULT_POLICY)
    out_dir = expand_home(out, "--out") if out else state_dir() / "demo"
    prepare_out(out_dir, own=out is None)
    pol = pol.model_copy(
        update={
            # no anchor: this throwaway log's heads must not land in the anchor of the policy's real log
            "audit": pol.audit.model_copy(update={"path": out_dir / "audit.jsonl", "anchor": None}),
            "review": pol.review.model_copy(update={"queue": out_dir / "review.sqlite3"}),
        }
    )
    from .signals.embedding import get_embedder

    get_embedder()  # domain choice and grounding need it: a missing package stops the demo here, not per answer
    print(f"loading {model or pol.model} model and the reference probes from {', '.join(map(str, pol.probe_folders)) or 'nowhere'} ...", flush=True)
    guard = Guard.from_policy(pol, model=model)
    print(f"model {guard.lm.name} ({guard.lm.load_info.get('seconds', 0):.1f} s); probes: {', '.join(sorted(guard.probes)) or 'none'}; "
          f"RAG probes: {', '.join(sorted(guard.rag_probes)) or 'none'}")
    for name, err in guard.probe_errors.items():
        print(f"  probe problem ({name}): {err}")
    # a probe served but calibrated under another setup is said by the guard's start-up warning, shown above
    width = shutil.get_terminal_size((120, 20)).columns
    results = []
    for kind, q, ctx, dom in SCRIPT:
        try:
            r = guard.invoke(q, context=ctx, domain=dom)
        except Exception as exc:
            if getattr(exc, "results", None):  # decided and recorded, then a later record failed: not shown
                from .cli import not_shown_error

                raise not_shown_error(guard, exc, "hguard demo") from exc
            raise
        results.append((kind, r))
    print()
    header = f"{'case':24s} {'question':38s} {'answer':40s} {'domain':10s} {'risk':>5s}  route"
    print(header)
    print("-" * min(width, len(header) + 10))
    for kind, r in results:
        risk = "  n/a" if r.risk is None else f"{r.risk:5.2f}"
        # the question and the model's answer as `hguard review list` shows them: no escape sequence reaches the terminal
        print(f"{kind:24s} {listed(r.question or '', 38):38s} {listed(r.answer or '', 40):40s} {str(r.domain):10s} {risk}  {r.route}")
        for reason in r.reasons[:3]:
            print(textwrap.fill(shown_plainly(reason), max(60, min(width, 140)), initial_indent="      - ",
                                subsequent_indent="        "))
    print()
    print("what a user sees:")
    for _kind, r in results:
        print(f"  [{r.route:7s}] {listed(r.question or '', 50)} -> {listed(r.display_text or '', 70)}")
    from .integrity import load_key

    rep = audit.verify(pol.audit.path, key=load_key(pol.integrity.key_file))
    n_review = sum(r.route == "review" for _, r in results)
    print()
    print(f"audit log {rep.summary()}")
    print(f"review queue {pol.review.queue}: {n_review} item(s) enqueued (list them: {review_command(out_dir)})")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0 if rep.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_demo())
