"""What generation reads and decides at each step, for :mod:`hguard.generation`: the confidence tracker (a
logits processor reading token log-probabilities and entropies as they pass), the confidence signals it
gives, stop sequences and the read-only view of a generation under way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .errors import InputError
from .neurons import NeuronRecorder


def cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, str | None]:
    """``text`` up to the first stop sequence it contains after its leading whitespace (an answer is never
    cut to nothing by the line break it starts with), and that sequence (or None)."""
    if not stop:
        return text, None
    lead = len(text) - len(text.lstrip())
    hits = [(text.find(s, lead), s) for s in stop if s and text.find(s, lead) >= 0]
    if not hits:
        return text, None
    at, s = min(hits)
    return text[:at], s


def stop_starts_at_end(said: str, then: str, stop: Sequence[str]) -> bool:
    """Whether a stop sequence ends an answer right where it ends: ``said`` is the answer's text, ``then`` that text
    with the model's next token, and the first stop ``then`` holds starts at the answer's end (after whitespace at
    most). One that starts inside the answer ("Paris. Question" then ":", the stop "Question:") ends a shorter answer
    ("Paris."); one after other text the next token carries (".\n" after "Paris") ends a longer one."""
    before, hit = cut_at_stop(then, stop)
    return (hit is not None and then.startswith(said) and len(before) >= len(said)
            and not before[len(said):].strip())


def without_cut_character(text: str, finished: bool) -> str:
    """An answer cut off by the token limit can end inside a character whose bytes span several tokens
    (a Japanese or emoji character in a byte-level vocabulary); its decoded remains are U+FFFD replacement
    characters, which are dropped: they are no part of what the model said. A finished answer is kept whole."""
    return text if finished else text.rstrip("\ufffd")


def _check_stop(stop) -> list[str] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)) or not all(isinstance(x, str) and x for x in stop):
        raise InputError(f"stop must be a list of non-empty strings, got {stop!r}")
    return list(stop) or None


class StopSequences:
    """A stopping criterion: ends a row once its decoded answer contains one of the stop strings
    (any tokenizer; the answer is cut before the string afterwards, see :func:`cut_at_stop`)."""

    def __init__(self, tokenizer, stop: Sequence[str], prompt_width: int, recorder: NeuronRecorder | None = None):
        self.tokenizer, self.stop, self.width = tokenizer, list(stop), prompt_width
        self.recorder = recorder  # told which rows ended, so that nothing fed to them afterwards is recorded
        self.done: torch.Tensor | None = None
        self.ended_at: torch.Tensor | None = None  # per row: answer tokens before the one that completed a stop

    def __call__(self, input_ids, scores, **kwargs):
        if self.done is None or self.done.numel() != input_ids.shape[0]:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool)
            self.ended_at = torch.full((input_ids.shape[0],), -1, dtype=torch.long)
        assert self.ended_at is not None
        for row in range(input_ids.shape[0]):
            if not self.done[row]:
                text = self.tokenizer.decode(input_ids[row, self.width :].tolist(), skip_special_tokens=True)
                if cut_at_stop(text, self.stop)[1] is not None:
                    self.done[row] = True
                    self.ended_at[row] = input_ids.shape[1] - self.width - 1
        if self.recorder is not None:
            self.recorder.finish_rows(self.done)
        return self.done.clone().to(input_ids.device)


class ConfidenceTracker:
    """A logits processor that keeps, per step, the entropy of the next-token distribution and, one step
    later (once the chosen token is visible in ``input_ids``), that token's log-probability.

    It sees the scores the token was actually chosen from (after any earlier processors), and returns
    them unchanged. Shapes: ``input_ids`` (batch, cur_len), ``scores`` (batch, vocab).
    """

    def __init__(self) -> None:
        self.entropies: list[torch.Tensor] = []
        self.chosen_logprobs: list[torch.Tensor] = []
        self._prev: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._prev is not None:
            self.chosen_logprobs.append(self._prev.gather(1, input_ids[:, -1:]).squeeze(1))
        logp = torch.log_softmax(scores.float(), dim=-1)
        p = logp.exp()
        # 0 * log 0 is 0: masked (-inf) entries must not turn the sum into NaN.
        self.entropies.append(-(torch.where(p > 0, p * logp, torch.zeros_like(p))).sum(-1))
        self._prev = logp
        return scores

    def finish(self, generated: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probs, entropies), each (batch, steps), after adding the last chosen token."""
        if self._prev is not None and len(self.chosen_logprobs) < len(self.entropies):
            last = generated[:, len(self.chosen_logprobs) : len(self.chosen_logprobs) + 1]
            self.chosen_logprobs.append(self._prev.gather(1, last).squeeze(1))
        self._prev = None
        if not self.entropies:
            empty = torch.zeros(generated.shape[0], 0)
            return empty, empty
        return torch.stack(self.chosen_logprobs, 1), torch.stack(self.entropies, 1)


class ForcedAnswer:
    """A logits processor placed after the :class:`ConfidenceTracker`: each row "generates" a given answer, its tokens
    then end-of-sequence, so that the tracker (and the neuron recorder) read the scores and activations of exactly
    those tokens, as for an answer the model generated itself. It keeps, per row and step, the model's own greedy
    choice (the argmax of the scores the tracker read): :meth:`own_tokens` counts the given tokens that are it.
    Shapes: ``input_ids`` (batch, cur_len), ``scores`` (batch, vocab)."""

    def __init__(self, answers: Sequence[Sequence[int]], eos: int, prompt_width: int) -> None:
        self.answers = [list(a) for a in answers]
        self.eos, self.width = eos, prompt_width
        self.greedy: list[list[int]] = [[] for _ in self.answers]  # per row: the argmax at each step, up to its end

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.width
        top = scores.argmax(-1).tolist()
        forced = torch.full_like(scores, float("-inf"))
        for row, ids in enumerate(self.answers):
            if step <= len(ids):  # its tokens, then the step that ends it
                self.greedy[row].append(int(top[row]))
            forced[row, ids[step] if step < len(ids) else self.eos] = 0.0
        return forced

    def own_tokens(self, row: int) -> int:
        """How many of row ``row``'s given tokens are the model's own greedy choice at their position."""
        return sum(int(g == t) for g, t in zip(self.greedy[row], self.answers[row]))

    def end_choice(self, row: int) -> int | None:
        """The model's own greedy choice after the last given token (None where the token limit came first)."""
        ids, seen = self.answers[row], self.greedy[row]
        return seen[len(ids)] if len(seen) > len(ids) else None


def confidence_from(logprobs: Sequence[float], entropies: Sequence[float]) -> dict[str, float]:
    n = len(logprobs)
    if n == 0:
        return {"mean_logprob": float("nan"), "min_logprob": float("nan"), "mean_entropy": float("nan"), "length": 0.0}
    return {
        "mean_logprob": float(np.mean(logprobs)),
        "min_logprob": float(np.min(logprobs)),
        "mean_entropy": float(np.mean(entropies)),
        "length": float(n),
    }


@dataclass
class RunningState:
    """Read-only view of a generation under way: mean CETT so far and the confidence so far."""

    recorder: NeuronRecorder
    tracker: "ConfidenceTracker"

    def cett(self) -> np.ndarray:
        return self.recorder.result().numpy()

    def n_tokens(self) -> np.ndarray:
        return self.recorder.token_counts().numpy().copy()

    def confidence(self, row: int) -> dict[str, float]:
        """Confidence of row ``row`` over the tokens chosen so far (all steps; EOS not yet excluded)."""
        lps = [float(x[row]) for x in self.tracker.chosen_logprobs]
        ents = [float(x[row]) for x in self.tracker.entropies[: len(lps)]]
        return confidence_from(lps, ents)
