'use strict';
// The user's guide's chat room (docs/guide/websockets.md, "A chat room":
// the app chat.lua and the page it serves) in headless Chromium, tried as
// the guide tells its reader to: "Open http://127.0.0.1:8888/ in two
// browser tabs and talk." The app comes from the guide page itself
// (lib/docs.js reads it as the docs suite does); nothing of it is copied
// here, so a change to the guide is a change to what this test runs.
//
// What the guide's page has: a list #log with one item "from: text" per
// message, the first one the server's "welcome, guestN"; a form #f with the
// input #text and a Send button; one WebSocket to /chat. It shows a
// message with textContent ("never HTML"), which the second test holds it
// to, and it says when the connection closed: "disconnected (CODE)".
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Browser } = require('./lib/browser');
const { docsExample } = require('./lib/docs');

const PAGE = 'docs/guide/websockets.md';
let browser;
let example;

before(async () => {
  example = docsExample(PAGE, 'chat.lua');
  browser = await Browser.launch();
});
after(async () => {
  if (browser) await browser.close();
  if (example) example.remove();
});

// The guide's app served by gust (extra gust options in `args`), in a
// session of pages (lib/browser.js).
function session(name, fn, args = []) {
  return browser.session(name, { app: example.app, cwd: example.dir, args }, fn);
}

function shown(tab) {
  return tab.page.$$eval('#log li', (items) => items.map((li) => li.textContent));
}

// Waits until the page lists a message whose text is exactly `line`.
async function sees(tab, line) {
  try {
    await tab.waitFor((l) => [...document.querySelectorAll('#log li')].some((li) => li.textContent === l),
      `message ${JSON.stringify(line)} shown`, line);
  } catch (err) {
    const now = await shown(tab).catch((e) => e.message);
    err.message += `\n  ${tab.name}'s page shows: ${JSON.stringify(now)}`;
    throw err;
  }
}

// Opens the page for one more person and waits for the room's welcome:
// the socket is open and the server has named the guest. One at a time,
// so the names follow the order the pages were opened in.
async function join(s, name, guest) {
  const tab = await s.open('/', { name });
  await sees(tab, `server: welcome, ${guest}`);
  return tab;
}

// Types `text` into the page's input and sends it as a person would, by
// Enter or by the Send button; the page empties the input once sent.
async function say(tab, text, how) {
  await tab.page.click('#text');
  await tab.page.type('#text', text);
  if (how === 'enter') await tab.page.keyboard.press('Enter');
  else await tab.page.click('#f button');
  await tab.waitFor(() => document.getElementById('text').value === '', 'input emptied after sending');
}

// Requests of the page besides loading it: there should be none, every
// message goes over the one WebSocket.
function otherRequests(tab) {
  return tab.requests.filter((r) => r !== 'GET /' && r !== 'GET /favicon.ico');
}

test('the guide\'s chat: a message typed in one page appears in the other', { timeout: 60000 }, async () => {
  await session('guide-chat', async (s) => {
    const alice = await join(s, 'alice', 'guest1');
    const bob = await join(s, 'bob', 'guest2');

    await say(alice, 'hello from alice', 'enter');
    await sees(bob, 'guest1: hello from alice');
    await sees(alice, 'guest1: hello from alice');
    await say(bob, 'and back from bob', 'button');
    await sees(alice, 'guest2: and back from bob');
    await sees(bob, 'guest2: and back from bob');

    const talk = ['guest1: hello from alice', 'guest2: and back from bob'];
    assert.deepEqual(await shown(alice), ['server: welcome, guest1', ...talk]);
    assert.deepEqual(await shown(bob), ['server: welcome, guest2', ...talk]);
    for (const tab of [alice, bob]) {
      assert.equal(tab.openedSockets('/chat').length, 1, `${tab.name} opened the WebSocket /chat`);
      assert.equal(tab.websockets.length, 1, `${tab.name} opened one WebSocket and kept it`);
      assert.ok(!tab.websockets[0].closed, `${tab.name}'s WebSocket still open`);
      assert.deepEqual(otherRequests(tab), [], `${tab.name} used no HTTP for messages`);
    }
  });
});

test('the guide\'s chat shows HTML in a message as text', { timeout: 60000 }, async () => {
  await session('guide-chat-escaping', async (s) => {
    const alice = await join(s, 'alice', 'guest1');
    const bob = await join(s, 'bob', 'guest2');

    // Each would make an element if shown as HTML; the <img>s would also
    // run their onerror (/nowhere is a 404).
    const fromAlice = '<b>x</b><script>window.__injected = "script"</script>'
      + '<img src="/nowhere" onerror="window.__injected = \'alice\'"> & "quotes"';
    const fromBob = '<i>y</i><img src="/nowhere" onerror="window.__injected = \'bob\'">'
      + '<a href="javascript:alert(1)">link</a> &lt;already escaped&gt;';
    await say(alice, fromAlice, 'enter');
    await sees(bob, `guest1: ${fromAlice}`);
    await say(bob, fromBob, 'button');
    for (const [tab, guest] of [[alice, 'guest1'], [bob, 'guest2']]) {
      await sees(tab, `guest2: ${fromBob}`);
      assert.deepEqual(await shown(tab),
        [`server: welcome, ${guest}`, `guest1: ${fromAlice}`, `guest2: ${fromBob}`],
        `${tab.name}: both messages, literally`);
      const made = await tab.page.$$eval('#log li *', (els) => els.map((e) => e.outerHTML));
      assert.deepEqual(made, [], `${tab.name}: no element made from a message`);
      // Belt and braces: no handler of a message ran either.
      assert.equal(await tab.page.evaluate(() => window.__injected), undefined,
        `${tab.name}: no script of a message ran`);
      assert.deepEqual(otherRequests(tab), [], `${tab.name}: nothing fetched for a message`);
    }
  });
});

test('the guide\'s chat says when its connection closes: a message over the limit, the server stopping',
  { timeout: 60000 }, async () => {
    await session('guide-chat-closes', async (s) => {
      const alice = await join(s, 'alice', 'guest1');
      const bob = await join(s, 'bob', 'guest2');

      // Pasted rather than typed: 501 key presses would only be slow.
      await alice.page.click('#text');
      await alice.page.$eval('#text', (input, text) => { input.value = text; }, 'x'.repeat(501));
      await alice.page.keyboard.press('Enter');
      await sees(alice, 'disconnected (1009)');
      await say(bob, 'still here', 'enter');
      await sees(bob, 'guest2: still here');
      assert.deepEqual(await shown(alice), ['server: welcome, guest1', 'disconnected (1009)'],
        'alice: closed before her message went to anyone');
      assert.deepEqual(await shown(bob), ['server: welcome, guest2', 'guest2: still here'],
        'bob: nothing of the long message, still connected');

      // Stopped with bob still there: after the drain, gust closes his
      // socket with 1001 and exits 0 (the session checks that too).
      await s.gust.stop();
      await sees(bob, 'disconnected (1001)');
    }, ['--drain-timeout', '1']); // a short drain: the stop closes the socket within a second
  });
