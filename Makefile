# feedpipe — developer commands. `make help` lists them.
#
# Quick start: `make run` (the service on the embedded local cloud) and
# `make test` (all Go tests on the embedded cloud; needs only Go).
# `make check` is what CI runs: make test + lint + the conformance suite
# against moto and LocalStack (host mode), installing its tools itself.

GO      ?= go
SHELL   := /bin/bash
REPO    := $(abspath .)
# Tests and the dev stack never use the caller's AWS environment.
CLEAN_AWS_ENV := env -u AWS_CA_BUNDLE -u AWS_PROFILE -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 -u AWS_ENDPOINT_URL_SQS

-include mk/tools.mk

# --- function builds, called the way `sam build` calls them (BuildMethod: makefile):
#     make build-<LogicalId> ARTIFACTS_DIR=<dir>  →  <dir>/bootstrap
# AWS runs them on arm64 (template.yaml); the local runner sets GOOS/GOARCH to the host's.
GOOS   ?= linux
GOARCH ?= arm64
FUNCTION_BUILD = CGO_ENABLED=0 GOOS=$(GOOS) GOARCH=$(GOARCH) $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(ARTIFACTS_DIR)/bootstrap

build-UploadFunction:
	$(FUNCTION_BUILD) ./functions/upload
build-CopyFunction:
	$(FUNCTION_BUILD) ./functions/copy
build-ImportFunction:
	$(FUNCTION_BUILD) ./functions/import
build-SyncFunction:
	$(FUNCTION_BUILD) ./functions/sync
build-PushFunction:
	$(FUNCTION_BUILD) ./functions/push

.DEFAULT_GOAL := help
.PHONY: help run cloud test vet fmt-check check test-console console-screenshot lint sam-build test-awscli test-moto test-localstack bench bench-sqs bench-go bench-import fuzz clean

help: ## list the commands
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# The dev stack runs the schedule every 5 s with a 2 s grace, so an abandoned
# upload resolves within about ten seconds of its expiry; webhooks may use http to loopback.
DEV_PARAMS = --param 'SyncSchedule=rate(5 seconds)' --param 'CollectSchedule=rate(1 minute)' --param ExpiryGraceSeconds=2 --param AllowLoopbackHttp=true

run: ## run the whole stack from template.yaml on the embedded local cloud (S3+SQS :4566, HTTP API :3000)
	$(CLEAN_AWS_ENV) $(GO) run ./cmd/feedpipe run $(DEV_PARAMS) $(RUN_FLAGS)

cloud: ## run just the embedded local cloud on http://127.0.0.1:4566
	$(CLEAN_AWS_ENV) $(GO) run ./cmd/feedpipe cloud

test: vet fmt-check ## all Go tests on the embedded cloud, race detector on (Go only)
	$(CLEAN_AWS_ENV) $(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.venv/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

check: test lint sam-build test-console test-awscli test-moto test-localstack ## what CI runs: test + lint + SAM build + console in Chromium + AWS CLI + conformance on moto and LocalStack + e2e on LocalStack

test-console: ## the console (/_console) of a live stack in headless Chromium: DOM, Sync now, screenshot check (needs Debian's chromium)
	$(CLEAN_AWS_ENV) FEEDPIPE_REQUIRE_CHROMIUM=1 $(GO) test -count=1 -run TestConsoleInChromium ./e2e/

console-screenshot: ## rewrite docs/console.png from a live stack in headless Chromium
	$(CLEAN_AWS_ENV) FEEDPIPE_REQUIRE_CHROMIUM=1 $(GO) test -count=1 -run TestConsoleInChromium ./e2e/ -console.screenshot=$(CURDIR)/docs/console.png

lint: vet fmt-check tools-cfnlint tools-sam ## go vet, gofmt, cfn-lint and sam validate --lint on the templates
	$(CLEAN_AWS_ENV) $(CFN_LINT) template.yaml shared/localcloud/runner/testdata/template.yaml
	$(CLEAN_AWS_ENV) AWS_REGION=us-east-1 $(SAM) validate --lint -t template.yaml

sam-build: tools-sam ## sam build through the Makefile's build-<LogicalId> targets (into .aws-sam/)
	$(CLEAN_AWS_ENV) AWS_REGION=us-east-1 $(SAM) build --build-in-source -t template.yaml

test-moto: tools-moto ## conformance suite against moto server (installs it into .venv/moto)
	@port=5055; scripts/moto-up $$port && trap 'scripts/tool-down moto' EXIT; \
	$(CLEAN_AWS_ENV) FEEDPIPE_TEST_ENDPOINT=http://127.0.0.1:$$port FEEDPIPE_TEST_BACKEND=moto \
	  $(GO) test -count=1 -run 'External' -v ./shared/awstest/ 2>&1 | tee .run/test-moto.log | grep -E '^(=== RUN|--- FAIL|FAIL|ok|PASS)|Divergence' | grep -v '=== RUN' ; \
	exit $${PIPESTATUS[0]}

test-localstack: tools-localstack ## conformance suite and the end-to-end tests (runner + real binaries) against LocalStack in host mode
	@port=4599; scripts/localstack-up $$port && trap 'scripts/tool-down localstack' EXIT; \
	$(CLEAN_AWS_ENV) FEEDPIPE_TEST_ENDPOINT=http://127.0.0.1:$$port FEEDPIPE_TEST_BACKEND=localstack \
	  $(GO) test -count=1 -run 'External' -v ./shared/awstest/ 2>&1 | tee .run/test-localstack.log | grep -E '^(--- FAIL|FAIL|ok|PASS)|Divergence' ; \
	rc=$${PIPESTATUS[0]}; [ $$rc -eq 0 ] || exit $$rc; \
	$(CLEAN_AWS_ENV) FEEDPIPE_TEST_ENDPOINT=http://127.0.0.1:$$port FEEDPIPE_TEST_BACKEND=localstack \
	  $(GO) test -count=1 -run 'UploadsApply|Hostile' -v ./e2e/ 2>&1 | tee .run/test-localstack-e2e.log | grep -E '^(--- |FAIL|ok|PASS)' ; \
	exit $${PIPESTATUS[0]}

test-awscli: tools-awscli ## the AWS CLI (v1, .venv/awscli) against the embedded cloud: s3 mb/cp/ls/presign, sqs create/send/receive
	$(CLEAN_AWS_ENV) FEEDPIPE_AWS_CLI=$(AWS_CLI) $(GO) test -count=1 -run AWSCLI -v ./e2e/ | grep -E '^(--- |ok|FAIL)'; exit $${PIPESTATUS[0]}

bench-sqs: tools-moto ## FIFO send/receive/delete throughput: embedded SQS vs moto, same client, same run
	@port=5056; scripts/moto-up $$port && trap 'scripts/tool-down moto' EXIT; \
	$(CLEAN_AWS_ENV) FEEDPIPE_TEST_ENDPOINT=http://127.0.0.1:$$port FEEDPIPE_TEST_BACKEND=moto \
	  $(GO) test -run '^$$' -bench 'FIFOThroughput' -benchtime 3s -count 3 ./shared/awstest/ | tee .run/bench-sqs.txt; \
	$(GO) run ./cmd/benchratio -metric msgs/s -base embedded -floor 20000 -min 10 < .run/bench-sqs.txt

bench: bench-sqs bench-go bench-import ## all benchmarks (not part of make check)

bench-go: ## Go benchmarks: upload→imported latency, runner overhead, delta reader vs ceiling, catalog
	@mkdir -p .run
	$(CLEAN_AWS_ENV) $(GO) test -run '^$$' -bench UploadToImported -benchtime 50x ./e2e/ | tee .run/bench-go.txt
	$(CLEAN_AWS_ENV) $(GO) test -run '^$$' -bench 'InvokeWarm|ColdStart' -benchtime 2s ./shared/localcloud/lambdaruntime/ | tee -a .run/bench-go.txt
	$(CLEAN_AWS_ENV) $(GO) test -run '^$$' -bench SQSMapping -benchtime 2000x ./shared/localcloud/runner/ | tee -a .run/bench-go.txt
	$(CLEAN_AWS_ENV) $(GO) test -run '^$$' -bench S3SmallRequest -cpu 1 ./shared/localcloud/ | tee -a .run/bench-go.txt
	$(GO) test -run '^$$' -bench 'Reader|Ceiling' -benchtime 1s ./shared/feed/ | tee -a .run/bench-go.txt
	$(CLEAN_AWS_ENV) $(GO) test -run '^$$' -bench 'StageCommit|SmallDelta' -benchtime 5x ./shared/catalog/ | tee -a .run/bench-go.txt

bench-import: ## import products/s per core vs the read+write ceiling (same file, same run), peak RSS on a 1 GiB delta, small deltas/s per site
	@mkdir -p .run
	set -o pipefail; $(CLEAN_AWS_ENV) $(GO) test -run '^$$' -bench 'Import$$' -cpu 1 -timeout 30m ./functions/import/ -bench.large | tee .run/bench-import.txt
	set -o pipefail; $(CLEAN_AWS_ENV) $(GO) test -run '^$$' -bench ImportPeakRSS -benchtime 1x -timeout 30m ./functions/import/ -bench.rss-mb 1024 | tee -a .run/bench-import.txt
	set -o pipefail; $(CLEAN_AWS_ENV) $(GO) test -run '^$$' -bench SmallDeltas -benchtime 500x ./e2e/ | tee -a .run/bench-import.txt
	$(GO) run ./cmd/benchratio -metric products/s -base import -min 0.5 -against ceiling < .run/bench-import.txt

fuzz: ## every fuzz target for FUZZTIME (default 30s) each, then SCHEDULES (default 5000) randomized pipeline schedules
	$(CLEAN_AWS_ENV) $(GO) test -count=1 -timeout 2h -run TestRandomSchedules ./e2e/ -schedules=$${SCHEDULES:-5000}
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-30s} $$pkg || exit 1; \
	  done; done

clean: ## remove build outputs, tool virtualenvs and run state
	rm -rf .aws-sam .run .venv bin
