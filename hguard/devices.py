"""Which torch device a model answers on: ``auto``, ``cpu`` or ``cuda[:N]``, and inside a Ray actor the GPU Ray assigned.

Ray gives an actor that reserves GPUs (``num_gpus``) the ids in :func:`ray.get_gpu_ids` and sets
``CUDA_VISIBLE_DEVICES`` for its process, so torch numbers the visible GPUs from 0; the actor's
device is the position of its first assigned id among the visible ones (``cuda:0`` in the usual
one-GPU-per-actor case). A request for a GPU (``cuda``, or GPUs reserved for the actor) where torch
sees none is refused with one line, not run on the CPU: a calibration planned for GPUs would
otherwise run many times slower without saying so.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Sequence

from .errors import InputError

DEVICES = ("auto", "cpu", "cuda")
_CUDA = re.compile(r"^cuda(:\d+)?$")


def env_threads() -> int | None:
    """The torch thread count ``HGUARD_THREADS`` sets (None when unset), or InputError naming the value and the fix:
    not a whole number >= 1, or more than four per CPU of this machine (at least 64 allowed), past which torch
    gains nothing (100000 died in a MemoryError and a segmentation fault)."""
    n = os.environ.get("HGUARD_THREADS")
    if not n:
        return None
    most = max(64, 4 * (os.cpu_count() or 1))
    if not (n.strip().isascii() and n.strip().isdigit()) or not 1 <= int(n) <= most:  # "²" is a digit int() refuses
        raise InputError(f"HGUARD_THREADS must be a whole number from 1 to {most} (this machine has {os.cpu_count()} "
                         f"CPUs), got {n!r}; set e.g. HGUARD_THREADS=1 or unset it")
    return int(n)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def choose_device(requested: str = "auto", *, gpus_reserved: float = 0.0, gpu_ids: Sequence | None = None,
                  cuda_available: bool | None = None, in_ray: bool = False) -> str:
    """The device string for ``torch.nn.Module.to``.

    ``requested``: ``auto`` (the GPU when torch sees one, else the CPU), ``cpu``, ``cuda`` or
    ``cuda:N``. ``gpus_reserved``: GPUs the Ray actor reserved (0 outside Ray); ``gpu_ids``: the ids
    Ray assigned to it (``ray.get_gpu_ids()``). ``cuda_available`` defaults to ``torch.cuda.is_available()``.
    ``in_ray``: asked inside a Ray actor (the refusal's fix then speaks of Ray's GPUs).
    """
    if not isinstance(requested, str) or not (requested in DEVICES or _CUDA.match(requested)):
        raise InputError(f"--device {requested!r}: pass auto, cpu, cuda or cuda:N")
    if gpus_reserved and gpus_reserved > 0 and requested == "cpu":
        raise InputError(f"--device cpu with --gpus-per-actor {gpus_reserved:g}: the reserved GPU would sit idle; "
                         "pass --gpus-per-actor 0 to answer on CPUs, or --device auto")
    available = _cuda_available() if cuda_available is None else bool(cuda_available)
    wants_gpu = requested.startswith("cuda") or bool(gpus_reserved and gpus_reserved > 0)
    if wants_gpu and not available:
        what = f"--gpus-per-actor {gpus_reserved:g}" if gpus_reserved else f"--device {requested}"
        seen = (f"torch.cuda.is_available() is False, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}"
                + (f", Ray GPU ids {list(gpu_ids or [])}" if in_ray else ""))
        fix = ("install a CUDA build of torch and start Ray with GPUs, or pass --device cpu --gpus-per-actor 0" if in_ray
               else "install a CUDA build of torch on a machine with a GPU, or pass --device cpu (or auto)")
        raise InputError(f"{what} but torch sees no CUDA GPU on {socket.gethostname()} ({seen}); {fix}")
    if not available or requested == "cpu":
        return "cpu"
    if requested.startswith("cuda:"):
        return requested
    return f"cuda:{_visible_index(gpu_ids)}"


def _visible_index(gpu_ids: Sequence | None) -> int:
    """torch's index of the first GPU Ray assigned: its position in CUDA_VISIBLE_DEVICES (0 when unset)."""
    if not gpu_ids:
        return 0
    visible = [v.strip() for v in (os.environ.get("CUDA_VISIBLE_DEVICES") or "").split(",") if v.strip()]
    first = str(gpu_ids[0])
    return visible.index(first) if first in visible else 0


def move_model(lm, device: str):
    """``lm`` (a :class:`hguard.models.LoadedModel`) with its model on ``device``; returns ``lm``."""
    import torch

    if next(lm.model.parameters()).device != torch.device(device):
        lm.model.to(device)
    return lm


__all__ = ["DEVICES", "choose_device", "move_model"]
