#!/bin/sh
# profile.sh: CPU and allocation profiles of one benchmark.
#
#	bench/profile.sh PATTERN [BENCHTIME] [FOCUS] [OUTDIR]
#
# e.g.
#
#	bench/profile.sh 'SendReceipt/members=1M/batch=1/goroutines=1/cache=warm/store=pebble' 10s 'Engine\)\.SendMessageReadReceipt$'
#
# Builds the bench test binary into OUTDIR (default: a new temp dir, so that
# nothing is written into the module), runs the benchmarks matching PATTERN
# once with -cpuprofile and -memprofile, and prints the top of each profile.
# Setup (group creation, filling readers) runs outside the benchmark timer
# but inside the profiles: FOCUS (a pprof -focus regexp, default: the whole
# profile) keeps only the samples under the measured call, e.g.
# TrackMessage, SendMessageReadReceipt, GetGroupMessageReadMemberList.
# (MemberPage setup sends receipts: focusing on SendMessageReadReceipt there
# would count setup.) The profiles stay in OUTDIR for `go tool pprof`.
set -eu
pattern=${1:?usage: profile.sh PATTERN [BENCHTIME] [FOCUS] [OUTDIR]}
benchtime=${2:-5s}
focus=${3:-.}
out=${4:-$(mktemp -d /tmp/readreceipt-prof.XXXXXX)}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
(cd "$here" && go test -c -o "$out/bench.test" .)
(cd "$out" && ./bench.test -test.run '^$' -test.bench "$pattern" -test.benchtime "$benchtime" \
	-test.cpuprofile cpu.pprof -test.memprofile mem.pprof) | tee "$out/bench.txt"
pp() { go tool pprof -top -focus="$focus" "$@" "$out/bench.test"; }
echo "== cpu, flat =="
pp -nodecount=25 "$out/cpu.pprof" 2>/dev/null | sed -n '1,32p'
echo "== cpu, cumulative =="
pp -cum -nodecount=45 "$out/cpu.pprof" 2>/dev/null | sed -n '6,52p'
echo "== alloc_space, flat =="
pp -sample_index=alloc_space -nodecount=20 "$out/mem.pprof" 2>/dev/null | sed -n '1,27p'
echo "== alloc_objects, flat =="
pp -sample_index=alloc_objects -nodecount=20 "$out/mem.pprof" 2>/dev/null | sed -n '5,27p'
echo "profiles in $out"
