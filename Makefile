# meshd: the whole set-up on a fresh Debian 12 machine, as root.
#
#   make run    install missing Debian packages, build, run meshd in the foreground
#               with conf/meshd.yaml (Ctrl-C stops it and every child cleanly)
#   make test   the same set-up, then every test (unit + integration) via ctest
#   make example-data   the example property roll (sql/example/) into $DATABASE_URL, once
#
# Other targets: build, test-sanitize (ASan+UBSan build, whole suite), fuzz (60 s per target),
# bench (see bench/README.md), clean, clean-pg (removes make run's PostgreSQL cluster).

BUILD       ?= build
BUILD_SAN   ?= build-san
BUILD_FUZZ  ?= build-fuzz
CONFIG      ?= conf/meshd.yaml
WERROR      ?= OFF
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECS   ?= 60

# Debian 12 packages the build, the tests and `make run` need.  The status page's browser test
# (tests/integration/test_page.py) also needs Node.js and npm: Debian's nodejs and npm are
# installed only when no `node` is on the PATH (a machine may have its own Node.js), then
# tests/browser's locked npm packages (playwright-core, driving Debian's chromium).  meshd-report's
# receiver tests run an SMTP server from python3-aiosmtpd (tests/integration/notifyfix.py).
DEB_PKGS := build-essential cmake pkg-config libuv1-dev libpq-dev libyaml-dev libcjson-dev \
            libcurl4-openssl-dev libhttp-parser-dev libarchive-dev libssl-dev libxxhash-dev postgresql-15 python3 tzdata procps chromium \
            prometheus clang-format nginx-light python3-aiosmtpd

.PHONY: all deps build run clean-pg example-data test test-sanitize fuzz bench clean format format-check

all: build

# Installs only what is missing, so a machine that has everything does not touch apt at all.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	    echo "make: installing Debian packages:$$missing"; \
	    if [ "$$(id -u)" != 0 ]; then echo "make: need root to install packages" >&2; exit 1; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
	fi; \
	if [ ! -d tests/browser/node_modules ]; then \
	    echo "make: installing tests/browser's npm packages (npm ci)"; \
	    npm ci --prefix tests/browser --no-audit --no-fund || exit 1; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DMESHD_WERROR=$(WERROR)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# make run without DATABASE_URL: a local cluster (tests/pg/pgctl.sh), database `meshd`, kept in
# /var/tmp/meshd-run-<hash of the checkout's path> (data, log and unix socket; mode 0700, owned
# by postgres as root) rather than in the checkout, which postgres may not be able to enter
# (/root is mode 0700).  The same checkout reuses the same cluster; `make clean-pg` removes it.
# The cluster is started in its own session so Ctrl-C reaches meshd alone; meshd stops its
# children, then the EXIT trap stops the cluster.  With DATABASE_URL set, that database is used.
#
# The example pipeline (README "The example pipeline"): the local database gets the example
# property roll (sql/example/load.sh: schema `property`, EXAMPLE_PARCELS parcels, generated
# only while property.parcels is empty, so once).  A DATABASE_URL of the user's gets it only
# with EXAMPLE=1; EXAMPLE=0 skips it everywhere.  MESHD_WORKER_DIR points meshd at the
# workers this build made (a `worker:` job runs <dir>/meshd-<name>; without it meshd looks in
# ./libexec/meshd); one already in the environment is kept.  The build dir goes first on PATH,
# so a job's `meshctl` (the fleet health check) is this build's.
RUN_PG_DIR  ?= /var/tmp/meshd-run-$(shell printf '%s' '$(CURDIR)' | sha1sum | cut -c1-12)
RUN_PG_DB   ?= meshd
EXAMPLE     ?=
EXAMPLE_PARCELS ?= 50000
MESHD_WORKER_DIR ?= $(abspath $(BUILD))/libexec/meshd

run: build
	$(BUILD)/meshctl check $(CONFIG)
	@MESHD_WORKER_DIR='$(MESHD_WORKER_DIR)'; export MESHD_WORKER_DIR; \
	PATH='$(abspath $(BUILD))':"$$PATH"; export PATH; \
	MESHD_COUNTY_FILES='$(CURDIR)/var/county-files'; export MESHD_COUNTY_FILES; \
	sql/example/county_files.sh "$$MESHD_COUNTY_FILES" || exit 1; \
	for w in refresh scrape validate remediate report; do [ -x "$$MESHD_WORKER_DIR/meshd-$$w" ] || \
	    echo "make run: note: no $$MESHD_WORKER_DIR/meshd-$$w: the jobs with" \
	         "worker: $$w fail until workers/$$w is built"; done; \
	if [ -n "$$DATABASE_URL" ]; then \
	    $(BUILD)/meshctl migrate --url "$$DATABASE_URL" || exit 1; \
	    if [ "$(EXAMPLE)" = 1 ]; then sql/example/load.sh $(EXAMPLE_PARCELS) || exit 1; \
	    else echo "make run: the example data is not put into your DATABASE_URL" \
	              "(make run EXAMPLE=1 does that: schema property)"; fi; \
	    exec $(BUILD)/meshd -c $(CONFIG); \
	fi; \
	echo "make run: PostgreSQL cluster in $(RUN_PG_DIR) (make clean-pg removes it)"; \
	pg=$$(setsid -w tests/pg/pgctl.sh start $(RUN_PG_DIR)) || exit 1; \
	trap 'echo "make run: stopping PostgreSQL ($(RUN_PG_DIR))"; tests/pg/pgctl.sh stop $(RUN_PG_DIR)' EXIT; \
	trap 'echo "make run: interrupted, waiting for meshd to stop"' INT TERM; \
	psql "$$pg" -tAqc "SELECT 1 FROM pg_database WHERE datname = '$(RUN_PG_DB)'" | grep -q 1 || \
	    psql "$$pg" -qc 'CREATE DATABASE $(RUN_PG_DB)' || exit 1; \
	DATABASE_URL=$$(printf '%s' "$$pg" | sed 's/dbname=[^ ]*/dbname=$(RUN_PG_DB)/'); \
	export DATABASE_URL; \
	echo "make run: DATABASE_URL=$$DATABASE_URL"; \
	$(BUILD)/meshctl migrate --url "$$DATABASE_URL" || exit 1; \
	if [ "$(EXAMPLE)" != 0 ]; then sql/example/load.sh $(EXAMPLE_PARCELS) || exit 1; fi; \
	$(BUILD)/meshd -c $(CONFIG); rc=$$?; \
	exit $$rc

# The example property roll into $DATABASE_URL (any database; make run does this itself for
# its local one): the schema, and EXAMPLE_PARCELS parcels if property.parcels is empty.
example-data:
	@if [ -z "$$DATABASE_URL" ]; then echo "make example-data: set DATABASE_URL" >&2; exit 2; fi
	sql/example/load.sh $(EXAMPLE_PARCELS)

# Stops make run's PostgreSQL cluster and removes it with its data (the next make run makes a
# new, empty one).
clean-pg:
	tests/pg/pgctl.sh destroy $(RUN_PG_DIR)

# MESHD_REQUIRE_PG=1: a PostgreSQL test that gets no cluster fails instead of skipping (a test
# that needs one must say `pg` in its md_test() line in CMakeLists.txt).
test: build
	cd $(BUILD) && MESHD_REQUIRE_PG=1 ctest --output-on-failure -j $(JOBS)

test-sanitize: deps
	cmake -S . -B $(BUILD_SAN) -DMESHD_WERROR=$(WERROR) -DMESHD_ASAN=ON -DMESHD_UBSAN=ON \
	    -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(BUILD_SAN) -j $(JOBS)
	cd $(BUILD_SAN) && MESHD_REQUIRE_PG=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

fuzz: deps
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DMESHD_FUZZ=ON
	cmake --build $(BUILD_FUZZ) -j $(JOBS)
	for f in $(BUILD_FUZZ)/fuzz_*; do [ -x "$$f" ] || continue; n=$$(basename $$f); \
	    mkdir -p $(BUILD_FUZZ)/corpus/$$n; seeds=""; \
	    [ -d tests/fuzz/corpus/$$n ] && seeds=tests/fuzz/corpus/$$n; \
	    $$f -max_total_time=$(FUZZ_SECS) $(BUILD_FUZZ)/corpus/$$n $$seeds || exit 1; \
	done

bench: build
	bench/run.sh

# The C sources as .clang-format lays them out (tables marked clang-format off are by hand).
FORMAT_FILES = git ls-files '*.c' '*.h' | grep -v '/corpus/'
format: deps
	$(FORMAT_FILES) | xargs clang-format -i
format-check: deps
	$(FORMAT_FILES) | xargs clang-format --dry-run -Werror

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)

# --- install and deployment tests (docs/deploy.md) --------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=stage]: binaries and workers (cmake --install), the
# systemd unit and its sysusers.d entry under PREFIX/lib, the example config and secrets file in
# /etc/meshd (existing ones are kept), docs.  Without DESTDIR it also creates the meshd user.
PREFIX ?= /usr/local
.PHONY: install deploy-test

install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix $(PREFIX) --strip
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/lib/sysusers.d \
	    $(DESTDIR)$(PREFIX)/share/doc/meshd $(DESTDIR)/etc/meshd
	sed 's|/usr/local|$(PREFIX)|g' systemd/meshd.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/meshd.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/meshd.service
	install -m 0644 systemd/meshd.sysusers.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/meshd.conf
	install -m 0644 docs/deploy.md conf/meshd.system.yaml conf/meshd.yaml conf/meshd.env.example \
	    $(DESTDIR)$(PREFIX)/share/doc/meshd/
	test -e $(DESTDIR)/etc/meshd/meshd.yaml || install -m 0644 conf/meshd.system.yaml $(DESTDIR)/etc/meshd/meshd.yaml
	test -e $(DESTDIR)/etc/meshd/meshd.env || install -m 0600 conf/meshd.env.example $(DESTDIR)/etc/meshd/meshd.env
	@if [ -z "$(DESTDIR)" ]; then \
	    systemd-sysusers $(PREFIX)/lib/sysusers.d/meshd.conf || exit 1; \
	    if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	    echo "make install: edit /etc/meshd/meshd.yaml and meshd.env, then: systemctl enable --now meshd"; \
	fi

# The container image (podman) and the unit under a real systemd (systemd-nspawn), as root; a few
# minutes (tests/deploy/run.sh says what each step checks).
deploy-test: build
	BUILD=$(abspath $(BUILD)) tests/deploy/run.sh
