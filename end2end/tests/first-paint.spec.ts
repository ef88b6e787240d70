import { expect, test } from '@playwright/test';
import { enterRoom, login, messageText, person, send, uniqueName, uniqueRoom } from './helpers';

// What a person sees before the app's WASM has arrived (here: never, its
// download is refused): the page the server drew, with the room's latest
// messages, opened at the newest.
test('before the app runs, a room shows its latest messages, the newest in view', async ({ browser }) => {
  const room = uniqueRoom('paint');
  const writerName = uniqueName('Wes');
  const writer = await person(browser, writerName);
  await enterRoom(writer, room);
  const texts = Array.from({ length: 24 }, (_, i) => `line ${i + 1} of the story so far`);
  for (const text of texts) {
    await send(writer, text);
  }
  await expect(messageText(writer, texts[texts.length - 1])).toHaveCount(1);
  await expect(writer.locator('#pending li.pending')).toHaveCount(0);

  // No service worker: it would hand the page the WASM it keeps.
  const context = await browser.newContext({ serviceWorkers: 'block' });
  const reader = await context.newPage();
  await login(reader, uniqueName('Rae'));
  await reader.route('**/*.wasm', (route) => route.abort());
  await reader.goto(`/chat/${room}/`);
  await expect(reader.locator('#messages li.message')).toHaveCount(texts.length);
  await expect(messageText(reader, texts[texts.length - 1])).toBeInViewport();
  await expect(messageText(reader, texts[0])).not.toBeInViewport();
  await expect(reader.locator('#messages .message-author').first()).toHaveText(writerName);
  // Drawn by the server alone: the app never started.
  await expect(reader.locator('body')).not.toHaveAttribute('data-ws', /.+/);
  await context.close();
});
