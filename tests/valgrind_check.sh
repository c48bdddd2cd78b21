#!/bin/sh
# valgrind_check.sh LOGDIR: summarise the memcheck logs of a PDR_VALGRIND=ON test run; exit 1
# when any process had an error or a definite leak (the log is printed).
dir=${1:-valgrind-logs}
n=0; bad=0
for f in "$dir"/*.log; do
  [ -e "$f" ] || continue
  n=$((n + 1))
  if grep -q "ERROR SUMMARY: [1-9]" "$f" || grep -q "definitely lost: [1-9]" "$f"; then
    bad=$((bad + 1))
    echo "== $f"; cat "$f"
  fi
done
echo "valgrind: $n processes checked, $bad with errors or definite leaks"
[ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
