'use strict';
// Runs the browser tests (tests/browser/*.test.js, or the files named on
// the command line) with node's test runner and closes with the line
// tests/run-all counts: "browser: N passed, N failed". Bounded: after
// $GUST_BROWSER_TIMEOUT seconds (default 300) the run is killed and fails.
//
//   GUST_BIN=build/gust node tests/browser/run.js [chat.test.js ...]
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const here = __dirname;
const files = process.argv.length > 2
  ? process.argv.slice(2).map((f) => path.resolve(f))
  : fs.readdirSync(here).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join(here, f));
const limit = Number(process.env.GUST_BROWSER_TIMEOUT || 300) * 1000;

// TAP closes with "# pass N", "# fail N", "# cancelled N" (node 18 to 22).
// The runner gets a process group of its own: the test files, the gust
// servers and the Chromiums they start go with it when it is killed.
const child = spawn(process.execPath, ['--test', '--test-reporter=tap', ...files], {
  cwd: here,
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true,
});
const killAll = (sig = 'SIGKILL') => {
  try {
    process.kill(-child.pid, sig);
  } catch (err) { /* gone already */ }
};
let out = '';
child.stdout.on('data', (d) => {
  out += d;
  process.stdout.write(d);
});
let timedOut = false;
const timer = setTimeout(() => {
  timedOut = true;
  console.log(`# killed: the browser tests ran longer than ${limit / 1000} s`);
  // SIGTERM first: puppeteer then closes its Chromium (which has a process
  // group of its own), lib/gust.js kills its servers on exit.
  killAll('SIGTERM');
  setTimeout(killAll, 5000).unref();
}, limit);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAll();
    process.exit(1);
  });
}

child.on('close', (code) => {
  clearTimeout(timer);
  killAll(); // anything the runner left behind
  const count = (word) => {
    const m = new RegExp(`^# ${word} (\\d+)$`, 'm').exec(out);
    return m ? Number(m[1]) : 0;
  };
  const passed = count('pass');
  let failed = count('fail') + count('cancelled');
  // A run that crashed, timed out, or ran nothing has not passed.
  if (timedOut || (failed === 0 && (code !== 0 || passed === 0))) failed += 1;
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
});
