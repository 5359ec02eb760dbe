#!/usr/bin/env bash
# Runs every Go fuzz target (func FuzzXxx(f *testing.F) in a *_test.go file) of
# the module, one after another, each for FUZZTIME (default 60s). Stops at the
# first failure. Usage: scripts/fuzz.sh   (or make fuzz FUZZTIME=10s)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
# Minimising a new interesting input may otherwise take a minute per input on
# a loaded machine, during which nothing is fuzzed (and the coordinator may
# give up on a worker).
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-5s}

# "dir<TAB>name" for every target, sorted; testdata, vendor and hidden
# directories are not packages of ours.
targets=()
while IFS= read -r line; do
  targets+=("$line")
done < <(
  find . \( -name testdata -o -name vendor -o -name '.?*' \) -prune -o -type f -name '*_test.go' -print0 |
    xargs -0 -r grep -HoE '^func Fuzz[[:alnum:]_]*\([[:alnum:]_]+ \*testing\.F\)' |
    sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[[:alnum:]_]*)\(.*#\1\t\2#' |
    sort -u || true
)

if (( ${#targets[@]} == 0 )); then
  echo "fuzz: no Fuzz* targets found; nothing to run"
  exit 0
fi

echo "fuzz: ${#targets[@]} target(s), ${FUZZTIME} each"
ran=()
for t in "${targets[@]}"; do
  dir=${t%%$'\t'*}
  name=${t#*$'\t'}
  echo
  echo "fuzz: [$(( ${#ran[@]} + 1 ))/${#targets[@]}] $name in $dir"
  if ! "$GO" test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" -fuzzminimizetime="$FUZZMINIMIZETIME" "$dir"; then
    echo
    echo "fuzz: FAILED: $name in $dir (after ${#ran[@]} target(s) passed)." >&2
    echo "fuzz: if the fuzzer found a failing input, it is saved under $dir/testdata/fuzz/$name/;" >&2
    echo "fuzz: replay it with: $GO test -run='^${name}\$' $dir" >&2
    echo "fuzz: fix the code and commit that input as a regression case." >&2
    exit 1
  fi
  ran+=("$name ($dir)")
done

echo
echo "fuzz: all ${#ran[@]} target(s) passed, ${FUZZTIME} each:"
printf '  %s\n' "${ran[@]}"
