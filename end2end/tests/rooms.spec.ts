import { expect, test, type Page } from '@playwright/test';
import {
  connected,
  enterRoom,
  login,
  messageText,
  person,
  roomLinkTo,
  send,
  sidebarEntry,
  uniqueName,
  uniqueRoom,
} from './helpers';

function rooms(page: Page) {
  return page.getByRole('navigation', { name: 'Rooms' });
}

/** The room list's one link marked as the page on screen. */
function currentRoom(page: Page) {
  return rooms(page).locator('[aria-current="page"]');
}

test('a message stays in its room, and so do the people', async ({ browser }) => {
  const room = uniqueRoom('rust');
  const annName = uniqueName('Ann');
  const bobName = uniqueName('Bob');
  const ann = await person(browser, annName);
  await enterRoom(ann, room);
  const bob = await person(browser, bobName);
  await expect(sidebarEntry(bob, bobName)).toHaveCount(1);
  await expect(sidebarEntry(ann, annName)).toHaveCount(1);

  // Ann is only in her room (once her lobby page's grace period is over): not
  // among the lobby's people, though online.
  await expect(sidebarEntry(bob, annName)).toHaveCount(0);
  await expect(sidebarEntry(ann, bobName)).toHaveCount(0);
  await expect
    .poll(async () => (await (await bob.request.get('/get_online_users/')).json()).online_users)
    .toEqual(expect.arrayContaining([annName, bobName]));
  await expect
    .poll(async () => (await (await bob.request.get('/get_online_users/?room=lobby')).json()).online_users)
    .not.toContain(annName);

  const inRust = `only in ${room} ${Date.now()}`;
  await send(ann, inRust);
  await expect(ann.locator('#messages li.message.mine:not(.pending)').filter({ hasText: inRust })).toHaveCount(1);
  // Messages go out in the order they are stored: once Bob's later lobby
  // message has reached him, Ann's would have too, had it been sent to him.
  const inLobby = `only in the lobby ${Date.now()}`;
  await send(bob, inLobby);
  await expect(messageText(bob, inLobby)).toHaveCount(1);
  await expect(messageText(bob, inRust)).toHaveCount(0);
  await expect(messageText(ann, inLobby)).toHaveCount(0);

  // In the room, Bob finds Ann's message in the history and Ann among the people.
  await enterRoom(bob, room);
  await expect(messageText(bob, inRust)).toHaveCount(1);
  await expect(messageText(bob, inLobby)).toHaveCount(0);
  await expect(sidebarEntry(bob, annName)).toHaveCount(1);
  await expect(sidebarEntry(ann, bobName)).toHaveCount(1);
  const live = `live in ${room} ${Date.now()}`;
  await send(ann, live);
  await expect(messageText(bob, live)).toHaveCount(1);

  // Back in the lobby, its history holds none of the room's messages.
  await enterRoom(bob, 'lobby');
  await expect(messageText(bob, inLobby)).toHaveCount(1);
  await expect(messageText(bob, inRust)).toHaveCount(0);
  await expect(messageText(bob, live)).toHaveCount(0);
});

test('the room list marks the room on screen and opens new ones', async ({ browser }) => {
  const room = uniqueRoom('rust');
  const page = await person(browser, uniqueName('Rom'));
  await expect(currentRoom(page)).toHaveCount(1);
  await expect(currentRoom(page)).toHaveText('lobby');
  await expect(currentRoom(page)).toHaveAttribute('href', '/chat/');
  await expect(page).toHaveTitle(/lobby/);

  await enterRoom(page, room);
  await expect(currentRoom(page)).toHaveCount(1);
  await expect(roomLinkTo(page, room)).toHaveAttribute('aria-current', 'page');
  await expect(roomLinkTo(page, room)).toHaveText(room);
  await expect(page).toHaveTitle(`#${room} · Chat`);

  // A room link loads the room's own page.
  await roomLinkTo(page, 'lobby').click();
  await expect(page).toHaveURL(/\/chat\/$/);
  await connected(page);
  await expect(roomLinkTo(page, 'lobby')).toHaveAttribute('aria-current', 'page');
  // The room was visited: the server lists it.
  await expect(roomLinkTo(page, room)).toBeVisible();
  await expect(roomLinkTo(page, room)).not.toHaveAttribute('aria-current');

  const form = page.getByRole('form', { name: 'Open a room' });
  const field = form.getByRole('textbox', { name: 'Room name' });
  const open = form.getByRole('button', { name: 'Open', exact: true });
  await field.fill('no way');
  await open.click();
  await expect(form.getByRole('alert')).toHaveText('Room names are 1 to 32 of a–z, 0–9, - and _');
  await expect(page).toHaveURL(/\/chat\/$/);

  await field.fill('Go-Team');
  await expect(form.getByRole('alert')).toHaveCount(0);
  await open.click();
  await expect(page).toHaveURL(/\/chat\/go-team\/$/);
  await connected(page);
  await expect(currentRoom(page)).toHaveText('go-team');
  await expect(roomLinkTo(page, 'lobby')).toBeVisible();
});

test('the "Open a room" form works without JavaScript', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto('/');
  await page.getByLabel('Your name').fill(uniqueName('NoJs'));
  await page.getByRole('button', { name: 'Join the chat' }).click();
  await expect(page).toHaveURL(/\/chat\/$/);

  const form = page.getByRole('form', { name: 'Open a room' });
  await form.getByRole('textbox', { name: 'Room name' }).fill('a/b');
  await form.getByRole('button', { name: 'Open', exact: true }).click();
  await expect(form.getByRole('alert')).toHaveText('Room names are 1 to 32 of a–z, 0–9, - and _');
  await expect(form.getByRole('textbox', { name: 'Room name' })).toHaveValue('a/b');

  await form.getByRole('textbox', { name: 'Room name' }).fill('No-JS');
  await form.getByRole('button', { name: 'Open', exact: true }).click();
  await expect(page).toHaveURL(/\/chat\/no-js\/$/);
  await expect(rooms(page).locator('[aria-current="page"]')).toHaveText('no-js');
});

test('room addresses: capitals lead to the lowercase room, other names are not found', async ({ browser }) => {
  const page = await person(browser, uniqueName('Adr'));
  await page.goto('/chat/Rust/');
  await expect(page).toHaveURL(/\/chat\/rust\/$/);
  await connected(page);
  await expect(currentRoom(page)).toHaveText('rust');

  for (const path of ['/chat/no%20way/', '/chat/a.b/', `/chat/${'x'.repeat(33)}/`]) {
    const response = await page.goto(path);
    expect(response?.status(), path).toBe(404);
    await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  }
});

test('signed out, a room leads to the login page', async ({ page }) => {
  await page.goto('/chat/rust/');
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByLabel('Your name')).toBeVisible();
  // And back to the chat once signed in.
  await login(page, uniqueName('Out'));
});
