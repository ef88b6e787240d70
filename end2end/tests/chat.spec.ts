import { expect, test } from '@playwright/test';
import { connected, login, messageText, messages, person, send, sidebar, sidebarEntry, uniqueName } from './helpers';

test('a taken name gets the next number', async ({ browser }) => {
  const base = uniqueName('Jo');
  const first = await person(browser, base);
  const second = await person(browser, base);
  await expect(first.locator('#me')).toHaveText(base);
  await expect(second.locator('#me')).toHaveText(`${base}1`);
  await expect(sidebarEntry(first, `${base}1`)).toBeVisible();
  await expect(sidebarEntry(second, base)).toBeVisible();
});

test('a message typed in one page appears in the other', async ({ browser }) => {
  const alice = await person(browser, uniqueName('Alice'));
  const bob = await person(browser, uniqueName('Bob'));
  const text = `hello from alice ${Date.now()}`;
  await send(alice, text);
  await expect(messageText(bob, text)).toHaveCount(1);
  await expect(messageText(alice, text)).toHaveCount(1);
  // The sender's own message is marked as theirs, once acknowledged.
  await expect(alice.locator('#messages li.message.mine:not(.pending)').filter({ hasText: text })).toHaveCount(1);
  await expect(bob.locator('#messages li.message.mine').filter({ hasText: text })).toHaveCount(0);
  await expect(alice.getByRole('textbox', { name: 'Message' })).toHaveValue('');
});

test('the sidebar follows joins, logouts and closed browsers', async ({ browser }) => {
  const watcherName = uniqueName('Wat');
  const leaverName = uniqueName('Lea');
  const closerName = uniqueName('Clo');
  const watcher = await person(browser, watcherName);

  const leaver = await person(browser, leaverName);
  await expect(sidebarEntry(watcher, leaverName)).toHaveCount(1);
  await leaver.getByRole('button', { name: 'Log out' }).click();
  await expect(leaver).toHaveURL(/\/$/);
  await expect(leaver.getByLabel('Your name')).toBeVisible();
  await expect(sidebarEntry(watcher, leaverName)).toHaveCount(0);

  // The old session no longer opens the chat.
  await leaver.goto('/chat/');
  await expect(leaver).toHaveURL(/\/$/);

  const closer = await person(browser, closerName);
  await expect(sidebarEntry(watcher, closerName)).toHaveCount(1);
  await closer.context().close();
  await expect(sidebarEntry(watcher, closerName)).toHaveCount(0);
  await expect(sidebarEntry(watcher, watcherName)).toHaveCount(1);
});

test('markup in a message is shown as text', async ({ browser }) => {
  const sender = await person(browser, uniqueName('Mal'));
  const reader = await person(browser, uniqueName('Rea'));
  let dialogs = 0;
  reader.on('dialog', (dialog) => {
    dialogs += 1;
    void dialog.dismiss();
  });
  const payload = `<img src=x onerror=alert(1)> ${Date.now()}`;
  await send(sender, payload);
  await expect(messageText(reader, payload)).toHaveText(payload);
  await expect(reader.locator('#messages img')).toHaveCount(0);
  expect(dialogs).toBe(0);
});

test('a reload keeps the name and the history, once each', async ({ browser }) => {
  const name = uniqueName('Rel');
  const page = await person(browser, name);
  const other = await person(browser, uniqueName('Oth'));
  const texts = [`first ${Date.now()}`, `second ${Date.now()}`];
  for (const text of texts) {
    await send(page, text);
    await expect(messageText(page, text)).toHaveCount(1);
  }
  await page.reload();
  await connected(page);
  await expect(page.locator('#me')).toHaveText(name);
  for (const text of texts) {
    await expect(messageText(page, text)).toHaveCount(1);
  }
  // Ids are unique in the list: nothing is shown twice.
  const ids = await messages(page).evaluateAll((items) => items.map((li) => li.getAttribute('data-id')));
  expect(new Set(ids).size).toBe(ids.length);
  // The sidebar did not flap for the others.
  await expect(sidebarEntry(other, name)).toHaveCount(1);
});

test('several tabs of one login are one user', async ({ browser }) => {
  const name = uniqueName('Tab');
  const first = await person(browser, name);
  const second = await first.context().newPage();
  await second.goto('/chat/');
  await connected(second);
  const watcher = await person(browser, uniqueName('Obs'));
  await expect(sidebarEntry(watcher, name)).toHaveCount(1);
  const text = `to every tab ${Date.now()}`;
  await send(watcher, text);
  await expect(messageText(first, text)).toHaveCount(1);
  await expect(messageText(second, text)).toHaveCount(1);
  await expect(sidebar(watcher)).toBeVisible();
});

test('the login form works without JavaScript', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto('/');
  await page.getByLabel('Your name').fill('   ');
  await page.getByRole('button', { name: 'Join the chat' }).click();
  // Refused: the page says why and the form is still there.
  await expect(page.getByRole('alert')).toContainText('Please enter a name');
  await page.getByLabel('Your name').fill('<b>bold</b>');
  await page.getByRole('button', { name: 'Join the chat' }).click();
  await expect(page.getByRole('alert')).toContainText('Names may contain only');
  await expect(page.locator('b')).toHaveCount(0);

  const name = uniqueName('NoJs');
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join the chat' }).click();
  await expect(page).toHaveURL(/\/chat\/$/);
  const online = await page.request.get('/get_online_users/');
  expect(online.status()).toBe(200);
});

test('an empty message is not sent', async ({ browser }) => {
  const page = await person(browser, uniqueName('Emp'));
  await page.getByRole('textbox', { name: 'Message' }).fill('   ');
  await expect(page.getByRole('button', { name: 'Send' })).toBeDisabled();
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
  await expect(page.locator('#pending li.pending')).toHaveCount(0);
});

test('visiting the chat without logging in leads to the login page', async ({ page }) => {
  await page.goto('/chat/');
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('heading', { name: 'Chat' })).toBeVisible();
});

test('login then logout from the login page round trip', async ({ page }) => {
  const name = uniqueName('Out');
  await login(page, name);
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/$/);
  const online = await page.request.get('/get_online_users/');
  expect(online.status()).toBe(401);
});

test('older messages load on demand', async ({ browser }) => {
  const writer = await person(browser, uniqueName('Old'));
  const tag = Date.now();
  for (let n = 0; n < 55; n++) {
    await send(writer, `old ${tag} #${n}`);
  }
  // The client paces its sends to the server's rate limit (a burst of 10,
  // then 5 a second), so the last of 55 arrives about nine seconds after the
  // first was queued.
  await expect(messageText(writer, `old ${tag} #54`)).toHaveCount(1, { timeout: 20_000 });
  await expect(writer.locator('#pending li.pending')).toHaveCount(0);

  const reader = await person(browser, uniqueName('New'));
  await expect(messageText(reader, `old ${tag} #54`)).toHaveCount(1);
  await expect(messageText(reader, `old ${tag} #5`)).toHaveCount(1);
  // Only the latest 50 at first.
  await expect(messageText(reader, `old ${tag} #4`)).toHaveCount(0);
  await reader.getByRole('button', { name: 'Load earlier messages' }).click();
  for (let n = 0; n < 5; n++) {
    await expect(messageText(reader, `old ${tag} #${n}`)).toHaveCount(1);
  }
  const ids = await messages(reader).evaluateAll((items) => items.map((li) => Number(li.getAttribute('data-id'))));
  expect([...ids].sort((a, b) => a - b)).toEqual(ids);
});
