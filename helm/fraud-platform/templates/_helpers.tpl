{{/*
Names. Kubernetes names are DNS labels: at most 63 characters, so every name is truncated and loses a trailing "-".
*/}}
{{- define "fraud-platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fraud-platform.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's resource name: <fullname>-<component>, truncated as a whole so the suffix survives. */}}
{{- define "fraud-platform.componentName" -}}
{{- $full := include "fraud-platform.fullname" .ctx -}}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len .component)))) .component | trimSuffix "-" -}}
{{- end -}}

{{- define "fraud-platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels. Selector labels never change over a release's life (a Deployment's selector is immutable), so they hold
only name, instance and component; the full set adds chart, version and manager.
*/}}
{{- define "fraud-platform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fraud-platform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fraud-platform.labels" -}}
helm.sh/chart: {{ include "fraud-platform.chart" . }}
{{ include "fraud-platform.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fraud-platform
{{- end -}}

{{/* Usage: include "fraud-platform.componentSelectorLabels" (dict "ctx" $ "component" "minio") */}}
{{- define "fraud-platform.componentSelectorLabels" -}}
{{ include "fraud-platform.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "fraud-platform.componentLabels" -}}
{{ include "fraud-platform.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The project image reference. */}}
{{- define "fraud-platform.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
Pod Security Standard "restricted": non-root (UID 1000, the image's user), RuntimeDefault seccomp; in every
container no privilege escalation, no capabilities, read-only root filesystem (writable paths are emptyDirs).
*/}}
{{- define "fraud-platform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "fraud-platform.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod-level pull secrets; renders nothing without any. Usage: include ... . | nindent N, inside a `with`. */}}
{{- define "fraud-platform.imagePullSecrets" -}}
{{- if .Values.imagePullSecrets -}}
imagePullSecrets:
{{- range .Values.imagePullSecrets }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* Service names and in-cluster URLs (fully qualified: the pipeline steps run in another namespace). */}}
{{- define "fraud-platform.minioName" -}}
{{- include "fraud-platform.componentName" (dict "ctx" . "component" "minio") -}}
{{- end -}}

{{- define "fraud-platform.mlflowName" -}}
{{- include "fraud-platform.componentName" (dict "ctx" . "component" "mlflow") -}}
{{- end -}}

{{- define "fraud-platform.s3Url" -}}
{{- printf "http://%s.%s.svc.cluster.local:9000" (include "fraud-platform.minioName" .) .Release.Namespace -}}
{{- end -}}

{{- define "fraud-platform.mlflowUrl" -}}
{{- printf "http://%s.%s.svc.cluster.local:%d" (include "fraud-platform.mlflowName" .) .Release.Namespace (int .Values.mlflow.service.port) -}}
{{- end -}}

{{/* The Secret holding MinIO's root keys: the user's, or the one the chart generates. */}}
{{- define "fraud-platform.minioSecretName" -}}
{{- .Values.minio.auth.existingSecret | default (include "fraud-platform.minioName" .) -}}
{{- end -}}

{{/*
The stable predictor's Service as KServe names it: `<isvc>-predictor`, or `<isvc>-<variant>-predictor` once a
variant name is set (after a promotion).
*/}}
{{- define "fraud-platform.predictorServiceName" -}}
{{- $p := .Values.predictor -}}
{{- if $p.variantName -}}
{{- printf "%s-%s-predictor" $p.inferenceServiceName $p.variantName -}}
{{- else -}}
{{- printf "%s-predictor" $p.inferenceServiceName -}}
{{- end -}}
{{- end -}}

{{/* Whether any predictor variant loads its model through KServe's storage initializer. */}}
{{- define "fraud-platform.usesStorageInitializer" -}}
{{- $p := .Values.predictor -}}
{{- if or $p.model.storageUri (and $p.canary.enabled $p.canary.model.storageUri) -}}true{{- end -}}
{{- end -}}

{{/* The Secret KServe's storage initializer reads S3 keys from: the user's, or the one the chart creates. */}}
{{- define "fraud-platform.storageSecretName" -}}
{{- .Values.predictor.storage.existingSecret | default (include "fraud-platform.componentName" (dict "ctx" . "component" "storage")) -}}
{{- end -}}

{{- define "fraud-platform.canaryControllerName" -}}
{{- include "fraud-platform.componentName" (dict "ctx" . "component" "canary-controller") -}}
{{- end -}}

{{- define "fraud-platform.predictorServiceAccountName" -}}
{{- if .Values.predictor.serviceAccount.create -}}
{{- .Values.predictor.serviceAccount.name | default (include "fraud-platform.componentName" (dict "ctx" . "component" "predictor")) -}}
{{- else -}}
{{- .Values.predictor.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
Environment every S3 client of the chart gets: endpoint, region and MinIO's keys by reference (never by value).
*/}}
{{- define "fraud-platform.s3Env" -}}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ include "fraud-platform.s3Url" . | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.platform.region | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "fraud-platform.minioSecretName" . }}
      key: {{ .Values.minio.auth.userKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "fraud-platform.minioSecretName" . }}
      key: {{ .Values.minio.auth.passwordKey }}
{{- end -}}

{{/*
The predictor container, shared by the stable predictor and the canary.
Usage: include "fraud-platform.predictorContainer" (dict "ctx" $ "model" .Values.predictor.model)
*/}}
{{- define "fraud-platform.predictorContainer" -}}
{{- $ctx := .ctx -}}
- name: kserve-container
  image: {{ include "fraud-platform.image" $ctx }}
  imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
  command: ["python", "-m", "serving"]
  args: ["--model_name", {{ $ctx.Values.platform.modelName | quote }}, "--http_port", "8080"]
  ports:
    - containerPort: 8080
      protocol: TCP
  env:
    # The predictor binds 127.0.0.1 unless told otherwise; in a pod it must listen on the pod IP.
    - name: FRAUD_SERVE_HOST
      value: "0.0.0.0"
    # MLflow proxies the artifacts, so the predictor needs its URL only: no object-store keys.
    - name: MLFLOW_TRACKING_URI
      value: {{ include "fraud-platform.mlflowUrl" $ctx | quote }}
    - name: FRAUD_MODEL_NAME
      value: {{ $ctx.Values.platform.modelName | quote }}
    {{- if .model.version }}
    - name: FRAUD_MODEL_VERSION
      value: {{ .model.version | quote }}
    {{- else }}
    - name: FRAUD_MODEL_ALIAS
      value: {{ .model.alias | quote }}
    {{- end }}
    {{- with .model.storageUri }}
    # KServe reads a custom container's model location from STORAGE_URI: its storage initializer copies it into
    # /mnt/models, where the predictor finds and serves it (then the registry is not asked for the model).
    - name: STORAGE_URI
      value: {{ . | quote }}
    {{- end }}
    {{- range $name, $value := $ctx.Values.predictor.env }}
    - name: {{ $name }}
      value: {{ $value | quote }}
    {{- end }}
  resources:
    {{- toYaml $ctx.Values.predictor.resources | nindent 4 }}
  securityContext:
    {{- include "fraud-platform.containerSecurityContext" $ctx | nindent 4 }}
  # Loading the model (imports, registry download) takes tens of seconds: the startup probe covers it, then
  # liveness only checks the process answers and readiness that the model is loaded.
  startupProbe:
    httpGet: {path: /v2/health/live, port: 8080}
    periodSeconds: 5
    failureThreshold: 60
  livenessProbe:
    httpGet: {path: /v2/health/live, port: 8080}
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 3
  readinessProbe:
    httpGet: {path: /v2/health/ready, port: 8080}
    periodSeconds: 5
    timeoutSeconds: 3
    failureThreshold: 3
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{/* Pod-level fields of a KServe predictor spec (stable and canary alike). */}}
{{- define "fraud-platform.predictorPod" -}}
{{- $ctx := .ctx -}}
serviceAccountName: {{ include "fraud-platform.predictorServiceAccountName" $ctx }}
automountServiceAccountToken: false
# Longer than the predictor's own drain (FRAUD_SERVE_GRACE_PERIOD, 30 s) so in-flight requests finish on rollout.
terminationGracePeriodSeconds: 45
labels:
  {{- include "fraud-platform.componentLabels" (dict "ctx" $ctx "component" "predictor") | nindent 2 }}
securityContext:
  {{- include "fraud-platform.podSecurityContext" $ctx | nindent 2 }}
{{- with $ctx.Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- if include "fraud-platform.loggerEnabled" $ctx }}
logger:
  mode: {{ $ctx.Values.predictor.logger.mode }}
  url: {{ include "fraud-platform.loggerUrl" $ctx | quote }}
{{- end }}
containers:
  {{- include "fraud-platform.predictorContainer" (dict "ctx" $ctx "model" .model) | nindent 2 }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
{{- end -}}

{{/*
Monitoring (issue 15). The collector's name and in-cluster URL, and the payload logger KServe runs beside the
predictor: on when `predictor.logger.enabled` or `monitoring.enabled`; its URL is `predictor.logger.url` when
given, else the collector's Service (the Service port is the container port, so NetworkPolicies match on it).
*/}}
{{- define "fraud-platform.collectorName" -}}
{{- include "fraud-platform.componentName" (dict "ctx" . "component" "collector") -}}
{{- end -}}

{{- define "fraud-platform.collectorUrl" -}}
{{- printf "http://%s.%s.svc.cluster.local:%d/" (include "fraud-platform.collectorName" .) .Release.Namespace (int .Values.monitoring.collector.port) -}}
{{- end -}}

{{- define "fraud-platform.loggerEnabled" -}}
{{- if or .Values.predictor.logger.enabled .Values.monitoring.enabled -}}true{{- end -}}
{{- end -}}

{{- define "fraud-platform.loggerUrl" -}}
{{- .Values.predictor.logger.url | default (include "fraud-platform.collectorUrl" .) -}}
{{- end -}}

{{/* Environment of the monitoring's jobs (drift, daily report): object store, registry, served model, buckets. */}}
{{- define "fraud-platform.monitorJobEnv" -}}
{{ include "fraud-platform.s3Env" . }}
- name: MLFLOW_TRACKING_URI
  value: {{ include "fraud-platform.mlflowUrl" . | quote }}
- name: FRAUD_MODEL_NAME
  value: {{ .Values.platform.modelName | quote }}
- name: FRAUD_MODEL_ALIAS
  value: {{ .Values.predictor.model.alias | quote }}
- name: FRAUD_DATA_BUCKET
  value: {{ .Values.platform.buckets.data | quote }}
- name: FRAUD_MONITOR_LOG_BUCKET
  value: {{ .Values.monitoring.logBucket | quote }}
- name: FRAUD_MONITOR_ALPHA
  value: {{ .Values.monitoring.drift.alpha | quote }}
- name: FRAUD_MONITOR_LABEL_MATURITY_SECONDS
  value: {{ .Values.monitoring.labelMaturitySeconds | quote }}
{{- end -}}

{{/* The TCP port of an http(s) URL: the explicit one, else 80 or 443. */}}
{{- define "fraud-platform.urlPort" -}}
{{- $url := urlParse . -}}
{{- $hostPort := splitList ":" $url.host -}}
{{- ternary (last $hostPort) (ternary "443" "80" (eq $url.scheme "https")) (gt (len $hostPort) 1) -}}
{{- end -}}
