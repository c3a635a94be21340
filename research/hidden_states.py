"""Does a probe on the residual stream carry over to kinds of question the calibration never saw better
than the probe on the feed-forward neurons' contributions (CETT)?

Probes on a model's hidden states are the other common reading of "the model knows it does not know"
(e.g. Azaria & Mitchell 2023, "The internal state of an LLM knows when it's lying"; Kadavath et al. 2022).
This study reads them from the answers already collected (a calibration work folder, e.g.
runs/reference-work): each answer is run once, teacher-forced, through the model with the collection's
prompt (the same batches as research/cett_tokens.py), and every layer's output hidden state (30 layers of
576 values for the default model) is reduced three ways: the mean over the answer tokens (as the CETT is),
the last answer token, and the last prompt token (the state the first answer token is predicted from:
what the model holds about the question before it answers). Each reduction takes the CETT's place in the
same leave-one-family-out protocol as research/generalization.py (the shipped probe settings, v0: a
sparse logistic probe, standardised, C by 3-fold CV, and the merger with the answer's confidence; FINAL
families chose nothing, SELECTION families compare).

Writes benchmarks/results/hidden_states.json (or --out) and prints Markdown.
Run: HGUARD_THREADS=1 .venv/bin/python -m research.hidden_states [--work runs/reference-work] [--batch-size 8]
     [--reductions mean,last,prompt_last] (reductions run apart are added to the results file)
"""

from __future__ import annotations


import numpy as np

NAMES = {
    "mean": "residual stream, mean over the answer tokens",
    "last": "residual stream, last answer token",
    "prompt_last": "residual stream, last prompt token (before the answer)",
}


def hidden_states(gen, rows, batch_size: int = 8, reductions=tuple(NAMES)) -> dict[str, np.ndarray]:
    """{reduction: (n, n_layers * hidden) float32}: every layer's output hidden state (the embeddings left
    out), laid out layer by layer as the CETT features are."""
    import torch

    from .cett_tokens import teacher_forced

    model = gen.lm.model
    n_layers, width = model.config.num_hidden_layers, model.config.hidden_size
    out = {k: np.zeros((len(rows), n_layers * width), np.float32) for k in reductions}
    for start, tf in teacher_forced(gen, rows, batch_size):
        with torch.no_grad():
            states = model(input_ids=tf.ids, attention_mask=tf.attention, position_ids=tf.positions,
                           output_hidden_states=True).hidden_states[1:]
        mask = tf.mask
        n = mask.sum(1).clamp_min(1)
        first = mask.argmax(1)  # left padding: the answer is at the end
        rows_i, rs = torch.arange(len(mask)), slice(start, start + len(mask))
        for layer, h in enumerate(states):
            h, sl = h.float(), slice(layer * width, (layer + 1) * width)
            if "mean" in out:
                out["mean"][rs, sl] = ((h * mask[..., None]).sum(1) / n[:, None]).numpy()
            if "last" in out:
                out["last"][rs, sl] = h[:, -1].numpy()
            if "prompt_last" in out:
                out["prompt_last"][rs, sl] = h[rows_i, first - 1].numpy()
    return out


def main(argv=None) -> int:
    from .cett_tokens import run_reductions

    return run_reductions(argv, __doc__, "hidden_states.json", NAMES, hidden_states, cett_baseline=True)


if __name__ == "__main__":
    raise SystemExit(main())
