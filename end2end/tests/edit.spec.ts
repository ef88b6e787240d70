import { expect, test, type Browser, type Page } from '@playwright/test';
import { connected, enterRoom, person, send, uniqueName, uniqueRoom } from './helpers';

/** `text`, matched whole. */
function exactly(text: string): RegExp {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

/** The message stored under `id`, as `page` shows it. */
function byId(page: Page, id: string) {
  return page.locator(`#messages li.message[data-id="${id}"]`);
}

/** The text of message `id` on `page`. */
function textOf(page: Page, id: string) {
  return byId(page, id).locator('.message-text');
}

/** The "edited" mark of message `id` on `page`. */
function editedMark(page: Page, id: string) {
  return byId(page, id).getByText('edited', { exact: true });
}

function button(page: Page, id: string, name: 'Edit' | 'Delete') {
  return byId(page, id).getByRole('button', { name, exact: true });
}

/** Sends `text` from `page`, waits until the server has stored it, and answers its id. */
async function sendStored(page: Page, text: string): Promise<string> {
  await send(page, text);
  const stored = page
    .locator('#messages li.message:not(.pending)')
    .filter({ has: page.locator('.message-text', { hasText: exactly(text) }) });
  await expect(stored).toHaveCount(1);
  const id = await stored.getAttribute('data-id');
  if (!id) throw new Error(`the message "${text}" has no id`);
  return id;
}

/** Edits message `id` on `page` the way people do: "Edit", type, Enter. */
async function edit(page: Page, id: string, text: string): Promise<void> {
  await button(page, id, 'Edit').click();
  const box = byId(page, id).getByRole('textbox', { name: 'Edit message' });
  await expect(box).toBeFocused();
  await box.fill(text);
  await box.press('Enter');
  await expect(box).toHaveCount(0);
}

/** Two people in a fresh room, each on their own browser context. */
async function twoInARoom(browser: Browser, prefix: string) {
  const room = uniqueRoom(prefix);
  const aliceName = uniqueName('Ann');
  const bobName = uniqueName('Bob');
  const alice = await person(browser, aliceName);
  const bob = await person(browser, bobName);
  await enterRoom(alice, room);
  await enterRoom(bob, room);
  return { alice, bob, aliceName, bobName };
}

test('an edit reaches the room live, marked "edited", and stays after a reload', async ({ browser }) => {
  const { alice, bob } = await twoInARoom(browser, 'edit');
  const tag = Date.now();
  const id = await sendStored(alice, `helo ${tag}`);
  await expect(textOf(bob, id)).toHaveText(`helo ${tag}`);
  await expect(editedMark(bob, id)).toHaveCount(0);

  // The box holds the text as it is; Shift+Enter starts a new line.
  await button(alice, id, 'Edit').click();
  const box = byId(alice, id).getByRole('textbox', { name: 'Edit message' });
  await expect(box).toBeFocused();
  await expect(box).toHaveValue(`helo ${tag}`);
  await box.fill(`hello ${tag}`);
  await box.press('Shift+Enter');
  await box.pressSequentially('second line');
  await expect(box).toHaveValue(`hello ${tag}\nsecond line`);
  await box.press('Enter');
  await expect(box).toHaveCount(0);
  // Focus goes back to the message's "Edit" button.
  await expect(button(alice, id, 'Edit')).toBeFocused();

  const edited = `hello ${tag}\nsecond line`;
  for (const page of [alice, bob]) {
    await expect(editedMark(page, id)).toBeVisible();
    await expect.poll(() => textOf(page, id).textContent()).toBe(edited);
  }
  // In its place, not added as a new message.
  await expect(bob.locator('#messages li.message')).toHaveCount(1);

  await alice.reload();
  await connected(alice);
  await expect(editedMark(alice, id)).toBeVisible();
  await expect.poll(() => textOf(alice, id).textContent()).toBe(edited);
  await expect(alice.locator('#messages li.message')).toHaveCount(1);
});

test('a deleted message goes for everyone, live and after a reload', async ({ browser }) => {
  const { alice, bob, aliceName } = await twoInARoom(browser, 'delete');
  const tag = Date.now();
  // One run of messages: the name shows once, over the first.
  const first = await sendStored(alice, `first ${tag}`);
  const second = await sendStored(alice, `second ${tag}`);
  const third = await sendStored(alice, `third ${tag}`);
  await expect(textOf(bob, third)).toHaveText(`third ${tag}`);
  await expect(byId(bob, first).locator('.message-author')).toHaveText(aliceName);
  await expect(byId(bob, second).locator('.message-author')).toHaveCount(0);

  await button(alice, first, 'Delete').click();
  await expect(byId(alice, first)).toHaveCount(0);
  await expect(byId(bob, first)).toHaveCount(0);
  // The run closes up: the next message carries the name and the day.
  for (const page of [alice, bob]) {
    await expect(byId(page, second).locator('.message-author')).toHaveText(aliceName);
    await expect(page.locator('#messages li.day-separator')).toHaveCount(1);
    await expect(page.locator('#messages li.message')).toHaveCount(2);
  }

  await button(alice, third, 'Delete').click();
  await expect(byId(bob, third)).toHaveCount(0);
  await expect(textOf(bob, second)).toHaveText(`second ${tag}`);

  for (const page of [alice, bob]) {
    await page.reload();
    await connected(page);
    await expect(textOf(page, second)).toHaveText(`second ${tag}`);
    await expect(byId(page, first)).toHaveCount(0);
    await expect(byId(page, third)).toHaveCount(0);
    await expect(page.locator('#messages li.message')).toHaveCount(1);
  }
});

test('only one\'s own messages can be edited or deleted', async ({ browser }) => {
  const { alice, bob } = await twoInARoom(browser, 'owner');
  const tag = Date.now();
  const hers = await sendStored(alice, `hers ${tag}`);
  const his = await sendStored(bob, `his ${tag}`);
  await expect(textOf(alice, his)).toHaveText(`his ${tag}`);
  await expect(textOf(bob, hers)).toHaveText(`hers ${tag}`);

  // Each sees the buttons on their own message (so the page is drawn) ...
  for (const [page, own] of [
    [alice, hers],
    [bob, his],
  ] as const) {
    await expect(button(page, own, 'Edit')).toHaveCount(1);
    await expect(button(page, own, 'Delete')).toHaveCount(1);
  }
  // ... and none on the other's.
  for (const [page, other] of [
    [bob, hers],
    [alice, his],
  ] as const) {
    await expect(byId(page, other).getByRole('button')).toHaveCount(0);
  }
});

test('Escape cancels an edit and leaves the text as it was', async ({ browser }) => {
  const { alice, bob } = await twoInARoom(browser, 'cancel');
  const tag = Date.now();
  const id = await sendStored(alice, `as it was ${tag}`);
  await expect(textOf(bob, id)).toHaveText(`as it was ${tag}`);

  // By keyboard: the button is reachable and opens the box.
  await button(alice, id, 'Edit').focus();
  await alice.keyboard.press('Enter');
  const box = byId(alice, id).getByRole('textbox', { name: 'Edit message' });
  await expect(box).toBeFocused();
  await box.fill(`never saved ${tag}`);
  await box.press('Escape');
  await expect(box).toHaveCount(0);
  await expect(button(alice, id, 'Edit')).toBeFocused();
  await expect(textOf(alice, id)).toHaveText(`as it was ${tag}`);
  await expect(editedMark(alice, id)).toHaveCount(0);

  // A message sent after it reaches Bob after anything sent before it, so
  // once he has it, an edit would have shown.
  const after = await sendStored(alice, `after ${tag}`);
  await expect(textOf(bob, after)).toHaveText(`after ${tag}`);
  await expect(textOf(bob, id)).toHaveText(`as it was ${tag}`);
  await expect(editedMark(bob, id)).toHaveCount(0);
});

test('edits and deletions made while offline are there when the page comes back', async ({ browser }) => {
  const { alice, bob } = await twoInARoom(browser, 'resume-edit');
  // What reaches Bob's sockets, and where they resume from.
  const sockets: string[] = [];
  const ids: number[] = [];
  bob.on('websocket', (socket) => {
    sockets.push(socket.url());
    socket.on('framereceived', ({ payload }) => {
      if (typeof payload !== 'string') return;
      const frame = JSON.parse(payload) as {
        type: string;
        id?: number;
        history?: { id: number }[];
      };
      if (frame.type === 'welcome') ids.push(...(frame.history ?? []).map((m) => m.id));
      if (typeof frame.id === 'number' && ['message', 'edited', 'deleted'].includes(frame.type)) ids.push(frame.id);
    });
  });

  const tag = Date.now();
  const kept = await sendStored(alice, `to be edited ${tag}`);
  const gone = await sendStored(alice, `to be deleted ${tag}`);
  await expect(textOf(bob, gone)).toHaveText(`to be deleted ${tag}`);

  await bob.context().setOffline(true);
  await expect(bob.locator('body')).toHaveAttribute('data-ws', 'reconnecting');
  await edit(alice, kept, `edited while he was away ${tag}`);
  await expect(editedMark(alice, kept)).toBeVisible();
  await button(alice, gone, 'Delete').click();
  await expect(byId(alice, gone)).toHaveCount(0);

  await bob.context().setOffline(false);
  await connected(bob);
  await expect(textOf(bob, kept)).toHaveText(`edited while he was away ${tag}`);
  await expect(editedMark(bob, kept)).toBeVisible();
  await expect(byId(bob, gone)).toHaveCount(0);
  await expect(bob.locator('#messages li.message')).toHaveCount(1);

  // The deletion is the newest thing Bob has seen: the next resume starts
  // after it, not after the newest message he still shows.
  const newest = Math.max(...ids);
  expect(newest).toBeGreaterThan(Number(gone));
  await bob.context().setOffline(true);
  await expect(bob.locator('body')).toHaveAttribute('data-ws', 'reconnecting');
  const opened = sockets.length;
  await bob.context().setOffline(false);
  await connected(bob);
  expect(sockets.length).toBeGreaterThan(opened);
  expect(new URL(sockets[sockets.length - 1]).searchParams.get('after')).toBe(String(newest));
  await expect(textOf(bob, kept)).toHaveText(`edited while he was away ${tag}`);
});

test('offline, the buttons say to try again, and the edit box keeps its text', async ({ browser }) => {
  const { alice, bob } = await twoInARoom(browser, 'offline-edit');
  const tag = Date.now();
  const id = await sendStored(alice, `kept ${tag}`);
  await expect(textOf(bob, id)).toHaveText(`kept ${tag}`);

  await button(alice, id, 'Edit').click();
  const box = byId(alice, id).getByRole('textbox', { name: 'Edit message' });
  await box.fill(`typed offline ${tag}`);
  await alice.context().setOffline(true);
  await expect(alice.locator('body')).toHaveAttribute('data-ws', 'reconnecting');
  await box.press('Enter');
  const notice = alice.locator('#notice');
  await expect(notice).toHaveText('You are offline: try again when connected.');
  await expect(box).toHaveValue(`typed offline ${tag}`);
  await button(alice, id, 'Delete').click();
  await expect(byId(alice, id)).toHaveCount(1);

  // Back online, the same Enter saves it.
  await alice.context().setOffline(false);
  await connected(alice);
  await box.press('Enter');
  await expect(box).toHaveCount(0);
  await expect(textOf(bob, id)).toHaveText(`typed offline ${tag}`);
  await expect(editedMark(bob, id)).toBeVisible();
});

test('a name taken again after a logout does not own the old messages', async ({ browser }) => {
  const room = uniqueRoom('reuse');
  const name = uniqueName('Ann');
  const first = await person(browser, name);
  await enterRoom(first, room);
  const tag = Date.now();
  const id = await sendStored(first, `said by the first ${name} ${tag}`);
  await first.getByRole('button', { name: 'Log out' }).click();
  await expect(first).toHaveURL(/\/$/);

  const second = await person(browser, name);
  await enterRoom(second, room);
  await expect(second.locator('#me')).toHaveText(name);
  await expect(textOf(second, id)).toHaveText(`said by the first ${name} ${tag}`);
  // Their own new message has the buttons (so the page is drawn); the
  // first holder's has none.
  const own = await sendStored(second, `said by the second ${name} ${tag}`);
  await expect(button(second, own, 'Edit')).toHaveCount(1);
  await expect(byId(second, id).getByRole('button')).toHaveCount(0);
});
