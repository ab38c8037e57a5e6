#!/usr/bin/env python3
"""Receive execvisor's pushed reports for the integration tests.

An HTTP server on 127.0.0.1 or on a unix socket that appends the body of
each POST it accepts to a file, one JSON document a line, in the order of
its responses. Options make it fail the first requests with 503 or
answer each request late, so that the tests can check retries and that a
slow receiver delays nothing else. It exits by itself after --max-seconds,
so that it never outlives a test that forgot it.

Standard library only, because the tests run on a fresh Debian host.
"""

import argparse
import json
import os
import signal
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Larger bodies are rejected: a report is a few hundred bytes.
MAX_BODY_SIZE = 1024 * 1024


class Recorder:
    """Counts requests and appends accepted bodies to the records file."""

    def __init__(self, records_path, access_log_path, fail_first, delay, expect_path):
        self.records_path = records_path
        self.access_log_path = access_log_path
        self.fail_first = fail_first
        self.delay = delay
        self.expect_path = expect_path
        self.lock = threading.Lock()
        self.requests = 0

    def next_request_number(self):
        with self.lock:
            self.requests += 1
            return self.requests

    def record(self, document):
        line = json.dumps(document, separators=(",", ":"), sort_keys=True)
        with self.lock:
            with open(self.records_path, "a", encoding="utf-8") as records:
                records.write(line + "\n")

    def log_access(self, number, method, path, status, note=""):
        if not self.access_log_path:
            return
        line = "%.3f #%d %s %s %d%s\n" % (
            time.time(), number, method, path, status, " " + note if note else "")
        with self.lock:
            with open(self.access_log_path, "a", encoding="utf-8") as access_log:
                access_log.write(line)


class ReportHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "execvisor-test-receiver"

    def address_string(self):
        # A unix socket peer has no address, which the default would index.
        if isinstance(self.client_address, tuple) and self.client_address:
            return str(self.client_address[0])
        return "unix"

    def log_message(self, format, *args):  # noqa: A002 (the base class names it so)
        pass

    def respond(self, status, body):
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                return self.read_chunked_body()
            return b""
        length = int(length)
        if length > MAX_BODY_SIZE:
            raise ValueError("body of %d bytes is larger than %d" % (length, MAX_BODY_SIZE))
        return self.rfile.read(length)

    def read_chunked_body(self):
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                self.rfile.readline()
                return body
            body += self.rfile.read(size)
            self.rfile.readline()
            if len(body) > MAX_BODY_SIZE:
                raise ValueError("chunked body larger than %d bytes" % MAX_BODY_SIZE)

    def do_POST(self):  # noqa: N802 (the base class dispatches on this name)
        recorder = self.server.recorder
        number = recorder.next_request_number()
        try:
            body = self.read_body()
        except ValueError as error:
            recorder.log_access(number, "POST", self.path, 413, str(error))
            self.close_connection = True
            self.respond(413, {"error": str(error)})
            return

        if recorder.delay > 0:
            time.sleep(recorder.delay)

        if recorder.expect_path and self.path != recorder.expect_path:
            recorder.log_access(number, "POST", self.path, 404)
            self.respond(404, {"error": "expected a POST to " + recorder.expect_path})
            return
        if number <= recorder.fail_first:
            recorder.log_access(number, "POST", self.path, 503, "(one of the first %d)" % recorder.fail_first)
            self.respond(503, {"error": "failing the first %d requests" % recorder.fail_first})
            return

        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            # Recorded all the same, so that the test can check what was sent.
            document = {"InvalidBody": body.decode("utf-8", "replace"), "ParseError": str(error)}
        recorder.record(document)
        recorder.log_access(number, "POST", self.path, 200)
        self.respond(200, {"received": number})

    def reject_method(self):
        recorder = self.server.recorder
        number = recorder.next_request_number()
        recorder.log_access(number, self.command, self.path, 405)
        self.close_connection = True
        self.send_response(405)
        self.send_header("Allow", "POST")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = reject_method  # noqa: N815
    do_PUT = reject_method  # noqa: N815
    do_DELETE = reject_method  # noqa: N815


class TCPReceiver(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class UnixReceiver(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def write_atomically(path, text):
    """Write text to path through a rename, so that a reader never sees part of it."""
    temporary = "%s.tmp.%d" % (path, os.getpid())
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.rename(temporary, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int,
                       help="TCP port on 127.0.0.1; 0 picks a free one (see --port-file)")
    where.add_argument("--unix", metavar="PATH", help="unix socket to listen on")
    parser.add_argument("--port-file", metavar="FILE",
                        help="file to write the port to once the server listens")
    parser.add_argument("--records", metavar="FILE", required=True,
                        help="file to append each accepted POST body to, one JSON line each")
    parser.add_argument("--access-log", metavar="FILE",
                        help="file to append one line per request to: time, number, method, path, status")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N",
                        help="answer the first N POSTs with 503 and record nothing of them")
    parser.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long before answering each POST")
    parser.add_argument("--expect-path", metavar="PATH",
                        help="answer POSTs to any other URL path with 404 and record nothing of them")
    parser.add_argument("--max-seconds", type=float, default=120.0, metavar="SECONDS",
                        help="exit after this long (default: 120, at most 600)")
    args = parser.parse_args(argv)
    if not 0 < args.max_seconds <= 600:
        parser.error("--max-seconds must be above 0 and at most 600")
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error("--port must be from 0 to 65535")
    if args.port_file and args.unix:
        parser.error("--port-file goes with --port, not --unix")
    if args.delay < 0 or args.fail_first < 0:
        parser.error("--delay and --fail-first must not be negative")
    return args


def make_server(args):
    if args.unix:
        if os.path.exists(args.unix) and not os.path.isdir(args.unix):
            os.unlink(args.unix)
        server = UnixReceiver(args.unix, ReportHandler)
    else:
        server = TCPReceiver(("127.0.0.1", args.port), ReportHandler)
    return server


def main(argv):
    args = parse_args(argv)
    # Created empty up front, so that the test can read it before the first report.
    open(args.records, "a", encoding="utf-8").close()

    server = make_server(args)
    server.recorder = Recorder(args.records, args.access_log, args.fail_first, args.delay,
                               args.expect_path)

    def stop(signal_number, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # SIGALRM ends serve_forever() in the main thread even while it waits.
    signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, args.max_seconds)

    if args.port_file:
        write_atomically(args.port_file, "%d\n" % server.server_address[1])
    print("receiver: listening on %s" % (args.unix or "127.0.0.1:%d" % server.server_address[1]),
          file=sys.stderr, flush=True)

    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        if args.unix:
            try:
                os.unlink(args.unix)
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
