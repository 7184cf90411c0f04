{{/*
Names and labels. The selector labels match what kustomize's base selects on
(app.kubernetes.io/name and part-of) plus the release, so two releases in one namespace do not
select each other's pods.
*/}}
{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchyard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "switchyard.component" -}}
{{- if eq .Values.role "relay" }}relay{{ else }}edge{{ end }}
{{- end }}

{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/part-of: switchyard
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "switchyard.labels" -}}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/component: {{ include "switchyard.component" . }}
app.kubernetes.io/version: {{ include "switchyard.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchyard.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "switchyard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "switchyard.imageTag" .) }}
{{- end }}
{{- end }}

{{- define "switchyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchyard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ConfigMap the gateway reads its tensorzero.toml from. */}}
{{- define "switchyard.configMapName" -}}
{{- if .Values.existingConfigMap }}
{{- .Values.existingConfigMap }}
{{- else if eq .Values.role "relay" }}
{{- printf "%s-config" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-edge-config" (include "switchyard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The configuration, checked at render time where a typed look at it can tell: it must be TOML,
an edge must name its relay, and API keys need the database that holds them.
*/}}
{{- define "switchyard.checkConfig" -}}
{{- if not .Values.existingConfigMap }}
{{- $config := fromToml .Values.config }}
{{- if hasKey $config "Error" }}
{{- fail (printf "values.config is not valid TOML: %s" $config.Error) }}
{{- end }}
{{- $gateway := default dict $config.gateway }}
{{- if and (eq .Values.role "edge-sidecar") (not (hasKey $gateway "relay")) }}
{{- fail "role edge-sidecar: values.config needs a [gateway.relay] table (gateway_url = the relay's Service, api_key_location = \"env::TENSORZERO_RELAY_API_KEY\"); the default config is the relay's" }}
{{- end }}
{{- $auth := default dict $gateway.auth }}
{{- if and (eq .Values.role "relay") $auth.enabled (not .Values.relay.postgresUrl.secretName) }}
{{- fail "values.config turns gateway.auth.enabled on, which keeps API keys in Postgres: set relay.postgresUrl.secretName (and secretKey) to the Secret with its URL" }}
{{- end }}
{{- if and (eq .Values.role "relay") $auth.enabled .Values.metrics.serviceMonitor.enabled (not .Values.metrics.port) (not .Values.metrics.serviceMonitor.authorization.secretName) }}
{{- fail "values.config turns gateway.auth.enabled on and metrics.port is 0, so /metrics on the API port needs an API key: set metrics.port (a port for Prometheus, no key) or metrics.serviceMonitor.authorization.secretName to a Secret holding one (switchyard --create-api-key --description prometheus)" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The shutdown budget: the kubelet must not kill a pod that is still draining. */}}
{{- define "switchyard.checkGracePeriod" -}}
{{- $r := .Values.relay }}
{{- $budget := add $r.preStopSleepSeconds $r.shutdownDelaySeconds $r.drainTimeoutSeconds }}
{{- if le (int $r.terminationGracePeriodSeconds) (int $budget) }}
{{- fail (printf "relay.terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + shutdownDelaySeconds + drainTimeoutSeconds (%v), or the kubelet kills streams that are still draining" $r.terminationGracePeriodSeconds $budget) }}
{{- end }}
{{- end }}

{{- define "switchyard.configChecksum" -}}
{{- if and .Values.rollOnConfigChange (not .Values.existingConfigMap) }}
checksum/config: {{ .Values.config | sha256sum }}
{{- end }}
{{- end }}

{{- define "switchyard.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/*
Edge sidecar: an app chart that depends on this chart (with role edge-sidecar) adds these to
its pod, passing this chart's context: `(index .Subcharts "switchyard")`. See
charts/examples/app-with-edge.
*/}}

{{/* Labels for the app's pod template: the relay's NetworkPolicy admits pods with them. */}}
{{- define "switchyard.edge.podLabels" -}}
switchyard.dev/edge: "true"
{{- end }}

{{/* Annotations for the app's pod template: its pods roll when the edge's config changes. */}}
{{- define "switchyard.edge.podAnnotations" -}}
{{- include "switchyard.configChecksum" . }}
{{- end }}

{{/*
The sidecar, as an entry of the pod's initContainers: a native sidecar (restartPolicy Always),
started before the app's containers and stopped after them, so the app's own drain can still
use it. It listens on localhost only, which HTTP probes (sent to the pod IP) cannot reach: the
binary probes itself.
*/}}
{{- define "switchyard.edge.initContainer" -}}
{{- $probe := printf "http://%s" .Values.edge.bindAddress -}}
- name: switchyard-edge
  image: {{ include "switchyard.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  restartPolicy: Always
  args:
    - --config-file
    - /app/switchyard/{{ .Values.configFileName }}
    - --bind-address
    - {{ .Values.edge.bindAddress }}
    - --log-format
    - {{ .Values.logFormat }}
    {{- if .Values.metrics.port }}
    # /metrics alone on the pod's address, for Prometheus (the API stays on localhost).
    - --metrics-bind-address
    - 0.0.0.0:{{ .Values.metrics.port }}
    {{- end }}
    {{- with .Values.extraArgs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if .Values.metrics.port }}
  ports:
    - name: edge-metrics
      containerPort: {{ .Values.metrics.port }}
      protocol: TCP
  {{- end }}
  env:
    - name: TENSORZERO_RELAY_API_KEY
      valueFrom:
        secretKeyRef:
          name: {{ .Values.edge.relayApiKey.secretName }}
          key: {{ .Values.edge.relayApiKey.secretKey }}
    - name: RUST_LOG
      value: {{ .Values.logLevel | quote }}
    - name: SWITCHYARD_DRAIN_TIMEOUT
      value: {{ .Values.edge.drainTimeoutSeconds | quote }}
    - name: SWITCHYARD_CONFIG_POLL_INTERVAL
      value: {{ .Values.configPollIntervalSeconds | quote }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  startupProbe:
    exec:
      command: ["/usr/local/bin/switchyard", "--probe", "{{ $probe }}/ready"]
    periodSeconds: 1
    failureThreshold: 30
  readinessProbe:
    exec:
      command: ["/usr/local/bin/switchyard", "--probe", "{{ $probe }}/ready"]
    periodSeconds: 10
    timeoutSeconds: 3
  livenessProbe:
    exec:
      command: ["/usr/local/bin/switchyard", "--probe", "{{ $probe }}/live"]
    periodSeconds: 20
    timeoutSeconds: 3
    failureThreshold: 3
  resources:
    {{- toYaml .Values.edge.resources | nindent 4 }}
  securityContext:
    {{- /* The app's pod may run as another user: the sidecar says who it runs as itself. */}}
    {{- $pod := pick .Values.podSecurityContext "runAsNonRoot" "runAsUser" "runAsGroup" "seccompProfile" }}
    {{- toYaml (merge (deepCopy .Values.securityContext) $pod) | nindent 4 }}
  volumeMounts:
    - name: switchyard-edge-config
      mountPath: /app/switchyard
      readOnly: true
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The sidecar's volume, as an entry of the pod's volumes. */}}
{{- define "switchyard.edge.volume" -}}
- name: switchyard-edge-config
  configMap:
    name: {{ include "switchyard.configMapName" . }}
{{- end }}
