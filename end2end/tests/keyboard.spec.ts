import { expect, test, type Locator, type Page } from '@playwright/test';
import { uniqueName, uniqueRoom } from './helpers';

/** Whether the focused element shows that it is: an outline or a focus ring (box shadow). */
async function focusShows(page: Page): Promise<string | null> {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement | null;
    // Past the last stop the focus leaves the page for the browser's own controls.
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
    // Bootstrap's focus ring is a spread shadow with no offset or blur
    // ("… 0px 0px 0px 4px"), unlike a card's drop shadow.
    const ring = /0px 0px 0px [1-9]/.test(style.boxShadow);
    return outline || ring ? null : `no visible focus on ${el.outerHTML.slice(0, 120)}`;
  });
}

/** Presses Tab until `target` has the focus (at most `limit` times), checking the focus shows at every stop. */
async function tabTo(page: Page, target: Locator, limit = 400): Promise<void> {
  for (let step = 0; step < limit; step++) {
    await page.keyboard.press('Tab');
    expect(await focusShows(page)).toBeNull();
    if (await target.evaluate((el) => el === document.activeElement)) return;
  }
  throw new Error(`${target} never took the focus`);
}

test('keyboard alone: log in, send, edit with Up, switch room, the panels, log out', async ({ browser }) => {
  // Reduced motion: no focus ring is caught half-way through its transition.
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, reducedMotion: 'reduce' });
  const page = await context.newPage();
  const name = uniqueName('Keys');
  const room = uniqueRoom('keys');

  await page.goto('/');
  await expect(page.getByLabel('Your name')).toBeFocused();
  await page.keyboard.type(name);
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/chat\/$/);
  await expect(page.locator('body')).toHaveAttribute('data-ws', 'open');

  // The message box has the focus on arrival.
  const box = page.getByRole('textbox', { name: 'Message' });
  await expect(box).toBeFocused();
  expect(await focusShows(page)).toBeNull();

  // Open a room by name, from the Rooms panel.
  const roomsButton = page.getByRole('button', { name: 'Rooms' });
  await tabTo(page, roomsButton);
  await page.keyboard.press('Enter');
  const panel = page.getByRole('dialog', { name: 'Rooms' });
  await expect(panel).toBeVisible();
  await expect(panel.getByRole('button', { name: 'Close' })).toBeFocused();
  // Escape closes it and gives the focus back to its button.
  await page.keyboard.press('Escape');
  await expect(panel).toHaveCount(0);
  await expect(roomsButton).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(panel).toBeVisible();
  const roomName = page.getByRole('textbox', { name: 'Room name' });
  await tabTo(page, roomName);
  await page.keyboard.type(room);
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(new RegExp(`/chat/${room}/$`));
  await expect(page.locator('body')).toHaveAttribute('data-ws', 'open');
  await expect(box).toBeFocused();

  // Send, then fix it with Up arrow in the empty box.
  await page.keyboard.type('helo there');
  await page.keyboard.press('Enter');
  const message = page.locator('#messages li.message:not(.pending)');
  await expect(message).toHaveCount(1);
  await expect(box).toHaveValue('');
  await page.keyboard.press('ArrowUp');
  const editBox = page.getByRole('textbox', { name: 'Edit message' });
  await expect(editBox).toBeFocused();
  await expect(editBox).toHaveValue('helo there');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('hello there');
  await page.keyboard.press('Enter');
  await expect(editBox).toHaveCount(0);
  await expect(box).toBeFocused();
  await expect(message.locator('.message-text')).toHaveText('hello there');
  await expect(message.getByText('edited', { exact: true })).toBeVisible();

  // The people panel lists this user; Escape closes it.
  const peopleButton = page.getByRole('button', { name: 'Online users' });
  await tabTo(page, peopleButton);
  await page.keyboard.press('Enter');
  const people = page.getByRole('dialog', { name: 'Online users' });
  await expect(people.getByRole('listitem').filter({ hasText: name })).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(people).toHaveCount(0);
  await expect(peopleButton).toBeFocused();

  // An open panel keeps the focus: Shift+Tab from its close button goes
  // round to its last control, not to the page behind.
  await page.keyboard.press('Enter');
  await expect(people.getByRole('button', { name: 'Close' })).toBeFocused();
  await page.keyboard.press('Shift+Tab');
  expect(await people.evaluate((panel) => panel.contains(document.activeElement))).toBe(true);
  await page.keyboard.press('Tab');
  await expect(people.getByRole('button', { name: 'Close' })).toBeFocused();
  await page.keyboard.press('Escape');
  await expect(people).toHaveCount(0);

  // And out.
  await tabTo(page, page.getByRole('button', { name: 'Log out' }));
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByLabel('Your name')).toBeVisible();
});

test('on a phone the lists are behind their buttons and the message box is in view', async ({ browser }) => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  await page.goto('/');
  await page.getByLabel('Your name').fill(uniqueName('Phone'));
  await page.getByRole('button', { name: 'Join the chat' }).click();
  await expect(page.locator('body')).toHaveAttribute('data-ws', 'open');

  await expect(page.getByRole('navigation', { name: 'Rooms' })).toBeHidden();
  await expect(page.getByRole('complementary', { name: 'Online users' })).toBeHidden();
  const box = page.getByRole('textbox', { name: 'Message' });
  await expect(box).toBeInViewport({ ratio: 1 });
  await expect(page.getByRole('button', { name: 'Send' })).toBeInViewport({ ratio: 1 });
  // Touch targets: at least 44 px high.
  await box.fill('a message of mine');
  await box.press('Enter');
  const mine = page.locator('#messages li.message.mine:not(.pending)');
  await expect(mine).toHaveCount(1);
  const targets = [
    page.getByRole('button', { name: 'Rooms', exact: true }),
    page.getByRole('button', { name: 'Online users', exact: true }),
    page.getByRole('button', { name: 'Send', exact: true }),
    page.getByRole('button', { name: 'Log out', exact: true }),
    mine.getByRole('button', { name: 'Edit', exact: true }),
    mine.getByRole('button', { name: 'Delete', exact: true }),
  ];
  for (const target of targets) {
    const size = await target.boundingBox();
    expect(size?.height ?? 0, `${target}`).toBeGreaterThanOrEqual(44);
  }
  // The page itself does not scroll: the messages do.
  const scrolls = await page.evaluate(() => document.documentElement.scrollHeight > window.innerHeight + 1);
  expect(scrolls).toBe(false);

  await page.getByRole('button', { name: 'Online users' }).click();
  await expect(page.getByRole('complementary', { name: 'Online users' })).toBeVisible();
  await page.getByRole('dialog', { name: 'Online users' }).getByRole('button', { name: 'Close' }).click();
  await expect(page.getByRole('complementary', { name: 'Online users' })).toBeHidden();
  // Out of the way of what it would hover.
  await page.mouse.move(195, 500);
  await page.screenshot({ path: test.info().outputPath('chat-phone.png') });
});
