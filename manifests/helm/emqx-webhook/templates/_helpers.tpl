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

{{/*
emqx-webhook.image: the image reference of the webhook (and of its helm test), by digest when a
release's packaged chart carries one.
*/}}
{{- define "emqx-webhook.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (toString .Values.image.tag) }}
{{- if .Values.image.digest }}{{ $ref = printf "%s@%s" $ref .Values.image.digest }}{{ end }}
{{- $ref }}
{{- end }}
