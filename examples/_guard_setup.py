"""What both RAG examples set up the same way: the policy with its audit log and review queue moved into a folder of
the run's (``--runs``) and its answers capped (``--max-new-tokens``), the guard built on it, and what to say of its
probes before its first answer. Imported by langchain_rag.py and llamaindex_rag.py."""

from __future__ import annotations

from pathlib import Path


def runs_policy(policy, runs: Path | None, max_new_tokens: int | None):
    """``policy`` with its audit log (and anchor, when it keeps one) and review queue in ``runs``, and its answers
    capped at ``max_new_tokens``; unchanged where both are None."""
    update = {}
    if runs is not None:
        moved = {"path": runs / "hguard-audit.jsonl"}
        if policy.audit.anchor is not None:  # the policy's anchor holds the heads of its own log, not this one's
            moved["anchor"] = runs / "hguard-audit.anchor"
        update["audit"] = policy.audit.model_copy(update=moved)
        update["review"] = policy.review.model_copy(update={"queue": runs / "hguard-review.sqlite3"})
    if max_new_tokens is not None:
        update["generation"] = policy.generation.model_copy(update={"max_new_tokens": max_new_tokens})
    return policy.model_copy(update=update) if update else policy


def load_guard(policy_path: Path, runs: Path | None, max_new_tokens: int | None):
    """The guard of the policy; ``runs`` moves its audit log and review queue, ``max_new_tokens`` caps answers."""
    from hguard.guard import Guard
    from hguard.policy import load_policy
    from hguard.signals.embedding import get_embedder

    return Guard.from_policy(runs_policy(load_policy(policy_path), runs, max_new_tokens), embedder=get_embedder())


def probes_note(guard) -> str | None:
    """What to say of the guard's probes before its first answer: none at all, or the domains it could not score
    (it warned of each at its start; its other domains are scored); None when every domain is scored."""
    if not guard.probes:
        return "note: no calibrated probes found (run `make calibrate`); every answer goes to review"
    if guard.probe_errors:
        return f"note: not scored, so their answers go to review: {', '.join(sorted(guard.probe_errors))}"
    return None
