// Validates Prometheus Operator objects (ServiceMonitor, PodMonitor, PrometheusRule) against
// the schemas of the operator's CRDs, as published in @kubernetes-models/prometheus-operator.
// Reads a JSON array of objects on stdin; prints one line per invalid object and exits 1 if
// there is any. kubernetes-validate has no schemas for custom resources; this fills that gap.
import { readFileSync } from "node:fs";
import { PodMonitor, PrometheusRule, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = { ServiceMonitor, PodMonitor, PrometheusRule };
const docs = JSON.parse(readFileSync(0, "utf8"));
let invalid = 0;
for (const doc of docs) {
  const Model = models[doc.kind];
  const name = `${doc.kind} ${doc.metadata?.name}`;
  if (doc.apiVersion !== "monitoring.coreos.com/v1" || !Model) {
    console.log(`${name}: not a monitoring.coreos.com/v1 kind this checks (${doc.apiVersion})`);
    invalid++;
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (e) {
    console.log(`${name}: ${e.message}`);
    invalid++;
  }
}
process.exit(invalid ? 1 : 0);
