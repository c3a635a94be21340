"""hguard's research harness: the experiments and comparisons behind the numbers in
`benchmarks/README.md`, kept out of the installed package. It may use repository paths.

- `research.steering`: the H-Neuron steering experiment (`benchmarks/steering.py`).
- `research.baselines`: the detectors hguard is compared with (`benchmarks/detectors.py`).
- `research.public`: loaders for the public datasets in `../shared/data`.
- `research.grounding_eval`: AUROC of the grounding signals (`benchmarks/grounding.py`).
"""
