import { test, expect, type Page } from '@playwright/test';
import { expectLive, newDocId, source } from './support';

/**
 * The wasm is split: the home page runs the main module alone, and a document page (edit or
 * view) also needs its route's chunks, which its HTML links for preloading.
 */

/** The names of the wasm files `page` asks for, in order, wherever the server keeps them. */
function wasmRequests(page: Page): string[] {
  const seen: string[] = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname.endsWith('.wasm')) seen.push(url.pathname.split('/').pop()!);
  });
  return seen;
}

test('the home page loads the main wasm alone, and a document opened from it loads its chunks once', async ({ page }) => {
  const wasm = wasmRequests(page);
  await page.goto('/', { waitUntil: 'networkidle' });
  // Hydrated: the list of recent documents is filled in the browser.
  await expect(page.locator('.recent .muted, .recent-list')).toBeVisible();
  expect(wasm).toEqual(['tandem.wasm']);

  await page.getByTestId('new-document').click();
  await expectLive(page);
  await source(page).click();
  await page.keyboard.type('Split, and whole.');
  await expect(page.getByTestId('preview')).toContainText('Split, and whole.');
  const opened = wasm.slice(1);
  expect(opened).toContain('tandem.wasm');
  expect(opened.some((path) => path.includes('editor_route')), opened.join(' ')).toBe(true);
  expect(opened.some((path) => path.includes('viewer_route')), opened.join(' ')).toBe(false);
  expect(new Set(opened).size, opened.join(' ')).toBe(opened.length);
});

test('an editor chunk that arrives late only delays going live: the fields take typing once the editor holds them', async ({ browser }) => {
  const id = await newDocId();
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    await page.route(/editor_route.*\.wasm$/, async (route) => {
      await held;
      await route.continue();
    });
    await page.goto(`/d/${id}`);
    // The server's page is there, and says it is not live yet.
    await expect(source(page)).toBeVisible();
    await page.waitForTimeout(1_000);
    await expect(page.getByTestId('status')).not.toHaveAttribute('data-status', 'live');
    // Until the editor runs its fields take no typing: a keystroke there would be shown, then
    // lost when the editor takes the field over.
    await expect(source(page)).toHaveAttribute('readonly', '');
    await expect(page.getByTestId('title')).toHaveAttribute('readonly', '');
    await source(page).click();
    await page.keyboard.type('before the editor ran. ');
    await expect(source(page)).toHaveValue('');
    release();
    await expectLive(page);
    await expect(source(page)).not.toHaveAttribute('readonly');
    await expect(page.getByTestId('title')).not.toHaveAttribute('readonly');
    await source(page).click();
    await page.keyboard.type('After it did.');
    await page.getByTestId('title').fill('Late');
    await expect(page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
    await expect.poll(async () => (await page.request.get(`/d/${id}/raw`)).text()).toBe('After it did.');
  } finally {
    await context.close();
  }
});

test('an editor chunk that fails to load: the page says it stopped, and asks for a reload', async ({ browser }) => {
  const id = await newDocId();
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.route(/editor_route.*\.wasm$/, (route) => route.abort());
    await page.goto(`/d/${id}`);
    const status = page.getByTestId('status');
    await expect(status).toHaveAttribute('data-status', 'stopped');
    await expect(status).toHaveText(/reload the page/);
    // Nothing can be typed that would not be kept.
    await expect(source(page)).toHaveAttribute('readonly', '');
  } finally {
    await context.close();
  }
});
