# Steward — developer entry points. `make dev` and `make test` work on a
# fresh machine: they install what they need first.

CARGO ?= cargo
# The Kubernetes release the local control plane runs (SPEC §5): 1.37 is the
# newest supported, 1.33 the oldest. `make e2e KUBERNETES=1.33` runs the whole
# suite on the oldest.
KUBERNETES ?= 1.37
OLDEST_KUBERNETES ?= 1.33
export KUBERNETES
# Scenarios `make test` also runs on the oldest release: the install (with
# kubectl, the release manifest and Helm), the API server's own rules,
# exceptions and ownership.
OLDEST_E2E ?= install:: helm:: api_rules:: exceptions:: ownership:: approvals::
# Scenarios whose bound is a timing under load: they run after the others,
# alone, so the load they measure is their own and not that of every other
# scenario's control plane and controller sharing the machine's cores.
E2E_ALONE ?= hostile::bounded::a_hundred_of_the_largest_objects_delay_neither_an_expiry_nor_a_drift_removal \
  faults::restarts_and_compaction_during_a_convergence_lose_nothing_and_grant_nothing_extra
STEWARD_DEV_DIR ?= $(or $(TMPDIR),/tmp)/steward-dev
DEV_NAMESPACE ?= steward-demo
DIST ?= dist

.PHONY: all build crds deps release-manifests test lint unit conformance rules e2e e2e-oldest dev bench fmt clean-dev

all: build

build:
	$(CARGO) build --locked

## deps: Debian packages and the cached kube-apiserver, kubectl and etcd
## builds of $(KUBERNETES), and helm (once per version).
deps:
	bash e2e/control-plane.sh install
	bash e2e/helm.sh install

## crds: regenerate crds/ from the Rust types, and the Helm chart's copy
## (Helm installs a chart's crds/ directory).
crds:
	$(CARGO) run --locked --quiet -- crds --dir crds
	$(CARGO) run --locked --quiet -- crds --dir charts/steward/crds

## release-manifests: what a release attaches, in $(DIST): install.yaml
## (config/default built by kustomize), the CRDs alone, and the packaged
## Helm chart.
release-manifests: deps
	rm -rf "$(DIST)" && mkdir -p "$(DIST)/crds"
	"$$(bash e2e/control-plane.sh bindir)/kubectl" kustomize config/default > "$(DIST)/install.yaml"
	cp crds/*.steward.dev.yaml "$(DIST)/crds/"
	"$$(bash e2e/helm.sh bin)" package charts/steward -d "$(DIST)" >/dev/null

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked --lib --bins --test validate --test fuzz_validation

## conformance: the Argo CD health checks under gopher-lua (the Lua VM Argo
## CD embeds) on every fixture (e2e/conformance; the e2e suite runs the same
## module on live objects with kstatus).
conformance:
	cd e2e/conformance && go vet ./... && go test -count=1 ./...

## rules: the Prometheus alerts (config/prometheus) under promtool.
rules:
	bash config/prometheus/test.sh

e2e: deps
	@echo "e2e: $$("$$(bash e2e/control-plane.sh bindir)/kube-apiserver" --version)"
	$(CARGO) test --locked --test e2e -- $(foreach t,$(E2E_ALONE),--skip $(t)) $(E2E_FILTER)
ifeq ($(E2E_FILTER),)
	$(CARGO) test --locked --test e2e -- --exact --test-threads=1 $(E2E_ALONE)
endif

## e2e-oldest: the install and the security scenarios on the oldest release.
e2e-oldest:
	$(MAKE) e2e KUBERNETES=$(OLDEST_KUBERNETES) E2E_FILTER="$(OLDEST_E2E)"

## test: every test: static checks, unit tests (CRD drift included), e2e.
test: deps lint unit conformance rules e2e e2e-oldest

## dev: local control plane, config/ and samples applied, controller in the
## foreground as its own identity. Ctrl-C stops everything.
dev: deps build
	bash e2e/dev.sh "$(STEWARD_DEV_DIR)" "$(DEV_NAMESPACE)"

bench: deps
	$(CARGO) bench --locked --bench steward

clean-dev:
	-bash e2e/control-plane.sh stop "$(STEWARD_DEV_DIR)"
	rm -rf "$(STEWARD_DEV_DIR)"
