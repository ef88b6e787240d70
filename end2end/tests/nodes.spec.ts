import { expect, test } from '@playwright/test';
import { login, messageText, send, sidebarEntry, uniqueName } from './helpers';

// The ports playwright.config.ts gives the two servers.
const port = Number(process.env.E2E_PORT ?? 3100);
const nodes = [port + 1, port + 2];

// Two people on two servers of one chat (sharing PostgreSQL and Redis):
// each sees the other's messages, presence and leaving.
test('two browsers on two servers see each other', async ({ browser }) => {
  const [a, b] = nodes.map((port) => `http://127.0.0.1:${port}`);
  const annName = uniqueName('Ann');
  const bobName = uniqueName('Bob');
  const ann = await (await browser.newContext({ baseURL: a })).newPage();
  const bob = await (await browser.newContext({ baseURL: b })).newPage();
  await login(ann, annName);
  await login(bob, bobName);

  await expect(sidebarEntry(ann, bobName)).toHaveCount(1);
  await expect(sidebarEntry(bob, annName)).toHaveCount(1);

  await send(ann, 'hello from server A');
  await expect(messageText(bob, 'hello from server A')).toHaveCount(1);
  await send(bob, 'and back from server B');
  await expect(messageText(ann, 'and back from server B')).toHaveCount(1);
  await expect(messageText(ann, 'hello from server A')).toHaveCount(1);

  await ann.getByRole('button', { name: 'Log out' }).click();
  await expect(ann).toHaveURL(/\/$/);
  await expect(sidebarEntry(bob, annName)).toHaveCount(0);
});
