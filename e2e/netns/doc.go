// Package netns runs the real pathagent binary as on EC2, in a VPC built
// from network namespaces (internal/lab/netns): IMDS on 169.254.169.254,
// the VPC resolver from resolv.conf, S3 and the EC2 API over TLS on their
// real names, and real routes, NAT, drops and refusals between them.
//
// TestVPC runs `pathagent once` on each path; TestAlertsInVPC runs
// `pathagent run` scraped by a real Prometheus with the shipped rules while
// the routes change; TestInstalledPackage runs the installed .deb's binary
// with its default configuration. It has no code of its own; everything
// lives in its _test.go files.
package netns
