import { expect, test } from '@playwright/test';
import {
  connected,
  enterRoom,
  messageText,
  person,
  search,
  searchResult,
  searchResults,
  searchStatus,
  send,
  uniqueName,
  uniqueRoom,
} from './helpers';

/** A lowercase word no other message holds: 10 characters of `a-z0-9`. */
function uniqueWord(): string {
  return `uq${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}`;
}

test('a message is found from another room by part of a word, an identifier or CJK text, and leads to its room', async ({
  browser,
}) => {
  const room = uniqueRoom('search');
  const word = uniqueWord();
  const text = `deploy tokio::spawn fix ERR_42 at https://example.com/x and 東京都に行きます ${word}`;
  const annName = uniqueName('Ann');
  const ann = await person(browser, annName);
  await enterRoom(ann, room);
  await send(ann, text);
  await expect(ann.locator('#messages li.message.mine:not(.pending)').filter({ hasText: word })).toHaveCount(1);

  // Bob is in the lobby; the message is in a room he never opened.
  const bob = await person(browser, uniqueName('Bob'));
  const inside = word.slice(3, 9);
  for (const query of [inside, 'tokio::spawn', '東京都', 'ERR_42', 'https://example.com/x']) {
    await search(bob, query);
    const found = searchResult(bob, word);
    await expect(found, query).toHaveCount(1);
    await expect(found).toContainText(annName);
    await expect(found.locator('.message-text')).toHaveText(text);
    await expect(found.getByRole('link', { name: `#${room}`, exact: true })).toHaveAttribute(
      'href',
      `/chat/${room}/`,
    );
  }

  // Every word must be there: with one that is nowhere, nothing is found.
  await search(bob, `tokio::spawn ${inside}`);
  await expect(searchResults(bob).getByRole('listitem')).toHaveCount(1);
  await search(bob, `${inside} ${uniqueWord()}`);
  await expect(searchStatus(bob)).toHaveText('No messages found');
  await expect(searchResults(bob).getByRole('listitem')).toHaveCount(0);

  // "Clear" takes the results and the text away.
  const box = bob.getByRole('searchbox', { name: 'Search messages' });
  await search(bob, inside);
  await expect(searchResult(bob, word)).toHaveCount(1);
  await searchResults(bob).getByRole('button', { name: 'Clear' }).click();
  await expect(searchResults(bob).getByRole('listitem')).toHaveCount(0);
  await expect(searchStatus(bob)).toHaveText(/^\s*$/);
  await expect(box).toHaveValue('');
  await expect(box).toBeFocused();

  // The room link opens the room, where the message is.
  await search(bob, '東京都');
  await searchResult(bob, word).getByRole('link', { name: `#${room}`, exact: true }).click();
  await expect(bob).toHaveURL(new RegExp(`/chat/${room}/$`));
  await connected(bob);
  await expect(messageText(bob, text)).toHaveCount(1);
});

test('odd search text is answered, and a text over 200 characters gets the reason it is refused', async ({ browser }) => {
  const page = await person(browser, uniqueName('Sea'));

  // An unbalanced quote is text to look for, not query syntax.
  await search(page, '"unbalanced');
  await expect(searchStatus(page)).toHaveText(/^(No messages found|\d+ messages? found|The newest \d+ messages found)$/);

  const long = 'x'.repeat(201);
  const answer = await page.request.get(`/api/search?q=${long}`);
  expect(answer.status()).toBe(400);
  const { error } = (await answer.json()) as { error: string };
  expect(error).not.toBe('');
  // The box itself takes no more than 200 characters; without that limit
  // the server's refusal is what the page shows.
  const box = page.getByRole('searchbox', { name: 'Search messages' });
  await expect(box).toHaveAttribute('maxlength', '200');
  await box.evaluate((element) => element.removeAttribute('maxlength'));
  await search(page, long);
  await expect(searchStatus(page)).toHaveText(error);
  await expect(searchResults(page).getByRole('listitem')).toHaveCount(0);

  // Escape takes it away.
  await box.press('Escape');
  await expect(searchStatus(page)).toHaveText(/^\s*$/);
  await expect(box).toHaveValue('');
});
