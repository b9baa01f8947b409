# pathagent: build, try it on the local lab, test.
#
#   make demo    build, install the lab's tools, run `pathagent once` on the lab
#   make test    install the lab's tools, vet and run every test
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

export PATH := $(GOBIN):$(PATH)

.PHONY: all build tools demo test vet clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/ ./cmd/...

tools: $(GOBIN)/ec2-metadata-mock $(GOBIN)/versitygw

$(GOBIN)/ec2-metadata-mock:
	GOBIN=$(GOBIN) $(GO) install $(EC2_METADATA_MOCK)

$(GOBIN)/versitygw:
	GOBIN=$(GOBIN) $(GO) install $(VERSITYGW)

# One diagnosis against the lab's default scenario; pick another with
# SCENARIO=lab/scenarios/NAME.yaml.
demo: build tools
	bin/pathagent-lab run -scenario $(SCENARIO) -- bin/pathagent once

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: tools vet
	$(GO) test -count=1 ./...

clean:
	rm -rf bin dist
