"""Reading a collection top down: what a notary server hands back is believed only when every
document verifies against the one above it (root → timestamp → snapshot → targets)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from regwatch.errors import TrustError
from regwatch.trust import tuf
from regwatch.trust.client import NotaryClient
from regwatch.trust.keys import SigningKey, ecdsa_public, new_root_key
from regwatch.trust.signer import fetch_collection

GUN = "registry.example/team/app"
NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


class Served(NotaryClient):
    """A notary server's answers, from a dict: None stands for 404."""

    def __init__(self, documents: Mapping[str, bytes]) -> None:
        self.gun = GUN
        self.documents = dict(documents)

    def get(self, name: str) -> bytes | None:
        return self.documents.get(name)


def key() -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(private, ecdsa_public(private))


def meta(**documents: bytes) -> dict[str, object]:
    return {
        role: {
            "length": len(raw),
            "hashes": {"sha256": base64.b64encode(hashlib.sha256(raw).digest()).decode()},
        }
        for role, raw in documents.items()
    }


def collection(gun: str = GUN) -> dict[str, bytes]:
    root_key, targets_key, snapshot_key, timestamp_key = new_root_key(gun, NOW), key(), key(), key()
    server = {"snapshot": snapshot_key.public, "timestamp": timestamp_key.public}
    root = tuf.signed_document(tuf.new_root(root_key, targets_key.public, server, NOW), [root_key])
    targets = tuf.signed_document(tuf.with_targets(tuf.empty_targets(NOW), {}, NOW), [targets_key])
    expires = tuf.format_time(NOW + dt.timedelta(days=1))
    snapshot_signed = {"_type": "Snapshot", "expires": expires, "version": 1}
    snapshot = tuf.signed_document(
        {**snapshot_signed, "meta": meta(root=root, targets=targets)}, [snapshot_key]
    )
    timestamp = tuf.signed_document(
        {"_type": "Timestamp", "expires": expires, "version": 1, "meta": meta(snapshot=snapshot)},
        [timestamp_key],
    )
    return {
        "root.json": root,
        "targets.json": targets,
        "snapshot.json": snapshot,
        "timestamp.json": timestamp,
    }


def test_a_consistent_collection_is_read() -> None:
    documents = collection()

    found = fetch_collection(Served(documents), NOW)

    assert found is not None
    assert found.targets.raw == documents["targets.json"]


def test_an_unknown_collection_is_none() -> None:
    assert fetch_collection(Served({}), NOW) is None


def test_targets_other_than_the_snapshot_names_are_refused() -> None:
    documents = collection()
    documents["targets.json"] = collection()["targets.json"]

    with pytest.raises(TrustError, match=r"targets\.json: sha256 differs from what snapshot\.json"):
        fetch_collection(Served(documents), NOW)


def test_a_snapshot_signed_by_another_key_is_refused() -> None:
    documents, other = collection(), collection()
    documents["snapshot.json"] = other["snapshot.json"]
    documents["timestamp.json"] = other["timestamp.json"]

    with pytest.raises(TrustError, match=r"timestamp\.json: 0 valid signature\(s\), 1 needed"):
        fetch_collection(Served(documents), NOW)


def test_a_root_certificate_for_another_name_is_refused() -> None:
    with pytest.raises(TrustError, match=r"root certificate \w+ is for another name"):
        fetch_collection(Served(collection(gun="elsewhere/app")), NOW)


def test_a_half_collection_is_refused() -> None:
    documents = collection()
    del documents["timestamp.json"]

    with pytest.raises(TrustError, match=r"is incomplete: no timestamp\.json"):
        fetch_collection(Served(documents), NOW)


def test_an_expired_timestamp_is_refused() -> None:
    with pytest.raises(TrustError, match=r"timestamp\.json: expired at"):
        fetch_collection(Served(collection()), NOW + dt.timedelta(days=2))
