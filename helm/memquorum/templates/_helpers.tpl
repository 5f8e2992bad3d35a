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

{{/* The ConfigMap holding memquorum.properties. */}}
{{- define "memquorum.configMap" -}}
{{- printf "%s-config" (include "memquorum.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "memquorum.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "memquorum.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "memquorum.selectorLabels" . }}
app.kubernetes.io/part-of: memquorum
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "memquorum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memquorum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* id=host:port of every pod, by the DNS name the StatefulSet gives it. */}}
{{- define "memquorum.staticPeers" -}}
{{- $fullname := include "memquorum.fullname" . }}
{{- $domain := printf "%s.%s.svc.%s" (include "memquorum.peersService" .) .Release.Namespace .Values.dnsDiscovery.clusterDomain }}
{{- $peers := list }}
{{- range $i := until (int .Values.replicas) }}
{{- $peers = append $peers (printf "%s-%d=%s-%d.%s:%d" $fullname $i $fullname $i $domain (int $.Values.ports.peer)) }}
{{- end }}
{{- join "," $peers }}
{{- end }}

{{/* Secret holding the feed token: existingSecret, else <fullname>-feed
     (created by the chart with feed.token.create, else referenced as optional). */}}
{{- define "memquorum.feedSecret" -}}
{{- .Values.feed.token.existingSecret | default (printf "%s-feed" (include "memquorum.fullname" .)) }}
{{- end }}

{{/* Secret holding the Nacos credentials. */}}
{{- define "memquorum.nacosSecret" -}}
{{- .Values.nacos.auth.existingSecret | default (printf "%s-nacos" (include "memquorum.fullname" .)) }}
{{- end }}

{{/* Seconds the agent needs between SIGTERM (or the preStop hook) and SIGKILL. */}}
{{- define "memquorum.minGracePeriod" -}}
{{- add .Values.drainTimeoutSeconds .Values.sidecar.preStopSleepSeconds 10 }}
{{- end }}

{{- define "memquorum.gracePeriod" -}}
{{- $min := include "memquorum.minGracePeriod" . | int }}
{{- if kindIs "string" .Values.terminationGracePeriodSeconds }}
{{- $min }}
{{- else if lt (int .Values.terminationGracePeriodSeconds) $min }}
{{- fail (printf "terminationGracePeriodSeconds %d is below drainTimeoutSeconds %d + sidecar.preStopSleepSeconds %d + 10: the kubelet would kill the agent while it hands its shards over" (int .Values.terminationGracePeriodSeconds) (int .Values.drainTimeoutSeconds) (int .Values.sidecar.preStopSleepSeconds)) }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* Refuses value combinations that render valid objects but a broken cluster. */}}
{{- define "memquorum.validate" -}}
{{- if lt (int .Values.replicas) (int .Values.replicationFactor) }}
{{- fail (printf "replicas (%d) < replicationFactor (%d): every shard needs %d agents" (int .Values.replicas) (int .Values.replicationFactor) (int .Values.replicationFactor)) }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not (or .Values.dnsDiscovery.enabled .Values.nacos.enabled .Values.staticPeers)) }}
{{- fail "dnsDiscovery, nacos and staticPeers are all off: the agents could not find each other" }}
{{- end }}
{{- if and .Values.sidecar.native (not (semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version)) }}
{{- fail (printf "sidecar.native needs Kubernetes >= 1.29 (init containers with restartPolicy: Always); this is %s" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if and (gt (int .Values.sidecar.preStopSleepSeconds) 0) (not (semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version)) }}
{{- fail (printf "sidecar.preStopSleepSeconds needs Kubernetes >= 1.30 (the preStop sleep action); this is %s" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- end }}

{{/* The agent container, shared by the classic (containers) and the native
     (initContainers, restartPolicy: Always) sidecar modes. */}}
{{- define "memquorum.agentContainer" -}}
name: memquorum
image: {{ include "memquorum.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- if .Values.sidecar.native }}
# Native sidecar: started before the app containers, stopped after them.
restartPolicy: Always
{{- end }}
ports:
  - name: api
    containerPort: {{ .Values.ports.api }}
    protocol: TCP
  - name: peer
    containerPort: {{ .Values.ports.peer }}
    protocol: TCP
  - name: http
    containerPort: {{ .Values.ports.http }}
    protocol: TCP
env:
  - name: MEMQUORUM_CONFIG
    value: /etc/memquorum/memquorum.properties
  - name: MEMQUORUM_NODE_ID
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: MEMQUORUM_ADVERTISE_ADDR
    valueFrom:
      fieldRef:
        fieldPath: status.podIP
  # On SIGTERM: wait up to this many seconds until leaving is safe for
  # every shard, then exit (terminationGracePeriodSeconds leaves 10 s more).
  - name: MEMQUORUM_DRAIN_TIMEOUT
    value: {{ printf "%ds" (int .Values.drainTimeoutSeconds) | quote }}
  {{- if .Values.dnsDiscovery.enabled }}
  - name: MEMQUORUM_DNS_NAME
    value: {{ printf "%s.%s.svc.%s" (include "memquorum.peersService" .) .Release.Namespace .Values.dnsDiscovery.clusterDomain | quote }}
  {{- end }}
  {{- if .Values.staticPeers }}
  - name: MEMQUORUM_PEERS
    value: {{ include "memquorum.staticPeers" . | quote }}
  {{- end }}
  {{- if .Values.nacos.enabled }}
  - name: NACOS_SERVER_ADDR
    value: {{ required "nacos.serverAddr is required when nacos.enabled" .Values.nacos.serverAddr | quote }}
  {{- with .Values.nacos.namespace }}
  - name: NACOS_NAMESPACE
    value: {{ . | quote }}
  {{- end }}
  {{- with .Values.nacos.group }}
  - name: NACOS_GROUP
    value: {{ . | quote }}
  {{- end }}
  {{- if .Values.nacos.auth.enabled }}
  - name: NACOS_USERNAME
    valueFrom:
      secretKeyRef:
        name: {{ include "memquorum.nacosSecret" . }}
        key: {{ .Values.nacos.auth.usernameKey }}
  - name: NACOS_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ include "memquorum.nacosSecret" . }}
        key: {{ .Values.nacos.auth.passwordKey }}
  {{- end }}
  {{- end }}
  {{- if .Values.kafka.enabled }}
  - name: MEMQUORUM_KAFKA_ENABLED
    value: "true"
  - name: KAFKA_BOOTSTRAP_SERVERS
    value: {{ required "kafka.bootstrapServers is required when kafka.enabled" .Values.kafka.bootstrapServers | quote }}
  - name: MEMQUORUM_KAFKA_TOPIC
    value: {{ required "kafka.topic is required when kafka.enabled" .Values.kafka.topic | quote }}
  {{- with .Values.kafka.group }}
  - name: MEMQUORUM_KAFKA_GROUP
    value: {{ . | quote }}
  {{- end }}
  {{- end }}
  - name: MEMQUORUM_FEED_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ include "memquorum.feedSecret" . }}
        key: {{ .Values.feed.token.key }}
        {{- if not (or .Values.feed.token.create .Values.feed.token.existingSecret) }}
        optional: true
        {{- end }}
  {{- if .Values.peerTls.secretName }}
  - name: MEMQUORUM_PEER_TLS_CERT
    value: /etc/memquorum-peer-tls/tls.crt
  - name: MEMQUORUM_PEER_TLS_KEY
    value: /etc/memquorum-peer-tls/tls.key
  - name: MEMQUORUM_PEER_TLS_CA
    value: /etc/memquorum-peer-tls/ca.crt
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml .Values.probes.startup | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  {{- toYaml .Values.probes.readiness | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml .Values.probes.liveness | nindent 2 }}
{{- if gt (int .Values.sidecar.preStopSleepSeconds) 0 }}
# Keeps a classic sidecar serving while the app container shuts down; the
# agent's own shutdown starts at SIGTERM, after this sleep.
lifecycle:
  preStop:
    sleep:
      seconds: {{ .Values.sidecar.preStopSleepSeconds }}
{{- end }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
volumeMounts:
  - name: config
    mountPath: /etc/memquorum
    readOnly: true
  - name: tmp
    mountPath: /tmp
  {{- if .Values.peerTls.secretName }}
  - name: peer-tls
    mountPath: /etc/memquorum-peer-tls
    readOnly: true
  {{- end }}
{{- end }}
