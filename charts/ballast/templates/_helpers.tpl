{{/* The release's full name, used for the operator's objects. */}}
{{- define "ballast.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "ballast.selectorLabels" -}}
app.kubernetes.io/name: ballast-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object of the release. */}}
{{- define "ballast.labels" -}}
{{ include "ballast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ballast
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ballast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ballast.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* What the operator may do to run EtcdClusters, as (Cluster)Role rules. */}}
{{- define "ballast.operatorRules" -}}
- apiGroups: ["ballast.dev"]
  resources: ["etcdclusters"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["ballast.dev"]
  resources: ["etcdclusters/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["ballast.dev"]
  resources: ["etcdclusters/finalizers"]
  verbs: ["update"]
# On-demand backups: the operator runs one Job per EtcdBackup and reports on it.
- apiGroups: ["ballast.dev"]
  resources: ["etcdbackups"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["ballast.dev"]
  resources: ["etcdbackups/status"]
  verbs: ["get", "patch", "update"]
# Scheduled backups (a CronJob), on-demand backups and the check of a backup to restore
# from (Jobs); their pods' termination messages are the results.
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
# The CA and client certificates; member keys are in no Secret (each member makes its
# own), and the shared member Secrets of earlier versions are deleted once unused.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Claims grow in place; a removed member's claim is deleted so that no later member
# starts on stale data; a cluster restored from a volume gets its claims made and restored
# before its members start.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "create", "patch", "delete"]
# Pods are read to ask their sidecars how their members started and to sign their
# members' certificates, and deleted only together with a claim being renewed.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "delete"]
# The state ConfigMap members read (cluster ID, recovery requests).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "patch", "create", "delete"]
# Rolling updates restart members through evictions, which the PodDisruptionBudget governs.
- apiGroups: [""]
  resources: ["pods/eviction"]
  verbs: ["create"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
