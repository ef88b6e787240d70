import AxeBuilder from '@axe-core/playwright';
import { expect, test, type Browser, type Page } from '@playwright/test';
import { enterRoom, login, send, uniqueName, uniqueRoom } from './helpers';

type Look = { name: string; colorScheme: 'light' | 'dark'; viewport: { width: number; height: number } };

const looks: Look[] = [
  { name: 'light', colorScheme: 'light', viewport: { width: 1280, height: 800 } },
  { name: 'dark', colorScheme: 'dark', viewport: { width: 1280, height: 800 } },
  { name: 'narrow', colorScheme: 'light', viewport: { width: 390, height: 844 } },
];

/** The serious and critical axe violations on `page`, one line each. */
async function violations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']).analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

async function open(browser: Browser, look: Look): Promise<Page> {
  const context = await browser.newContext({ colorScheme: look.colorScheme, viewport: look.viewport });
  return context.newPage();
}

for (const look of looks) {
  test(`axe finds nothing serious on the login page (${look.name})`, async ({ browser }) => {
    const page = await open(browser, look);
    await page.goto('/');
    await expect(page.locator('html')).toHaveAttribute('data-bs-theme', look.colorScheme);
    expect(await violations(page)).toEqual([]);
    // A refused name, with its error on screen.
    await page.getByLabel('Your name').fill('no spaces allowed!');
    await page.getByRole('button', { name: 'Join the chat' }).click();
    const error = page.getByRole('alert');
    await expect(error).toBeVisible();
    // The page that says so is in the same colour mode.
    await expect(page.locator('html')).toHaveAttribute('data-bs-theme', look.colorScheme);
    // The field says it is wrong, and why.
    const field = page.getByLabel('Your name');
    await expect(field).toHaveAttribute('aria-invalid', 'true');
    await expect(field).toHaveAccessibleDescription(new RegExp(`^${(await error.innerText()).trim().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    expect(await violations(page)).toEqual([]);
  });

  test(`axe finds nothing serious in the lobby and a room (${look.name})`, async ({ browser }) => {
    const page = await open(browser, look);
    await login(page, uniqueName('Axe'));
    await expect(page.locator('html')).toHaveAttribute('data-bs-theme', look.colorScheme);
    expect(await violations(page)).toEqual([]);
    await enterRoom(page, uniqueRoom('axe'));
    await expect(page.locator('#empty-room')).toBeVisible();
    expect(await violations(page)).toEqual([]);
    // A message with a link and a mention, and an edited one.
    await send(page, 'a link https://example.com for @nobody');
    await expect(page.locator('#messages li.message:not(.pending)')).toHaveCount(1);
    expect(await violations(page)).toEqual([]);
  });
}

test('the colour mode follows the system until one is picked, and the pick is kept', async ({ browser }) => {
  const context = await browser.newContext({ colorScheme: 'light' });
  const page = await context.newPage();
  await login(page, uniqueName('Mode'));
  const html = page.locator('html');
  const picker = page.getByRole('combobox', { name: 'Colour mode' });
  await expect(picker).toHaveValue('system');
  await expect(html).toHaveAttribute('data-bs-theme', 'light');
  // The system changes its mind: so does the page.
  await page.emulateMedia({ colorScheme: 'dark' });
  await expect(html).toHaveAttribute('data-bs-theme', 'dark');
  await page.emulateMedia({ colorScheme: 'light' });
  await expect(html).toHaveAttribute('data-bs-theme', 'light');

  await picker.selectOption('dark');
  await expect(html).toHaveAttribute('data-bs-theme', 'dark');
  // A picked mode stays, whatever the system says.
  await page.emulateMedia({ colorScheme: 'light' });
  await expect(html).toHaveAttribute('data-bs-theme', 'dark');
  // The server renders the page in it: no flash of light on the way in.
  const served = await page.request.get('/chat/');
  expect(await served.text()).toContain('<html lang="en" data-bs-theme="dark"');
  await page.reload();
  await expect(html).toHaveAttribute('data-bs-theme', 'dark');
  await expect(picker).toHaveValue('dark');

  await picker.selectOption('system');
  await expect(html).toHaveAttribute('data-bs-theme', 'light');
  await page.reload();
  await expect(picker).toHaveValue('system');
  await expect(html).toHaveAttribute('data-bs-theme', 'light');
});

test('"Skip to messages" is the first stop of the keyboard and leads to the messages', async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, uniqueName('Skip'));
  // From the top of the page (the message box has the focus on arrival).
  await page.evaluate(() => {
    document.body.tabIndex = -1;
    document.body.focus();
    document.body.removeAttribute('tabindex');
  });
  await page.keyboard.press('Tab');
  const skip = page.getByRole('link', { name: 'Skip to messages' });
  await expect(skip).toBeFocused();
  await expect(skip).toBeVisible();
  await page.keyboard.press('Enter');
  await expect(page.locator('#message-scroller')).toBeFocused();
  await expect(page.getByRole('log', { name: 'Messages' })).toHaveCount(1);
});
