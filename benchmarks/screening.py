"""Streaming screening fit against the in-memory fit, and shard sizes per answer.

Subcommands (each prints one JSON object and writes it to benchmarks/results/, or to the folder ``--out``):

* ``collect-wide --n N --work DIR``: answers from a random model shaped like an 8B model in width
  (32 layers x 14,336 FFN neurons = 458,752 features, hidden size 16) into a shard folder, labelled
  like :func:`hguard.testing.tiny_examples` (half the questions accept the model's own first word).
* ``collect-default --work DIR [--domain D ...]``: the default model's answers to the reference
  calibration questions (pipeline settings: default system prompt, 32 new tokens).
* ``fit --work DIR --mode memory|screen [--k K]``: fits one probe on all rows of DIR and reports the
  time and the peak RSS of this process (run each mode in its own process).
* ``auroc --work DIR --k K [K ...]``: held-out AUROC of the in-memory probe and of screened probes,
  per domain, on the pipeline's split (30% of the facts held out, seed 0; everything is fitted on the
  other 70%), with paired bootstrap 95% intervals of the difference.
* ``shard-size --work DIR``: bytes on disk per answer (data file + manifest entry).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

from benchmarks._common import load_average, threads, write_result  # noqa: E402  (after the repository is on sys.path)

WIDE = dict(num_hidden_layers=32, intermediate_size=14336, hidden_size=16, num_attention_heads=4, num_key_value_heads=2)


def _threads() -> int:
    import torch

    n = int(os.environ.get("HGUARD_THREADS", "1"))
    torch.set_num_threads(n)
    return n


def _save(folder: Path, name: str, out: dict) -> None:
    write_result(folder / f"{name}.json", {**out, "load_average": load_average(), "threads": threads(1)}, echo=True)


def wide_model(seed: int = 0):
    import hashlib

    import torch
    import transformers as tf

    from hguard.models import _finish
    from hguard.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    cfg = tf.LlamaConfig(vocab_size=len(tok), pad_token_id=0, eos_token_id=3, bos_token_id=2, initializer_range=0.3,
                         max_position_embeddings=256, **WIDE)
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    fp = hashlib.sha256(f"wide-8b-shape:{seed}".encode()).hexdigest()[:16]
    return _finish(model, tok, name="wide-8b-shape", source="random", loaded_fingerprint=f"tiny:{fp}")


def _wide_examples(gen, n: int):
    import itertools

    from hguard.calibrate.data import Example

    # questions and labels as in hguard.testing.tiny_examples: every other question accepts the model's
    # own first content word, so about half the answers are right
    words = "capital city country river element symbol author book paris london rome berlin gold silver iron".split()
    qs = [" ".join(c) + " ?" for c in itertools.islice(itertools.permutations(words, 3), 0, 7 * n, 7)]
    firsts = [[w for w in g.text.split() if w not in ("a", "an", "the")][:1] for g in gen.generate(qs, batch_size=32, neurons=None)]
    return [Example(id=f"q{i}", question=q, answers=f if i % 2 == 0 and f else ["zzzz"], domain="wide", meta={"fact": f"f{i}"})
            for i, (q, f) in enumerate(zip(qs, firsts))]


def cmd_collect_wide(args) -> None:
    from hguard.calibrate.collect import collect
    from hguard.generation import Generator

    threads = _threads()
    lm = wide_model()
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    exs = _wide_examples(gen, args.n)
    t0 = time.perf_counter()
    collect(gen, exs, args.work, batch_size=args.batch_size, progress=False)
    _save(args.out, f"screening_collect_wide_n{len(exs)}", {"n": len(exs), "n_features": gen.n_features, "seconds": time.perf_counter() - t0,
                                     "torch_threads": threads})


def cmd_calibrate_wide(args) -> None:
    """`hguard calibrate` itself on the 8B-shaped model (answers from --work, collected first if missing):
    time and peak RSS of the whole calibration after collection, in memory or with --screen-top."""
    from hguard.calibrate.collect import collect
    from hguard.calibrate.pipeline import calibrate
    from hguard.generation import Generator

    threads = _threads()
    lm = wide_model()
    gen = Generator(lm, system_prompt="answer", max_new_tokens=4)
    exs = _wide_examples(gen, args.n)
    collect(gen, exs, args.work, batch_size=16, progress=False, lazy=True)  # lazy: the features stay on disk here
    del gen
    import gc

    gc.collect()
    # the high-water mark so far is the label generation's; reset it so that the peak is calibrate's own
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_mib("VmRSS")
    t0 = time.perf_counter()
    report = calibrate(exs, Path(args.work) / f"probes-{args.screen_top or 'memory'}", lm=lm, system_prompt="answer",
                       max_new_tokens=4, work_dir=args.work, progress=False, plots=False, signing_key=None,
                       screen_top=args.screen_top, device="cpu")
    seconds = time.perf_counter() - t0
    peak = _status_mib("VmHWM")
    m = report["domains"]["wide"]
    _save(args.out, f"screening_calibrate_wide_{'k' + str(args.screen_top) if args.screen_top else 'memory'}_n{len(exs)}", {
        "n": len(exs), "n_features": gen_width(lm), "probe_fit": report["probe_fit"], "seconds_after_collection": seconds,
        "rss_before_calibrate_mib": base, "peak_rss_mib": peak, "peak_rss_added_mib": peak - base,
        "train": m["train"], "held_out": {"n_scored": m["n_scored"], "auroc": m["auroc"], "auroc_ci95": m["auroc_ci95"]},
        "n_selected": m["n_selected_neurons"], "torch_threads": threads,
    })


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def gen_width(lm) -> int:
    from hguard.neurons import find_ffn_sites

    return sum(s.d_ff for s in find_ffn_sites(lm.model))


def cmd_collect_default(args) -> None:
    from hguard.calibrate.collect import collect
    from hguard.calibrate.data import load_examples
    from hguard.calibrate.pipeline import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SYSTEM_PROMPT
    from hguard.generation import Generator
    from hguard.models import load_model

    threads = _threads()
    exs = load_examples([ROOT / "calibration" / "data" / f"{d}.jsonl" for d in args.domain])
    gen = Generator(load_model("default"), system_prompt=DEFAULT_SYSTEM_PROMPT, max_new_tokens=DEFAULT_MAX_NEW_TOKENS)
    t0 = time.perf_counter()
    collect(gen, exs, args.work, batch_size=16, progress=False)
    _save(args.out, "screening_collect_default", {"n": len(exs), "domains": args.domain, "seconds": time.perf_counter() - t0,
                                        "torch_threads": threads})


def _rows(work):
    from hguard.calibrate.shards import ShardStore

    store = ShardStore(work)
    done = store.finished()
    rows = list(done.values())
    rows = [r for r in rows if r["label"] != "refusal"]
    return store, rows


def _y(rows):
    return np.array([1 if r["label"] == "hallucinated" else 0 for r in rows])


def _lengths(rows):
    return np.array([r["length"] for r in rows], float)


def cmd_fit(args) -> None:
    from hguard.probe import HNeuronProbe

    # no torch here: the fit needs numpy and scikit-learn only (the probe keeps BLAS on one thread)
    store, rows = _rows(args.work)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ids = [r["id"] for r in rows]
    y, lengths = _y(rows), _lengths(rows)
    nl, df = WIDE["num_hidden_layers"], WIDE["intermediate_size"]
    if store.settings["n_features"] != nl * df:
        nl, df = 1, store.settings["n_features"]
    t0 = time.perf_counter()
    if args.mode == "memory":
        from hguard.calibrate.collect import load_collected

        X = load_collected(args.work, ids).features
        t_load = time.perf_counter() - t0
        probe = HNeuronProbe(cv=5, n_layers=nl, d_ff=df, random_state=0).fit(X, y, lengths=lengths)
    else:
        from hguard.calibrate.screen import fit_screened

        t_load = None
        probe = fit_screened(args.work, ids, y, k=args.k, lengths=lengths, cv=5, n_layers=nl, d_ff=df, random_state=0)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    _save(args.out, f"screening_fit_{args.mode}{'' if args.mode == 'memory' else '_k' + str(args.k)}_{store.settings['n_features']}_n{len(rows)}", {
        "mode": args.mode, "k": args.k if args.mode == "screen" else None, "n": len(rows), "n_hallucinated": int(y.sum()),
        "n_features": store.settings["n_features"], "seconds": seconds, "load_seconds": t_load, "peak_rss_mib": peak,
        "rss_before_fit_mib": base, "peak_rss_added_by_fit_mib": peak - base,
        "n_selected": int(len(probe.feature_indices_)), "C": probe.C_,
        "feature_bytes_in_memory_mib": len(rows) * store.settings["n_features"] * 4 / 2**20,
    })


def cmd_auroc(args) -> None:
    from hguard.calibrate.collect import load_collected
    from hguard._stats import auroc, bootstrap_aurocs
    from hguard.calibrate.pipeline import split_groups
    from hguard.calibrate.screen import fit_screened
    from hguard.probe import HNeuronProbe

    _threads()
    store, rows = _rows(args.work)
    test_mask = split_groups(rows, 0.3, 0)
    out = {"split": "pipeline split: 30% of facts held out, seed 0", "k": args.k, "domains": {}}
    rng = np.random.default_rng(0)
    for domain in sorted({r["domain"] for r in rows}):
        dm = np.array([r["domain"] == domain for r in rows])
        tr = [r for r, m, t in zip(rows, dm, test_mask) if m and not t]
        te = [r for r, m, t in zip(rows, dm, test_mask) if m and t]
        ids_tr, ids_te = [r["id"] for r in tr], [r["id"] for r in te]
        ytr, yte = _y(tr), _y(te)
        Xtr = load_collected(args.work, ids_tr).features
        Xte = load_collected(args.work, ids_te).features
        width = Xtr.shape[1]
        t0 = time.perf_counter()
        full = HNeuronProbe(cv=5, n_layers=1, d_ff=width, random_state=0).fit(Xtr, ytr, lengths=_lengths(tr))
        t_full = time.perf_counter() - t0
        s_full = full.decision_function(Xte, lengths=_lengths(te))
        d = {"n_train": len(tr), "n_test": len(te), "test_hallucinated": int(yte.sum()), "test_correct": int((1 - yte).sum()),
             "in_memory": {"auroc": auroc(yte, s_full), "n_selected": int(len(full.feature_indices_)), "seconds": t_full},
             "screened": {}}
        screened = {}
        for k in args.k:
            t0 = time.perf_counter()
            p = fit_screened(args.work, ids_tr, ytr, k=k, lengths=_lengths(tr), cv=5, n_layers=1, d_ff=width, random_state=0)
            screened[k] = (p, time.perf_counter() - t0, p.decision_function(Xte, lengths=_lengths(te)))
        # one set of within-class resamples per domain, shared by every k (paired differences)
        boot = bootstrap_aurocs(yte, {"full": s_full, **{str(k): s for k, (_, _, s) in screened.items()}}, seed=rng)
        for k, (p, t_k, s) in screened.items():
            diffs = boot[str(k)] - boot["full"]
            d["screened"][str(k)] = {
                "auroc": auroc(yte, s), "diff": auroc(yte, s) - auroc(yte, s_full),
                "diff_ci95": [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))],
                "n_selected": int(len(p.feature_indices_)), "seconds": t_k,
                "overlap_with_in_memory": int(len(set(p.feature_indices_) & set(full.feature_indices_))),
            }
        out["domains"][domain] = d
    _save(args.out, "screening_auroc_default", out)


def cmd_shard_size(args) -> None:
    from hguard.calibrate.shards import ShardStore

    store = ShardStore(args.work)
    entries = store.entries()
    n = sum(len(e["row_ids"]) for e in entries)
    data = sum((store.shard_dir / e["file"]).stat().st_size for e in entries)
    meta = sum((store.shard_dir / f"{e['shard']}.json").stat().st_size for e in entries)
    _save(args.out, f"shard_size_{store.settings['n_features']}", {
        "n_answers": n, "n_shards": len(entries), "n_features": store.settings["n_features"],
        "data_bytes_per_answer": data / n, "manifest_bytes_per_answer": meta / n, "total_bytes_per_answer": (data + meta) / n,
    })


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result (default: benchmarks/results)")
    c = sub.add_parser("collect-wide", parents=[common])
    c.add_argument("--n", type=int, default=300)
    c.add_argument("--work", required=True)
    c.add_argument("--batch-size", type=int, default=16)
    c.set_defaults(func=cmd_collect_wide)
    c = sub.add_parser("calibrate-wide", parents=[common])
    c.add_argument("--n", type=int, default=256)
    c.add_argument("--work", required=True)
    c.add_argument("--screen-top", type=int, default=None)
    c.set_defaults(func=cmd_calibrate_wide)
    c = sub.add_parser("collect-default", parents=[common])
    c.add_argument("--work", required=True)
    c.add_argument("--domain", action="append", default=None)
    c.set_defaults(func=cmd_collect_default)
    f = sub.add_parser("fit", parents=[common])
    f.add_argument("--work", required=True)
    f.add_argument("--mode", choices=("memory", "screen"), required=True)
    f.add_argument("--k", type=int, default=2000)
    f.set_defaults(func=cmd_fit)
    a = sub.add_parser("auroc", parents=[common])
    a.add_argument("--work", required=True)
    a.add_argument("--k", type=int, nargs="+", default=[500, 2000, 8000])
    a.set_defaults(func=cmd_auroc)
    s = sub.add_parser("shard-size", parents=[common])
    s.add_argument("--work", required=True)
    s.set_defaults(func=cmd_shard_size)
    return p


def main() -> None:
    args = build_parser().parse_args()
    if getattr(args, "domain", 0) is None:
        args.domain = ["geography", "literature"]
    args.func(args)


if __name__ == "__main__":
    main()
