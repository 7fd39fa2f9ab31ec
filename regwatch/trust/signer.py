"""Signing pushed tags into a Notary collection, as `docker trust` does (spec §6.7, Q14).

The collection is read and verified top down (root signed by its own keys, then timestamp,
snapshot, targets and delegations, each by the keys named above it and matching the hashes
named above it). A collection the server does not know yet is created: a new root key (held
in memory only, and forgotten), our repository key as the targets key, and the server's own
snapshot and timestamp keys. Each tag then becomes a target in each delegation that lists our
key and allows the tag, or else in `targets` when our key is the targets key, and the changed
roles are published; the server signs the new snapshot and timestamp.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from regwatch.errors import TrustError
from regwatch.trust import tuf
from regwatch.trust.client import NotaryClient
from regwatch.trust.keys import (
    PublicKey,
    SigningKey,
    certificate_names,
    new_root_key,
    public_key_from,
)
from regwatch.trust.tuf import Metadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collection:
    """A collection's verified top-level metadata."""

    root: Metadata
    snapshot: Metadata
    targets: Metadata


def sign(
    client: NotaryClient,
    key: SigningKey,
    tags: Sequence[str],
    digest: str,
    size: int,
    now: dt.datetime,
) -> None:
    """Make every tag in `tags` a target for the manifest `digest` of `size` bytes."""
    entry = tuf.target(digest, size)
    for tag in tags:
        log.info("signing image with tag: %s", tag)
    collection = fetch_collection(client, now)
    if collection is None:
        _initialise(client, key, tags, entry, now)
        return
    keys, delegations = tuf.delegations(collection.targets)
    targets_keys = tuf.top_role(collection.root, "targets").keyids
    roles = tuf.placement(tags, key.key_id, targets_keys, delegations, client.gun)
    by_name = {d.name: d for d in delegations}
    documents: dict[str, bytes] = {}
    for role, role_tags in roles.items():
        if role == "targets":
            current = collection.targets.signed
        else:
            current = _delegation_document(client, collection, keys, by_name[role], now)
        updated = tuf.with_targets(current, dict.fromkeys(role_tags, entry), now)
        documents[role] = tuf.signed_document(updated, [key])
    client.publish(documents)


def fetch_collection(client: NotaryClient, now: dt.datetime) -> Collection | None:
    """The verified collection; None when the server has none (no timestamp and no root)."""
    timestamp_raw = client.get("timestamp.json")
    root_raw = client.get("root.json")
    if timestamp_raw is None and root_raw is None:
        return None
    if timestamp_raw is None or root_raw is None:
        missing = "timestamp.json" if timestamp_raw is None else "root.json"
        raise TrustError(f"notary collection {client.gun} is incomplete: no {missing}")
    root, keys = tuf.verified_root(root_raw, now)
    _check_root_certificates(root, keys, client.gun)
    timestamp = tuf.verified("timestamp", timestamp_raw, keys, tuf.top_role(root, "timestamp"), now)
    snapshot = _named(client, "snapshot", timestamp, keys, tuf.top_role(root, "snapshot"), now)
    tuf.check_named("root", root.raw, snapshot)
    targets = _named(client, "targets", snapshot, keys, tuf.top_role(root, "targets"), now)
    return Collection(root, snapshot, targets)


def _named(
    client: NotaryClient,
    role: str,
    named_by: Metadata,
    keys: dict[str, PublicKey],
    allowed: tuf.RoleKeys,
    now: dt.datetime,
) -> Metadata:
    raw = client.get(f"{role}.json")
    if raw is None:
        raise TrustError(f"notary collection {client.gun} has no {role}.json")
    tuf.check_named(role, raw, named_by)
    return tuf.verified(role, raw, keys, allowed, now)


def _check_root_certificates(root: Metadata, keys: dict[str, PublicKey], gun: str) -> None:
    """Notary's rule: a root key is a certificate issued to the collection's name."""
    for keyid in tuf.top_role(root, "root").keyids:
        key = keys.get(keyid)
        if key is not None and key.keytype.endswith("-x509") and gun not in certificate_names(key):
            raise TrustError(f"root.json of {gun}: root certificate {keyid} is for another name")


def _delegation_document(
    client: NotaryClient,
    collection: Collection,
    keys: dict[str, PublicKey],
    delegation: tuf.Delegation,
    now: dt.datetime,
) -> dict[str, Any]:
    """The delegation's current document, verified; an empty one when never published."""
    meta = collection.snapshot.signed.get("meta")
    if not isinstance(meta, dict) or delegation.name not in meta:
        return tuf.empty_targets(now)
    metadata = _named(client, delegation.name, collection.snapshot, keys, delegation.keys, now)
    return metadata.signed


def _initialise(
    client: NotaryClient,
    key: SigningKey,
    tags: Sequence[str],
    entry: dict[str, Any],
    now: dt.datetime,
) -> None:
    server_keys = {role: _server_key(client, role) for role in ("snapshot", "timestamp")}
    root_key = new_root_key(client.gun, now)
    root = tuf.new_root(root_key, key.public, server_keys, now)
    targets = tuf.with_targets(tuf.empty_targets(now), dict.fromkeys(tags, entry), now)
    log.info("initialising the trust collection %s", client.gun)
    client.publish(
        {
            "root": tuf.signed_document(root, [root_key]),
            "targets": tuf.signed_document(targets, [key]),
        }
    )


def _server_key(client: NotaryClient, role: str) -> PublicKey:
    raw = client.get(f"{role}.key")
    if raw is None:
        raise TrustError(f"notary server has no {role} key for {client.gun}")
    try:
        return public_key_from(json.loads(raw))
    except (ValueError, RecursionError):
        raise TrustError(f"notary server's {role} key for {client.gun} is not JSON") from None
