'use strict';
// The real gust binary for a browser test: started on a free loopback port
// (--port 0, the port read from its start line), stopped with SIGTERM, and
// checked to have exited 0 with no sanitizer report -- the contract of
// tests/integration/gusttest.py, in the language of the browser driver.
//
// The binary comes from $GUST_BIN (default build/gust); apps are paths
// relative to the repository root (apps/chat/app.lua), or absolute (an
// example of docs/, extracted by lib/docs.js).
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const GUST_BIN = process.env.GUST_BIN || path.join(ROOT, 'build', 'gust');
const START_LINE = /listening on http:\/\/(127\.0\.0\.1|\[::1\]|localhost):(\d+)/;

// Servers still running when the process exits (a failed start, a test
// killed by its timeout) are killed with it: none outlives the run.
const running = new Set();
process.on('exit', () => {
  for (const proc of running) proc.kill('SIGKILL');
});

function hasSanitizerReport(text) {
  return /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/
    .test(text);
}

function exited(proc) {
  return proc.exitCode !== null || proc.signalCode !== null;
}

// Resolves true when `proc` has exited within `ms`, false otherwise.
function waitExit(proc, ms) {
  if (exited(proc)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => { proc.off('exit', onExit); resolve(false); }, ms);
    function onExit() { clearTimeout(timer); resolve(true); }
    proc.once('exit', onExit);
  });
}

class Gust {
  // Starts `app` in `cwd` (default: the repository root) and resolves once
  // gust printed its start line. Rejects
  // (with what gust wrote on stderr) if that takes longer than `timeout` ms
  // or gust exits first.
  static async start(app, { args = [], env = {}, cwd = ROOT, timeout = 20000 } = {}) {
    if (!fs.existsSync(GUST_BIN)) {
      throw new Error(`no gust binary at ${GUST_BIN} (make build, or set GUST_BIN)`);
    }
    const g = new Gust();
    g.app = path.resolve(ROOT, app);
    g.stderrPath = path.join(os.tmpdir(), `gust-browser-${process.pid}-${Date.now()}.err`);
    const errFd = fs.openSync(g.stderrPath, 'w');
    g.proc = spawn(GUST_BIN, ['--port', '0', ...args, g.app], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', errFd],
    });
    fs.closeSync(errFd);
    running.add(g.proc);
    g.proc.once('exit', () => running.delete(g.proc));
    g.stdout = '';
    g.proc.stdout.on('data', (chunk) => { g.stdout += chunk; });
    g.port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(`no start line within ${timeout} ms`), timeout);
      const onExit = (code, sig) => fail(`exited with ${sig || code}`);
      const onError = (err) => fail(err.message);
      const onData = () => {
        const m = START_LINE.exec(g.stdout);
        if (m) done(() => resolve(Number(m[2])));
      };
      function done(settle) {
        clearTimeout(timer);
        g.proc.off('exit', onExit).off('error', onError);
        g.proc.stdout.off('data', onData);
        settle();
      }
      function fail(why) {
        done(() => {
          g.proc.kill('SIGKILL');
          reject(new Error(`gust did not start (${why})\nstdout: ${g.stdout}\nstderr: ${g.stderr()}`));
        });
      }
      g.proc.on('exit', onExit).on('error', onError);
      g.proc.stdout.on('data', onData);
    });
    g.origin = `http://127.0.0.1:${g.port}`;
    return g;
  }

  url(p = '/') {
    return this.origin + p;
  }

  // Everything gust wrote on stderr so far (also after stop()).
  stderr() {
    if (this.lastStderr !== undefined) return this.lastStderr;
    try {
      return fs.readFileSync(this.stderrPath, 'utf8');
    } catch (err) {
      return `(${err.message})`;
    }
  }

  // GET `p` and parse the body as JSON, e.g. the chat's /a/stats.
  getJSON(p, timeout = 5000) {
    return new Promise((resolve, reject) => {
      const req = http.get(this.url(p), { timeout }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { body += d; });
        res.on('end', () => {
          try {
            resolve(JSON.parse(body));
          } catch (err) {
            reject(new Error(`GET ${p}: ${res.statusCode} ${body.slice(0, 200)}`));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${p}: no answer within ${timeout} ms`)));
      req.on('error', reject);
    });
  }

  // SIGTERM, then up to `timeout` ms for a graceful exit. With `check`,
  // rejects unless gust exited 0 with no sanitizer report. Idempotent.
  async stop({ check = true, timeout = 15000 } = {}) {
    if (this.lastStderr === undefined) {
      if (!exited(this.proc)) this.proc.kill('SIGTERM');
      const stopped = await waitExit(this.proc, timeout);
      if (!stopped) {
        this.proc.kill('SIGKILL');
        await waitExit(this.proc, 5000);
      }
      this.lastStderr = this.stderr();
      fs.rmSync(this.stderrPath, { force: true });
      this.stoppedInTime = stopped;
    }
    if (!check) return;
    const err = this.lastStderr;
    if (!this.stoppedInTime) throw new Error(`gust did not stop within ${timeout} ms\n${err}`);
    if (hasSanitizerReport(err)) throw new Error(`sanitizer report:\n${err}`);
    if (this.proc.exitCode !== 0) {
      throw new Error(`gust exited with ${this.proc.signalCode || this.proc.exitCode}\n${err}`);
    }
  }
}

module.exports = { Gust, GUST_BIN, ROOT };
