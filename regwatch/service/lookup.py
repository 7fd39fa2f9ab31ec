"""`regwatch tags` and `regwatch digest`: one question to a registry, no log."""

from __future__ import annotations

from regwatch.errors import ConfigError, NotFound
from regwatch.refs import is_reference, parse_reference, parse_repository
from regwatch.service.access import Access, connect


def list_tags(repository: str, access: Access) -> list[str]:
    if is_reference(repository):
        raise ConfigError(
            f"tags takes a repository, not a reference: {repository!r} names a tag or digest"
        )
    repo = parse_repository(repository)
    return connect(repo.registry, access).list_tags(repo)


def resolve_digest(reference: str, access: Access) -> str:
    """The digest a tag (or digest) reference names right now, HEAD first."""
    ref = parse_reference(reference)
    descriptor = connect(ref.repository.registry, access).resolve(ref)
    if descriptor is None:
        raise NotFound(f"resolve {ref}: manifest unknown", 404)
    return descriptor.digest
