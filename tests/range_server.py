"""A threaded static-file HTTP server on 127.0.0.1 with Range support and fault injection (for GDAL reads).

``RangeServer(root, fail_every=3, fail_budget=20)`` answers 503 to every third range request until it has
failed 20 times, but never more than ``max_retries_failed`` (2) times to the same request (path and range):
with concurrent readers a request's retries could otherwise keep landing on every third request and exhaust
any retry count, which made the test depend on thread timing. ``broken={"a/b.tif"}`` answers 503 to every
request for those paths, for ever. ``cut={"a/b.tif": 4096}`` answers every request for those paths with the
full ``Content-Length`` but sends at most that many bytes of the body, then closes the connection (a body cut
off mid-transfer). ``requests`` and ``failures`` count what it received and refused.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
import urllib.parse
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeServer:
    """Serves the files under ``root`` at ``url`` (HEAD and GET, single ``bytes=a-b`` ranges)."""

    def __init__(self, root: Path, fail_every: int = 0, fail_budget: int = 0, broken: set[str] | None = None,
                 max_retries_failed: int = 2, latency: float = 0.0, cut: dict[str, int] | None = None) -> None:
        self.root = Path(root).resolve()
        self.cut = dict(cut or {})
        self.latency = latency  # seconds added to every request, as a distant bucket would
        self.bytes_sent = 0
        #: (path relative to root, first byte, last byte) of every range answered, in order
        self.log: list[tuple[str, int, int]] = []
        #: (start, end, method, range header) of every request, monotonic seconds
        self.timeline: list[tuple[float, float, str, str]] = []
        self.fail_every, self.fail_budget, self.broken = fail_every, fail_budget, set(broken or ())
        self.max_retries_failed = max_retries_failed
        self._failed: dict[tuple[str, str], int] = {}
        self.requests = self.range_requests = self.failures = 0
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self._serve(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                started = time.monotonic()
                if server.latency:
                    time.sleep(server.latency)
                try:
                    self._answer(body)
                finally:
                    with server._lock:
                        server.timeline.append((started, time.monotonic(), self.command,
                                                self.headers.get("Range") or ""))

            def _answer(self, body: bool) -> None:
                rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
                self._cut = server.cut.get(rel)
                path = (server.root / rel).resolve()
                if server._should_fail(rel, self.headers.get("Range")):
                    return self._send(503, b"injected failure", body)
                if server.root not in path.parents or not path.is_file():
                    return self._send(404, b"not found", body)
                size = path.stat().st_size
                match = _RANGE.match(self.headers.get("Range") or "")
                if not match:
                    return self._send(200, path.read_bytes() if body else b"", body, length=size)
                start = int(match[1]) if match[1] else max(0, size - int(match[2] or 0))
                end = min(int(match[2]), size - 1) if match[1] and match[2] else size - 1
                if start >= size:
                    return self._send(416, b"", body, {"Content-Range": f"bytes */{size}"})
                with path.open("rb") as f:  # only the range, so big files cost what is asked for
                    f.seek(start)
                    data = f.read(end + 1 - start)
                if body:
                    with server._lock:
                        server.log.append((rel, start, end))
                self._send(206, data, body, {"Content-Range": f"bytes {start}-{end}/{size}"})

            def _send(self, status: int, payload: bytes, body: bool, headers: dict[str, str] | None = None,
                      length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload) if length is None else length))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "image/tiff" if status in (200, 206) else "text/plain")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if body and self._cut is not None and status in (200, 206):
                    self.wfile.write(payload[:self._cut])
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the body stops short of its Content-Length
                elif body:
                    self.wfile.write(payload)
                    with server._lock:
                        server.bytes_sent += len(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _should_fail(self, rel: str, range_header: str | None) -> bool:
        with self._lock:
            self.requests += 1
            if rel in self.broken:
                self.failures += 1
                return True
            if range_header:
                self.range_requests += 1
                key = (rel, range_header)
                if (self.fail_every and self.failures < self.fail_budget and self.range_requests % self.fail_every == 0
                        and self._failed.get(key, 0) < self.max_retries_failed):
                    self.failures += 1
                    self._failed[key] = self._failed.get(key, 0) + 1
                    return True
            return False

    def href(self, path: Path) -> str:
        """The URL of a file under ``root``."""
        return f"{self.url}/{urllib.parse.quote(str(Path(path).resolve().relative_to(self.root)))}"

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
