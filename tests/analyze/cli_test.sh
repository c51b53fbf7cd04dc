#!/bin/sh
# cli_test.sh COLO SOURCE_ROOT - `colo sample` reproduces the shipped
# samples byte for byte; `colo analyze` reports the one checkpoint and
# fails cleanly on bad input.
set -u
colo=$1
src=$2
tmp=$(mktemp -d /tmp/colo-cli-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$colo" sample --out-dir "$tmp" >/dev/null || fail "colo sample"
cmp "$tmp/primary.pcap" "$src/samples/primary.pcap" ||
	fail "primary.pcap differs from samples/"
cmp "$tmp/secondary.pcap" "$src/samples/secondary.pcap" ||
	fail "secondary.pcap differs from samples/"

"$colo" analyze "$src/samples/primary.pcap" "$src/samples/secondary.pcap" \
	-w "$tmp/x.pcap" >"$tmp/out" 2>&1 || fail "analyze exit $?"
grep -q '^checkpoint 1 requested at .*: payload$' "$tmp/out" ||
	fail "no checkpoint line"
grep -q 'flow tcp 10.0.1.10:80 -> 10.0.1.100:40002' "$tmp/out" ||
	fail "wrong flow"
grep -q 'checkpoint requests *1 (payload 1,' "$tmp/out" ||
	fail "not exactly one payload checkpoint"
grep -q 'released *30 frames' "$tmp/out" || fail "not all released"
grep -q '^checkpoint 2' "$tmp/out" && fail "a second checkpoint"
grep -q 'wrote 2 frames' "$tmp/out" || fail "-w frame count"
# the divergent frames read back: analyzing them against themselves
"$colo" analyze -q "$tmp/x.pcap" "$tmp/x.pcap" >"$tmp/out2" ||
	fail "x.pcap unreadable"
grep -q 'primary *2 frames' "$tmp/out2" || fail "x.pcap frame count"

# the built-in sample tells the same story
"$colo" analyze >"$tmp/out3" || fail "analyze without files"
grep -q 'checkpoint requests *1 (payload 1,' "$tmp/out3" ||
	fail "built-in sample"

# the shipped samples are already aligned: every flow's handshake gives
# offset 0, and comparing them as captured tells the same story
grep -q '10.0.1.10:80 -> 10.0.1.100:40002: handshake, secondary seq = primary seq + 0 ' \
	"$tmp/out" || fail "sample flow alignment line"
grep -q 'TCP flows: 3, handshake 3$' "$tmp/out" || fail "alignment counts"
"$colo" analyze --align none --skew 0 "$src/samples/primary.pcap" \
	"$src/samples/secondary.pcap" >"$tmp/out4" || fail "--align none"
grep -q 'checkpoint requests *1 (payload 1,' "$tmp/out4" ||
	fail "--align none on the samples"
grep -q 'clock: secondary timestamps moved by +0.000000 s (given with --skew)' \
	"$tmp/out4" || fail "--skew 0 line"

# bad input: exit 1 with a message on stderr
"$colo" analyze "$tmp/missing.pcap" "$src/samples/secondary.pcap" \
	>/dev/null 2>"$tmp/err"
[ $? -eq 1 ] || fail "missing file: exit status"
grep -q 'missing.pcap: No such file' "$tmp/err" || fail "missing file msg"
"$colo" analyze "$src/samples/README.md" "$src/samples/secondary.pcap" \
	>/dev/null 2>"$tmp/err"
[ $? -eq 1 ] || fail "non-pcap: exit status"
grep -q 'README.md: not a readable capture' "$tmp/err" ||
	fail "non-pcap msg"
"$colo" analyze "$src/samples/primary.pcap" -w /nonexistent/dir/x.pcap \
	"$src/samples/secondary.pcap" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] || fail "unwritable -w: exit status"

# usage errors: exit 2
"$colo" analyze "$src/samples/primary.pcap" >/dev/null 2>&1
[ $? -eq 2 ] || fail "one file: exit status"
"$colo" analyze --compare-timeout abc >/dev/null 2>&1
[ $? -eq 2 ] || fail "bad number: exit status"
"$colo" analyze --align sometimes >/dev/null 2>&1
[ $? -eq 2 ] || fail "bad --align: exit status"
"$colo" analyze --skew 5s >/dev/null 2>&1
[ $? -eq 2 ] || fail "bad --skew: exit status"
"$colo" analyze --bogus >/dev/null 2>&1
[ $? -eq 2 ] || fail "unknown option: exit status"
"$colo" sample extra >/dev/null 2>&1
[ $? -eq 2 ] || fail "sample extra arg: exit status"
"$colo" analyze --help | grep -q 'EXIT STATUS' || fail "--help"
"$colo" sample --help | grep -q 'out-dir' || fail "sample --help"
echo ok
