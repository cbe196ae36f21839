"""Runs every tests/integration/test_*.py module and prints the totals as
"N passed, N failed" (unittest has no such closing line)."""
import faulthandler
import os
import sys
import unittest

# A hung test must not hang the whole run: after GUST_TEST_TIMEOUT seconds
# print every thread's stack (where it hangs) and exit non-zero.
faulthandler.dump_traceback_later(float(os.environ.get("GUST_TEST_TIMEOUT", "300")), exit=True)

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
suite = unittest.defaultTestLoader.discover(here, pattern=sys.argv[1] if len(sys.argv) > 1 else "test_*.py")
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
passed = result.testsRun - failed - len(result.skipped)
print("binary: %s" % os.environ.get("GUST_BIN", "build/gust"))
print("integration: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
