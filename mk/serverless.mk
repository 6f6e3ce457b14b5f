# Serverless adapters: the AWS Lambda function (lambda/) and the
# Cloudflare Worker (workers/). See docs/serverless.md.

LAMBDA_ARCHES := amd64 arm64
# Cloudflare's free-plan limit for a Worker: 3 MiB after gzip.
WORKER_SIZE_LIMIT := 3145728

.PHONY: lambda worker worker-size test-serverless bench-serverless

## lambda: lambda/dist/bitkit-lambda-{amd64,arm64}.zip for provided.al2023
lambda:
	@set -e; for a in $(LAMBDA_ARCHES); do \
		echo "== bootstrap linux/$$a"; \
		(cd lambda && CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -tags lambda.norpc -trimpath -ldflags="-s -w" -o dist/$$a/bootstrap ./cmd/bootstrap); \
		(cd lambda && $(GO) run ./internal/mkzip dist/bitkit-lambda-$$a.zip dist/$$a/bootstrap); \
		ls -l lambda/dist/bitkit-lambda-$$a.zip; \
	done

## worker: the Worker bundle in workers/build/ (needs npm deps: make deps)
worker:
	workers/build.sh build

## worker-size: fail when the Worker upload is 3 MiB or more gzipped
# (as `wrangler deploy --dry-run` measures it; no Cloudflare account needed)
worker-size: worker
	@cd workers && out=$$(WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false CLOUDFLARE_CF_FETCH_ENABLED=false CI=true \
		npx wrangler deploy --dry-run --outdir build/.dry-run 2>&1) || { echo "$$out"; exit 1; }; \
	line=$$(echo "$$out" | grep -o 'Total Upload: .*'); echo "worker bundle: $$line (limit 3072 KiB gzip)"; \
	gz=$$(echo "$$line" | sed -n 's/.*gzip: \([0-9.]*\) KiB.*/\1/p'); \
	if [ -z "$$gz" ]; then echo "worker-size: could not read the gzip size from wrangler's output:"; echo "$$out"; exit 1; fi; \
	if awk -v g="$$gz" 'BEGIN { exit !(g >= 3072) }'; then \
		echo "worker-size: the Worker is $$gz KiB gzipped, at or above Cloudflare's 3 MiB free-plan limit: keep goccy/go-json and other heavy imports out of the js build (docs/serverless.md)"; exit 1; fi

# The e2e tests (real bootstrap under a local Runtime API, real bundle in
# workerd, both against a real bitd) run in test-go with every module; this
# target adds the release builds and the size budget.
## test-serverless: the Lambda zips and the Worker's size budget
test-serverless: lambda worker-size

## bench-serverless: Lambda init/warm latency and Worker cold/warm latency vs native core
bench-serverless:
	cd lambda && $(CURDIR)/$(WITH_PG) $(GO) test -run '^$$' -bench . -benchtime 200x ./cmd/bootstrap
	cd workers && $(CURDIR)/$(WITH_PG) $(GO) test -run '^$$' -bench . -benchtime 100x ./workerdtest

TEST_TARGETS += test-serverless
BENCH_TARGETS += bench-serverless
