// Attempt to build Metacontroller from the Go module proxy; tried (never required) by ../build.
// Its go.mod declares `module metacontroller`, so it cannot be required by its GitHub path;
// a replace to the GitHub path at the pseudo-version of tag v4.17.2 (commit 76b818bdc67b,
// 2026-08-13 21:33:14 UTC) is the way. A v4.17.2 tag cannot be used: the path has no /v4.
// On 2026-11-24 the proxy refused it: "403 Forbidden, This module version is not available".
module featherman/ci/cluster/metacontroller

go 1.26.4

tool metacontroller/pkg/cmd/metacontroller

require metacontroller v0.0.0

replace metacontroller => github.com/metacontroller/metacontroller v0.0.0-20260813213314-76b818bdc67b
