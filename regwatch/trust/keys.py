"""TUF keys as Notary writes them: public keys and their IDs, our signing keys, signatures.

A repository key comes as notary stores it (`notary key export`, a trust directory's
`private/<id>.key`): a PEM block with header lines (`role: targets`, `gun: …`) around a PBES2
envelope (PBKDF2, AES-CBC) whose inner PKCS#8 has version 1, which `cryptography` will not
load; the envelope is opened with its primitives and the EC key rebuilt from its scalar.

A key's ID is the SHA-256 of its public form in canonical JSON. ECDSA signatures are the raw
`r || s` octets, as Go writes them, not DER.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from regwatch.errors import TrustError
from regwatch.trust import der
from regwatch.trust.canonical import canonical

_PBES2: Final = "1.2.840.113549.1.5.13"
_PBKDF2: Final = "1.2.840.113549.1.5.12"
_PRFS: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "1.2.840.113549.2.7": hashes.SHA1,
    "1.2.840.113549.2.9": hashes.SHA256,
    "1.2.840.113549.2.10": hashes.SHA384,
    "1.2.840.113549.2.11": hashes.SHA512,
}
_AES_CBC: Final = {
    "2.16.840.1.101.3.4.1.2": 16,
    "2.16.840.1.101.3.4.1.22": 24,
    "2.16.840.1.101.3.4.1.42": 32,
}
_EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "1.2.840.10045.3.1.7": ec.SECP256R1,
    "1.3.132.0.34": ec.SECP384R1,
    "1.3.132.0.35": ec.SECP521R1,
}

_ECDSA_ONLY: Final = "repository_key: only ECDSA keys are supported (as docker trust makes)"

ROOT_CERTIFICATE_YEARS: Final = 10
"""How long the certificate of a root key we create lasts: notary's own default."""


@dataclass(frozen=True)
class PublicKey:
    """A key as TUF metadata lists it: `{"keytype", "keyval": {"public", "private": null}}`."""

    keytype: str
    public: str
    """Base64: DER SubjectPublicKeyInfo (`ecdsa`, `rsa`), raw bytes (`ed25519`), or a PEM
    certificate (`ecdsa-x509`, `rsa-x509`)."""

    def document(self) -> dict[str, object]:
        return {"keytype": self.keytype, "keyval": {"private": None, "public": self.public}}

    @property
    def key_id(self) -> str:
        return hashlib.sha256(canonical(self.document())).hexdigest()


def public_key_from(document: object) -> PublicKey:
    """A key entry of TUF metadata (`keys` of root, or of a delegation)."""
    if not isinstance(document, dict):
        raise TrustError("a key in the metadata is not an object")
    keyval = document.get("keyval")
    keytype = document.get("keytype")
    public = keyval.get("public") if isinstance(keyval, dict) else None
    if not isinstance(keytype, str) or not isinstance(public, str):
        raise TrustError("a key in the metadata lacks its type or public value")
    return PublicKey(keytype, public)


def verify(key: PublicKey, method: str, signature: bytes, message: bytes) -> bool:
    """Whether `signature` (by `method`, as notary names it) over `message` is `key`'s."""
    try:
        loaded = _load_public(key)
        if isinstance(loaded, ec.EllipticCurvePublicKey) and method == "ecdsa":
            size = (loaded.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            loaded.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(loaded, ed25519.Ed25519PublicKey) and method == "eddsa":
            loaded.verify(signature, message)
        elif isinstance(loaded, rsa.RSAPublicKey) and method == "rsapss":
            pss = rsa_padding.PSS(rsa_padding.MGF1(hashes.SHA256()), hashes.SHA256.digest_size)
            loaded.verify(signature, message, pss, hashes.SHA256())
        else:
            return False
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return True


def certificate_names(key: PublicKey) -> list[str]:
    """The common names of an `-x509` key's certificate (empty for any other key)."""
    if not key.keytype.endswith("-x509"):
        return []
    try:
        certificate = x509.load_pem_x509_certificate(base64.b64decode(key.public))
    except ValueError:
        return []
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return [str(name.value) for name in names]


def _load_public(
    key: PublicKey,
) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey:
    raw = base64.b64decode(key.public, validate=True)
    if key.keytype == "ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    if key.keytype in ("ecdsa-x509", "rsa-x509"):
        loaded: object = x509.load_pem_x509_certificate(raw).public_key()
    elif key.keytype in ("ecdsa", "rsa"):
        loaded = serialization.load_der_public_key(raw)
    else:
        raise ValueError(f"unknown key type {key.keytype}")
    if not isinstance(loaded, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError("unsupported public key")
    return loaded


@dataclass(frozen=True)
class SigningKey:
    """An ECDSA private key and the public form metadata lists for it."""

    private: ec.EllipticCurvePrivateKey
    public: PublicKey

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        """The raw `r || s` signature notary expects."""
        r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
        size = (self.private.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def ecdsa_public(private: ec.EllipticCurvePrivateKey) -> PublicKey:
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey("ecdsa", base64.b64encode(spki).decode("ascii"))


def new_root_key(gun: str, now: dt.datetime) -> SigningKey:
    """A fresh P-256 root key, listed as notary lists one: a self-signed certificate whose
    common name is the GUN (notary clients refuse a root key that is not such a certificate)."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gun)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365 * ROOT_CERTIFICATE_YEARS))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    return SigningKey(private, PublicKey("ecdsa-x509", base64.b64encode(pem).decode("ascii")))


def load_repository_key(pem: str, passphrase: str) -> SigningKey:
    """The repository (targets or delegation) key from its PEM, encrypted or not.

    Every failure is one line that shows neither the key nor the passphrase.
    """
    body = _pem_body(pem)
    if body.label == "ENCRYPTED PRIVATE KEY":
        private = _decrypted(body.data, passphrase)
    elif body.label in ("PRIVATE KEY", "EC PRIVATE KEY"):
        private = _plain(body.data)
    else:
        raise TrustError(f"repository_key: a {body.label} PEM block is not a private key")
    return SigningKey(private, ecdsa_public(private))


@dataclass(frozen=True)
class _PemBody:
    label: str
    data: bytes


def _pem_body(pem: str) -> _PemBody:
    lines = [line.strip() for line in pem.strip().splitlines()]
    begins = [i for i, line in enumerate(lines) if line.startswith("-----BEGIN ")]
    if not begins:
        raise TrustError("repository_key is not a PEM block (no BEGIN line)")
    start = begins[0]
    label = lines[start].removeprefix("-----BEGIN ").removesuffix("-----")
    try:
        end = lines.index(f"-----END {label}-----", start)
    except ValueError:
        raise TrustError(f"repository_key: the {label} PEM block has no END line") from None
    # notary puts `role: …` and `gun: …` header lines before the base64 body.
    text = "".join(line for line in lines[start + 1 : end] if line and ":" not in line)
    try:
        return _PemBody(label, base64.b64decode(text, validate=True))
    except ValueError:
        raise TrustError("repository_key: the PEM body is not base64") from None


def _plain(data: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        loaded = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        try:
            return _from_pkcs8(data)
        except ValueError:
            raise TrustError("repository_key: not a private key") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise TrustError(_ECDSA_ONLY)
    return loaded


def _decrypted(data: bytes, passphrase: str) -> ec.EllipticCurvePrivateKey:
    try:
        algorithm, encrypted = der.parse(data).expect(der.SEQUENCE).children()
        scheme, parameters = algorithm.expect(der.SEQUENCE).children()
        if scheme.oid() != _PBES2:
            raise ValueError("not PBES2")
        kdf, cipher = parameters.children()
        kdf_oid, kdf_parameters = kdf.children()
        if kdf_oid.oid() != _PBKDF2:
            raise ValueError("not PBKDF2")
        salt, iterations, *rest = kdf_parameters.children()
        prf: Callable[[], hashes.HashAlgorithm] = hashes.SHA1
        for item in rest:
            if item.tag == der.SEQUENCE:
                prf = _PRFS[item.children()[0].oid()]
        cipher_oid, iv = cipher.children()
        length = _AES_CBC[cipher_oid.oid()]
        key = PBKDF2HMAC(prf(), length, salt.octets(), iterations.integer()).derive(
            passphrase.encode()
        )
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv.octets())).decryptor()
        padded = decryptor.update(encrypted.octets()) + decryptor.finalize()
    except (ValueError, KeyError, IndexError):
        raise TrustError(
            "repository_key: not an encrypted key notary can write (PBES2, PBKDF2, AES-CBC)"
        ) from None
    try:
        unpadder = padding.PKCS7(128).unpadder()
        return _from_pkcs8(unpadder.update(padded) + unpadder.finalize())
    except ValueError:
        raise TrustError("repository_key: cannot decrypt it; check repository_passphrase") from None


def _from_pkcs8(data: bytes) -> ec.EllipticCurvePrivateKey:
    """The EC key of a PKCS#8 structure of any version, rebuilt from its private scalar.

    A structure that is not PKCS#8 is a `ValueError`: after a wrong passphrase it is noise.
    """
    try:
        _version, algorithm, wrapped, *_ = der.parse(data).expect(der.SEQUENCE).children()
        kind, curve = algorithm.expect(der.SEQUENCE).children()
        if kind.oid() != _EC_PUBLIC_KEY:
            raise TrustError(_ECDSA_ONLY)
        curve_type = _CURVES[curve.oid()]
        inner = der.parse(wrapped.octets()).expect(der.SEQUENCE).children()
        scalar = int.from_bytes(inner[1].octets(), "big")
        return ec.derive_private_key(scalar, curve_type())
    except (KeyError, IndexError) as exc:
        raise ValueError("not a PKCS#8 EC key") from exc
