# pathagent: build, try it on the local lab, test.
#
#   make demo    build, install the lab's tools, run `pathagent once` on the lab
#   make test    install the lab's tools, vet and run every test, then fuzz
#   make fuzz    run every fuzz target for FUZZTIME (10s) each
#   make package build the .deb and .rpm into dist/ (see packaging/README.md)
#   make bench   measure pathagent against peers on the lab (scripts/bench)
#
# The lab's servers are installed with `go install` at pinned versions into
# $(GOBIN) (by default $(go env GOPATH)/bin); nothing else is downloaded.

GO       ?= go
GOBIN    ?= $(shell $(GO) env GOPATH)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
SCENARIO ?= lab/scenarios/gateway-endpoint.yaml

# Pinned stand-ins: AWS's own IMDS mock and a real S3 server.
EC2_METADATA_MOCK = github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@v1.13.0
VERSITYGW         = github.com/versity/versitygw/cmd/versitygw@v1.8.0

# promtool checks packaging/prometheus; Debian ships it in its prometheus
# package, pinned to the version the rules were written against.
PROMETHEUS_DEB ?= prometheus=2.42.0*

# nft does the internet gateway's NAT in the network-namespace VPC test
# (e2e/netns, run as root); Debian's, pinned to the version it was tried on.
NFTABLES_DEB   ?= nftables=1.0.6*

SUDO           := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# Packager for the .deb and .rpm.
NFPM              = github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0

# Packages: the target architecture (arm64 for Graviton) and a version
# deb and rpm accept: a tag without its v, or 0.0.0+HASH when untagged,
# with - turned into . (a - would split off a package revision).
PKG_ARCH    ?= amd64
REVISION    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
PKG_VERSION ?= $(shell echo '$(VERSION)' | sed -E 's/^v([0-9]+\.[0-9])/\1/; /^[0-9]+\.[0-9]/!s/^/0.0.0+/; s/-/./g')

export PATH := $(GOBIN):$(PATH)

.PHONY: all build tools promtool nftables demo test vet clean package

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/ ./cmd/...

tools: $(GOBIN)/ec2-metadata-mock $(GOBIN)/versitygw $(GOBIN)/nfpm

$(GOBIN)/ec2-metadata-mock:
	GOBIN=$(GOBIN) $(GO) install $(EC2_METADATA_MOCK)

$(GOBIN)/versitygw:
	GOBIN=$(GOBIN) $(GO) install $(VERSITYGW)

promtool:
	@command -v promtool >/dev/null || { \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y '$(PROMETHEUS_DEB)'; }

nftables:
	@PATH="$$PATH:/usr/sbin:/sbin" command -v nft >/dev/null || { \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y '$(NFTABLES_DEB)'; }

$(GOBIN)/nfpm:
	GOBIN=$(GOBIN) $(GO) install $(NFPM)

# One diagnosis against the lab's default scenario; pick another with
# SCENARIO=lab/scenarios/NAME.yaml.
demo: build tools
	bin/pathagent-lab run -scenario $(SCENARIO) -- bin/pathagent once

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: tools promtool nftables vet
	$(GO) test -count=1 ./...
	@$(MAKE) --no-print-directory fuzz

# Every fuzz target (a func Fuzz... in a _test.go file) runs for FUZZTIME.
# A failing input is written to its package's testdata/fuzz/NAME/; kept
# there, it runs with plain go test from then on. Minimizing is bounded
# too: the EC2 target manages only a few inputs a second, as the coverage
# of the whole EC2 SDK is compared after each.
FUZZTIME ?= 10s

.PHONY: fuzz
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' cmd internal); do \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$name in $$(dirname $$f) for $(FUZZTIME)"; \
			$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) \
				-fuzzminimizetime=5s ./$$(dirname $$f); \
		done; \
	done

# A static binary for the package's architecture (-s -w drop the symbol
# tables; panics still print full stacks), then one .deb and one .rpm.
package: $(GOBIN)/nfpm
	CGO_ENABLED=0 GOOS=linux GOARCH=$(PKG_ARCH) $(GO) build -trimpath \
		-ldflags "-s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)" \
		-o bin/pathagent ./cmd/pathagent
	mkdir -p dist
	for p in deb rpm; do \
		VERSION='$(PKG_VERSION)' GOARCH=$(PKG_ARCH) PATHAGENT_BINARY=bin/pathagent \
			nfpm package -f packaging/nfpm.yaml --packager $$p --target dist/ || exit 1; \
	done

clean:
	rm -rf bin dist

# Benchmarks: pathagent against peers run side by side on the lab, as
# ratios (scripts/bench/main.go says what is measured). Debian's AWS CLI,
# rclone and blackbox_exporter are the peers and GNU time reads peak RSS;
# they are installed here when missing and only here: `make test` does not
# need them. Writes bench/RESULTS.md and the benchmark section at the end
# of README.md; 6 to 10 minutes.
BENCH_DEBS  ?= 'time=1.9*' 'awscli=2.9.19*' 'rclone=1.60.1*' 'prometheus-blackbox-exporter=0.23.0*'
BENCH_FLAGS ?=

.PHONY: bench bench-tools
bench: build $(GOBIN)/ec2-metadata-mock $(GOBIN)/versitygw bench-tools
	$(GO) run ./scripts/bench $(BENCH_FLAGS)

bench-tools:
	@[ -x /usr/bin/time ] && [ -x /usr/bin/aws ] && [ -x /usr/bin/rclone ] && [ -x /usr/bin/prometheus-blackbox-exporter ] || { \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(BENCH_DEBS); }
