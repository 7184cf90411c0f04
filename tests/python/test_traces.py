"""Trace export against the reference implementations of the wire formats: a collector built on
grpcio and the OpenTelemetry protobuf definitions receives OTLP/gRPC (the default, as in the
TensorZero Gateway) from an edge and a relay, and OTLP/HTTP protobuf from a gateway; the
TensorZero client's `otlp_traces_extra_*` arguments reach the edge's spans and exports."""

import http.server
import json
import threading
import time
import urllib.request
from concurrent import futures

import grpc
import openai
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from tensorzero import TensorZeroGateway

from conftest import start_gateway

MODEL = """
[models.mock]
routing = ["openai"]
[models.mock.providers.openai]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "traced-model"
api_key_location = "none"
"""

EXPORT = """
[gateway.export.otlp.traces]
enabled = true
extra_headers = { "x-collector-token" = "configured" }
"""


class GrpcCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps each export with its request metadata."""

    def __init__(self, fail_with=None):
        self.exports = []
        self.fail_with = fail_with
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def Export(self, request, context):  # noqa: N802 (the gRPC method's name)
        if self.fail_with is not None:
            context.abort(self.fail_with, "the collector is full")
        with self.lock:
            self.exports.append((dict(context.invocation_metadata()), request))
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self):
        with self.lock:
            return [
                (metadata, resource_spans.resource, span)
                for metadata, request in self.exports
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ]

    def wait_for_spans(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.spans()
            if len(spans) >= n:
                return spans
            time.sleep(0.05)
        return self.spans()

    def stop(self):
        self.server.stop(grace=None)


def attributes(message):
    """A span's or resource's attributes as a dict of Python values."""
    out = {}
    for kv in message.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind)
    return out


@pytest.fixture
def collector():
    c = GrpcCollector()
    yield c
    c.stop()


def test_edge_and_relay_export_one_trace_over_grpc(collector, mock_provider, tmp_path):
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint}
    relay_cfg = tmp_path / "relay.toml"
    relay_cfg.write_text(
        EXPORT
        + "[rate_limiting]\nbackend = \"memory\"\n[[rate_limiting.rules]]\nalways = true\nmodel_inferences_per_hour = 1000\n"
        + MODEL.replace("MOCK", mock_provider)
    )
    (tmp_path / "relay").mkdir()
    relay, relay_addr = start_gateway(relay_cfg, tmp_path / "relay", env)
    edge_cfg = tmp_path / "edge.toml"
    edge_cfg.write_text(EXPORT + f'[gateway.relay]\ngateway_url = "http://{relay_addr}"\n' + MODEL.replace("MOCK", "127.0.0.1:9"))
    (tmp_path / "edge").mkdir()
    edge, edge_addr = start_gateway(edge_cfg, tmp_path / "edge", env)
    try:
        with TensorZeroGateway.build_http(gateway_url=f"http://{edge_addr}") as client:
            response = client.inference(
                model_name="mock",
                input={"messages": [{"role": "user", "content": "a secret prompt"}]},
                otlp_traces_extra_headers={"x-tenant": "acme"},
                otlp_traces_extra_attributes={"user.id": "u-42"},
                otlp_traces_extra_resources={"deployment.environment": "staging"},
            )
        assert response.content[0].text

        spans = collector.wait_for_spans(5)
        assert len(spans) == 5, spans
        assert len({span.trace_id for _, _, span in spans}) == 1
        by_id = {span.span_id: (metadata, resource, span) for metadata, resource, span in spans}
        server = [s for _, _, s in spans if s.kind == s.SPAN_KIND_SERVER]
        assert len(server) == 2
        # The edge's request span has no parent here; everything else hangs below it.
        (edge_request,) = [s for s in server if not s.parent_span_id]
        edge_call = next(s for _, _, s in spans if s.parent_span_id == edge_request.span_id)
        relay_request = next(s for _, _, s in spans if s.parent_span_id == edge_call.span_id)
        assert relay_request.kind == relay_request.SPAN_KIND_SERVER
        children = sorted(s.name for _, _, s in spans if s.parent_span_id == relay_request.span_id)
        assert children == ["chat mock (openai)", "rate_limit"]
        assert attributes(edge_call)["gen_ai.provider.name"] == "tensorzero::relay"
        assert attributes(edge_request)["gen_ai.request.model"] == "mock"
        assert attributes(edge_request)["gen_ai.usage.output_tokens"] > 0
        assert edge_request.status.code == edge_request.status.STATUS_CODE_OK
        assert edge_request.end_time_unix_nano > edge_request.start_time_unix_nano > 0

        # The client's extras: on the edge's spans and exports only (the edge does not pass them
        # on to the relay), the request's header beside the configured one.
        edge_side = [by_id[s.span_id] for s in (edge_request, edge_call)]
        for metadata, resource, span in edge_side:
            assert metadata["x-tenant"] == "acme"
            assert metadata["x-collector-token"] == "configured"
            assert attributes(span)["user.id"] == "u-42"
            assert attributes(resource)["deployment.environment"] == "staging"
            assert attributes(resource)["service.name"] == "switchyard"
        metadata, resource, span = by_id[relay_request.span_id]
        assert "x-tenant" not in metadata and metadata["x-collector-token"] == "configured"
        assert "user.id" not in attributes(span)
        assert "deployment.environment" not in attributes(resource)
        assert not any(b"a secret prompt" in request.SerializeToString() for _, request in collector.exports)
    finally:
        edge.stop()
        relay.stop()


def test_a_collector_that_refuses_is_logged_with_its_grpc_status_and_counted(mock_provider, tmp_path):
    refusing = GrpcCollector(fail_with=grpc.StatusCode.RESOURCE_EXHAUSTED)
    config = tmp_path / "tensorzero.toml"
    config.write_text(EXPORT + MODEL.replace("MOCK", mock_provider))
    gateway, addr = start_gateway(config, tmp_path, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": refusing.endpoint})
    try:
        client = openai.OpenAI(base_url=f"http://{addr}/openai/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="tensorzero::model_name::mock", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        # RESOURCE_EXHAUSTED is gRPC status 8; the request itself was not affected.
        gateway.wait_for(r"OTLP trace export failed[^\n]*gRPC status 8: the collector is full")
        metrics = urllib.request.urlopen(f"http://{addr}/metrics").read().decode()
        assert 'switchyard_otlp_exports_total{outcome="error"}' in metrics
    finally:
        gateway.stop()
        refusing.stop()


class ProtobufCollector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP receiver that decodes protobuf bodies with the reference definitions."""

    def __init__(self):
        self.exports = []

        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                collector.exports.append(
                    (self.path, self.headers["content-type"], trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                )
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_otlp_http_with_protobuf_bodies(mock_provider, tmp_path):
    collector = ProtobufCollector()
    config = tmp_path / "tensorzero.toml"
    config.write_text(EXPORT.replace("enabled = true", 'enabled = true\nformat = "openinference"') + MODEL.replace("MOCK", mock_provider))
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{collector.server_port}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    }
    gateway, addr = start_gateway(config, tmp_path, env)
    try:
        trace_id = "0af7651916cd43dd8448eb211c80319c"
        client = openai.OpenAI(base_url=f"http://{addr}/openai/v1", api_key="unused", max_retries=0)
        client.chat.completions.create(
            model="tensorzero::model_name::mock",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        )
        # The request's span and its provider call's may be flushed in one export or two.
        def all_spans():
            return [s for _, _, request in list(collector.exports) for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(all_spans()) < 2:
            time.sleep(0.05)
        assert collector.exports, "nothing was exported"
        for path, content_type, _ in collector.exports:
            assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
        spans = all_spans()
        assert {s.trace_id.hex() for s in spans} == {trace_id}
        call = next(s for s in spans if s.kind == s.SPAN_KIND_CLIENT)
        assert attributes(call)["openinference.span.kind"] == "LLM"
        assert attributes(call)["llm.model_name"] == "mock"
        request_span = next(s for s in spans if s.kind == s.SPAN_KIND_SERVER)
        assert request_span.parent_span_id.hex() == "b7ad6b7169203331"
        assert attributes(request_span)["llm.token_count.completion"] > 0
        assert attributes(request_span)["http.response.status_code"] == 200
    finally:
        gateway.stop()
        collector.shutdown()


def test_an_unknown_protocol_stops_start_up_with_the_fix(tmp_path):
    config = tmp_path / "tensorzero.toml"
    config.write_text(EXPORT)
    with pytest.raises(RuntimeError, match=r"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL is `zipkin`; use `grpc`"):
        start_gateway(
            config,
            tmp_path,
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "zipkin"},
        )


def test_the_metrics_endpoint_counts_successful_exports(collector, mock_provider, tmp_path):
    config = tmp_path / "tensorzero.toml"
    config.write_text(EXPORT + MODEL.replace("MOCK", mock_provider))
    gateway, addr = start_gateway(config, tmp_path, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.endpoint})
    try:
        request = urllib.request.Request(
            f"http://{addr}/inference",
            data=json.dumps({"model_name": "mock", "input": {"messages": [{"role": "user", "content": "hi"}]}}).encode(),
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(request).read()
        assert len(collector.wait_for_spans(2)) == 2
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            metrics = urllib.request.urlopen(f"http://{addr}/metrics").read().decode()
            if 'switchyard_otlp_exports_total{outcome="ok"} 1' in metrics:
                break
            time.sleep(0.1)
        assert 'switchyard_otlp_exports_total{outcome="ok"} 1' in metrics
    finally:
        gateway.stop()
