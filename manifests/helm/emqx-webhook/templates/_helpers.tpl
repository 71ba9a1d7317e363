{{/*
emqx-webhook.labels: the standard labels the chart adds to every object it renders, beside the
app.kubernetes.io/name the manifests carry: which release and which chart made it.
*/}}
{{- define "emqx-webhook.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubectl-emqx
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}
