{{/*
Names and labels exactly as the reference chart renders them: an in-place upgrade keeps every object name, and the
Deployment's selector (immutable) stays the same.
*/}}

{{/* N: nameOverride or the chart name. */}}
{{- define "stackit-pod-identity-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* F: fullnameOverride; else the release name when it contains N, otherwise release-N; at most 63 characters. */}}
{{- define "stackit-pod-identity-webhook.fullname" -}}
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

{{/* The helm.sh/chart label: chart name and version. */}}
{{- define "stackit-pod-identity-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels of every object. */}}
{{- define "stackit-pod-identity-webhook.labels" -}}
helm.sh/chart: {{ include "stackit-pod-identity-webhook.chart" . }}
{{ include "stackit-pod-identity-webhook.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Deployment's selector (immutable: never add to it). */}}
{{- define "stackit-pod-identity-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stackit-pod-identity-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The webhook's ServiceAccount: serviceAccount.name, or F when that is empty. */}}
{{- define "stackit-pod-identity-webhook.serviceAccountName" -}}
{{- default (include "stackit-pod-identity-webhook.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The image: repository@digest when a digest is given, else repository:tag (tag defaults to appVersion). */}}
{{- define "stackit-pod-identity-webhook.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespaces both webhooks cover: not kube-system (webhook.excludeKubeSystem), not those labelled to opt out
(webhook.excludeOptedOutNamespaces). NotIn also matches namespaces without the label.
*/}}
{{- define "stackit-pod-identity-webhook.namespaceSelector" -}}
{{- if or .Values.webhook.excludeKubeSystem .Values.webhook.excludeOptedOutNamespaces -}}
namespaceSelector:
  matchExpressions:
    {{- if .Values.webhook.excludeKubeSystem }}
    # kube-system runs the control plane's own Pods; they must start even when this webhook is down.
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: ["kube-system"]
    {{- end }}
    {{- if .Values.webhook.excludeOptedOutNamespaces }}
    - key: workload-identity.stackit.cloud/skip-pod-identity-webhook
      operator: NotIn
      values: ["true"]
    {{- end }}
{{- else -}}
namespaceSelector: {}
{{- end }}
{{- end }}

{{/* Where the API server sends reviews: the Service, and the CA it trusts unless cert-manager injects it. */}}
{{- define "stackit-pod-identity-webhook.clientConfig" -}}
{{- $root := index . 0 -}}
clientConfig:
  service:
    name: {{ include "stackit-pod-identity-webhook.fullname" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: {{ index . 1 }}
    port: {{ $root.Values.service.port }}
  {{- if and (not $root.Values.certmanager.enabled) $root.Values.webhook.caBundle }}
  caBundle: {{ $root.Values.webhook.caBundle }}
  {{- end }}
{{- end }}

{{/* The webhook configurations' metadata.annotations: cert-manager's CA injection from the serving Certificate. */}}
{{- define "stackit-pod-identity-webhook.caInjection" -}}
{{- if .Values.certmanager.enabled -}}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "stackit-pod-identity-webhook.fullname" . }}-cert
{{- end }}
{{- end }}
