#!/usr/bin/env bash
# Runs ring3's tests and adds up their TAP: every unit-test binary in
# build/tests/ (tests/unit), then every executable tests/<dir>/*.sh (or only
# the directories named on the command line). Each file's output is kept in
# build/test-logs/. The last line is "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
logs=build/test-logs
mkdir -p "$logs"

files=()
[ $# -eq 0 ] && set -- tests/unit tests/guest tests/boot tests/nested tests/cli
for d in "$@"; do
	if [ "${d%/}" = tests/unit ]; then # the unit tests are built binaries
		for t in build/tests/test_*; do
			[ -x "$t" ] && [ "${t%.d}" = "$t" ] && files+=("$t")
		done
	fi
	for t in "$d"/*.sh; do
		[ -x "$t" ] && files+=("$t")
	done
done

passed=0 failed=0 skipped=0
for t in "${files[@]}"; do
	name=$(basename "$t")
	log="$logs/$name.log"
	start=$(date +%s)
	timeout --kill-after=10 "${RING3_TEST_TIMEOUT:-900}" "$t" </dev/null >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	p=$(grep -cE '^ok [0-9]+' "$log" | tr -d ' ')
	s=$(grep -cE '^ok [0-9]+.*# *(SKIP|skip)' "$log" | tr -d ' ')
	f=$(grep -cE '^not ok [0-9]+' "$log" | tr -d ' ')
	p=$((p - s))
	if grep -qE '^1\.\.0 *# *(SKIP|skip)' "$log"; then
		s=$((s + 1))
		echo "ok - $name: skipped ($(grep -m1 -oE '# *(SKIP|skip).*' "$log"))"
	fi
	# A test that died without saying "not ok" still failed.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name: exited with status $rc (timeout is 124); see $log"
		tail -5 "$log" | sed 's/^/#   /'
	fi
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	if [ "$f" -gt 0 ]; then
		echo "not ok - $name: $p passed, $f failed, $s skipped (${secs}s)"
		grep -E -A3 '^not ok' "$log" | head -40 | sed 's/^/#   /'
	elif ! grep -qE '^1\.\.0 *# *(SKIP|skip)' "$log"; then
		echo "ok - $name: $p passed, $s skipped (${secs}s)"
	fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
