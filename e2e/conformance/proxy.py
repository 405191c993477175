#!/usr/bin/env python3
"""A transparent loopback reverse proxy that adds a bearer token, for the MCP conformance suite.

The conformance suite's server runner sends no Authorization header and has no option
for one, while every request to fjmcp-broker's /mcp needs a bearer token. This proxy
sits between the two:

  suite --(http://localhost:PORT/mcp)--> proxy --(http://127.0.0.1:BROKER/mcp)--> broker

* Every request is forwarded with the same method, path and query, body and headers,
  in order. Only three things change: `Authorization` is replaced by
  `Bearer <token>`, hop-by-hop headers (Connection, Keep-Alive, Transfer-Encoding, TE,
  Upgrade, Proxy-*) are not forwarded, and a chunked request body is sent with a
  Content-Length.
* `Host` and `Origin` are forwarded VERBATIM, hostile or not. The proxy makes no
  decision about them: the broker must see exactly what the suite sent and reject a
  DNS-rebinding attempt itself. (run.sh tells the broker, through its
  FJMCP_ALLOWED_HOSTS / FJMCP_ALLOWED_ORIGINS settings, that the proxy's own loopback
  authority is a legitimate name of the deployment, as one would for any reverse proxy
  that preserves Host.)
* Responses come back with their status and headers (Mcp-Session-Id, WWW-Authenticate,
  ...) unchanged except hop-by-hop ones, and the body is streamed as it arrives:
  SSE events are flushed one read at a time, never buffered. A response without a
  Content-Length is re-framed as chunked.
* When the suite closes a streaming response, the proxy closes the upstream
  connection too, so the broker sees the cancellation the suite meant.

Standard library only. Listens on 127.0.0.1 and, when available, [::1] (same port),
so a `localhost` URL works whichever address the client resolves first. Prints
"proxy listening on PORT" on stdout once ready. The token is read from --token-file
on every request (never from the command line, never logged).

Usage: proxy.py --upstream http://127.0.0.1:BROKER --token-file FILE [--port 0]
                [--trace FILE]
"""

import argparse
import http.client
import http.server
import json
import select
import socket
import sys
import threading
import time
import urllib.parse

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
READ_SIZE = 64 * 1024
TRACE_BODY_LIMIT = 16 * 1024


class Tracer:
    """Optional JSON-lines record of each exchange (token redacted), for diagnosing failures."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8") if path else None

    def write(self, record):
        if self.file is None:
            return
        line = json.dumps(record, ensure_ascii=False)
        with self.lock:
            self.file.write(line + "\n")
            self.file.flush()


def client_went_away(sock, stop):
    """Blocks until the client's socket reaches EOF (True) or `stop` is set (False)."""
    while not stop.is_set():
        try:
            readable, _, _ = select.select([sock], [], [], 0.2)
        except (OSError, ValueError):
            return True
        if not readable:
            continue
        try:
            data = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        except OSError:
            return True
        if not data:
            return True
        # The client sent something (the next request on a kept-alive connection):
        # not a disconnect; stop watching rather than spin on a readable socket.
        return False
    return False


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fjmcp-conformance-proxy"

    # Every method the suite (or a curious person) may use.
    def do_GET(self):
        self.forward()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format, *args):
        sys.stderr.write("proxy: " + (format % args) + "\n")

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def forward(self):
        config = self.server.config
        started = time.monotonic()
        body = self.read_body()
        with open(config.token_file, encoding="utf-8") as f:
            token = f.read().strip()

        upstream = http.client.HTTPConnection(config.host, config.port, timeout=config.timeout)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            sent_headers = []
            for name, value in self.headers.items():
                lower = name.lower()
                if lower in HOP_BY_HOP or lower in ("authorization", "content-length"):
                    continue
                upstream.putheader(name, value)  # Host and Origin included, verbatim
                sent_headers.append([name, value])
            upstream.putheader("Authorization", "Bearer " + token)
            if body is not None:
                upstream.putheader("Content-Length", str(len(body)))
                sent_headers.append(["Content-Length", str(len(body))])
            upstream.endheaders(body)
            response = upstream.getresponse()
        except OSError as error:
            upstream.close()
            self.fail(502, f"upstream unreachable: {error}")
            return

        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "request": {
                "method": self.command,
                "path": self.path,
                "headers": sent_headers + [["Authorization", "Bearer <redacted>"]],
                "body": (body or b"")[:TRACE_BODY_LIMIT].decode("utf-8", "replace"),
            },
            "response": {
                "status": response.status,
                "headers": [[n, v] for n, v in response.getheaders()],
            },
        }
        captured = bytearray()
        try:
            self.relay(response, upstream, captured)
        finally:
            upstream.close()
            record["response"]["body"] = bytes(captured[:TRACE_BODY_LIMIT]).decode("utf-8", "replace")
            record["ms"] = int((time.monotonic() - started) * 1000)
            self.server.tracer.write(record)
            self.log_message(
                '"%s %s" Host=%s -> %d (%d ms)',
                self.command,
                self.path,
                self.headers.get("Host", "-"),
                response.status,
                record["ms"],
            )

    def relay(self, response, upstream, captured):
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        chunked = length is None and not no_body
        for name, value in response.getheaders():
            if name.lower() in HOP_BY_HOP:
                continue
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if no_body:
            return

        # While the body streams, watch the client: if it hangs up, hang up upstream.
        stop = threading.Event()

        def watch():
            if client_went_away(self.connection, stop):
                stop.set()
                try:
                    upstream.sock and upstream.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        watcher = threading.Thread(target=watch, daemon=True) if chunked else None
        if watcher:
            watcher.start()
        try:
            while True:
                try:
                    data = response.read1(READ_SIZE)
                except (OSError, http.client.HTTPException):
                    data = b""
                    self.close_connection = True
                if not data:
                    break
                if len(captured) < TRACE_BODY_LIMIT:
                    captured.extend(data)
                try:
                    if chunked:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    else:
                        self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True
                    return
            if chunked and not stop.is_set():
                try:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True
            elif stop.is_set():
                self.close_connection = True
        finally:
            stop.set()
            if watcher:
                watcher.join(1)

    def fail(self, status, message):
        body = json.dumps({"error": "proxy_error", "error_description": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False


class Server6(Server):
    address_family = socket.AF_INET6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the broker's base URL, http://127.0.0.1:PORT")
    parser.add_argument("--token-file", required=True, help="file holding the access token")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--timeout", type=float, default=600, help="upstream socket timeout, seconds")
    parser.add_argument("--trace", help="append one JSON line per exchange to this file")
    args = parser.parse_args()

    upstream = urllib.parse.urlsplit(args.upstream)
    if upstream.scheme != "http" or not upstream.hostname:
        parser.error("--upstream must be an http:// URL")
    config = argparse.Namespace(
        host=upstream.hostname,
        port=upstream.port or 80,
        token_file=args.token_file,
        timeout=args.timeout,
    )
    tracer = Tracer(args.trace)

    servers = [Server(("127.0.0.1", args.port), Handler)]
    port = servers[0].server_address[1]
    try:
        servers.append(Server6(("::1", port), Handler))
    except OSError as error:
        sys.stderr.write(f"proxy: not listening on [::1]:{port} ({error}); 127.0.0.1 only\n")
    for server in servers:
        server.config = config
        server.tracer = tracer
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    print(f"proxy listening on {port}", flush=True)
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
