# mk/web.mk — the browser: wasm client, dashboard, their tests and size budget.
#
#   make wasm       wasm/dist/{bitkit.wasm,bitkit.wasm.gz,bitkit.wasm.br,wasm_exec.js,bitkit.mjs,bitkit.d.ts,bitkit.d.mts,package.json,
#                   kysely.mjs,kysely.d.mts,drizzle.mjs,drizzle.d.mts}
#   make wasm-pack  wasm/dist/bitkit-dev-client-<version>.tgz (npm pack of wasm/dist)
#   make web        the dashboard (esbuild bundle of web/app.js + CodeMirror, web/build.mjs) + wasm client
#                   into server/internal/webui/dist (embedded by bitd)
#   make wasm-size  fails when gzip -9 of bitkit.wasm exceeds WASM_GZIP_BUDGET bytes
#   make test-web   wasm-size + the js/wasm unit tests (under Node) + tsc --noEmit over web/test/ts-example
#                   (the headless-Chromium e2e tests run in `go test ./wasm` and `go test ./web` of the root module)
#   make bench-web  scripts/bench/web.sh: wasm size, navigation → API-ready vs plain fetch, and the
#                   dashboard's figures (editor ready, first row of 200k, scroll frames, bytes)

WASM_DIST := wasm/dist
WEBUI_DIST := server/internal/webui/dist
# 1.2 MB: the budget for the gzipped module. core's js/wasm build links no
# net/http (core.Fetcher over fetch, jsfetch), no net/url (internal/urlx),
# no math/big, no database/sql: keep it that way (core's TestNoNetHTTPUnderJS).
WASM_GZIP_BUDGET ?= 1200000
# Go's inlining is off for bitkit's own packages in the browser module: it
# is ~14 KB smaller gzipped, and little hot runs there (streamed rows are
# decoded in JavaScript). The tests that build the module (wasm/e2e_test.go,
# web/dashboard_test.go) use the same flags.
WASM_BUILD_FLAGS := -trimpath -gcflags=github.com/bitkit-dev/bitkit/...=-l -ldflags="-s -w"

TEST_TARGETS += test-web
BENCH_TARGETS += bench-web
LINT_TARGETS += lint-web

.PHONY: wasm wasm-pack web wasm-size test-web bench-web lint-web

## wasm: the browser module and its loader in wasm/dist
wasm:
	@mkdir -p $(WASM_DIST)
	GOOS=js GOARCH=wasm $(GO) build $(WASM_BUILD_FLAGS) -o $(WASM_DIST)/bitkit.wasm ./wasm
	cp "$$($(GO) env GOROOT)/lib/wasm/wasm_exec.js" wasm/bitkit.mjs wasm/bitkit.d.ts wasm/package.json $(WASM_DIST)/
	cp wasm/kysely.mjs wasm/kysely.d.mts wasm/drizzle.mjs wasm/drizzle.d.mts $(WASM_DIST)/
	cp wasm/bitkit.d.ts $(WASM_DIST)/bitkit.d.mts
	node scripts/precompress.mjs $(WASM_DIST)/bitkit.wasm

## wasm-pack: wasm/dist/bitkit-dev-client-<version>.tgz, the npm package of the client
wasm-pack: wasm
	cd $(WASM_DIST) && npm pack --pack-destination .

## web: the dashboard, embedded into bitd
web: wasm
	@find $(WEBUI_DIST) -mindepth 1 ! -name README.md ! -name .gitignore -delete
	@[ -d web/node_modules/esbuild ] || { echo "web/node_modules is missing: run scripts/deps.sh (npm ci in web)"; exit 1; }
	cp $(addprefix $(WASM_DIST)/,bitkit.wasm wasm_exec.js bitkit.mjs bitkit.d.ts) $(WEBUI_DIST)/
	if [ -f $(WASM_DIST)/bitkit.wasm.gz ]; then cp $(WASM_DIST)/bitkit.wasm.gz $(WEBUI_DIST)/; else gzip -9 -k $(WEBUI_DIST)/bitkit.wasm; fi
	node web/build.mjs $(WEBUI_DIST)
	gzip -9 -k -f $(WEBUI_DIST)/app.js $(WEBUI_DIST)/style.css
	@echo "dashboard in $(WEBUI_DIST); rebuild bitd (make build) to embed it"

## wasm-size: fail when bitkit.wasm gzipped is over its budget
wasm-size: wasm
	@raw=$$(stat -c %s $(WASM_DIST)/bitkit.wasm); gz=$$(gzip -9 -c $(WASM_DIST)/bitkit.wasm | wc -c); \
	echo "bitkit.wasm: $$raw bytes raw, $$gz bytes gzip -9 (budget $(WASM_GZIP_BUDGET))"; \
	if [ $$gz -gt $(WASM_GZIP_BUDGET) ]; then echo "bitkit.wasm gzipped is over the budget: shrink the wasm dependencies (see docs/web.md)"; exit 1; fi

## test-web: the wasm size budget, js/wasm unit tests, the TypeScript example
test-web: wasm-size
	PATH="$$PATH:$$($(GO) env GOROOT)/lib/wasm" GOOS=js GOARCH=wasm $(GO) test -count=1 ./wasm
	cd web/test && npx --no-install tsc --noEmit -p ts-example

## lint-web: go vet of the wasm module
lint-web:
	GOOS=js GOARCH=wasm $(GO) vet ./wasm

## bench-web: wasm size, start-up and streaming vs a plain fetch
bench-web: wasm
	$(WITH_PG) scripts/bench/web.sh
