// Command coredns is CoreDNS with only the plugins the test cluster needs.
//
// CoreDNS's own main links every plugin it ships (cloud DNS providers,
// etcd, ...), which makes the build several times longer and brings code
// that could send queries off the machine. This build has no `forward`
// plugin at all, so the test cluster's DNS can answer only for its own
// cluster domain and can never reach an upstream resolver.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// The order plugins run in, a subset of CoreDNS's plugin.cfg in its order.
	dnsserver.Directives = []string{
		"ready",
		"health",
		"errors",
		"log",
		"cache",
		"kubernetes",
	}
}

func main() {
	coremain.Run()
}
