// Command pause is the pod sandbox's first process on the test cluster's real node: it holds the
// pod's namespaces until it is stopped, and reaps orphans when the pod shares its PID namespace,
// as the upstream pause image does. Built here because no image can be pulled (see
// docs/cluster.md); the node's set-up wraps it in an image of one file.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
