"""TUF metadata checks and the documents we write: canonical JSON, signatures and thresholds,
expiry, hashes named from above, delegation paths, target entries."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from regwatch.errors import TrustError
from regwatch.trust import tuf
from regwatch.trust.canonical import canonical
from regwatch.trust.keys import SigningKey, ecdsa_public
from regwatch.trust.tuf import Delegation, Metadata, RoleKeys

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def new_key() -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(private, ecdsa_public(private))


def targets_document(**changes: Any) -> dict[str, Any]:
    return {**tuf.empty_targets(NOW), "version": 1, **changes}


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    value = {"b": 1, "a": [1, {"d": None, "c": "é"}]}

    assert canonical(value) == '{"a":[1,{"c":"é","d":null}],"b":1}'.encode()


def test_a_document_signed_by_its_role_verifies() -> None:
    key = new_key()
    raw = tuf.signed_document(targets_document(), [key])

    verified = tuf.verified(
        "targets", raw, {key.key_id: key.public}, RoleKeys((key.key_id,), 1), NOW
    )

    assert verified.version == 1
    assert raw.startswith(b'{"signed":{"_type":"Targets",')


@pytest.mark.parametrize("case", ["threshold", "stranger", "tampered", "duplicate", "malformed"])
def test_signatures_short_of_the_threshold_are_refused(case: str) -> None:
    key, other = new_key(), new_key()
    keys = {k.key_id: k.public for k in (key, other)}
    allowed = RoleKeys((key.key_id, other.key_id), 2 if case in ("threshold", "duplicate") else 1)
    signers = [other] if case == "stranger" else [key, key] if case == "duplicate" else [key]
    if case == "stranger":
        allowed = RoleKeys((key.key_id,), 1)
    document = json.loads(tuf.signed_document(targets_document(), signers))
    if case == "tampered":
        document["signed"]["version"] = 2
    if case == "malformed":
        document["signatures"][0]["keyid"] = [key.key_id]
    raw = json.dumps(document).encode()

    with pytest.raises(TrustError, match=r"targets\.json: \d valid signature\(s\), \d needed"):
        tuf.verified("targets", raw, keys, allowed, NOW)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"expires": "2026-12-07T11:59:59Z"}, "targets.json: expired at 2026-12-07T11:59:59Z"),
        ({"expires": "tomorrow"}, "targets.json: no valid expiry"),
        ({"version": 0}, "targets.json: version is not a positive number"),
        ({"_type": "Root"}, "targets.json: its type is 'Root', not 'Targets'"),
    ],
)
def test_a_signed_document_must_be_current_and_of_its_type(
    changes: dict[str, Any], message: str
) -> None:
    key = new_key()
    raw = tuf.signed_document(targets_document(**changes), [key])

    with pytest.raises(TrustError) as caught:
        tuf.verified("targets", raw, {key.key_id: key.public}, RoleKeys((key.key_id,), 1), NOW)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2029-12-06T10:27:36.081341965Z", dt.datetime(2029, 12, 6, 10, 27, 36, 81341, dt.UTC)),
        ("2029-12-06T10:27:36Z", dt.datetime(2029, 12, 6, 10, 27, 36, tzinfo=dt.UTC)),
        (
            "2029-12-06T12:27:36+02:00",
            dt.datetime(2029, 12, 6, 10, 27, 36, tzinfo=dt.UTC),
        ),
        ("2029-12-06 10:27:36Z", None),
        ("2029-13-06T10:27:36Z", None),
    ],
)
def test_times_as_go_writes_them(text: str, expected: dt.datetime | None) -> None:
    assert tuf.parse_time(text) == expected


def named(raw: bytes, **entry: Any) -> Metadata:
    hashes = {"sha256": base64.b64encode(hashlib.sha256(raw).digest()).decode()}
    return Metadata(
        "snapshot", b"", {"meta": {"targets": {"length": len(raw), "hashes": hashes, **entry}}}
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({}, None),
        ({"length": 1}, "targets.json: length differs from what snapshot.json names"),
        (
            {"hashes": {"sha256": "AAAA"}},
            "targets.json: sha256 differs from what snapshot.json names",
        ),
        ({"hashes": {"md5": "AAAA"}}, "snapshot.json names no sha256 for targets.json"),
    ],
)
def test_a_document_must_match_what_names_it(entry: dict[str, Any], message: str | None) -> None:
    raw = b'{"signed":{}}'

    if message is None:
        tuf.check_named("targets", raw, named(raw, **entry))
        return
    with pytest.raises(TrustError) as caught:
        tuf.check_named("targets", raw, named(raw, **entry))
    assert str(caught.value) == message


def test_a_document_its_parent_does_not_name_is_refused() -> None:
    with pytest.raises(TrustError, match=r"snapshot\.json does not name targets/releases\.json"):
        tuf.check_named("targets/releases", b"", named(b""))


@pytest.mark.parametrize(
    ("paths", "tag", "allowed"),
    [
        (("",), "anything", True),
        (("v1",), "v1.2.3", True),
        (("v1",), "latest", False),
        ((), "latest", False),
        (("rc-", "v"), "v2", True),
    ],
)
def test_a_delegation_allows_the_tags_its_paths_prefix(
    paths: tuple[str, ...], tag: str, allowed: bool
) -> None:
    delegation = Delegation("targets/releases", RoleKeys(("k",), 1), tuple(paths))

    assert delegation.allows(tag) is allowed


def test_only_roles_directly_under_targets_are_delegations() -> None:
    key = new_key()
    section = {
        "keys": {key.key_id: key.public.document()},
        "roles": [
            {"name": "targets/releases", "keyids": [key.key_id], "threshold": 1, "paths": [""]},
            {"name": "targets/releases/qa", "keyids": [key.key_id], "threshold": 1, "paths": [""]},
        ],
    }
    targets = Metadata("targets", b"", targets_document(delegations=section))

    keys, delegations = tuf.delegations(targets)

    assert keys == {key.key_id: key.public}
    assert [d.name for d in delegations] == ["targets/releases"]


def test_a_target_is_the_manifest_s_sha256_and_size() -> None:
    digest = "sha256:" + "ab" * 32

    assert tuf.target(digest, 528) == {
        "hashes": {"sha256": base64.b64encode(bytes.fromhex("ab" * 32)).decode()},
        "length": 528,
    }
    with pytest.raises(TrustError, match="notary targets need a sha256 digest"):
        tuf.target("sha512:" + "ab" * 64, 1)


def test_new_targets_replace_a_tag_keep_the_others_and_bump_the_version() -> None:
    old, new = tuf.target("sha256:" + "00" * 32, 1), tuf.target("sha256:" + "11" * 32, 2)
    current = targets_document(targets={"moved": old, "kept": old}, version=4)

    updated = tuf.with_targets(current, {"moved": new, "added": new}, NOW)

    assert updated["targets"] == {"moved": new, "kept": old, "added": new}
    assert updated["version"] == 5
    assert updated["expires"] == "2029-12-06T12:00:00Z"
    assert current["version"] == 4


def test_a_new_root_names_our_keys_and_the_server_s() -> None:
    root_key, targets_key = new_key(), new_key()
    snapshot, timestamp = new_key().public, new_key().public

    root = tuf.new_root(
        root_key, targets_key.public, {"snapshot": snapshot, "timestamp": timestamp}, NOW
    )

    assert root["roles"] == {
        "root": {"keyids": [root_key.key_id], "threshold": 1},
        "targets": {"keyids": [targets_key.key_id], "threshold": 1},
        "snapshot": {"keyids": [snapshot.key_id], "threshold": 1},
        "timestamp": {"keyids": [timestamp.key_id], "threshold": 1},
    }
    assert set(root["keys"]) == {
        root_key.key_id,
        targets_key.key_id,
        snapshot.key_id,
        timestamp.key_id,
    }
    assert root["version"] == 1


RELEASES = Delegation("targets/releases", RoleKeys(("ours",), 1), ("",))
BETA = Delegation("targets/beta", RoleKeys(("ours", "theirs"), 1), ("beta-",))
OTHERS = Delegation("targets/others", RoleKeys(("theirs",), 1), ("",))


@pytest.mark.parametrize(
    ("targets_keys", "delegations", "placed"),
    [
        (("ours",), (), {"targets": ["1.0", "beta-2"]}),
        (("ours",), (OTHERS,), {"targets": ["1.0", "beta-2"]}),
        (("theirs",), (RELEASES, OTHERS), {"targets/releases": ["1.0", "beta-2"]}),
        (
            ("theirs",),
            (RELEASES, BETA),
            {"targets/releases": ["1.0", "beta-2"], "targets/beta": ["beta-2"]},
        ),
        (("ours",), (BETA,), {"targets": ["1.0"], "targets/beta": ["beta-2"]}),
    ],
)
def test_each_tag_goes_to_the_delegations_our_key_may_sign_else_targets(
    targets_keys: tuple[str, ...], delegations: tuple[Delegation, ...], placed: dict[str, list[str]]
) -> None:
    assert tuf.placement(["1.0", "beta-2"], "ours", targets_keys, delegations, "g") == placed


def test_a_tag_our_key_may_not_sign_is_refused() -> None:
    with pytest.raises(TrustError) as caught:
        tuf.placement(["1.0", "beta-2"], "ours", ("theirs",), (BETA, OTHERS), "reg/app")

    assert str(caught.value).startswith("repository key ours may not sign tag 1.0 in reg/app: ")
