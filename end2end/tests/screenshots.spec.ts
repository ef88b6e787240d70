import { expect, test, type Browser, type Page, type TestInfo } from '@playwright/test';
import { enterRoom, login, messageText, person, send, uniqueName, uniqueRoom } from './helpers';

// Pictures of the login page and of a conversation, light, dark and on a
// phone, to look at after a run (they are attached to the report and left
// in end2end/test-results, never committed). Each test also checks what a
// person would notice at a glance, so a broken look fails the run.

type Look = { name: string; colorScheme: 'light' | 'dark'; viewport: { width: number; height: number } };

const looks: Look[] = [
  { name: 'light', colorScheme: 'light', viewport: { width: 1280, height: 800 } },
  { name: 'dark', colorScheme: 'dark', viewport: { width: 1280, height: 800 } },
  { name: 'mobile', colorScheme: 'light', viewport: { width: 390, height: 844 } },
];

/** A fresh person's page in `look`: the colour mode is the system's, as no pick is stored. */
async function open(browser: Browser, look: Look): Promise<Page> {
  const context = await browser.newContext({ viewport: look.viewport });
  const page = await context.newPage();
  await page.emulateMedia({ colorScheme: look.colorScheme });
  return page;
}

async function shoot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  const path = testInfo.outputPath(`${name}.png`);
  await page.screenshot({ path });
  await testInfo.attach(name, { path, contentType: 'image/png' });
}

for (const look of looks) {
  test(`screenshot of the login page (${look.name})`, async ({ browser }, testInfo) => {
    const page = await open(browser, look);
    await page.goto('/');
    await expect(page.locator('html')).toHaveAttribute('data-bs-theme', look.colorScheme);
    await expect(page.getByLabel('Your name')).toBeVisible();
    await expect(page.getByRole('button', { name: 'Join the chat' })).toBeVisible();
    await shoot(page, testInfo, `login-${look.name}`);
    await page.context().close();
  });

  test(`screenshot of a conversation (${look.name})`, async ({ browser }, testInfo) => {
    const room = uniqueRoom('shot');
    const viewerName = uniqueName('Sam');
    const other = await person(browser, uniqueName('Ada'));
    await enterRoom(other, room);
    const page = await open(browser, look);
    await login(page, viewerName);
    await enterRoom(page, room);

    const texts = [
      `Morning @${viewerName}! The notes from yesterday are at https://example.com/notes`,
      'Thanks, reading them now.',
      'Great. Lunch at noon?',
    ];
    await send(other, texts[0]);
    await expect(messageText(page, texts[0])).toHaveCount(1);
    await send(page, texts[1]);
    await expect(messageText(page, texts[1])).toHaveCount(1);
    await send(other, texts[2]);
    await expect(messageText(page, texts[2])).toHaveCount(1);

    await expect(page.locator('html')).toHaveAttribute('data-bs-theme', look.colorScheme);
    await expect(page.getByRole('textbox', { name: 'Message' })).toBeVisible();
    const mention = page.locator('#messages li.message').filter({ hasText: texts[0] });
    await expect(mention).toHaveClass(/(^|\s)mention(\s|$)/);
    await expect(mention.getByRole('link', { name: 'https://example.com/notes' })).toBeVisible();
    const own = page.locator('#messages li.message').filter({ hasText: texts[1] });
    await expect(own).toHaveClass(/(^|\s)mine(\s|$)/);
    await expect(messageText(page, texts[2])).toBeVisible();
    if (look.name === 'mobile') {
      // The people online fold away behind a button on a phone.
      await expect(page.getByRole('button', { name: 'Online users', exact: true })).toBeVisible();
      await expect(page.getByRole('complementary', { name: 'Online users' })).toBeHidden();
    }
    await shoot(page, testInfo, `conversation-${look.name}`);
    await page.context().close();
    await other.context().close();
  });
}
