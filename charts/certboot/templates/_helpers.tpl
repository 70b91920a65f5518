{{/*
Labels. The selector is app.kubernetes.io/name alone, as in manifests/approver: objects applied
with kustomize and with this chart select the same pods.
*/}}
{{- define "certboot.controllerName" -}}certboot-controller{{- end -}}

{{- define "certboot.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "certboot.selectorLabels" -}}
app.kubernetes.io/name: certboot-controller
{{- end -}}

{{/* Labels of the controller's objects. */}}
{{- define "certboot.labels" -}}
{{ include "certboot.selectorLabels" . }}
{{ include "certboot.commonLabels" . }}
{{- end -}}

{{/* Labels of the RBAC for pods that run certboot (manifests/rbac.yaml). */}}
{{- define "certboot.workloadLabels" -}}
app.kubernetes.io/name: certboot
{{ include "certboot.commonLabels" . }}
{{- end -}}

{{- define "certboot.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The signer names the approver serves: every policy entry's signerName, as a JSON list. */}}
{{- define "certboot.approvedSigners" -}}
{{- $names := list -}}
{{- range .Values.policy.signers -}}
{{- $names = append $names .signerName -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* The CA bundles' ClusterTrustBundle names: <signer name with '/' as ':'>:bundle. */}}
{{- define "certboot.bundleNames" -}}
{{- $names := list -}}
{{- range .Values.signer.signerNames -}}
{{- $names = append $names (printf "%s:bundle" (replace "/" ":" .)) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* policy/v1 from Kubernetes 1.21 (where it is served); policy/v1beta1 before. */}}
{{- define "certboot.pdbApiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{- define "certboot.signing" -}}
{{- if .Values.signer.signerNames }}true{{ end -}}
{{- end -}}

{{/*
Every policy entry with podCertificates: true names a signer certboot signs (signer.signerNames):
nobody else would answer its PodCertificateRequests (the controller would exit 2 at start).
*/}}
{{- define "certboot.checkPodCertificates" -}}
{{- range $i, $entry := .Values.policy.signers -}}
{{- if and $entry.podCertificates (not (has $entry.signerName $.Values.signer.signerNames)) -}}
{{- fail (printf "policy.signers[%d].podCertificates is true, but %s is not in signer.signerNames: add it there (certboot must sign it) or drop podCertificates" $i $entry.signerName) -}}
{{- end -}}
{{- end -}}
{{- end -}}
