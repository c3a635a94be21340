"""How ``HGuardLLM`` reads LlamaIndex's stock RAG calls.

LlamaIndex's response synthesizers (behind ``index.as_query_engine`` and the ``context`` and
``condense_plus_context`` chat engines) call ``llm.predict(template, context_str=..., query_str=...)``
(``context_msg`` and ``existing_answer`` when refining). The template variables say which text is the
question and which the retrieved passages, so the guard answers the question with the passages as
context and scores the answer against them, through its own calibrated prompt framing. A chat
template's other messages are the conversation history (or a system instruction when they hold no
passages). The stock prompts that ask for text to search with, not an answer (the chat engines' condense
prompt, QueryFusionRetriever's query generation, HyDE's hypothetical passage), are recognised by their
fixed text (:func:`query_step`).

The decision reaches ``response.metadata``: the synthesizer keeps only the answer's text (its pydantic
models turn a :class:`hguard.streaming.GuardedText` back into a plain ``str``), so ``HGuardLLM`` notes
each decision on the instrumentation span it was made in (:func:`note_decision`), and
:func:`install_decision_metadata` adds a span handler that carries it up the span tree, to the query or
chat call of the same request, and copies it into the ``metadata`` of the response it returns when the
response's text is that answer's. Decisions never cross requests: two answers with the same text (two
abstentions) keep their own.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import re

import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

from llama_index.core.base.llms.types import MessageRole
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.schema import MetadataMode
from llama_index.core.instrumentation.span.simple import SimpleSpan

from hguard._numerics import finite_number
from hguard.errors import error_text, one_line
from hguard.streaming import (CHAT_FORMAT_MARKS, GuardedText, appears_in, blank, label_only, nothing_retrieved,
                              question_label_only, with_text)


@dataclass
class RAGPrompt:
    """A stock RAG call read from its template: question, passages, history, instruction."""

    question: str
    # None: the retrieval gave no passage with text (the call goes to review, nothing retrieved); a list: the retrieved
    # nodes' own text, read from the rendered context (:func:`node_passages`)
    context: Optional[str | list[str]]
    history: list[dict] = field(default_factory=list)
    system: Optional[str] = None
    problems: list[str] = field(default_factory=list)  # why the answer must go to review whatever its risk

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.history:
            out["history"] = self.history
        if self.system:
            out["system"] = self.system
        if self.problems:
            out["problems"] = self.problems
        return out


def _stock_context_templates() -> tuple[str, ...]:
    """The chat engines' stock templates of the system message that holds the passages (the ``context`` and
    ``condense_plus_context`` engines', answer and refine): an engine's ``system_prompt`` is appended to them."""
    found = []
    for module, names in (("llama_index.core.chat_engine.context", ("DEFAULT_CONTEXT_TEMPLATE", "DEFAULT_REFINE_TEMPLATE")),
                          ("llama_index.core.chat_engine.condense_plus_context",
                           ("DEFAULT_CONTEXT_PROMPT_TEMPLATE", "DEFAULT_CONTEXT_REFINE_PROMPT_TEMPLATE"))):
        for name in names:
            try:
                template = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):  # pragma: no cover - another LlamaIndex without this prompt
                continue
            if isinstance(template, str):
                found.append(template)
    return tuple(sorted(found, key=len, reverse=True))


STOCK_CONTEXT_TEMPLATES = _stock_context_templates()


def instruction_beside_passages(template: Any, text: str, context: str) -> str | None:
    """The instruction in the system message holding the passages (``text``, formatted from ``template`` with
    ``context``), or None. A chat engine appends its ``system_prompt`` to its stock template there
    (``as_chat_engine(system_prompt=...)``): the instruction is what follows the stock template. A custom template
    (``context_template=``, ``context_prompt=``) cannot be told from an instruction: its whole text besides the
    passages is one. The guard answers through its own framing in the template's place, so the instruction was
    dropped with the template, unsaid and unrecorded, and the answer routed as if none had been given (a hospital's
    trial: "never give doses for children"; a reviewer's, with a custom template)."""
    raw = getattr(template, "content", None)
    stock = next((t for t in STOCK_CONTEXT_TEMPLATES if raw.startswith(t)), None) if isinstance(raw, str) else None
    rest = raw[len(stock):] if isinstance(raw, str) and stock is not None else text.replace(context, "\n")
    return " ".join(" ".join(x for x in rest.splitlines() if not label_only(x)).split()) or None


def _template_texts(value: Any) -> list[str]:
    """The fixed texts of a prompt constant: a string, a template's ``template`` (``template_str``: a
    ``RichPromptTemplate``'s), or a chat template's (or a list of chat messages') contents."""
    if isinstance(value, str):
        return [value]
    for name in ("template", "template_str"):
        if isinstance(getattr(value, name, None), str):
            return [getattr(value, name)]
    messages = value if isinstance(value, (list, tuple)) else getattr(value, "message_templates", None) or []
    return [m.content for m in messages if isinstance(getattr(m, "content", None), str)]


#: the modules of LlamaIndex's own templates that a synthesizer call reads as a RAG call: the answer templates (text
#: QA, refine, tree summarize, the chat variants', the citation and SQL engines'), and the other steps' that pass
#: ``query_str`` and a context (evaluators, query transforms, node postprocessors, FLARE)
_STOCK_TEMPLATE_MODULES = (
    "llama_index.core.prompts.default_prompts", "llama_index.core.prompts.chat_prompts",
    "llama_index.core.query_engine.citation_query_engine", "llama_index.core.indices.struct_store.sql_query",
    "llama_index.core.evaluation.context_relevancy", "llama_index.core.evaluation.faithfulness",
    "llama_index.core.evaluation.relevancy", "llama_index.core.evaluation.dataset_generation",
    "llama_index.core.evaluation.multi_modal.faithfulness", "llama_index.core.evaluation.multi_modal.relevancy",
    "llama_index.core.indices.query.query_transform.base", "llama_index.core.postprocessor.node",
    "llama_index.core.postprocessor.pii", "llama_index.core.query_engine.flare.base",
)


@functools.cache
def stock_answer_templates() -> frozenset[str]:
    """LlamaIndex's own templates (:data:`_STOCK_TEMPLATE_MODULES`), whitespace collapsed: their text around the
    passages and the question only frames them. Read once, when first needed."""
    found: set[str] = set()
    for module in _STOCK_TEMPLATE_MODULES:
        try:
            constants = vars(importlib.import_module(module))
        except Exception:  # pragma: no cover - another LlamaIndex without this module
            continue
        found.update(" ".join(t.split()) for name, v in constants.items() if name.isupper() for t in _template_texts(v))
    return frozenset(found)


#: the variables of a synthesizer's call that hold the question, the passages or the model's earlier answer: taken
#: out of a template to leave the app's own words; any other variable is read with its value
ANSWER_VARIABLES = ("query_str", "context_str", "context_msg", "context_messages", "existing_answer")
_MARK = "\x00hguard:{}\x00"


def instruction_around_question(prompt: Any, raw: Optional[str], at: int, llm: Any, args: dict[str, Any]) -> str | None:
    """The app's instruction in a custom template's message that asks the question (``text_qa_template=``,
    ``refine_template=``, a chat template's user message, a ``RichPromptTemplate``): message ``at`` of ``prompt``
    formatted with the call's ``args``, the question, passages and earlier answer (:data:`ANSWER_VARIABLES`) taken
    out, labels alone on their line ("Context:", "Query:", "Answer:") and fences left out; other variables keep their
    values ("in the style of {tone_name}"). None for LlamaIndex's own templates (``raw``, the template's own text,
    is one of :func:`stock_answer_templates`). The guard answers through its own framing in the template's place, so
    "Reply only in German" in a custom ``text_qa_template`` was dropped with it: never given to the model,
    fingerprinted or recorded (the LangChain adapter's human-message template likewise). As for a custom
    ``context_template``, a custom template's framing cannot be told from an instruction."""
    if isinstance(raw, str) and " ".join(raw.split()) in stock_answer_templates():
        return None
    marks = {v: _MARK.format(v) for v in ANSWER_VARIABLES}
    try:
        text = prompt.format_messages(llm=llm, **{**args, **marks})[at].content or ""
    except Exception:  # formatted as the call formats it: a template that cannot be fails there, not here
        return None
    lines = CHAT_FORMAT_MARKS.sub(" ", re.sub("\x00hguard:\\w+\x00", "\n", text)).splitlines()
    return " ".join(" ".join(x for x in lines if not label_only(x) and not question_label_only(x)).split()) or None


def _selected(prompt: Any, llm: Any) -> Any:
    """The template a selector prompt (``SelectorPromptTemplate``) gives this LLM, or the prompt itself."""
    select = getattr(prompt, "select", None)
    if callable(select):
        try:
            return select(llm=llm)
        except Exception:  # pragma: no cover - a selector of another shape: read as it is
            return prompt
    return prompt


def node_passages(context: str, nodes: Sequence[Any]) -> list[str] | None:
    """The passages of a rendered context (``context_str``: each node's text under its metadata lines, as
    ``get_content(metadata_mode=LLM)`` renders it) as the nodes' own text, a node whose own text is blank as ``""``
    (the guard leaves it out and says so, as for any list of passages); None when the context is not made of the
    nodes' rendered texts alone (a node split between two refine steps, a synthesizer's own text), which is then read
    whole. Rendered, a blank page of "Schedule_7_Arbitration.pdf" was a passage made of its file name, and its
    metadata counted as passage text for grounding and for the check that the passages hold the question's words."""
    rest = " ".join(context.split())
    passages = []
    for n in nodes:
        node = getattr(n, "node", n)  # a NodeWithScore, or a node
        try:
            own = node.get_content(metadata_mode=MetadataMode.NONE)
            rendered = " ".join(node.get_content(metadata_mode=MetadataMode.LLM).split())
        except Exception:  # not a node LlamaIndex renders: the context is read whole
            return None
        if not isinstance(own, str) or not isinstance(rendered, str):
            return None
        if rendered and rendered not in rest:
            continue  # another refine step's passage
        rest = rest.replace(rendered, " ", 1) if rendered else rest
        passages.append("" if blank(own) else own)
    return passages if passages and blank(rest) else None


#: how much of a node's opening (its rendered text's first words) a context must hold for the node to count as cut
#: at its end, not left out (a cut can fall inside a word: a shorter opening at the context's very end counts too)
_OPENING_WORDS = 8
_MIN_OPENING_CHARS = 10


def nodes_not_given(context: str, nodes: Sequence[Any]) -> str | None:
    """Why an answer goes to review when the one call of a synthesizer that gives all its nodes to a single prompt
    (LlamaIndex's ``SimpleSummarize``, ``response_mode="simple_summarize"``) holds only part of them: it truncates the
    joined nodes to the packing window, so the model saw the first passages whole, the next one cut and none of the
    rest, while ``response.source_nodes`` lists them all (a RAG team's trial: 2 of 6 passages whole, the context ending
    mid-passage, accepted with no word of the cut). None when every node is whole in ``context``, or the nodes are
    not ones LlamaIndex renders."""
    context = " ".join(context.split())
    whole = cut = pos = 0  # pos: where the next node's text starts (SimpleSummarize joins them in order, then cuts)
    for n in nodes:
        node = getattr(n, "node", n)  # a NodeWithScore, or a node
        try:
            rendered = " ".join(node.get_content(metadata_mode=MetadataMode.LLM).split())
        except Exception:  # not a node LlamaIndex renders: nothing to count
            return None
        rest = context[pos:]  # each node at its own place: a short one inside a cut longer one before it is not given
        if rendered and (at := rest.find(rendered)) >= 0:
            whole, pos = whole + 1, pos + at + len(rendered)
            continue
        opening = " ".join(rendered.split()[:_OPENING_WORDS])
        if opening and (opening in rest or any(rest.endswith(opening[:k])
                                               for k in range(len(opening) - 1, _MIN_OPENING_CHARS - 1, -1))):
            cut, pos = cut + 1, len(context)  # the cut one runs to the prompt's end: the rest were left out
    if whole == len(nodes):
        return None
    missing = [f"{cut} cut at the end of the prompt" if cut else "", f"{len(nodes) - whole - cut} left out" if len(nodes) - whole - cut else ""]
    return (f"passages not given whole: the model was given {whole} of the {len(nodes)} retrieved passages whole "
            f"({', '.join(m for m in missing if m)}): the simple_summarize response mode truncates the passages to one "
            "prompt of the model's packing window, so part of the retrieved passages never reached the model while "
            "the response's source_nodes list them all, and the answer cannot stand as accepted; use response_mode "
            "'compact' (it refines over the passages that do not fit), retrieve fewer or shorter passages, or use "
            "HGuardQueryEngine")


def read_rag_prompt(prompt: Any, args: dict[str, Any], llm: Any = None, nodes: Sequence[Any] = (),
                    one_call: bool = False) -> RAGPrompt | None:
    """The question and passages of a stock synthesizer call, or None when the template is not one.
    Variables come from the call and from the template's partial format (the synthesizer binds
    ``query_str`` that way). ``nodes``: the nodes the synthesizer was given, when known
    (:func:`synthesized_nodes`): the passages are then their own text (:func:`node_passages`); ``one_call``: the
    synthesizer gives them all to this one call (``SimpleSummarize``), so any it does not hold whole were cut or left
    out (:func:`nodes_not_given`), a problem of the call."""
    prompt = _selected(prompt, llm)  # a selector's chat template is read as one (its system message was dropped)
    call_args = dict(args)
    args = {**(getattr(prompt, "kwargs", None) or {}), **args}
    question = args.get("query_str")
    context = args.get("context_str", args.get("context_msg", args.get("context_messages")))
    if isinstance(context, (list, tuple)) and context:  # simple_summarize passes its truncated chunks as a list
        parts = [c if isinstance(c, str) else getattr(c, "content", None) for c in context]
        texts = [p for p in parts if isinstance(p, str)]
        context = "\n".join(texts) if len(texts) == len(parts) else None
    if not isinstance(question, str) or not isinstance(context, str):
        return None
    passages = node_passages(context, nodes) if nodes else None
    if blank(context) or (passages is not None and not with_text(passages)):
        # nodes of whitespace or invisible characters alone (under their metadata lines): asked from passages, none
        # has text
        return RAGPrompt(question, None, problems=[nothing_retrieved("the retriever")])
    not_given = nodes_not_given(context, nodes) if nodes and one_call else None
    history: list[dict] = []
    system: list[str] = []
    format_messages = getattr(prompt, "format_messages", None)
    if callable(format_messages):  # a chat template, a plain one (one user message), a RichPromptTemplate's blocks
        messages = format_messages(llm=llm, **{k: v for k, v in args.items() if k not in (getattr(prompt, "kwargs", None) or {})})
        last_user = max((i for i, m in enumerate(messages) if m.role == MessageRole.USER), default=None)
        templates = list(getattr(prompt, "message_templates", None) or [])
        for i, m in enumerate(messages):
            text = m.content or ""
            if i != last_user and appears_in(context, [text]) and m.role == MessageRole.SYSTEM:
                # an engine's system_prompt after its stock template, or a custom template's own text
                own = instruction_beside_passages(templates[i] if len(templates) == len(messages) else None, text, context)
                if own is not None:
                    system.append(own)
            if i == last_user:  # the app's words around the question, if any
                raw = getattr(templates[i], "content", None) if len(templates) == len(messages) else (
                    None if templates else next(iter(_template_texts(prompt)), None))
                asked = instruction_around_question(prompt, raw, i, llm, call_args)
                if asked is not None:
                    system.append(asked)
            if i == last_user or appears_in(context, [text]):
                continue  # the question, and the template that holds the passages
            if m.role == MessageRole.SYSTEM:
                if not blank(text):
                    system.append(text)
            elif m.role in (MessageRole.USER, MessageRole.ASSISTANT):
                history.append({"role": "user" if m.role == MessageRole.USER else "assistant", "content": text})
    return RAGPrompt(question, passages if passages is not None else context, history, "\n\n".join(system) or None,
                     problems=[not_given] if not_given else [])


def _whole_template(template: str) -> re.Pattern[str]:
    """A pattern for the whole of a stock template as formatted: its fixed text, exactly, with anything in
    its variables' places (a prompt that only opens like it is no such call)."""
    parts = [re.escape(p) for p in re.split(r"\{[A-Za-z_][A-Za-z0-9_]*\}", template.strip())]
    return re.compile(r"\s*" + "(?s:.*)".join(parts) + r"\s*", re.DOTALL)


#: the step of the stock chat engines' condense prompt (``condense_plus_context``'s and ``condense_question``'s)
CONDENSE_STEP = "chat engine: condense the follow-up into a question"


def without_held_turns(prompt: str, held: Sequence[str]) -> str:
    """A chat engine's condense prompt without the assistant turns of its chat history ("assistant: ..." lines, as
    LlamaIndex writes the history there) that are only a held answer's message (``held``:
    :func:`hguard.streaming.held_texts`). The engine's memory keeps that message as the assistant's answer, and the
    model rewrote the follow-up from it: a legal team's trial searched for a garbled "This answer is held ..." in 3 of
    6 follow-ups. The user's own earlier message stays (a follow-up refers to it); an answer marked "[needs review] "
    (a policy without a review message) is the model's answer, and stays too."""
    role = re.escape(MessageRole.ASSISTANT.value)
    for text in held:
        prompt = re.sub(rf"(?m)^[ \t]*{role}: {re.escape(text)}[ \t]*(?:\n|\Z)", "", prompt)
    return prompt


def _query_prompts() -> tuple[tuple[re.Pattern[str], str, str], ...]:
    """(whole-template pattern, step, template) of the stock prompts that ask the model for text to search with (or
    for the retrieved passages to keep)."""
    found = []
    for module, name, step in (
        ("llama_index.core.chat_engine.condense_plus_context", "DEFAULT_CONDENSE_PROMPT_TEMPLATE", CONDENSE_STEP),
        ("llama_index.core.chat_engine.condense_question", "DEFAULT_TEMPLATE", CONDENSE_STEP),
        ("llama_index.core.retrievers.fusion_retriever", "QUERY_GEN_PROMPT",
         "QueryFusionRetriever: generate search queries"),
        ("llama_index.core.prompts.default_prompts", "HYDE_TMPL",
         "HyDEQueryTransform: write a hypothetical passage to search with"),
        # not text to search with, but the same kind of step: which retrieved passages to keep. Its reply is parsed
        # ("Doc: 1, Relevance: 8"), never shown; a held one (the review message) dropped every passage, and the
        # user got "Empty Response" with no reason. The answer from the passages kept is guarded as ever.
        ("llama_index.core.prompts.default_prompts", "DEFAULT_CHOICE_SELECT_PROMPT_TMPL",
         "LLMRerank: choose the passages to answer from"),
        # likewise the steps that choose where to ask and what: RouterQueryEngine's selector (which engine or tool),
        # SubQuestionQueryEngine's question generator (the sub-questions, as JSON). Held, their replies could not be
        # parsed and every query failed ("No valid JSON found"), leaving a junk item for reviewers; the answers of
        # the engines they pick, and the final one, are guarded as ever.
        ("llama_index.core.selectors.prompts", "DEFAULT_SINGLE_SELECT_PROMPT_TMPL",
         "LLMSingleSelector: choose the engine or tool to ask"),
        ("llama_index.core.selectors.prompts", "DEFAULT_MULTI_SELECT_PROMPT_TMPL",
         "LLMMultiSelector: choose the engines or tools to ask"),
        ("llama_index.core.question_gen.prompts", "DEFAULT_SUB_QUESTION_PROMPT_TMPL",
         "LLMQuestionGenerator: write the sub-questions to ask"),
        # and the query rewrites of MultiStepQueryEngine and TransformQueryEngine: held, the hold message was searched
        ("llama_index.core.indices.query.query_transform.prompts", "DEFAULT_DECOMPOSE_QUERY_TRANSFORM_TMPL",
         "DecomposeQueryTransform: rewrite the question for the index"),
        ("llama_index.core.indices.query.query_transform.prompts", "DEFAULT_STEP_DECOMPOSE_QUERY_TRANSFORM_TMPL",
         "StepDecomposeQueryTransform: write the next question to ask"),
    ):
        try:
            template = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):  # pragma: no cover - another LlamaIndex without this prompt
            continue
        if isinstance(template, str) and "{" in template:
            found.append((_whole_template(template), step, template))
            if module.endswith(".selectors.prompts"):  # as the selectors' from_defaults build it: with the output
                from llama_index.core.output_parsers.selection import SelectionOutputParser  # parser's instructions

                formatted = SelectionOutputParser().format(template)
                if formatted != template:
                    found.append((_whole_template(formatted), step, formatted))
    return tuple(found)


QUERY_PROMPTS = _query_prompts()


def query_step(prompt: str) -> str | None:
    """The step, when ``prompt`` is a stock prompt asking for text to search with (a chat engine's condense
    step, QueryFusionRetriever's query generation, HyDE's hypothetical passage), formatted whole: the
    template's fixed text from its start to its end, only the variables' places free. No answer to route.
    Read only on the raw ``complete(text)`` calls those engines make: a user's text that copies such a prompt
    reaches ``chat`` or a synthesizer's ``predict``, which route it."""
    return next((step for pattern, step, _ in QUERY_PROMPTS if pattern.fullmatch(prompt)), None)


def query_template_step(prompt: Any) -> str | None:
    """The step, when ``prompt`` (a prompt template object handed to ``predict``, as the condense-question chat
    engine and HyDE hand theirs) is one of those stock prompts: known by its template, never by text a
    user could type."""
    template = getattr(prompt, "template", None)
    if template is None:  # a SelectorPromptTemplate (LLMRerank's): its default template, the one this LLM is given
        template = getattr(getattr(prompt, "default_template", None), "template", None)
    if not isinstance(template, str):
        return None
    return next((step for _, step, stock in QUERY_PROMPTS if template.strip() == stock.strip()), None)


_NOTED: dict[str, list[tuple[str, dict]]] = {}  # span id -> (answer text, decision) made inside it
# span id -> texts of those noted there that an engine of the request answered (handed up out of a query engine's
# span, or noted by HGuardQueryEngine): another engine's answers, whatever span they now sit on
_ENGINES: dict[str, list[str]] = {}
# open synthesize span id -> (the nodes it was given, whether it gives them all to one call: SimpleSummarize)
_NODES: dict[str, tuple[list[Any], bool]] = {}
_PARENTS: dict[str, Optional[str]] = {}  # open span id -> its parent span id
_LOCK = threading.Lock()
_MAX_OPEN = 100_000  # spans that never close (abandoned generators) are forgotten past this many


_OWNERS: dict[str, Any] = {}  # a noted decision's audit id -> the guard that made it (to say it undelivered)


def note_decision(text: GuardedText, guard: Any = None, *, engine: bool = False) -> None:
    """Note a stock engine answer's decision on the span it was made in, for the response of its request
    (and ``guard``, which made it: a step the response does not deliver is said undelivered in its log);
    ``engine``: the answer of a query engine (HGuardQueryEngine's), which has no span of its own."""
    span = active_span_id.get()
    if span is None:  # outside any instrumented call there is no response to carry it to
        return
    with _LOCK:
        _NOTED.setdefault(span, []).append((text.text, text.decision))
        if engine:
            _ENGINES.setdefault(span, []).append(text.text)
        if guard is not None and text.decision.get("audit_id"):
            _OWNERS[str(text.decision["audit_id"])] = guard


_FAILED: dict[str, list[dict]] = {}  # span id -> the guarded model calls that failed inside it (handed up as spans close)


def note_failure(exc: BaseException) -> None:
    """Note a guarded model call of this request that failed (the guard refused it, or it raised) on the span it
    failed in, from where it is handed up as the spans close. LlamaIndex's compact and refine synthesizers catch a
    ``ValueError`` or ``TypeError`` from the LLM (hguard's ``InputError`` is one) and go on with the other steps: the
    response then carried another step's answer and its decision, an ``accept`` among them, while part of the
    retrieved passages never reached the model (a legal team's trial: a clause over the model's window). A later
    step's answer goes to review naming the failure (:func:`failed_steps`), and a response whose answer was decided
    before the failure is held when its request ends (:class:`DecisionToMetadata`)."""
    span = active_span_id.get()
    if span is None:  # outside any instrumented call the error reaches the caller
        return
    failure = {"span_id": span, "error": one_line(error_text(exc), 300)}  # never raising: the error itself is raised
    refused = getattr(exc, "audit_id", None)  # the guard's own error record of a request it refused
    if isinstance(refused, str) and refused:
        failure["error_audit_id"] = refused
    with _LOCK:
        _FAILED.setdefault(span, []).append(failure)


def failed_step(failure: dict) -> str:
    """The reason naming one failed model call of the request (its span id, as its ``llm_call`` record holds it, the
    error and the guard's ``error`` record of it)."""
    record = f", error record {failure['error_audit_id']}" if failure.get("error_audit_id") else ""
    return (f"a model step of this request failed: {failure['span_id']} ({failure['error']}{record}); the engine went "
            "on without it, so part of the retrieved passages never reached the model and the response cannot stand "
            "as accepted")


def failed_steps() -> list[str]:
    """The reasons naming the model calls of this request that failed so far (noted at the active span and the spans
    above it, up to the request's span: a query engine's ``query``, a chat engine's turn), for a later step's call to
    carry as ``problems`` (the guard then holds its answer itself)."""
    span = active_span_id.get()
    found: list[str] = []
    with _LOCK:
        while span is not None:
            found += [failed_step(f) for f in _FAILED.get(span, [])]
            if _REQUEST.search(span):
                break
            span = _PARENTS.get(span)
    return list(dict.fromkeys(found))


_REWRITES: dict[str, list[tuple[str, str, str | None]]] = {}  # span id -> (text the model wrote to search with, its
# step, its retrieval_query record id), noted on the span that asked for it (the chat call around a condense step)


def note_rewrite(text: str, step: str, audit_id: str | None) -> None:
    """Note text the model wrote to search with (a chat engine's condensed question) on the span that asked for it,
    the parent of the call's own span, so that a later answer of the same request to that text is known for one."""
    span = active_span_id.get()
    if span is None:
        return
    with _LOCK:
        owner = _PARENTS.get(span) or span
        _REWRITES.setdefault(owner, []).append((" ".join(text.split()), step, audit_id))


def rewrite_asked(question: str) -> str | None:
    """Why an answer to ``question`` goes to review when ``question`` is text the model wrote earlier in the same
    request (a condense-question chat engine asks its query engine the model's rewrite of the user's message, without
    the conversation: the record held the rewrite as the question, and a follow-up was scored as a new question);
    None otherwise."""
    q = " ".join(question.split())
    span = active_span_id.get()
    with _LOCK:
        while span is not None:
            found = next(((step, aid) for t, step, aid in _REWRITES.get(span, []) if t == q), None)
            if found is not None:
                step, aid = found
                where = f"retrieval_query record {aid}" if aid else "the condense step's retrieval_query record"
                return ("question not identified: the question answered is the model's rewrite of the user's message "
                        f"({step}; {where} holds the message and the conversation), asked without the conversation, so "
                        "a follow-up is answered and scored as a new question; use chat_mode='condense_plus_context' or "
                        "'context', which answer the user's own message with its history")
            span = _PARENTS.get(span)
    return None


#: the nodes of the synthesizer whose streaming response is being read: its LLM call runs as the stream is read, after
#: the synthesizer's span has closed (the streamed passages were the nodes rendered under their metadata lines)
_streamed_nodes: contextvars.ContextVar[Optional[tuple[list, bool]]] = contextvars.ContextVar("hguard_streamed_nodes",
                                                                                                default=None)


def synthesized_nodes() -> tuple[list[Any], bool]:
    """The nodes the nearest enclosing response synthesizer (``synthesize``, ``asynthesize``: a stock query engine's,
    a chat engine's) was given, or those of the streaming response being read, or ``[]``; and whether that synthesizer
    gives them all to one model call (``SimpleSummarize``, truncating them to fit: :func:`nodes_not_given`)."""
    streamed = _streamed_nodes.get()
    if streamed is not None:
        return streamed
    return _nearest(_NODES, ([], False))


def _nearest(table: dict[str, Any], default: Any) -> Any:
    """What ``table`` (open span id -> value) holds for the active span or the nearest span above it, else
    ``default``."""
    span = active_span_id.get()
    with _LOCK:
        while span is not None:
            if span in table:
                return table[span]
            span = _PARENTS.get(span)
    return default


#: open span id of a response synthesizer's method (``synthesize``, ``Refine.get_response``, ...) -> whether that
#: synthesizer asks its LLM for structured output (``structured_answer_filtering=True``)
_STRUCTURED: dict[str, bool] = {}


def _structured_filtering(synthesizer: Any) -> Optional[bool]:
    """Whether ``synthesizer`` (a span's instance) is a response synthesizer filtering answers with structured output
    (``Refine`` / ``CompactAndRefine`` built with ``structured_answer_filtering=True``); None when it is no response
    synthesizer."""
    try:
        from llama_index.core.response_synthesizers.base import BaseSynthesizer
    except ImportError:  # pragma: no cover - another LlamaIndex without it
        return None
    if not isinstance(synthesizer, BaseSynthesizer):
        return None
    return getattr(synthesizer, "_structured_answer_filtering", False) is True


def structured_refine() -> bool:
    """Whether the nearest response synthesizer enclosing this call filters its answers with structured output
    (``structured_answer_filtering=True``): LlamaIndex then asks this LLM, not a function-calling one, for JSON through
    ``LLMTextCompletionProgram`` (its whole prompt, passages and JSON schema, as one ``complete`` text), which the
    guard cannot answer as a RAG call nor constrain to the schema."""
    return bool(_nearest(_STRUCTURED, False))


def _one_call(synthesizer: Any) -> bool:
    """Whether ``synthesizer`` gives all its nodes to one model call, truncated to fit (``SimpleSummarize``)."""
    try:
        from llama_index.core.response_synthesizers import SimpleSummarize
    except ImportError:  # pragma: no cover - another LlamaIndex without it
        return False
    return isinstance(synthesizer, SimpleSummarize)


def earlier_answers() -> tuple[list[str], list[str]]:
    """The texts of the answers this request's guarded calls gave so far, noted on the active span and the spans
    above it up to the request's span (a query engine's ``query``, a chat engine's turn: a second question answered
    in one outer span, a workflow step, is another request): (those of the enclosing synthesizer's own earlier
    steps, noted at or below its span: an accumulate or refine chunk, a tree_summarize leaf; those of other engines
    of the request: noted above it, or handed up out of an engine's query: a sub-question engine's or a router's)."""
    span = active_span_id.get()
    own: list[str] = []
    others: list[str] = []
    mine = True
    with _LOCK:
        while span is not None:
            engines = _ENGINES.get(span, [])
            for t, _ in _NOTED.get(span, []):  # an engine's answer is another's wherever it sits (a router's
                (others if not mine or t in engines else own).append(t)  # summary has no synthesize span)
            if _SYNTHESIZE.search(span):
                mine = False
            if _REQUEST.search(span):
                break
            span = _PARENTS.get(span)
    return own, others


_SEVERITY = {"accept": 0, "review": 1, "abstain": 2}


def _strictness(decision: dict) -> tuple[int, float]:
    """How strict a decision is: its route (an unknown one counts as review), then its risk (a missing or NaN one
    counts as the highest: the guard could not tell)."""
    risk = finite_number(decision.get("risk"))
    return _SEVERITY.get(str(decision.get("route")), 1), float("inf") if risk is None else risk


def combined_decision(text: str, noted: list[tuple[str, dict]]) -> dict | None:
    """The decision of a response that joins guarded answers (``accumulate``,
    ``compact_accumulate``): the strictest of theirs (its route, an unknown one counting as review, then its risk),
    whose risk, signals, reasons and request id it keeps, with every decision's audit id; None unless one of the
    noted answers is in ``text`` (one chunk's "Response 1: ...")."""
    parts = [d for t, d in noted if t.strip() and t in text]
    if not parts:
        return None
    worst = max(parts, key=_strictness)  # one answer's figures: the risk of one beside the reasons of another
    route = worst.get("route") if worst.get("route") in _SEVERITY else "review"  # contradicted the record
    return {**worst, "route": route, "audit_id": None, "audit_ids": [d.get("audit_id") for d in parts],
            "reasons": [f"the response joins {len(parts)} guarded answer(s) (a combining response mode): the strictest "
                        f"of theirs holds (decision {worst.get('audit_id')}, route {route}), its risk, signals and "
                        "reasons below", *list(worst.get("reasons") or [])]}


def _say_superseded(noted: list[tuple[str, dict]], delivered: dict | None, span: str) -> None:
    """Say undelivered each decision made for a response that the response does not deliver: a refine step
    answered afresh from the next passages, a chunk's answer a summary replaced (an accepted first step stood in
    the log as an answer a user had received). Once per decision (a chat engine's response wraps its query's).
    ``delivered`` None: a streamed response not read to its end, whose own answer is decided as its stream is read,
    after every one decided before it was returned (:meth:`DecisionToMetadata.prepare_to_exit_span`)."""
    from types import SimpleNamespace

    given = {delivered.get("audit_id"), *(delivered.get("audit_ids") or [])} - {None} if delivered is not None else set()
    what = (f"delivered decision {', '.join(map(str, sorted(given)))}" if delivered is not None else
            "streams a later step's answer, decided as the stream is read")
    for _, d in noted:
        aid = d.get("audit_id")
        with _LOCK:
            guard = _OWNERS.pop(str(aid), None) if aid and aid not in given else None
        if guard is not None:
            guard.record_undelivered(SimpleNamespace(audit_id=aid, route=d.get("route")), (
                f"a later step of the same response replaced it (a refine or summarising response mode, a router's or "
                f"sub-question engine's summary); the response {what}"), run_id=span)


def _forget_owners(noted: list[tuple[str, dict]]) -> None:
    """Drop the guards of decisions no span holds any more (the request's outermost span closed): kept, every answered
    query left an entry, and every guard a service replaced stayed alive (a soak: 1,000 entries per 1,000 queries)."""
    with _LOCK:
        for _, d in noted:
            _OWNERS.pop(str(d.get("audit_id")), None)


def _close(span: str, to_parent: bool) -> tuple[list[tuple[str, dict]], list[dict]]:
    """The decisions made inside ``span`` (now closing), handed on to its parent when ``to_parent``, and the model
    calls that failed inside it, always handed on (a failed call's span is dropped; its request goes on)."""
    with _LOCK:
        failed = _FAILED.pop(span, [])
        if failed and _PARENTS.get(span) in _PARENTS:
            _FAILED.setdefault(str(_PARENTS[span]), []).extend(failed)
        noted = _NOTED.pop(span, [])
        engines = _ENGINES.pop(span, [])
        _REWRITES.pop(span, None)
        _NODES.pop(span, None)
        _STRUCTURED.pop(span, None)
        parent = _PARENTS.pop(span, None)
        if to_parent and noted and parent is not None and parent in _PARENTS:
            _NOTED.setdefault(parent, []).extend(noted)
            handed = [t for t, _ in noted] if _QUERY.search(span) else engines  # out of a query: an engine's
            if handed:
                _ENGINES.setdefault(parent, []).extend(handed)
    return noted, failed


def _held_after_failure(text: str, decision: dict, failed: list[dict], span: str) -> tuple[dict, str]:
    """The decision of a response whose request had a model call fail that its answer's own call did not name (the
    call failed after the answer was decided: the refine step after it), and the text the caller is shown: an
    accepted answer is held for review (the policy's review message, or the answer marked) with a reason naming the
    failed call, and an ``answer_not_delivered`` record says that the accept was not delivered as one."""
    from types import SimpleNamespace

    from hguard._guard_result import REVIEW_MARK

    given = list(decision.get("reasons") or [])
    # named by the answer's own call (the guard held it itself: "scoring problem: ...") or by an earlier pass
    reasons = [r for r in dict.fromkeys(failed_step(f) for f in failed) if not any(r in g for g in given)]
    if not reasons:
        return decision, text
    route = decision.get("route")
    aid = decision.get("audit_id")
    if route != "accept":  # held already (review, abstain): the failure is said beside the guard's reasons
        return {**decision, "reasons": [*reasons, *given]}, text
    with _LOCK:
        guard = _OWNERS.get(str(aid)) if aid else None
    said = (f"held for review after the guard's decision {aid} accepted it, since a model step of the same request "
            "failed after it (below); the audit log's answer_not_delivered record of that decision says so (the review "
            "queue holds no item for it: check the answer from the request's records)")
    if guard is not None:
        guard.record_undelivered(SimpleNamespace(audit_id=aid, route=route), (
            f"the response delivered this answer held for review, not accepted: a later model step of the same "
            f"request failed ({'; '.join(f['span_id'] + ': ' + f['error'] for f in failed)})"), run_id=span)
    domain = guard.policy.domain(decision.get("domain")) if guard is not None and decision.get("domain") else None
    message = ((domain.review_message if domain is not None else None) or guard.policy.review_message) if guard else None
    held = message if message is not None else REVIEW_MARK + text
    return {**decision, "route": "review", "reasons": [said, *reasons, *given]}, held


def _renote(parent: Optional[str], old: tuple[str, dict], new: tuple[str, dict]) -> None:
    """Replace a noted answer handed on to ``parent`` by what its response now delivers (held), so that a response
    wrapping it (a chat engine's around its synthesizer's) carries the held decision."""
    with _LOCK:
        noted = _NOTED.get(parent, []) if parent is not None else []
        for i, entry in enumerate(noted):
            if entry is old:
                noted[i] = new


class DecisionToMetadata(BaseSpanHandler[SimpleSpan]):
    """Copies the guard's decision into a returned response's ``metadata`` (query and chat engines)."""

    @classmethod
    def class_name(cls) -> str:
        return "HGuardDecisionToMetadata"

    def new_span(self, id_: str, bound_args: Any, instance: Any = None, parent_span_id: Optional[str] = None, tags: Any = None, **kwargs: Any) -> Optional[SimpleSpan]:
        with _LOCK:
            if len(_PARENTS) >= _MAX_OPEN:
                _PARENTS.clear()
                _NOTED.clear()
                _ENGINES.clear()
                _OWNERS.clear()
                _REWRITES.clear()
                _NODES.clear()
                _FAILED.clear()
                _STRUCTURED.clear()
            _PARENTS[id_] = parent_span_id
            structured = _structured_filtering(instance)
            if structured is not None:
                _STRUCTURED[id_] = structured
            nodes = getattr(bound_args, "arguments", {}).get("nodes") if _SYNTHESIZE.search(id_) else None
            if isinstance(nodes, (list, tuple)):  # the passages its LLM calls are given, rendered
                _NODES[id_] = (list(nodes), _one_call(instance))
        return None

    def prepare_to_exit_span(self, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kwargs: Any) -> Optional[SimpleSpan]:
        ended = _stream_ended(result)  # read inside this span: its decision is the one delivered, nothing left to wrap
        read = dict(result.metadata) if ended and "audit_id" in (result.metadata or {}) else None
        with _LOCK:
            nodes = _NODES.get(id_)  # a synthesizer's: its stream's LLM call reads them when the stream is read
        stream = None if ended else getattr(result, "response_gen", None)
        if stream is not None and type(result).__name__ == "StreamingResponse":
            result.response_gen = _fill_when_consumed(stream, result, nodes)
        elif stream is not None and type(result).__name__ == "AsyncStreamingResponse":
            result.response_gen = _afill_when_consumed(stream, result, nodes)  # its metadata stayed empty
        with _LOCK:
            parent = _PARENTS.get(id_)
            handed_on = parent in _PARENTS  # its decisions go on to the span around it
        noted, failed = _close(id_, to_parent=True)  # a chat engine wraps its query's response in its own
        try:
            if type(result).__name__ in _STREAMED:
                # its answer is decided as the stream is read (the last step of a refine or tree_summarize runs then):
                # every answer decided inside this span before it returned is an earlier step the stream replaced (a
                # streamed refine left its accepted first step in the log as delivered; a legal team's trial), except
                # the stream's own, when it was read to its end before the span returned it (RetryQueryEngine reads it
                # to evaluate it, an app's handler streams it to the user): that one is the answer delivered
                _say_superseded(noted, read, id_)
                return None
            text = getattr(result, "response", None)
            if isinstance(text, str) and text and hasattr(result, "metadata") and type(result).__name__ in _RESPONSES:
                if "audit_id" in (result.metadata or {}):
                    # the response already carries its own decision (HGuardQueryEngine's, or one a span inside this one
                    # gave it: a sub-question engine's summary, from its synthesizer): the other answers made inside
                    # this one (the sub-answers it summarised) were not delivered, as a router's are said not to be
                    _say_superseded(noted, result.metadata, id_)
                    return None
                found = next((entry for entry in reversed(noted) if entry[0] == text), None)
                decision = found[1] if found is not None else combined_decision(text, noted)
                if decision is not None:
                    if failed:  # a model call failed after this answer was decided: held, said, and in the log
                        decision, held = _held_after_failure(text, decision, failed, id_)
                        if found is not None and held != text:
                            result.response = held
                            _renote(parent, found, (held, decision))
                    result.metadata = {**(result.metadata or {}), **decision}
                    _say_superseded(noted, decision, id_)
        finally:
            if not handed_on:
                _forget_owners(noted)
        return None

    def prepare_to_drop_span(self, id_: str, bound_args: Any, instance: Any = None, err: Any = None, **kwargs: Any) -> Optional[SimpleSpan]:
        _forget_owners(_close(id_, to_parent=False)[0])  # a failed call returns no response to carry a decision
        return None


_RESPONSES = ("Response", "AgentChatResponse")
_STREAMED = ("StreamingResponse", "AsyncStreamingResponse")  # a synthesizer's or query engine's streamed response
_UNKNOWN = object()


def _stream_ended(result: Any) -> bool:
    """Whether ``result`` is a streamed response whose stream was read to its end before its span returned it (its
    reader filled its ``metadata`` with the stream's decision at the end): RetryQueryEngine reads it (``get_response``)
    to evaluate it, an app's instrumented handler streams it to the user and returns it. Then the stream's decision is
    the answer delivered; a stream not read to its end delivered none, whatever its metadata names (a custom engine
    may hand an earlier answer's metadata on): its answer is decided as it is read, or never."""
    if type(result).__name__ not in _STREAMED:
        return False
    stream = getattr(result, "response_gen", None)
    # a generator run to its end (or closed) has no frame; an iterator of another kind cannot tell: not read
    return stream is not None and getattr(stream, "gi_frame", getattr(stream, "ag_frame", _UNKNOWN)) is None


_SYNTHESIZE = re.compile(r"\.a?synthesize-[0-9a-f-]{36}$")  # a synthesizer's span id: "Class.method-<uuid4>"
# one request: a query engine's query, a chat engine's turn
_QUERY = re.compile(r"\.a?query-[0-9a-f-]{36}$")
_REQUEST = re.compile(r"(?:\.a?query|ChatEngine\.a?(?:stream_)?chat)-[0-9a-f-]{36}$")


_stream_decision = threading.local()


class DecidedStream:
    """The token stream of a stock engine's streamed answer. The synthesizer wraps it in its own
    generators (created after the query returns), so the decision travels by thread: when the last
    chunk passes, the decision is noted for the consumer, and the span handler's wrapper around the
    returned ``StreamingResponse.response_gen`` (consumed in the same thread) copies it into the
    response's ``metadata`` once the stream is exhausted."""

    def __init__(self, pieces, guard: Any = None):
        self._pieces = iter(pieces)
        self._guard = guard
        self.decision: dict | None = None

    def __iter__(self):
        return self

    def __next__(self) -> str:
        while True:
            r = next(self._pieces)  # StopIteration ends the stream
            if r.additional_kwargs.get("route") is not None:
                self.decision = dict(r.additional_kwargs)
                _stream_decision.value = self.decision
                # noted on the span reading it, as HGuardLLM.astream's tokens note theirs: a refine step's stream read
                # inside the synthesizer is an answer the response replaces, said undelivered when it returns
                note_decision(GuardedText(r.text, self.decision), self._guard)
            if r.delta:
                return r.delta


_END = object()  # a stream's end, read in the same step as its last decision


@contextmanager
def _reading_nodes(nodes: Optional[tuple[list, bool]]) -> Iterator[None]:
    """Inside: one step of a streaming response being read, its synthesizer's ``nodes`` (when known) what
    :func:`synthesized_nodes` gives the LLM call the step makes."""
    held = _streamed_nodes.set((list(nodes[0]), nodes[1])) if nodes is not None else None
    try:
        yield
    finally:
        if held is not None:
            _streamed_nodes.reset(held)


def _fill_when_consumed(tokens, response, nodes=None):
    """``tokens``, then the decision into ``response.metadata``. The decision is read around each step of this
    stream only: two streams read in turn in one thread (a hold stream's decision comes with its first token)
    each keep their own; read once at the end, the first took the second's decision and audit id. ``nodes``: the
    synthesizer's, which its LLM call (run as the stream is read) takes as the passages."""
    it = iter(tokens)
    decision = None
    response = weakref.ref(response)  # not the response itself: a cycle through it left a dropped stream to the
    while True:  # garbage collector, which closed it at any point of any thread (a deadlock in a soak)
        _stream_decision.value = None
        with _reading_nodes(nodes):
            token = next(it, _END)
        decision = getattr(_stream_decision, "value", None) or decision
        if token is _END:
            break
        yield token
    if decision is not None and (held := response()) is not None:
        held.metadata = {**(held.metadata or {}), **decision}


#: an async stream's decision, set by :meth:`HGuardLLM.astream`'s tokens as they pass: an async generator runs in the
#: context of the task that reads it, so streams read by other tasks (each its own context) do not see it
async_stream_decision: contextvars.ContextVar[Optional[dict]] = contextvars.ContextVar("hguard_stream_decision", default=None)


async def _afill_when_consumed(tokens, response, nodes=None):
    """:func:`_fill_when_consumed` for a stock engine's ``AsyncStreamingResponse``."""
    it = aiter(tokens)
    decision = None
    response = weakref.ref(response)  # as _fill_when_consumed: no cycle through the response
    while True:
        async_stream_decision.set(None)
        with _reading_nodes(nodes):
            token = await anext(it, _END)
        decision = async_stream_decision.get() or decision
        if token is _END:
            break
        yield token
    if decision is not None and (held := response()) is not None:
        held.metadata = {**(held.metadata or {}), **decision}


_installed = False
_install_lock = threading.Lock()


def install_decision_metadata() -> None:
    """Add :class:`DecisionToMetadata` to LlamaIndex's root dispatcher (once per process)."""
    global _installed
    with _install_lock:
        if not _installed:
            get_dispatcher().add_span_handler(DecisionToMetadata())
            _installed = True


__all__ = ["DecidedStream", "note_decision", "QUERY_PROMPTS", "DecisionToMetadata", "RAGPrompt", "install_decision_metadata", "query_step", "read_rag_prompt"]
