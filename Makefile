# Kogge — build, test and tooling. `make` alone lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.NOTPARALLEL:
MAKEFLAGS += --no-builtin-rules --no-print-directory

GO        ?= go
TESTFLAGS ?=
FUZZTIME  ?= 60s

# staticcheck 2026.2.2; this version works with Go 1.26. Run through `go run`,
# so it is not a dependency of the module.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Debian packages the build and the tests need; `make deps` installs the missing
# ones, each with its reason below.
DEB_PACKAGES := gcc pkg-config mosquitto mosquitto-clients chromium \
	libpcsclite-dev pcscd vsmartcard-vpcd ausweisapp2 iproute2 libusb-1.0-0-dev \
	libgl1-mesa-dev libxcursor-dev libxrandr-dev libxinerama-dev libxi-dev \
	libxxf86vm-dev xvfb fonts-dejavu-core

why.gcc               := C compiler for cgo (SQLite through mattn/go-sqlite3)
why.pkg-config        := finds C libraries for cgo builds
why.mosquitto         := external MQTT broker for the broker black-box tests
why.mosquitto-clients := mosquitto_pub and mosquitto_sub for the broker black-box tests
why.chromium          := headless browser for the dashboard tests (chromedp)
why.libpcsclite-dev   := PC/SC headers for the card-reader driver (cgo)
why.pcscd             := the PC/SC daemon the card-reader tests talk to
why.vsmartcard-vpcd   := virtual reader for pcscd; the tests plug a virtual card of ours into it
why.ausweisapp2       := the real eID SDK peer for the eID driver tests (headless)
why.iproute2          := ip, to bring up loopback in the network namespace of the eID tests
why.libusb-1.0-0-dev  := libusb headers for the USB printer transport (gousb, cgo)
why.libgl1-mesa-dev   := OpenGL headers for the kiosk and handheld UIs (fyne)
why.libxcursor-dev    := X11 cursor headers for the fyne window driver
why.libxrandr-dev     := X11 RandR headers for the fyne window driver
why.libxinerama-dev   := X11 Xinerama headers for the fyne window driver
why.libxi-dev         := X11 input headers for the fyne window driver
why.libxxf86vm-dev    := X11 video-mode headers for the fyne window driver
why.xvfb              := a virtual X server for the UI smoke tests and screenshots
why.fonts-dejavu-core := a system font with Arabic, Cyrillic and Turkish letters for the touch screens
why.npm               := installs the pinned axe-core for the accessibility tests of the dashboard

.PHONY: help deps build test check-fmt vet fuzz demo bench bench-agent lint

help: ## list the targets
	@echo "Kogge make targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z-]*:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo
	@echo "Variables: TESTFLAGS (extra go test flags, e.g. TESTFLAGS='-run TestX -v'),"
	@echo "           FUZZTIME (per fuzz target, default 60s), GO (go command)."

deps: ## install the Debian packages the build and tests need (only missing ones)
	@declare -A why=( $(foreach p,$(DEB_PACKAGES) npm,[$(p)]='$(why.$(p))') ); \
	missing=(); \
	for p in $(DEB_PACKAGES); do \
	  status=$$(dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null || true); \
	  [[ $$status == "install ok installed" ]] || missing+=("$$p"); \
	done; \
	command -v npm >/dev/null || missing+=(npm); \
	if (( $${#missing[@]} == 0 )); then \
	  echo "deps: all Debian packages present ($(DEB_PACKAGES))"; \
	  exit 0; \
	fi; \
	echo "deps: installing missing Debian packages:"; \
	for p in "$${missing[@]}"; do printf '  %-18s %s\n' "$$p" "$${why[$$p]:-}"; done; \
	sudo=; (( $$(id -u) == 0 )) || sudo=sudo; \
	$$sudo apt-get update; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$${missing[@]}"

build: ## go build ./... and build every cmd/* main into bin/
	$(GO) build ./...
	@mkdir -p bin
	@for dir in cmd/*/; do \
	  [[ -d $$dir ]] || continue; \
	  name=$$(basename "$$dir"); \
	  echo "$(GO) build -o bin/$$name ./cmd/$$name"; \
	  $(GO) build -o "bin/$$name" "./cmd/$$name"; \
	done

test: deps check-fmt vet ## deps, gofmt check, go vet, race tests (TESTFLAGS=...), then the UI smoke tests under Xvfb
	$(GO) test -race -timeout 12m $(TESTFLAGS) ./...
	$(GO) test -tags xvfb -run '^TestXvfb' $(TESTFLAGS) ./kiosk/ui ./mobile-agent/ui

check-fmt: ## fail listing the Go files gofmt would change
	@unformatted=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path './bin/*' -print0 \
	  | xargs -0 -r gofmt -l); \
	if [[ -n $$unformatted ]]; then \
	  echo "gofmt: these files are not formatted (run gofmt -w on them):"; \
	  echo "$$unformatted" | sed 's/^/  /'; \
	  exit 1; \
	fi; \
	echo "gofmt: ok"

vet: ## go vet ./...
	$(GO) vet ./...

fuzz: ## run every Fuzz* target one after another, each for FUZZTIME (default 60s)
	@GO='$(GO)' FUZZTIME='$(FUZZTIME)' bash scripts/fuzz.sh

demo: build ## the main job on embedded defaults: fleet server, bridges, procedures and a fleet (kogge-sim demo; Ctrl-C stops)
	./bin/kogge-sim demo

bench: build ## benchmark scenarios (kogge-sim bench): prints a table, appends to bench-results.json
	./bin/kogge-sim bench --out=bench-results.json

bench-agent: ## agent benchmarks: group commit, drain rate, idle memory
	$(GO) test -run='^$$' -bench='BenchmarkCommitRatio' -benchtime=1x ./agent/store/
	$(GO) test -run='^$$' -bench='BenchmarkDrain|BenchmarkIdleMemory' -benchtime=1x ./agent/

lint: deps check-fmt vet ## gofmt check, go vet and staticcheck
	$(GO) run $(STATICCHECK) ./...
