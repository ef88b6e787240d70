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
