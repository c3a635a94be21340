"""Files the installed package ships and where hguard writes by default.

The default policy and the reference probes for the embedded default model are package data
(``hguard/_data``), so an installed wheel runs ``hguard demo`` and ``Guard.from_policy()`` without a
source checkout. Logs, queues and demo output go to a per-user state folder.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "_data"
DEFAULT_POLICY = DATA_DIR / "policy.toml"
REFERENCE_PROBES = DATA_DIR / "probes" / "smollm2-135m"
#: what a command's --policy takes for the packaged default policy (every command that takes --policy)
DEFAULT_POLICY_ARG = "default"


def policy_arg(value: str) -> str:
    """A command's ``--policy`` value: ``default`` is the packaged default policy (:data:`DEFAULT_POLICY`), so that
    ``ask``, ``demo``, ``review``, ``monitor`` and ``audit`` reach it the same way; any other value is a file's path."""
    return str(DEFAULT_POLICY) if value == DEFAULT_POLICY_ARG else value


def packaged_probes(name: str) -> Path:
    """The folder of the reference probes ``name`` shipped in the package (``package:NAME`` in a policy)."""
    from .errors import PolicyError

    folder = DATA_DIR / "probes" / name
    if not name or "/" in name or "\\" in name or name.startswith(".") or not folder.is_dir():
        known = sorted(p.name for p in (DATA_DIR / "probes").iterdir() if p.is_dir())
        raise PolicyError(f"probes = 'package:{name}' names no probes shipped with hguard (shipped: {', '.join(known)}); "
                          "use one of those or a folder path")
    return folder


PACKAGED_PREFIX = "package:"


@functools.cache
def source_digest() -> str:
    """A digest of the running hguard's code (every ``.py`` file of the package, by its path inside it and its
    bytes): two builds that say the same ``__version__`` but decide differently (a checkout between releases, a
    patched install) are told apart in the audit records (``hguard_source``) and ``hguard --version``."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        h.update(len(name).to_bytes(4, "big") + name + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:16]


def probe_folder(value: str | os.PathLike[str]) -> Path:
    """A probe folder from a path or ``package:NAME`` (the reference probes shipped in the package), as a
    policy's ``probes`` and ``hguard evaluate --probes`` take it."""
    text = os.fspath(value)
    if text.startswith(PACKAGED_PREFIX):
        return packaged_probes(text[len(PACKAGED_PREFIX):])
    return Path(text)


def refuse_own_file(out: str | os.PathLike[str], files: Mapping[str, Path | None], option: str, *,
                    replaces: Sequence[str] = (), example: str = "report.out") -> None:
    """InputError unless ``out`` (the output file of ``option``) is a file hguard may write: not a folder,
    in a folder that exists (a mistyped folder is an error, not a new tree), and none of ``files`` (e.g.
    :meth:`Policy.own_files`), since writing there would destroy the log, the queue or the state. With
    ``replaces`` (file name endings such as ``(".csv",)``), an existing file is replaced only when its name ends
    so (an earlier output): any other (an audit archive, another policy's log, a calibration file) is refused.
    ``example``: a file name of the kind written, suggested in the folder a folder was given for."""
    from .errors import InputError

    path = expand_home(out, option)
    if path.is_dir():
        raise InputError(f"{option} {out} is a folder; pass a file path in it, e.g. {Path(out) / example}")
    if not path.parent.is_dir():
        raise InputError(f"{option} {out}: the folder {path.parent} does not exist; create it first or fix the path")
    target = path.resolve()
    for what, f in files.items():
        if f is not None and (expand_home(f, what).resolve() == target or same_file(path, expand_home(f, what))):
            raise InputError(f"{option} {out} is the {what}; writing there would destroy it, pick another file")
    names = path.stat().st_nlink if path.exists() else 1
    if names > 1:  # a hard link: the file has another name, which writing would change
        raise InputError(f"{option} {out} is a hard link ({names} names for one file: a log, a queue, an "
                         "archive?); writing there would change the file under its other names too: pass a new file "
                         "name; nothing was written")
    if replaces and path.exists() and not all(n.lower().endswith(tuple(e.lower() for e in replaces))
                                              for n in (path.name, target.name)):  # a link's name, and its file's
        raise InputError(
            f"{option} {out} already exists and is not a {' or '.join(replaces)} file; writing there would replace it (an "
            f"audit archive, a review queue, a calibration file?): pass a new file name, e.g. {'report' + replaces[0]}; "
            "nothing was written"
        )


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` both exist and are one file (a hard link has another path: same device and inode)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet), or cannot be read
        return False


#: why a path with '~' or a default folder under the home folder cannot be used, as every refusal says it
NO_HOME = "this user has no home folder (HOME is not set and the user has no passwd entry: a container run with --user?)"


def home() -> Path | None:
    """The user's home folder; None where there is none (HOME unset and no passwd entry for the user: a container run
    with ``--user``), so that only what needs one (a path with ``~``, a default location under it) fails."""
    try:
        return Path.home()
    except RuntimeError:
        return None


def expand_home(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` with a leading ``~`` expanded to the home folder; InputError naming ``what``, the path and the fix
    where there is no home folder (any other path is returned as it is, whether there is one or not)."""
    from .errors import InputError

    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise InputError(
            f"{what} {str(path)!r} starts with '~', but {NO_HOME}; set HOME, or name the path without '~'") from None


def state_dir() -> Path:
    """Where hguard writes by default (demo runs, and the packaged default policy's log, queue and monitor state):
    ``$HGUARD_STATE_DIR`` or ``~/.local/state/hguard``."""
    from .errors import InputError

    env = os.environ.get("HGUARD_STATE_DIR")
    if env:
        return expand_home(env, "HGUARD_STATE_DIR")
    folder = home_state_dir()
    if folder is None:
        raise InputError(f"hguard's default state folder is ~/.local/state/hguard, but {NO_HOME}; set HGUARD_STATE_DIR "
                         "(or HOME) to a writable folder, or pass --out")
    return folder


def home_state_dir() -> Path | None:
    """hguard's state folder where ``$HGUARD_STATE_DIR`` is not set (``~/.local/state/hguard``); None without a home."""
    folder = home()
    return None if folder is None else folder / ".local" / "state" / "hguard"


_SAID_LEFT_BEHIND: set[tuple[str, str]] = set()


def left_behind(folder: Path, names: Sequence[str]) -> str | None:
    """Where ``$HGUARD_STATE_DIR`` moves hguard's state folder to ``folder`` (up to 0.3.x it moved the demo's files
    only): one line naming those of the packaged policy's files ``names`` that are absent from ``folder`` and lie in
    ``~/.local/state/hguard`` (where that policy kept them whatever the variable said), both folders, and the fix (the
    ``mv`` command, with the files beside them: archives, the queue's pending answers); None where none is."""
    import shlex

    old = home_state_dir()
    if old is None or not old.is_dir() or os.path.normpath(os.path.abspath(old)) == os.path.normpath(
            os.path.abspath(folder)):
        return None
    left = [n for n in names if (old / n).exists() and not (folder / n).exists()]
    if not left:
        return None
    stems = tuple(Path(n).stem for n in left)
    files = sorted(p for p in old.iterdir() if p.name.startswith(stems) and p.is_file())
    move = " ".join(shlex.quote(str(p)) for p in files)
    into = shlex.quote(str(folder))
    return (f"the default policy's {', '.join(left)} are in {old} but not in {folder}, where $HGUARD_STATE_DIR now "
            f"places them (up to 0.3.x it moved the demo's files only): the held answers, audit chain and monitor state "
            f"there are not read; move them (`mkdir -p {into} && mv -n {move} {shlex.quote(str(folder) + '/')}`) or "
            "unset HGUARD_STATE_DIR")


def warn_left_behind(folder: Path, names: Sequence[str]) -> None:
    """:func:`left_behind`'s line as a warning, once a process for each pair of folders."""
    from .errors import warn_aside

    note = left_behind(folder, names)
    said = (str(folder), str(home_state_dir()))
    if note is not None and said not in _SAID_LEFT_BEHIND:
        _SAID_LEFT_BEHIND.add(said)
        warn_aside(note, stacklevel=2)


#: a policy's own files (table, key, file name): the packaged policy names them relative, in :func:`state_dir`; a
#: :func:`policy_copy` names them beside the copy
STATE_FILES = (("audit", "path", "audit.jsonl"), ("review", "queue", "review.sqlite3"),
               ("monitor", "state", "monitor-state.json"))


def is_packaged_policy(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is the packaged default policy (:data:`DEFAULT_POLICY`; a link to it too)."""
    return Path(path).resolve() == DEFAULT_POLICY.resolve()


# the default policy's spot-check seed (public): a copy gets its own
EXAMPLE_SEED = "hguard-example-spot-checks"
# a policy's seed when its [monitor] table sets none: as public as the example's (it is in hguard's source)
DEFAULT_SEED = "hguard-spot-check"
PUBLIC_SEEDS = (EXAMPLE_SEED, DEFAULT_SEED)


def public_seed_warning(policy: Any) -> str | None:
    """What to say of a policy of one's own (not the bundled default), a file or one built in code, whose spot-check
    seed is public: the default policy's (a copy made by hand, not by :func:`policy_copy`) or hguard's own when
    ``[monitor] seed`` is unset; or None, also for a policy whose seed selects nothing: no domain with a
    ``spot_check_rate`` above 0 (the seed is read only by that selection; ``spot_check_min_per_day`` takes a day's
    first accepted answers, whatever the seed)."""
    seed = getattr(getattr(policy, "monitor", None), "seed", None)
    source = getattr(policy, "source", None)
    if seed not in PUBLIC_SEEDS or (source is not None and Path(source).resolve() == DEFAULT_POLICY.resolve()):
        return None
    if not any(getattr(dp, "spot_check_rate", 0) > 0 for dp in (getattr(policy, "domains", None) or {}).values()):
        return None  # nothing the seed could pick: knowing it tells nobody anything
    if source is None:  # built in code: as public a seed as a file's, set where its data is
        which, unset, where = "the policy built in code", "monitor.seed", '"monitor": {"seed": SECRET} in its data'
    else:
        which, unset, where = f"the policy {str(source)!r}", "[monitor] seed", "[monitor] seed"
    whose = "the default policy's" if seed == EXAMPLE_SEED else f"hguard's own, used when {unset} is unset,"
    return (f"{which} keeps {whose} public spot-check seed ({seed!r}): whoever "
            f"knows it knows which accepted answers will be spot-checked and which never will; set {where} to a "
            "secret of your own (python -c 'import secrets; print(secrets.token_hex(16))') and give it to your auditors")


def policy_copy(folder: str | os.PathLike[str], *, source: str | os.PathLike[str] = DEFAULT_POLICY,
                overwrite: bool = False) -> Path:
    """Copy ``source`` (the default policy; a TOML source keeps its comments and layout, a YAML one is written as
    TOML without its comments) to ``folder/policy.toml`` with its audit log,
    review queue and monitor state moved into ``folder`` and a random spot-check seed of its own (the example's is
    public, and a copy of one's own is another deployment: one seed for both let whoever holds either know which
    answers both would spot-check); returns the new file. A start for your own
    policy, and a way to try the default one, run tests and benchmarks without touching the default state folder. An
    existing ``policy.toml`` there is kept (InputError) unless ``overwrite``."""
    import secrets

    import tomlkit

    from .errors import InputError, PolicyError
    from .policy import load_policy

    folder = expand_home(folder, "the policy copy's folder").absolute()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file, not a folder; pass the folder the policy and its log, queue and monitor "
                         "state should go in (a new or existing folder)")
    out = folder / "policy.toml"
    if out.exists() and not overwrite:
        raise InputError(f"{out} already exists; pass overwrite=True or another folder")
    source = expand_home(source, "policy file")
    load_policy(source)  # a policy hguard reads (else its PolicyError, naming the file and the key)
    text = source.read_text(encoding="utf-8-sig")
    if source.suffix.lower() == ".toml":
        doc = tomlkit.parse(text)  # comments and layout kept
    else:  # a YAML policy: the same settings, written as TOML
        import yaml

        data = yaml.safe_load(text) or {}
        empty = _null_key(data)
        if empty:
            raise PolicyError(f"policy file {str(source)!r}: {empty} is null, which TOML cannot write; remove the key "
                              "(its default applies) or give it a value, then copy it")
        doc = tomlkit.document()
        doc.add(tomlkit.comment(f"copied from {source.name} by hguard.policy_copy"))
        doc.update(data)
    # relative to the policy file, as the policy reads them: a moved or copied folder keeps its own files
    for table, key, value in STATE_FILES:
        if table not in doc:
            doc.add(tomlkit.nl())
            doc.add(table, tomlkit.table())
        doc[table][key] = value
    if doc["audit"].get("anchor"):  # the source's anchor holds the source log's heads: the copy's log needs its own
        anchor = tomlkit.string("audit.anchor")
        anchor.comment("the copy's own (policy_copy); keep it where whoever can write the log cannot")
        doc["audit"]["anchor"] = anchor
    # what the policy reads (its probes, its key) stays where it was: a path relative to the source's folder would
    # name another file beside the copy
    base = source.absolute().parent
    if base != folder:
        probes = doc.get("probes")
        if isinstance(probes, str):
            doc["probes"] = _from(base, probes)
        elif isinstance(probes, list):
            doc["probes"] = [_from(base, p) for p in probes]
        key_file = doc.get("integrity", {}).get("key_file")
        if isinstance(key_file, str):
            doc["integrity"]["key_file"] = _from(base, key_file)
        model = doc.get("model")  # a model file or folder beside the source (not "default", nor a hub id)
        if isinstance(model, str) and (model.startswith((".", "~")) or model.endswith(".gguf") or (base / model).exists()):
            doc["model"] = _from(base, model)
    monitor = doc["monitor"]  # set above (its state)
    # the copy's own seed, whatever the source's: a public one (the example's, or hguard's own when none is set) is
    # known to anyone, and a private one shared with the source is known to whoever holds the source's
    seed = tomlkit.string(secrets.token_hex(16))
    seed.comment("drawn by policy_copy; give it to auditors")
    monitor["seed"] = seed
    folder.mkdir(parents=True, exist_ok=True)
    out.write_text(tomlkit.dumps(doc), encoding="utf-8")
    pol = load_policy(out)
    assert pol.audit.path == folder / "audit.jsonl" and pol.review.queue == folder / "review.sqlite3", out
    return out


def _from(base: Path, path: str) -> str:
    """``path`` as a policy in ``base`` names it, for a policy elsewhere: ``package:`` and absolute paths as they are."""
    if path.startswith(PACKAGED_PREFIX) or expand_home(path, "the path").is_absolute():
        return path
    return os.path.normpath(base / path)  # "/p/src/../my-probes" read as "/p/my-probes"


def _null_key(data: Any, where: str = "") -> str | None:
    """The first key of ``data`` (a policy read from YAML) whose value is null, as a dotted path; None when none."""
    if isinstance(data, dict):
        for k, v in data.items():
            found = f"{where}{k}" if v is None else _null_key(v, f"{where}{k}.")
            if found:
                return found
    return None


__all__ = ["DATA_DIR", "DEFAULT_POLICY", "REFERENCE_PROBES", "policy_copy", "state_dir"]
