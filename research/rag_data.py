"""RAG calibration sets with contrast, built from the public datasets in ``../shared/data``.

Each question is answered with a passage under one of several conditions, kept in ``meta.condition``:

- ``supporting``: its own passage (open answers judged against aliases; yes/no answers against the
  upstream True/False, ``meta.judge = "yesno"``);
- ``offtopic``: a passage that does not answer it (another row's passage, or a policy segment the
  upstream set marks as not answering): the right reply says the context does not answer it
  (kind ``unanswerable``);
- ``misleading``: a ConflictNQ passage written to state a false answer; the reply is right when it
  keeps the real answer (``meta.right_answer``) and wrong when it follows the passage
  (``meta.misleading_answer``);
- ``unanswerable``: SQuAD 2.0 questions its paragraph does not answer (kind ``unanswerable``).

Splits are by passage: every row carries ``meta.group`` = the id of the question's own passage, and an
off-topic passage is drawn only from passages that fall on the same side of the split
(:func:`hguard.calibrate.data.split_ids` with the pipeline's test fraction and seed), so no passage
and no question is on both sides.

Two domains: ``policy`` (privacy-policy segments and contract clauses) and ``general`` (HaluEval QA
knowledge, SQuAD 2.0, BoolQ, PubMedQA, ConflictNQ).
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
from typing import Any, Iterable

from hguard.errors import DataError, InputError
from hguard.calibrate.data import Example, ExampleKind, split_ids
from research.public import _jsonl, _verified_bytes, load_conflictnq, load_halueval_rows

__all__ = ["CONDITIONS", "RAG_DOMAINS", "build_general", "build_policy", "build_rag_sets", "passage_id"]

CONDITIONS = ("supporting", "offtopic", "misleading", "unanswerable")
RAG_DOMAINS = ("policy", "general")
TEST_FRACTION = 0.3
SEED = 0


def passage_id(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def _side(domain: str, group: str, test_fraction: float, seed: int) -> str:
    # The same key and hash as the pipeline's split (collect's group key is "<domain>:<meta.group>").
    _, test = split_ids([f"{domain}:{group}"], test_fraction=test_fraction, seed=seed)
    return "test" if test else "train"


def _yn(value: Any, where: str) -> str:
    v = str(value).strip().lower()
    if v in ("true", "yes"):
        return "yes"
    if v in ("false", "no"):
        return "no"
    raise DataError(f"{where}: answer {value!r} is not True/False or yes/no; restore the file")


def _row(domain: str, rid: str, question: str, context: str, answers: list[str], condition: str, group: str,
         dataset: str, kind: ExampleKind = "qa", **meta: Any) -> Example:
    return Example(
        id=rid, question=" ".join(question.split()), answers=answers, domain=domain, context=context.strip(),
        kind=kind, meta={"condition": condition, "group": group, "dataset": dataset, **meta},
    )


def _offtopic_partner(rng: random.Random, pool: list[tuple[str, str]], own: str) -> tuple[str, str] | None:
    """A (group, passage) from ``pool`` that is not the row's own passage."""
    for _ in range(20):
        g, text = pool[rng.randrange(len(pool))]
        if g != own:
            return g, text
    return None


def _by_side(domain: str, items: Iterable[tuple[str, str]], tf: float, seed: int) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for g, text in items:
        out[_side(domain, g, tf, seed)].append((g, text))
    return out


# ------------------------------------------------------------------------------------------ policy


def build_policy(n_yesno: int = 240, n_offtopic: int = 160, *, domain: str = "policy", seed: int = SEED,
                 test_fraction: float = TEST_FRACTION) -> list[Example]:
    """Policy assistant: privacy-policy segments (PrivacyQA via LegalBench) and contract clauses.

    - supporting, yes/no: "Does the policy text answer the question ...?" with the segment; the
      upstream True/False says whether it does (half True, half False), and all 80 contract-clause
      questions ("Does the clause discuss ...?") with their clause;
    - offtopic: the user's own question with a segment that does not answer it: half the segments
      the upstream set marks False for that question, half another policy's segment that answers a
      different question.
    """
    rng = random.Random(seed)
    rows = [r for _, r in _jsonl("rag_policy_qa", "privacy_policy_qa.jsonl")]
    by_truth: dict[str, list[dict]] = {"yes": [], "no": []}
    for i, r in enumerate(rows):
        r = {**r, "_i": i, "_yn": _yn(r["answer"], f"rag_policy_qa/privacy_policy_qa.jsonl row {i}")}
        by_truth[r["_yn"]].append(r)
    for v in by_truth.values():
        rng.shuffle(v)
    out: list[Example] = []
    used: set[int] = set()
    for truth in ("yes", "no"):
        for r in by_truth[truth][: n_yesno // 2]:
            used.add(r["_i"])
            q = r["question"].strip().rstrip("?").strip()
            out.append(_row(domain, f"policy-yn-{r['_i']:05d}", f'Does the policy text answer the question "{q}"?',
                            r["context"], [truth], "supporting", passage_id(r["context"]), "privacy_policy_qa",
                            judge="yesno"))
    # off-topic (a): the upstream "False" pairs (the segment does not answer the question)
    for r in by_truth["no"][n_yesno // 2 : n_yesno // 2 + n_offtopic // 2]:
        used.add(r["_i"])
        out.append(_row(domain, f"policy-off-{r['_i']:05d}", r["question"], r["context"], [], "offtopic",
                        passage_id(r["context"]), "privacy_policy_qa", kind="unanswerable", pairing="upstream False"))
    # off-topic (b): a question whose own segment answers it, asked of another segment on its side
    sides = _by_side(domain, {passage_id(r["context"]): r["context"] for r in rows}.items(), test_fraction, seed)
    for r in [r for r in by_truth["yes"] if r["_i"] not in used][: n_offtopic - n_offtopic // 2]:
        own = passage_id(r["context"])
        partner = _offtopic_partner(rng, sides[_side(domain, own, test_fraction, seed)], own)
        if partner is None:
            continue
        out.append(_row(domain, f"policy-swap-{r['_i']:05d}", r["question"], partner[1], [], "offtopic", own,
                        "privacy_policy_qa", kind="unanswerable", pairing="another segment", passage=partner[0]))
    for i, (_, r) in enumerate(_jsonl("rag_policy_qa", "contract_qa.jsonl")):
        out.append(_row(domain, f"policy-contract-{i:03d}", r["question"], r["contract"],
                        [_yn(r["answer"], f"rag_policy_qa/contract_qa.jsonl row {i}")], "supporting",
                        passage_id(r["contract"]), "contract_qa", judge="yesno"))
    return out


# ----------------------------------------------------------------------------------------- general


def _short(text: str, words: int) -> bool:
    return 0 < len(text.split()) <= words


def build_general(n_halueval: int = 120, n_halueval_offtopic: int = 60, n_conflict: int = 100,
                  n_squad: int = 60, n_boolq: int = 80, n_pubmedqa: int = 40, *, domain: str = "general",
                  seed: int = SEED, test_fraction: float = TEST_FRACTION) -> list[Example]:
    """General questions answered from encyclopedia passages (and PubMed abstracts)."""
    rng = random.Random(seed + 1)
    out: list[Example] = []
    # HaluEval QA: knowledge passage -> right answer; off-topic: another row's knowledge
    hal = load_halueval_rows()
    sides = _by_side(domain, [(passage_id(r["context"]), r["context"]) for r in hal], test_fraction, seed)
    for r in hal[:n_halueval]:
        out.append(_row(domain, f"general-{r['id']}", r["question"], r["context"], [r["right_answer"]], "supporting",
                        passage_id(r["context"]), "halueval"))
    for r in hal[n_halueval : n_halueval + n_halueval_offtopic]:
        own = passage_id(r["context"])
        partner = _offtopic_partner(rng, sides[_side(domain, own, test_fraction, seed)], own)
        if partner is not None:
            out.append(_row(domain, f"general-{r['id']}-off", r["question"], partner[1], [], "offtopic", own, "halueval",
                            kind="unanswerable", passage=partner[0]))
    # ConflictNQ: short answers only (the judge compares words); the real passage that best holds the
    # real answer, and the first misleading passage
    conf = [r for split in ("val", "test") for r in load_conflictnq(split)]
    conf = [r for r in conf if _short(r["real_short_answer"], 6) and _short(r["fake_short_answer"], 6)
            and r["real_short_answer"].strip().lower() != r["fake_short_answer"].strip().lower()]
    for r in conf[:n_conflict]:
        passages = r["context"].split("\n\n")
        want = set(r["real_short_answer"].lower().split())
        real = max(passages, key=lambda p: len(want & set(p.lower().split())))
        g = passage_id(real)
        q = r["cleaned_question"]
        out.append(_row(domain, f"general-{r['id']}-real", q, real, [r["real_short_answer"]], "supporting", g,
                        "conflictnq", right_answer=r["real_short_answer"], misleading_answer=r["fake_short_answer"]))
        out.append(_row(domain, f"general-{r['id']}-fake", q, r["fake_passages"][0], [r["real_short_answer"]],
                        "misleading", g, "conflictnq", right_answer=r["real_short_answer"],
                        misleading_answer=r["fake_short_answer"]))
    # SQuAD 2.0 (Normans article): answerable and unanswerable questions on their paragraph
    squad = json.loads(_verified_bytes("squad_v2_normans", "dev-v2.0_normans.json").decode("utf-8"))
    ans: list[tuple[str, dict[str, Any]]] = []
    unans: list[tuple[str, dict[str, Any]]] = []
    for art in squad["data"]:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                (unans if qa["is_impossible"] else ans).append((para["context"], qa))
    for ctx, qa in ans[: n_squad // 2]:
        aliases = sorted({a["text"].strip() for a in qa["answers"] if a["text"].strip()})
        out.append(_row(domain, f"general-squad-{qa['id']}", qa["question"], ctx, aliases, "supporting",
                        passage_id(ctx), "squad_v2"))
    for ctx, qa in unans[: n_squad - n_squad // 2]:
        out.append(_row(domain, f"general-squad-{qa['id']}", qa["question"], ctx, [], "unanswerable",
                        passage_id(ctx), "squad_v2", kind="unanswerable"))
    # BoolQ: Wikipedia passage + yes/no question
    for i, (_, r) in enumerate(_jsonl("rag_policy_qa", "boolq_dev.jsonl")[:n_boolq]):
        q = r["question"].strip()
        q = q[0].upper() + q[1:] + ("" if q.endswith("?") else "?")
        out.append(_row(domain, f"general-boolq-{i:04d}", q, r["passage"], [_yn(r["answer"], f"boolq row {i}")],
                        "supporting", passage_id(r["passage"]), "boolq", judge="yesno"))
    # PubMedQA: abstract (without its conclusion) + yes/no question; "maybe" rows left out
    pq = json.loads(_verified_bytes("pubmedqa", "ori_pqal.json").decode("utf-8"))
    k = 0
    for pmid, r in pq.items():
        if k >= n_pubmedqa:
            break
        if r["final_decision"] not in ("yes", "no"):
            continue
        parts = r["CONTEXTS"]
        if isinstance(parts, str) and parts.startswith("["):
            parts = ast.literal_eval(parts)
        ctx = " ".join(parts) if isinstance(parts, list) else str(parts)
        if len(ctx.split()) > 220:
            continue
        out.append(_row(domain, f"general-pubmedqa-{pmid}", r["QUESTION"], ctx, [r["final_decision"]], "supporting",
                        passage_id(ctx), "pubmedqa", judge="yesno"))
        k += 1
    return out


def build_rag_sets(scale: float = 1.0) -> dict[str, list[Example]]:
    """Both bundled RAG domains; ``scale`` multiplies every row count (e.g. 0.1 for a quick look)."""
    if not 0 < scale <= 4:
        raise InputError(f"scale must be in (0, 4], got {scale!r}")

    def n(x: int) -> int:
        return max(2, int(round(x * scale)))

    return {
        "policy": build_policy(n(240), n(160)),
        "general": build_general(n(120), n(60), n(100), n(60), n(80), n(40)),
    }
