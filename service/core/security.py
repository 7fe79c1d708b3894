"""API keys: `sawt_<prefix>_<secret>`, stored as a peppered SHA-256 of the whole key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "sawt"


@dataclass(frozen=True)
class NewKey:
    plaintext: str
    prefix: str
    key_hash: str


def hash_key(plaintext: str, pepper: str) -> str:
    """Keys carry 256 random bits, so one HMAC round is enough (no slow KDF needed)."""
    return hmac.new(pepper.encode(), plaintext.encode(), hashlib.sha256).hexdigest()


def generate_key(pepper: str) -> NewKey:
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(plaintext=plaintext, prefix=prefix, key_hash=hash_key(plaintext, pepper))


def split_prefix(plaintext: str) -> str | None:
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1]:
        return None
    return parts[1]


def verify_key(plaintext: str, key_hash: str, pepper: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext, pepper), key_hash)
