"""The Docker config's credentials: `auths` and `docker-credential-*` helpers, as crane reads them.

For one registry: `credHelpers[host]`, else `credsStore`, else `auths[host]`. A helper is the
program `docker-credential-NAME`, run as `docker-credential-NAME get` with the server URL on
stdin; it answers `{"ServerURL", "Username", "Secret"}` on stdout (a username `<token>` makes the
secret an identity token) or says "credentials not found", which means anonymous. Docker Hub's
key, and the server URL its helper is asked for, is `https://index.docker.io/v1/`; other keys are
`host[:port]`, and keys written as URLs (`https://host/v2/`) count for their host, as docker
counts them.

Nothing is read until a client first needs credentials, and a 401 reads the file and asks the
helper again (a helper may have rotated the secret). A helper runs in a session of its own, so
the deadline ends it and anything it started, and its answer is read within a size limit. No
secret reaches a message or a log line: a failing helper is named with its exit status and the
first line of its stderr.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import pwd
import selectors
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from regwatch.errors import AuthFailed, ConfigError
from regwatch.refs import DOCKER_HUB
from regwatch.registry.credentials import Credentials, CredentialSource

log = logging.getLogger(__name__)

CONFIG_LIMIT: Final = 4 << 20
"""Bytes a config file may hold; docker's own are a few KiB."""

ANSWER_LIMIT: Final = 1 << 20
"""Bytes a helper may write on stdout or stderr; an answer is a few hundred."""

HUB_KEY: Final = "https://index.docker.io/v1/"
"""Docker Hub's key in a config file, and the server URL its helper is asked about."""

TOKEN_USERNAME: Final = "<token>"  # noqa: S105 - a marker, not a secret
"""A helper's username saying the secret is an identity token (docker's convention)."""

_HUB_HOSTS: Final = frozenset({"docker.io", DOCKER_HUB, "registry-1.docker.io"})
_NOT_FOUND: Final = "credentials not found"


def config_path(environ: Mapping[str, str]) -> Path | None:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (HOME, else the user's home)."""
    directory = environ.get("DOCKER_CONFIG")
    if directory:
        return Path(directory, "config.json")
    home = environ.get("HOME")
    if not home:
        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            return None
    return Path(home, ".docker", "config.json")


def server_url(registry: str) -> str:
    """What a helper is asked about and the exact key looked for: the host, or Hub's URL."""
    return HUB_KEY if registry == DOCKER_HUB else registry


def hostname(key: str) -> str:
    """A config key's host: scheme and path dropped, as docker's `ConvertToHostname`."""
    for scheme in ("http://", "https://"):
        if key.startswith(scheme):
            key = key[len(scheme) :]
            break
    return key.partition("/")[0].lower()


def matching_key(keys: list[str], registry: str) -> str | None:
    """The config key that stands for `registry`: the exact key, else the first key whose host
    is the registry's (any of Docker Hub's names for the Hub)."""
    exact = server_url(registry)
    if exact in keys:
        return exact
    wanted = _HUB_HOSTS if registry == DOCKER_HUB else frozenset({registry.lower()})
    return next((key for key in keys if hostname(key) in wanted), None)


@dataclass(frozen=True)
class DockerConfig:
    """The parts of a config file that say where credentials come from."""

    path: Path
    auths: Mapping[str, Mapping[str, Any]]
    cred_helpers: Mapping[str, str]
    creds_store: str | None

    def helper_for(self, registry: str) -> Helper | None:
        key = matching_key(list(self.cred_helpers), registry)
        if key is not None:
            return Helper(self.cred_helpers[key], f"credHelpers in {self.path}")
        if self.creds_store:
            return Helper(self.creds_store, f"credsStore in {self.path}")
        return None

    def auth_for(self, registry: str) -> Credentials | None:
        key = matching_key(list(self.auths), registry)
        return None if key is None else _entry_credentials(self.auths[key], key, self.path)


def read_config(path: Path) -> DockerConfig | None:
    """The config file, or None when there is none; one line naming the file when it is bad."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read docker config {path}: {_reason(exc)}") from exc
    try:
        with open(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise ConfigError(f"cannot read docker config {path}: not a regular file")
            data = file.read(CONFIG_LIMIT + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read docker config {path}: {_reason(exc)}") from exc
    if len(data) > CONFIG_LIMIT:
        raise ConfigError(f"docker config {path} is larger than {CONFIG_LIMIT >> 20} MiB")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"docker config {path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"docker config {path}: expected a JSON object")
    auths = _field(document, "auths", dict, path) or {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"docker config {path}: auths[{key!r}] must be an object")
    helpers = _field(document, "credHelpers", dict, path) or {}
    for key, name in helpers.items():
        if not isinstance(name, str):
            raise ConfigError(f"docker config {path}: credHelpers[{key!r}] must be a string")
    return DockerConfig(path, auths, helpers, _field(document, "credsStore", str, path) or None)


def _field(document: dict[str, Any], name: str, kind: type, path: Path) -> Any:
    value = document.get(name)
    if value is not None and not isinstance(value, kind):
        wanted = "an object" if kind is dict else "a string"
        raise ConfigError(f"docker config {path}: {name} must be {wanted}")
    return value


def _entry_credentials(entry: Mapping[str, Any], key: str, path: Path) -> Credentials | None:
    """An `auths` entry: `auth` (base64 `user:password`) or `username`/`password`, plus an
    `identitytoken` (OAuth2 refresh token) or a `registrytoken` (a bearer token sent as is)."""

    def text(name: str) -> str:
        value = entry.get(name) or ""
        if not isinstance(value, str):
            raise ConfigError(f"docker config {path}: auths[{key!r}].{name} must be a string")
        return value

    username, password = text("username"), text("password")
    if encoded := text("auth"):
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"docker config {path}: auths[{key!r}].auth is not base64 of user:password"
            ) from exc
        username, colon, password = decoded.partition(":")
        if not colon:
            raise ConfigError(f"docker config {path}: auths[{key!r}].auth is not user:password")
    identity, registry_token = text("identitytoken"), text("registrytoken")
    if not (username and password) and not identity and not registry_token:
        return None
    return Credentials(username, password, identity or None, registry_token or None)


@dataclass(frozen=True)
class Helper:
    """A credential helper named by a config file; `origin` says where (for messages)."""

    name: str
    origin: str

    @property
    def program(self) -> str:
        return f"docker-credential-{self.name}"

    def get(self, registry: str, environ: Mapping[str, str], timeout: float) -> Credentials | None:
        """The helper's credentials for `registry`; None when it has none."""
        if not self.name or "/" in self.name or "\0" in self.name:
            raise ConfigError(f"{self.origin}: invalid credential helper name {self.name!r}")
        executable = shutil.which(self.program, path=environ.get("PATH", os.defpath))
        if executable is None:
            raise ConfigError(
                f"credentials for {registry}: {self.program} ({self.origin}) is not on PATH"
            )
        what = f"credentials for {registry}: {self.program} get"
        status, out, err = _run(
            [executable, "get"], server_url(registry).encode(), environ, timeout, what
        )
        if status != 0:
            # Docker's helpers write their errors on stdout; a JSON answer there is not shown.
            told = "" if out.lstrip().startswith(b"{") else _first_line(out)
            if _NOT_FOUND in f"{told} {_first_line(err)}".lower():
                return None
            said = _first_line(err) or told
            ended = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
            raise AuthFailed(f"{what} {ended}" + (f": {said}" if said else ""))
        try:
            answer = json.loads(out)
        except (ValueError, RecursionError) as exc:
            raise AuthFailed(f"{what} answered something other than JSON") from exc
        username = answer.get("Username") if isinstance(answer, dict) else None
        secret = answer.get("Secret") if isinstance(answer, dict) else None
        if not isinstance(username, str) or not isinstance(secret, str):
            raise AuthFailed(f"{what} answered without a Username and Secret")
        if not secret:
            return None
        if username == TOKEN_USERNAME:
            return Credentials(identity_token=secret)
        return Credentials(username, secret)


def _run(
    command: list[str], stdin: bytes, environ: Mapping[str, str], timeout: float, what: str
) -> tuple[int, bytes, bytes]:
    """Run a helper: its exit status, stdout and stderr, each read up to ANSWER_LIMIT.

    The helper leads a session of its own, so a deadline or an answer over the limit kills it
    and whatever it started; a child left holding the pipes could otherwise keep us waiting.
    """
    deadline = time.monotonic() + timeout
    try:
        process = subprocess.Popen(  # noqa: S603 - the program the user's config names
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(environ),
            start_new_session=True,
        )
    except OSError as exc:
        raise AuthFailed(f"{what} could not start: {_reason(exc)}") from exc
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        try:
            process.stdin.write(stdin)
            process.stdin.close()
        except BrokenPipeError:
            pass  # it did not want the server URL; its answer says the rest
        read = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
        with selectors.DefaultSelector() as selector:
            for descriptor in read:
                selector.register(descriptor, selectors.EVENT_READ)
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AuthFailed(f"{what} gave no answer within {timeout:g} s")
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fd)
                        continue
                    read[key.fd] += chunk
                    if len(read[key.fd]) > ANSWER_LIMIT:
                        raise AuthFailed(f"{what} wrote more than {ANSWER_LIMIT >> 20} MiB")
        try:
            status = process.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired as exc:
            raise AuthFailed(f"{what} gave no answer within {timeout:g} s") from exc
        return status, bytes(read[process.stdout.fileno()]), bytes(read[process.stderr.fileno()])
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()
        process.stderr.close()


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else ""


def _reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)


class DockerCredentials:
    """A `CredentialSource` for one registry, read from a Docker config file when first needed.

    `refresh()` (after a 401) reads the file and asks the helper again, once per call, and says
    whether that gave other credentials. A failure is raised to the caller and not remembered,
    so the next poll asks again.
    """

    def __init__(
        self, registry: str, path: Path, environ: Mapping[str, str], timeout: float
    ) -> None:
        self._registry = registry
        self._path = path
        self._environ = environ
        self._timeout = timeout
        self._lock = threading.Lock()
        self._resolved = False
        self._credentials: Credentials | None = None

    def current(self) -> Credentials | None:
        with self._lock:
            if not self._resolved:
                self._credentials = self._resolve()
                self._resolved = True
            return self._credentials

    def refresh(self) -> bool:
        with self._lock:
            renewed = self._resolve()
            changed = renewed != self._credentials
            self._credentials, self._resolved = renewed, True
            return changed and renewed is not None

    def _resolve(self) -> Credentials | None:
        config = read_config(self._path)
        if config is None:
            log.debug("credentials for %s: no docker config at %s", self._registry, self._path)
            return None
        helper = config.helper_for(self._registry)
        if helper is not None:
            log.debug("credentials for %s: asking %s", self._registry, helper.program)
            return helper.get(self._registry, self._environ, self._timeout)
        found = config.auth_for(self._registry)
        log.debug(
            "credentials for %s: %s in auths of %s",
            self._registry,
            "found" if found else "none",
            self._path,
        )
        return found


def docker_credentials(
    environ: Mapping[str, str], timeout: float
) -> Callable[[str], CredentialSource | None]:
    """The lookup a `Service` takes: each registry's credentials from the Docker config that
    `environ` names, helpers run with `environ` and answering within `timeout` seconds."""
    path = config_path(environ)

    def lookup(registry: str) -> CredentialSource | None:
        return None if path is None else DockerCredentials(registry, path, environ, timeout)

    return lookup
