"""Who may use a review server: the host it binds to, the secret, the reader.

- The server binds to 127.0.0.1 unless told otherwise. Any other host makes the worklist
  reachable from the network, so it needs a secret (at least 16 characters, from --token,
  --token-file or CERVICALAI_REVIEW_TOKEN) and the server refuses to start without one.
- On 127.0.0.1 a random secret is made when none is given (other users of the same machine can
  reach 127.0.0.1 too); the printed address carries it.
- The browser sends the secret when its websocket connects (wslink's hello); a connection without
  it gets no state, no images and can call nothing.

No trame, no Slicer: testable anywhere.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from CervicalAILib.core.errors import InputError

DEFAULT_HOST = "127.0.0.1"
TOKEN_ENV = "CERVICALAI_REVIEW_TOKEN"
MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class Access:
    host: str
    port: int
    token: str
    token_generated: bool

    def url(self, shown_host: str | None = None) -> str:
        host = shown_host or self.host
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"http://{host}:{self.port}/index.html?secret={self.token}"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token: str | None = None, token_file: str | Path | None = None,
               environ: dict[str, str] | None = None) -> str | None:
    """The secret from --token, --token-file or the environment (first found); None when none is given."""
    if token and token_file:
        raise InputError("give --token or --token-file, not both")
    if token_file:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read the token file ({exc.strerror})", path) from exc
        if not token:
            raise InputError("token file is empty", path)
    if not token:
        token = (environ if environ is not None else os.environ).get(TOKEN_ENV) or None
    if token is not None:
        token = token.strip()
        if len(token) < MIN_TOKEN_LENGTH:
            raise InputError(f"the review server's token must have at least {MIN_TOKEN_LENGTH} characters")
        if any(c.isspace() or c in "&#?%/" for c in token):
            raise InputError("the review server's token may not hold spaces or & # ? % /")
    return token


def check_port_free(host: str, port: int) -> None:
    """InputError when another program listens on host:port (0 = any free port: always fine)."""
    import socket

    if int(port) == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port") from None


def check_access(host: str | None, port: int, token: str | None) -> Access:
    """The host, port and secret a server may start with; InputError when it may not start."""
    host = (host or DEFAULT_HOST).strip()
    if not host:
        raise InputError("--host is empty")
    if not 0 <= int(port) <= 65535:
        raise InputError(f"--port {port} is not a port number (0-65535)")
    if token is None:
        if not is_loopback(host):
            raise InputError(
                f"--host {host} makes the review server reachable from other machines: give a secret with "
                f"--token-file FILE (or --token, or {TOKEN_ENV}), at least {MIN_TOKEN_LENGTH} characters; "
                "the server does not start without one"
            )
        return Access(host, int(port), secrets.token_urlsafe(24), True)
    return Access(host, int(port), token, False)


LOCK_FILE = ".review-server.pid"


def claim_reader(reader_folder: Path, pid: int | None = None) -> Path:
    """One review server per reader and cohort: a pid file in the reader's folder, refused while the
    process that wrote it still runs (two servers of one reader would race on the same files)."""
    reader_folder = Path(reader_folder)
    reader_folder.mkdir(parents=True, exist_ok=True)
    lock = reader_folder / LOCK_FILE
    pid = os.getpid() if pid is None else pid
    for _attempt in range(2):
        try:
            with open(lock, "x", encoding="utf-8") as handle:
                handle.write(f"{pid}\n")
            return lock
        except FileExistsError:
            try:
                other = int(lock.read_text(encoding="utf-8").strip() or 0)
            except (OSError, ValueError):
                other = 0
            if other and other != pid and _running(other):
                raise InputError(f"reader {reader_folder.name!r} already has a review server running on this cohort "
                                 f"(process {other}); use that one, or stop it first") from None
            lock.unlink(missing_ok=True)  # left by a server that is gone
    raise InputError(f"cannot claim the reader folder {reader_folder}")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
