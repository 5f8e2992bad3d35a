{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "memquorum.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; the release name alone when it already holds the chart name. */}}
{{- define "memquorum.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The headless Service of peer discovery. */}}
{{- define "memquorum.peersService" -}}
{{- printf "%s-peers" (include "memquorum.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "memquorum.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "memquorum.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "memquorum.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "memquorum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memquorum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Secret holding the feed token, or "" when there is none. */}}
{{- define "memquorum.feedSecret" -}}
{{- if .Values.feed.token.existingSecret }}
{{- .Values.feed.token.existingSecret }}
{{- else if .Values.feed.token.create }}
{{- printf "%s-feed" (include "memquorum.fullname" .) }}
{{- end }}
{{- end }}
