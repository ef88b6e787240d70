import { expect, test, type Page, type WebSocketRoute } from '@playwright/test';
import { connected, login, messageText, person, send, uniqueName } from './helpers';

test('offline and back: reconnecting, then every missed message once', async ({ browser }) => {
  const alice = await person(browser, uniqueName('Ali'));
  const bob = await person(browser, uniqueName('Bob'));

  await bob.context().setOffline(true);
  await expect(bob.locator('body')).toHaveAttribute('data-ws', 'reconnecting');
  await expect(bob.locator('#connection')).toHaveText('Reconnecting…');

  const missed = [`missed one ${Date.now()}`, `missed two ${Date.now()}`];
  for (const text of missed) {
    await send(alice, text);
    await expect(messageText(alice, text)).toHaveCount(1);
  }
  // Typed while offline: kept as pending, delivered after the reconnect.
  const typed = `typed offline ${Date.now()}`;
  await send(bob, typed);
  await expect(bob.locator('#pending li.pending').filter({ hasText: typed })).toHaveCount(1);

  await bob.context().setOffline(false);
  await connected(bob);
  await expect(bob.locator('#connection')).toHaveText('Connected');
  for (const text of missed) {
    await expect(messageText(bob, text)).toHaveCount(1);
  }
  await expect(messageText(alice, typed)).toHaveCount(1);
  await expect(bob.locator('#pending li.pending')).toHaveCount(0);
  await expect(messageText(bob, typed)).toHaveCount(1);

  // In id order on both sides.
  const order = async (page: typeof alice) =>
    page.locator('#messages li.message').evaluateAll((items) => items.map((li) => Number(li.getAttribute('data-id'))));
  const bobIds = await order(bob);
  expect([...bobIds].sort((a, b) => a - b)).toEqual(bobIds);
  expect(new Set(bobIds).size).toBe(bobIds.length);
});

/** The server's count of frames refused for rate, from `/metrics`. */
async function rateLimited(page: Page): Promise<number> {
  const text = await (await page.request.get('/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith('chat_rate_limited_total '));
  if (!line) throw new Error('/metrics has no chat_rate_limited_total');
  return Number(line.split(' ')[1]);
}

test('a backlog typed offline goes out paced: every message once, in order, none refused', async ({ browser }) => {
  const alice = await person(browser, uniqueName('Amy'));
  const bob = await person(browser, uniqueName('Bea'));

  await alice.context().setOffline(true);
  await expect(alice.locator('body')).toHaveAttribute('data-ws', 'reconnecting');
  // More than the server's burst of 10: sent all at once, five would be
  // refused for rate.
  const tag = Date.now();
  const texts = Array.from({ length: 15 }, (_, n) => `backlog ${tag} #${n + 1}`);
  for (const text of texts) {
    await send(alice, text);
  }
  await expect(alice.locator('#pending li.pending')).toHaveCount(texts.length);

  const refusedBefore = await rateLimited(bob);
  await alice.context().setOffline(false);
  await connected(alice);
  for (const text of texts) {
    await expect(messageText(bob, text)).toHaveCount(1);
  }
  // Paced, not merely retried: the server refused nothing for rate.
  expect(await rateLimited(bob)).toBe(refusedBefore);
  // Exactly these, each once, in the order they were typed.
  const shown = await bob
    .locator('#messages li.message')
    .filter({ hasText: `backlog ${tag} #` })
    .locator('.message-text')
    .allTextContents();
  expect(shown).toEqual(texts);

  // The sender is left with nothing "sending…" and nothing "not sent".
  await expect(alice.locator('#pending li.pending')).toHaveCount(0);
  await expect(alice.locator('#pending li.failed')).toHaveCount(0);
  await expect(alice.getByText('not sent')).toHaveCount(0);
  for (const text of texts) {
    await expect(messageText(alice, text)).toHaveCount(1);
  }
});

test('a dropped socket is resumed without losing what was sent meanwhile', async ({ browser }) => {
  const alice = await person(browser, uniqueName('Ann'));
  const bob = await (await browser.newContext()).newPage();
  // Bob's sockets go through a relay the test can cut, and keep cut.
  let blocked = false;
  const open: WebSocketRoute[] = [];
  await bob.routeWebSocket(/\/ws\/chat\//, (ws) => {
    if (blocked) {
      void ws.close({ code: 4001, reason: 'unreachable' });
      return;
    }
    ws.connectToServer();
    open.push(ws);
  });
  await login(bob, uniqueName('Ben'));

  blocked = true;
  for (const ws of open.splice(0)) await ws.close({ code: 4000, reason: 'cut' });
  await expect(bob.locator('body')).toHaveAttribute('data-ws', 'reconnecting');
  const text = `while cut ${Date.now()}`;
  await send(alice, text);
  await expect(messageText(alice, text)).toHaveCount(1);

  blocked = false;
  await connected(bob);
  await expect(messageText(bob, text)).toHaveCount(1);
});
