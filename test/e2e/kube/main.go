// Command kube-apiserver is Kubernetes' own API server, built from the release pinned in go.mod, so the
// end-to-end tests exercise the real admission chain, Pod validation and watch implementation.
package main

import (
	"os"

	// The same registrations as upstream's cmd/kube-apiserver, so flags and metrics behave as in a release binary.
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
