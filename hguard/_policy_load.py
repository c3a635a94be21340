"""Reading a policy file: TOML or YAML (duplicate keys refused), validated against the schema in
:mod:`hguard.policy`, every mistake reported on one line with its key path and the file."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from hguard.errors import PolicyError
from hguard.errors import shown as _short

if TYPE_CHECKING:
    from hguard.policy import Policy  # imported at run time inside the functions: hguard.policy imports this module


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys, which YAML would silently merge."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _loc_text(loc: Sequence[Any]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part == "[key]":
            continue
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def _model_in(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('model', M) for M or Optional[M], ('dict', M) for dict[str, M], else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    origin = get_origin(annotation)
    if origin is dict:
        inner = _model_in(get_args(annotation)[1])
        return ("dict", inner[1]) if inner else None
    if origin is Union or origin is types.UnionType:
        for arg in get_args(annotation):
            inner = _model_in(arg)
            if inner:
                return inner
    return None


def _model_at(loc: Sequence[Any]) -> tuple[type[BaseModel], str | None] | None:
    """The model holding the last element of ``loc`` and that element's field name."""
    from hguard.policy import Policy  # the schema module imports this one

    model: type[BaseModel] = Policy
    i = 0
    while i < len(loc) - 1:
        field = model.model_fields.get(str(loc[i]))
        if field is None:
            return None
        inner = _model_in(field.annotation)
        if inner is None:
            return None
        kind, sub = inner
        i += 2 if kind == "dict" else 1
        model = sub
    if i == len(loc) - 1:
        return model, str(loc[-1])
    return model, None


def _tables_of(key: str) -> list[tuple[tuple[str, ...], bool]]:
    """Where a policy holds ``key``, read from the schema's own fields: each table's key path (``()`` the top level,
    ``("domains", "NAME")`` a domain's table), and whether ``key`` there is a table itself (``generation``), for a key
    written in the wrong table."""
    from hguard.policy import Policy  # the schema module imports this one

    out: list[tuple[tuple[str, ...], bool]] = []

    def walk(model: type[BaseModel], path: tuple[str, ...]) -> None:
        for name, field in model.model_fields.items():
            inner = _model_in(field.annotation)
            if name == key and name != "name":  # a domain's name is its table's: never a key to move
                out.append((path, inner is not None))
            if inner is not None:
                walk(inner[1], (*path, name, "NAME") if inner[0] == "dict" else (*path, name))

    walk(Policy, ())
    return out


#: how a policy was written, for where a key belongs: a TOML file, a YAML file, or a mapping given in code
TOML, YAML, MAPPING = "toml", "yaml", "mapping"


def _keys(path: Sequence[str]) -> str:
    """A mapping's key path as written in code: 'domains' -> 'geo'."""
    return " -> ".join(repr(k) for k in path)


def _home_text(home: tuple[str, ...], key: str, table: bool, syntax: str) -> str:
    """Where ``key`` goes, ``home`` its table's key path (a domain's name in place of NAME, or NAME when unknown), in
    the words of the policy's ``syntax`` (TOML tables, YAML indentation, a mapping's keys)."""
    full = (*home, key)
    for_domain = " (the one of the domain it is for)" if "NAME" in full else ""
    if table:  # the key is a table itself: its header (TOML) or its place (YAML, a mapping)
        top = "a top-level table" if not home else f"a table inside [{'.'.join(home)}]"
        if syntax == TOML:
            return f"[{'.'.join(full)}] is {top}: write its header as [{'.'.join(full)}]{for_domain}"
        if syntax == YAML:
            return (f"{key}: is {'a top-level key, unindented' if not home else 'nested as ' + ': '.join(full) + ':'}"
                    f"{for_domain}, its keys indented under it")
        return (f"{key!r} is a key of {'the top level of the mapping' if not home else 'the mapping under ' + _keys(home)}"
                f"{for_domain}, holding a mapping of its keys")
    if not home:
        return {TOML: "at the top level: in TOML, above the first [table] line (a key below a [table] line belongs to "
                      "that table)",
                YAML: "at the top level: in YAML, unindented (a key indented under another belongs to it)"}.get(
                    syntax, "at the top level of the mapping")
    if syntax == TOML:
        return f"in {'a' if for_domain else 'the'} [{'.'.join(home)}] table{for_domain}"
    if syntax == YAML:
        return f"nested under {': '.join(home)}: (indented below it){for_domain}"
    return f"in the mapping under {_keys(home)}{for_domain}"


def _belongs(key: str, loc: Sequence[Any], syntax: str = MAPPING) -> str:
    """Where ``key``, unknown in the table at ``loc`` (its key path), belongs when another table of the policy holds
    it (a key, or a table such as ``generation``); a domain's own tables are named by its name."""
    here = tuple("NAME" if i and loc[i - 1] == "domains" else str(p) for i, p in enumerate(loc))
    domain = str(loc[1]) if len(loc) > 1 and loc[0] == "domains" else None
    homes = [(tuple(domain if p == "NAME" and domain is not None else p for p in home), table)
             for home, table in _tables_of(key) if home != here]
    said = [_home_text(home, key, table, syntax) for home, table in homes]
    if not said:
        return ""
    return "; " + "; or ".join(said) if any(table for _, table in homes) else f"; {key} belongs " + ", or ".join(said)


def _explain(error: Mapping[str, Any], syntax: str = MAPPING) -> str:
    loc = tuple(error.get("loc", ()))
    where = _loc_text(loc)
    kind = error.get("type", "")
    msg = str(error.get("msg", ""))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "extra_forbidden":
        found = _model_at(loc)
        allowed = sorted(k for k in found[0].model_fields if k != "name") if found else []
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        belongs = _belongs(str(loc[-1]), loc[:-1], syntax) if loc else ""  # a key of another table: where it goes, not a guess
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if loc and allowed and not belongs else []
        guess = f"; did you mean {near[0]!r}?" if near else ""
        return f"{where}: unknown key (value {_short(error.get('input'))}){belongs}{guess}{hint}"
    if kind == "missing":
        found = _model_at(loc)
        desc = found[0].model_fields[found[1]].description if found and found[1] in found[0].model_fields else None
        return f"{where}: required key is missing" + (f"; expected {desc}" if desc else "")
    if loc and loc[-1] == "[key]":
        return (
            f"{where}: name {_short(error.get('input'))} is not allowed; "
            "domain names use letters, digits, '_' and '-' (at most 64, not starting with '_' or '-')"
        )
    if kind == "value_error":
        # Our own checks already echo the values and say what to do.
        return f"{where}: {msg}"
    text = f"{where}: {msg} (got {_short(error.get('input'))})"
    got = error.get("input")
    if isinstance(got, str) and re.fullmatch(r"\s*[-+]?\d+(?:\.\d*)?[eE][-+]?\d+\s*", got):
        text += ("; YAML 1.1 reads a number such as 1e-1 (no point before the e) as text: write 0.1 or 1.0e-1, "
                 "without quotes")
    found = _model_at(loc)
    if found and found[1] in found[0].model_fields:
        desc = found[0].model_fields[found[1]].description
        if desc:
            text += f"; expected {desc}"
    return text


def _policy_error(error: ValidationError, source: str, syntax: str = MAPPING) -> PolicyError:
    # each item ends in its own separator: the CLI keeps each on an indented line of its own (hguard.cli.error_line),
    # and a reader that joins the lines still reads one item apart from the next and the last from "Fix these keys"
    lines = [_explain(e, syntax).rstrip().rstrip(".;") for e in error.errors(include_url=False)]
    return PolicyError(
        f"invalid policy {source}:\n  - "
        + ";\n  - ".join(lines)
        + ".\nFix these keys and load the policy again."
    )


def _validate(data: Any, *, source: str, base_dir: Path | None, syntax: str = MAPPING) -> Policy:
    if not isinstance(data, Mapping):
        raise PolicyError(
            f"invalid policy {source}: the top level must be a table of keys (version, domains, ...), "
            f"got {type(data).__name__} {_short(data)}; start the file with `version = 1`"
        )
    from hguard.policy import Policy  # the schema module imports this one

    try:
        return Policy.model_validate(dict(data), context={"base_dir": base_dir} if base_dir else None)
    except ValidationError as exc:
        raise _policy_error(exc, source, syntax) from None


def checked_policy(policy: Any) -> Policy:
    """``policy`` checked as a file is, for a guard: a Policy changed after loading with ``model_copy(update=...)``
    (which pydantic does not validate) may hold a NaN floor, a quoted threshold or a plain dict of domains, which
    routing would misread (a NaN ``min_grounding`` compares false: no floor). Returns the validated policy (the
    same values, its file and the file's own values kept); anything else, or a value the schema refuses, raises
    :class:`PolicyError` naming it and the fix."""
    import os

    from hguard.policy import Policy

    if not isinstance(policy, Policy):
        how = ("build one from it with hguard.Policy.from_mapping(...)" if isinstance(policy, Mapping) else
               "pass the file's path to Guard.from_policy, or load it with hguard.load_policy(path)"
               if isinstance(policy, (str, os.PathLike)) else "load one with hguard.load_policy(path)")
        raise PolicyError(f"policy must be a hguard Policy, got {type(policy).__name__} {_short(policy)}; {how}")
    try:
        # every section again (revalidate_instances), its fields as set; a path set in code after loading is kept as
        # given (a relative one starts at the working folder, as any path in Python does: the demo's "runs/demo" was
        # moved beside the bundled policy file when it was resolved against the policy's folder)
        checked = Policy.model_validate(policy)
    except ValidationError as exc:
        raise _policy_error(exc, "given to the guard (a value set after loading, e.g. with model_copy(update=...), "
                                 "which does not validate; set it in the file or with Policy.model_validate)") from None
    checked.__pydantic_private__ = dict(policy.__pydantic_private__ or {})  # its file, and the file's values as written
    return checked


def _set_twice(message: str, text: str) -> str | None:
    """What TOML's "Cannot overwrite a value (at line N, ...)" means, naming the key and where it was set first
    ("max_new_tokens at line 64 is set twice in its table (first at line 40); keep one"); "Cannot declare ('x',)
    twice" as a table written twice. None for any other TOML error."""
    table = re.match(r"Cannot declare \((.*)\) twice \(at line (\d+)", message)
    if table is not None:
        name = ".".join(part.strip().strip("'\"") for part in table.group(1).split(",") if part.strip())
        return (f"the table [{name}] is written twice (again at line {table.group(2)}); keep one [{name}] and put "
                "its keys under it")
    value = re.match(r"Cannot overwrite a value \(at line (\d+)", message)
    lines = text.splitlines()
    if value is None or not 0 < int(value.group(1)) <= len(lines):
        return None
    n = int(value.group(1))
    key = lines[n - 1].split("=", 1)[0].strip()
    if not key or "=" not in lines[n - 1]:
        return None
    first = None
    for i in range(n - 2, -1, -1):  # back to the start of its table: where it was set first
        line = lines[i].strip()
        if line.startswith("["):
            break
        if "=" in line and line.split("=", 1)[0].strip() == key:
            first = i + 1
    return (f"the key {key} at line {n} is set twice in its table"
            + (f" (first at line {first})" if first is not None else "") + "; keep one of them")


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file (``.toml``, ``.yaml`` or ``.yml``).

    Relative paths inside the file resolve against the file's directory.
    Every problem raises :class:`PolicyError` naming the file and, for schema
    problems, each offending key path.
    """
    from hguard._resources import expand_home

    if not isinstance(path, (str, os.PathLike)):  # a dict or bytes failed in pathlib with a bare TypeError
        how = ("build a Policy from it with hguard.Policy.from_mapping(...)" if isinstance(path, Mapping) else
               "pass the path of a .toml or .yaml policy file as a str or pathlib.Path")
        raise PolicyError(f"load_policy takes a policy file's path, got {type(path).__name__} {_short(path)}; {how}")
    if isinstance(path, str) and not path.strip():  # an unset setting read as "": not the current folder
        raise PolicyError(f"policy file path is empty ({path!r}); pass the path of a .toml or .yaml policy file")
    path = expand_home(path, "policy file")
    suffix = path.suffix.lower()
    if path.is_dir():
        raise PolicyError(f"policy file {str(path)!r} is a folder; pass the policy file in it (e.g. "
                          f"{str(path / 'policy.toml')!r})")
    if suffix not in (".toml", ".yaml", ".yml"):
        raise PolicyError(
            f"policy file {str(path)!r} has suffix {suffix or '(none)'!r}; "
            "name it *.toml, *.yaml or *.yml so its format is known"
            + (" (for the packaged default policy pass `--policy default` to a command, or hguard.DEFAULT_POLICY in "
               "Python)" if not suffix else "")
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(
            f"policy file {str(path)!r} does not exist; pass the path of an existing .toml or .yaml policy file"
        ) from None
    except OSError as exc:
        raise PolicyError(f"policy file {str(path)!r} cannot be read ({exc}); check the path and its permissions") from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (Windows Notepad saves one) is not TOML
    except UnicodeDecodeError as exc:
        raise PolicyError(
            f"policy file {str(path)!r} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None

    source = f"file {str(path)!r}"
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # The message carries "(at line N, column M)".
            twice = _set_twice(str(exc), text)
            if twice is not None:
                raise PolicyError(f"policy file {str(path)!r} is not valid TOML: {twice}") from None
            raise PolicyError(f"policy file {str(path)!r} is not valid TOML: {exc}; fix the syntax there") from None
        except RecursionError:
            raise PolicyError(f"policy file {str(path)!r} nests its values more deeply than Python's TOML reader can "
                              "follow; a policy holds tables of plain values: fix the file") from None
    else:
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except RecursionError:
            raise PolicyError(f"policy file {str(path)!r} nests its values more deeply than Python's YAML reader can "
                              "follow; a policy holds mappings of plain values: fix the file") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise PolicyError(
                f"policy file {str(path)!r} is not valid YAML{where}: {problem}; fix the syntax there"
            ) from None
        if data is None:
            data = {}
    named, state = data, None
    from hguard._resources import is_packaged_policy

    if is_packaged_policy(path):  # its log, queue and monitor state in hguard's state folder, not in the package
        data, state = _in_state_dir(data, path)
    # absolute(), not resolve(): paths are relative to where the file was
    # referenced, even when that is a symlink into another directory.
    policy = _validate(data, source=source, base_dir=path.absolute().parent,
                       syntax=TOML if suffix == ".toml" else YAML)
    from hguard.policy import refuse_shared_files

    try:
        refuse_shared_files({"the policy file": path, **policy.files()})
    except ValueError as exc:
        raise PolicyError(f"invalid policy file {str(path)!r}: {exc}") from None
    policy._source = path.absolute()
    policy._named = named
    policy._state_dir = state
    return policy


def _in_state_dir(data: Any, path: Path) -> tuple[Any, Path | None]:
    """The packaged default policy's ``data`` with the relative paths of its own files (audit log, review queue,
    monitor state: ``STATE_FILES``) placed in hguard's state folder (:func:`~hguard._resources.state_dir`:
    ``$HGUARD_STATE_DIR`` or ``~/.local/state/hguard``), as the demo's are, not beside the file inside the installed
    package; and that folder (None when the file names none of them relative)."""
    from hguard._resources import STATE_FILES, state_dir, warn_left_behind
    from hguard.errors import InputError

    if not isinstance(data, dict):
        return data, None
    data, folder = dict(data), None
    named: list[str] = []
    for table, key, _ in STATE_FILES:
        section = data.get(table)
        value = section.get(key) if isinstance(section, dict) else None
        if not isinstance(value, str) or not value.strip() or value.startswith("~") or os.path.isabs(value):
            continue  # absolute, from '~', or not a path at all: validated (and refused) as any policy's
        if folder is None:
            try:
                folder = state_dir()
            except InputError as exc:
                raise PolicyError(f"policy file {str(path)!r} (the packaged default policy) keeps its audit log, review "
                                  f"queue and monitor state in hguard's state folder: {exc}") from None
        data[table] = {**section, key: str(folder / value)}
        named.append(value)
    if folder is not None:  # files an earlier hguard kept in ~/.local/state/hguard, whatever $HGUARD_STATE_DIR said
        warn_left_behind(folder, named)
    return data, folder
