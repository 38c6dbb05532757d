{{/* Name of a component's objects: <release>-<component>. */}}
{{- define "octo.name" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Cluster-scoped objects also carry the namespace: two releases never share one. */}}
{{- define "octo.clusterName" -}}
{{- printf "%s-%s-%s" .root.Release.Namespace .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "octo.image" -}}
{{- printf "%s/%s:%s" .Values.image.repository . (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "octo.controlPlaneImage" -}}
{{- printf "%s/control-plane:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "octo.sidecarImage" -}}
{{- printf "%s/sidecar:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels of every object; part-of=octo-mesh also keeps the injector off control-plane pods. */}}
{{- define "octo.labels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: octo-mesh
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "octo.selector" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* Service addresses inside the cluster. */}}
{{- define "octo.dispatcherAddress" -}}
{{- printf "%s-dispatcher.%s.svc:15012" .Release.Name .Release.Namespace -}}
{{- end -}}
{{- define "octo.caUrl" -}}
{{- printf "https://%s-ca.%s.svc:15016" .Release.Name .Release.Namespace -}}
{{- end -}}

{{/*
mTLS for a control-plane container (security.enabled): its certificate from the mesh CA into an
emptyDir, trusting the CA by the roots ConfigMap, asking with a projected token for audience
octo-ca; its peers are checked by role: <release>-<role> in the release namespace.
*/}}
{{- define "octo.meshTlsArgs" -}}
{{- if .Values.security.enabled }}
- --tls-dir
- /var/run/octo/tls
- --ca-url
- {{ include "octo.caUrl" . }}
- --ca-trust-bundle-file
- /var/run/octo/ca/root-cert.pem
- --ca-token-file
- /var/run/octo/ca-token/token
- --trust-domain
- {{ .Values.security.trustDomain }}
- --control-namespace
- {{ .Release.Namespace }}
- --role-prefix
- {{ printf "%s-" .Release.Name }}
- --admin-mtls
- "true"
{{- end }}
{{- end -}}
{{- define "octo.meshTlsMounts" -}}
- {name: tmp, mountPath: /tmp}
{{- if .Values.security.enabled }}
- {name: tls, mountPath: /var/run/octo/tls}
- {name: ca-root, mountPath: /var/run/octo/ca, readOnly: true}
- {name: ca-token, mountPath: /var/run/octo/ca-token, readOnly: true}
{{- end }}
{{- end -}}
{{- define "octo.meshTlsVolumes" -}}
- {name: tmp, emptyDir: {}}
{{- if .Values.security.enabled }}
- {name: tls, emptyDir: {medium: Memory, sizeLimit: 1Mi}}
- name: ca-root
  configMap: {name: {{ printf "%s-ca-root-cert" .Release.Name }}}
- name: ca-token
  projected:
    sources:
    - serviceAccountToken: {audience: octo-ca, expirationSeconds: 3600, path: token}
{{- end }}
{{- end -}}

{{- define "octo.metaServerAddress" -}}
{{- printf "%s-meta-server.%s.svc:15011" .Release.Name .Release.Namespace -}}
{{- end -}}

{{/*
The pod spec every control-plane component shares: non-root, read-only root, no capabilities.
No service links: a Service named <release>-dispatcher would otherwise put
OCTO_DISPATCHER_SERVICE_HOST & co. into the env, where the components read their settings
(OCTO_<COMPONENT>_*) and refuse unknown ones.
*/}}
{{- define "octo.podSecurity" -}}
enableServiceLinks: false
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "octo.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}

{{/*
With security.enabled the components that take octo.meshTlsArgs serve their admin port over
HTTPS (--admin-mtls): probes there use HTTPS (the kubelet does not verify the certificate and
/healthz, /readyz, /metrics need none); /debug/* wants an admin or operator certificate.
*/}}
{{- define "octo.adminScheme" -}}
{{- if and .root.Values.security.enabled (has .component (list "dispatcher" "meta-server" "pilot" "operator" "health")) -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{- define "octo.probes" -}}
{{- $scheme := include "octo.adminScheme" . }}
readinessProbe:
  httpGet: {path: /readyz, port: http, scheme: {{ $scheme }}}
  periodSeconds: 2
  failureThreshold: 3
livenessProbe:
  httpGet: {path: /healthz, port: http, scheme: {{ $scheme }}}
  periodSeconds: 10
  failureThreshold: 3
startupProbe:
  httpGet: {path: /healthz, port: http, scheme: {{ $scheme }}}
  periodSeconds: 1
  failureThreshold: 60
{{- end -}}

{{- define "octo.podEnv" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
{{- end -}}

{{- define "octo.antiAffinity" -}}
{{- if eq .root.Values.podAntiAffinity "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "octo.selector" . | nindent 12 }}
{{- end }}
{{- end -}}

{{/* A PodDisruptionBudget: one may go at a time (several replicas keep serving). */}}
{{- define "octo.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "octo.name" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "octo.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "octo.selector" . | nindent 6 }}
{{- end -}}
