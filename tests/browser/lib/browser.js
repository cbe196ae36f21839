'use strict';
// Headless Chromium (Debian's /usr/bin/chromium, driven by puppeteer-core)
// for tests that use a page as a person does: type, click, read.
//
//   const browser = await Browser.launch();
//   await browser.session('name', { app: 'apps/chat/app.lua' }, async (s) => {
//     const alice = await s.open('/', { name: 'alice' });  // a page of its own
//     await alice.page.type('#body', 'hi');                // puppeteer's Page
//     await alice.waitFor(() => ..., 'what it waits for');
//   });
//   await browser.close();
//
// A session starts the app with the real gust binary (lib/gust.js), opens
// pages in browser contexts of their own (two pages are two users: no
// shared cookies or storage), and records each page's console, uncaught
// errors, failed requests, HTTP requests and WebSocket traffic. When the
// session's function throws -- or a page had an uncaught error, or gust
// did not exit cleanly -- it keeps a screenshot, the DOM and that log of
// every page, and gust's stderr, in a directory it prints and adds to the
// error. Every wait is bounded.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Gust, GUST_BIN, ROOT } = require('./gust');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Loopback only, nothing fetched from outside: this machine's network is
// closed, and Chromium's own background traffic would only fail.
// (`headless: true` below adds --headless; the user-data-dir is new.)
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const WAIT_MS = Number(process.env.GUST_BROWSER_WAIT_MS || 10000);

// build/test-artifacts/browser/<binary's build dir>-<time>-<pid>, unless
// $GUST_ARTIFACTS names another place. Made only when something failed.
function artifactsRoot() {
  if (process.env.GUST_ARTIFACTS) return process.env.GUST_ARTIFACTS;
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const label = path.basename(path.dirname(GUST_BIN));
  return path.join(ROOT, 'build', 'test-artifacts', 'browser', `${label}-${stamp}-${process.pid}`);
}
let runDir;

// Rejects with `what` if `promise` takes longer than `ms`.
function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Polls `fn` (in node) until it returns something truthy; bounded.
async function waitUntil(fn, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function safeName(s) {
  return String(s).replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 80);
}

// One page of a session and what it did.
class Tab {
  constructor(session, name, context, page) {
    this.session = session;
    this.name = name;
    this.context = context;
    this.page = page;          // puppeteer's Page: type, click, $eval, ...
    this.log = [];             // console, errors, requests, WebSocket frames, in order
    this.pageErrors = [];      // uncaught exceptions and unhandled rejections
    this.requests = [];        // "POST /a/message/new", ...
    this.websockets = [];      // { url, status (101 when opened), closed }
  }

  note(line) {
    const ms = String(Date.now() - this.session.t0).padStart(6);
    this.log.push(`${ms} ms ${line}`);
  }

  // Waits until `fn(...args)`, run in the page, returns something truthy,
  // and returns that. `what` says in the error what never happened.
  // Polled every 20 ms: a change of an input's value is no DOM mutation.
  async waitFor(fn, what, ...args) {
    try {
      const handle = await this.page.waitForFunction(fn, { timeout: WAIT_MS, polling: 20 }, ...args);
      return await handle.jsonValue();
    } catch (err) {
      throw new Error(`${this.name}: ${what}: ${err.message}`);
    }
  }

  // The WebSockets this page opened to `pathname` (handshake answered 101).
  openedSockets(pathname) {
    return this.websockets.filter((ws) => new URL(ws.url).pathname === pathname && ws.status === 101);
  }
}

class Session {
  constructor(browser, name) {
    this.browser = browser;
    this.name = name;
    this.tabs = [];
    this.gust = null;
    this.t0 = Date.now();
  }

  // Opens `url` (a path is taken relative to the session's gust) in a new
  // browser context. `initScript` (a function) runs in the page before any
  // of its own scripts, e.g. to take an API away from it.
  async open(url, { name = `page${this.tabs.length + 1}`, initScript } = {}) {
    if (url.startsWith('/')) url = this.gust.url(url);
    const context = await this.browser.puppeteer.createBrowserContext();
    const page = await context.newPage();
    const tab = new Tab(this, name, context, page);
    this.tabs.push(tab);
    page.setDefaultTimeout(WAIT_MS);
    page.setDefaultNavigationTimeout(WAIT_MS);
    page.on('console', (m) => tab.note(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (err) => {
      tab.pageErrors.push(err);
      tab.note(`uncaught: ${err.stack || err.message || err}`);
    });
    page.on('request', (r) => {
      const u = new URL(r.url());
      tab.requests.push(`${r.method()} ${u.pathname}`);
      tab.note(`request ${r.method()} ${r.url()}`);
    });
    page.on('response', (r) => tab.note(`response ${r.status()} ${r.url()}`));
    page.on('requestfailed', (r) => tab.note(`request failed ${r.url()}: ${r.failure()?.errorText}`));
    // WebSockets are not requests to puppeteer: follow them on a CDP
    // session of our own.
    const cdp = await page.createCDPSession();
    const sockets = new Map();
    cdp.on('Network.webSocketCreated', (e) => {
      const ws = { url: e.url, status: null, closed: false };
      sockets.set(e.requestId, ws);
      tab.websockets.push(ws);
      tab.note(`websocket ${e.url}`);
    });
    cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
      const ws = sockets.get(e.requestId);
      if (ws) ws.status = e.response.status;
      tab.note(`websocket handshake ${e.response.status}`);
    });
    cdp.on('Network.webSocketFrameSent', (e) => tab.note(`websocket sent ${e.response.payloadData}`));
    cdp.on('Network.webSocketFrameReceived', (e) => tab.note(`websocket received ${e.response.payloadData}`));
    cdp.on('Network.webSocketFrameError', (e) => tab.note(`websocket error ${e.errorMessage}`));
    cdp.on('Network.webSocketClosed', (e) => {
      const ws = sockets.get(e.requestId);
      if (ws) ws.closed = true;
      tab.note('websocket closed');
    });
    await cdp.send('Network.enable');
    if (initScript) await page.evaluateOnNewDocument(initScript);
    tab.note(`open ${url}`);
    const res = await page.goto(url, { waitUntil: 'load' });
    if (!res || !res.ok()) throw new Error(`${name}: GET ${url} answered ${res && res.status()}`);
    return tab;
  }

  // Screenshot, DOM and log of every page, and gust's stderr, into `dir`.
  async keep(dir) {
    fs.mkdirSync(dir, { recursive: true });
    for (const tab of this.tabs) {
      const base = path.join(dir, safeName(tab.name));
      fs.writeFileSync(`${base}.console.log`, tab.log.join('\n') + '\n');
      try {
        await bounded(tab.page.screenshot({ path: `${base}.png`, fullPage: true }), 5000, 'screenshot');
        fs.writeFileSync(`${base}.html`, await bounded(tab.page.content(), 5000, 'page content'));
      } catch (err) {
        fs.appendFileSync(`${base}.console.log`, `(no screenshot: ${err.message})\n`);
      }
    }
    if (this.gust) fs.writeFileSync(path.join(dir, 'gust.stderr'), this.gust.stderr());
  }

  async closeTabs() {
    for (const tab of this.tabs) {
      await bounded(tab.context.close(), 5000, `closing ${tab.name}`).catch(() => {});
    }
  }
}

class Browser {
  // A machine without Chromium is an error, not a skip: `make deps`
  // installs it.
  static async launch() {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (make deps does)`);
    }
    let puppeteer;
    try {
      puppeteer = require('puppeteer-core');
    } catch (err) {
      throw new Error(`puppeteer-core is not installed: make tests/browser/node_modules (${err.message})`);
    }
    const b = new Browser();
    b.userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gust-chromium-'));
    try {
      b.puppeteer = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        userDataDir: b.userDataDir,
        timeout: 30000,
        protocolTimeout: 30000,
      });
    } catch (err) {
      fs.rmSync(b.userDataDir, { recursive: true, force: true });
      throw err;
    }
    return b;
  }

  // Runs `fn(session)`; with `app`, against a gust serving it (started in
  // `cwd` before, stopped and checked after). See the top of this file.
  async session(name, { app, args, cwd, allowPageErrors = false } = {}, fn) {
    const s = new Session(this, name);
    let failure = null;
    try {
      if (app) s.gust = await Gust.start(app, { args, cwd });
      await fn(s);
      if (!allowPageErrors) {
        for (const tab of s.tabs) {
          if (tab.pageErrors.length) {
            throw new Error(`${tab.name}: uncaught error in the page: ${tab.pageErrors[0].message}`);
          }
        }
      }
    } catch (err) {
      failure = err;
    }
    if (failure) {
      runDir = runDir || artifactsRoot();
      const dir = path.join(runDir, safeName(name));
      try {
        await s.keep(dir);
        failure.message += `\n  screenshots and console logs kept in ${dir}`;
        console.error(`browser artifacts: ${dir}`);
      } catch (err) {
        failure.message += `\n  (could not keep artifacts in ${dir}: ${err.message})`;
      }
    }
    await s.closeTabs();
    if (s.gust) {
      try {
        await s.gust.stop({ check: !failure });
      } catch (err) {
        failure = err; // gust did not exit cleanly: the pages are closed now
        runDir = runDir || artifactsRoot();
        const dir = path.join(runDir, safeName(name));
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, 'gust.stderr'), s.gust.stderr());
        for (const tab of s.tabs) {
          fs.writeFileSync(path.join(dir, `${safeName(tab.name)}.console.log`), tab.log.join('\n') + '\n');
        }
        failure.message += `\n  gust's stderr and the console logs kept in ${dir}`;
        console.error(`browser artifacts: ${dir}`);
      }
    }
    if (failure) throw failure;
  }

  async close() {
    await bounded(this.puppeteer.close(), 10000, 'closing Chromium').catch(() => {
      this.puppeteer.process()?.kill('SIGKILL');
    });
    fs.rmSync(this.userDataDir, { recursive: true, force: true });
  }
}

module.exports = { Browser, waitUntil, WAIT_MS };
