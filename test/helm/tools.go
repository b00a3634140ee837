//go:build tools

// Package tools pins helm.sh/helm/v4 in go.mod and go.sum, so build.sh can run `go build helm.sh/helm/v4/cmd/helm`
// with exactly the dependency versions Helm's own release declares.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
