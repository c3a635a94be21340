"""Test doubles shipped with the library: tiny random-initialised models of every supported
architecture, built from a config with a tiny word-level tokenizer, so that tests (ours and users')
exercise the real hooks, generation and guard without downloading anything.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ._policy_route import SPOT_CHECK_REASON
from .errors import InputError
from .models import LoadedModel, _finish

_WORDS = (
    "the a of is in to and what who which where when capital city country river element symbol "
    "author book year answer paris london rome berlin madrid gold silver iron oxygen hydrogen "
    "carbon france england italy germany spain context question not know sure yes no one two "
    "three four five six seven eight nine ten it was by for with on at this that there such"
).split()
SPECIAL = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "user", "assistant", "system", "\n"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def tiny_tokenizer():
    """A word-level fast tokenizer with a chat template; unknown words map to <unk>."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL + list(_WORDS))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>", bos_token="<|im_start|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


TINY_ARCHITECTURES = ("llama", "mistral", "qwen2", "gemma", "gemma3_text", "gpt2", "gpt_neox", "phi", "gemma2", "gemma3",
                      "granite", "olmo", "olmo2", "phi3", "qwen3", "smollm3")


def tiny_config(arch: str, vocab_size: int):
    """A 2-4 layer config of ``arch`` small enough to run in milliseconds."""
    import transformers as tf

    # A wide init makes random models produce varied tokens instead of one repeated token.
    common: dict[str, Any] = dict(vocab_size=vocab_size, pad_token_id=0, eos_token_id=3, bos_token_id=2, initializer_range=0.3)
    if arch == "llama":
        return tf.LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                              num_key_value_heads=2, max_position_embeddings=256, **common)
    if arch == "mistral":
        return tf.MistralConfig(hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, max_position_embeddings=256, **common)
    if arch == "qwen2":
        return tf.Qwen2Config(hidden_size=32, intermediate_size=44, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2, max_position_embeddings=256, **common)
    if arch == "gemma":
        return tf.GemmaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=1, head_dim=8, max_position_embeddings=256, **common)
    if arch == "gemma3_text":
        return tf.Gemma3TextConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                                   num_key_value_heads=1, head_dim=8, max_position_embeddings=256,
                                   sliding_window=16, **common)
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=256, vocab_size=vocab_size,
                             bos_token_id=2, eos_token_id=3, pad_token_id=0, initializer_range=0.3)
    if arch == "gpt_neox":
        return tf.GPTNeoXConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                max_position_embeddings=256, **common)
    if arch == "phi":
        return tf.PhiConfig(hidden_size=32, intermediate_size=56, num_hidden_layers=2, num_attention_heads=4,
                            max_position_embeddings=256, **common)
    # two layers each, and what sets the type apart around its MLP said where it is not the plain llama layout
    small: dict[str, Any] = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 max_position_embeddings=256, **common)
    if arch == "gemma2":  # norms before and after the MLP, outside it
        return tf.Gemma2Config(intermediate_size=36, head_dim=8, sliding_window=16, **small)
    if arch == "gemma3":  # the multimodal model (Gemma3ForConditionalGeneration): its text layers under model.language_model
        return tf.Gemma3Config(
            text_config=dict(intermediate_size=52, head_dim=8, sliding_window=16, **small),
            vision_config=dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                               image_size=28, patch_size=14),
            mm_tokens_per_image=4, initializer_range=0.3)
    if arch == "granite":  # multipliers on the embeddings, residuals and logits
        return tf.GraniteConfig(intermediate_size=60, embedding_multiplier=2.0, residual_multiplier=0.5, logits_scaling=2.0,
                                **small)
    if arch == "olmo":  # layer norms without weights
        return tf.OlmoConfig(intermediate_size=68, **small)
    if arch == "olmo2":  # norms after the attention and the MLP, not before
        return tf.Olmo2Config(intermediate_size=72, **small)
    if arch == "phi3":  # gate and up projections fused in one Linear (gate_up_proj)
        return tf.Phi3Config(intermediate_size=76, **small)
    if arch == "qwen3":  # norms on the attention's queries and keys
        return tf.Qwen3Config(intermediate_size=80, head_dim=8, **small)
    if arch == "smollm3":  # every second layer without rotary positions
        return tf.SmolLM3Config(intermediate_size=84, no_rope_layer_interval=2, **small)
    raise InputError(f"no tiny config for {arch!r}; choose one of {TINY_ARCHITECTURES}")


def tiny_model(arch: str = "llama", seed: int = 0) -> LoadedModel:
    """A random-initialised ``arch`` model with the tiny tokenizer, wrapped like a loaded model."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = tiny_tokenizer()
    cfg = tiny_config(arch, vocab_size=len(tok))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    fp = hashlib.sha256(f"tiny:{arch}:{seed}".encode()).hexdigest()[:16]
    return _finish(model, tok, name=f"tiny-{arch}", source=f"tiny:{arch}", loaded_fingerprint=f"tiny:{fp}")


def tiny_model_dying_once(marker: str, arch: str = "llama", seed: int = 0, times: int = 1) -> LoadedModel:
    """:func:`tiny_model` whose process exits in ``generate`` until it has done so ``times`` times (counted
    by the files ``marker``, ``marker.1``, ... it creates first): a model factory for testing what a
    worker killed mid-batch loses."""
    import os

    lm = tiny_model(arch, seed)
    real = lm.model.generate

    def generate(*args, **kwargs):
        for k in range(times):
            try:
                fd = os.open(marker + (f".{k}" if k else ""), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.close(fd)
            os._exit(1)
        return real(*args, **kwargs)

    lm.model.generate = generate
    return lm


def tiny_examples(lm: LoadedModel, n_per_domain: int = 48, system_prompt: str = "answer", max_new_tokens: int = 4):
    """Labelled questions for two domains ("alpha", "beta") whose aliases make about half of the tiny
    model's greedy answers right, so a probe has both classes to learn from."""
    import itertools

    from .calibrate.data import Example
    from .generation import Generator

    words = "capital city country river element symbol author book paris london rome berlin gold silver iron".split()
    gen = Generator(lm, system_prompt=system_prompt, max_new_tokens=max_new_tokens)
    qs = [" ".join(c) + " ?" for c in itertools.islice(itertools.permutations(words, 3), 0, 2 * n_per_domain * 7, 7)]
    answers = gen.generate(qs, batch_size=32, neurons=None)
    out = []
    for i, (q, a) in enumerate(zip(qs, answers)):
        domain = "alpha" if i % 2 == 0 else "beta"
        first = a.text.split()[:1]
        right = (i // 2) % 2 == 0 and first
        out.append(
            Example(id=f"{domain}-{i}", question=q, answers=first if right else ["zzzz"], domain=domain, meta={"fact": f"f{i // 2}"})
        )
    return out


__all__ = [
    "shown_answer", "undelivered_call", "tiny_examples","TINY_ARCHITECTURES", "tiny_config", "tiny_model", "tiny_model_dying_once", "tiny_tokenizer"]


def shown_answer(record: dict[str, Any]) -> str:
    """The text an accepted decision record's answer is shown as (``GuardResult.display_text``): the answer, ending in
    the cut mark when it reached ``max_new_tokens`` (as the tiny models' answers do)."""
    from ._guard_result import CUT_MARK

    return record["answer"] + (CUT_MARK if (record.get("generation") or {}).get("cut_at_max_new_tokens") else "")


def undelivered_call(path) -> tuple[dict, dict, dict]:
    """The (decision, answer_not_delivered, llm_call) records of an audit log holding one call the guard decided and its
    caller never got (a callback handler failing after the decision), each once and joined to the decision: what both
    adapters' audit handlers must leave. Raises AssertionError otherwise."""
    from .audit import AuditLog

    records = list(AuditLog(path))
    kinds = sorted(r["kind"] for r in records)
    if kinds != ["answer_not_delivered", "decision", "llm_call"]:
        raise AssertionError(f"records {kinds}, not one decision, one answer_not_delivered and one llm_call")
    decision, said, call = (next(r for r in records if r["kind"] == k) for k in ("decision", "answer_not_delivered", "llm_call"))
    if not said["decision_audit_id"] == call["decision_audit_id"] == decision["id"]:
        raise AssertionError(f"not joined to decision {decision['id']}: {said['decision_audit_id']}, {call['decision_audit_id']}")
    return decision, said, call


def log_decision(audit, item: dict[str, Any], route: str = "review") -> str:
    """Write the decision record a review item judges, as the guard does before it enqueues the item (the
    record's id is the item's ``audit_id``; question, context and answer as the item holds them): a verdict
    is recorded only beside its decision. For tests that fill a review queue without a guard."""
    fields = {k: item.get(k) for k in ("question", "context", "answer", "domain", "risk", "signals", "reasons")}
    reasons = list(item.get("reasons") or [])
    if item.get("spot_check") and reasons and str(reasons[0]).startswith(SPOT_CHECK_REASON):
        fields["reasons"] = reasons[1:]  # the queue's line: the guard's record holds its own reasons only
    return audit.append({"request_id": item["audit_id"], "route": route, **fields}, kind="decision").id


def guard_queue(path, audit=None, **kw):
    """A :class:`~hguard.review.queue.ReviewQueue` fed as the guard feeds one: with an audit log, each
    enqueued item's decision record (:func:`log_decision`) is written too."""
    from .review.queue import ReviewQueue

    class _GuardFed(ReviewQueue):
        def enqueue(self, item):
            item_id = super().enqueue(item)  # a malformed item is refused before anything is logged
            if self.audit is not None:
                log_decision(self.audit, item, "accept" if item.get("spot_check") else "review")
            return item_id

    return _GuardFed(path, audit=audit, **kw)
