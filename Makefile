# Steward — developer entry points. `make dev` and `make test` work on a
# fresh machine: they install what they need first.

CARGO ?= cargo
STEWARD_DEV_DIR ?= $(or $(TMPDIR),/tmp)/steward-dev
DEV_NAMESPACE ?= steward-demo

.PHONY: all build crds deps test lint unit argocd-test e2e dev bench fmt clean-dev

all: build

build:
	$(CARGO) build --locked

## deps: Debian packages and the cached kube-apiserver build (once).
deps:
	bash e2e/control-plane.sh install

## crds: regenerate crds/ from the Rust types.
crds:
	$(CARGO) run --locked --quiet -- crds --dir crds

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked --lib --bins --test validate

## argocd-test: Argo CD Lua health checks under a real Lua interpreter.
argocd-test:
	bash config/argocd/run_tests.sh

e2e: deps
	$(CARGO) test --locked --test e2e

## test: every test: static checks, unit tests (CRD drift included), e2e.
test: deps lint unit argocd-test e2e

## dev: local control plane, config/ and samples applied, controller in the
## foreground as its own identity. Ctrl-C stops everything.
dev: deps build
	bash e2e/dev.sh "$(STEWARD_DEV_DIR)" "$(DEV_NAMESPACE)"

bench: deps
	$(CARGO) bench --locked --bench steward

clean-dev:
	-bash e2e/control-plane.sh stop "$(STEWARD_DEV_DIR)"
	rm -rf "$(STEWARD_DEV_DIR)"
