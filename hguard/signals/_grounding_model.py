"""The model grounding signal: how much the context raises the answer's log-likelihood under the guarded
causal LM itself. See :mod:`hguard.signals.grounding`."""

from __future__ import annotations

from collections.abc import Sequence

from hguard._numerics import sigmoid
from hguard.errors import InputError
from hguard.models import as_loaded
from hguard.signals._grounding_lexical import _check_text, _context_text

_CTX_PROMPT = "Answer the question using the context.\n\nContext:\n{context}\n\nQuestion: {question}"
_NOCTX_PROMPT = "Answer the question.\n\nQuestion: {question}"
MAX_CONTEXT_TOKENS = 1024

# log-likelihood lift (nats per answer token) -> [0, 1]: sigmoid(MODEL_LIFT_SCALE * (lift - MODEL_LIFT_OFFSET)).
# On HaluEval QA with SmolLM2-135M-Instruct the lift of right answers has median 2.3 (IQR 1.2-3.9), of
# hallucinated ones 0.1 (IQR -0.1-0.7): a lift of 1 nat/token maps to 0.5.
MODEL_LIFT_SCALE = 1.0
MODEL_LIFT_OFFSET = 1.0


def _render_prompt(tokenizer, user: str) -> str:
    msgs = [{"role": "user", "content": user}]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return f"{user}\nAnswer: "


def _truncate_context(tokenizer, context: str, max_tokens: int) -> str:
    ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return context
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True)


def _prompt_ids(tokenizer, question: str, context: str | None) -> list[int]:
    if context is not None:
        context = _truncate_context(tokenizer, context, MAX_CONTEXT_TOKENS)
        user = _CTX_PROMPT.format(context=context.strip(), question=question.strip())
    else:
        user = _NOCTX_PROMPT.format(question=question.strip())
    return list(tokenizer(_render_prompt(tokenizer, user), add_special_tokens=False)["input_ids"])


def _cache_kwarg(model) -> str:
    """The forward() keyword for a KV cache: ``cache`` in transformers >= 5.2x, else ``past_key_values``."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def answer_logliks(
    model, tokenizer, question: str, answers: Sequence[str], context: str | None = None
) -> list[float]:
    """Mean log-probability (nats per token) of each answer's tokens after one chat prompt.

    Teacher-forced: the prompt (question, and the context when given, truncated to
    ``MAX_CONTEXT_TOKENS`` tokens) is rendered with the chat template and its generation prompt, and
    each answer's tokens are appended, so the answer is scored exactly where the model would write
    it. The prompt is run once and its key/value cache reused for every answer.
    """
    import copy

    import torch

    _check_text(question, "question")
    if context is not None:
        _check_text(context, "context")
    ans_ids = []
    for a in answers:
        _check_text(a, "answer")
        ids = list(tokenizer(a.strip(), add_special_tokens=False)["input_ids"]) if a.strip() else []
        if not ids:
            raise InputError(f"answer {a!r:.80} is empty or encodes to no tokens; pass a non-empty answer")
        ans_ids.append(ids)
    prompt = _prompt_ids(tokenizer, question, context)
    device = next(model.parameters()).device
    cache_kw = _cache_kwarg(model)
    out: list[float] = []
    with torch.no_grad(), as_loaded(model):
        pre = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
        first = torch.log_softmax(pre.logits[0, -1].float(), dim=-1)
        cache = getattr(pre, "cache", None)
        if cache is None:
            cache = getattr(pre, "past_key_values", None)
        for ids in ans_ids:
            lp = [float(first[ids[0]])]
            if len(ids) > 1:
                tail = torch.tensor([ids[:-1]], device=device)
                if cache is None:  # a model without a KV cache: run prompt + answer in full
                    full = torch.tensor([prompt + ids[:-1]], device=device)
                    res_logits = model(input_ids=full).logits[0, len(prompt) :]
                else:
                    kw = {cache_kw: copy.deepcopy(cache)}  # the forward pass extends the cache in place
                    res_logits = model(input_ids=tail, use_cache=True, **kw).logits[0]
                logp = torch.log_softmax(res_logits.float(), dim=-1)
                target = torch.tensor(ids[1:], device=logp.device).unsqueeze(1)
                lp.extend(logp.gather(1, target).squeeze(1).tolist())
            out.append(sum(lp) / len(lp))
    return out


def answer_loglik(model, tokenizer, question: str, answer: str, context: str | None = None) -> float:
    """Mean log-probability (nats per token) of ``answer`` after the chat prompt; see :func:`answer_logliks`."""
    return answer_logliks(model, tokenizer, question, [answer], context)[0]


def model_lifts(
    model, tokenizer, question: str, answers: Sequence[str], context: str | Sequence[str]
) -> list[float]:
    """For each answer: mean answer-token log-likelihood with the context minus without it (nats/token)."""
    ctx = _context_text(context)
    with_ctx = answer_logliks(model, tokenizer, question, answers, ctx)
    without = answer_logliks(model, tokenizer, question, answers, None)
    return [a - b for a, b in zip(with_ctx, without)]


def model_lift(model, tokenizer, question: str, answer: str, context: str | Sequence[str]) -> float:
    """Mean answer-token log-likelihood with the context minus without it (nats per token)."""
    return model_lifts(model, tokenizer, question, [answer], context)[0]


def model_support(model, tokenizer, question: str, answer: str, context: str | Sequence[str]) -> float:
    """How much the context raises the answer's likelihood under the LM, mapped to [0, 1].

    ``sigmoid(MODEL_LIFT_SCALE * (lift - MODEL_LIFT_OFFSET))`` where ``lift`` is
    :func:`model_lift` (two teacher-forced forward passes with the chat template).
    """
    lift = model_lift(model, tokenizer, question, answer, context)
    return sigmoid(MODEL_LIFT_SCALE * (lift - MODEL_LIFT_OFFSET))
