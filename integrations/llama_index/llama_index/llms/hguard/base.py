"""``HGuardLLM``: a LlamaIndex LLM whose every answer went through an hguard ``Guard``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from pydantic import Field, PrivateAttr, ValidationError

from hguard.errors import InputError
from hguard.generation import check_system
from hguard.guard import Guard, GuardResult

from llama_index.core.instrumentation.span import active_span_id
from hguard.errors import strict_bool
from hguard.streaming import (
    answers_as_context,
    asks_for_actions,
    built_from_answers,
    STREAM_MODES,
    GuardedText,
    in_thread,
    StreamMode,
    aguard_stream,
    check_raise_on,
    check_stream_mode,
    context_not_identified,
    decision_metadata,
    adelivering_stream,
    decided_here,
    delivering,
    delivering_stream,
    guard_stream,
    guarded_invoke,
    HISTORY_DECISION,
    held_texts,
    unread_context,
    until_delivered,
    raise_if_routed,
    blank,
    refuse_unknown_settings,
    settings_error,
    to_thread_awake,
    with_text,
)

from .templates import (CONDENSE_STEP, DecidedStream, RAGPrompt, async_stream_decision, earlier_answers, without_held_turns,
                        failed_steps, install_decision_metadata, note_decision, note_failure, note_rewrite, query_step,
                        query_template_step, read_rag_prompt, rewrite_asked, structured_refine, synthesized_nodes)

dispatcher = get_dispatcher(__name__)
CONTEXT_NAME = "context"


_NO_STRUCTURED = (
    "HGuardLLM has no structured output (structured_predict, as_structured_llm): the guard scores free-text answers "
    "(its probes were calibrated on them) and cannot constrain generation to a schema; parse the text downstream"
)
_NO_STRUCTURED_FILTERING = (
    "HGuardLLM has no structured output: this response synthesizer was built with structured_answer_filtering=True "
    "(get_response_synthesizer(..., structured_answer_filtering=True), Refine, CompactAndRefine), which asks the LLM "
    "for JSON (query_satisfied, answer) through LLMTextCompletionProgram; the guard scores free-text answers and "
    "cannot constrain generation to a schema; build the synthesizer without structured_answer_filtering (the guard "
    "holds an answer its passages do not support)"
)
#: content blocks of a chat message the guarded model cannot read (``ChatMessage.content`` leaves them out)
_UNREAD_BLOCKS = frozenset({"ImageBlock", "AudioBlock", "VideoBlock", "DocumentBlock", "ToolCallBlock"})


#: model tokens kept for the question in a packed prompt (LlamaIndex counts a first step's template without it)
QUESTION_TOKENS = 256


def _ratio_texts() -> tuple[str, ...]:
    """Texts of the kinds a model's tokenizer may count in many more tokens than LlamaIndex's (tiktoken splits digits
    in threes, many models one by one): a clause full of figures (the legal team's), numbers with and without
    separators (account numbers, references), a table of amounts and dates, runs of blank lines and spaces, and
    non-Latin scripts; and plain prose."""
    n = range(1, 120)
    return (
        " ".join(f"Section {i}. The Supplier shall deliver the goods described in Schedule {i} within {i + 3} business "
                 f"days of the purchase order, and any delay shall entitle the Buyer to liquidated damages of {i} "
                 "percent of the order value per week." for i in range(1, 40)),
        " ".join(str(i * 7919 % 1000003) for i in n),
        "".join(str(i * 7919 % 1000003) for i in n),
        "\n".join(f"| {i} | {i * 3.14159:.4f} | 2024-{i % 12 + 1:02d}-{i % 28 + 1:02d} | ${i * 1234.5:,.2f} |" for i in n),
        "\n\n\n\n".join(f"Clause {i}.    Notices   shall   be given\tin writing   to the address above." for i in n),
        "The parties agree that this agreement is governed by the laws of the state where the goods are delivered. " * 20,
        "Поставщик обязан поставить товары, описанные в приложении, в течение рабочих дней. " * 20,
        "供应商应在收到采购订单后的营业日内交付附表中所述的货物。" * 20,
        "공급자는 구매 주문을 받은 후 영업일 이내에 부속서에 기재된 상품을 인도해야 한다. " * 20,
        "يجب على المورد تسليم البضائع الموصوفة في الجدول خلال أيام العمل. " * 20,
    )


RATIO_TEXTS = _ratio_texts()


def token_ratio(model_tokens: Any, counted: Any, texts: Sequence[str] = RATIO_TEXTS) -> float:
    """The most tokens the model's tokenizer (``model_tokens``: text -> ids) counts per token of ``counted`` (the
    tokenizer LlamaIndex packs with) over ``texts``, and at least 1: a bound for the text LlamaIndex packs as long as
    that text is no harder for the model's tokenizer than the hardest of them (a harder one can still overrun the
    model's context: the guard refuses that step, and the response is held, naming it). Only a text ``counted`` reads
    as at least :data:`MIN_COUNTED` tokens bounds it: a tokenizer splitting on spaces counted a text without any (run-
    together digits, Chinese) as one token, its ratio of 980 set the window to its floor, and prose went through
    refine 289 tokens at a time (a review)."""
    worst = 1.0
    for text in texts:
        n = len(counted(text))
        if n >= MIN_COUNTED:
            worst = max(worst, len(model_tokens(text)) / n)
    return worst


#: the fewest tokens LlamaIndex's tokenizer must count in a sample text for its ratio to bound the window
MIN_COUNTED = 32


def _llamaindex_tokenizer() -> Any:
    """The tokenizer LlamaIndex's prompt helper counts with (``Settings.tokenizer``), or None when it cannot be had
    (tiktoken missing: LlamaIndex cannot pack either)."""
    try:
        from llama_index.core import Settings

        return Settings.tokenizer
    except Exception:
        return None


def agent_step(messages: Sequence[ChatMessage]) -> bool:
    """Whether the chat is a ReAct agent's step (:func:`hguard.streaming.asks_for_actions` on its messages): such
    a step's held answer is replaced, never marked or streamed."""
    return asks_for_actions([m.content for m in messages])


def split_chat(messages: Sequence[ChatMessage], *, system_as_context: bool = True) -> tuple[str, list[str]]:
    """(question, context passages): the last user message is the question; messages whose
    ``additional_kwargs["name"]`` is ``"context"`` and, with ``system_as_context``, system messages
    are context. Earlier turns are not passed to the guard, which answers one question."""

    def named_context(m: ChatMessage) -> bool:
        return (m.additional_kwargs or {}).get("name") == CONTEXT_NAME

    question = None
    for m in reversed(messages):
        if m.role == MessageRole.USER and not named_context(m):
            question = m.content or ""
            break
    if question is None:
        raise InputError(f"HGuardLLM needs a user message holding the question; got roles {[str(m.role.value) for m in messages]}")
    context = [
        m.content or ""
        for m in messages
        if named_context(m) or (system_as_context and m.role == MessageRole.SYSTEM)
    ]
    return question, with_text(context)


#: the fix named when a setting is refused at construction
_SETTING_FIXES = {"guard": "pass the hguard Guard that answers (Guard.from_policy(...)), or use HGuardLLM.from_policy",
                  "domain": "name a domain of the policy, or leave it out (None) to choose one by similarity",
                  "early_stop": "pass True or False",
                  "system_as_context": "pass True or False"}


class HGuardLLM(CustomLLM):
    """A local Hugging Face chat model guarded by hguard, as a LlamaIndex LLM.

    ``complete(question, context=..., domain=...)`` returns a ``CompletionResponse`` whose ``text``
    is what the user should see (answer on accept, abstain message on abstain, the policy's ``review_message`` on
    review, or ``"[needs review] "`` + answer in a policy without one) and whose ``additional_kwargs`` hold the decision (``route``, ``risk``,
    ``signals``, ``reasons``, ``audit_id``, ``domain``, ``request_id``, ``probe_id``,
    ``thresholds``, ``model_name``). ``chat`` takes the last user message as the question and system
    messages (and messages named ``"context"``) as context.

    Streaming follows ``stream_mode``: ``"hold"`` yields the routed text once decided; ``"passthrough"``
    yields tokens as generated and the decision in the last response's ``additional_kwargs``. With
    ``raise_on``, a stream whose route is in it raises when the decision comes: in ``"hold"`` before any
    text; ``"passthrough"`` beside ``raise_on`` is refused (its tokens would reach the user first).

    Inside LlamaIndex's stock engines (``index.as_query_engine(llm=...)``, ``as_chat_engine`` in its
    default ``condense_plus_context`` mode and in ``context`` mode) the response synthesizer calls
    :meth:`predict` with a prompt template and its variables: ``query_str`` is the question and
    ``context_str`` (``context_msg`` when refining) the retrieved passages the answer is scored
    against; chat history in the template goes to the chat template (and the fingerprint). The
    decision lands in ``response.metadata``. The chat engines' condense step (rewriting a follow-up
    into a standalone question) is generated plainly, not routed as an answer. A prompt that refers to
    context hguard could not read goes to review ("context not identified").
    """

    domain: Optional[str] = Field(default=None, description="Domain of every question; None lets the guard choose.")
    stream_mode: Literal["hold", "passthrough"] = Field(default="hold", description="How streaming treats unchecked tokens.")
    # strict: a string ("no", "false") is refused, not read as a bool (pydantic's coercion took early_stop="yes")
    early_stop: bool = Field(default=False, strict=True,
                             description="Stop once the running risk passes the abstain threshold.")
    system_as_context: bool = Field(default=False, strict=True,
                                    description="Treat system messages as retrieved context instead of instructions.")
    raise_on: frozenset = Field(default=frozenset(), description="Routes ('abstain', 'review') that raise hguard.errors.RouteError.")

    _guard: Guard = PrivateAttr()
    # the packing window, measured once per tokenizer LlamaIndex counts with: (that tokenizer, the window)
    _window: Optional[tuple[Any, int]] = PrivateAttr(default=None)

    def __init__(self, guard: Guard, **kwargs: Any) -> None:
        if not isinstance(guard, Guard):  # HGuardLLM(None) was taken, and failed at the first question
            raise InputError(f"HGuardLLM: guard={guard!r:.60} is not an hguard Guard; {_SETTING_FIXES['guard']}")
        kwargs = refuse_unknown_settings(type(self), kwargs)  # HGuardLLM(g, domian=...) was ignored
        if "raise_on" in kwargs:
            kwargs["raise_on"] = check_raise_on(kwargs["raise_on"])
        check_stream_mode(kwargs.get("stream_mode", "hold"), kwargs.get("raise_on", frozenset()))
        try:
            super().__init__(**kwargs)
        except ValidationError as exc:  # pydantic's four lines and a URL: one line naming the setting and the fix
            raise settings_error(type(self).__name__, exc, _SETTING_FIXES) from None
        self._guard = guard
        install_decision_metadata()

    @classmethod
    def from_policy(cls, policy: str | Path | Any = None, *, model: str | None = None, lm: Any = None, **kwargs: Any) -> "HGuardLLM":
        """Build the guard from a policy file (or ``Policy``) and wrap it; ``kwargs`` set the fields. The model is the
        policy's own unless ``model`` (or ``lm``) names another."""
        from hguard.signals.embedding import get_embedder

        # the shared embedder passed up front (it loads lazily): a Guard that creates it itself while
        # creating its grounding scorer deadlocks on its non-reentrant lazy lock
        return cls(Guard.from_policy(policy, model=model, lm=lm, embedder=get_embedder()), **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "HGuardLLM"

    @property
    def guard(self) -> Guard:
        return self._guard

    @property
    def metadata(self) -> LLMMetadata:
        gen = self._guard.generator
        return LLMMetadata(
            context_window=self._packing_window(),
            num_output=gen.max_new_tokens,
            model_name=self._guard.lm.name,
            is_chat_model=False,
        )

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """What LlamaIndex before 0.14 puts in its LLM events' ``model_dict`` (0.14 sends the metadata): with the
        model's name, which the audit handler's ``llm_call`` records carry (they held None at llama-index-core 0.12)."""
        out = super().to_dict(**kwargs)
        out.setdefault("model_name", self._guard.lm.name)
        return out

    @property
    def tokenizer(self) -> Any:
        """The model's own tokenizer as LlamaIndex takes one (text -> token ids, no special tokens): pass it to a
        ``PromptHelper(tokenizer=...)`` of your synthesizer, or set ``Settings.tokenizer`` to it (a global choice),
        and LlamaIndex counts passages as the model does, so the packing window is the model's whole (see
        :meth:`_packing_window`)."""
        tok = self._guard.lm.tokenizer

        def encode(text: str) -> list[int]:
            return list(tok(text, add_special_tokens=False)["input_ids"])

        encode.hguard_model_tokenizer = self._guard.lm.name  # type: ignore[attr-defined]
        return encode

    def _packing_window(self) -> int:
        """The window LlamaIndex packs passages into, so a packed prompt fits the model's context. LlamaIndex counts
        with its own tokenizer (``Settings.tokenizer``: tiktoken unless set), and digit-heavy text is up to three
        times as many tokens in a model's (a legal team's clause: 8,165 tokens packed into a window of 7,312 told
        as 8,192 less the framing and a tenth, and the step was refused). The window is the model's, less hguard's own
        framing of a RAG prompt (its system prompt and context template, which replace the synthesizer's template),
        the new tokens and :data:`QUESTION_TOKENS` for the question (which LlamaIndex does not count in a first
        step), divided by the most model tokens per LlamaIndex token over :data:`RATIO_TEXTS` (:func:`token_ratio`),
        plus the new tokens LlamaIndex reserves itself. Measured once per tokenizer LlamaIndex counts with: with
        :attr:`tokenizer` as ``Settings.tokenizer`` the ratio is 1 and the window the model's whole."""
        counted_with = _llamaindex_tokenizer()
        if self._window is None or self._window[0] is not counted_with:
            self._window = (counted_with, self._window_for(token_ratio(self.tokenizer, counted_with)
                                                           if counted_with is not None else 1.0))
        return self._window[1]

    def _window_for(self, ratio: float) -> int:
        """The packing window for a tokenizer counting ``ratio`` times fewer tokens than the model's, at most."""
        gen = self._guard.generator
        limit = gen.context_limit or 2048
        try:
            framing = len(gen.prompt_ids("?", "."))
        except Exception:  # a framing that cannot be measured: leave a fixed share instead
            framing = limit // 10
        new = gen.max_new_tokens
        room = limit - framing - new - min(QUESTION_TOKENS, limit // 8)
        return max(256, new + int(room / ratio))

    def prompt_helper(self, **kwargs: Any) -> Any:
        """A ``PromptHelper`` counting with the model's own tokenizer, in the window that then fits (nearly the model's
        whole): ``get_response_synthesizer(llm=llm, prompt_helper=llm.prompt_helper())``, without setting LlamaIndex's
        process-wide ``Settings.tokenizer``. ``kwargs`` go to the ``PromptHelper`` (``chunk_overlap_ratio``, ...)."""
        from llama_index.core.indices.prompt_helper import PromptHelper

        return PromptHelper(context_window=self._window_for(1.0), num_output=self._guard.generator.max_new_tokens,
                            tokenizer=self.tokenizer, **kwargs)

    # ---------------------------------------------------------------------------------- helpers

    def _options(self, prompt: Any, kwargs: dict[str, Any]) -> tuple[Any, Optional[str], StreamMode, bool, dict[str, Any], bool]:
        if not isinstance(prompt, str):
            err = InputError(f"HGuardLLM takes the question (prompt) as a string, got {type(prompt).__name__}: {prompt!r:.80}")
            self._failed(err)  # closes the call's audit record as failed
            raise err
        if structured_refine():  # read as an answer, its whole prompt was the question, with no passages
            refused = NotImplementedError(_NO_STRUCTURED_FILTERING)  # not a ValueError: Refine would swallow it
            self._failed(refused)
            raise refused
        kw = dict(kwargs)
        agent = bool(kw.pop(_AGENT_STEP, False)) or asks_for_actions([prompt])  # a chat's, or a completion prompt's
        context = kw.pop("context", None)
        domain = kw.pop("domain", None) or self.domain
        mode = check_stream_mode(kw.pop("stream_mode", self.stream_mode), self.raise_on)
        if agent:  # an agent parses what it is streamed: nothing unchecked may reach it
            mode = "hold"
        try:  # "no" was read as True
            early_stop = strict_bool("HGuardLLM", "early_stop", kw.pop("early_stop", self.early_stop),
                                     ", or leave it out for the setting's")
        except InputError as err:  # on record, as the guard records the requests it refuses (the id on the error)
            self._guard.record_failure(prompt, err, context=context, domain=domain, source="HGuardLLM")
            self._failed(err)
            raise
        call: dict[str, Any] = {k: kw.pop(k) for k in ("history", "system", "problems", "stop") if k in kw}
        own = self.system_prompt if not blank(self.system_prompt or "") else None
        if own and not str(call.get("system") or "").startswith(own):
            # the LLM's own system prompt is an instruction every answer is given under, whatever the entry point
            call["system"] = "\n\n".join(x for x in (own, call.get("system")) if x)
        if kw:
            raise TypeError(
                f"HGuardLLM got unexpected keyword argument(s) {sorted(kw)}; it accepts context=, domain=, "
                f"stream_mode= ({', '.join(STREAM_MODES)}), early_stop=, history=, system= and stop="
            )
        return context, domain, mode, early_stop, call, agent

    def decision(self, result: GuardResult) -> dict[str, Any]:
        """What goes into ``additional_kwargs``: the decision and the model's name."""
        return {"model_name": self._guard.lm.name, **decision_metadata(result)}

    def _chat_kwargs(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        try:
            return self._read_chat(messages, kwargs)
        except InputError as exc:  # on record, as the guard records the requests it refuses (the id on the error)
            chat = "\n".join(f"{getattr(m.role, 'value', m.role)}: {m.content}" for m in messages)
            self._guard.record_failure(chat, exc, domain=kwargs.get("domain") or self.domain, source="HGuardLLM")
            note_failure(exc)
            raise

    def _read_chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        for i, m in enumerate(messages):  # a message's content is its text blocks: anything else would be dropped
            unread = [type(b).__name__ for b in getattr(m, "blocks", None) or () if type(b).__name__ in _UNREAD_BLOCKS]
            if unread:
                raise InputError(
                    f"HGuardLLM reads text only: message {i} ({m.role.value}) holds {', '.join(dict.fromkeys(unread))}; "
                    "the guarded model cannot read it, so an answer would ignore it (a question about it answered "
                    "without it); pass its text (a caption, a transcript, the document's text) as a TextBlock or as "
                    "context")
        question, passages = split_chat(messages, system_as_context=self.system_as_context)
        kw = dict(kwargs)
        if agent_step(messages):
            kw[_AGENT_STEP] = True
        if kw.get("context") is None and passages:
            kw["context"] = passages
        history, system = [], []
        q_at = max(i for i, m in enumerate(messages) if m.role == MessageRole.USER and (m.additional_kwargs or {}).get("name") != CONTEXT_NAME)
        after = [f"{i} ({m.role.value})" for i, m in enumerate(messages) if i > q_at and m.role != MessageRole.SYSTEM
                 and (m.additional_kwargs or {}).get("name") != CONTEXT_NAME]
        if after:  # answered as if the chat ended with the question, the later turns were dropped without a word
            raise InputError(f"HGuardLLM answers the last user message, but message(s) {', '.join(after)} come after it; "
                             "end the chat with the question (earlier turns are the conversation history)")
        for i, m in enumerate(messages):  # a system message after the question is an instruction too, as ChatHGuard
            if i == q_at or (m.additional_kwargs or {}).get("name") == CONTEXT_NAME:  # reads it (it was dropped unsaid)
                continue
            if m.role == MessageRole.SYSTEM:
                if not self.system_as_context:  # a blank one is refused, as Guard.invoke(system="") is
                    system.append(check_system(m.content or "", f"HGuardLLM: system message {i}") or "")
            elif m.role in (MessageRole.USER, MessageRole.ASSISTANT):
                turn: dict[str, Any] = {"role": "user" if m.role == MessageRole.USER else "assistant", "content": m.content or ""}
                decided = m.additional_kwargs or {}
                if m.role == MessageRole.ASSISTANT and isinstance(decided.get("route"), str):  # an answer hguard
                    # decided: a held one holds the follow-up (hguard.streaming.held_history_turn)
                    turn[HISTORY_DECISION] = {k: decided.get(k) for k in ("route", "audit_id")}
                history.append(turn)
            else:
                raise InputError(f"HGuardLLM answers from user, assistant and system messages; got role {m.role.value!r}")
        if history:
            kw["history"] = history
        if system:
            kw["system"] = "\n\n".join(system)
        return question, kw

    def _problems(self, call: dict[str, Any], prompt: str, context: Any) -> None:
        """Set the call's ``problems``: the caller's (a stock engine's, read from its template), else a context its
        prompt refers to but none was passed, and the model calls of the same request that failed before this one (a
        refine step refused as over the model's window, which the synthesizer swallowed): the guard holds the answer
        itself, naming them."""
        call.setdefault("problems", self._unread_context(prompt, context))
        failed = failed_steps()
        if failed:
            call["problems"] = [*call["problems"], *failed]

    def _unread_context(self, prompt: str, context: Any) -> list[str]:
        seen = unread_context(prompt) if context is None else None
        if seen is not None:
            return [context_not_identified(
                f"{seen} but none was passed; pass context=, or use a stock LlamaIndex engine or "
                "HGuardQueryEngine, whose retrieved passages are read from the prompt template"
            )]
        return []

    # ---------------------------------------------------------------------------- stock engines

    def _rag_call(self, prompt: Any, prompt_args: dict[str, Any]) -> RAGPrompt | None:
        nodes, one_call = synthesized_nodes()
        rag = read_rag_prompt(prompt, prompt_args, llm=self, nodes=nodes, one_call=one_call)
        rewritten = rewrite_asked(rag.question) if rag is not None else None
        if rag is not None and rewritten is not None:
            rag.problems.append(rewritten)
        passages = [rag.context] if rag is not None and isinstance(rag.context, str) else (rag.context or []) if rag else []
        own, others = earlier_answers() if rag is not None and passages else ([], [])
        if rag is not None and passages and any(built_from_answers(p, own, others) for p in passages):
            # a summary of what the model answered before (tree_summarize): no retrieved passage grounds it, and a
            # held earlier answer must not come back accepted inside it
            rag.problems.append(answers_as_context(
                "a combining response mode such as tree_summarize, a sub-question engine or a router summarising them",
                "use response_mode 'compact' or 'refine', or HGuardQueryEngine, and deliver each answer with its own "
                "decision"))
        return rag

    def predict(self, prompt: Any, output_cls: Any = None, **prompt_args: Any) -> str:
        """A stock engine's call: a RAG prompt template is answered as question + retrieved context
        (scored); other templates are formatted and answered as one question. Returns a
        :class:`hguard.streaming.GuardedText` (a ``str`` carrying the decision)."""
        step = query_template_step(prompt) if output_cls is None else None
        if step is not None:
            return self._search_text(prompt.format(llm=self, **prompt_args), step).text
        rag = self._rag_call(prompt, prompt_args)
        if rag is None:
            return super().predict(prompt, output_cls=output_cls, **prompt_args) if output_cls else super().predict(prompt, **prompt_args)
        r = self.complete(rag.question, formatted=True, context=rag.context, **rag.kwargs())
        out = GuardedText(r.text, r.additional_kwargs)
        note_decision(out, self.guard)
        return out

    async def apredict(self, prompt: Any, output_cls: Any = None, **prompt_args: Any) -> str:
        step = query_template_step(prompt) if output_cls is None else None
        if step is not None:
            return (await to_thread_awake(self._search_text, prompt.format(llm=self, **prompt_args), step)).text
        rag = self._rag_call(prompt, prompt_args)
        if rag is None:
            return await (super().apredict(prompt, output_cls=output_cls, **prompt_args) if output_cls else super().apredict(prompt, **prompt_args))
        r = await self.acomplete(rag.question, formatted=True, context=rag.context, **rag.kwargs())
        out = GuardedText(r.text, r.additional_kwargs)
        note_decision(out, self.guard)
        return out

    def stream(self, prompt: Any, **prompt_args: Any) -> Any:
        rag = self._rag_call(prompt, prompt_args)
        if rag is None:
            return super().stream(prompt, **prompt_args)
        decided = DecidedStream(self.stream_complete(rag.question, formatted=True, context=rag.context, **rag.kwargs()),
                                self.guard)
        return (token for token in decided)  # a generator: tree_summarize's streaming path accepts nothing else

    async def astream(self, prompt: Any, **prompt_args: Any) -> Any:
        """The async streaming synthesizer's call (``aquery`` with ``streaming=True``, a chat engine's
        ``astream_chat``): a RAG template is answered and scored as :meth:`stream` does."""
        rag = self._rag_call(prompt, prompt_args)
        if rag is None:
            return await super().astream(prompt, **prompt_args)
        pieces = await self.astream_complete(rag.question, formatted=True, context=rag.context, **rag.kwargs())

        async def tokens() -> Any:
            async for r in pieces:
                if r.additional_kwargs.get("route") is not None:
                    note_decision(GuardedText(r.text, r.additional_kwargs), self.guard)
                    async_stream_decision.set(dict(r.additional_kwargs))  # for the response's metadata
                if r.delta:
                    yield r.delta

        return tokens()

    def _search_text(self, prompt: str, step: str) -> CompletionResponse:
        """A stock prompt asking for text to search with (a chat engine's condense step, QueryFusionRetriever's
        queries, HyDE's passage): generated plainly (no decision, no review mark), recorded as a
        ``retrieval_query`` audit record."""
        if step == CONDENSE_STEP:  # a held turn's message in the chat history is no answer to rewrite from
            prompt = without_held_turns(prompt, held_texts(self._guard))
        q = self._guard.rewrite_query(prompt, step=f"LlamaIndex {step}")
        note_rewrite(q.text, step, q.audit_id)
        meta = {"hguard_step": "retrieval_query", "route": None, "retrieval_query_audit_id": q.audit_id}
        return CompletionResponse(text=q.text, additional_kwargs=meta)

    @staticmethod
    def _failed(exc: BaseException) -> None:
        # LlamaIndex emits no event when a non-streaming call raises; this one lets audit handlers
        # close the call's record as failed. Noted for the request: an engine that swallows it must not deliver
        # another step's answer as if nothing had failed.
        note_failure(exc)
        dispatcher.event(ExceptionEvent(exception=exc))

    # --------------------------------------------------------------------------- not supported

    def structured_predict(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_NO_STRUCTURED)

    async def astructured_predict(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_NO_STRUCTURED)

    def stream_structured_predict(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_NO_STRUCTURED)

    async def astream_structured_predict(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_NO_STRUCTURED)

    def as_structured_llm(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_NO_STRUCTURED)

    # ------------------------------------------------------------------------------- completion

    # Each call runs LlamaIndex's callback wrapper inside hguard.streaming.delivering (a stream: delivering_stream,
    # adelivering_stream): a legacy CallbackManager handler whose on_event_end raises after the guard decided (an
    # exporter down) leaves the call's llm_call record failed, joined to the decision (LlamaIndex then dispatches no
    # end event), and the decision said undelivered unless the caller had taken its streamed response.

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        with delivering(self._guard):
            return self._complete_call(prompt, formatted, **kwargs)

    @llm_completion_callback()
    def _complete_call(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._complete(prompt, formatted, **kwargs)

    def _complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        context, domain, _, early_stop, call, agent = self._options(prompt, kwargs)
        step = query_step(prompt) if context is None and not formatted else None
        if step is not None:
            return self._search_text(prompt, step)
        self._problems(call, prompt, context)
        try:
            result = raise_if_routed(guarded_invoke(self._guard, prompt, context, domain, early_stop=early_stop, **call),
                                     self.raise_on)
        except BaseException as exc:  # a KeyboardInterrupt, a raise_on route too: the call's record is closed as failed
            self._failed(exc)
            raise
        decided_here([result], active_span_id.get())  # said undelivered if the call raises before returning it
        return CompletionResponse(text=result.withheld_text if agent else result.display_text,
                                  additional_kwargs=self.decision(result))

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await until_delivered(self._guard, lambda: self._acomplete_call(prompt, formatted, **kwargs))

    @llm_completion_callback()
    async def _acomplete_call(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await self._acomplete(prompt, formatted, **kwargs)

    async def _acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        context, domain, _, early_stop, call, agent = self._options(prompt, kwargs)
        step = query_step(prompt) if context is None and not formatted else None
        if step is not None:
            return await to_thread_awake(self._search_text, prompt, step)
        self._problems(call, prompt, context)
        cancel = threading.Event()  # set when the caller leaves: the generation stops at its next token
        span = active_span_id.get()
        try:
            result = raise_if_routed(await in_thread(
                self._guard, guarded_invoke, self._guard, prompt, context, domain, early_stop=early_stop,
                run_id=span, cancel_event=cancel, cancel=cancel,
                unstarted=lambda: self._guard.record_cancelled(prompt, context=context, domain=domain, source="HGuardLLM",
                                                               run_id=span),
                **call), self.raise_on)
        except BaseException as exc:  # cancelled (a timeout), a raise_on route too: the llm_call record the
            self._failed(exc)  # answer_not_delivered record's run_id names is then written, as failed
            raise
        decided_here([result], span)  # as _complete
        return CompletionResponse(text=result.withheld_text if agent else result.display_text,
                                  additional_kwargs=self.decision(result))

    def _response(self, text: str, piece: Any, mode: str, agent: bool = False,
                  span: Optional[str] = None) -> tuple[str, CompletionResponse]:
        """The text so far and the response for one streamed piece; the decided piece raises when its route
        is in ``raise_on`` (in passthrough the tokens before it were already streamed; in hold none were). An
        agent's step (held, see :func:`agent_step`) gets the answer only when accepted."""
        if piece.result is None:
            text += piece.text
            return text, CompletionResponse(text=text, delta=piece.text)
        raise_if_routed(piece.result, self.raise_on)
        decided_here([piece.result], span)  # said undelivered if the stream raises before its end (span: the call's)
        delta = piece.result.withheld_text if agent else piece.text
        if mode == "hold":  # the only chunk: the routed text
            text = delta
        else:  # passthrough: the held answer's notice (hguard.streaming.held_notice) ends the text too
            text += delta
        return text, CompletionResponse(text=text, delta=delta, additional_kwargs=self.decision(piece.result))

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return delivering_stream(self._guard, lambda: self._stream_complete_call(prompt, formatted, **kwargs))

    @llm_completion_callback()
    def _stream_complete_call(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return self._stream_complete(prompt, formatted, **kwargs)

    def _stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        context, domain, mode, early_stop, call, agent = self._options(prompt, kwargs)
        self._problems(call, prompt, context)
        span = active_span_id.get()  # the call's span: its llm_call record, if the stream is left, is joined by it

        def gen() -> CompletionResponseGen:
            text = ""
            try:
                for piece in guard_stream(self._guard, prompt, context, domain, mode, early_stop=early_stop, run_id=span,
                                          **call):
                    text, response = self._response(text, piece, mode, agent, span)
                    yield response
            except Exception as exc:  # refused or failed while read: the request's later steps and response say it
                note_failure(exc)
                raise

        return gen()

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        return await adelivering_stream(self._guard, lambda: self._astream_complete_call(prompt, formatted, **kwargs))

    @llm_completion_callback()
    async def _astream_complete_call(self, prompt: str, formatted: bool = False,
                                     **kwargs: Any) -> CompletionResponseAsyncGen:
        return await self._astream_complete(prompt, formatted, **kwargs)

    async def _astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        context, domain, mode, early_stop, call, agent = self._options(prompt, kwargs)
        self._problems(call, prompt, context)
        span = active_span_id.get()

        async def gen() -> CompletionResponseAsyncGen:
            text = ""
            try:
                async for piece in aguard_stream(self._guard, prompt, context, domain, mode, early_stop=early_stop,
                                                 run_id=span, **call):
                    text, response = self._response(text, piece, mode, agent, span)
                    yield response
            except Exception as exc:
                note_failure(exc)
                raise

        return gen()

    # ------------------------------------------------------------------------------------- chat

    @staticmethod
    def _chat_response(r: CompletionResponse) -> ChatResponse:
        if r.additional_kwargs.get("route") is not None:  # a chat engine's response carries it (``chat_mode="simple"``)
            note_decision(GuardedText(r.text, r.additional_kwargs))
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=r.text, additional_kwargs=r.additional_kwargs),
            delta=r.delta,
            raw=r.raw,
            additional_kwargs=r.additional_kwargs,
        )

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        with delivering(self._guard):  # as complete
            return self._chat_call(messages, **kwargs)

    @llm_chat_callback()
    def _chat_call(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        question, kw = self._chat_kwargs(messages, kwargs)
        return self._chat_response(self._complete(question, formatted=True, **kw))  # one call: the chat's events only

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await until_delivered(self._guard, lambda: self._achat_call(messages, **kwargs))  # as complete

    @llm_chat_callback()
    async def _achat_call(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        question, kw = self._chat_kwargs(messages, kwargs)
        return self._chat_response(await self._acomplete(question, formatted=True, **kw))

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return delivering_stream(self._guard, lambda: self._stream_chat_call(messages, **kwargs))  # as complete

    @llm_chat_callback()
    def _stream_chat_call(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        question, kw = self._chat_kwargs(messages, kwargs)
        responses = self._stream_complete(question, formatted=True, **kw)

        def gen() -> ChatResponseGen:
            for r in responses:
                yield self._chat_response(r)

        return gen()

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return await adelivering_stream(self._guard, lambda: self._astream_chat_call(messages, **kwargs))  # as complete

    @llm_chat_callback()
    async def _astream_chat_call(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        question, kw = self._chat_kwargs(messages, kwargs)
        responses = await self._astream_complete(question, formatted=True, **kw)

        async def gen() -> ChatResponseAsyncGen:
            async for r in responses:
                yield self._chat_response(r)

        return gen()


_AGENT_STEP = "_hguard_agent_step"  # set by the chat methods, never by a caller

__all__ = ["HGuardLLM", "QUESTION_TOKENS", "RATIO_TEXTS", "agent_step", "split_chat", "token_ratio"]
