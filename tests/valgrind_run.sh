#!/bin/sh
# valgrind_run.sh PROGRAM [ARGS...]: run PROGRAM under valgrind memcheck, one log per process in
# $PDR_VG_LOGDIR (default ./valgrind-logs). Used by the PDR_VALGRIND=ON build (CMakeLists.txt):
# every C test runs through it, and the e2e tests get tests/valgrind_pdr.sh as their `pdr`.
# Exit 99 when memcheck finds an error (invalid access, uninitialised value, definite leak);
# tests/valgrind_check.sh then summarises the logs. Suppressions: tests/valgrind.supp (libraries
# pdr links, never pdr's own code).
here=$(cd "$(dirname "$0")" && pwd)
logdir=${PDR_VG_LOGDIR:-valgrind-logs}
mkdir -p "$logdir"
# tests that can do less work under valgrind's ~50x slowdown read this
export PDR_UNDER_VALGRIND=1
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --num-callers=30 --suppressions="$here/valgrind.supp" \
    --log-file="$logdir/%p.log" "$@"
