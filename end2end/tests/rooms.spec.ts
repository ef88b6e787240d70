import { expect, test, type Page } from '@playwright/test';
import { connected, login, messageText, person, send, sidebarEntry, uniqueName } from './helpers';

/** Opens a room's page and waits until its socket is open. */
async function enter(page: Page, path: string): Promise<void> {
  await page.goto(path);
  await expect(page).toHaveURL(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  await connected(page);
}

function rooms(page: Page) {
  return page.getByRole('navigation', { name: 'Rooms' });
}

function roomLink(page: Page, name: string) {
  return rooms(page).getByRole('link', { name, exact: true });
}

/** The room list's one link marked as the page on screen. */
function currentRoom(page: Page) {
  return rooms(page).locator('[aria-current="page"]');
}

test('a message stays in its room, and so do the people', async ({ browser }) => {
  const annName = uniqueName('Ann');
  const bobName = uniqueName('Bob');
  const ann = await person(browser, annName);
  await enter(ann, '/chat/rust/');
  const bob = await person(browser, bobName);
  await expect(sidebarEntry(bob, bobName)).toHaveCount(1);
  await expect(sidebarEntry(ann, annName)).toHaveCount(1);

  // Ann is only in rust (once her lobby page's grace period is over): not
  // among the lobby's people, though online.
  await expect(sidebarEntry(bob, annName)).toHaveCount(0);
  await expect(sidebarEntry(ann, bobName)).toHaveCount(0);
  await expect
    .poll(async () => (await (await bob.request.get('/get_online_users/')).json()).online_users)
    .toEqual(expect.arrayContaining([annName, bobName]));
  await expect
    .poll(async () => (await (await bob.request.get('/get_online_users/?room=lobby')).json()).online_users)
    .not.toContain(annName);

  const inRust = `only in rust ${Date.now()}`;
  await send(ann, inRust);
  await expect(ann.locator('#messages li.message.mine:not(.pending)').filter({ hasText: inRust })).toHaveCount(1);
  // Messages go out in the order they are stored: once Bob's later lobby
  // message has reached him, Ann's would have too, had it been sent to him.
  const inLobby = `only in the lobby ${Date.now()}`;
  await send(bob, inLobby);
  await expect(messageText(bob, inLobby)).toHaveCount(1);
  await expect(messageText(bob, inRust)).toHaveCount(0);
  await expect(messageText(ann, inLobby)).toHaveCount(0);

  // In rust, Bob finds Ann's message in the history and Ann among the people.
  await enter(bob, '/chat/rust/');
  await expect(messageText(bob, inRust)).toHaveCount(1);
  await expect(messageText(bob, inLobby)).toHaveCount(0);
  await expect(sidebarEntry(bob, annName)).toHaveCount(1);
  await expect(sidebarEntry(ann, bobName)).toHaveCount(1);
  const live = `live in rust ${Date.now()}`;
  await send(ann, live);
  await expect(messageText(bob, live)).toHaveCount(1);

  // Back in the lobby, its history holds none of rust's messages.
  await enter(bob, '/chat/');
  await expect(messageText(bob, inLobby)).toHaveCount(1);
  await expect(messageText(bob, inRust)).toHaveCount(0);
  await expect(messageText(bob, live)).toHaveCount(0);
});

test('the room list marks the room on screen and opens new ones', async ({ browser }) => {
  const page = await person(browser, uniqueName('Rom'));
  await expect(currentRoom(page)).toHaveCount(1);
  await expect(currentRoom(page)).toHaveText('lobby');
  await expect(roomLink(page, 'lobby')).toHaveAttribute('href', '/chat/');
  await expect(page).toHaveTitle(/lobby/);

  await enter(page, '/chat/rust/');
  await expect(currentRoom(page)).toHaveCount(1);
  await expect(roomLink(page, 'rust')).toHaveAttribute('aria-current', 'page');
  await expect(roomLink(page, 'rust')).toHaveAttribute('href', '/chat/rust/');
  await expect(page).toHaveTitle(/#rust/);

  // A room link loads the room's own page.
  await roomLink(page, 'lobby').click();
  await expect(page).toHaveURL(/\/chat\/$/);
  await connected(page);
  await expect(roomLink(page, 'lobby')).toHaveAttribute('aria-current', 'page');
  // rust was visited: the server lists it.
  await expect(roomLink(page, 'rust')).toBeVisible();
  await expect(roomLink(page, 'rust')).not.toHaveAttribute('aria-current');

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
  await expect(roomLink(page, 'lobby')).toBeVisible();
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
