import { expect, type Browser, type Page } from '@playwright/test';

/** A name no other test uses, so tests do not see each other's users. */
export function uniqueName(prefix: string): string {
  return `${prefix}${Math.random().toString(36).slice(2, 7)}`;
}

/** Opens a fresh browser context (a separate person) and logs in. */
export async function person(browser: Browser, name: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, name);
  return page;
}

/** Logs in through the form and waits until the chat is connected. */
export async function login(page: Page, name: string): Promise<void> {
  await page.goto('/');
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join the chat' }).click();
  await expect(page).toHaveURL(/\/chat\/$/);
  await connected(page);
}

export async function connected(page: Page): Promise<void> {
  await expect(page.locator('body')).toHaveAttribute('data-ws', 'open');
}

export function sidebar(page: Page) {
  return page.getByRole('complementary', { name: 'Online users' });
}

export function sidebarEntry(page: Page, name: string) {
  return sidebar(page).getByRole('listitem').filter({ hasText: new RegExp(`^${name}$`) });
}

export async function send(page: Page, text: string): Promise<void> {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

export function messages(page: Page) {
  return page.locator('#messages li.message');
}

/** The message whose whole text is `text`. */
export function messageText(page: Page, text: string) {
  const exact = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return page.locator('#messages .message-text').filter({ hasText: exact });
}

/** A room name no other test uses (`a-z`, `0-9`, `-`: the room rule). */
export function uniqueRoom(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Opens a room's page (`/chat/` or `/chat/<room>/`) and waits until its socket is open. */
export async function enterRoom(page: Page, room: string): Promise<void> {
  const path = room === 'lobby' ? '/chat/' : `/chat/${room}/`;
  await page.goto(path);
  await expect(page).toHaveURL(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  await connected(page);
}

/** The "Rooms" list's link to `room`, found by its address (its text may carry a count). */
export function roomLinkTo(page: Page, room: string) {
  const path = room === 'lobby' ? '/chat/' : `/chat/${room}/`;
  return page.getByRole('navigation', { name: 'Rooms' }).locator(`a[href="${path}"]`);
}

/** The server's unread count of `room` for the page's session (`undefined` when it is not listed). */
export async function unreadIn(page: Page, room: string): Promise<number | undefined> {
  const response = await page.request.get('/api/rooms');
  expect(response.ok()).toBe(true);
  const { rooms } = (await response.json()) as { rooms: { name: string; unread: number }[] };
  return rooms.find((listed) => listed.name === room)?.unread;
}

/** The line above the message box that says who is typing. */
export function typingLine(page: Page) {
  return page.locator('#typing');
}

/** A frame a page wrote to a socket, and that socket's address. */
export type SentFrame = { url: string; frame: Record<string, unknown> };

/** Every JSON frame the page writes to its sockets from now on, in order. */
export function sentFrames(page: Page): SentFrame[] {
  const frames: SentFrame[] = [];
  page.on('websocket', (socket) => {
    socket.on('framesent', ({ payload }) => {
      if (typeof payload !== 'string') return;
      try {
        frames.push({ url: socket.url(), frame: JSON.parse(payload) });
      } catch {
        // Not JSON: not one of ours.
      }
    });
  });
  return frames;
}

/** Whether one of `frames` is a `read` written to the socket of `room`. */
export function readSentIn(frames: SentFrame[], room: string): boolean {
  const inRoom = new RegExp(`[?&]room=${room}(&|$)`);
  return frames.some(({ url, frame }) => frame.type === 'read' && inRoom.test(url));
}

/** Makes the page believe its tab was hidden (or shown again), as a switch of tabs would. */
export async function setTabHidden(page: Page, hidden: boolean): Promise<void> {
  await page.evaluate((hidden) => {
    Object.defineProperty(document, 'visibilityState', {
      configurable: true,
      get: () => (hidden ? 'hidden' : 'visible'),
    });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

/** The "Search results" region of the chat page. */
export function searchResults(page: Page) {
  return page.getByRole('region', { name: 'Search results' });
}

/** The line of the search results that says what was found, or why nothing was. */
export function searchStatus(page: Page) {
  return searchResults(page).getByRole('status');
}

/** The search result whose text holds `text`. */
export function searchResult(page: Page, text: string) {
  return searchResults(page).getByRole('listitem').filter({ hasText: text });
}

/** Searches with the search box (Enter, as people do) and waits for the answer. */
export async function search(page: Page, text: string): Promise<void> {
  const box = page.getByRole('searchbox', { name: 'Search messages' });
  // Escape takes the last answer away first, so the one waited for is this one's.
  await box.press('Escape');
  await expect(searchStatus(page)).toHaveText(/^\s*$/);
  await box.fill(text);
  await box.press('Enter');
  await expect(searchStatus(page)).not.toHaveText(/^\s*(Searching…)?\s*$/);
}
