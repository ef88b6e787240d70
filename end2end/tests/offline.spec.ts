import { expect, test, type Page } from '@playwright/test';
import { connected, messageText, person, send, uniqueName } from './helpers';

// Offline here is `context.setOffline(true)`. In Chromium it has also cut the
// service worker's own requests since Playwright 1.57, which gives workers
// the context's network settings and routes (release notes of 1.57;
// Playwright's own "setOffline" test in tests/library/chromium/chromium.spec.ts
// expects a worker's fetch to fail). Before that it did not
// (microsoft/playwright#2311): the worker reached the server behind the
// test's back, and a page fetched afresh passed for one kept in the cache.
// This project runs 1.65; `goOffline` still checks that the worker is cut
// off, so that a setting such as PLAYWRIGHT_DISABLE_SERVICE_WORKER_NETWORK
// fails these tests loudly instead of letting them pass for the wrong reason.

/** Waits until the service worker has kept the page and the files it loaded. */
async function offlineReady(page: Page): Promise<void> {
  await expect(page.locator('html')).toHaveAttribute('data-sw', 'ready');
}

/** Cuts the network of a chat page's browser, its service worker's included. */
async function goOffline(page: Page): Promise<void> {
  const context = page.context();
  await context.setOffline(true);
  await expect(page.locator('body')).toHaveAttribute('data-ws', 'reconnecting');
  const workers = context.serviceWorkers();
  expect(workers.length).toBeGreaterThan(0);
  for (const worker of workers) {
    expect(await worker.evaluate(() => fetch('/healthz').then(() => 'reached', () => 'cut'))).toBe('cut');
  }
}

/** The texts of the messages the server has stored, in the order shown. */
async function storedTexts(page: Page): Promise<string[]> {
  const texts = await page.locator('#messages li.message .message-text').allTextContents();
  return texts.map((text) => text.trim());
}

test('a reload while offline shows the chat and its recent history', async ({ browser }) => {
  const alice = await person(browser, uniqueName('Kai'));
  const tag = Date.now();
  const texts = [`kept one ${tag}`, `kept two ${tag}`];
  for (const text of texts) {
    await send(alice, text);
    await expect(messageText(alice, text)).toHaveCount(1);
  }
  // The page is kept as it was last loaded, and this one was loaded before
  // the two were sent: loading it again while online keeps it with them.
  await alice.reload();
  await connected(alice);
  await offlineReady(alice);

  await goOffline(alice);
  await alice.reload();
  for (const text of texts) {
    await expect(messageText(alice, text)).toHaveCount(1);
  }
  await expect(alice.getByRole('textbox', { name: 'Message' })).toBeVisible();
  await expect(alice).toHaveURL(/\/chat\/$/);
  // The app runs too (its scripts came from the cache): it knows it is offline.
  await expect(alice.locator('body')).toHaveAttribute('data-ws', 'reconnecting');
});

test('messages typed offline survive a reload and arrive once, in order', async ({ browser }) => {
  const alice = await person(browser, uniqueName('Ola'));
  await offlineReady(alice);
  const bob = await person(browser, uniqueName('Ben'));

  await goOffline(alice);
  const tag = Date.now();
  const texts = [1, 2, 3].map((n) => `typed offline ${tag} #${n}`);
  for (const text of texts) {
    await send(alice, text);
  }
  const pending = alice.locator('#pending li.message.pending');
  await expect(pending.locator('.message-text')).toHaveText(texts);
  await expect(pending.filter({ hasText: 'sending…' })).toHaveCount(texts.length);

  // Still offline: the page comes from the worker's cache, the three from the outbox.
  await alice.reload();
  await expect(pending.locator('.message-text')).toHaveText(texts);
  await expect(pending.filter({ hasText: 'sending…' })).toHaveCount(texts.length);

  await alice.context().setOffline(false);
  await connected(alice);
  for (const text of texts) {
    await expect(messageText(bob, text)).toHaveCount(1);
  }
  // In the order typed, after everything else.
  expect((await storedTexts(bob)).slice(-texts.length)).toEqual(texts);
  await expect(pending).toHaveCount(0);
  for (const text of texts) {
    await expect(messageText(alice, text)).toHaveCount(1);
  }
  expect((await storedTexts(alice)).slice(-texts.length)).toEqual(texts);

  // A load online finds nothing left to send: one more message, sent and
  // seen by both, is the last, and each of the three is still there once.
  await alice.reload();
  await connected(alice);
  const last = `after the reload ${tag}`;
  await send(alice, last);
  await expect(messageText(bob, last)).toHaveCount(1);
  await expect(messageText(alice, last)).toHaveCount(1);
  await expect(pending).toHaveCount(0);
  for (const page of [alice, bob]) {
    for (const text of texts) {
      await expect(messageText(page, text)).toHaveCount(1);
    }
    expect((await storedTexts(page)).slice(-texts.length - 1)).toEqual([...texts, last]);
  }
});

test('after logging out, the chat is not shown from the cache', async ({ browser }) => {
  const alice = await person(browser, uniqueName('Lou'));
  await offlineReady(alice);
  // Kept: were it still there after the logout, an offline load would show it.
  expect(await alice.evaluate(async () => (await caches.match('/chat/')) !== undefined)).toBe(true);

  await alice.getByRole('button', { name: 'Log out' }).click();
  await expect(alice).toHaveURL(/^https?:\/\/[^/]+\/$/);
  await alice.context().setOffline(true);
  try {
    await alice.goto('/chat/');
  } catch (error) {
    // No worker to answer: the browser's own page says there is no network.
    if (!String(error).includes('net::ERR_INTERNET_DISCONNECTED')) throw error;
  }
  await expect(alice.getByRole('textbox', { name: 'Message' })).toHaveCount(0);
  await expect(alice.getByRole('button', { name: 'Log out' })).toHaveCount(0);
});

test('the service worker answers for no API', async ({ browser }) => {
  const alice = await person(browser, uniqueName('Api'));
  await offlineReady(alice);
  // The page's requests go through the worker...
  await alice.waitForFunction(() => navigator.serviceWorker.controller !== null);
  // ...and each of these was answered once online, so a worker that kept
  // such answers would have them.
  const asked = ['/api/rooms', '/api/messages?limit=1', '/get_online_users/'];
  for (const path of asked) {
    expect(await alice.evaluate(async (path) => (await fetch(path)).status, path)).toBe(200);
  }

  await goOffline(alice);
  // The worker is there and answers for a file it keeps...
  expect(await alice.evaluate(() => fetch('/theme.js').then((r) => r.status, () => 0))).toBe(200);
  // ...but never for the API: those requests fail as the network does.
  for (const path of asked) {
    const answer = await alice.evaluate(
      (path) => fetch(path).then((r) => `answered ${r.status}`, () => 'rejected'),
      path,
    );
    expect(answer, path).toBe('rejected');
  }
});
