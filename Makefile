# veil: a thin wrapper around Meson and ninja.
#   make          build ./build/veil
#   make run      install missing packages, build, start the proxy on the demo data dir
#   make test     install missing packages, build with ASan+UBSan, run every test
#   make bench    build optimized, run the benchmarks, write bench/results/latest.md
#   make install  install veil, libveil, headers and veil.pc under PREFIX
PREFIX ?= /usr/local
BUILD  ?= build
TBUILD ?= build-test

.PHONY: all deps run test unit e2e bench install clean format-check

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	@scripts/deps.sh build
	meson setup $(BUILD) --prefix=$(PREFIX) --buildtype=debugoptimized

$(TBUILD)/build.ninja:
	@scripts/deps.sh test
	meson setup $(TBUILD) --buildtype=debug -Db_sanitize=address,undefined \
		-Db_lundef=false -Dsanitized=true

run: all
	@scripts/run.sh ./$(BUILD)/veil

test: $(TBUILD)/build.ninja
	@scripts/deps.sh test
	ninja -C $(TBUILD)
	@tests/run.sh $(TBUILD)

bench: all
	@scripts/deps.sh bench
	@bench/run.sh ./$(BUILD)

install: all
	meson install -C $(BUILD) --destdir "$(DESTDIR)"

clean:
	rm -rf $(BUILD) $(TBUILD)
