"""`cervicalai review serve`: one trame server for one reader of one worklist.

Checks first (reader name, host and secret, the worklist), then builds the app and serves it
until Ctrl+C. The environment trame-slicer needs to render without a display is set here:
VTK's EGL render window (Mesa's CPU renderer when there is no GPU; no X server needed).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from CervicalAILib.core.atomic import write_text
from CervicalAILib.review.worklist import open_worklist
from CervicalAILib.web.security import Access, check_access, check_port_free, claim_reader


def quiet_web_logs() -> None:
    """trame and wslink log every template token at INFO: keep their warnings only (unless -v)."""
    level = max(logging.getLogger().getEffectiveLevel(), logging.WARNING)
    for name in ("trame", "trame_server", "trame_client", "trame_slicer", "trame_rca", "wslink", "aiohttp"):
        logging.getLogger(name).setLevel(level)


def configure_rendering() -> None:
    """Off-screen rendering through EGL unless the user chose a VTK window class."""
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    os.environ.setdefault("TRAME_SERVER", "1")  # never open a browser on the server machine


def serve(source: str | Path, reader: str, host: str | None, port: int, token: str | None,
          rca_encoder: str | None = None, ready_file: str | Path | None = None) -> int:
    """Serve the worklist of `source` to `reader` (blocks until the server stops)."""
    worklist = open_worklist(source)
    reader_list = worklist.reader(reader)  # refuses a missing or unsafe reader name
    access: Access = check_access(host, port, token)
    check_port_free(access.host, access.port)
    lock = claim_reader(reader_list.folder)
    try:
        _run(worklist, reader_list, access, rca_encoder, ready_file)
    finally:
        lock.unlink(missing_ok=True)
    return 0


def _run(worklist, reader_list, access: Access, rca_encoder: str | None, ready_file: str | Path | None) -> None:
    configure_rendering()
    quiet_web_logs()

    # heavy optional packages, only when serving (web.app imports trame and trame-slicer at module level)
    from trame.app import get_server

    from CervicalAILib.web.app import ReviewApp

    server = get_server(f"cervicalai-review-{reader_list.folder_name}", client_type="vue3")
    # trame reads its options from the command line: give it exactly ours, never the user's argv
    server.cli.set_defaults(authKey=access.token, host=access.host, port=access.port, timeout=0)
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        app = ReviewApp(reader_list, server=server, rca_encoder=rca_encoder)

        def announce(**_):
            shown = Access(access.host, server.port, access.token, access.token_generated)
            print(f"CervicalAI review of {worklist.source} for reader {reader_list.reader_name}: "
                  f"{len(worklist.cases)} case(s)", flush=True)
            print(f"open {shown.url()}", flush=True)
            if ready_file is not None:
                write_text(ready_file, shown.url() + "\n")

        server.controller.on_server_ready.add(announce)
        try:
            server.start(host=access.host, port=access.port, open_browser=False, show_connection_info=False,
                         timeout=0, disable_logging=True)
        finally:
            app.close()
    finally:
        sys.argv = argv
