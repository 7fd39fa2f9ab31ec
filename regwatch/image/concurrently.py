"""Blob downloads side by side: the first failure stops the others at their next chunk and is
the one raised."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from regwatch.image.digests import BlobOpener, verified
from regwatch.image.model import Descriptor

Download = Callable[[threading.Event | None], None]
"""One download; it gives up (raising `Cancelled`) once the event it is handed is set."""


class Cancelled(Exception):
    """A download stopped because another one failed; never reaches a caller."""


def download_all(downloads: Sequence[Download], concurrency: int, name: str) -> None:
    """Run every download, `concurrency` at a time in threads named `name`."""
    if concurrency <= 1 or len(downloads) <= 1:
        for download in downloads:
            download(None)
        return
    stop = threading.Event()
    with ThreadPoolExecutor(min(concurrency, len(downloads)), name) as pool:
        futures = [pool.submit(download, stop) for download in downloads]
        try:
            for future in as_completed(futures):
                future.result()
        except BaseException:
            stop.set()  # downloads under way give up at their next chunk
            for future in futures:
                future.cancel()
            raise


def stream_blob(
    open_blob: BlobOpener,
    blob: Descriptor,
    write: Callable[[bytes], object],
    what: str,
    stop: threading.Event | None,
) -> None:
    """One download: the blob's bytes to `write`, verified as they come; gives up at the next
    chunk once `stop` is set."""
    with open_blob(blob.digest, blob.size) as source:
        for chunk in verified(source, blob.digest, blob.size, f"{what}: blob {blob.digest}"):
            if stop is not None and stop.is_set():
                raise Cancelled(what)
            write(chunk)
