'use strict';
// apps/chat in headless Chromium, used as two people use it: each types a
// message into the page and posts it (Enter or the Post button), and the
// other's page shows it -- over the WebSocket the page opens, over the
// long polling it falls back to, and across the two. HTML in a message is
// shown as text.
//
// The page picks its transport itself (static/index.html, connect()): a
// WebSocket to /chatsocket when window.WebSocket exists and the handshake
// succeeds, long polling of /a/message/updates otherwise. The polling
// tests take it there the two ways a real browser does: a browser with no
// WebSocket, and a WebSocket whose handshake is refused.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Browser, waitUntil } = require('./lib/browser');

const APP = 'apps/chat/app.lua';
let browser;

before(async () => { browser = await Browser.launch(); });
after(async () => { if (browser) await browser.close(); });

// Init scripts (run in the page before its own script).
function noWebSocket() {
  window.WebSocket = undefined;
}
function refusedWebSocket() {
  // As behind a proxy that does not pass upgrades: the handshake is
  // answered 404 (a path the app does not serve), the socket never opens.
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url, protocols) { super(`${url}-refused`, protocols); }
  };
}

// Types `text` into the page's input and posts it as a person would, by
// Enter or by the Post button; the page empties the input once posted.
async function say(tab, text, how = 'enter') {
  await tab.page.click('#body');
  await tab.page.type('#body', text);
  if (how === 'enter') await tab.page.keyboard.press('Enter');
  else await tab.page.click('input[type=submit]');
  await tab.waitFor(() => document.getElementById('body').value === '', 'input emptied after posting');
}

function inbox(tab) {
  return tab.page.$$eval('#inbox .message', (ms) => ms.map((m) => m.textContent));
}

// Waits until the page shows a message whose text is exactly `text`.
async function sees(tab, text) {
  try {
    await tab.waitFor((t) => [...document.querySelectorAll('#inbox .message')]
      .some((m) => m.textContent === t), `message ${JSON.stringify(text)} shown`, text);
  } catch (err) {
    const shown = await inbox(tab).catch((e) => e.message);
    err.message += `\n  ${tab.name}'s inbox: ${JSON.stringify(shown)}`;
    throw err;
  }
}

function messageRequests(tab) {
  return tab.requests.filter((r) => r.includes('/a/message/'));
}

// Both pages connected over WebSocket, as the page and the server see it.
async function bothOnWebSocket(s, tabs) {
  for (const tab of tabs) {
    await waitUntil(() => tab.openedSockets('/chatsocket').length === 1, `${tab.name}'s WebSocket open`);
  }
  await waitUntil(async () => (await s.gust.getJSON('/a/stats')).sockets === tabs.length,
    `${tabs.length} sockets open on the server`);
}

// `n` polls parked on the server: the next message is delivered live, not
// as a backlog.
function pollsWaiting(s, n) {
  return waitUntil(async () => (await s.gust.getJSON('/a/stats')).waiting === n,
    `${n} long polls waiting on the server`);
}

test('a message typed in one page appears in the other, over WebSocket', { timeout: 60000 }, async () => {
  await browser.session('websocket', { app: APP }, async (s) => {
    const alice = await s.open('/', { name: 'alice' });
    const bob = await s.open('/', { name: 'bob' });
    await bothOnWebSocket(s, [alice, bob]);

    await say(alice, 'hello from alice', 'enter');
    await sees(bob, 'hello from alice');
    await sees(alice, 'hello from alice');
    await say(bob, 'and back from bob', 'button');
    await sees(alice, 'and back from bob');
    await sees(bob, 'and back from bob');

    const expected = ['hello from alice', 'and back from bob'];
    assert.deepEqual(await inbox(alice), expected);
    assert.deepEqual(await inbox(bob), expected);
    for (const tab of [alice, bob]) {
      assert.deepEqual(messageRequests(tab), [], `${tab.name} used no HTTP for messages`);
      assert.equal(tab.websockets.length, 1, `${tab.name} opened one WebSocket and kept it`);
    }
  });
});

for (const [how, initScript, socketsTried] of [
  ['the browser has no WebSocket', noWebSocket, 0],
  ['the WebSocket handshake is refused', refusedWebSocket, 1],
]) {
  test(`the same over long polling, when ${how}`, { timeout: 60000 }, async () => {
    await browser.session(`longpoll-${socketsTried ? 'refused' : 'nows'}`, { app: APP }, async (s) => {
      const alice = await s.open('/', { name: 'alice', initScript });
      const bob = await s.open('/', { name: 'bob', initScript });
      await pollsWaiting(s, 2);

      await say(alice, 'polled hello from alice', 'enter');
      await sees(bob, 'polled hello from alice');
      await sees(alice, 'polled hello from alice');
      await pollsWaiting(s, 2);
      await say(bob, 'polled reply from bob', 'button');
      await sees(alice, 'polled reply from bob');
      await sees(bob, 'polled reply from bob');

      const expected = ['polled hello from alice', 'polled reply from bob'];
      assert.deepEqual(await inbox(alice), expected);
      assert.deepEqual(await inbox(bob), expected);
      for (const tab of [alice, bob]) {
        assert.equal(tab.websockets.length, socketsTried, `${tab.name}: WebSockets tried`);
        assert.equal(tab.openedSockets('/chatsocket').length, 0, `${tab.name}: no WebSocket opened`);
        const posts = messageRequests(tab);
        assert.ok(posts.includes('POST /a/message/new'), `${tab.name} posted over HTTP: ${posts}`);
        assert.ok(posts.includes('POST /a/message/updates'), `${tab.name} polled: ${posts}`);
      }
      const stats = await s.gust.getJSON('/a/stats');
      assert.equal(stats.sockets, 0, 'no socket open on the server');
    });
  });
}

test('HTML in a message is shown as text, over either transport', { timeout: 60000 }, async () => {
  await browser.session('escaping', { app: APP }, async (s) => {
    const alice = await s.open('/', { name: 'alice-websocket' });
    const bob = await s.open('/', { name: 'bob-longpoll', initScript: noWebSocket });
    await waitUntil(() => alice.openedSockets('/chatsocket').length === 1, "alice's WebSocket open");
    await pollsWaiting(s, 1);

    // Each would make an element if shown as HTML; the <img> would also run
    // its onerror (/nowhere is a 404).
    const fromAlice = '<b>x</b><script>window.__injected = "script"</script>'
      + '<img src="/nowhere" onerror="window.__injected = \'alice\'"> & "quotes"';
    const fromBob = '<i>y</i><img src="/nowhere" onerror="window.__injected = \'bob\'">'
      + '<a href="javascript:alert(1)">link</a> &lt;already escaped&gt;';
    await say(alice, fromAlice, 'enter');
    await sees(bob, fromAlice);
    await say(bob, fromBob, 'button');
    for (const tab of [alice, bob]) {
      await sees(tab, fromAlice);
      await sees(tab, fromBob);
      assert.deepEqual(await inbox(tab), [fromAlice, fromBob], `${tab.name}: both messages, literally`);
      const made = await tab.page.$$eval('#inbox .message *', (els) => els.map((e) => e.outerHTML));
      assert.deepEqual(made, [], `${tab.name}: no element made from a message`);
      // Belt and braces: no handler of a message ran either.
      assert.equal(await tab.page.evaluate(() => window.__injected), undefined,
        `${tab.name}: no script of a message ran`);
    }
    assert.ok(messageRequests(bob).includes('POST /a/message/new'), 'bob posted over HTTP');
    assert.deepEqual(messageRequests(alice), [], 'alice posted over her WebSocket');
  });
});
