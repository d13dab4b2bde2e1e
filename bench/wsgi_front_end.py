"""`python -m bench.wsgi_front_end FLAGS...`: `python -m server FLAGS...` with the REST app under granian's WSGI
interface, the front end this server had before it read each body on the event loop (server/rest/rsgi.py).

For bench.front_end_ab only: it tells the cost of the front end from the cost of the handlers (same tree, same
app, same flags, another interface). Not for serving: under WSGI a request takes the worker's handler thread
before its body has arrived, so one client that sends headers and then waits stops all REST traffic.
"""
from __future__ import annotations

import sys

from server import cli, http_server


def main(argv: list[str] | None = None) -> int:
    serve = http_server.serve
    http_server.serve = lambda options: serve(options, interface="wsgi")   # cli.main imports it when it serves
    return cli.main(argv, prog="python -m bench.wsgi_front_end")


if __name__ == "__main__":
    sys.exit(main())
