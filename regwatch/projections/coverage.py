"""What a recorded poll covered, and a check's observation rebuilt from it without a request.

A Concourse check with `max_age` may be answered from the log (issue 16). The repository's
state says what each tag points at; the newest successful run says what that poll listed and
looked up. The check's own `observe` then runs against a reader that answers from those two
and refuses anything that poll did not ask the registry, so "covered" is exact by
construction: every request this check would send (its mode, cursor, quirk Q2's walk back,
`concurrency` wide) was sent by that poll, and the answer is projected from the observation a
live poll would have made of the registry as that poll saw it. A daemon's economical poll
covers only the tags it sent a request for; a tag it kept from earlier polls is not covered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from regwatch.decide import RepoState
from regwatch.events import LISTING_KEPT, PollSucceeded
from regwatch.observe import ImageFacts, Observation, observe
from regwatch.specs import Mode, Selection, TagDigest


class NotCovered(Exception):
    """The recorded poll did not ask what this check would ask; the check must poll.

    Never shown as an error: the check polls instead, and says why in a debug line.
    """


@dataclass(frozen=True)
class Coverage:
    """What one successful poll asked the registry, from its run (`PollSucceeded`)."""

    taken_at: datetime
    listed: tuple[str, ...] | None
    resolved: frozenset[str]
    missing: frozenset[str]
    digests_present: frozenset[str]
    digests_absent: frozenset[str]

    @classmethod
    def of(cls, run: PollSucceeded, taken_at: datetime) -> Coverage:
        return cls(
            taken_at=taken_at,
            listed=run.listed,
            resolved=frozenset(run.resolved),
            missing=frozenset(run.missing),
            digests_present=frozenset(run.digests_present),
            digests_absent=frozenset(run.digests_absent),
        )


def covering(run: PollSucceeded, observation: Observation) -> PollSucceeded:
    """`run` saying what `observation` asked the registry (what `Coverage.of` reads back)."""
    listed = observation.listed
    kept = listed if listed is not None and len(listed) <= LISTING_KEPT else None
    return run.model_copy(
        update={
            "listed": kept,
            "resolved": tuple(observation.resolved),
            "missing": tuple(sorted(observation.missing)),
            "digests_present": tuple(sorted(observation.digests_present)),
            "digests_absent": tuple(sorted(observation.digests_absent)),
        }
    )


def replayed(
    state: RepoState,
    coverage: Coverage,
    selection: Selection,
    cursor: TagDigest | None,
    *,
    stream: str,
    concurrency: int,
) -> Observation:
    """The observation this check would make, answered from `state` within `coverage`.

    Raises `NotCovered` when the check would send a request the poll did not, or when the
    log changed since in a way the poll's listing cannot vouch for (a tag recorded after the
    listing, a tag the poll found that is gone from the state).
    """
    if selection.mode is not Mode.TAG:
        if coverage.listed is None:
            raise NotCovered("the poll made no listing (or one too long to keep)")
        later = set(state.tags).difference(coverage.listed)
        if later:
            raise NotCovered(f"the log holds tags the poll did not list: {min(later)}")
    reader = _LogReader(state.tags, coverage)
    return observe(
        reader,
        selection,
        cursor,
        stream=stream,
        now=lambda: coverage.taken_at,
        concurrency=concurrency,
        known_images=frozenset(state.images),
        known_tags=state.tags,
        inspect_moves=True,
    )


class _LogReader:
    """`observe.RegistryReader` over the log: what the poll asked, answered as the state holds
    it now; anything else raises `NotCovered`."""

    def __init__(self, tags: Mapping[str, str], coverage: Coverage) -> None:
        self._tags = tags
        self._coverage = coverage

    def list_tags(self) -> list[str]:
        if self._coverage.listed is None:
            raise NotCovered("the poll made no listing")
        return list(self._coverage.listed)

    def digest(self, reference: str) -> str | None:
        covered = self._coverage
        if reference.startswith(("sha256:", "sha512:")):
            if reference in covered.digests_present:
                return reference
            if reference in covered.digests_absent:
                return None
            raise NotCovered(f"the poll did not look up {reference}")
        if reference in covered.resolved:
            found = self._tags.get(reference)
            if found is None:
                raise NotCovered(f"{reference} left the log after the poll")
            return found
        if reference in covered.missing and reference not in self._tags:
            return None
        raise NotCovered(f"the poll did not look up {reference}")

    def inspect(self, digest: str) -> ImageFacts:
        raise NotCovered(f"the poll did not inspect {digest}")

    def manifest_facts(self, digest: str, *, whole: bool = False) -> ImageFacts | None:
        raise NotCovered(f"the poll did not read {digest}")
