"""A webhook receiver for trying SLA Clock's webhooks locally (standard library only).

Listens on 127.0.0.1 (`--port`, default 8765), prints each delivery with its SLA-Delivery id and
whether its SLA-Signature verifies with `--secret` (or SLA_WEBHOOK_SECRET), and answers `--status`
(default 200; try 500 to watch the scanner retry the same delivery id).

    .venv/bin/python scripts/webhook_receiver.py --secret whsec-local-0123456789
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE = 300  # seconds a signature's timestamp may differ from now: an older one may be a replay


def verify(secret, header, body, now=None):
    """(ok, reason): does `header` (t=<unix>,v1=<hex>) sign `body` (bytes) with `secret`, recently?"""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp, given = int(fields["t"]), fields["v1"]
    except (KeyError, ValueError):
        return False, "no t=…,v1=… signature"
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        return False, "signature mismatch"
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > TOLERANCE:
        return False, f"signed {age:.0f} s ago"
    return True, "verified"


def handler(secret, status):
    class Receive(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ok, reason = verify(secret, self.headers.get("SLA-Signature", ""), body)
            try:
                event = json.loads(body)
            except ValueError:
                event = body.decode("utf-8", "replace")
            print(f"{'OK ' if ok else 'BAD'} {self.headers.get('SLA-Delivery')} ({reason}) -> {status}", flush=True)
            print("    " + json.dumps(event, ensure_ascii=False), flush=True)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass  # the lines above say it all

    return Receive


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--secret", default=os.environ.get("SLA_WEBHOOK_SECRET"),
                        help="the webhook's secret (default: $SLA_WEBHOOK_SECRET)")
    parser.add_argument("--status", type=int, default=200, help="the HTTP status to answer with")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("give the webhook's secret: --secret or SLA_WEBHOOK_SECRET")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(args.secret, args.status))
    print(f"receiving webhooks on http://127.0.0.1:{server.server_port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
