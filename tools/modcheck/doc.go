// Command modcheck checks that a workspace module builds with the same
// dependency versions on its own (GOWORK=off, as its Dockerfile builds it)
// as in the workspace (go.work, as tests and `go run` build it). The
// workspace's build list is the highest of every module's requirements, so
// a tool pinned in the root module can raise a version the service's own
// go.mod does not name; the container would then run other code than the
// tests tested.
//
// Usage:
//
//	go run ./tools/modcheck services/prober services/recorder
//
// For each module directory it lists the modules of the packages that
// `go build` and `go test` of ./... load, both ways, and reports every module
// whose version differs, with the command that aligns the module. It exits 1
// when there is any.
package main
