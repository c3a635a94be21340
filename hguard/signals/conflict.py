"""Knowledge-conflict signals: does an answer given with context go against what the model holds?

An answer that follows a passage stating a false fact the model otherwise knows is likely under the
passage but unlikely without it. Two signals are read from one teacher-forced pass over the answer
under the *closed-book* prompt (the guard's own prompt for the same question without context):

- ``closed_book_logprob``: the answer's mean token log-probability without the passage;
- ``closed_book_gap``: the mean, over the answer's tokens, of how far the token the model itself
  would have chosen there outscores the answer's token (log-probability of the top token minus that
  of the answer's token; 0 when the model would have written the same token).

With the RAG answer's own mean log-probability (``mean_logprob``, read during generation) they give
``context_lift = mean_logprob - closed_book_logprob``. A detector fitted at calibration on
misleading-passage contrast rows combines them into ``knowledge_conflict`` (see
:func:`conflict_score`).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from hguard.errors import InputError, ProbeError
from hguard.models import as_loaded

__all__ = ["CONFLICT_FEATURES", "closed_book_scores", "conflict_score"]

CONFLICT_FEATURES = ("closed_book_logprob", "closed_book_gap", "context_lift")


def closed_book_scores(generator, questions: Sequence[str], answers: Sequence[str],
                       mean_logprobs: Sequence[float]) -> list[dict[str, float]]:
    """For each (question, answer): the closed-book signals above. An empty answer gets NaN signals
    (its caller must route it to review)."""
    import torch

    if len(questions) != len(answers) or len(answers) != len(mean_logprobs):
        raise InputError(
            f"got {len(questions)} questions, {len(answers)} answers and {len(mean_logprobs)} log-probabilities; "
            "pass one of each per answer"
        )
    tok = generator.lm.tokenizer
    model = generator.lm.model
    device = next(model.parameters()).device
    out = []
    for q, a, lp in zip(questions, answers, mean_logprobs):
        ids = list(tok(a.strip(), add_special_tokens=False)["input_ids"]) if a.strip() else []
        if not ids:
            out.append({k: float("nan") for k in CONFLICT_FEATURES})
            continue
        prompt = generator.prompt_ids(q, None)
        x = torch.tensor([prompt + ids], device=device)
        with torch.no_grad(), as_loaded(model):
            logits = model(input_ids=x).logits[0, len(prompt) - 1 : len(prompt) - 1 + len(ids)].float()
        logp = torch.log_softmax(logits, dim=-1)
        chosen = logp.gather(1, torch.tensor(ids, device=logp.device).unsqueeze(1)).squeeze(1)
        top = logp.max(dim=-1).values
        cb = float(chosen.mean())
        out.append({
            "closed_book_logprob": cb,
            "closed_book_gap": float((top - chosen).mean()),
            "context_lift": float(lp) - cb if lp is not None and math.isfinite(float(lp)) else float("nan"),
        })
    return out


def conflict_score(signals: Mapping[str, float | None], detector: Mapping) -> float:
    """The calibrated knowledge-conflict probability: ``sigmoid(coef . (x - mean) / scale + intercept)``
    over ``detector["features"]``. InputError when a signal is missing or not finite (route to review);
    ProbeError when the detector is malformed."""
    try:
        feats = list(detector["features"])
        mean, scale, coef = (np.asarray(detector[k], dtype=float) for k in ("mean", "scale", "coef"))
        b = float(detector["intercept"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProbeError(f"knowledge-conflict detector is malformed ({exc}); recalibrate the RAG domain") from None
    if not (len(feats) == mean.size == scale.size == coef.size) or np.any(scale <= 0):
        raise ProbeError("knowledge-conflict detector has inconsistent fields; recalibrate the RAG domain")
    x = []
    for k in feats:
        v = signals.get(k)
        if v is None or not math.isfinite(float(v)):
            raise InputError(f"knowledge-conflict signal {k!r} is {v!r}; the answer cannot be checked, route it to review")
        x.append(float(v))
    z = float(coef @ ((np.asarray(x) - mean) / scale) + b)
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
