"""The on-disk format of collected calibration answers: feature shards with a manifest.

Both collection engines (the local loop and Ray) write the same folder::

    WORK/collection.json            the settings every shard must share (model, prompt mode, width)
    WORK/shards/shard-000007.safetensors   one tensor "cett", float32 (n_rows, n_features)
    WORK/shards/shard-000007.json   its manifest entry: model fingerprint, prompt mode, row ids,
                                    shape, sha256 of the .safetensors file, the rows (answer, label,
                                    confidence) and the rows that failed twice
    WORK/manifest.json              an index of the finished shards (rebuilt from the entries)

A shard is written to a temporary name and renamed, then its entry is written the same way: the
entry is the commit. A run killed at any point therefore loses at most the shards in flight, and the
next run answers only the rows that no committed entry holds. The entries, not ``manifest.json``, are
the truth; writers on several machines never write the same file (shard names are planned by the
one driver).

Reading refuses, naming the shard: an entry from another model fingerprint or prompt mode, a shape
that does not match, a file whose sha256 is not the one its entry recorded, and an entry changed after it was
written (its answers, labels, confidence values: ``entry_sha256``, the hash of the rest of the entry; entries an
older release wrote without it are read, and said once).

A folder of the earlier format 1 (one ``rows.jsonl`` and ``.npy`` shards) collected under the same
settings is upgraded on first use: entries are written for its shards and its files are kept.

Prompt mode: what, beside the weights, decides the answers and their CETT: the chat template, the
system prompt and the generation length.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .._privacy import FILE_MODE
from ..errors import DataError

FORMAT = 2
SETTINGS = "collection.json"
MANIFEST = "manifest.json"
SHARD_DIR = "shards"
TENSOR = "cett"
PROMPT_MODE_KEYS = ("chat_template_fingerprint", "system_prompt_fingerprint", "max_new_tokens")
_NAME = re.compile(r"^shard-(\d{6,})$")
ENTRY_HASH = "entry_sha256"


def collection_settings(generator) -> dict:
    """What every shard of one collection folder must share, from a :class:`hguard.generation.Generator`."""
    return {
        **generator.fingerprints,
        "max_new_tokens": generator.max_new_tokens,
        "n_features": generator.n_features,
        "format": FORMAT,
    }


def prompt_mode(settings: dict) -> dict:
    return {k: settings.get(k) for k in PROMPT_MODE_KEYS}


def input_hash(example) -> str:
    """What the model was asked for a row (its question and passage), hashed: an answer in a work folder
    belongs to a row only while this is unchanged."""
    return hashlib.sha256(json.dumps([example.question, example.context], ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _asked_otherwise(row: dict, example) -> bool:
    """Whether a collected row answered another question or passage than ``example`` asks (a row without the
    hash, collected before it was kept, by its question)."""
    if "input_hash" in row:
        return row["input_hash"] != input_hash(example)
    return row.get("question", example.question) != example.question


def shard_name(number: int) -> str:
    return f"shard-{number:06d}"


# ---------------------------------------------------------------------------------- file writing


def _atomic_write(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file, owner and group only (``FILE_MODE``, narrowed by the umask): a
    shard holds the calibration's questions and answers in clear."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if tmp.exists():  # a temporary file a killed run left (its mode is the old one): not written into
            tmp.unlink()
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb") as fh:  # the umask narrows it
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _safetensors_bytes(array: np.ndarray) -> bytes:
    """One float32 tensor in the safetensors layout (8-byte header size, JSON header, raw data)."""
    from safetensors.numpy import save

    return save({TENSOR: np.ascontiguousarray(array, dtype=np.float32)})


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def entry_hash(entry: dict) -> str:
    """sha256 (hex) of a manifest entry without its own ``entry_sha256``, as JSON with sorted keys and no spaces (the
    entry as read back: NaN stays allowed, a confidence may be one): what is stored beside the features (the answer
    text, label, confidence values, row ids, the features' own sha256) is checked as the features are."""
    body = json.loads(json.dumps({k: v for k, v in entry.items() if k != ENTRY_HASH}, ensure_ascii=False))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: work folders whose entries written before ``entry_sha256`` were said, once per process
_UNHASHED_SAID: set[Path] = set()


def write_shard(work_dir: str | os.PathLike, name: str, settings: dict, rows: Sequence[dict], features: np.ndarray,
                failed: Sequence[dict] = ()) -> dict:
    """Write one shard and then its manifest entry (the commit); returns the entry.

    ``rows[i]`` describes ``features[i]``; each row gets ``shard`` and ``index``. ``failed``: rows
    (``id``, ``error``) that could not be answered; they are recorded, not marked done.
    """
    shards = Path(work_dir) / SHARD_DIR
    shards.mkdir(parents=True, exist_ok=True)
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] != len(rows) or (rows and features.shape[1] != settings["n_features"]):
        raise DataError(
            f"shard {name}: features of shape {features.shape} for {len(rows)} rows of width {settings['n_features']}; "
            "this is a bug in the collection engine"
        )
    data = _safetensors_bytes(features)
    _atomic_write(shards / f"{name}.safetensors", data)
    rows = [{**r, "shard": name, "index": i} for i, r in enumerate(rows)]
    entry = {
        "format": FORMAT,
        "shard": name,
        "file": f"{name}.safetensors",
        "model_fingerprint": settings["model_fingerprint"],
        "prompt_mode": prompt_mode(settings),
        "row_ids": [r["id"] for r in rows],
        "shape": list(features.shape),
        "dtype": "float32",
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": rows,
        "failed": list(failed),
    }
    entry[ENTRY_HASH] = entry_hash(entry)
    _atomic_write(shards / f"{name}.json", json.dumps(entry, ensure_ascii=False).encode("utf-8"))
    return entry


# ---------------------------------------------------------------------------------- the folder


@dataclass
class ShardPlan:
    """One batch of rows to answer, and the shard it will be written to."""

    name: str
    examples: list


class ShardStore:
    """A collection folder: its settings, its committed shards, and what is left to answer."""

    def __init__(self, work_dir: str | os.PathLike, settings: dict | None = None):
        self.work = Path(work_dir)
        self.shard_dir = self.work / SHARD_DIR
        path = self.work / SETTINGS
        if settings is None:
            if not path.exists():
                raise DataError(f"{self.work} is not a collection folder (no {SETTINGS}); run `hguard calibrate` first")
            settings = json.loads(path.read_text(encoding="utf-8"))
        self.settings = settings
        self._check_settings_file()

    def _check_settings_file(self) -> None:
        path = self.work / SETTINGS
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _atomic_write(path, json.dumps(self.settings, indent=2).encode("utf-8"))
            return
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("format") == 1 and {**old, "format": FORMAT} == {**self.settings, "format": FORMAT}:
            old = self._upgrade_format_1(old)
        if old.get("format") != FORMAT:
            raise DataError(
                f"{self.work} holds answers in collection format {old.get('format')!r}; this hguard reads format "
                f"{FORMAT}: use another --work folder or delete this one (its answers will be collected again)"
            )
        if old != self.settings:
            diff = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
            raise DataError(
                f"{self.work} holds answers collected under other settings ({', '.join(diff)} differ); "
                f"use another --work folder or delete this one"
            )

    def _upgrade_format_1(self, old: dict) -> dict:
        """Format 1 (one ``rows.jsonl`` and ``.npy`` shards) gets format 2 entries beside its files, which
        are kept; a torn last row line and rows whose ``.npy`` is missing are left to be collected again."""
        rows_path = self.work / "rows.jsonl"
        by_shard: dict[str, dict[int, dict]] = {}
        if rows_path.exists():
            for raw in rows_path.read_bytes().split(b"\n")[:-1]:
                if raw.strip():
                    r = json.loads(raw)
                    by_shard.setdefault(r["shard"], {})[r["index"]] = r
        settings = {**old, "format": FORMAT}
        for npy, rows in sorted(by_shard.items()):
            if not (self.shard_dir / npy).exists():
                continue
            arr = np.load(self.shard_dir / npy, mmap_mode="r", allow_pickle=False)
            order = sorted(rows)
            clean = [{k: v for k, v in rows[i].items() if k not in ("shard", "index")} for i in order]
            write_shard(self.work, Path(npy).stem, settings, clean, np.asarray(arr[order]))
        _atomic_write(self.work / SETTINGS, json.dumps(settings, indent=2).encode("utf-8"))
        self.settings = settings if self.settings.get("format") == 1 else self.settings
        return settings

    # ---------------------------------------------------------------------------- entries

    def entry_paths(self) -> list[Path]:
        return sorted(p for p in self.shard_dir.glob("shard-*.json") if _NAME.match(p.stem))

    def read_entry(self, path: Path) -> dict:
        """A manifest entry, refused (naming the shard) when it belongs to another collection."""
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"shard entry {path} cannot be read ({e}); delete it and its .safetensors to collect its rows again") from e
        name = path.stem
        want_fp, want_mode = self.settings["model_fingerprint"], prompt_mode(self.settings)
        if entry.get("model_fingerprint") != want_fp:
            raise DataError(
                f"shard {path} was collected with model fingerprint {entry.get('model_fingerprint')!r}, this "
                f"collection is for {want_fp!r}; remove the shard (its .json and .safetensors) or use another --work folder"
            )
        if entry.get("prompt_mode") != want_mode:
            raise DataError(
                f"shard {path} was collected under prompt mode {entry.get('prompt_mode')!r}, this collection uses "
                f"{want_mode!r}; remove the shard (its .json and .safetensors) or use another --work folder"
            )
        shape = entry.get("shape")
        if (entry.get("shard") != name or not isinstance(shape, list) or len(shape) != 2
                or shape[0] != len(entry.get("row_ids", ())) or len(entry.get("rows", ())) != shape[0]
                or (shape[0] and shape[1] != self.settings["n_features"])):
            raise DataError(
                f"shard {path}: entry names {entry.get('shard')!r} with shape {shape} for "
                f"{len(entry.get('row_ids', ()))} row ids, expected {name!r} and width {self.settings['n_features']}; "
                "the entry is damaged: remove the shard to collect its rows again"
            )
        stored = entry.get(ENTRY_HASH)
        if stored is not None and stored != entry_hash(entry):
            raise DataError(
                f"shard {path}: its entry was changed after it was written (its stored answers, labels or confidence "
                f"values no longer match its {ENTRY_HASH}); delete the shard (its .json and .safetensors) to collect "
                "its rows again, or use a new --work folder"
            )
        return entry

    def entries(self) -> list[dict]:
        entries = [self.read_entry(p) for p in self.entry_paths()]
        old = [e["shard"] for e in entries if ENTRY_HASH not in e]
        if old and self.work.resolve() not in _UNHASHED_SAID:
            _UNHASHED_SAID.add(self.work.resolve())
            warnings.warn(
                f"{len(old)} shard entr{'y' if len(old) == 1 else 'ies'} in {self.work} (first {old[0]}) "
                f"{'has' if len(old) == 1 else 'have'} no {ENTRY_HASH} (written by an older hguard, or the hash was "
                "removed): "
                "their stored answers and confidence values are read unchecked; delete them or use a new --work "
                "folder to have them checked", UserWarning, stacklevel=2)
        return entries

    def finished(self) -> dict[str, dict]:
        """Row id -> row of every committed shard (the first shard holding an id wins)."""
        done: dict[str, dict] = {}
        for entry in self.entries():
            if not (self.shard_dir / entry["file"]).exists():
                continue  # the data file is gone: its rows are collected again
            for r in entry["rows"]:
                done.setdefault(r["id"], r)
        return done

    def failed(self) -> dict[str, dict]:
        """Row id -> {id, error, shard} of rows that failed twice and are in no committed shard."""
        done = self.finished()
        out = {}
        for entry in self.entries():
            for f in entry.get("failed", ()):
                if f["id"] not in done:
                    out[f["id"]] = {**f, "shard": entry["shard"]}
        return out

    def plan(self, examples: Sequence, batch_size: int) -> list[ShardPlan]:
        """Shards for the examples no committed shard holds, numbered after the existing ones. An example whose
        answer was given to another question or passage under its id (a row edited since) is refused, naming
        how many and the first; rows collected before the hash was kept are checked by their question."""
        done = self.finished()
        stale = [e for e in examples if e.id in done and _asked_otherwise(done[e.id], e)]
        if stale:
            raise DataError(
                f"{len(stale)} row(s) were answered in {self.work} from another question or passage under the same id "
                f"(first: {stale[0].id!r}); reusing those answers would calibrate on answers this data did not ask for: "
                "pass a new --work folder (or remove this one) to answer the rows again, or give edited rows new ids"
            )
        todo = [e for e in examples if e.id not in done]
        # a data file without its entry (killed between the two writes) is overwritten, not skipped
        paths = [*self.entry_paths(), *self.shard_dir.glob("shard-*.safetensors")]
        numbers = [int(m.group(1)) for p in paths if (m := _NAME.match(p.stem))]
        nxt = max(numbers, default=-1) + 1
        return [
            ShardPlan(shard_name(nxt + k), list(todo[s : s + batch_size]))
            for k, s in enumerate(range(0, len(todo), batch_size))
        ]

    def write_manifest(self) -> dict:
        entries = self.entries()
        doc = {
            "format": FORMAT,
            "settings": self.settings,
            "shards": [
                {k: e[k] for k in ("shard", "file", "row_ids", "shape", "sha256")} | {"n_failed": len(e.get("failed", ()))}
                for e in entries
            ],
        }
        _atomic_write(self.work / MANIFEST, json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8"))
        return doc

    # ---------------------------------------------------------------------------- features

    def open_features(self, entry: dict, *, verify: bool = True) -> np.ndarray:
        """The shard's (n_rows, n_features) float32 matrix, memory-mapped; sha256 checked first."""
        path = self.shard_dir / entry["file"]
        if verify:
            actual = sha256_file(path)
            if actual != entry["sha256"]:
                raise DataError(
                    f"shard {path} has sha256 {actual[:16]}..., its manifest entry records {entry['sha256'][:16]}...: "
                    "the file was changed or damaged after it was written; remove the shard (its .json and "
                    ".safetensors) to collect its rows again"
                )
        arr = _mmap_tensor(path)
        if list(arr.shape) != list(entry["shape"]):
            raise DataError(f"shard {path} holds shape {list(arr.shape)}, its entry records {entry['shape']}; remove the shard")
        return arr

    def iter_shards(self, ids: Sequence[str] | None = None) -> Iterator[tuple[dict, np.ndarray]]:
        """(entry, features) per committed shard that holds any of ``ids`` (all when None), verified."""
        want = None if ids is None else set(ids)
        for entry in self.entries():
            if want is not None and not want.intersection(entry["row_ids"]):
                continue
            yield entry, self.open_features(entry)


def _mmap_tensor(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    meta = header.get(TENSOR)
    if not meta or meta.get("dtype") != "F32":
        raise DataError(f"shard {path} has no float32 tensor {TENSOR!r}; remove the shard to collect its rows again")
    start, end = meta["data_offsets"]
    shape = tuple(meta["shape"])
    if end - start != 4 * int(np.prod(shape)):
        raise DataError(f"shard {path}: tensor size does not match its shape {list(shape)}; remove the shard")
    if end == start:
        return np.zeros(shape, np.float32)
    return np.memmap(path, dtype="<f4", mode="r", offset=8 + n + start, shape=shape)


__all__ = ["ENTRY_HASH", "FORMAT", "ShardPlan", "ShardStore", "collection_settings", "entry_hash", "prompt_mode",
           "sha256_file", "write_shard"]
