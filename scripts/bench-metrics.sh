#!/usr/bin/env bash
# The cost of the Prometheus metrics on the core benchmarks: the keyed-sum
# and stateless pipelines of internal/benchjob, without and with a scraper
# fetching /metrics every second, interleaved so that a change in the
# machine's load hits both alike. Prints one line per run; compare the
# medians of records/s and cpu-ns/record (docs/metrics.md "Cost").
#
#   scripts/bench-metrics.sh [ROUNDS]     (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
bin=$(mktemp -d)/metrics.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" ./metrics
cd metrics
for ((i = 1; i <= rounds; i++)); do
	for spec in PipelineKeyedSum:2000000 PipelineKeyedSumScraped:2000000 PipelineStateless:50000000 PipelineStatelessScraped:50000000; do
		name=${spec%%:*} n=${spec##*:}
		"$bin" -test.run '^$' -test.bench "^Benchmark${name}\$" -test.benchtime "${n}x" | grep '^Benchmark'
	done
done
