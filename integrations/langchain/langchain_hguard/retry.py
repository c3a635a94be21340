"""``ChatHGuard.with_retry()``: LangChain's retry, made safe for a guarded model.

langchain-core's ``RunnableRetry.batch`` fills the slot of an input that still fails after its last attempt
with whatever comes first in that attempt's outputs, which can be another input's answer
(langchain-ai/langchain#35475): under ``raise_on``, a held question came back with another question's accepted
answer. :class:`GuardRetry` keeps each input's own outcome, does not retry the guard's own routes (a
:class:`~hguard.errors.RouteError`: decoding is greedy, so a retry regenerates the same answer and queues it for
review again) nor its refusals (bad input, an :class:`~hguard.errors.InputError`, refused and recorded again; a wrong
keyword or a feature it lacks), and, like ``ChatHGuard.batch``, says the other decided answers of a batch that raises undelivered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.base import RunnableBindingBase
from langchain_core.runnables.config import get_config_list
from langchain_core.runnables.retry import RunnableRetry
from pydantic import field_validator
from tenacity import RetryError, retry_if_exception

from hguard.errors import InputError, RouteError

from .chat_models import batch_failed_why, decided_by, say_undelivered

if TYPE_CHECKING:
    from .chat_models import ChatHGuard


class GuardRetry(RunnableRetry):  # type: ignore[no-redef]
    """What ``ChatHGuard.with_retry()`` returns (see the module's text for how it differs from LangChain's)."""

    # a tuple of classes, one class or a predicate, on every langchain-core the adapter allows: in older ones (1.0.2)
    # the field takes a tuple only, and one class (or a predicate) failed validation; _retryable reads all three
    retry_exception_types: Any = (Exception,)

    @field_validator("retry_exception_types", mode="before")
    @classmethod
    def _kinds(cls, value: Any) -> Any:
        """One exception class, a tuple or list of them (kept as a tuple), or a predicate; anything else refused
        here, not at the first error (a list failed there with isinstance's TypeError, and None retried all)."""
        def a_kind(k: Any) -> bool:
            return isinstance(k, type) and issubclass(k, BaseException)

        if a_kind(value) or (callable(value) and not isinstance(value, type)):
            return value
        if isinstance(value, (tuple, list)) and value and all(a_kind(k) for k in value):
            return tuple(value)
        raise ValueError(f"retry_if_exception_type must be an exception class, a tuple or list of them, or a predicate "
                         f"taking the exception; got {value!r:.80}")

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, (RouteError, InputError, TypeError, NotImplementedError)):  # the same greedy answer again,
            return False  # queued again; the same refusal, recorded again; a wrong keyword or a feature it lacks
        kinds: Any = self.retry_exception_types
        if isinstance(kinds, type) and issubclass(kinds, BaseException):  # one class, not a tuple of them
            return isinstance(exc, kinds)
        if callable(kinds) and not isinstance(kinds, tuple):
            return bool(kinds(exc))
        return isinstance(exc, kinds)

    @property
    def _kwargs_retrying(self) -> dict[str, Any]:
        return {**super()._kwargs_retrying, "retry": retry_if_exception(self._retryable)}

    def _pending(self, inputs: list[Any], run_manager: list[Any], config: list[RunnableConfig], done: dict[int, Any],
                 retry_state: Any) -> tuple[list[int], list[Any], list[RunnableConfig]]:
        pending = [i for i in range(len(inputs)) if i not in done]
        configs = self._patch_config_list([config[i] for i in pending], [run_manager[i] for i in pending], retry_state)
        return pending, [inputs[i] for i in pending], configs

    def _settle(self, pending: list[int], out: list[Any], done: dict[int, Any], last: dict[int, Any]) -> None:
        """Record one attempt's outputs by input; raise the first retryable error, so that tenacity retries."""
        first = None
        for i, r in zip(pending, out):
            if isinstance(r, Exception) and self._retryable(r):
                last[i] = r
                first = first or r
            else:
                done[i] = r  # an answer, or an error that is final (a route, or a kind not retried)
        if first is not None:
            raise first

    def _batch(self, inputs: list[Any], run_manager: list[Any], config: list[RunnableConfig], **kwargs: Any) -> list[Any]:
        done: dict[int, Any] = {}
        last: dict[int, Any] = {}
        try:
            for attempt in self._sync_retrying():
                with attempt:
                    pending, xs, cfgs = self._pending(inputs, run_manager, config, done, attempt.retry_state)
                    if not pending:
                        break
                    out = RunnableBindingBase.batch(self, xs, cfgs, return_exceptions=True, **kwargs)
                    self._settle(pending, out, done, last)
        except RetryError:
            pass  # each input that still fails keeps its own last error
        return [done[i] if i in done else last[i] for i in range(len(inputs))]

    async def _abatch(self, inputs: list[Any], run_manager: list[Any], config: list[RunnableConfig],
                      **kwargs: Any) -> list[Any]:
        done: dict[int, Any] = {}
        last: dict[int, Any] = {}
        try:
            async for attempt in self._async_retrying():
                with attempt:
                    pending, xs, cfgs = self._pending(inputs, run_manager, config, done, attempt.retry_state)
                    if not pending:
                        break
                    out = await RunnableBindingBase.abatch(self, xs, cfgs, return_exceptions=True, **kwargs)
                    self._settle(pending, out, done, last)
        except RetryError:
            pass
        return [done[i] if i in done else last[i] for i in range(len(inputs))]

    def _raise_first(self, out: list[Any], config: Any, return_exceptions: bool) -> list[Any]:
        """Without ``return_exceptions`` a batch with a failed input raises its error and returns none of the
        other answers: each decided one is said undelivered, so that an accept in the log is not read as delivered."""
        failed = next((i for i, r in enumerate(out) if isinstance(r, Exception)), None)
        if return_exceptions or failed is None:
            return out
        def decision(i: int, r: Any) -> Any:
            meta = r.response_metadata if isinstance(r, BaseMessage) else None
            return (decided_by(meta) if meta and meta.get("audit_id") else
                    r if isinstance(r, RouteError) and i != failed else None)  # a held answer the batch never raised

        say_undelivered(cast("ChatHGuard", self.bound).guard, [decision(i, r) for i, r in enumerate(out)],
                        get_config_list(config, len(out)), batch_failed_why(failed, out[failed]))
        raise out[failed]

    def batch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        out = super().batch(inputs, config, return_exceptions=True, **kwargs)
        return self._raise_first(out, config, return_exceptions)

    async def abatch(self, inputs: list[Any], config: RunnableConfig | list[RunnableConfig] | None = None, *,
                     return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        out = await super().abatch(inputs, config, return_exceptions=True, **kwargs)
        return self._raise_first(out, config, return_exceptions)


__all__ = ["GuardRetry"]
