import { expect, type Page, type Browser, type BrowserContext } from '@playwright/test';
import { randomBytes } from 'node:crypto';

/** A fresh document id: 16 random bytes in base64url, 22 characters. */
export function newDocId(): string {
  return randomBytes(16).toString('base64url');
}

/** Opens a document in a new browser context and waits until it is live. */
export async function openDoc(browser: Browser, id: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`/d/${id}`);
  await expectLive(page);
  return { context, page };
}

export async function expectLive(page: Page) {
  await expect(page.getByTestId('status')).toHaveAttribute('data-status', 'live');
}

export function source(page: Page) {
  return page.getByTestId('source');
}

/** Puts the caret at `offset` (UTF-16 units) in the source editor. */
export async function placeCaret(page: Page, offset: number) {
  await source(page).focus();
  await source(page).evaluate((el: HTMLTextAreaElement, at) => el.setSelectionRange(at, at), offset);
}

export async function typeAt(page: Page, offset: number, text: string, delay = 0) {
  await placeCaret(page, offset);
  await page.keyboard.type(text, { delay });
}
