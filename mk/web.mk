# mk/web.mk — the browser: wasm client, dashboard, their tests and size budget (issue 7).
#
#   make wasm       wasm/dist/{bitkit.wasm,wasm_exec.js,bitkit.mjs,bitkit.d.ts}
#   make web        the dashboard + wasm client into server/internal/webui/dist (embedded by bitd)
#   make wasm-size  fails when gzip -9 of bitkit.wasm exceeds WASM_GZIP_BUDGET bytes
#   make test-web   wasm-size + the js/wasm unit tests (under Node) + tsc --noEmit over web/test/ts-example
#                   (the headless-Chromium e2e test runs in `go test ./wasm` of the root module)
#   make bench-web  scripts/bench/web.sh: wasm size and navigation → API-ready vs plain fetch

WASM_DIST := wasm/dist
WEBUI_DIST := server/internal/webui/dist
# 3 MiB: the budget for the gzipped module (issue 7).
WASM_GZIP_BUDGET ?= 3145728

TEST_TARGETS += test-web
BENCH_TARGETS += bench-web
LINT_TARGETS += lint-web

.PHONY: wasm web wasm-size test-web bench-web lint-web

wasm:
	@mkdir -p $(WASM_DIST)
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags="-s -w" -o $(WASM_DIST)/bitkit.wasm ./wasm
	cp "$$($(GO) env GOROOT)/lib/wasm/wasm_exec.js" wasm/bitkit.mjs wasm/bitkit.d.ts $(WASM_DIST)/

web: wasm
	@find $(WEBUI_DIST) -mindepth 1 ! -name README.md ! -name .gitignore -delete
	cp web/index.html web/app.js web/style.css $(WASM_DIST)/* $(WEBUI_DIST)/
	gzip -9 -k -f $(WEBUI_DIST)/bitkit.wasm
	@echo "dashboard in $(WEBUI_DIST); rebuild bitd (make build) to embed it"

wasm-size: wasm
	@raw=$$(stat -c %s $(WASM_DIST)/bitkit.wasm); gz=$$(gzip -9 -c $(WASM_DIST)/bitkit.wasm | wc -c); \
	echo "bitkit.wasm: $$raw bytes raw, $$gz bytes gzip -9 (budget $(WASM_GZIP_BUDGET))"; \
	if [ $$gz -gt $(WASM_GZIP_BUDGET) ]; then echo "bitkit.wasm gzipped is over the budget: shrink the wasm dependencies (see docs/web.md)"; exit 1; fi

test-web: wasm-size
	PATH="$$PATH:$$($(GO) env GOROOT)/lib/wasm" GOOS=js GOARCH=wasm $(GO) test -count=1 ./wasm
	cd web/test && npx --no-install tsc --noEmit -p ts-example

lint-web:
	GOOS=js GOARCH=wasm $(GO) vet ./wasm

bench-web: wasm
	$(WITH_PG) scripts/bench/web.sh
