"""Guarded streaming, shared by the LangChain and LlamaIndex adapters (framework-free).

Two modes, chosen by the caller:

``"hold"``
    Tokens are held until the guard has decided; the stream then yields the routed display text
    once (the answer on accept, the abstain message on abstain, the marked answer on review).
    Nothing the guard has not checked reaches the user. With ``early_stop=True`` generation ends
    as soon as the running risk passes the domain's abstain threshold (hguard's own criterion).

``"passthrough"``
    Tokens are yielded as the model generates them (through transformers' ``TextIteratorStreamer``)
    and the decision comes with the last chunk. The user sees unchecked text: the application must
    act on the final route (e.g. retract or mark an answer that was routed to abstain or review).

Both adapters (``langchain_hguard``, ``llama_index.llms.hguard``) stream through this module.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator, Literal
from uuid import UUID

from hguard.guard import Guard, GuardResult

StreamMode = Literal["hold", "passthrough"]
STREAM_MODES: tuple[str, ...] = ("hold", "passthrough")

def check_stream_mode(mode: str) -> str:
    if mode not in STREAM_MODES:
        raise ValueError(f"stream_mode must be one of {STREAM_MODES}, got {mode!r}")
    return mode


#: the keys :func:`decision_metadata` writes into a framework's response metadata
DECISION_KEYS = ("route", "risk", "signals", "reasons", "audit_id", "request_id", "domain", "probe_id", "thresholds", "seconds")


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of framework data for an audit record: plain values kept, containers walked,
    UUIDs as strings, anything else as its repr (cut short)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 6:
        return repr(value)[:200]
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, UUID):
        return str(value)
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)[:200]


def decision_metadata(result: GuardResult) -> dict[str, Any]:
    """The guard's decision as plain JSON-ready data (no answer text): what the adapters attach to a
    framework's response metadata."""
    return {
        "route": result.route,
        "risk": result.risk,
        "signals": dict(result.signals),
        "reasons": list(result.reasons),
        "audit_id": result.audit_id,
        "request_id": result.request_id,
        "domain": result.domain,
        "probe_id": result.probe_id,
        "thresholds": result.thresholds,
        "seconds": result.seconds,
    }


@dataclass(frozen=True)
class GuardStreamChunk:
    """One piece of a guarded stream: ``text`` to show now; ``result`` only on the last chunk."""

    text: str
    result: GuardResult | None = None

    @property
    def final(self) -> bool:
        return self.result is not None


def _invoke_kwargs(early_stop: bool) -> dict[str, Any]:
    return {"early_stop": True} if early_stop else {}


def guarded_invoke(guard: Guard, question: str, context=None, domain: str | None = None, *, early_stop: bool = False) -> GuardResult:
    """``guard.invoke`` with ``early_stop`` passed only when asked for."""
    return guard.invoke(question, context, domain, **_invoke_kwargs(early_stop))


def guard_stream(
    guard: Guard,
    question: str,
    context=None,
    domain: str | None = None,
    mode: StreamMode = "hold",
    *,
    early_stop: bool = False,
    timeout: float | None = None,
) -> Iterator[GuardStreamChunk]:
    """Stream one guarded answer; the last chunk carries the :class:`GuardResult`.

    ``hold``: one chunk, the routed display text, after the decision. ``passthrough``: the tokens
    as generated, then an empty chunk with the decision. ``early_stop`` (hold mode only) ends
    generation once the running risk passes the abstain threshold. ``timeout`` (passthrough) is the
    longest wait in seconds for the next token before ``queue.Empty`` is raised.
    Errors from the guard (bad input, a failed audit write) are raised from the iterator.
    """
    check_stream_mode(mode)
    if mode == "hold":
        result = guarded_invoke(guard, question, context, domain, early_stop=early_stop)
        yield GuardStreamChunk(result.display_text, result)
        return
    if early_stop:
        raise ValueError(
            "early_stop applies to stream_mode='hold' only: in passthrough the tokens already reached the "
            "user, so stopping early would only cut the answer short"
        )
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(guard.lm.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = guard.invoke(question, context, domain, streamer=streamer)
        except BaseException as exc:  # re-raised in the consumer below
            box["error"] = exc
            streamer.end()  # unblock the consumer when generation never started or failed midway

    worker = threading.Thread(target=run, name="hguard-stream", daemon=True)
    worker.start()
    try:
        for piece in streamer:
            if piece:
                yield GuardStreamChunk(piece)
    finally:
        # Also on an abandoned stream: the guard still finishes and records its decision.
        worker.join()
    if "error" in box:
        raise box["error"]
    yield GuardStreamChunk("", box["result"])


async def aguard_stream(
    guard: Guard,
    question: str,
    context=None,
    domain: str | None = None,
    mode: StreamMode = "hold",
    *,
    early_stop: bool = False,
    timeout: float | None = None,
) -> AsyncIterator[GuardStreamChunk]:
    """:func:`guard_stream` for asyncio: the generation runs in a worker thread, the loop stays free."""
    it = guard_stream(guard, question, context, domain, mode, early_stop=early_stop, timeout=timeout)
    done = object()
    try:
        while True:
            chunk = await asyncio.to_thread(next, it, done)
            if chunk is done:
                return
            yield chunk
    finally:
        await asyncio.to_thread(it.close)  # an abandoned stream still waits for the guard's record


__all__ = [
    "DECISION_KEYS",
    "GuardStreamChunk",
    "STREAM_MODES",
    "StreamMode",
    "aguard_stream",
    "check_stream_mode",
    "decision_metadata",
    "guard_stream",
    "guarded_invoke",
    "jsonable",
]
