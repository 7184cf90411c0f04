"""A mock of AWS Bedrock (Converse) and SageMaker Runtime that holds the gateway to AWS's own
rules rather than to the gateway's code.

- Every request's SigV4 signature is recomputed with botocore (AWS's own Python signer) from the
  request as received; a mismatch is refused as AWS refuses it (403 `InvalidSignatureException`).
- Streams are framed here, from the published event-stream format (prelude, headers, payload, both
  CRC32s), and every frame is decoded with botocore's own event-stream parser before it is sent, so
  the bytes are ones AWS's SDKs accept.
"""

import json
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$")


def frame(headers, payload):
    """One event-stream message, built from the format's description."""
    encoded = b""
    for name, value in headers.items():
        value = value.encode()
        encoded += bytes([len(name)]) + name.encode() + b"\x07" + len(value).to_bytes(2, "big") + value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = total.to_bytes(4, "big") + len(encoded).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + encoded + payload
    message += zlib.crc32(message).to_bytes(4, "big")
    # AWS's own decoder must read it back exactly.
    buffer = EventStreamBuffer()
    buffer.add_data(message)
    decoded = list(buffer)
    assert len(decoded) == 1 and decoded[0].payload == payload, "botocore does not read this frame"
    assert {k: v for k, v in decoded[0].headers.items()} == headers
    return message


def event(kind, body):
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"}, json.dumps(body).encode())


class AwsMock:
    """Serves on 127.0.0.1 (a free port) in a thread; `verified` counts good signatures."""

    def __init__(self, access_key, secret_key, session_token=None):
        self.credentials = Credentials(access_key, secret_key, session_token)
        self.verified = 0
        self.refused = []
        self.requests = []
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                mock.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def shutdown(self):
        self.server.shutdown()

    # --- SigV4, recomputed by botocore -------------------------------------------------------
    def check_signature(self, handler, body):
        """`None` when the signature is AWS-valid, else why not."""
        header = handler.headers.get("authorization", "")
        match = AUTH.match(header)
        if not match:
            return "no SigV4 Authorization header"
        access_key, date, region, service, signed, signature = match.groups()
        if access_key != self.credentials.access_key:
            return f"unknown access key {access_key}"
        amz_date = handler.headers.get("x-amz-date", "")
        if not amz_date.startswith(date):
            return "x-amz-date does not match the credential scope's date"
        names = signed.split(";")
        if "host" not in names:
            return "the host header is not signed"
        if self.credentials.token and "x-amz-security-token" not in names:
            return "the session token is not signed"
        # The request as received: its path exactly as sent, and only the headers it signed.
        request = AWSRequest(
            method=handler.command,
            url=f"http://{handler.headers['host']}{handler.path}",
            data=body,
            headers={name: handler.headers[name] for name in names},
        )
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(self.credentials, service, region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if signer.signed_headers(signer.headers_to_sign(request)) != signed:
            return f"signed headers {signed} are not the canonical list"
        if expected != signature:
            return "The request signature we calculated does not match the signature you provided."
        return None

    # --- routing -----------------------------------------------------------------------------
    def handle(self, handler):
        body = handler.rfile.read(int(handler.headers.get("content-length", "0")))
        self.requests.append((handler.path, dict(handler.headers), body))
        why = self.check_signature(handler, body)
        if why is not None:
            self.refused.append(why)
            return self.error(handler, 403, "InvalidSignatureException", why)
        self.verified += 1
        path = handler.path.split("?")[0]
        request = json.loads(body or b"{}")
        if m := re.fullmatch(r"/model/([^/]+)/converse(-stream)?", path):
            return self.converse(handler, request, m.group(1), bool(m.group(2)))
        if m := re.fullmatch(r"/endpoints/([^/]+)/invocations(-response-stream)?", path):
            return self.sagemaker(handler, request, m.group(1), bool(m.group(2)))
        return self.error(handler, 404, "UnknownOperationException", f"no route {path}")

    def error(self, handler, status, kind, message):
        data = json.dumps({"message": message}).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("x-amzn-errortype", kind)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def json(self, handler, value):
        data = json.dumps(value).encode()
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def stream(self, handler, frames):
        handler.send_response(200)
        handler.send_header("content-type", "application/vnd.amazon.eventstream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        for f in frames:
            handler.wfile.write(f"{len(f):x}\r\n".encode() + f + b"\r\n")
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")

    # --- Bedrock Converse --------------------------------------------------------------------
    def converse(self, handler, request, model, streaming):
        words = ["independent ", "reply ", "from ", "aws"]
        usage = {"inputTokens": 11, "outputTokens": len(words), "totalTokens": 11 + len(words)}
        if not streaming:
            return self.json(handler, {
                "output": {"message": {"role": "assistant", "content": [{"text": "".join(words)}]}},
                "stopReason": "end_turn", "usage": usage, "metrics": {"latencyMs": 3},
            })
        frames = [event("messageStart", {"role": "assistant"})]
        frames += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}) for w in words]
        frames += [
            event("contentBlockStop", {"contentBlockIndex": 0}),
            event("messageStop", {"stopReason": "end_turn"}),
            event("metadata", {"usage": usage, "metrics": {"latencyMs": 3}}),
        ]
        if "crc-flip" in model:
            # One message whose final checksum is wrong: a reader must refuse it.
            bad = bytearray(frames[1])
            bad[-1] ^= 0x01
            frames[1] = bytes(bad)
        self.stream(handler, frames)

    # --- SageMaker, an OpenAI-format container --------------------------------------------------
    def sagemaker(self, handler, request, endpoint, streaming):
        text = "independent sagemaker reply"
        if not streaming:
            return self.json(handler, {
                "id": "chatcmpl-aws", "object": "chat.completion", "created": 1, "model": request.get("model", "m"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            })
        sse = b""
        for word in text.split(" "):
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
            sse += b"data: " + json.dumps(chunk).encode() + b"\n\n"
        final = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
        sse += b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n"
        # The SSE bytes cut at arbitrary places, each piece one PayloadPart message.
        pieces = [sse[i:i + 37] for i in range(0, len(sse), 37)]
        frames = [frame({":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"}, p) for p in pieces]
        self.stream(handler, frames)


class S3Mock:
    """An S3-compatible bucket service on 127.0.0.1 (path-style URLs: /BUCKET/KEY) that checks
    every request's SigV4 signature as S3 does: botocore's S3 signer, over the path as sent and
    the payload hash the request declares in x-amz-content-sha256, which must be the body's.
    `objects` holds what was PUT; `refuse_writes` makes PUTs fail as a full or locked bucket."""

    def __init__(self, access_key, secret_key):
        import hashlib

        from botocore.auth import S3SigV4Auth

        self.credentials = Credentials(access_key, secret_key)
        self.objects = {}
        self.verified = 0
        self.refused = []
        self.refuse_writes = False
        mock = self

        def check(handler, body):
            match = AUTH.match(handler.headers.get("authorization", ""))
            if not match:
                return "no SigV4 Authorization header"
            access, date, region, service, signed, signature = match.groups()
            if access != mock.credentials.access_key or service != "s3":
                return f"not signed for S3 with the bucket's key ({access}, {service})"
            if handler.headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
                return "x-amz-content-sha256 is not the body's hash"
            names = signed.split(";")
            if not {"host", "x-amz-content-sha256", "x-amz-date"} <= set(names):
                return f"{signed} leaves out a header S3 requires signed"
            request = AWSRequest(method=handler.command, url=f"http://{handler.headers['host']}{handler.path}",
                                 data=body, headers={name: handler.headers[name] for name in names})
            request.context["timestamp"] = handler.headers["x-amz-date"]
            signer = S3SigV4Auth(mock.credentials, "s3", region)
            expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
            return None if expected == signature else "SignatureDoesNotMatch"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status, body=b"", content_type="application/xml"):
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def serve(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                why = check(self, body)
                if why:
                    mock.refused.append(why)
                    return self.answer(403, f"<Error><Code>AccessDenied</Code><Message>{why}</Message></Error>".encode())
                mock.verified += 1
                bucket, _, key = self.path.lstrip("/").partition("/")
                if self.command == "PUT":
                    if mock.refuse_writes:
                        return self.answer(503, b"<Error><Code>SlowDown</Code></Error>")
                    mock.objects[(bucket, key)] = (self.headers.get("content-type"), body)
                    return self.answer(200)
                found = mock.objects.get((bucket, key))
                if found is None:
                    return self.answer(404, b"<Error><Code>NoSuchKey</Code></Error>")
                return self.answer(200, found[1], found[0] or "application/octet-stream")

            do_PUT = serve
            do_GET = serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def shutdown(self):
        self.server.shutdown()
