"""Repository and reference values: parse, validate and canonicalise with Docker's naming rules."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TypeGuard

from regwatch.errors import ConfigError

DOCKER_HUB = "index.docker.io"
"""The canonical name of Docker Hub, as it appears in image tarballs and notary GUNs."""

DOCKER_HUB_WIRE = "registry-1.docker.io"
"""The host Docker Hub's registry API actually answers on."""

_HUB_ALIASES = frozenset({"docker.io", DOCKER_HUB, DOCKER_HUB_WIRE})
_MAX_NAME_LENGTH = 255

_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST_RE = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")


@dataclass(frozen=True, order=True)
class Repository:
    """A repository on a registry, in canonical form.

    `registry` is the canonical host (`index.docker.io` for Docker Hub) and `path` the path
    used on the wire (with Docker Hub's implicit `library/`).
    """

    registry: str
    path: str

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB

    @property
    def wire_host(self) -> str:
        return wire_host(self.registry)

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.path}"

    def on_registry(self, registry: str) -> Repository:
        """The same path on another registry, as a mirror serves it."""
        return Repository(parse_registry(registry), self.path)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Reference:
    """A repository plus a tag or a digest (a digest wins when both are given).

    Both are checked against the distribution grammar when the value is built, so no
    reference that reaches a URL can carry `/`, `..`, `?` or `#` into its path.
    """

    repository: Repository
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.tag is not None:
            parse_tag(self.tag)
        if self.digest is not None:
            parse_digest(self.digest)

    @property
    def identifier(self) -> str:
        """What goes after `/manifests/` on the wire."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag or 'latest'}"


def wire_host(registry: str) -> str:
    """The host to send requests to, which differs from the canonical one on Docker Hub."""
    return DOCKER_HUB_WIRE if registry == DOCKER_HUB else registry


def parse_registry(text: str) -> str:
    """Validate a `host[:port]` and return its canonical form."""
    if not _HOST_RE.fullmatch(text):
        raise ConfigError(f"invalid registry host {text!r}: expected host or host:port")
    lowered = text.lower()
    return DOCKER_HUB if lowered in _HUB_ALIASES else lowered


def parse_repository(text: str) -> Repository:
    """Parse a repository name such as `alpine`, `ghcr.io/acme/app` or `localhost:5000/app`."""
    if not text:
        raise ConfigError("invalid repository: the name is empty")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, path = parse_registry(first), rest
    else:
        registry, path = DOCKER_HUB, text
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    _check_path(text, path)
    return Repository(registry, path)


def parse_reference(text: str) -> Reference:
    """Parse `repo`, `repo:tag`, `repo@sha256:…` or `repo:tag@sha256:…`."""
    name, at, digest = text.partition("@")
    if at:
        digest = parse_digest(digest)
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag: str | None = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        parse_tag(tag)
    return Reference(parse_repository(name), tag=tag, digest=digest or None)


def is_reference(text: str) -> bool:
    """Whether `text` names a tag or a digest, not just a repository."""
    name, at, _ = text.partition("@")
    return bool(at) or name.rfind(":") > name.rfind("/")


def is_tag(text: object) -> TypeGuard[str]:
    """Whether `text` is a tag the distribution grammar allows."""
    return isinstance(text, str) and _TAG_RE.fullmatch(text) is not None


def parse_tag(text: str) -> str:
    """Validate a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, as the distribution spec says."""
    if not is_tag(text):
        raise ConfigError(
            f"invalid tag {_shown(text)}: a tag is 1 to 128 letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'"
        )
    return text


_SHOWN_CHARACTERS = 160


def _shown(text: str) -> str:
    """The value quoted for an error, cut short when it is far longer than any valid one."""
    if len(text) <= _SHOWN_CHARACTERS:
        return repr(text)
    return f"{text[:64]!r}… ({len(text)} characters)"


def is_digest(text: object) -> TypeGuard[str]:
    """Whether `text` is a canonical `sha256:`/`sha512:` digest (and so safe as a file name)."""
    return isinstance(text, str) and _DIGEST_RE.fullmatch(text) is not None


def parse_digest(text: str) -> str:
    """Validate a `sha256:` or `sha512:` digest in its canonical lower-case hex form."""
    if not _DIGEST_RE.fullmatch(text):
        raise ConfigError(
            f"invalid digest {_shown(text)}: expected sha256:<64 hex digits> "
            "or sha512:<128 hex digits>"
        )
    return text


def plain_http_allowed(registry: str) -> bool:
    """Whether a registry may be reached over plain HTTP without `insecure: true`.

    Loopback, `localhost` and RFC 1918 hosts are where people run registries without TLS.
    """
    if is_loopback(registry):
        return True
    address = _ip(host_without_port(registry))
    return (
        address is not None
        and address.version == 4
        and any(
            address in ipaddress.ip_network(net)
            for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
        )
    )


def is_loopback(host: str) -> bool:
    """Whether a host (with or without port) names this machine."""
    bare = host_without_port(host)
    if bare == "localhost" or bare.endswith(".localhost"):
        return True
    address = _ip(bare)
    return address is not None and address.is_loopback


def host_without_port(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_path(text: str, path: str) -> None:
    if len(path) > _MAX_NAME_LENGTH:
        raise ConfigError(f"invalid repository {text!r}: longer than {_MAX_NAME_LENGTH} characters")
    for component in path.split("/"):
        if _COMPONENT_RE.fullmatch(component):
            continue
        if component.lower() != component:
            raise ConfigError(f"invalid repository {text!r}: repository names must be lowercase")
        raise ConfigError(
            f"invalid repository {text!r}: path component {component!r} must be lowercase "
            "letters and digits, separated by '.', '_', '__' or '-'"
        )
