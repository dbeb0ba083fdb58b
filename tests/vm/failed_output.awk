# From one test binary's -test.v output (tests/vm/run.sh feeds it the
# guest console between its markers), print each failed top-level test's
# lines (=== RUN to --- FAIL: what it logged, the daemon output its
# cleanups log) and, when the binary panicked (test timeout), the running
# test's lines with the panic and its dump. At most 500 lines per block:
# the first and the last 250.
function flush(  i) {
  if (n <= 500) { for (i = 1; i <= n; i++) print buf[i]; return }
  for (i = 1; i <= 250; i++) print buf[i]
  print "[... " n - 500 " lines left out ...]"
  for (i = n - 249; i <= n; i++) print buf[i]
}
/^=== RUN   [^\/ ]+$/ { n = 0 }
/^panic: / { p = 1 }
{ buf[++n] = $0 }
/^--- FAIL: / { flush(); n = 0; next }
/^--- (PASS|SKIP): / { n = 0 }
END { if (p) flush() }
