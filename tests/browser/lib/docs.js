'use strict';
// An example app of docs/, exactly as the page shows it: a block marked
// `lua example file=NAME` (docs/CONVENTIONS.md), written into a new
// directory with the files the page saved before it. The page is read by
// tests/docs/blocks.py, the docs suite's own reader, so the docs are the
// one source of the example and both suites see the same app.
//
//   const ex = docsExample('docs/guide/websockets.md', 'chat.lua');
//   await browser.session('guide-chat', { app: ex.app, cwd: ex.dir }, ...);
//   ex.remove();
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ROOT } = require('./gust');

const BLOCKS = path.join(ROOT, 'tests', 'docs', 'blocks.py');

// `page` is a path from the repository root. Throws (with blocks.py's
// message) when the page has no such example.
function docsExample(page, file) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gust-docs-example-'));
  try {
    execFileSync('python3', [BLOCKS, 'extract', path.join(ROOT, page), file, dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 30000,
    });
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    const why = err.stderr ? String(err.stderr).trim() : err.message;
    throw new Error(`cannot extract ${file} from ${page}: ${why}`);
  }
  return {
    dir,
    app: path.join(dir, file),
    source: fs.readFileSync(path.join(dir, file), 'utf8'),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

module.exports = { docsExample };
