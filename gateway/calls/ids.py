"""Call ids derived from the PBX's Linkedid, so every instance names a call the same."""

from __future__ import annotations

import hashlib


def call_id_for(linkedid: str) -> str:
    """`call_` + 24 hex digits of SHA-256(linkedid): stable across instances and rebuilds."""
    return "call_" + hashlib.sha256(linkedid.encode()).hexdigest()[:24]
