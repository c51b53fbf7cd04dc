#!/usr/bin/env bash
# dev.sh - the project's two entry points, usable on a fresh Debian 12:
#
#   ./dev.sh run    install what the build and the demo need, prepare the
#                   demo's guest (contrib/guest/build.sh: Debian's kernel
#                   fetched with apt-get download and unpacked with
#                   dpkg-deb -x, never installed, so no initramfs or
#                   boot-loader hook runs here; a busybox initramfs),
#                   build, and run the main job on its embedded default:
#                   colo demo (a QEMU VM pair under TCG, checkpointed,
#                   a divergence repaired, the primary host killed and
#                   failed over)
#   ./dev.sh test   install everything the tests need, then build and run
#                   every test: unit + integration + QEMU interop (release
#                   build), the same under ASan+UBSan, and each libFuzzer
#                   target for a short run (FUZZ_SECONDS, default 30)
#
# Missing Debian packages are installed with apt-get (root needed only
# then). Build directories: build/, build-asan/, build-fuzz/.
# Options are passed on every setup: --reconfigure keeps old ones.
set -euo pipefail
cd "$(dirname "$0")"

# The demo's part: QEMU runs the guests, busybox-static is the guest's
# userland, xz-utils/zstd unpack the kernel's modules, util-linux's flock
# serializes guest builds.
RUN_PKGS=(meson ninja-build gcc pkg-config libpcap-dev libjson-c-dev
	libinih-dev libcpg-dev libquorum-dev libvotequorum-dev
	libcorosync-common-dev libssl-dev iproute2 procps
	qemu-system-x86 busybox-static xz-utils zstd util-linux
	libc6-dev) # libc6-dev: the static libc the guest's udpsum links
TEST_PKGS=("${RUN_PKGS[@]}" libcmocka-dev clang libclang-rt-14-dev
	python3 qemu-system-x86 qemu-utils iproute2 libnbd-bin python3-libnbd
	redis-server redis-tools procps tcpdump corosync corosync-qdevice
	corosync-qnetd util-linux busybox-static openssl xz-utils zstd)

say() { printf '\n==> %s\n' "$*"; }

ensure_packages() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "dev.sh: missing packages: ${missing[*]}" >&2
		echo "dev.sh: run as root, or: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
}

setup() { # dir, meson args...
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@"
	fi
	ninja -C "$dir"
}

cmd_run() {
	local guest
	ensure_packages "${RUN_PKGS[@]}"
	say "the demo's guest: Debian's kernel (apt-get download, dpkg-deb -x)" \
		"and a busybox initramfs (contrib/guest/build.sh)"
	# The demo's own cache (the tests use /var/cache/colo-test/guest).
	guest=$(contrib/guest/build.sh /var/cache/colo/guest | tail -n 1)
	say "building (build/)"
	setup build -Dtests=false
	say "colo demo"
	./build/src/colo demo --guest "$guest"
}

fuzz_run() {
	local secs=${FUZZ_SECONDS:-30} work
	work=$(mktemp -d)
	for t in build-fuzz/tests/fuzz/fuzz_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		local name=${t##*/fuzz_}
		say "fuzzing $name for ${secs}s"
		mkdir -p "$work/$name"
		(cd "$work" && "$OLDPWD/$t" -max_total_time="$secs" \
			-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			"$work/$name" "$OLDPWD/tests/fuzz/corpus/$name") \
			>"$work/$name.log" 2>&1 || {
			tail -n 60 "$work/$name.log"
			echo "dev.sh: fuzz target $name failed;" \
			     "reproducer in $work (kept)" >&2
			return 1
		}
		grep -E "^(stat::number_of_executed_units|Done)" \
			"$work/$name.log" || true
	done
	rm -rf "$work"
}

# meson test in one build dir, then each suite's duration (even on failure).
suite_test() { # dir, meson test args...
	local dir=$1 rc=0
	shift
	meson test -C "$dir" "$@" || rc=$?
	python3 tests/suite_times.py "$dir"
	return $rc
}

cmd_test() {
	ensure_packages "${TEST_PKGS[@]}"
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

	say "release build and all tests (build/)"
	setup build -Dtests=true
	suite_test build --print-errorlogs --num-processes 2

	say "ASan+UBSan build and tests (build-asan/)"
	setup build-asan -Dbuildtype=debug -Db_sanitize=address,undefined \
		-Db_lundef=false
	# The cluster suite (corosync, qdevice, qnetd: timing-bound) and the
	# VM suite (TCG guests: CI budget) count in the release build only.
	suite_test build-asan --print-errorlogs --num-processes 2 \
		--timeout-multiplier 3 --no-suite cluster --no-suite vm

	say "libFuzzer targets (build-fuzz/)"
	CC=clang setup build-fuzz -Dbuildtype=debugoptimized -Dfuzzing=true \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fsanitize=fuzzer-no-link
	fuzz_run
	say "all tests passed"
}

case "${1:-}" in
run) cmd_run ;;
test) cmd_test ;;
*)
	echo "usage: ./dev.sh run | ./dev.sh test" >&2
	exit 2
	;;
esac
