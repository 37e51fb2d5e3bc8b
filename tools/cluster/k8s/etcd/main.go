// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 at the version pinned in
// go.mod; it is the same entry point as upstream's etcd binary, so one Go module builds the whole
// control plane and no Debian etcd-server (3.4 on Debian 12, too old for Kubernetes 1.37) is needed.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
