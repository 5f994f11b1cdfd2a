{{- define "kvstash.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kvstash.fullname" -}}
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

{{- define "kvstash.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kvstash.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kvstash.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kvstash.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Where the service reads the model: the mounted volume, or the replica's data volume after a download. */}}
{{- define "kvstash.modelPath" -}}
{{- if .Values.model.url -}}
/var/lib/kvstash/models/{{ .Values.model.fileName }}
{{- else -}}
/models/{{ .Values.model.fileName }}
{{- end -}}
{{- end }}

{{/* The one model source the values name; fails the render when there is none or more than one. */}}
{{- define "kvstash.modelSource" -}}
{{- $sources := 0 -}}
{{- if .Values.model.existingClaim }}{{ $sources = add1 $sources }}{{ end -}}
{{- if .Values.model.url }}{{ $sources = add1 $sources }}{{ end -}}
{{- if .Values.model.volume }}{{ $sources = add1 $sources }}{{ end -}}
{{- if ne (int $sources) 1 -}}
{{- fail "set exactly one of model.existingClaim, model.url and model.volume (the GGUF model the service loads)" -}}
{{- end -}}
{{- if .Values.model.existingClaim }}claim{{ else if .Values.model.url }}url{{ else }}volume{{ end -}}
{{- end }}

{{- define "kvstash.apiKeysSecret" -}}
{{- if .Values.apiKeys.existingSecret -}}
{{- .Values.apiKeys.existingSecret -}}
{{- else if .Values.apiKeys.keys -}}
{{- printf "%s-api-keys" (include "kvstash.fullname" .) -}}
{{- end -}}
{{- end }}

{{/* Container memory in MiB: heap + hot tier + other direct memory + RocksDB + JVM overhead. */}}
{{- define "kvstash.memoryMiB" -}}
{{- $m := .Values.memory -}}
{{- add (int $m.heap) (int $m.hotTier) (int $m.directExtra) (int $m.rocksdb) (int $m.overhead) -}}
{{- end }}

{{- define "kvstash.jvmOptions" -}}
{{- $m := .Values.memory -}}
{{- printf "-Xmx%dm -XX:MaxDirectMemorySize=%dm" (int $m.heap) (add (int $m.hotTier) (int $m.directExtra)) -}}
{{- with .Values.jvmOptions }} {{ . }}{{ end -}}
{{- end }}
