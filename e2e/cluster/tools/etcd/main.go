// Command etcd is the etcd server, built from the go.etcd.io/etcd/server/v3
// module. It is the same three lines as upstream's go.etcd.io/etcd/v3 main
// package; that root module is not importable as a plain dependency, so this
// wrapper module stands in for it. It lives in its own module because etcd
// and k8s.io/kubernetes pin different versions of shared dependencies
// (grpc, otel, ...).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
