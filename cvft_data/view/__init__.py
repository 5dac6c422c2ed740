"""``cvft view DS``: a local web app to look at a dataset: a paged grid of annotated thumbnails,
filtered by split, class, label status, group and check finding; each image full size with its
labels, predictions, findings (near duplicates side by side), ledger entries and meta.

Served from the Arrow files (no copies, no database), bound to 127.0.0.1 unless told otherwise.

Example::

    cvft view datasets/sharks                                  # opens http://127.0.0.1:8765
    cvft view datasets/sharks --predictions runs/sharks/preds  # predictions beside the labels
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def _port_free(host: str, port: int) -> None:
    """Refuse a port another program holds, naming the flag (werkzeug would print its own text and exit)."""
    import socket

    from ..errors import UsageError

    if port == 0:
        return
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port "
                         "(0: any free one)") from None


def serve(path: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8765, predictions=None, options=None,
          findings: bool = True, open_browser: bool = True, ready=None) -> None:
    """Index the dataset (and run the checks, for the finding filter), then serve it until
    interrupted. ``port=0`` picks a free port; ``ready(url)`` is called once it listens."""
    from werkzeug.serving import make_server

    from ..checks import check
    from .app import LOOPBACK_NAMES, create_app
    from .index import ViewIndex

    _port_free(host, port)   # before the checks, which may take minutes on a large dataset
    found = check(path, options).findings if findings else []
    index = ViewIndex.build(path, findings=found, predictions=predictions)
    loopback = host in LOOPBACK_NAMES
    if not loopback:
        log.warning("cvft view listens on %s: anyone who can reach this machine sees the dataset", host)
    server = make_server(host, port, create_app(index, loopback_only=loopback), threaded=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)   # one line per request is noise on a terminal
    url = f"http://{'127.0.0.1' if loopback else host}:{server.server_port}/"
    log.info("cvft view: %d images at %s (Ctrl-C to stop)", len(index.entries), url)
    if ready is not None:
        ready(url, server)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
