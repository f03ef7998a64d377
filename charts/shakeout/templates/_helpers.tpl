{{/* Names, labels and the few values several templates must agree on. */}}

{{- define "shakeout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* RELEASE-NAME, or RELEASE when it already holds the chart name. */}}
{{- define "shakeout.fullname" -}}
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

{{- define "shakeout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every resource carries; a name/instance pair comes with them below. */}}
{{- define "shakeout.baseLabels" -}}
helm.sh/chart: {{ include "shakeout.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shakeout
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Resources shared by agents and controllers (Secrets, the CA). */}}
{{- define "shakeout.labels" -}}
{{ include "shakeout.baseLabels" . }}
app.kubernetes.io/name: {{ include "shakeout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Agent pods' selector. `app.kubernetes.io/name=shakeout-agent` is the contract with the
controller, which finds agents by listing pods with this label in the release namespace:
it does not follow nameOverride.
*/}}
{{- define "shakeout.agent.selectorLabels" -}}
app.kubernetes.io/name: shakeout-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shakeout.agent.labels" -}}
{{ include "shakeout.baseLabels" . }}
{{ include "shakeout.agent.selectorLabels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{/* What the NetworkPolicy admits: any pod of the release namespace carrying these. */}}
{{- define "shakeout.controller.peerLabels" -}}
app.kubernetes.io/part-of: shakeout
app.kubernetes.io/component: controller
{{- end }}

{{/* Controller resources and game-day pods; they include the peer labels above. */}}
{{- define "shakeout.controller.labels" -}}
{{ include "shakeout.labels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "shakeout.agent.name" -}}
{{- printf "%s-agent" (include "shakeout.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shakeout.controller.serviceAccountName" -}}
{{- default (printf "%s-controller" (include "shakeout.fullname" .) | trunc 63 | trimSuffix "-") .Values.controller.serviceAccount.name }}
{{- end }}

{{/* The Secret with the agent tokens file (`tokens`) and the controller token (`token`). */}}
{{- define "shakeout.authSecretName" -}}
{{- default (printf "%s-auth" (include "shakeout.fullname" .) | trunc 63 | trimSuffix "-") .Values.agent.auth.existingSecret }}
{{- end }}

{{/* The Secret with the agent's tls.crt/tls.key (and ca.crt). */}}
{{- define "shakeout.tlsSecretName" -}}
{{- default (printf "%s-agent-tls" (include "shakeout.fullname" .) | trunc 63 | trimSuffix "-") .Values.agent.tls.existingSecret }}
{{- end }}

{{/* The ConfigMap with the generated CA certificate, for controllers and Prometheus. */}}
{{- define "shakeout.caConfigMapName" -}}
{{- printf "%s-ca" (include "shakeout.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The names the agents' certificate is valid for. Agents are reached by pod IP (unknown
when the certificate is made) or through a port-forward (localhost), so the controller
verifies the fixed server name `shakeout-agent`.
*/}}
{{- define "shakeout.tls.serverName" -}}
shakeout-agent
{{- end }}

{{- define "shakeout.agent.image" -}}
{{- printf "%s:%s" .Values.agent.image.repository (default .Chart.AppVersion .Values.agent.image.tag) }}
{{- end }}

{{- define "shakeout.controller.image" -}}
{{- printf "%s:%s" .Values.controller.image.repository (default .Chart.AppVersion .Values.controller.image.tag) }}
{{- end }}

{{- define "shakeout.gameDay.name" -}}
{{- printf "%s-%s" (include "shakeout.fullname" .root) .gameDay.name | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* Where game-day reports go: a claim, or nothing (emptyDir). */}}
{{- define "shakeout.reports.claimName" -}}
{{- $pvc := .Values.gameDayReports.persistentVolumeClaim }}
{{- if $pvc.existingClaim }}
{{- $pvc.existingClaim }}
{{- else if $pvc.enabled }}
{{- printf "%s-reports" (include "shakeout.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* What the controller may do in a namespace whose pods experiments target. */}}
{{- define "shakeout.controller.targetRules" -}}
- apiGroups: [""]
  resources: [pods]
  # list: choosing pods; watch: timing the replacements to the millisecond (without it
  # the controller lists every 200 ms); the owner comes from each pod's
  # ownerReferences, so no read access to workloads is needed. delete: pod faults (and
  # their server-side dry runs).
  verbs: [list, watch, delete]
- apiGroups: [""]
  resources: [pods/eviction]
  # `evict: true`: deletions through the Eviction API, which honours disruption budgets.
  verbs: [create]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  # Saying, before a plain delete, whether it goes against a budget.
  verbs: [list]
{{- end }}

{{/* Whether the cluster serves ServiceMonitors (the Prometheus Operator's CRD). */}}
{{- define "shakeout.serviceMonitor.available" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor" }}true{{ end }}
{{- end }}

{{/* The agent's policy file: agent.policy plus what the chart itself needs. */}}
{{- define "shakeout.agent.policy" -}}
{{- $policy := deepCopy .Values.agent.policy }}
{{- if not .Values.agent.hostNetwork }}
{{- /* Without hostNetwork the "host" namespace is the agent pod's own: refuse it. */}}
{{- $ns := default (list) $policy.protectedNamespaces }}
{{- if not (has "host" $ns) }}
{{- $_ := set $policy "protectedNamespaces" (append $ns "host") }}
{{- end }}
{{- end }}
{{- if .Values.metrics.serviceMonitor.enabled }}
{{- $tokens := default (dict) $policy.tokens }}
{{- if not (hasKey $tokens "metrics") }}
{{- $_ := set $tokens "metrics" (dict "faultKinds" (list) "maxDuration" "1s") }}
{{- $_ := set $policy "tokens" $tokens }}
{{- end }}
{{- end }}
{{- toYaml $policy }}
{{- end }}
