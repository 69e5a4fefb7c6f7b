"""A webhook receiver for the end-to-end test: verifies X-PromptJang-Signature exactly as the FAQ's
verify_signature does (the secret is read from the file named by argv[1]), answers 200 when valid and 401 otherwise, and appends one JSON line per request
to the file named by argv[2]. Prints its port on the first line. Stops after argv[3] seconds."""
import hashlib
import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET_FILE = sys.argv[1]  # read per request: the endpoint (and its secret) is created after the receiver
LOG = sys.argv[2]
LIFETIME = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0


def verify_signature(payload_body, signature_header, secret):
    expected = hmac.new(
        secret.encode(),
        payload_body,
        hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, signature_header)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(SECRET_FILE) as f:
            secret = f.read().strip()
        valid = verify_signature(body, self.headers.get("X-PromptJang-Signature", ""), secret)
        with open(LOG, "a") as log:
            log.write(json.dumps({
                "valid": valid,
                "event_id": self.headers.get("X-PromptJang-Event-Id"),
                "attempt": self.headers.get("X-PromptJang-Attempt"),
                "webhook_id": self.headers.get("webhook-id"),
                "webhook_timestamp": self.headers.get("webhook-timestamp"),
                "webhook_signature": self.headers.get("webhook-signature"),
                "body": body.decode("utf-8"),
            }) + "\n")
        self.send_response(200 if valid else 401)
        self.end_headers()
        self.wfile.write(b"OK" if valid else b"bad signature")

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
threading.Timer(LIFETIME, server.shutdown).start()
server.serve_forever()
