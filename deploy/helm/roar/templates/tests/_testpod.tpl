{{/* A `helm test` Pod that GETs one path of the web Service with the web image's Python and
fails unless the answer is 200 (and contains .expect, when given). */}}
{{- define "roar.testPod" -}}
{{- $ := .ctx }}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "roar.fullname" $ }}-test-{{ .name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "roar.labels" (dict "ctx" $ "component" "test") | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    {{- include "roar.podSecurityContext" 10001 | nindent 4 }}
  containers:
    - name: get
      image: {{ include "roar.webImage" $ }}
      imagePullPolicy: {{ $.Values.image.pullPolicy }}
      command:
        - python3
        - -c
        - |
          import sys, urllib.request
          url, expect = sys.argv[1], sys.argv[2]
          with urllib.request.urlopen(url, timeout=10) as answer:
              body = answer.read().decode()
          print(answer.status, body[:300])
          sys.exit(0 if answer.status == 200 and expect in body else 1)
        - http://{{ include "roar.webName" $ }}:{{ $.Values.service.port }}{{ .path }}
        - {{ .expect | default "" | quote }}
      resources:
        requests:
          cpu: 10m
          memory: 32Mi
        limits:
          cpu: 200m
          memory: 64Mi
      securityContext:
        {{- include "roar.containerSecurityContext" 10001 | nindent 8 }}
{{- end }}
