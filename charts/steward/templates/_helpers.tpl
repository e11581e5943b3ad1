{{/*
Labels of every object: config/'s own, then Helm's (which the comparison
with config/ in e2e/helm.rs removes).
*/}}
{{- define "steward.labels" -}}
app.kubernetes.io/name: steward
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The controller's user name, which the admission policies and webhooks admit:
the ServiceAccount steward of the release namespace.
*/}}
{{- define "steward.user" -}}
system:serviceaccount:{{ .Release.Namespace }}:steward
{{- end }}

{{- define "steward.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
The webhook configurations' CA: injected by cert-manager, or given.
*/}}
{{- define "steward.webhookCA" -}}
{{- if eq .Values.webhook.certificate.source "certManager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/steward-webhook
{{- end }}
{{- end }}

{{- define "steward.webhookClient" -}}
service: {name: steward-webhook, namespace: {{ .root.Release.Namespace }}, path: {{ .path }}}
{{- if eq .root.Values.webhook.certificate.source "secret" }}
caBundle: {{ .root.Values.webhook.certificate.caBundle }}
{{- end }}
{{- end }}

{{- define "steward.webhookNamespaces" -}}
namespaceSelector:
  matchExpressions:
    - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, {{ .Release.Namespace }}]}
{{- end }}
