"""Keyed integrity: one secret key, HMAC-SHA256 over probe files and audit records.

Without a key, probe files carry a content hash and audit records a hash chain. Both catch accidents and
careless edits, but anyone who can write the files can recompute the hashes after changing them. With a key
(which the writer of the files does not have to share with the reader of this code, only with the guard):

* probe files are signed when calibration writes them, and a probe whose signature fails is refused;
* every audit record carries ``mac`` = HMAC-SHA256(key, record without ``hash`` and ``mac``), so an edited,
  re-chained or forged record fails ``hguard audit verify`` run with the key.

A MAC cannot show that records were cut off the end of a log; keep the last receipt's hash elsewhere
(``hguard audit verify --expect-head``) or let the guard append heads to an anchor file (``[audit] anchor``).

The key comes from, in this order: an explicit key file (the policy's ``[integrity] key_file``), the file
named by ``HGUARD_KEY_FILE``, or the value of ``HGUARD_KEY``. It must hold at least :data:`MIN_KEY_BYTES`
bytes (e.g. ``python -c "import secrets; print(secrets.token_hex(32))" > hguard.key; chmod 600 hguard.key``).

Imports only the standard library, so an auditor's machine needs nothing else to check a log.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from typing import Any, Mapping

from .errors import InputError

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "MIN_KEY_BYTES",
    "SIGNATURE_ALG",
    "key_id",
    "load_key",
    "load_key_file",
    "mac_hex",
    "mac_matches",
    "probe_load_options",
]

KEY_ENV = "HGUARD_KEY"
KEY_FILE_ENV = "HGUARD_KEY_FILE"
MIN_KEY_BYTES = 32
SIGNATURE_ALG = "hmac-sha256"
_HOW = 'make one with: python -c "import secrets; print(secrets.token_hex(32))" > hguard.key; chmod 600 hguard.key'


def _checked(key: bytes, where: str) -> bytes:
    key = key.strip()
    if not key:
        raise InputError(f"the integrity key in {where} is empty; {_HOW}")
    if len(key) < MIN_KEY_BYTES:
        raise InputError(
            f"the integrity key in {where} has {len(key)} bytes, fewer than the {MIN_KEY_BYTES} required; {_HOW}"
        )
    return key


def load_key_file(path: str | os.PathLike[str]) -> bytes:
    """The key held in ``path`` (surrounding whitespace removed); InputError when unusable."""
    from ._resources import expand_home

    p = expand_home(path, "integrity key file")
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"integrity key file {str(p)!r} is not a regular file; point to the key file itself")
        if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
            can = " or ".join(w for w, bit in (("read", stat.S_IROTH), ("written", stat.S_IWOTH)) if st.st_mode & bit)
            raise InputError(
                f"integrity key file {str(p)!r} can be {can} by every user (mode "
                f"{stat.S_IMODE(st.st_mode):o}); run `chmod 600 {p}`"
            )
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"integrity key file {str(p)!r} does not exist; check the path (restore the key from its "
                         "backup: a new key cannot write a log or load probes made with a lost one; a new key starts a "
                         f"new audit log and needs the probes signed again), or for a new deployment {_HOW}") from None
    except OSError as e:
        raise InputError(f"cannot read integrity key file {str(p)!r} ({e.strerror}); check its permissions") from None
    return _checked(data, f"file {str(p)!r}")


def load_key(key_file: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The configured key, or None when none is configured.

    ``key_file`` (from a policy) wins; otherwise ``HGUARD_KEY_FILE``; otherwise ``HGUARD_KEY``. Setting both
    variables is an error, since it is unclear which one was meant.
    """
    if key_file is not None:
        return load_key_file(key_file)
    env = os.environ if environ is None else environ
    from_file, literal = env.get(KEY_FILE_ENV), env.get(KEY_ENV)
    if from_file is not None and literal is not None:
        raise InputError(f"both {KEY_FILE_ENV} and {KEY_ENV} are set; unset one of them")
    if from_file is not None:
        if not from_file.strip():
            raise InputError(f"{KEY_FILE_ENV} is set but empty; set it to the key file's path or unset it")
        return load_key_file(from_file)
    if literal is not None:
        return _checked(literal.encode("utf-8"), f"${KEY_ENV}")
    return None


def key_id(key: bytes) -> str:
    """A short public name of the key (it reveals nothing usable about it), to tell keys apart in messages."""
    return hmac.new(key, b"hguard key id", hashlib.sha256).hexdigest()[:16]


def mac_hex(key: bytes, data: bytes) -> str:
    """HMAC-SHA256 of data under key, as hex."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def mac_matches(key: bytes, data: bytes, mac: Any) -> bool:
    """Whether ``mac`` is the HMAC-SHA256 of data under key (compared in constant time)."""
    return isinstance(mac, str) and hmac.compare_digest(mac_hex(key, data), mac)


def probe_load_options(integrity_config: Any) -> dict[str, Any]:
    """``key`` and ``require_signature`` for :meth:`HNeuronProbe.load` under a policy's ``[integrity]`` table.

    Unless the policy says otherwise, signatures are required exactly when a key is configured: with a key,
    an unsigned probe is no better than one whose signature was stripped.
    """
    key = load_key(getattr(integrity_config, "key_file", None))
    required = getattr(integrity_config, "require_signed_probes", None)
    return {"key": key, "require_signature": key is not None if required is None else bool(required)}
