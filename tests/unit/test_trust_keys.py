"""Keys as notary writes them: the encrypted PEM, key IDs, signatures, a new root key."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from regwatch.errors import TrustError
from regwatch.service.signing import signing_key
from regwatch.specs import Signing
from regwatch.trust.canonical import canonical
from regwatch.trust.keys import (
    PublicKey,
    certificate_names,
    ecdsa_public,
    load_repository_key,
    new_root_key,
    verify,
)

NOTARY_KEY = """-----BEGIN ENCRYPTED PRIVATE KEY-----
gun: 127.0.0.1:5000/demo/app
role: targets

MIHuMEkGCSqGSIb3DQEFDTA8MBsGCSqGSIb3DQEFDDAOBAificGj9+63ZAICCAAw
HQYJYIZIAWUDBAEqBBB1WQYZEbq8cW6A9ntLGk/6BIGgmJUH2BdU8h5LC5Rreq4E
jOkHIIpmS+yNYrEk8mha1YOnkNovLgPyNmki41qbxr/A6HNhJgJyrhh24MBfYFKq
GhsY7xXlAzgShdtHIV6wrna+wkX1vZ2AXztYZ8iwwf+KYaCcNCErZIpDNaLsOFsG
Ea6JJc9yU9AhMwOJph1ote3c/tIIFAduqffQGWuFPquA+8qHExhH/1x9yqjzbj1P
Cw==
-----END ENCRYPTED PRIVATE KEY-----
"""
"""A targets key from a notary 0.6 trust directory (`private/<id>.key`), passphrase below."""
NOTARY_KEY_ID = "42e9b1c694ce7d9db40fca0d9705edab0013f1eae6ed3b9397bc2f8098b7b102"
NOTARY_PASSPHRASE = "targetspw"


def test_a_notary_key_is_decrypted_and_has_notary_s_id() -> None:
    key = load_repository_key(NOTARY_KEY, NOTARY_PASSPHRASE)

    assert key.key_id == NOTARY_KEY_ID
    assert key.public.keytype == "ecdsa"


def test_a_wrong_passphrase_is_one_line_without_the_passphrase() -> None:
    with pytest.raises(TrustError) as caught:
        load_repository_key(NOTARY_KEY, "hunter2")

    assert str(caught.value) == "repository_key: cannot decrypt it; check repository_passphrase"


def _pem(private: object, encryption: serialization.KeySerializationEncryption) -> str:
    assert isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


@pytest.mark.parametrize(
    ("encryption", "passphrase"),
    [
        (serialization.BestAvailableEncryption(b"s3cret"), "s3cret"),
        (serialization.NoEncryption(), ""),
    ],
    ids=["pbes2-sha256", "plain"],
)
def test_other_pkcs8_keys_load(
    encryption: serialization.KeySerializationEncryption, passphrase: str
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())

    key = load_repository_key(_pem(private, encryption), passphrase)

    assert key.public == ecdsa_public(private)


def test_an_ec_private_key_block_loads() -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()

    assert load_repository_key(pem, "").public == ecdsa_public(private)


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("not a key", "repository_key is not a PEM block (no BEGIN line)"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n", "the PRIVATE KEY PEM block has no END line"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "is not a private key"),
        ("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----", "not base64"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "not a private key"),
    ],
)
def test_what_is_not_a_key_is_refused(pem: str, message: str) -> None:
    with pytest.raises(TrustError) as caught:
        load_repository_key(pem, "")

    assert message in str(caught.value)


def test_an_rsa_key_is_refused() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    with pytest.raises(TrustError, match="only ECDSA keys are supported"):
        load_repository_key(_pem(private, serialization.NoEncryption()), "")


def test_a_key_id_is_the_sha256_of_the_canonical_public_key() -> None:
    key = PublicKey("ecdsa", "MFkw")
    expected = b'{"keytype":"ecdsa","keyval":{"private":null,"public":"MFkw"}}'

    assert key.key_id == hashlib.sha256(expected).hexdigest()


def test_a_signature_is_raw_r_and_s_and_verifies() -> None:
    key = load_repository_key(NOTARY_KEY, NOTARY_PASSPHRASE)
    message = canonical({"b": 1, "a": "x"})

    signature = key.sign(message)

    assert len(signature) == 64
    assert verify(key.public, "ecdsa", signature, message)
    assert not verify(key.public, "ecdsa", signature, message + b" ")
    assert not verify(key.public, "eddsa", signature, message)
    assert not verify(key.public, "ecdsa", signature[:-1], message)


def test_an_ed25519_signature_verifies() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    public = PublicKey("ed25519", base64.b64encode(raw).decode())

    assert verify(public, "eddsa", private.sign(b"m"), b"m")
    assert not verify(public, "eddsa", private.sign(b"m"), b"n")


def test_a_new_root_key_is_a_certificate_for_the_gun() -> None:
    now = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)

    key = new_root_key("registry.example/team/app", now)

    assert key.public.keytype == "ecdsa-x509"
    assert certificate_names(key.public) == ["registry.example/team/app"]
    assert verify(key.public, "ecdsa", key.sign(b"m"), b"m")


def test_a_key_id_given_must_be_the_key_s() -> None:
    given = Signing(key=NOTARY_KEY, passphrase=NOTARY_PASSPHRASE, key_id=NOTARY_KEY_ID)
    wrong = Signing(key=NOTARY_KEY, passphrase=NOTARY_PASSPHRASE, key_id="0" * 64)

    assert signing_key(given).key_id == NOTARY_KEY_ID
    with pytest.raises(TrustError) as caught:
        signing_key(wrong)
    assert str(caught.value) == (
        f"content_trust: repository_key_id {'0' * 64} is not the ID of repository_key "
        f"({NOTARY_KEY_ID})"
    )
