"""A threaded static-file HTTP server on 127.0.0.1 with Range support and fault injection (for GDAL reads).

``RangeServer(root, fail_every=3, fail_budget=20)`` answers 503 to every third range request until it has
failed 20 times, but never more than ``max_retries_failed`` (2) times to the same request (path and range):
with concurrent readers a request's retries could otherwise keep landing on every third request and exhaust
any retry count, which made the test depend on thread timing. ``broken={"a/b.tif"}`` answers 503 to every
request for those paths, for ever. ``cut={"a/b.tif": 4096}`` answers every request for those paths with the
full ``Content-Length`` but sends at most that many bytes of the body, then closes the connection (a body cut
off mid-transfer). ``requests`` and ``failures`` count what it received and refused.

The server runs in a child process (this file run as a script), never in the test's own process: rasterio
calls some GDAL functions while holding the GIL (``DatasetReader.read`` asks ``GDALGetMaskFlags``, which in
GTiff reads the IFDs after the first one lazily), and when those bytes are no longer in GDAL's /vsicurl cache
GDAL fetches them over HTTP with the GIL held. A server whose threads need that GIL to accept and answer can
then never reply: the read waits ``GDAL_HTTP_TIMEOUT`` (60 s) per try, for every try (seen: a composite test
hanging for minutes with a request unread in the server's socket). The listening socket is bound here, so
``url`` is known at once, and handed to the child; ``log``, ``timeline`` and the counters are asked of the
child over a pipe while it runs, and kept as they were at exit afterwards. Its exit also closes every
keep-alive connection, so no connection outlives the server.
"""

from __future__ import annotations

import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: What the child reports, by attribute name.
_STATS = ("log", "timeline", "requests", "range_requests", "failures", "bytes_sent")


class RangeServer:
    """Serves the files under ``root`` at ``url`` (HEAD and GET, single ``bytes=a-b`` ranges), from a child
    process started by ``with``."""

    log: list[tuple[str, int, int]]  #: (path relative to root, first byte, last byte) of every range answered
    timeline: list[tuple[float, float, str, str]]  #: (start, end, method, Range) of every request (monotonic s)
    requests: int
    range_requests: int
    failures: int
    bytes_sent: int

    def __init__(self, root: Path, fail_every: int = 0, fail_budget: int = 0, broken: set[str] | None = None,
                 max_retries_failed: int = 2, latency: float = 0.0, cut: dict[str, int] | None = None) -> None:
        self.root = Path(root).resolve()
        self.cut = dict(cut or {})
        self.latency = latency  # seconds added to every request, as a distant bucket would
        self.fail_every, self.fail_budget, self.broken = fail_every, fail_budget, set(broken or ())
        self.max_retries_failed = max_retries_failed
        self._socket: socket.socket | None = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._process: subprocess.Popen | None = None
        self._final: dict[str, Any] | None = None
        self._pipe_lock = threading.Lock()

    def href(self, path: Path) -> str:
        """The URL of a file under ``root``."""
        return f"{self.url}/{urllib.parse.quote(str(Path(path).resolve().relative_to(self.root)))}"

    def __enter__(self) -> RangeServer:
        config = {"root": str(self.root), "fd": self._socket.fileno(), "cut": self.cut, "latency": self.latency,
                  "fail_every": self.fail_every, "fail_budget": self.fail_budget, "broken": sorted(self.broken),
                  "max_retries_failed": self.max_retries_failed}
        self._process = subprocess.Popen([sys.executable, "-I", __file__, json.dumps(config)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                         pass_fds=(self._socket.fileno(),))
        self._socket.close()  # the child's copy listens; when it exits, connecting is refused, not left waiting
        self._socket = None
        if self._process.stdout.readline().strip() != "ready":
            self._process.kill()
            raise RuntimeError(f"range server did not start (exit code {self._process.wait()})")
        return self

    def __exit__(self, *exc) -> None:
        if self._process is None:
            return
        try:
            self._final = {name: self._ask(name) for name in _STATS}
        finally:
            self._process.stdin.close()  # the child stops serving and exits, closing every connection
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process.stdout.close()

    def _ask(self, name: str) -> Any:
        with self._pipe_lock:
            self._process.stdin.write(name + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"range server at {self.url} exited (code {self._process.poll()})")
        value = json.loads(line)
        return [tuple(entry) for entry in value] if isinstance(value, list) else value

    def __getattr__(self, name: str) -> Any:  # only for names not set in __init__: the child's figures
        if name not in _STATS:
            raise AttributeError(name)
        if self._final is not None:
            return self._final[name]
        if self.__dict__.get("_process") is None:
            return [] if name in ("log", "timeline") else 0  # not started yet
        return self._ask(name)


class _Serving:
    """The server itself, in the child process: answers on the listening socket it was handed."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.root = Path(config["root"])
        self.cut = dict(config["cut"])
        self.latency = config["latency"]
        self.fail_every, self.fail_budget = config["fail_every"], config["fail_budget"]
        self.broken = set(config["broken"])
        self.max_retries_failed = config["max_retries_failed"]
        self.bytes_sent = 0
        self.log: list[tuple[str, int, int]] = []
        self.timeline: list[tuple[float, float, str, str]] = []
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

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.socket.close()
        self.server.socket = socket.socket(fileno=config["fd"])  # bound and listening in the parent
        self.server.server_address = self.server.socket.getsockname()

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

    def run(self) -> None:
        """Serve until stdin closes; answer each line naming one of ``_STATS`` with its value (a JSON line)."""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        print("ready", flush=True)
        for line in sys.stdin:
            name = line.strip()
            with self._lock:
                value = json.dumps(getattr(self, name) if name in _STATS else None)
            print(value, flush=True)
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    _Serving(json.loads(sys.argv[1])).run()
