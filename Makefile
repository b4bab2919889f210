# Vatio build. `make run` and `make test` are all a new user needs.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO      ?= go
ECHARTS := dashboard/assets/vendor/echarts.min.js

.PHONY: all build run test lint bench fuzz release assets clean docs

all: build

# Front-end assets come from the npm registry at build time (pinned in
# package.json / package-lock.json) and are embedded into the binary.
# Every file the binary serves is compressed here, once, beside itself:
# name.br (brotli at its best quality) and name.gz (gzip -9), embedded
# with it and served ready-made (internal/asset). A file left out (a new
# one before make runs again) is compressed by the binary instead.
SERVED := $(sort $(ECHARTS) api/openapi.json $(filter-out %.br %.gz,$(wildcard dashboard/assets/*.* dashboard/assets/vendor/*.*)))

assets: $(ECHARTS) $(SERVED:=.br) $(SERVED:=.gz)

%.br %.gz: % internal/asset/precompress.mjs
	node internal/asset/precompress.mjs $<

$(ECHARTS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(dir $@)
	cp node_modules/echarts/dist/echarts.min.js $@
	cp node_modules/echarts/LICENSE $(dir $@)echarts.LICENSE.txt
	cp node_modules/echarts/NOTICE $(dir $@)echarts.NOTICE.txt

# The OpenAPI linter TestOpenAPILint runs (Redocly CLI, pinned by its lock):
# a tool of the tests, which make build never downloads.
OPENAPI_LINT := api/testdata/openapi-lint/node_modules/.bin/redocly

$(OPENAPI_LINT): api/testdata/openapi-lint/package.json api/testdata/openapi-lint/package-lock.json
	cd api/testdata/openapi-lint && npm ci --no-audit --no-fund --loglevel=error
	touch $@

build: assets
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vatio ./cmd/vatio

run: build
	./bin/vatio

# The store's suite runs twice: on bbolt, then on PostgreSQL (the server of
# VATIO_TEST_POSTGRES, or a private cluster of Debian's postgresql).
# cmd/vatio's end-to-end suite takes about 10 minutes under the race
# detector on 2 cores, beyond go test's default limit.
test: assets $(OPENAPI_LINT)
	$(GO) test -race -count=1 -timeout 30m ./...
	VATIO_TEST_STORE=postgres $(GO) test -race -count=1 -timeout 30m ./store

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Write the generated pages of docs/ (configuration, commands, API); the
# docs test fails while they differ from the code.
docs: assets
	$(GO) test -run '^TestDocsGenerated$$' -count=1 ./cmd/vatio -update-docs
	$(GO) test -run '^TestDocsStatement$$' -count=1 ./internal/statement -update-docs

bench: assets
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

# Fuzz each decoder and parser for FUZZTIME (default 30s each).
FUZZTIME ?= 30s
FUZZ_METER := FuzzDecode FuzzReadCSV FuzzDatadis FuzzGreenButton FuzzTasmota FuzzShelly FuzzEmonhub FuzzZigbee2MQTT FuzzDSMR FuzzGeneric FuzzParseImportOptions
FUZZ_API := FuzzParseLimit FuzzParseTime FuzzParsePatch FuzzDecodeBody FuzzImportForm
FUZZ_STORE := FuzzDecodeBlock FuzzBlockRoundTrip FuzzStaging FuzzWALFrame
FUZZ_TARIFF := FuzzParseClock FuzzSpec
FUZZ_AUTH := FuzzToken FuzzLogin
FUZZ_CRYPT := FuzzReader
FUZZ_ASSET := FuzzNegotiate
FUZZ_DASHBOARD := FuzzTariffForm FuzzRuleForm
FUZZ_MODBUS := FuzzDecode FuzzRequest
fuzz:
	@for f in $(FUZZ_METER); do $(GO) test ./internal/meter -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done
	@for f in $(FUZZ_API); do $(GO) test ./api -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done
	@for f in $(FUZZ_STORE); do $(GO) test ./store -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done
	@for f in $(FUZZ_TARIFF); do $(GO) test ./internal/tariff -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done
	@for f in $(FUZZ_AUTH); do $(GO) test ./internal/auth -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done
	@for f in $(FUZZ_CRYPT); do $(GO) test ./internal/crypt -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done
	@for f in $(FUZZ_ASSET); do $(GO) test ./internal/asset -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done
	@for f in $(FUZZ_DASHBOARD); do $(GO) test ./dashboard -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done
	@for f in $(FUZZ_MODBUS); do $(GO) test ./internal/modbus -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done

# Static binaries for the machines Vatio runs on, with checksums.
release: assets
	@mkdir -p bin/release
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/release/vatio-linux-amd64 ./cmd/vatio
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/release/vatio-linux-arm64 ./cmd/vatio
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/release/vatio-linux-armv7 ./cmd/vatio
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/release/vatio-linux-armv6 ./cmd/vatio
	cd bin/release && sha256sum vatio-* > SHA256SUMS

clean:
	rm -rf bin node_modules dashboard/assets/vendor api/testdata/openapi-lint/node_modules
