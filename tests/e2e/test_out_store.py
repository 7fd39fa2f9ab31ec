"""What `out` asks of the store: nothing without one; with one, blob homes from a projection.

In-process, so the test can see which store `out` opens and which SQL it runs; the pushes go
to a real registry.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from regwatch.config import Source
from regwatch.frontends.sources import watch_spec
from regwatch.image.loading import load_image
from regwatch.refs import Repository, parse_repository
from regwatch.service import Service
from regwatch.service.put import _blob_homes
from regwatch.specs import PushSpec, WatchSpec
from regwatch.store.eventstore import NewEvent
from regwatch.store.migrate import open_store
from tests import images
from tests.e2e.steps import client_for, source_for, step
from tests.registries import RegistryServer

SPACE = "sha256:" + "f" * 64
ALIASED = PushSpec(image="fetched/image.tar", version="1.2.3", bump_aliases=True)
THEN = datetime(2024, 5, 6, tzinfo=UTC)


def fetched(server: RegistryServer, tmp_path: Path, store: str | None = None) -> str:
    """An image pushed to a fresh repository and fetched with `in` into SRC/fetched."""
    item = images.image(f"out-store-{uuid.uuid4().hex[:8]}", docker=True)
    origin = Repository(server.host, f"outstore/{uuid.uuid4().hex[:10]}")
    images.push(client_for(server), origin, "src", item)
    extra = {"store": store} if store else {}
    got = step(
        "in",
        {
            "source": source_for(server, str(origin), **extra),
            "params": {"format": "oci"},
            "version": {"tag": "src", "digest": item.digest},
        },
        tmp_path / "fetched",
    )
    assert got.code == 0, got.stderr
    return str(origin)


def spec_for(source: dict[str, Any]) -> WatchSpec:
    return watch_spec(Source.model_validate(source), unresolved="resolve", mirrored=False)


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine runs while the test does."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)


def test_out_without_a_store_lists_for_its_aliases_and_records_nothing(
    plain_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched(plain_registry, tmp_path)
    target = f"{plain_registry.host}/outstore/{uuid.uuid4().hex[:10]}"
    images.push(
        client_for(plain_registry), parse_repository(target), "2.0.0", images.image("newer")
    )

    def no_store(_service: Service) -> object:
        raise AssertionError("out opened a store although none persists")

    monkeypatch.setattr(Service, "store", no_store)
    with Service() as service:
        pushed = service.put(spec_for(source_for(plain_registry, target)), ALIASED, tmp_path)

    # 2.0.0 exists, so `latest` stays where it is: the listing was used.
    assert pushed.version.tag == "1.2.3"
    [tags] = [m.value for m in pushed.metadata if m.name == "tags"]
    assert sorted(tags.split()) == ["1", "1.2", "1.2.3"]


def test_out_with_a_store_records_the_listing_and_the_push(
    plain_registry: RegistryServer, tmp_path: Path
) -> None:
    fetched(plain_registry, tmp_path)
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    target = f"{plain_registry.host}/outstore/{uuid.uuid4().hex[:10]}"

    with Service(store=url) as service:
        service.put(spec_for(source_for(plain_registry, target, store=url)), ALIASED, tmp_path)

    with open_store(url) as store:
        kinds = [stored.kind for stored in store.load(target)]
    assert "ImagePushed" in kinds
    assert kinds.count("TagAppeared") == 4  # 1.2.3, 1.2, 1, latest


def test_out_finds_blob_homes_without_reading_the_log(
    plain_registry: RegistryServer, tmp_path: Path, statements: list[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    origin = fetched(plain_registry, tmp_path, store=url)
    with open_store(url) as store:  # a long log of other repositories
        for index in range(50):
            noise = NewEvent(
                "ImagePushed", {"digest": SPACE, "tags": ["x"], "blobs": [SPACE]}, THEN
            )
            store.append(f"{plain_registry.host}/noise/{index}", 0, [noise])
    target = parse_repository(f"{plain_registry.host}/outstore/{uuid.uuid4().hex[:10]}")
    statements.clear()

    with load_image(tmp_path / "fetched" / "image.tar") as loaded, Service(store=url) as service:
        homes = _blob_homes(service, target, loaded)
        wanted = {blob.descriptor.digest for blob in loaded.blobs}

    assert set(homes) == wanted
    assert {str(home) for home in homes.values()} == {origin}
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert reads
    assert not [s for s in reads if "FROM events" in s], reads
