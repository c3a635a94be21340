"""Labelled data and labelling for per-domain calibration.

- `hguard.calibrate.data`: the JSONL format of labelled questions (`Example`), loading with
  line-precise errors, writing, deterministic train/test splits and a content hash.
- `hguard.calibrate.judge`: turns a model's reply into a label (correct, hallucinated, refusal).

Submodules are imported on demand so that importing this package stays cheap.
"""
