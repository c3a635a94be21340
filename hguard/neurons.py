"""H-Neuron contributions (CETT) read from the FFN down-projections while the model runs.

For neuron j of a layer at token t, with z_t the input of the down-projection and h_t = W_down z_t its
output (bias excluded), ``cett[j, t] = |z[j, t]| * ||W_down[:, j]||_2 / ||h_t||_2``. The recorder averages
it over the generated answer tokens only: not the prompt, not the chat template, not end-of-sequence.

During incremental decoding the prompt is processed in one "prefill" call and each generated token a_k
is fed back at step k, when its activations appear. The end-of-sequence token and, for an answer cut at
``max_new_tokens``, the last token are never fed back; the first is excluded by definition and the
second is left out (``n_tokens`` says how many tokens each row averaged). The same mask applied to one
teacher-forced forward pass over prompt + answer gives the same vectors (tested).

Hooks only act on the thread that opened the recorder, so concurrent requests on one model never see
each other's activations, and they are removed in reverse order when the ``with`` block ends, also on
an exception.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from .errors import InputError, UnsupportedModelError, UsageError

# model_type -> (path of the decoder layer list, path of the down-projection inside a layer, weight layout)
# "linear": nn.Linear, weight (d_model, d_ff); "conv1d": GPT-2 Conv1D, weight (d_ff, d_model).
_ARCHITECTURES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "llama": (("model.layers",), "mlp.down_proj", "linear"),
    "mistral": (("model.layers",), "mlp.down_proj", "linear"),
    "mixtral": (("model.layers",), "", "moe"),
    **{moe: (("model.layers",), "", "moe") for moe in (
        "qwen2_moe", "qwen3_moe", "olmoe", "granitemoe", "phimoe", "deepseek_v2", "deepseek_v3", "dbrx", "jamba")},
    "qwen2": (("model.layers",), "mlp.down_proj", "linear"),
    "qwen3": (("model.layers",), "mlp.down_proj", "linear"),
    "gemma": (("model.layers",), "mlp.down_proj", "linear"),
    "gemma2": (("model.layers",), "mlp.down_proj", "linear"),
    "gemma3_text": (("model.layers",), "mlp.down_proj", "linear"),
    "gemma3": (("model.language_model.layers", "language_model.model.layers", "model.layers"), "mlp.down_proj", "linear"),
    "olmo": (("model.layers",), "mlp.down_proj", "linear"),
    "olmo2": (("model.layers",), "mlp.down_proj", "linear"),
    "phi3": (("model.layers",), "mlp.down_proj", "linear"),
    "smollm3": (("model.layers",), "mlp.down_proj", "linear"),
    "granite": (("model.layers",), "mlp.down_proj", "linear"),
    "gpt2": (("transformer.h",), "mlp.c_proj", "conv1d"),
    "gpt_neox": (("gpt_neox.layers",), "mlp.dense_4h_to_h", "linear"),
    "phi": (("model.layers",), "mlp.fc2", "linear"),
}
SUPPORTED_MODEL_TYPES = tuple(sorted(k for k, v in _ARCHITECTURES.items() if v[2] != "moe"))


@dataclass(frozen=True)
class FFNSite:
    """One decoder layer's down-projection."""

    layer: int
    module: nn.Module
    layout: str  # "linear" or "conv1d"
    d_ff: int
    offset: int  # where this layer's neurons start in the flat feature vector
    # what of the module's forward is not its class's when found: its forward hooks and pre-hooks other than hguard's,
    # and whether it has a forward of its own (an instance attribute, as accelerate's device hooks set)
    overrides: tuple[int, int, bool] = (0, 0, False)
    # the weight's shape, dtype, device and a strided sample of its bytes when found (see weight_signature)
    signature: tuple = field(default=(), compare=False, repr=False)


_SAMPLE = 4096  # weight elements sampled per layer for its signature


def weight_signature(w: torch.Tensor) -> tuple:
    """A cheap signature of a down-projection's weight: its shape, dtype and device and the bytes of some thousands of its
    elements, taken at an odd stride over all of it. An edit in place (an adapter merged into the Linear, PEFT's
    ``merge_and_unload``, ``weight.data.add_()``) changes it where the data pointer and version counter stay the same;
    the whole weight is never hashed (a strided sample costs microseconds per layer, see the tests)."""
    w = w.detach()
    head = (tuple(w.shape), w.dtype, str(w.device))
    if w.device.type == "meta" or w.numel() == 0:  # offloaded: no value to sample here
        return (*head, None)
    flat = w.reshape(-1)  # a view of a contiguous weight
    step = max(1, w.numel() // _SAMPLE) | 1
    return (*head, flat[::step].clone().view(-1).view(torch.uint8))


# A generation compares one of this many interleaved shares of the load-time sample of every weight (see
# WeightSample): share k of a matrix's sample is every WEIGHT_SHARES-th of its elements from the k-th, still spread over the
# whole matrix, so each generation reads 256 elements a matrix; sixteen generations read the whole sample. The check at a
# guard's start (and calibrate/evaluate's) compares the whole sample and every row of every weight (its row checksum),
# and so does every generation once a difference is seen, until the weights are as loaded again. Measured on the default
# model (SmolLM2-135M, float32 or bfloat16, one thread): a share 2-3 ms, the whole sample 11-13 ms, the row checksums
# about 0.1 s.
WEIGHT_SHARES = 16

_INT_VIEW = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.int8}
_CHUNK = 1 << 17  # int64 words a row checksum multiplies at a time off the CPU (1 MiB)
_MULTIPLIERS: dict = {}  # (words a row, device) -> the odd multipliers of its positions


def _multipliers(n: int, device: torch.device) -> torch.Tensor:
    """A fixed odd 64-bit multiplier for each of ``n`` positions (splitmix64 of the position: the same on every run,
    device and version), on ``device``."""
    key = (n, str(device))
    if key not in _MULTIPLIERS:
        import numpy as np

        with np.errstate(over="ignore"):
            x = (np.arange(n, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
            x ^= x >> np.uint64(30)
            x *= np.uint64(0xBF58476D1CE4E5B9)
            x ^= x >> np.uint64(27)
            x *= np.uint64(0x94D049BB133111EB)
            x ^= x >> np.uint64(31)
        _MULTIPLIERS[key] = torch.from_numpy((x | np.uint64(1)).view(np.int64)).to(device)
    return _MULTIPLIERS[key]


def _words(rows: torch.Tensor) -> torch.Tensor:
    """``rows``' bytes as 64-bit integers, each row its own: packed 8 bytes to a word (two float32 or four bfloat16
    elements; no copy) where a row's bytes are a whole number of words, else each element's bits widened to a word."""
    if rows.shape[-1] * rows.element_size() % 8 == 0:
        try:
            return rows.view(torch.int64)
        except RuntimeError:  # a view into its storage at an offset that is not a whole word
            pass
    return rows.view(_INT_VIEW[rows.element_size()]).to(torch.int64)


def row_checksums(w: torch.Tensor) -> torch.Tensor | None:
    """A checksum of each row of ``w`` (over its last dimension; a vector is one row), as int64 on the CPU: the
    wrapping sum of the row's bits, read as 64-bit words (two float32 or four bfloat16 elements a word, or one element
    widened), each word times a fixed odd multiplier of its position in the row. Exact integer arithmetic, so the same on
    any device and thread count (compared exactly), and it sees any one element changed in any bit, and with
    overwhelming odds (a 64-bit checksum) more: a row's elements reordered (reversed, two swapped), negated or scaled,
    whatever the row's length. Computed on the weight's own device. None for a weight without values here (offloaded)
    or of a dtype without an integer view. About 0.1 s for every weight of the default model, one thread."""
    w = w.detach()
    if w.device.type == "meta" or w.numel() == 0 or w.element_size() not in _INT_VIEW or w.is_complex():
        return None
    rows = (w.reshape(1, -1) if w.dim() < 2 else w.reshape(-1, w.shape[-1])).contiguous()
    try:
        words = _words(rows)
        mult = _multipliers(words.shape[-1], words.device)
        if words.device.type == "cpu":  # an integer matrix-vector product: no product held, as fast as a plain sum
            out = torch.mv(words, mult)
        else:  # CUDA has no integer mv: the products a chunk at a time
            out = torch.empty(words.shape[0], dtype=torch.int64, device=words.device)
            step = max(1, _CHUNK // words.shape[-1])
            buf = torch.empty(min(step, words.shape[0]), words.shape[-1], dtype=torch.int64, device=words.device)
            for i in range(0, words.shape[0], step):
                part = buf[: min(step, words.shape[0] - i)]
                torch.mul(words[i:i + step], mult, out=part)
                torch.sum(part, -1, out=out[i:i + step])
    except (RuntimeError, TypeError):
        return None
    return out.cpu()


def adapter_state(model: nn.Module) -> tuple:
    """The live state of the PEFT adapter layers in ``model`` (modules with ``active_adapters`` and a disabled flag, as
    peft's ``BaseTunerLayer``): each one's name, whether its adapters are disabled (``model.disable_adapters()``), the
    active and merged adapters and its ``scaling``. A change to any of them changes the answers with no weight changed."""
    out: list[tuple] = []
    for name, m in model.named_modules():
        if not (hasattr(m, "_disable_adapters") and hasattr(m, "active_adapters")):
            continue
        try:
            active = m.active_adapters
            scaling = getattr(m, "scaling", None)
            out.append((name, bool(m.disable_adapters), tuple(active if isinstance(active, (list, tuple)) else [active]),
                        tuple(getattr(m, "merged_adapters", ()) or ()),
                        tuple(sorted((k, float(v)) for k, v in scaling.items())) if isinstance(scaling, dict) else ()))
        except (AttributeError, TypeError, ValueError):
            out.append((name, "unreadable"))
    return tuple(out)


@dataclass(frozen=True)
class WeightSample:
    """A strided sample of every parameter of a model (the down-projections' signature, extended to every weight the
    forward pass uses: attention, MLP, norms, embeddings), a checksum of each of their rows and the live state of any
    PEFT adapter layer, taken when the model is loaded, on the CPU in the dtype it was loaded in. :func:`changed_weights`
    names the parameters that are not as sampled."""

    params: dict  # name -> (shape, dtype, step, sample or None for a weight without values here: offloaded)
    _shares: dict = field(default_factory=dict, compare=False, repr=False)  # share -> its samples' bytes, concatenated
    rows: dict = field(default_factory=dict, compare=False, repr=False)  # name -> row_checksums (None: offloaded)
    adapters: tuple = ()  # adapter_state at load

    def share_bytes(self, share: int | None) -> torch.Tensor:
        if share not in self._shares:
            parts = [s if share is None else s[share::WEIGHT_SHARES] for _, _, _, s in self.params.values() if s is not None]
            self._shares[share] = torch.cat(parts).view(torch.uint8) if parts else torch.zeros(0, dtype=torch.uint8)
        return self._shares[share]


def _strided(w: torch.Tensor, step: int, share: int | None) -> torch.Tensor:
    flat = w.detach().reshape(-1)
    return flat[::step] if share is None else flat[share * step::WEIGHT_SHARES * step]


def sample_weights(model: nn.Module) -> WeightSample:
    """The :class:`WeightSample` of ``model`` as it is now (at load): ``_SAMPLE`` elements of each parameter at an odd
    stride, as :func:`weight_signature` takes of a down-projection, the :func:`row_checksums` of each and the
    :func:`adapter_state`."""
    params: dict = {}
    rows: dict = {}
    for name, p in model.named_parameters():
        step = max(1, p.numel() // _SAMPLE) | 1
        values = None if p.device.type == "meta" or p.numel() == 0 else _strided(p, step, None).cpu().clone()
        params[name] = (tuple(p.shape), p.dtype, step, values)
        rows[name] = row_checksums(p)
    return WeightSample(params, rows=rows, adapters=adapter_state(model))


def _same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8)))


# the dtypes a float32 weight rounded by a cast and back (``model.to(torch.bfloat16).to(torch.float32)``) went through
_ROUND_TRIPS = ("bfloat16", "float16")


def _rounded_by(want: torch.Tensor, got: torch.Tensor) -> str | None:
    """The dtype ``want`` (as loaded) was cast to and back to read as ``got``, if one of _ROUND_TRIPS did it."""
    if want.dtype != got.dtype or not want.is_floating_point():
        return None
    for name in _ROUND_TRIPS:
        dt = getattr(torch, name)
        if want.element_size() > dt.itemsize and _same_bytes(want.to(dt).to(want.dtype), got):
            return name
    return None


def changed_weights(model: nn.Module, sample: WeightSample, share: int | None = None) -> list[tuple[str, str]]:
    """The parameters of ``model`` that are not as ``sample`` took them, each as (name, how): "values" (other values,
    or another shape), "rounded:DTYPE" (the values a cast to DTYPE and back leaves), "added" or "gone" (a module swapped
    for one with other parameters, an adapter wrapped around a layer), "adapter" (a PEFT adapter layer disabled,
    enabled, switched or rescaled: :func:`adapter_state`). ``share`` (0 to 15) compares one interleaved share of each
    sample, None the whole of it and every row of every weight (:func:`row_checksums`). A model cast to another dtype
    since is compared with the sample cast the same way, not row by row (its fingerprint says the dtype; a cast and back
    is another model), and one moved to another device is the same model."""
    adapters = adapter_state(model) if sample.adapters else ()
    moved = [(n, "adapter") for n in sorted({a[0] for a in set(adapters) ^ set(sample.adapters)})]
    now = dict(model.named_parameters())
    if not moved and list(now) == list(sample.params):  # the common case: one concatenation, one transfer, one comparison
        try:
            got = torch.cat([_strided(now[n], step, share) for n, (_, _, step, s) in sample.params.items() if s is not None])
            if all(now[n].dtype == d for n, (_, d, _, _) in sample.params.items()) and _same_bytes(
                    got.cpu().view(torch.uint8), sample.share_bytes(share)):
                if share is not None:
                    return []
                sums = [(n, row_checksums(p)) for n, p in now.items()]
                if all(r is None or sample.rows.get(n) is None or torch.equal(r, sample.rows[n]) for n, r in sums):
                    return []
        except (RuntimeError, TypeError):  # parameters on several devices, or of other shapes: compared one by one
            pass
    out = moved + [(n, "gone") for n in sample.params if n not in now] + [(n, "added") for n in now if n not in sample.params]
    for name, (shape, dtype, step, values) in sample.params.items():
        p = now.get(name)
        if p is None:
            continue
        if tuple(p.shape) != shape:
            out.append((name, "values"))
            continue
        if values is None or p.device.type == "meta" or p.numel() == 0:
            continue
        want = values if share is None else values[share::WEIGHT_SHARES]
        got = _strided(p, step, share).cpu()
        if not _same_bytes(got, want.to(got.dtype)):
            rounded = _rounded_by(want, got)
            out.append((name, f"rounded:{rounded}" if rounded else "values"))
            continue
        loaded_rows = sample.rows.get(name)
        if share is None and p.dtype == dtype and loaded_rows is not None:
            rows = row_checksums(p)
            if rows is not None and not torch.equal(rows, loaded_rows):
                out.append((name, "values"))
    return out


def describe_parameters(names: Iterable[str]) -> str:
    """Parameter names said short: those of numbered layers grouped by their path in the layer ("self_attn.q_proj.weight
    of layer(s) 0, 1"), others whole."""
    import re

    groups: dict[str, list[int]] = {}
    for name in names:
        m = re.match(r"(.*?)\.(\d+)\.(.+)$", name)
        key, layer = (m.group(3), int(m.group(2))) if m else (name, -1)
        groups.setdefault(key, []).append(layer)
    said = [key if layers == [-1] else f"{key} of layer(s) {_layer_list(sorted(set(layers)))}"
            for key, layers in groups.items()]
    return "; ".join(said[:6]) + (f"; and {len(said) - 6} more" if len(said) > 6 else "")


def _same_signature(a: tuple, b: tuple) -> bool:
    if not a or not b:
        return not a and not b
    if a[:3] != b[:3] or (a[3] is None) != (b[3] is None):
        return False
    return a[3] is None or bool(torch.equal(a[3], b[3]))


_OWN_HOOKS: "weakref.WeakSet" = weakref.WeakSet()  # the recorder's hooks, which come and go with each generation


def _overrides(module: nn.Module) -> tuple[int, int, bool]:
    """What changes ``module``'s output beyond its class's forward and weights: its forward hooks and forward pre-hooks
    (hguard's own left out) and an instance-level ``forward``."""
    def foreign(hooks) -> int:
        return sum(1 for fn in list(hooks.values()) if fn not in _OWN_HOOKS)

    return foreign(module._forward_hooks), foreign(module._forward_pre_hooks), "forward" in vars(module)


def _get(root: nn.Module, path: str):
    obj = root
    for part in path.split("."):
        if not part:
            continue
        obj = getattr(obj, part)
    return obj


def _weight(module: nn.Module) -> torch.Tensor:
    """A down-projection's weight tensor (a module attribute torch types as tensor or module), or UnsupportedModelError
    for a module without one: a quantized module's weight is a method, and a wrapper around the original (an adapter's,
    which calls the Linear it holds) has no weight of its own."""
    w = getattr(module, "weight", None)
    if not isinstance(w, torch.Tensor):
        held = f"its weight is a {type(w).__name__}" if w is not None else "it holds none of its own: a wrapper, as an adapter's, computes other neurons than the module it wraps"
        raise UnsupportedModelError(f"the FFN down-projection {type(module).__name__} has no weight tensor ({held})")
    return w


def check_model_type(model_type: object, what: str, *, encoder_decoder: bool = False) -> tuple[tuple[str, ...], str, str]:
    """Where ``model_type``'s FFN down-projections are (its layer lists, the path in a layer, the weight layout), or
    UnsupportedModelError naming ``what`` (the model's class or folder), why and the supported types: read from a
    folder's config before its weights load (a refusal came after minutes of loading), and from a loaded model."""
    spec = _ARCHITECTURES.get(model_type) if isinstance(model_type, str) else None
    supported = f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}"
    if encoder_decoder:
        raise UnsupportedModelError(
            f"{what} (model_type {model_type!r}) is an encoder-decoder model; hguard reads the FFN neurons of "
            f"decoder-only chat models as they generate; {supported}")
    if spec is not None and spec[2] == "moe":
        raise UnsupportedModelError(
            f"{what} (model_type {model_type!r}) is a mixture-of-experts model: each token passes through a few "
            f"experts' FFNs, so there is no one set of neurons per layer for a probe to read; {supported}")
    if spec is None:
        raise UnsupportedModelError(
            f"hguard does not know where the FFN down-projection of {what} (model_type {model_type!r}) is; "
            f"{supported}. Open an issue with the model's class and its module tree (print(model)).")
    return spec


def find_ffn_sites(model: nn.Module) -> list[FFNSite]:
    """The down-projection of every decoder layer, in layer order."""
    config = getattr(model, "config", None)
    layer_paths, down_path, layout = check_model_type(
        getattr(config, "model_type", None), type(model).__name__,
        encoder_decoder=bool(getattr(config, "is_encoder_decoder", False)))
    model_type = getattr(config, "model_type", None)
    layers = None
    for path in layer_paths:
        try:
            layers = _get(model, path)
            break
        except AttributeError:
            continue
    if layers is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} (model_type {model_type!r}) has none of the layer lists {layer_paths}; "
            f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    sites: list[FFNSite] = []
    offset = 0
    for i, layer in enumerate(layers):
        down = _get(layer, down_path)
        weight = _weight(down)
        d_ff = weight.shape[0] if layout == "conv1d" else weight.shape[1]
        sites.append(FFNSite(layer=i, module=down, layout=layout, d_ff=int(d_ff), offset=offset, overrides=_overrides(down),
                             signature=weight_signature(weight)))
        offset += int(d_ff)
    return sites


def _same_module(was: FFNSite, now: FFNSite) -> bool:
    """Whether ``now`` computes what ``was`` did: a module of the same type and layout holding equal weights and bias (a
    copy, as module fusing or a rebuilt layer makes), with the hooks and own forward ``was`` had when found (a copy
    carrying a hook that scales its output, or a forward of its own, computes other neurons), so that its neurons are
    the ones calibrated."""
    a, b = was.module, now.module
    if type(a) is not type(b) or was.layout != now.layout or was.d_ff != now.d_ff or was.overrides != now.overrides:
        return False
    wa, wb = _weight(a), _weight(b)
    if wa.shape != wb.shape or wa.dtype != wb.dtype or wa.device != wb.device or not torch.equal(wa, wb):
        return False
    ba, bb = getattr(a, "bias", None), getattr(b, "bias", None)
    if ba is None or bb is None:
        return ba is None and bb is None
    return ba.shape == bb.shape and ba.dtype == bb.dtype and ba.device == bb.device and bool(torch.equal(ba, bb))


CHANGED_MODEL_FIX = ("load the model as it is to be served, calibrate its probes on it, and start the guard on it (a change "
                     "made to the model after the guard started is not what its probes were calibrated on)")


def _layer_list(layers: Iterable[int]) -> str:
    layers = list(layers)
    return ", ".join(str(i) for i in layers[:8]) + (", ..." if len(layers) > 8 else "")


def current_sites(model: nn.Module, sites: Sequence[FFNSite]) -> tuple[list[FFNSite], str | None]:
    """The FFN sites to hook in ``model`` now, for ``sites`` found when it was first read (a guard's start): ``sites``
    while the model still holds their modules; the modules it holds now where each swapped one is of the same type
    with equal weights (module fusing's copy); else ``sites`` and why the neurons cannot be read: hooks left on the
    old modules record nothing, and a module with other weights or of another kind (a quantized or adapter-wrapped
    down-projection) computes other neurons than a probe was calibrated on."""
    fix = CHANGED_MODEL_FIX
    try:
        now = find_ffn_sites(model)
    except UnsupportedModelError as exc:
        return list(sites), f"the model's FFN down-projections were changed after the guard started ({exc}); {fix}"
    if len(now) != len(sites):
        return list(sites), (f"the model has {len(now)} FFN layers now, {len(sites)} when the guard started: its "
                             f"layers were changed after the guard started; {fix}")
    other = [b for a, b in zip(sites, now) if a.module is not b.module and not _same_module(a, b)]
    if other:
        kinds = sorted({f"{type(s.module).__name__}" for s in other})
        layers = _layer_list(s.layer for s in other)
        return list(sites), (f"the FFN down-projection of layer(s) {layers} was replaced after the guard started by "
                             f"a module ({', '.join(kinds)}) that is not a copy of the one calibrated (another type, "
                             f"shape or weights), so the neurons a probe reads there are not the calibrated ones; {fix}")
    edited = [b for a, b in zip(sites, now) if not _same_signature(a.signature, b.signature)]
    if edited:  # the same modules (or copies of them), their weights changed in place since they were found
        return list(sites), (f"the weights of the FFN down-projection of layer(s) {_layer_list(s.layer for s in edited)} "
                             f"were changed after the guard started (another shape, dtype or device, or other values: an "
                             f"adapter merged in, the weight edited in place), so the neurons a probe reads there are not "
                             f"the calibrated ones; {fix}")
    if all(a.module is b.module for a, b in zip(now, sites)):
        return list(sites), None
    return now, None  # copies of the calibrated modules: hooked in their place


def n_neurons(model: nn.Module) -> int:
    return sum(s.d_ff for s in find_ffn_sites(model))


def _weight_and_bias(site: FFNSite) -> tuple[torch.Tensor, torch.Tensor | None]:
    """W_down as (d_model, d_ff), whatever the module's layout, plus its bias."""
    w = _weight(site.module)
    if site.layout == "conv1d":
        w = w.t()
    return w, getattr(site.module, "bias", None)


_NORM_CACHE: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, torch.Tensor]]" = weakref.WeakKeyDictionary()
_NORM_LOCK = threading.Lock()


def column_norms(site: FFNSite) -> torch.Tensor:
    """||W_down[:, j]||_2 for every neuron j, from the dequantised float weights.

    A strided reduction over the whole matrix costs about a millisecond per layer, on every
    ``generate``; the result is kept per module and recomputed only when the weight tensor is replaced
    or changed in place (its data pointer, shape, dtype or version counter differ).
    """
    w, _ = _weight_and_bias(site)
    key = (w.data_ptr(), tuple(w.shape), w.dtype, w.device, _weight(site.module)._version)
    with _NORM_LOCK:
        hit = _NORM_CACHE.get(site.module)
    if hit is not None and hit[0] == key:
        return hit[1]
    norms = w.detach().float().norm(dim=0)
    with _NORM_LOCK:
        _NORM_CACHE[site.module] = (key, norms)
    return norms


def _split_by_layer(sites: Sequence[FFNSite], indices: Iterable[int]) -> dict[int, torch.Tensor]:
    """Global feature indices -> {layer: local neuron indices}, keeping the order given."""
    total = sum(s.d_ff for s in sites)
    by_layer: dict[int, list[int]] = {}
    for g in indices:
        g = int(g)
        if not 0 <= g < total:
            raise InputError(f"neuron index {g} is outside 0..{total - 1} for this model ({len(sites)} layers)")
        for s in sites:
            if s.offset <= g < s.offset + s.d_ff:
                by_layer.setdefault(s.layer, []).append(g - s.offset)
                break
    return {k: torch.tensor(v, dtype=torch.long) for k, v in by_layer.items()}


def _own(hook):
    """``hook``, marked as hguard's: not a change to the module that :func:`_same_module` compares."""
    _OWN_HOOKS.add(hook)
    return hook


class NeuronRecorder:
    """Records mean CETT over answer tokens during ``generate`` (or one teacher-forced pass).

    ``neurons``: ``"all"`` (n_layers * d_ff features, for calibration), a sequence of global feature
    indices (layer * d_ff + j; for inference with a sparse probe; the result keeps that order), or
    ``None`` (record nothing, e.g. steering alone).
    ``scale``: global indices -> factor applied to z (the down-projection's input) before it is used,
    for steering; factor 1 leaves every output unchanged.

    Use::

        with NeuronRecorder(model, neurons="all") as rec:
            rec.arm_generation(batch_size, eos_token_ids)
            model.generate(...)
        vectors = rec.result()   # (batch, n_features) float32, rec.n_tokens: (batch,)
    """

    def __init__(
        self,
        model: nn.Module,
        neurons: str | Sequence[int] | None = "all",
        *,
        scale: Mapping[int, float] | None = None,
        sites: Sequence[FFNSite] | None = None,
    ):
        self.model = model
        self.sites = list(sites) if sites is not None else find_ffn_sites(model)
        self.n_features = sum(s.d_ff for s in self.sites)
        if isinstance(neurons, str) and neurons != "all":
            raise InputError(f"neurons={neurons!r}: pass 'all', a sequence of feature indices, or None")
        self.mode = "all" if isinstance(neurons, str) else ("none" if neurons is None else "subset")
        self._subset: dict[int, torch.Tensor] = {}
        self._subset_pos: dict[int, torch.Tensor] = {}
        if self.mode == "subset":
            order = [int(i) for i in neurons]  # type: ignore[union-attr]
            if len(set(order)) != len(order):
                raise InputError("neurons: the subset has repeated feature indices; pass each index once")
            self._subset = _split_by_layer(self.sites, order)
            # position of each recorded (layer, j) in the caller's order
            pos = {g: i for i, g in enumerate(order)}
            for layer, local in self._subset.items():
                off = self.sites[layer].offset
                self._subset_pos[layer] = torch.tensor([pos[off + int(j)] for j in local], dtype=torch.long)
            self.width = len(order)
        else:
            self.width = self.n_features if self.mode == "all" else 0
        self._scale: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for layer, idx in _split_by_layer(self.sites, (scale or {}).keys()).items():
            off = self.sites[layer].offset
            factors = torch.tensor([float(scale[off + int(j)]) for j in idx])  # type: ignore[index]
            if not torch.isfinite(factors).all():
                raise InputError(f"scale: factors must be finite numbers, got {factors.tolist()}")
            self._scale[layer] = (idx, factors)
        # The layers that record, in layer order, and for the batched decode path: where each recorded
        # feature sits in the concatenation of those layers' z vectors, which of them it belongs to, and
        # its ||W_down[:, j]||, all in the caller's order (subset) or the global order (all).
        self._rec_sites = [s for s in self.sites if self.mode == "all" or s.layer in self._subset]
        self._rec_rank = {s.layer: k for k, s in enumerate(self._rec_sites)}
        self._flat_idx: torch.Tensor | None = None
        self._feat_rank: torch.Tensor | None = None
        self._flat_norms: torch.Tensor | None = None
        self._stack_bias: torch.Tensor | None = None
        self._pending_z: list[torch.Tensor] = []
        self._pending_h: list[torch.Tensor] = []
        self._handles: list = []
        self._thread: int | None = None
        self._norms: dict[int, torch.Tensor] = {}
        self._sums: torch.Tensor | None = None
        self.n_tokens: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None  # (B, S) float for the current forward call
        self._mask_any = False
        self._step_weights: torch.Tensor | None = None
        self._step = -1
        self._eos: torch.Tensor | None = None
        self._finished: torch.Tensor | None = None
        self._explicit_mask: torch.Tensor | None = None
        self._fired = 0  # recorded layers that ran in the current forward call
        self._ran: set[int] = set()  # which of them
        self.unrun_layers: set[int] = set()  # recorded layers that did not run in a forward call where others did
        self._step_counts: torch.Tensor | None = None  # the answer tokens the current decoding step counts

    # ----------------------------------------------------------------------------------- context

    def __enter__(self) -> "NeuronRecorder":
        if self._handles:
            raise UsageError("this NeuronRecorder is already active; use a new one for a nested block")
        self._thread = threading.get_ident()
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._on_model_call, with_kwargs=True))
            for site in self.sites:
                if site.layer in self._scale:
                    self._handles.append(site.module.register_forward_pre_hook(_own(self._make_scale_hook(site))))
                if site.layer in self._rec_rank:
                    self._norms[site.layer] = column_norms(site)
                    self._handles.append(site.module.register_forward_hook(_own(self._make_record_hook(site))))
            if self._rec_sites:
                self._prepare_batched()
                self._handles.append(self.model.register_forward_hook(self._on_model_done))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._remove()

    def _prepare_batched(self) -> None:
        """Index tensors for the decode path, which computes every recorded layer's contribution in one
        go after the forward call instead of a dozen small operations per layer and token."""
        if self.mode == "all":
            flat = None  # the concatenation already is the global order
            rank = torch.cat([torch.full((s.d_ff,), k, dtype=torch.long) for k, s in enumerate(self._rec_sites)])
            norms = torch.cat([self._norms[s.layer] for s in self._rec_sites])
        else:
            starts, start = {}, 0  # where each recorded layer's z starts in the concatenation
            for s in self._rec_sites:
                starts[s.layer] = start
                start += s.d_ff
            flat = torch.empty(self.width, dtype=torch.long)
            rank = torch.empty(self.width, dtype=torch.long)
            norms = torch.empty(self.width, dtype=torch.float32)
            for layer, local in self._subset.items():
                pos = self._subset_pos[layer]
                flat[pos] = starts[layer] + local
                rank[pos] = self._rec_rank[layer]
                norms[pos] = self._norms[layer][local]
        device = _weight(self._rec_sites[0].module).device
        self._flat_idx = None if flat is None else flat.to(device)
        self._feat_rank = rank.to(device)
        self._flat_norms = norms.to(device)
        biases = [_weight_and_bias(s)[1] for s in self._rec_sites]
        if any(b is not None for b in biases):
            d_model = next(b for b in biases if b is not None).shape[0]
            self._stack_bias = torch.stack(
                [b.detach() if b is not None else torch.zeros(d_model, device=device) for b in biases]
            ).view(len(biases), 1, d_model)
        else:
            self._stack_bias = None

    def _remove(self) -> None:
        # Reverse order, and every handle even if one fails: a hook left behind would leak into
        # every later forward pass of a shared model.
        handles, self._handles = self._handles, []
        errors = []
        for h in reversed(handles):
            try:
                h.remove()
            except Exception as e:  # pragma: no cover - torch's remove does not raise in practice
                errors.append(e)
        if errors:
            raise errors[0]

    @property
    def active(self) -> bool:
        return bool(self._handles)

    # ------------------------------------------------------------------------------------- arming

    def arm_generation(self, batch_size: int, eos_token_ids: Iterable[int]) -> None:
        """Prepare for one ``generate`` call: the first forward is the prompt, later ones feed answer tokens."""
        self._reset(batch_size)
        self._step = 0
        self._eos = torch.tensor(sorted({int(t) for t in eos_token_ids}), dtype=torch.long)
        self._finished = torch.zeros(batch_size, dtype=torch.bool)
        self._explicit_mask = None

    def finish_rows(self, rows: torch.Tensor) -> None:
        """Rows ``rows`` (bool, batch) ended at a stop sequence: nothing fed to them from now on counts (the
        token that completed the stop, then padding), as after an end-of-sequence token."""
        if self._finished is not None:
            self._finished |= torch.as_tensor(rows, dtype=torch.bool).cpu()

    def arm_forward(self, answer_mask: torch.Tensor) -> None:
        """Prepare for one teacher-forced forward pass; ``answer_mask`` (B, S) marks the answer tokens."""
        answer_mask = torch.as_tensor(answer_mask)
        if answer_mask.dim() != 2:
            raise InputError(f"answer_mask must be (batch, seq), got shape {tuple(answer_mask.shape)}")
        self._reset(answer_mask.shape[0])
        self._step = -1
        self._explicit_mask = answer_mask.to(torch.float32)

    def _reset(self, batch_size: int) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self._sums = torch.zeros(batch_size, self.width, dtype=torch.float32)
        self.n_tokens = torch.zeros(batch_size, dtype=torch.long)

    # -------------------------------------------------------------------------------------- hooks

    def _mine(self) -> bool:
        return threading.get_ident() == self._thread

    def _on_model_call(self, module, args, kwargs=None):
        # torch registers a with_kwargs hook in two steps; another thread's forward running between
        # them calls it without kwargs. That call is never this thread's, and is ignored below.
        if not self._mine() or self._sums is None:
            return None
        self._pending_z.clear()
        self._pending_h.clear()
        self._fired, self._step_counts = 0, None
        self._ran.clear()
        kwargs = kwargs or {}
        if self._explicit_mask is not None:
            self._set_mask(self._explicit_mask)
            self.n_tokens = self._explicit_mask.sum(1).long()
            return None
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None:
            raise InputError("the recorder needs input_ids in each forward call (inputs_embeds is not supported)")
        bsz, seq = input_ids.shape
        if self._step == 0:
            # The prefill: prompt tokens only, none of them counts.
            self._set_mask(torch.zeros(bsz, seq))
        else:
            eos, finished, n_tokens = self._eos, self._finished, self.n_tokens
            # a decoding step (no explicit mask) follows arm_generation, which sets all three
            assert eos is not None and finished is not None and n_tokens is not None
            fed = input_ids[:, -1].cpu()
            is_eos = torch.isin(fed, eos)
            counts = ~finished & ~is_eos
            finished |= is_eos
            mask = torch.zeros(bsz, seq)
            mask[:, -1] = counts.float()
            self._set_mask(mask)
            n_tokens += counts.long()
            self._step_counts = counts.long()
        self._step += 1
        return None

    def _set_mask(self, mask: torch.Tensor) -> None:
        """The answer mask (B, S) of the forward call about to run, with what the layer hooks derive
        from it once per call instead of once per layer."""
        self._mask = mask
        self._mask_any = bool(mask.any())
        self._step_weights = mask[:, -1] if mask.shape[1] == 1 else None

    def _make_scale_hook(self, site: FFNSite):
        idx, factors = self._scale[site.layer]

        def hook(module, args):
            if not self._mine():
                return None
            z = args[0]
            z = z.clone()
            z[..., idx] = z[..., idx] * factors.to(z.dtype)
            return (z, *args[1:])

        return hook

    def _make_record_hook(self, site: FFNSite):
        layer = site.layer
        norms = self._norms[layer]
        bias = getattr(site.module, "bias", None)
        subset = self._subset.get(layer)
        if subset is not None:
            norms = norms[subset]
            positions = self._subset_pos[layer]
        else:
            positions = None

        def hook(module, args, output):
            if not self._mine() or self._sums is None or self._mask is None or not self._mask_any:
                return None  # another thread's pass, or the prompt: nothing to record
            self._fired += 1
            self._ran.add(layer)
            z = args[0]
            if z.shape[1] == 1 and self._step_weights is not None:
                # Incremental decoding, one fed token per row: keep the tensors, and let the model-level
                # hook compute every layer at once when the forward call ends.
                self._pending_z.append(z)
                self._pending_h.append(output)
                return None
            z = z.detach()
            h = output.detach() if bias is None else output.detach() - bias
            mask = self._mask.to(z.device)
            weights = (mask / torch.linalg.vector_norm(h, dim=-1).clamp_min(1e-12)).unsqueeze(-1)  # (B, S, 1)
            zz = z if subset is None else z[..., subset]
            contrib = ((zz.abs() * weights).sum(dim=1) * norms).float().cpu()  # (B, k)
            if positions is None:
                self._sums[:, site.offset : site.offset + site.d_ff] += contrib
            else:
                self._sums.index_add_(1, positions, contrib)
            return None

        return hook

    def _on_model_done(self, module, args, output):
        if not self._mine():
            return None
        partial = 0 < self._fired < len(self._rec_sites)
        if partial:  # some recorded layers ran and others not (a layer's MLP replaced by one that skips its hooked module)
            self.unrun_layers |= {s.layer for s in self._rec_sites} - self._ran
            self._pending_z, self._pending_h = [], []
        if self._mask_any and (self._fired == 0 or partial) and self.n_tokens is not None:
            # answer tokens fed, and no recorded layer ran (its module was replaced since the hooks were set), or only
            # some: they were not read (in full), so they are not counted; a row of no counted token is a missing neuron
            # signal, never a zero feature vector to score, and a partial reading is said by :meth:`unread`
            if self._step_counts is not None:
                self.n_tokens -= self._step_counts
            elif self._explicit_mask is not None:
                self.n_tokens = torch.zeros_like(self.n_tokens)
            return None
        if not self._pending_z:
            return None
        zs, hs = self._pending_z, self._pending_h
        self._pending_z, self._pending_h = [], []
        assert self._step_weights is not None  # the layer hooks keep tensors only while it is set
        assert len(zs) == len(self._rec_sites)  # a partial firing was dropped above
        with torch.no_grad():
            z = torch.cat(zs, dim=-1)[:, 0]  # (B, sum d_ff)
            if self._flat_idx is not None:
                z = z.index_select(1, self._flat_idx)  # (B, width), the caller's order
            h = torch.stack(hs)[:, :, 0]  # (L, B, d_model)
            if self._stack_bias is not None:
                h = h - self._stack_bias.to(h.dtype)
            step = self._step_weights.to(h.device, torch.float32)
            weights = step / torch.linalg.vector_norm(h.float(), dim=-1).clamp_min(1e-12)  # (L, B)
            contrib = z.float().abs() * weights.index_select(0, self._feat_rank).t() * self._flat_norms
            self._sums += contrib.cpu()
        return None

    # ------------------------------------------------------------------------------------- result

    def unread(self) -> str | None:
        """Why the neurons recorded are not the model's whole reading, else None: recorded layers that did not run while
        others did (their modules, or the MLPs around them, replaced after the hooks were set), so that what the probe
        would score is a partial feature vector."""
        if not self.unrun_layers:
            return None
        return (f"the FFN down-projection of layer(s) {_layer_list(sorted(self.unrun_layers))} did not run while the "
                f"answer was generated, of the {len(self._rec_sites)} layers whose neurons are read (the model's layers "
                f"or MLPs were changed after the guard started), so its neurons were read in part only; {CHANGED_MODEL_FIX}")

    def result(self) -> torch.Tensor:
        """Mean CETT per row over its answer tokens: (batch, width) float32; rows without tokens are 0."""
        if self._sums is None or self.n_tokens is None:
            raise UsageError("nothing recorded: call arm_generation/arm_forward and run the model first")
        return self._sums / self.n_tokens.clamp_min(1).unsqueeze(1).float()

    def token_counts(self) -> torch.Tensor:
        """The answer tokens each row averaged so far: (batch,) long."""
        if self.n_tokens is None:
            raise UsageError("nothing recorded: call arm_generation/arm_forward and run the model first")
        return self.n_tokens


def teacher_forced_cett(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    answer_mask: torch.Tensor,
    neurons: str | Sequence[int] = "all",
) -> torch.Tensor:
    """Mean CETT over ``answer_mask`` from one forward pass over prompt + answer (the reference)."""
    with NeuronRecorder(model, neurons=neurons) as rec:
        rec.arm_forward(answer_mask)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
    return rec.result()


__all__ = [
    "FFNSite",
    "NeuronRecorder",
    "SUPPORTED_MODEL_TYPES",
    "adapter_state",
    "changed_weights",
    "column_norms",
    "current_sites",
    "find_ffn_sites",
    "n_neurons",
    "row_checksums",
    "teacher_forced_cett",
]
