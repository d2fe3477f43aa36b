# walrus — see README.md. Targets:
#   make run     build and start walrus serve on the embedded default
#                (data, mount and rsyncd.conf under $(WALRUS_HOME); rsync on 127.0.0.1:8873)
#   make build   build bin/walrus
#   make test    the whole test suite (race detector on), as CI runs it;
#                makes the real WAL corpus first (once, about 30 s)
#   make bench   measurement harnesses on real WAL (makes the corpus first),
#                then make compare (the summary of every path against its peer)
#   make lint    gofmt + go vet
#   make corpus  generate real PostgreSQL WAL into $(WALCACHE)

GO       ?= go
WALCACHE ?= $(CURDIR)/test/testdata/walcache
BENCHOUT ?= $(CURDIR)/bench-results
WALRUS_HOME ?= $(CURDIR)/run
export GOFLAGS ?= -buildvcs=false

.PHONY: run build test bench lint corpus clean

run: build
	bin/walrus serve --home $(WALRUS_HOME) --log-level info

build:
	$(GO) build -ldflags "-X main.version=$$(git describe --tags --always --dirty 2>/dev/null)" -o bin/walrus ./cmd/walrus

# The FUSE tests run first, on their own: under the load of every other
# package at once, fs TestReadersSeeWholeFileDuringIdenticalRecopy has
# failed twice in six runs with an EIO that walrus never returned (the
# kernel's; not understood yet: see the issue notes), and never in 15 runs
# alone. The test keeps asserting; running it alone only lowers the load
# that race needs. The bug itself is open.
test: build corpus
	$(GO) test -race -timeout 10m ./fs/
	$(GO) test -race -timeout 25m $$($(GO) list ./... | grep -v '/fs$$')

corpus:
	test/testdata/mkwal.sh $(WALCACHE) 60

bench: build corpus
	mkdir -p $(BENCHOUT)
	WALRUS_BENCH=1 WALRUS_WALCACHE=$(WALCACHE) $(GO) test -tags bench -count=1 -timeout 60m -v \
		-run 'Test(StoreBench|StatusMemory|StatusScale|ColdStartBench|FrontEndLagBench|Compare.*)$$' ./test/bench/ ./fs/ ./rsyncgw/ 2>&1 \
		| grep -v '^=== \|^--- \|^PASS\|^ok \|level=WARN' | tee $(BENCHOUT)/bench.md
	$(GO) test -run '^$$' -bench . -benchtime 20x ./store/
	$(MAKE) compare

lint:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags bench ./...

clean:
	rm -rf bin $(BENCHOUT)

# make demo     walrus end to end in about a minute: a throwaway PostgreSQL archives
#               through the rsync gateway, is restored by PITR through the mount,
#               and walrus status is printed (test/demo.sh; root, FUSE, PostgreSQL 15)
# make compare  every path of issue 12 against its peer in the same run (walrus vs a stock
#               rsync daemon, a plain directory and pgBackRest on real WAL made in the run:
#               push, cp into the mount, cold/warm restore, rsync pull, stored bytes, PITR,
#               sustained pgbench, status on 1 000 000 synthetic segments), one summary table
#               with ratios, targets and CPU per segment; writes $(BENCHOUT)/compare.md.
#               About 15-20 minutes on 2 cores. Knobs: WALRUS_COMPARE_SEGMENTS (60),
#               WALRUS_COMPARE_SECONDS (sustained run, 60), WALRUS_COMPARE_PITR_ROUNDS (2),
#               WALRUS_COMPARE_STATUS_SEGMENTS (1000000), WALRUS_COMPARE_STOP_AFTER=restore
# make compare-bucket  walrus with its packs in a bucket vs pgBackRest with an S3 repository,
#               both on versitygw: push (local ack, and --ack remote where built), cold/warm
#               restore, S3 requests and bucket bytes per segment; writes
#               $(BENCHOUT)/compare-bucket.md (WALRUS_COMPARE_BUCKET_SEGMENTS, 40)
# make soak     fault injection at length: SIGKILL cycles under mixed load
#               (WALRUS_SOAK_CYCLES, default 50), damage to the data directory,
#               64 concurrent rsync clients (latency and peak RSS), full-disk
#               cycles (store: 50; PostgreSQL through the mount: 10;
#               WALRUS_SOAK_FULLDISK_CYCLES), 1000 calls of walrus put
.PHONY: demo compare compare-bucket soak

soak: build
	mkdir -p $(BENCHOUT)
	WALRUS_SOAK=1 WALRUS_SOAK_CYCLES=$${WALRUS_SOAK_CYCLES:-50} $(GO) test -count=1 -timeout 60m -v ./test/soak/ 2>&1 \
		| grep -v 'level=\|walrus ready\|walrusproc.go' | tee $(BENCHOUT)/soak.txt
	WALRUS_SOAK=1 $(GO) test -count=1 -timeout 60m -v -run 'FullDisk|PutPerCall|PackResumed' ./store/ ./cmd/walrus/ ./test/e2e/ 2>&1 \
		| grep -v 'level=\|walrus ready\|walrusproc.go\|^=== ' | tee -a $(BENCHOUT)/soak.txt

demo: build
	WALRUS_BIN=$(CURDIR)/bin/walrus test/demo.sh

compare: build
	@command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
	mkdir -p $(BENCHOUT)
	WALRUS_BENCH=1 WALRUS_BIN=$(CURDIR)/bin/walrus WALRUS_COMPARE_OUT=$(BENCHOUT)/compare.md \
		$(GO) test -tags bench -count=1 -timeout 45m -v -run '^TestCompare$$' ./test/compare/

compare-bucket: build
	@command -v pgbackrest >/dev/null || apt-get install -y -qq pgbackrest >/dev/null
	mkdir -p $(BENCHOUT)
	WALRUS_BENCH=1 WALRUS_BIN=$(CURDIR)/bin/walrus WALRUS_COMPARE_BUCKET_OUT=$(BENCHOUT)/compare-bucket.md \
		$(GO) test -tags bench -count=1 -timeout 30m -v -run '^TestCompareBucket$$' ./test/compare/
