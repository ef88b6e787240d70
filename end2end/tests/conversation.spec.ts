import { expect, test } from '@playwright/test';
import {
  connected,
  enterRoom,
  messageText,
  person,
  readSentIn,
  roomLinkTo,
  send,
  sentFrames,
  setTabHidden,
  typingLine,
  uniqueName,
  uniqueRoom,
  unreadIn,
} from './helpers';

test('someone typing is shown to the others until their message arrives', async ({ browser }) => {
  const room = uniqueRoom('typing');
  const annName = uniqueName('Ann');
  const bobName = uniqueName('Bob');
  const ann = await person(browser, annName);
  const bob = await person(browser, bobName);
  await enterRoom(ann, room);
  await enterRoom(bob, room);
  await expect(typingLine(bob)).toHaveAttribute('aria-live', 'polite');
  await expect(typingLine(bob)).toHaveText('');

  const box = ann.getByRole('textbox', { name: 'Message' });
  await box.fill('half a thought');
  await expect(typingLine(bob)).toHaveText(`${annName} is typing…`);
  // Nobody is shown their own typing. The room's frames reach Ann's socket
  // in order: her own typing, then Bob's, which he starts after seeing hers;
  // so once her line shows Bob, it would have shown her too.
  await bob.getByRole('textbox', { name: 'Message' }).fill('me too');
  await expect(typingLine(ann)).toHaveText(`${bobName} is typing…`);

  // The message ends it at once, well before the line would have expired.
  const text = `a whole thought ${Date.now()}`;
  await box.fill(text);
  await box.press('Enter');
  await expect(messageText(bob, text)).toHaveCount(1);
  await expect(typingLine(bob)).toHaveText('', { timeout: 1_000 });
});

test('a room with unseen messages shows how many, until it is opened', async ({ browser }) => {
  const room = uniqueRoom('unread');
  const ann = await person(browser, uniqueName('Ann'));
  const bob = await person(browser, uniqueName('Bob'));
  await enterRoom(ann, room);
  const first = `before bob came ${Date.now()}`;
  await send(ann, first);
  await expect(ann.locator('#messages li.message.mine:not(.pending)').filter({ hasText: first })).toHaveCount(1);

  // Bob opens the room once, so it is in his list, and reads it.
  const frames = sentFrames(bob);
  await enterRoom(bob, room);
  await expect(messageText(bob, first)).toHaveCount(1);
  await expect.poll(() => readSentIn(frames, room)).toBe(true);
  await expect.poll(() => unreadIn(bob, room)).toBe(0);
  await enterRoom(bob, 'lobby');
  await expect(roomLinkTo(bob, room)).toHaveText(room);

  const news = [`news one ${Date.now()}`, `news two ${Date.now()}`];
  for (const text of news) {
    await send(ann, text);
    await expect(ann.locator('#messages li.message.mine:not(.pending)').filter({ hasText: text })).toHaveCount(1);
  }
  // The list is fetched after each welcome (and every 15 s): a reload shows the count.
  await bob.reload();
  await connected(bob);
  await expect(roomLinkTo(bob, room)).toHaveText(`${room} 2`);
  await expect(roomLinkTo(bob, room).locator('.badge')).toHaveText('2');
  // The room on screen shows no count of its own.
  await expect(roomLinkTo(bob, 'lobby')).toHaveText('lobby');

  // Opening the room clears it: its page tells the server what was read,
  // and the lobby's list, fetched after that, shows no count.
  const seen = frames.length;
  await roomLinkTo(bob, room).click();
  await expect(bob).toHaveURL(new RegExp(`/chat/${room}/$`));
  await connected(bob);
  await expect(messageText(bob, news[1])).toHaveCount(1);
  await expect.poll(() => readSentIn(frames.slice(seen), room)).toBe(true);
  await expect.poll(() => unreadIn(bob, room)).toBe(0);
  await roomLinkTo(bob, 'lobby').click();
  await expect(bob).toHaveURL(/\/chat\/$/);
  await connected(bob);
  await expect(roomLinkTo(bob, room)).toBeVisible();
  await expect(roomLinkTo(bob, room)).toHaveText(room);
  await expect(roomLinkTo(bob, room).locator('.badge')).toHaveCount(0);
});

test('a hidden tab counts new messages in its title', async ({ browser }) => {
  const room = uniqueRoom('title');
  const ann = await person(browser, uniqueName('Ann'));
  const bob = await person(browser, uniqueName('Bob'));
  await enterRoom(ann, room);
  await enterRoom(bob, room);
  const plain = `#${room} · Chat`;
  await expect(bob).toHaveTitle(plain);

  await setTabHidden(bob, true);
  const texts = [`while away ${Date.now()}`, `still away ${Date.now()}`];
  await send(ann, texts[0]);
  await expect(messageText(bob, texts[0])).toHaveCount(1);
  await expect(bob).toHaveTitle(`(1) ${plain}`);
  await send(ann, texts[1]);
  await expect(bob).toHaveTitle(`(2) ${plain}`);
  // One's own messages are not news.
  const mine = `my own ${Date.now()}`;
  await send(bob, mine);
  await expect(bob.locator('#messages li.message.mine:not(.pending)').filter({ hasText: mine })).toHaveCount(1);
  await expect(bob).toHaveTitle(`(2) ${plain}`);

  await setTabHidden(bob, false);
  await expect(bob).toHaveTitle(plain);
  // The sender's tab was on screen throughout.
  await expect(ann).toHaveTitle(plain);
});

test('a hidden tab keeps counting news from other rooms in its title', async ({ browser }) => {
  // The room list is looked at every 15 s, hidden or not.
  test.setTimeout(60_000);
  const here = uniqueRoom('here');
  const there = uniqueRoom('there');
  const ann = await person(browser, uniqueName('Ann'));
  const bob = await person(browser, uniqueName('Bob'));
  // Bob has opened `there`, so the server counts its news for him.
  await enterRoom(bob, there);
  await enterRoom(bob, here);
  await enterRoom(ann, there);
  const plain = `#${here} · Chat`;
  await expect(bob).toHaveTitle(plain);

  await setTabHidden(bob, true);
  const news = `elsewhere ${Date.now()}`;
  await send(ann, news);
  await expect(ann.locator('#messages li.message.mine:not(.pending)').filter({ hasText: news })).toHaveCount(1);
  await expect(bob).toHaveTitle(`(1) ${plain}`, { timeout: 20_000 });
  await expect(roomLinkTo(bob, there).locator('.badge')).toHaveText('1');

  await setTabHidden(bob, false);
  await expect(bob).toHaveTitle(plain);
  await expect(roomLinkTo(bob, there).locator('.badge')).toHaveText('1');
});

test('addresses become links that open elsewhere; markup stays text', async ({ browser }) => {
  const room = uniqueRoom('links');
  const ann = await person(browser, uniqueName('Ann'));
  const bob = await person(browser, uniqueName('Bob'));
  await enterRoom(ann, room);
  await enterRoom(bob, room);

  const withLink = 'see https://example.com/a?b=1.';
  await send(ann, withLink);
  const message = messageText(bob, withLink);
  await expect(message).toHaveCount(1);
  await expect(message).toHaveText(withLink);
  const link = message.getByRole('link');
  await expect(link).toHaveCount(1);
  await expect(link).toHaveText('https://example.com/a?b=1');
  await expect(link).toHaveAttribute('href', 'https://example.com/a?b=1');
  await expect(link).toHaveAttribute('target', '_blank');
  await expect(link).toHaveAttribute('rel', 'noopener noreferrer');

  const markup = '<b>x</b>';
  await send(ann, markup);
  await expect(messageText(bob, markup)).toHaveText(markup);
  await expect(bob.locator('#messages b')).toHaveCount(0);

  const script = 'javascript:alert(1)';
  await send(ann, script);
  await expect(messageText(bob, script)).toHaveText(script);
  await expect(messageText(bob, script).getByRole('link')).toHaveCount(0);
  await expect(bob.locator('#messages a')).toHaveCount(1);
});

test('a message naming @someone is highlighted for them only', async ({ browser }) => {
  const room = uniqueRoom('mention');
  const bobName = uniqueName('Bob');
  const ann = await person(browser, uniqueName('Ann'));
  const bob = await person(browser, bobName);
  await enterRoom(ann, room);
  await enterRoom(bob, room);

  // Any case: a name is a name.
  const text = `@${bobName.toLowerCase()} hi`;
  await send(ann, text);
  const forBob = bob.locator('#messages li.message').filter({ hasText: text });
  await expect(forBob).toHaveCount(1);
  await expect(forBob).toHaveClass(/(^|\s)mention(\s|$)/);
  await expect(forBob).toContainText('Mentions you');
  const forAnn = ann.locator('#messages li.message:not(.pending)').filter({ hasText: text });
  await expect(forAnn).toHaveCount(1);
  await expect(forAnn).not.toHaveClass(/(^|\s)mention(\s|$)/);

  // A longer name that starts with Bob's is not Bob.
  const other = `@${bobName}x hi`;
  await send(ann, other);
  const notBob = bob.locator('#messages li.message').filter({ hasText: other });
  await expect(notBob).toHaveCount(1);
  await expect(notBob).not.toHaveClass(/(^|\s)mention(\s|$)/);
});

test('a reader who scrolled up keeps their place; "New messages" takes them down', async ({ browser }) => {
  const room = uniqueRoom('scroll');
  const ann = await person(browser, uniqueName('Ann'));
  const bob = await person(browser, uniqueName('Bob'));
  await enterRoom(ann, room);

  // Enough to scroll: long lines wrap into several. The client paces itself
  // to the rate limit (a burst of 10, then about 5 a second).
  const filler = 'lorem ipsum dolor sit amet '.repeat(12);
  const count = 24;
  for (let n = 0; n < count; n++) {
    await send(ann, `${n} ${filler}`.trim());
  }
  await expect(ann.locator('#messages li.message.mine:not(.pending)')).toHaveCount(count, { timeout: 20_000 });

  await enterRoom(bob, room);
  await expect(bob.locator('#messages li.message')).toHaveCount(count);
  const scroller = bob.locator('.message-scroller');
  const gap = () => scroller.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
  await expect.poll(() => scroller.evaluate((el) => el.scrollHeight - el.clientHeight)).toBeGreaterThan(300);
  // Opened at the newest end.
  await expect.poll(gap).toBeLessThan(2);

  const newMessages = bob.getByRole('button', { name: 'New messages' });
  await expect(newMessages).toHaveCount(0);
  await scroller.evaluate((el) => {
    el.scrollTop = 0;
    el.dispatchEvent(new Event('scroll'));
  });

  const latest = `the latest ${Date.now()}`;
  await send(ann, latest);
  await expect(messageText(bob, latest)).toHaveCount(1);
  await expect(newMessages).toBeVisible();
  // The reader stays where they were.
  expect(await scroller.evaluate((el) => el.scrollTop)).toBe(0);

  await newMessages.click();
  await expect.poll(gap).toBeLessThan(2);
  await expect(messageText(bob, latest)).toBeInViewport();
  await expect(newMessages).toHaveCount(0);

  // At the bottom, the list follows new messages without a button.
  const next = `and the next ${Date.now()}`;
  await send(ann, next);
  await expect(messageText(bob, next)).toBeInViewport();
  await expect.poll(gap).toBeLessThan(2);
  await expect(newMessages).toHaveCount(0);
});
