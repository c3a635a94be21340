"""The verified safetensors cache of a GGUF model, on a tiny random model: the manifest must guard every file
in the cache folder, and a cache it does not fully guard is rebuilt like a corrupt one."""

from __future__ import annotations

import json

import pytest
import torch

from hguard import models
from hguard.testing import tiny_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A stand-in .gguf source and a complete cache for it, written by the code the loader uses:
    (gguf path, cache folder)."""
    monkeypatch.setenv("HGUARD_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in: only its sha256 names the cache")
    lm = tiny_model("llama", seed=1)
    folder = models._cache_folder_for(gguf, models.sha256_file(gguf))
    models._write_cache(lm.model, lm.tokenizer, folder, models.sha256_file(gguf), str(gguf))
    return gguf, folder


def manifest_of(folder):
    return json.loads((folder / "hguard-cache.json").read_text())


def rewrite_manifest(folder, **changes):
    info = {**manifest_of(folder), **changes}
    (folder / "hguard-cache.json").write_text(json.dumps(info))


def status(gguf):
    return models.gguf_cache_status(gguf)[1:]


def test_complete_cache_lists_every_file_and_passes(cache):
    gguf, folder = cache
    listed = set(manifest_of(folder)["files"])
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= listed
    assert listed == {p.name for p in folder.iterdir()} - {"hguard-cache.json"}
    assert status(gguf) == (True, "")


def test_manifest_with_no_files_fails(cache):
    gguf, folder = cache
    rewrite_manifest(folder, files={})
    ok, why = status(gguf)
    assert not ok and "lists no files" in why
    rewrite_manifest(folder, files=None)
    assert status(gguf) == (False, f"{folder / 'hguard-cache.json'} lists no files")


@pytest.mark.parametrize("dropped", ["model.safetensors", "config.json", "tokenizer.json", "generation_config.json"])
def test_manifest_missing_an_existing_file_fails(cache, dropped):
    gguf, folder = cache
    files = manifest_of(folder)["files"]
    del files[dropped]
    rewrite_manifest(folder, files=files)
    ok, why = status(gguf)
    assert not ok and dropped in why


def test_manifest_without_the_weights_fails_even_when_they_are_gone(cache):
    gguf, folder = cache
    files = manifest_of(folder)["files"]
    del files["model.safetensors"]
    rewrite_manifest(folder, files=files)
    (folder / "model.safetensors").unlink()
    ok, why = status(gguf)
    assert not ok and why.endswith("does not list model.safetensors")


def test_file_added_to_the_cache_fails(cache):
    gguf, folder = cache
    (folder / "model-00002-of-00002.safetensors").write_bytes(b"\0" * 16)
    ok, why = status(gguf)
    assert not ok and "model-00002-of-00002.safetensors" in why and "does not list" in why


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"../tiny.gguf": {"size": 1, "sha256": "0" * 64}}, "not a file name in this folder"),
        ({"hguard-cache.json": {"size": 1, "sha256": "0" * 64}}, "not a file name in this folder"),
        ({"config.json": "abc"}, "no size and sha256 for 'config.json'"),
        ([["config.json", {}]], "lists no files"),
    ],
)
def test_malformed_manifest_entries_fail_without_raising(cache, files, expected):
    gguf, folder = cache
    rewrite_manifest(folder, files=files)
    ok, why = status(gguf)
    assert not ok and expected in why


def test_manifest_that_is_not_an_object_fails(cache):
    gguf, folder = cache
    (folder / "hguard-cache.json").write_text("[1, 2]")
    assert status(gguf) == (False, f"{folder / 'hguard-cache.json'} is not a JSON object")


def test_weights_replaced_by_a_link_fail(cache, tmp_path):
    gguf, folder = cache
    weights = folder / "model.safetensors"
    outside = tmp_path / "elsewhere.safetensors"
    weights.rename(outside)
    weights.symlink_to(outside)  # same bytes, but no longer a file of the cache
    ok, why = status(gguf)
    assert not ok and "not a regular file" in why


@pytest.fixture
def gguf_loader(monkeypatch):
    """Stands in for transformers' GGUF reading (no real GGUF here): loading with gguf_file= gives the
    tiny model, which the loader then writes into the cache; loading the cache folder is the real thing."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = tiny_model("llama", seed=1)
    real_model, real_tok = AutoModelForCausalLM.from_pretrained, AutoTokenizer.from_pretrained
    calls = []

    def model_from(path, *args, gguf_file=None, **kw):
        calls.append(gguf_file)
        return source.model if gguf_file else real_model(path, *args, **kw)

    def tok_from(path, *args, gguf_file=None, **kw):
        return source.tokenizer if gguf_file else real_tok(path, *args, **kw)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", model_from)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", tok_from)
    return source, calls


@pytest.mark.parametrize("damage", ["empty manifest", "unlisted file", "file left out of the manifest"])
def test_cache_the_manifest_does_not_fully_guard_is_rebuilt_on_load(cache, gguf_loader, damage):
    gguf, folder = cache
    source, calls = gguf_loader
    hit = models.load_model(gguf)
    assert hit.load_info["cache_hit"] is True and calls == [None]  # the intact cache is used as it is
    if damage == "empty manifest":
        rewrite_manifest(folder, files={})
    elif damage == "unlisted file":
        (folder / "extra.bin").write_bytes(b"\1" * 8)
    else:
        files = manifest_of(folder)["files"]
        del files["tokenizer.json"]
        rewrite_manifest(folder, files=files)
    lm = models.load_model(gguf)
    # read from the source again, then answered from the cache it rebuilt
    assert lm.load_info["cache_hit"] is False and calls[-2:] == ["tiny.gguf", None]
    assert lm.load_info["cache_rebuild_reason"] == {
        "empty manifest": f"{folder / 'hguard-cache.json'} lists no files",
        "unlisted file": f"{folder} holds extra.bin, which hguard-cache.json does not list",
        "file left out of the manifest": f"{folder} holds tokenizer.json, which hguard-cache.json does not list",
    }[damage]
    assert status(gguf) == (True, "")  # rebuilt complete
    assert not (folder / "extra.bin").exists()
    again = models.load_model(gguf)
    assert again.load_info["cache_hit"] is True
    for (name, a), (_, b) in zip(again.model.state_dict().items(), source.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_first_load_answers_from_the_cache_it_wrote_as_every_later_load_does(tmp_path, monkeypatch, gguf_loader):
    """A trial: the first calibration on a fresh cache used the model read from the GGUF itself, whose
    log-probabilities were 1e-7 apart from the cached copy's (same weights, same fingerprint), so its probes
    differed from every later run's."""
    monkeypatch.setenv("HGUARD_CACHE_DIR", str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    source, calls = gguf_loader
    first = models.load_model(gguf)
    assert first.load_info["cache_hit"] is False and calls == ["tiny.gguf", None]
    assert first.model is not source.model  # the answering model is the cache's
    second = models.load_model(gguf)
    assert second.load_info["cache_hit"] is True and first.fingerprint == second.fingerprint


@pytest.mark.parametrize("name", ["HGUARD_CACHE_DIR", "XDG_CACHE_HOME"])
def test_a_cache_setting_naming_a_file_is_refused_naming_the_setting(tmp_path, monkeypatch, name):
    """It failed later with "Not a directory ('.../models')", naming no setting (a red team's trial)."""
    f = tmp_path / "afile"
    f.write_text("x")
    monkeypatch.delenv("HGUARD_CACHE_DIR", raising=False)
    monkeypatch.setenv(name, str(f))
    with pytest.raises(models.CacheError, match=f"{name}=.*afile.* names a file, not a folder; set {name}"):
        models.cache_dir()
    monkeypatch.setenv(name, str(tmp_path / "new"))  # a folder not made yet is fine
    assert models.cache_dir() in (tmp_path / "new", tmp_path / "new" / "hguard")


def test_a_load_without_the_cache_does_not_look_the_cache_folder_up(tmp_path, monkeypatch):
    """`load_model(gguf, use_cache=False)` loaded while XDG_CACHE_HOME named a file; the check of the cache setting
    must not refuse a load that uses no cache (a review of that check)."""
    import transformers

    f = tmp_path / "afile"
    f.write_text("x")
    monkeypatch.delenv("HGUARD_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(f))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF not really")
    lm = tiny_model("llama")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: lm.model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: lm.tokenizer)
    loaded = models.load_model(gguf, use_cache=False)
    assert loaded.load_info["cache"] is None and loaded.fingerprint.startswith("gguf-sha256:")
    with pytest.raises(models.CacheError, match="XDG_CACHE_HOME=.* names a file"):
        models.load_model(gguf)
