# ruff: noqa: N999  (`in` is the command this benchmarks: `python -m bench.in`)
"""`in` benchmark: `regwatch in` (rootfs and oci) against `skopeo copy` + `umoci unpack`, and
`format: oci` against `skopeo copy` to a layout and to an archive (`docker-archive`, `oci-archive`).

Run by hand from the repository root (needs docker-registry, skopeo, umoci and GNU time):

    python -m bench.in [--repeat 3] [--size-mib 300] [--layers 5] [--work-dir DIR]
                       [--delete-each-run]

It starts a local docker-registry, builds an image on disk (`--layers` gzip layers holding
`--size-mib` MiB of files in all: a few large files and many small ones, part pseudo-random
bytes and part word-salad text, so that gzip -6 takes it to about 70 % of its size, like the
image in ../shared/docs/performance.md), pushes it with regwatch's client (streamed from the
files), and then times, `--repeat` times each and interleaved, every tool as a child process
into a fresh destination: wall time, CPU (user + system, from `wait4`), peak RSS (GNU time's
`%M`; `run_child` says why not `wait4`'s) and the registry's CPU over the same run. Once, it
checks that regwatch's rootfs holds exactly what umoci's does. Prints a markdown table for
docs/benchmarks.md; progress goes to stderr. regwatch's modules are compiled to bytecode first,
as pip does when it installs a wheel: with PYTHONDONTWRITEBYTECODE set (as in the project's
shells) each run would otherwise compile them again, about 0.15 s of start-up.

Destinations are kept until the end of the benchmark and then deleted together (about 1.1 GB a
repetition). On ext4 without a journal, as on the project's machines, the kernel skips inodes
deleted in the last 60–300 s when it allocates new ones (`recently_deleted()` in
fs/ext4/ialloc.c), so creating files gets slower with every tree deleted shortly before:
deleting each destination after its run made the next run's file creation several times
slower, whichever tool it was. For the same reason, start the benchmark at least five minutes
after deleting large trees on that filesystem. `--delete-each-run` deletes as it goes instead.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import regwatch
from bench.measure import cpu_seconds, log, run_child
from regwatch.image.mediatypes import OCI_MANIFEST
from regwatch.net import Transport
from regwatch.refs import Reference, Repository
from regwatch.registry.client import RegistryClient
from tests.registries import RegistryServer, start_plain_registry

REPOSITORY = "bench/in"
TAG = "bench"
MIB = 1024 * 1024
EPOCH = 1_600_000_000
GZIP_LEVEL = 6
SEED = 20261122
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"

LARGE_SHARES = (("random", 0.12), ("text", 0.10), ("mixed", 0.08))
"""Each layer's large files, as (content kind, share of the layer's bytes): 30 % in all."""
SMALL_KINDS = ("random", "text", "text", "mixed", "random", "text", "mixed", "random", "text")
"""Kinds drawn for small files: about 45 % of their bytes end up pseudo-random."""
SMALL_MIN, SMALL_MAX = 32, 256 * 1024
"""Small files are log-uniform in size between these (mean ≈ 29 KiB)."""
FILES_PER_DIR = 100
SYMLINKS_PER_LAYER = 20
BLOCK = 64 * 1024
"""A mixed file switches between random and text bytes every block."""
CORPUS_WORDS = 300_000
SAMPLE_EVERY = 20
"""The tree comparison hashes every 20th regular file and every file of 1 MiB or more."""


# -- building the image on disk -----------------------------------------------------------------


class _Content:
    """The bytes of one generated file, made as they are read (never the whole file at once)."""

    def __init__(self, kind: str, size: int, rng: random.Random, corpus: bytes) -> None:
        self._kind = kind
        self._left = size
        self._rng = rng
        self._corpus = corpus

    def read(self, size: int = -1, /) -> bytes:
        wanted = self._left if size < 0 else min(size, self._left)
        parts: list[bytes] = []
        while wanted > 0:
            piece = min(wanted, BLOCK)
            kind = self._kind
            if kind == "mixed":
                kind = "random" if self._rng.random() < 0.5 else "text"
            if kind == "random":
                parts.append(self._rng.randbytes(piece))
            else:
                start = self._rng.randrange(len(self._corpus) - piece)
                parts.append(self._corpus[start : start + piece])
            wanted -= piece
            self._left -= piece
        return b"".join(parts)


class _GzipSink:
    """What tarfile writes to: hashes the tar (diff_id), gzips it into a file, hashes that."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        self._tar_hash = hashlib.sha256()
        self._blob_hash = hashlib.sha256()
        self.tar_size = 0
        self.blob_size = 0

    def write(self, data: bytes) -> int:
        self._tar_hash.update(data)
        self.tar_size += len(data)
        self._emit(self._compressor.compress(data))
        return len(data)

    def tell(self) -> int:
        return self.tar_size

    def finish(self) -> tuple[str, str]:
        """Flush the gzip trailer; returns (blob digest, diff_id)."""
        self._emit(self._compressor.flush())
        return f"sha256:{self._blob_hash.hexdigest()}", f"sha256:{self._tar_hash.hexdigest()}"

    def _emit(self, data: bytes) -> None:
        if data:
            self._blob_hash.update(data)
            self.blob_size += len(data)
            self._out.write(data)


@dataclass(frozen=True)
class BuiltLayer:
    path: Path
    digest: str
    size: int
    diff_id: str
    tar_size: int
    files: int


def _corpus(rng: random.Random) -> bytes:
    """About 2 MiB of word salad: gzip -6 takes it to ~41 % of its size."""
    letters = "abcdefghijklmnopqrstuvwxyz_"
    vocabulary = [
        "".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(3000)
    ]
    parts: list[str] = []
    for index, word in enumerate(rng.choices(vocabulary, k=CORPUS_WORDS)):
        parts.append(word)
        parts.append("\n" if index % 12 == 11 else " ")
    return "".join(parts).encode()


def _info(name: str, kind: bytes, size: int = 0, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = kind, size, mode, EPOCH
    info.uname = info.gname = "root"
    return info


def build_layer(index: int, layer_bytes: int, directory: Path) -> BuiltLayer:
    """Write layer `index` as a gzip tar in `directory`, streamed: content is made as it goes.

    Besides its own files, a layer after the first deletes (whiteout) one file of the layer
    before it and overwrites another, so the unpackers have something to merge.
    """
    rng = random.Random(SEED + index)
    corpus = _corpus(rng)
    path = directory / f"layer{index}.tar.gz"
    top = f"layer{index}"
    files = 0
    with path.open("wb") as out:
        sink = _GzipSink(out)
        stream = cast(IO[bytes], sink)  # tarfile only calls write() and tell()
        with tarfile.TarFile(
            fileobj=stream, mode="w", format=tarfile.PAX_FORMAT, copybufsize=MIB
        ) as tar:
            made_dirs: set[str] = set()

            def add_dir(name: str) -> None:
                if name not in made_dirs:
                    made_dirs.add(name)
                    tar.addfile(_info(name, tarfile.DIRTYPE, mode=0o755))

            def add_file(name: str, kind: str, size: int, mode: int = 0o644) -> None:
                nonlocal files
                content = cast(IO[bytes], _Content(kind, size, rng, corpus))  # read() only
                tar.addfile(_info(name, tarfile.REGTYPE, size, mode), content)
                files += 1

            add_dir(top)
            if index > 0:
                previous = f"layer{index - 1}/dir000"
                add_dir(previous)
                tar.addfile(_info(f"{previous}/.wh.file00000", tarfile.REGTYPE))
                add_file(f"{previous}/file00001", "text", 4321)
            add_dir(f"{top}/big")
            left = layer_bytes
            for number, (kind, share) in enumerate(LARGE_SHARES):
                size = int(layer_bytes * share)
                add_file(f"{top}/big/large{number}.{kind}", kind, size, 0o755)
                left -= size
            number = 0
            low, high = math.log(SMALL_MIN), math.log(SMALL_MAX)
            while left > 0:
                size = min(left, int(math.exp(rng.uniform(low, high))))
                folder = f"{top}/dir{number // FILES_PER_DIR:03d}"
                add_dir(folder)
                add_file(f"{folder}/file{number:05d}", rng.choice(SMALL_KINDS), size)
                left -= size
                number += 1
            for link in range(SYMLINKS_PER_LAYER):
                info = _info(f"{top}/link{link:02d}", tarfile.SYMTYPE, mode=0o777)
                info.linkname = f"dir000/file{link + 2:05d}"  # past the whiteout and overwrite
                tar.addfile(info)
        digest, diff_id = sink.finish()
    return BuiltLayer(path, digest, sink.blob_size, diff_id, sink.tar_size, files)


@dataclass(frozen=True)
class BuiltImage:
    layers: tuple[BuiltLayer, ...]
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return f"sha256:{hashlib.sha256(self.manifest).hexdigest()}"


def build_image(directory: Path, size_mib: int, layers: int) -> BuiltImage:
    layer_bytes = size_mib * MIB // layers
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = [pool.submit(build_layer, i, layer_bytes, directory) for i in range(layers)]
        built = tuple(future.result() for future in futures)
    config = {
        "created": "2026-11-22T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"bench": "in"},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in built]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": f"sha256:{hashlib.sha256(config_bytes).hexdigest()}",
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": LAYER_MEDIA_TYPE, "digest": layer.digest, "size": layer.size}
            for layer in built
        ],
    }
    return BuiltImage(built, config_bytes, json.dumps(manifest).encode())


def push_image(server: RegistryServer, image: BuiltImage) -> None:
    client = RegistryClient(server.host, Transport())
    repository = Repository(server.host, REPOSITORY)
    for layer in image.layers:
        with layer.path.open("rb") as blob:
            client.upload_blob(repository, blob, layer.digest, layer.size)
    config_digest = f"sha256:{hashlib.sha256(image.config).hexdigest()}"
    client.upload_blob(repository, image.config, config_digest, len(image.config))
    pushed = client.put_manifest(Reference(repository, tag=TAG), image.manifest, OCI_MANIFEST)
    assert pushed == image.digest, f"the registry stored {pushed}, expected {image.digest}"


# -- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    wall: float
    user: float
    sys: float
    rss_kib: int
    registry_cpu: float

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def __str__(self) -> str:
        return (
            f"{self.wall:.2f} s wall, {self.user:.2f} s user + {self.sys:.2f} s sys CPU, "
            f"{self.rss_kib / 1024:.0f} MiB peak RSS, registry {self.registry_cpu:.2f} s CPU"
        )


class Bench:
    def __init__(
        self, server: RegistryServer, work: Path, image: BuiltImage, time_bin: str
    ) -> None:
        self._server = server
        self._time = time_bin
        self._work = work
        self._image = image
        self._runs = 0

    def fresh(self, name: str) -> Path:
        self._runs += 1
        path = self._work / f"{self._runs:02d}-{name}"
        path.mkdir()
        return path

    def regwatch(self, fmt: str, destination: Path) -> Sample:
        request = {
            "source": {"repository": f"{self._server.host}/{REPOSITORY}"},
            "params": {"format": fmt},
            "version": {"tag": TAG, "digest": self._image.digest},
        }
        args = [sys.executable, "-m", "regwatch", "in", str(destination / "dest")]
        (sample,) = self._timed([(args, json.dumps(request).encode())], destination)
        return sample

    def skopeo_umoci(self, destination: Path) -> tuple[Sample, Sample]:
        """skopeo copy, then umoci unpack; returns (skopeo alone, both)."""
        layout, bundle = destination / "oci", destination / "bundle"
        copy = self._skopeo_copy(f"oci:{layout}:{TAG}")
        unpack = ["umoci", "unpack", "--rootless", "--image", f"{layout}:{TAG}", str(bundle)]
        copied, both = self._timed([(copy, b""), (unpack, b"")], destination)
        return copied, both

    def skopeo_archive(self, destination: Path, kind: str) -> Sample:
        """skopeo copy into an archive: `docker-archive` is what `in` writes as `image.tar`
        (but with the layers decompressed), `oci-archive` keeps them as pulled."""
        name = f"{REPOSITORY}:{TAG}" if kind == "docker-archive" else TAG
        copy = self._skopeo_copy(f"{kind}:{destination / 'image.tar'}:{name}")
        (sample,) = self._timed([(copy, b"")], destination)
        return sample

    def _skopeo_copy(self, target: str) -> list[str]:
        source = f"docker://{self._server.host}/{REPOSITORY}:{TAG}"
        return ["skopeo", "copy", "--quiet", "--src-tls-verify=false", source, target]

    def _timed(
        self, commands: Sequence[tuple[Sequence[str], bytes]], destination: Path
    ) -> list[Sample]:
        """Run the commands one after another; a sample of all of them so far after each."""
        os.sync()  # the previous run's writeback must not land in this one
        registry_before = cpu_seconds(self._server.pid)
        started = time.perf_counter()
        user, system, rss = 0.0, 0.0, 0
        samples: list[Sample] = []
        for args, stdin in commands:
            logs = destination / Path(args[0]).name
            measured = run_child(args, logs, stdin=stdin, time_bin=self._time)
            used, kernel, peak, out = measured.user, measured.sys, measured.rss_kib, measured.stdout
            if args[0] == sys.executable:
                self._check_in(out)
            user, system, rss = user + used, system + kernel, max(rss, peak)
            registry = cpu_seconds(self._server.pid) - registry_before
            wall = time.perf_counter() - started
            samples.append(Sample(wall, user, system, rss, registry))
        return samples

    def _check_in(self, out: bytes) -> None:
        answer = json.loads(out)
        assert answer["version"]["digest"] == self._image.digest, answer


# -- checking -----------------------------------------------------------------------------------


def tree(root: Path) -> dict[str, tuple[str, int, str, int]]:
    """Every entry below `root`: relative path → (kind, size of a file, target of a link,
    mtime in nanoseconds of a file or directory)."""
    found: dict[str, tuple[str, int, str, int]] = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if os.path.islink(path):
                found[rel] = ("link", 0, os.readlink(path), 0)
            elif os.path.isdir(path):
                found[rel] = ("dir", 0, "", st.st_mtime_ns)
            else:
                found[rel] = ("file", st.st_size, "", st.st_mtime_ns)
    return found


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def compare_trees(ours: Path, theirs: Path, image: BuiltImage) -> str:
    """Assert regwatch's rootfs holds what umoci's does; returns a one-line summary."""
    mine, reference = tree(ours), tree(theirs)
    missing, extra = sorted(reference.keys() - mine.keys()), sorted(mine.keys() - reference.keys())
    assert not missing, f"missing from regwatch's rootfs: {missing[:5]}"
    assert not extra, f"only in regwatch's rootfs: {extra[:5]}"
    differing = [rel for rel in reference if reference[rel] != mine[rel]]
    assert not differing, f"entries differ: {[(r, mine[r], reference[r]) for r in differing[:5]]}"
    files = sorted(rel for rel, entry in reference.items() if entry[0] == "file")
    sample = [
        rel for i, rel in enumerate(files) if i % SAMPLE_EVERY == 0 or reference[rel][1] >= MIB
    ]
    for rel in sample:
        assert file_hash(ours / rel) == file_hash(theirs / rel), f"{rel}: contents differ"
    expected = sum(layer.files for layer in image.layers) - (len(image.layers) - 1) * 2
    assert len(files) == expected, f"{len(files)} files, expected {expected}"
    assert "layer0/dir000/file00000" not in reference, "the whiteout was not applied"
    size = sum(entry[1] for entry in reference.values())
    return (
        f"trees equal: {len(reference)} entries, {len(files)} files ({size / MIB:.0f} MiB), "
        f"{len(sample)} hashed"
    )


def remove(path: Path) -> None:
    def unlock(function: Callable[..., Any], failed: str, _: Any) -> None:
        os.chmod(os.path.dirname(failed), 0o700)
        function(failed)

    shutil.rmtree(path, onerror=unlock)


# -- reporting ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    tool: str
    fmt: str
    samples: list[Sample]

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def user(self) -> float:
        return statistics.median(s.user for s in self.samples)

    @property
    def sys(self) -> float:
        return statistics.median(s.sys for s in self.samples)

    @property
    def registry(self) -> float:
        return statistics.median(s.registry_cpu for s in self.samples)

    @property
    def rss_mib(self) -> float:
        return max(s.rss_kib for s in self.samples) / 1024


def table(rows: Sequence[Row], baseline: Row) -> str:
    lines = [
        "| tool | format | median wall | peak RSS | wall vs skopeo + umoci | RSS vs skopeo + umoci "
        "| CPU: user + sys | registry CPU | runs (wall) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = ", ".join(f"{s.wall:.2f}" for s in row.samples)
        lines.append(
            f"| {row.tool} | {row.fmt} | {row.wall:.2f} s | {row.rss_mib:.0f} MiB "
            f"| {row.wall / baseline.wall:.2f}× | {row.rss_mib / baseline.rss_mib:.1f}× "
            f"| {row.user:.2f} + {row.sys:.2f} s | {row.registry:.2f} s | {runs} s |"
        )
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=300)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the registry, the image and every destination go (default: the temp dir)",
    )
    parser.add_argument(
        "--delete-each-run",
        action="store_true",
        help="delete each destination right after its run (default: all at the end; see the "
        "module docstring for why)",
    )
    args = parser.parse_args()
    if args.repeat < 1 or args.layers < 1 or args.size_mib < args.layers:
        parser.error("--repeat and --layers must be at least 1, --size-mib at least --layers")
    names = ("docker-registry", "skopeo", "umoci", "time")
    tools = {name: shutil.which(name) for name in names}
    if not all(tools.values()):
        missing = ", ".join(name for name, path in tools.items() if not path)
        raise SystemExit(f"needs {missing} (`time` is GNU time: Debian's package time)")
    work = Path(tempfile.mkdtemp(prefix="regwatch-bench-in-", dir=args.work_dir))
    try:
        (work / "registry").mkdir()
        server = start_plain_registry(str(tools["docker-registry"]), work / "registry")
        try:
            run(server, work, str(tools["time"]), args)
        finally:
            server.stop()
    finally:
        remove(work)


def run(server: RegistryServer, work: Path, time_bin: str, args: argparse.Namespace) -> None:
    compileall.compile_dir(Path(regwatch.__file__).parent, quiet=1)
    (work / "image").mkdir()
    started = time.perf_counter()
    image = build_image(work / "image", args.size_mib, args.layers)
    built = time.perf_counter() - started
    tar_mib = sum(layer.tar_size for layer in image.layers) / MIB
    gzip_mb = sum(layer.size for layer in image.layers) / 1e6
    files = sum(layer.files for layer in image.layers)
    log(
        f"built {len(image.layers)} layers in {built:.1f} s: {tar_mib:.0f} MiB of tar, "
        f"{gzip_mb:.0f} MB gzip, {files} files"
    )
    started = time.perf_counter()
    push_image(server, image)
    log(f"pushed {image.digest} in {time.perf_counter() - started:.1f} s")
    for layer in image.layers:
        layer.path.unlink()

    bench = Bench(server, work, image, time_bin)
    rootfs, oci = Row("regwatch in", "rootfs", []), Row("regwatch in", "oci (image.tar)", [])
    skopeo = Row("skopeo copy", "oci layout (no unpack)", [])
    archives = {
        kind: Row("skopeo copy", f"{kind} (image.tar)", [])
        for kind in ("docker-archive", "oci-archive")
    }
    baseline = Row("skopeo copy + umoci unpack", "rootfs (bundle)", [])
    for attempt in range(1, args.repeat + 1):
        ours = bench.fresh("rootfs")
        rootfs.samples.append(bench.regwatch("rootfs", ours))
        log(f"run {attempt}: regwatch rootfs {rootfs.samples[-1]}")
        theirs = bench.fresh("umoci")
        copied, both = bench.skopeo_umoci(theirs)
        skopeo.samples.append(copied)
        baseline.samples.append(both)
        log(f"run {attempt}: skopeo + umoci {both} (skopeo {copied.wall:.2f} s)")
        if attempt == 1:
            log(compare_trees(ours / "dest" / "rootfs", theirs / "bundle" / "rootfs", image))
        if args.delete_each_run:
            remove(ours)
            remove(theirs)
        tarball = bench.fresh("oci")
        oci.samples.append(bench.regwatch("oci", tarball))
        size = (tarball / "dest" / "image.tar").stat().st_size
        assert size > sum(layer.size for layer in image.layers), f"image.tar is {size} bytes"
        log(f"run {attempt}: regwatch oci {oci.samples[-1]}")
        if args.delete_each_run:
            remove(tarball)
        for kind, row in archives.items():
            theirs_tarball = bench.fresh(kind)
            row.samples.append(bench.skopeo_archive(theirs_tarball, kind))
            log(f"run {attempt}: skopeo {kind} {row.samples[-1]}")
            if args.delete_each_run:
                remove(theirs_tarball)
    print(
        f"Image: {len(image.layers)} layers, {tar_mib:.0f} MiB uncompressed, "
        f"{gzip_mb:.0f} MB gzip, {files} files; median of {args.repeat} runs, peak RSS the "
        "highest of them.\n"
    )
    print(table([rootfs, oci, skopeo, *archives.values(), baseline], baseline))


if __name__ == "__main__":
    main()
