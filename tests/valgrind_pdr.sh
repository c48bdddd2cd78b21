#!/bin/sh
# valgrind_pdr.sh ARGS...: `pdr ARGS...` under valgrind (tests/valgrind_run.sh); $PDR_REAL is
# the pdr binary. The e2e tests of a PDR_VALGRIND=ON build use this as their $PDR.
exec "$(dirname "$0")/valgrind_run.sh" "$PDR_REAL" "$@"
