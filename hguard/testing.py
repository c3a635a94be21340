"""Test doubles shipped with the library: tiny random-initialised models of every supported
architecture, built from a config with a tiny word-level tokenizer, so that tests (ours and users')
exercise the real hooks, generation and guard without downloading anything.

For an application's own tests (README, "Testing an application that uses hguard"): :func:`tiny_guard` starts a guard
on a tiny model whose answers, still scored by tiny probes (:func:`tiny_probes`, calibrated once into a folder the
caller gives and shared by pytest-xdist workers), go to the route a test asks for (:data:`ROUTES`, :func:`tiny_policy`),
its audit log, review queue and monitor state in a folder of the test's own. It runs only a tiny model, whose name
(``tiny-<arch>``) every record it writes carries. :func:`shown_answer`, :func:`undelivered_call`, :func:`log_decision`
and :func:`guard_queue` check and fill audit logs and review queues.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ._policy_route import SPOT_CHECK_REASON
from .errors import InputError, shown
from .models import LoadedModel, _finish

if TYPE_CHECKING:
    from .guard import Guard
    from .policy import Policy

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


#: the hand-set thresholds of a domain that send each of its scored answers (any risk below 1.0) to one route
ROUTES: dict[str, dict[str, float]] = {
    "accept": {"accept_below": 1.0, "abstain_above": 1.0},
    "review": {"accept_below": 0.0, "abstain_above": 1.0},
    "abstain": {"accept_below": 0.0, "abstain_above": 0.0},
}
#: the domains :func:`tiny_probes` calibrates, and the generation settings they were calibrated with
TINY_DOMAINS = ("alpha", "beta")
TINY_SYSTEM_PROMPT = "answer"
TINY_MAX_NEW_TOKENS = 4
_MARK = "hguard-tiny.json"  # what a finished calibration was made for, written last
_WRITTEN = {"data.jsonl", "probes", _MARK, _MARK + ".tmp"}  # all tiny_probes writes into its folder


def _calibrated_for(arch: str, seed: int) -> dict[str, Any]:
    """What a tiny calibration holds for: the model (its architecture, seed and the versions that initialise its
    weights) and the hguard that wrote its probes."""
    import torch
    import transformers

    from . import __version__

    return {"arch": arch, "seed": seed, "hguard": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__}


def tiny_probes(folder: str | os.PathLike[str], arch: str = "llama", seed: int = 3) -> Path:
    """The probe folder (``folder/probes``) of domains "alpha" and "beta" (:data:`TINY_DOMAINS`) for
    ``tiny_model(arch, seed)``, calibrated on :func:`tiny_examples` (system prompt "answer", 4 new tokens) into
    ``folder`` the first time (about a minute) and reused after. A lock file beside it (``folder.lock``) makes callers
    at once (pytest-xdist workers, processes sharing ``folder``) wait for one calibration. A calibration made for
    another model, hguard, torch or transformers version is made again; a folder holding files of its own is refused
    (:class:`~hguard.errors.InputError`), never emptied. The probes are unsigned whatever key the environment holds
    (:func:`tiny_policy` does not require signed probes)."""
    import json
    import shutil
    import warnings

    from filelock import FileLock

    if arch not in TINY_ARCHITECTURES:
        raise InputError(f"no tiny model of architecture {arch!r}; choose one of {TINY_ARCHITECTURES}")
    folder = Path(folder).expanduser().absolute()
    folder.parent.mkdir(parents=True, exist_ok=True)
    wanted = _calibrated_for(arch, seed)
    with FileLock(f"{folder}.lock"):
        mark = folder / _MARK
        try:
            if json.loads(mark.read_text(encoding="utf-8")) == wanted:
                return folder / "probes"
        except (OSError, ValueError):  # none yet, or a calibration stopped before its end: made again
            pass
        if folder.is_dir():
            # tiny_probes' own folder carries its mark (or the mark of a calibration it started): without one, every
            # file is the user's, named as tiny_probes names its own or not (`hguard calibrate --data data.jsonl
            # --out probes` leaves those names)
            ours = mark.exists() or (folder / (_MARK + ".tmp")).exists()
            theirs = sorted(p.name for p in folder.iterdir() if not ours or p.name not in _WRITTEN)
            if theirs:
                raise InputError(f"the folder {str(folder)!r} holds files tiny_probes did not write "
                                 f"({', '.join(theirs[:5])}); give it a folder of its own, new or empty "
                                 f"(e.g. {str(folder / 'hguard-tiny')!r})")
            for name in sorted(_WRITTEN):
                shutil.rmtree(folder / name) if (folder / name).is_dir() else (folder / name).unlink(missing_ok=True)
        folder.mkdir(exist_ok=True)
        (folder / (_MARK + ".tmp")).write_text(json.dumps({"started": wanted}), encoding="utf-8")  # the folder is ours
        from .calibrate.data import write_examples
        from .calibrate.pipeline import calibrate

        lm = tiny_model(arch, seed)
        write_examples(folder / "data.jsonl", tiny_examples(lm, system_prompt=TINY_SYSTEM_PROMPT,
                                                            max_new_tokens=TINY_MAX_NEW_TOKENS))
        with warnings.catch_warnings():  # a random model's probes "do not beat chance": expected here
            warnings.simplefilter("ignore")
            calibrate([folder / "data.jsonl"], folder / "probes", lm=lm, system_prompt=TINY_SYSTEM_PROMPT,
                      max_new_tokens=TINY_MAX_NEW_TOKENS, progress=False, plots=False, signing_key=None)
        (folder / (_MARK + ".tmp")).write_text(json.dumps(wanted), encoding="utf-8")
        os.replace(folder / (_MARK + ".tmp"), mark)
    return folder / "probes"


def tiny_policy(probes: str | os.PathLike[str], runs: str | os.PathLike[str], route: str = "accept", *,
                domain: Mapping[str, Any] | None = None, **settings: Any) -> "Policy":
    """A policy for :func:`tiny_probes`' folder ``probes`` whose domains "alpha" and "beta" send every scored answer
    to ``route`` ("accept", "review" or "abstain": :data:`ROUTES`), with the audit log (``runs/audit.jsonl``), review
    queue (``runs/review.sqlite3``) and monitor state in ``runs``. For tests: no spot-checks (``spot_check_rate = 0``:
    they pick accepted answers at random, by record id), out-of-distribution questions and context read by the
    closed-book probes are warned about, not reviewed, and unsigned probes are served whatever key the environment
    holds. ``domain``: more settings of both domains; ``settings``: more top-level keys (``review_message``, ...).
    A request the guard cannot score (another domain, a failed signal) still goes to review."""
    from .policy import Policy

    if route not in ROUTES:
        raise InputError(f"route {route!r} is not one a test guard forces; pass one of {', '.join(ROUTES)}")
    runs = Path(runs).expanduser().absolute()
    each = {**ROUTES[route], "out_of_distribution": "warn", "context_with_closed_book_probe": "allow",
            "spot_check_rate": 0.0, **(domain or {})}
    return Policy.from_mapping({
        "version": 1, "probes": str(probes),
        "audit": {"path": str(runs / "audit.jsonl")}, "review": {"queue": str(runs / "review.sqlite3")},
        "monitor": {"seed": "hguard-testing", "state": str(runs / "monitor-state.json")},
        "generation": {"max_new_tokens": TINY_MAX_NEW_TOKENS, "system_prompt": TINY_SYSTEM_PROMPT},
        "integrity": {"require_signed_probes": False},
        "domains": {name: dict(each) for name in TINY_DOMAINS}, **settings,
    })


# what every tiny guard says at start, and a test need not read: its thresholds are set by hand to force a route,
# and a random model's probes carry no signal
_EXPECTED_AT_START = r"domain '(alpha|beta)'(: accept_below .* is set by hand|.*: the probe does not beat chance)"


def tiny_guard(folder: str | os.PathLike[str], runs: str | os.PathLike[str], route: str = "accept", *,
               arch: str = "llama", seed: int = 3, domain: Mapping[str, Any] | None = None, embedder: Any = None,
               **settings: Any) -> "Guard":
    """A guard for an application's tests: ``tiny_model(arch, seed)`` answering, scored by the probes
    :func:`tiny_probes` calibrated once into ``folder``, under :func:`tiny_policy` (``route``, ``domain`` and
    ``settings`` as there), its audit log, review queue and monitor state in ``runs`` (a test's ``tmp_path``). Ask
    with ``domain="alpha"`` (or "beta"): a question automatic domain choice matches to neither goes to review. It runs
    the tiny model only (its records name ``tiny-<arch>``): another model is refused; a guard of your own model is
    ``Guard.from_policy(policy, lm=...)``. The start warnings of its hand-set thresholds and chance-level probes are
    not shown; any other is."""
    import warnings

    from .guard import Guard

    for key in ("lm", "model"):
        if key in settings:
            raise InputError(f"tiny_guard runs only hguard.testing.tiny_model(arch, seed), not a {key} of your own "
                             f"({key}={shown(settings[key], 60)}); pass arch= and seed=, or start a guard on your model "
                             "with Guard.from_policy(policy, lm=...)")
    probes = tiny_probes(folder, arch, seed)
    policy = tiny_policy(probes, runs, route, domain=domain, **settings)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_EXPECTED_AT_START, category=UserWarning)
        return Guard.from_policy(policy, lm=tiny_model(arch, seed), embedder=embedder)


__all__ = [
    "ROUTES", "TINY_ARCHITECTURES", "TINY_DOMAINS", "TINY_MAX_NEW_TOKENS", "TINY_SYSTEM_PROMPT", "guard_queue",
    "log_decision", "shown_answer", "tiny_config", "tiny_examples", "tiny_guard", "tiny_model", "tiny_model_dying_once",
    "tiny_policy", "tiny_probes", "tiny_tokenizer", "undelivered_call"]


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
