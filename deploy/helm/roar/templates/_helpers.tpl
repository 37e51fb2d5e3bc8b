{{/* Chart name, overridable; 63 chars because names are DNS labels. */}}
{{- define "roar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object-name prefix: the release name, plus the chart name unless the release contains it. */}}
{{- define "roar.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "roar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: what a selector matches; never a version or a custom label (selectors are immutable). Pass (dict "ctx" $ "component" "web"). */}}
{{- define "roar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roar.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* Every object's labels: selector labels plus descriptive ones. Same dict as roar.selectorLabels. */}}
{{- define "roar.labels" -}}
{{ include "roar.selectorLabels" . }}
app.kubernetes.io/part-of: roar
app.kubernetes.io/version: {{ include "roar.webTag" .ctx | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "roar.chart" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Name of the web ServiceAccount. */}}
{{- define "roar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-web" (include "roar.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "roar.webName" -}}{{ include "roar.fullname" . }}-web{{- end }}
{{- define "roar.dbName" -}}{{ include "roar.fullname" . }}-db{{- end }}
{{- define "roar.dbHeadlessName" -}}{{ include "roar.fullname" . }}-db-headless{{- end }}
{{- define "roar.dbConfigName" -}}{{ include "roar.fullname" . }}-db-config{{- end }}

{{/* The db credentials Secret: the user's existing one, or the chart's. */}}
{{- define "roar.dbSecretName" -}}
{{- default (printf "%s-db-credentials" (include "roar.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{/*
The db passwords, as JSON {"password", "root"}: the values given, else those of the Secret already
in the cluster (lookup, on upgrade), else random ones. Chosen once per render and memoized in the
render's own values: the Secret and every pod template's checksum/secret (which renders
secret.yaml again) must see the same random values, or the first upgrade would roll the db.
`helm template` (Argo CD) cannot look up: there each render draws new passwords, so GitOps
installs name a Secret made outside the chart (database.existingSecret; docs/helm.md).
*/}}
{{- define "roar.dbPasswords" -}}
{{- if not (hasKey .Values.database "_chosenPasswords") }}
{{- $existing := (lookup "v1" "Secret" .Release.Namespace (include "roar.dbSecretName" .)).data | default dict }}
{{- $password := .Values.database.password | default (get $existing "MYSQL_PASSWORD" | b64dec) | default (randAlphaNum 24) }}
{{- $root := .Values.database.rootPassword | default (get $existing "MYSQL_ROOT_PASSWORD" | b64dec) | default (randAlphaNum 24) }}
{{- $_ := set .Values.database "_chosenPasswords" (dict "password" $password "root" $root) }}
{{- end }}
{{- toJson .Values.database._chosenPasswords }}
{{- end }}

{{/* The db ClusterIP Service the web reaches through MYSQL_HOST (no service-link variables). */}}
{{- define "roar.dbServiceName" -}}
{{- default (printf "%s-mysql" (include "roar.fullname" .)) .Values.db.service.name }}
{{- end }}

{{/* Where web connects: the external host, or the bundled db's Service. */}}
{{- define "roar.dbHost" -}}
{{- if .Values.database.external.enabled }}
{{- .Values.database.external.host }}
{{- else }}
{{- include "roar.dbServiceName" . }}
{{- end }}
{{- end }}

{{- define "roar.dbPort" -}}
{{- if .Values.database.external.enabled }}{{ .Values.database.external.port }}{{ else }}3306{{ end }}
{{- end }}

{{- define "roar.webTag" -}}{{ .Values.image.tag | default .Chart.AppVersion }}{{- end }}
{{- define "roar.webImage" -}}{{ .Values.image.repository }}:{{ include "roar.webTag" . }}{{- end }}
{{- define "roar.dbImage" -}}{{ .Values.db.image.repository }}:{{ .Values.db.image.tag | default .Chart.AppVersion }}{{- end }}

{{/* The restricted Pod Security profile for one container, with a read-only root. */}}
{{- define "roar.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "roar.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* How web and its migrations reach the db: explicit host and port, credentials by reference. */}}
{{- define "roar.dbClientEnv" -}}
- name: MYSQL_HOST
  value: {{ include "roar.dbHost" . | quote }}
- name: MYSQL_TCP_PORT
  value: {{ include "roar.dbPort" . | quote }}
- name: MYSQL_DATABASE
  valueFrom:
    configMapKeyRef:
      name: {{ include "roar.dbConfigName" . }}
      key: MYSQL_DATABASE
- name: MYSQL_USER
  valueFrom:
    configMapKeyRef:
      name: {{ include "roar.dbConfigName" . }}
      key: MYSQL_USER
- name: MYSQL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "roar.dbSecretName" . }}
      key: MYSQL_PASSWORD
{{- end }}

{{/* Fails the render early with a message naming the value. */}}
{{- define "roar.validateValues" -}}
{{- $drain := int .Values.shutdown.drainSeconds }}
{{- $grace := int .Values.shutdown.graceSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add $drain $grace) }}
{{- fail (printf "VALUES VALIDATION: terminationGracePeriodSeconds (%d) must exceed shutdown.drainSeconds + shutdown.graceSeconds (%d)" (int .Values.terminationGracePeriodSeconds) (add $drain $grace)) }}
{{- end }}
{{- if and .Values.database.external.enabled (not .Values.database.external.host) }}
{{- fail "VALUES VALIDATION: database.external.host is required when database.external.enabled" }}
{{- end }}
{{- if and .Values.service.nodePort (eq .Values.service.type "ClusterIP") }}
{{- fail "VALUES VALIDATION: service.nodePort needs service.type NodePort or LoadBalancer" }}
{{- end }}
{{- if or (eq (include "roar.webTag" .) "latest") (eq (.Values.db.image.tag | default "x") "latest") }}
{{- fail "VALUES VALIDATION: pin image tags; `latest` is not allowed" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "VALUES VALIDATION: autoscaling.maxReplicas must be >= autoscaling.minReplicas" }}
{{- end }}
{{- end }}
