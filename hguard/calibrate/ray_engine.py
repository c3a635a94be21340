"""Collection on Ray: the same shards as the local engine, answered by Ray Data actors.

The driver plans the shards exactly as the local engine does (the rows no committed shard holds, cut
into batches of ``batch_size`` in data order, named after the existing shards), so a batch holds the
same rows, padded the same way, on either engine, and gives the same answers and features. The plan
becomes a Ray dataset of one row per shard; ``map_batches`` sends them to a pool of actors, each of
which loads the model once (one actor per GPU on a cluster, per CPU slot here), answers, judges and
records CETT and confidence for its batch with :func:`hguard.calibrate.collect.answer_batch`, and
writes the shard and its manifest entry itself into the collection folder (shared storage on a
cluster), so features never pass through the driver.

Failures: an actor that dies has its shard retried once on a restarted actor (Ray's task retry); a
shard that kills its actor twice stops the job, and the rows without a committed shard are named in
the error; a row whose generation raises is retried within the actor and reported if it fails twice.
A killed driver or worker loses only the shards in flight: the next run answers the rest.

Ray is an optional dependency (``pip install 'hguard[ray]'``), imported only here and only when used.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..devices import env_threads
from ..errors import DataError, InputError, install_extra
from .collect import (
    Collected, Progress, answer_batch, check_ids, load_collected, raise_failed, refuse_unanswerable_rows, relabel, this_run, warn_held_rows,
)
from .shards import ShardStore, collection_settings, write_shard


@dataclass
class RayOptions:
    """Where and how the actors run.

    address: a running cluster (``host:6379`` or ``auto``; not Ray Client's ``ray://``); None starts a
    local one for the call (or uses the Ray this process already initialised). actors: size of the
    actor pool; each loads the model once. num_gpus / num_cpus: resources each actor reserves
    (``num_gpus=1`` places one actor per GPU). model_factory: a picklable callable returning a
    :class:`hguard.models.LoadedModel`, for models that are not a ``load_model`` source (tests).
    device: where each actor's model answers (:func:`hguard.devices.choose_device`): ``auto`` takes
    the GPU Ray assigned to the actor, if any; GPUs reserved where torch sees none are refused.
    """

    address: str | None = None
    actors: int = 1
    num_gpus: float = 0.0
    num_cpus: float = 1.0
    model_factory: Callable[[], Any] | None = None
    device: str = "auto"


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise InputError(
            f"--engine ray needs Ray Data ({e}); install it with {install_extra('ray')} or use --engine local"
        ) from e
    return ray


def check_address(address: str) -> None:
    """Fail fast, with the address in the message, where ray.init would retry for a minute."""
    if address in ("auto", "local"):  # Ray's own words ("localhost:6379" is an address like any other)
        return
    if address.startswith("ray://"):  # Ray Data's driver needs a worker of the cluster; Ray Client has none
        raise InputError(
            f"Ray address {address!r} is Ray Client's, which Ray Data (the engine's) does not support; run hguard on a "
            "node of the cluster with --address HEAD:6379 (or auto), or submit it as a Ray job: "
            "`ray job submit --address http://HEAD:8265 -- hguard calibrate ... --engine ray --address auto`"
        )
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # "[::1]:6379", an IPv6 address
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(
            f"Ray address {address!r} is not host:port (a port of 1 to 65535); pass the head node's GCS address (e.g. "
            "10.0.0.5:6379) or auto"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            reply = b"" if os.environ.get("RAY_USE_TLS", "0") not in ("", "0") else _first_reply(conn)
    except OSError as e:
        raise InputError(
            f"Ray address {address!r} cannot be reached ({e}); start the cluster there with `ray start --head` "
            "or pass the address that `ray status` shows"
        ) from e
    if reply and not (len(reply) >= 4 and reply[3] == _HTTP2_SETTINGS):
        raise InputError(
            f"Ray address {address!r} answers, but not as a Ray cluster's GCS (it replied {reply[:24]!r}, not gRPC: a "
            "dashboard's or another service's port?); pass the head node's GCS port (6379 unless `ray start --head "
            "--port` chose another; `ray status` shows it)"
        )


# A GCS is a gRPC server: to HTTP/2's connection preface it answers with a SETTINGS frame (type 4); an HTTP/1
# server (a dashboard's port), an SSH daemon and the like answer otherwise, and ray.init would retry them for ever.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_HTTP2_SETTINGS = 0x04


def _first_reply(conn: socket.socket) -> bytes:
    """The first bytes a server sends back to HTTP/2's preface (b"" when it says nothing within 3 s)."""
    try:
        conn.settimeout(3)
        conn.sendall(_HTTP2_PREFACE)
        return conn.recv(64)
    except OSError:
        return b""


def _token_file() -> Path | None:
    """Where Ray keeps its authentication token when no environment variable names one (``~/.ray/auth_token``)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return None
    from .._resources import home

    folder = home()  # none (a container run with --user): no token file there either
    return folder / ".ray" / "auth_token" if folder is not None else None


def joined_address(address: str | None) -> str | None:
    """The cluster a run joins, checked (:func:`check_address`: in seconds, where ray.init retries for minutes):
    ``address``, else Ray's own ``RAY_ADDRESS`` (a Ray job's driver has it); None: a local Ray of the run's own.
    The command calls it before the model loads, as :func:`_connect` does before ray.init."""
    if address:
        check_address(address)
        return address
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if not env:
        return None
    try:
        check_address(env)
    except InputError as e:
        raise InputError(f"RAY_ADDRESS (the environment's; no --address was given): {e}; or unset RAY_ADDRESS "
                         "to start a local Ray for the run") from e
    return env


def _connect(ray, address: str | None) -> bool:
    """Connect to (or start) Ray; True when this call started it and must shut it down. Without ``address``, the
    cluster Ray's own ``RAY_ADDRESS`` names (a Ray job's driver has it), checked as ``--address`` is; without either,
    a local Ray of this run's own, never a cluster a ``ray start`` left on this machine."""
    address = joined_address(address)
    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise InputError(f"cannot connect to the Ray cluster at {address!r} ({e}); check the address with `ray status`"
                             + _token_hint(address, connecting=True)) from e
        return True
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    return True


def _token_hint(address: str | None, connecting: bool = False) -> str:
    """What to check when a job on a cluster stops: a token file in the default place, which a driver sends to a
    cluster that may run without authentication, whose workers then refuse it (rerunning does not help). Ray 2.59 on
    writes one for every local Ray (a run without ``--address`` starts one), and it cannot be removed behind a
    process that may start another: that Ray would wait for a token it no longer finds."""
    token = _token_file()
    if not address or token is None or not token.exists() or os.environ.get("RAY_AUTH_MODE"):
        return ""
    if connecting:  # a cluster started where the token file lies asks for it; this driver, not told to, sent none
        return (f"; a Ray token file lies at {token} (a local Ray writes it): if the cluster was started with it "
                "(`ray status` then fails with InvalidAuthToken too), run with RAY_AUTH_MODE=token, which sends it; "
                "if the cluster runs without authentication, move the file away")
    return (f"; if the cluster runs without Ray's token authentication, the token in {token} (a local Ray writes it) "
            "makes its workers refuse this driver (InvalidAuthToken in the raylet's log under the cluster's session "
            "folder), and running again does not help: move the file away, or start the cluster with RAY_AUTH_MODE=token "
            "and that token")


def _check_resources(ray, options: RayOptions) -> None:
    """Actors reserving more GPUs than the cluster has, or more CPUs or GPUs than any one node has, would
    wait for resources forever: refuse now."""
    have = float(ray.cluster_resources().get("GPU", 0.0))
    if options.num_gpus and have < options.num_gpus:
        raise InputError(
            f"--gpus-per-actor {options.num_gpus:g} but the Ray cluster has {have:g} GPU(s) (ray.cluster_resources()); "
            "start the worker nodes with GPUs (`ray start --address HEAD:6379 --num-gpus N`) or pass --gpus-per-actor 0"
        )
    nodes = [n.get("Resources") or {} for n in ray.nodes() if n.get("Alive")]
    for flag, key, want in (("--cpus-per-actor", "CPU", options.num_cpus), ("--gpus-per-actor", "GPU", options.num_gpus)):
        most = max((float(r.get(key, 0.0)) for r in nodes), default=0.0)
        if want and most < want:
            raise InputError(
                f"{flag} {want:g} but no node of the Ray cluster has more than {most:g} {key}(s) (ray.nodes()): an actor "
                f"could never start; pass {flag} {most:g} or less, or start a node with more (`ray start ... --num-"
                f"{key.lower()}s N`)"
            )


class _Answerer:
    """A Ray Data actor: loads the model once, then answers one planned shard per call."""

    def __init__(self, model: str, factory, system_prompt, max_new_tokens: int, work_dir: str, settings: dict, threads: int,
                 device: str = "auto", num_gpus: float = 0.0):
        import ray
        import torch

        from ..devices import choose_device, move_model
        from ..generation import Generator
        from ..models import load_model

        torch.set_num_threads(max(1, threads))
        self.work = work_dir
        self.settings = settings
        self.mismatch = None
        try:
            self.device = choose_device(device, gpus_reserved=num_gpus, gpu_ids=ray.get_gpu_ids() if num_gpus else None,
                                        in_ray=True)
        except InputError as e:
            self.mismatch = str(e)  # reported with the first shard: a failing constructor would only be restarted
            return
        lm = move_model(factory() if factory is not None else load_model(model), self.device)
        self.gen = Generator(lm, system_prompt=system_prompt, max_new_tokens=max_new_tokens)
        mine = collection_settings(self.gen)
        if mine != settings:
            diff = sorted(k for k in set(mine) | set(settings) if mine.get(k) != settings.get(k))
            self.mismatch = (
                f"the actor on {socket.gethostname()} loaded {model!r} with other settings than the driver "
                f"({', '.join(diff)} differ); make the same model files visible on every node"
            )

    def __call__(self, batch: dict) -> dict:
        from .data import Example

        out: dict[str, list] = {"shard": [], "n_rows": [], "failed": [], "error": []}
        for name, payload in zip(batch["shard"], batch["examples"]):
            out["shard"].append(str(name))
            if self.mismatch:
                out["n_rows"].append(0)
                out["failed"].append("[]")
                out["error"].append(self.mismatch)
                continue
            examples = [Example.model_validate_json(x) for x in json.loads(payload)]
            rows, feats, failed = answer_batch(self.gen, examples)
            write_shard(self.work, str(name), self.settings, rows, feats, failed)
            out["n_rows"].append(len(rows))
            out["failed"].append(json.dumps(failed))
            out["error"].append("")
        return out


def collect_ray(
    generator,
    examples: Sequence,
    work_dir: str | os.PathLike,
    *,
    model: str = "default",
    batch_size: int = 16,
    options: RayOptions | None = None,
    progress: bool = True,
    lazy: bool = False,
) -> Collected:
    """:func:`hguard.calibrate.collect.collect` on a Ray cluster: same folder, same rows, same features.

    ``generator`` is the driver's :class:`hguard.generation.Generator`; it fixes the settings (model
    fingerprint, prompt mode) that every actor's model must reproduce. ``work_dir`` must be visible
    at the same path from every node (shared storage).
    """
    options = options or RayOptions()
    if options.actors < 1:
        raise InputError(f"--actors {options.actors}: pass at least 1")
    ids = check_ids(examples)
    from ..generation import refuse_model_decoding  # torch only where a model answers

    refuse_model_decoding(generator)
    warn_held_rows(generator, examples)
    store = ShardStore(work_dir, collection_settings(generator))
    plans = store.plan(examples, batch_size)
    todo = [e for p in plans for e in p.examples]
    refuse_unanswerable_rows(generator, todo, answered=len(examples) - len(todo), kept_in=store.work)  # as collect does
    if plans:
        ray = _import_ray()
        started = _connect(ray, options.address)
        try:
            _check_resources(ray, options)
        except InputError:
            if started:
                ray.shutdown()
            raise
        bar = Progress(len(examples), len(examples) - sum(len(p.examples) for p in plans), desc="collecting (ray)",
                       enabled=progress)
        if not progress:
            ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            items = [{"shard": p.name, "examples": json.dumps([e.model_dump_json() for e in p.examples])} for p in plans]
            ds = ray.data.from_items(items, override_num_blocks=len(items))
            with warnings.catch_warnings():
                # max_task_retries has no named parameter (Ray 2.5x deprecates the remote-args dict it travels
                # in; its default, -1, would retry a shard that kills its actor for ever)
                warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
                ds = ds.map_batches(
                    _Answerer,
                    fn_constructor_kwargs=dict(
                        model=model, factory=options.model_factory, system_prompt=generator.system_prompt,
                        max_new_tokens=generator.max_new_tokens, work_dir=str(os.path.abspath(store.work)),
                        settings=store.settings,
                        threads=env_threads() or max(1, int(options.num_cpus)),
                        device=options.device, num_gpus=float(options.num_gpus or 0.0),
                    ),
                    batch_size=1,
                    compute=ray.data.ActorPoolStrategy(size=options.actors),
                    num_cpus=options.num_cpus,
                    num_gpus=options.num_gpus or None,
                    # a dead actor is restarted and its shard tried once more; a second death stops the job
                    max_restarts=-1,
                    max_task_retries=1,
                )
            for out in ds.iter_rows():
                if out["error"]:
                    raise DataError(f"shard {out['shard']}: {out['error']}")
                bar.update(out["n_rows"] + len(json.loads(out["failed"])))
        except (DataError, InputError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - Ray's errors, reported with the rows they left unanswered
            done = store.finished()
            left = [i for i in ids if i not in done]
            raise DataError(
                f"the Ray job stopped ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                f"{len(left)} row(s) have no committed shard (first: {left[0] if left else None!r}), the rest are kept "
                f"in {store.work}: run again to answer only these rows{_token_hint(options.address)}"
            ) from exc
        finally:
            bar.close()
            store.write_manifest()
            if started:
                ray.shutdown()
    store.write_manifest()
    raise_failed(store, ids)
    return this_run(relabel(load_collected(work_dir, ids, lazy=lazy), examples), plans)


__all__ = ["RayOptions", "check_address", "collect_ray", "joined_address"]
