"""Drawing the extra answers that sampling-based detectors need, with their cost recorded."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

from hguard.errors import InputError

__all__ = ["Samples", "sample_answers", "forward_passes"]


def forward_passes(generation) -> int:
    """Forward passes one generation took: one per generated token, end-of-sequence included.

    (The prompt pass yields the first token; each further token needs one more pass. An answer cut
    at ``max_new_tokens`` has no end-of-sequence token.)
    """
    return len(generation.token_ids) + (1 if generation.finished else 0)


@dataclass
class Samples:
    """``texts[i]``: the sampled answers to question i; ``passes[i]``: their forward passes, summed."""

    texts: list[list[str]]
    passes: list[int]
    seconds: float  # wall time
    seeds: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0  # this process's CPU time (less sensitive to other load on the machine)


def sample_answers(
    generator,
    questions: Sequence[str],
    contexts: Sequence[str | None] | None = None,
    *,
    n: int,
    seed: int = 0,
    temperature: float = 1.0,
    batch_size: int = 16,
) -> Samples:
    """``n`` answers per question sampled at ``temperature`` (no neurons recorded), batched.

    The copies of the questions are generated in batches of ``batch_size``; batch k is seeded with
    ``seed + k``, so two calls with the same arguments give the same samples, and calls with seeds
    far apart (e.g. 1000 apart) give independent ones.
    """
    if n < 1:
        raise InputError(f"n must be at least 1, got {n}")
    if isinstance(questions, str):
        raise InputError("questions must be a list of strings")
    ctxs = list(contexts) if contexts is not None else [None] * len(questions)
    flat_q = [q for q in questions for _ in range(n)]
    flat_c = [c for c in ctxs for _ in range(n)]
    texts: list[list[str]] = [[] for _ in questions]
    passes = [0] * len(questions)
    seeds = []
    t0, c0 = time.perf_counter(), time.process_time()
    for k, start in enumerate(range(0, len(flat_q), batch_size)):
        s = seed + k
        seeds.append(s)
        gens = generator.generate(
            flat_q[start : start + batch_size], flat_c[start : start + batch_size], neurons=None,
            do_sample=True, temperature=temperature, seed=s, batch_size=batch_size,
        )
        for j, g in enumerate(gens):
            i = (start + j) // n
            texts[i].append(g.text)
            passes[i] += forward_passes(g)
    return Samples(texts, passes, time.perf_counter() - t0, seeds, time.process_time() - c0)
