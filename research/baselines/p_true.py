"""P(True): ask the model itself whether its answer is true.

Published method: Kadavath et al., "Language Models (Mostly) Know What They Know" (2022). The model
is shown the question and a proposed answer and asked whether the answer is true; the probability it
puts on "True" is its confidence. The paper uses a few-shot base-model prompt with "(A) True /
(B) False" options, optionally with several sampled answers shown as brainstorming, and large models
(up to 52B). What differs here: a zero-shot chat prompt on the guarded chat model (the template
below, in its chat template, with the same system prompt as the answer), one forward pass, and the
next-token probabilities of "True" and "False" (summed over spellings: with and without a leading
space, capitalised or not), renormalised over the two. The risk is ``1 - P(True)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hguard.errors import InputError

__all__ = ["PTRUE_TEMPLATE", "p_true", "p_true_prompt_ids", "answer_token_ids"]

PTRUE_TEMPLATE = "Question: {question}\nProposed answer: {answer}\nIs the proposed answer true or false? Answer:"


def answer_token_ids(tokenizer, word: str) -> list[int]:
    """First token ids of ``word`` as the model may spell it next: with or without a leading space,
    capitalised or lower case (duplicates removed)."""
    ids: list[int] = []
    for form in (word, " " + word, word.lower(), " " + word.lower(), word.upper()):
        toks = tokenizer(form, add_special_tokens=False)["input_ids"]
        if toks and toks[0] not in ids and toks[0] != tokenizer.unk_token_id:
            ids.append(int(toks[0]))
    if not ids:
        raise InputError(f"the tokenizer cannot spell {word!r}; P(True) needs a token for it")
    return ids


def _forward_kwargs(model) -> dict:
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}
    out = {"use_cache": False} if "use_cache" in params else {}
    if "logits_to_keep" in params:
        out["logits_to_keep"] = 1
    return out


def p_true_prompt_ids(generator, question: str, answer: str) -> list[int]:
    """The chat-templated prompt (the generator's system prompt, then the P(True) question)."""
    return generator.prompt_ids(PTRUE_TEMPLATE.format(question=question.strip(), answer=answer.strip() or "(no answer)"))


def p_true(
    generator,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 16,
    words: tuple[str, str] = ("True", "False"),
) -> np.ndarray:
    """P(True) in [0, 1] for every (question, answer): one forward pass per answer (batched, left-padded).

    ``words``: the (true, false) words whose next-token probabilities are compared; change them only
    for a tokenizer that cannot spell "True" and "False" (e.g. a test model's small vocabulary).
    """
    import torch

    from hguard.generation import left_pad

    if isinstance(questions, str) or isinstance(answers, str):
        raise InputError("questions and answers must be lists of strings")
    if len(questions) != len(answers):
        raise InputError(f"got {len(questions)} questions but {len(answers)} answers; pass one answer per question")
    tok = generator.lm.tokenizer
    model = generator.lm.model
    t_ids = answer_token_ids(tok, words[0])
    f_ids = answer_token_ids(tok, words[1])
    overlap = set(t_ids) & set(f_ids)
    if overlap:
        raise InputError(f"{words[0]!r} and {words[1]!r} share first tokens {sorted(overlap)}; P(True) is undefined")
    prompts = [p_true_prompt_ids(generator, q, a) for q, a in zip(questions, answers)]
    out = np.zeros(len(prompts), dtype=float)
    pad = tok.pad_token_id
    device = next(model.parameters()).device
    # Only the last position's logits are needed (as generate() does for its prompt pass).
    extra = _forward_kwargs(model)
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            ids, att = left_pad(chunk, pad)
            pos = (att.cumsum(-1) - 1).clamp(min=0)
            logits = model(
                input_ids=ids.to(device), attention_mask=att.to(device), position_ids=pos.to(device), **extra
            ).logits[:, -1].float()
            logp = torch.log_softmax(logits, dim=-1)
            lt = torch.logsumexp(logp[:, t_ids], dim=-1)
            lf = torch.logsumexp(logp[:, f_ids], dim=-1)
            out[start : start + len(chunk)] = torch.sigmoid(lt - lf).cpu().numpy()
    return out
