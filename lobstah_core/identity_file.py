"""Reading and writing ``identity.json`` (mode 0600, never overwritten silently)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from .errors import IdentityError
from .protocol.identity import Identity
from .protocol.nostr import new_nostr_secret

__all__ = ["load_identity", "save_identity", "load_or_create_identity", "load_or_create_nostr_secret"]


def load_identity(path: Path) -> Identity:
    """Load the identity at ``path``, tightening its mode to 0600 if it was readable by others.

    Raises:
        IdentityError: missing (with how to create one), unreadable or corrupt.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IdentityError(f"no identity at {path}; create one with `lobstah-core keygen`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityError(f"cannot read identity {path}: {exc}") from None
    try:
        identity = Identity.from_json(text)
    except IdentityError as exc:
        raise IdentityError(f"corrupt identity {path}: {exc.message}; it was left untouched") from None
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
    return identity


def save_identity(
    identity: Identity, path: Path, *, overwrite: bool = False, keep_backup: bool = True
) -> Path | None:
    """Write ``identity`` to ``path`` with mode 0600, atomically.

    Args:
        overwrite: replace an existing file; the old one is kept beside it as a backup
            (unless ``keep_backup`` is false: a rewrite that adds a field loses nothing).

    Returns:
        The backup's path when an existing file was replaced, else ``None``.

    Raises:
        IdentityError: the file exists and ``overwrite`` is false, or it cannot be written.
    """
    backup = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists():
            if not overwrite:
                raise IdentityError(f"an identity already exists at {path} (use --force to replace it)")
            if keep_backup:
                backup = path.with_name(f"{path.name}.{int(time.time())}.bak")
                os.link(path, backup)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(identity.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise IdentityError(f"cannot write identity {path}: {exc}") from None
    return backup


def load_or_create_identity(path: Path) -> Identity:
    """The identity at ``path``, creating one if there is no file (a corrupt one still raises)."""
    if not path.exists():
        identity = Identity.generate()
        try:
            save_identity(identity, path)
        except IdentityError:
            if not path.exists():
                raise  # it could not be written (a read-only home): say so, not "no identity"
            # Another process created it between our check and our write: use theirs.
            return load_identity(path)
        return identity
    return load_identity(path)


def load_or_create_nostr_secret(path: Path) -> bytes:
    """The node's secp256k1 Nostr key, kept in identity.json as ``nostrSecretKey`` ([ext]);
    created and saved (mode 0600, other fields kept) on first need.

    Raises:
        IdentityError: no identity, or an unreadable one.
    """
    identity = load_identity(path)
    stored = identity.extra.get("nostrSecretKey")
    if isinstance(stored, str) and len(stored) == 64:
        try:
            return bytes.fromhex(stored)
        except ValueError:
            pass
    secret = new_nostr_secret()
    updated = Identity(identity.seed, {**identity.extra, "nostrSecretKey": secret.hex()})
    save_identity(updated, path, overwrite=True, keep_backup=False)
    return secret
