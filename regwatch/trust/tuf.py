"""TUF metadata as Notary v1 keeps it: signed envelopes, their checks, and the roles we write.

Everything here is pure: documents in, documents or a `TrustError` out. A fetched document is
accepted only when enough of the keys its role names signed it (the threshold), it has not
expired, its version is a positive number, and its bytes match the hashes and length the
document above it names (timestamp → snapshot → root, targets and delegations).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from regwatch.errors import TrustError
from regwatch.trust.canonical import canonical
from regwatch.trust.keys import PublicKey, SigningKey, public_key_from, verify

ROOT_LIFETIME: Final = dt.timedelta(days=3650)
TARGETS_LIFETIME: Final = dt.timedelta(days=3 * 365)
"""notary's defaults for the roles a client signs."""

TOP_ROLES: Final = ("root", "targets", "snapshot", "timestamp")
_TYPES: Final = {
    "root": "Root",
    "targets": "Targets",
    "snapshot": "Snapshot",
    "timestamp": "Timestamp",
}
_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})")


@dataclass(frozen=True)
class RoleKeys:
    """Which keys may sign a role, and how many of them must."""

    keyids: tuple[str, ...]
    threshold: int


@dataclass(frozen=True)
class Metadata:
    """One fetched role document: its raw bytes (what hashes cover) and its `signed` part."""

    role: str
    raw: bytes
    signed: dict[str, Any]

    @property
    def version(self) -> int:
        version = self.signed.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise TrustError(f"{self.role}.json: version is not a positive number")
        return version


def _parse(role: str, raw: bytes) -> tuple[Metadata, list[dict[str, Any]]]:
    """The document and its signatures; a document of another type is refused."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise TrustError(f"{role}.json: not JSON") from None
    signed = document.get("signed") if isinstance(document, dict) else None
    signatures = document.get("signatures") if isinstance(document, dict) else None
    if not isinstance(signed, dict) or not isinstance(signatures, list):
        raise TrustError(f"{role}.json: not a signed TUF document")
    wanted = _TYPES.get(role, "Targets")
    if signed.get("_type") != wanted:
        raise TrustError(f"{role}.json: its type is {signed.get('_type')!r}, not {wanted!r}")
    return Metadata(role, raw, signed), [s for s in signatures if isinstance(s, dict)]


def verified(
    role: str,
    raw: bytes,
    keys: Mapping[str, PublicKey],
    allowed: RoleKeys,
    now: dt.datetime,
) -> Metadata:
    """`raw` as a role document signed by at least `allowed.threshold` of `allowed`'s keys."""
    metadata, signatures = _parse(role, raw)
    _accept(metadata, signatures, keys, allowed, now)
    return metadata


def verified_root(raw: bytes, now: dt.datetime) -> tuple[Metadata, dict[str, PublicKey]]:
    """root.json signed by the root keys it lists itself, and every key it lists by ID."""
    root, signatures = _parse("root", raw)
    keys = root_keys(root)
    _accept(root, signatures, keys, top_role(root, "root"), now)
    return root, keys


def _accept(
    metadata: Metadata,
    signatures: Sequence[Mapping[str, Any]],
    keys: Mapping[str, PublicKey],
    allowed: RoleKeys,
    now: dt.datetime,
) -> None:
    """The threshold of good signatures, then expiry and version; else a `TrustError`."""
    message = canonical(metadata.signed)
    good: set[str] = set()
    for signature in signatures:
        keyid, method, sig = signature.get("keyid"), signature.get("method"), signature.get("sig")
        if not isinstance(keyid, str) or not isinstance(method, str) or not isinstance(sig, str):
            continue
        if keyid in good or keyid not in allowed.keyids or keyid not in keys:
            continue
        try:
            decoded = base64.b64decode(sig, validate=True)
        except ValueError:
            continue
        if verify(keys[keyid], method, decoded, message):
            good.add(keyid)
    if allowed.threshold < 1 or len(good) < allowed.threshold:
        raise TrustError(
            f"{metadata.role}.json: {len(good)} valid signature(s), "
            f"{max(allowed.threshold, 1)} needed"
        )
    _check_expiry(metadata, now)
    metadata.version  # noqa: B018 - checks it


def _check_expiry(metadata: Metadata, now: dt.datetime) -> None:
    expires = metadata.signed.get("expires")
    when = parse_time(expires) if isinstance(expires, str) else None
    if when is None:
        raise TrustError(f"{metadata.role}.json: no valid expiry")
    if when <= now:
        raise TrustError(f"{metadata.role}.json: expired at {expires}")


def parse_time(text: str) -> dt.datetime | None:
    """An RFC 3339 time as Go writes it (nanoseconds allowed); None when it is not one."""
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    base, fraction, zone = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    try:
        return dt.datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None


def format_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_named(role: str, raw: bytes, named_by: Metadata) -> None:
    """`raw`, the bytes of `role`, have the length and every hash `named_by`'s `meta` gives for
    them."""
    meta = named_by.signed.get("meta")
    entry = meta.get(role) if isinstance(meta, dict) else None
    if not isinstance(entry, dict):
        raise TrustError(f"{named_by.role}.json does not name {role}.json")
    if entry.get("length") != len(raw):
        raise TrustError(f"{role}.json: length differs from what {named_by.role}.json names")
    hashes = entry.get("hashes")
    checked = 0
    for name, expected in hashes.items() if isinstance(hashes, dict) else ():
        if name not in ("sha256", "sha512"):
            continue
        actual = base64.b64encode(hashlib.new(name, raw).digest()).decode("ascii")
        if actual != expected:
            raise TrustError(f"{role}.json: {name} differs from what {named_by.role}.json names")
        checked += 1
    if not checked:
        raise TrustError(f"{named_by.role}.json names no sha256 for {role}.json")


def root_keys(root: Metadata) -> dict[str, PublicKey]:
    """The keys root lists, each under the ID it must have (an entry under another is dropped)."""
    listed = root.signed.get("keys")
    if not isinstance(listed, dict):
        raise TrustError("root.json: no keys")
    return _keys_by_id(listed)


def _keys_by_id(listed: Mapping[str, Any]) -> dict[str, PublicKey]:
    keys = {}
    for keyid, document in listed.items():
        key = public_key_from(document)
        if key.key_id == keyid:
            keys[keyid] = key
    return keys


def role_keys(document: Mapping[str, Any], where: str) -> RoleKeys:
    keyids, threshold = document.get("keyids"), document.get("threshold")
    if (
        not isinstance(keyids, list)
        or not all(isinstance(k, str) for k in keyids)
        or not isinstance(threshold, int)
    ):
        raise TrustError(f"{where}: a role without key IDs or threshold")
    return RoleKeys(tuple(keyids), threshold)


def top_role(root: Metadata, role: str) -> RoleKeys:
    roles = root.signed.get("roles")
    entry = roles.get(role) if isinstance(roles, dict) else None
    if not isinstance(entry, dict):
        raise TrustError(f"root.json: no {role} role")
    return role_keys(entry, "root.json")


@dataclass(frozen=True)
class Delegation:
    """A role `targets` delegates to: its keys, and which target names it may sign."""

    name: str
    keys: RoleKeys
    paths: tuple[str, ...]

    def allows(self, tag: str) -> bool:
        """Notary's rule: a path is a prefix of the names the role may sign (`""` is all)."""
        return any(tag.startswith(path) for path in self.paths)


def delegations(targets: Metadata) -> tuple[dict[str, PublicKey], list[Delegation]]:
    """The keys and roles `targets` delegates to directly (`targets/<name>`)."""
    section = targets.signed.get("delegations")
    if section is None:
        return {}, []
    if not isinstance(section, dict):
        raise TrustError(f"{targets.role}.json: delegations is not an object")
    listed, roles = section.get("keys") or {}, section.get("roles") or []
    if not isinstance(listed, dict) or not isinstance(roles, list):
        raise TrustError(f"{targets.role}.json: malformed delegations")
    found = []
    for entry in roles:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise TrustError(f"{targets.role}.json: a delegation without a name")
        name: str = entry["name"]
        paths = entry.get("paths") or []
        if name.count("/") != 1 or not name.startswith("targets/"):
            continue
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise TrustError(f"{targets.role}.json: delegation {name} has malformed paths")
        found.append(Delegation(name, role_keys(entry, f"{targets.role}.json"), tuple(paths)))
    return _keys_by_id(listed), found


def placement(
    tags: Sequence[str],
    key_id: str,
    targets_keys: Sequence[str],
    delegations: Sequence[Delegation],
    gun: str,
) -> dict[str, list[str]]:
    """Which roles each tag is signed into, as {role: tags}: every delegation that lists our
    key and allows the tag, else `targets` when ours is the targets key; else a `TrustError`."""
    roles: dict[str, list[str]] = {}
    for tag in tags:
        allowing = [d.name for d in delegations if key_id in d.keys.keyids and d.allows(tag)]
        if not allowing and key_id in targets_keys:
            allowing = ["targets"]
        if not allowing:
            raise TrustError(
                f"repository key {key_id} may not sign tag {tag} in {gun}: "
                "it is neither the targets key nor in a delegation whose paths allow the tag"
            )
        for role in allowing:
            roles.setdefault(role, []).append(tag)
    return roles


def target(digest: str, length: int) -> dict[str, Any]:
    """A target entry for a manifest: its sha256 (`sha256:<hex>`) in base64, and its size."""
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256":
        raise TrustError(f"cannot sign {digest}: notary targets need a sha256 digest")
    raw = bytes.fromhex(hexdigest)
    return {"hashes": {"sha256": base64.b64encode(raw).decode("ascii")}, "length": length}


def with_targets(
    signed: Mapping[str, Any], entries: Mapping[str, Mapping[str, Any]], now: dt.datetime
) -> dict[str, Any]:
    """A targets (or delegation) document holding `entries` besides what it held, one version
    on, expiring `TARGETS_LIFETIME` from `now`."""
    updated = dict(signed)
    held = updated.get("targets")
    updated["targets"] = {**(held if isinstance(held, dict) else {}), **entries}
    updated["version"] = int(updated.get("version") or 0) + 1
    updated["expires"] = format_time(now + TARGETS_LIFETIME)
    return updated


def empty_targets(now: dt.datetime) -> dict[str, Any]:
    """A targets document at version 0, before its first signing (`with_targets` makes it 1)."""
    return {
        "_type": "Targets",
        "delegations": {"keys": {}, "roles": []},
        "expires": format_time(now + TARGETS_LIFETIME),
        "targets": {},
        "version": 0,
    }


def new_root(
    root_key: SigningKey,
    targets_key: PublicKey,
    server_keys: Mapping[str, PublicKey],
    now: dt.datetime,
) -> dict[str, Any]:
    """Version 1 of a collection's root: our root and targets keys, the server's snapshot and
    timestamp keys (`server_keys` by role)."""
    by_role = {"root": root_key.public, "targets": targets_key, **server_keys}
    return {
        "_type": "Root",
        "consistent_snapshot": False,
        "expires": format_time(now + ROOT_LIFETIME),
        "keys": {key.key_id: key.document() for key in by_role.values()},
        "roles": {role: {"keyids": [by_role[role].key_id], "threshold": 1} for role in TOP_ROLES},
        "version": 1,
    }


def signed_document(signed: Mapping[str, Any], keys: Sequence[SigningKey]) -> bytes:
    """The envelope notary stores: `signed` and one signature by each key over its canonical
    form."""
    message = canonical(signed)
    signatures = [
        {
            "keyid": key.key_id,
            "method": "ecdsa",
            "sig": base64.b64encode(key.sign(message)).decode("ascii"),
        }
        for key in keys
    ]
    # notary's server hashes the envelope as Go marshals it, `signed` first, when it names
    # the document in its snapshot: the bytes we send must be those bytes.
    return b'{"signed":' + message + b',"signatures":' + canonical(signatures) + b"}"
