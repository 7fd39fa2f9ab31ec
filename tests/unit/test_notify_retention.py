"""Retention under notification sinks: the daemon never drops a job run a sink has not read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from regwatch.events import SCHEMA_VERSION, PollFailed, run_stream, to_payload
from regwatch.frontends.daemon import Daemon
from regwatch.frontends.metrics import Metrics
from regwatch.frontends.watchconfig import DaemonConfig, Jitter, Watch
from regwatch.notify.notifier import Notifier
from regwatch.notify.settings import SinkSettings, Webhook
from regwatch.refs import Repository
from regwatch.service import Service
from regwatch.specs import WatchSpec
from regwatch.store.eventstore import NewEvent

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
REPOSITORY = Repository("registry.test", "team/app")


def test_retention_keeps_the_runs_after_the_lowest_sink_checkpoint(tmp_path: Path) -> None:
    watch = Watch("app", WatchSpec(REPOSITORY), timedelta(hours=1), None, Jitter())
    sink = SinkSettings(
        "hook", Webhook("http://127.0.0.1:9/"), frozenset({REPOSITORY.name}), frozenset({"app"})
    )
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    config = DaemonConfig(tmp_path / "c.yaml", url, (watch,), retention_runs=timedelta(days=30))
    with Service(store=url) as service:
        store = service.store()
        notifier = Notifier([sink], store)
        notifier.begin()  # the sink starts at the (empty) log's end: it has read nothing
        runs = run_stream(REPOSITORY.name)
        for days in (50, 45, 40):
            run = PollFailed(error="boom", requests=1, duration_seconds=0.1, watch="app")
            event = NewEvent(
                run.kind, to_payload(run), NOW - timedelta(days=days), SCHEMA_VERSION[run.kind]
            )
            store.append(runs, None, [event])
        first = store.read_all()[0].position
        daemon = Daemon(config, service, Metrics(), clock=lambda: NOW, notifier=notifier)

        daemon.drop_old_runs()
        assert len(store.load(runs)) == 3, "the sink has read none of them"

        store.save_checkpoint("sink:hook", 0, first)
        daemon.drop_old_runs()
        assert [e.version for e in store.load(runs)] == [2, 3]
        notifier.stop(1)
