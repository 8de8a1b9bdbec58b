import { test, expect, type Browser, type Page } from '@playwright/test';
import { newDocId, source, typeAt, expectLive, peer, setIdentity } from './support';
import { baseURL } from '../playwright.config';

const LINK = /^http:\/\/127\.0\.0\.1:\d+\/(d|v)\/[A-Za-z0-9_-]{22}$/;

/** Opens `path` in a browser context of its own that may use the clipboard. */
async function open(browser: Browser, path: string) {
  const context = await browser.newContext({ permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await context.newPage();
  await page.goto(path);
  await expectLive(page);
  return { context, page };
}

/** Opens the editor's Share dialog and waits for both links. */
async function openShare(page: Page) {
  await page.getByTestId('share-button').click();
  const dialog = page.getByTestId('share-dialog');
  await expect(dialog).toBeVisible();
  await expect(dialog.getByTestId('edit-link')).toHaveValue(LINK);
  await expect(dialog.getByTestId('view-link')).toHaveValue(LINK);
  return dialog;
}

/** The document's links as the editor's Share dialog shows them (full addresses). */
async function linksOf(page: Page) {
  const dialog = await openShare(page);
  const edit = await dialog.getByTestId('edit-link').inputValue();
  const view = await dialog.getByTestId('view-link').inputValue();
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  return { edit, view };
}

test('the Share dialog shows both links as addresses and copies each', async ({ browser }) => {
  const id = await newDocId();
  const a = await open(browser, `/d/${id}`);

  const dialog = await openShare(a.page);
  await expect(dialog.getByTestId('edit-link')).toHaveValue(`${baseURL}/d/${id}`);
  const view = await dialog.getByTestId('view-link').inputValue();
  expect(view).toMatch(/\/v\/[A-Za-z0-9_-]{22}$/);
  expect(view).not.toContain(id);

  await dialog.getByTestId('copy-edit-link').click();
  await expect(dialog.getByTestId('copy-edit-link')).toHaveText('Copied');
  expect(await a.page.evaluate(() => navigator.clipboard.readText())).toBe(`${baseURL}/d/${id}`);

  await dialog.getByTestId('copy-view-link').click();
  await expect(dialog.getByTestId('copy-view-link')).toHaveText('Copied');
  await expect(dialog.getByTestId('copy-edit-link')).toHaveText('Copy');
  expect(await a.page.evaluate(() => navigator.clipboard.readText())).toBe(view);

  // Escape closes it, and the focus goes back to the button that opened it.
  await a.page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(a.page.getByTestId('share-button')).toBeFocused();
  await a.context.close();
});

test('a view link shows the document live, changes nothing, and stops at a reset and a deletion', async ({
  browser,
  request,
}) => {
  const id = await newDocId();
  const a = await open(browser, `/d/${id}`);
  await setIdentity(a.page, 'Ada', '#e5484d');
  await a.page.getByTestId('title').fill('Launch plan');
  await typeAt(a.page, 0, '# Plan\n\nfirst line\n');
  await expect(a.page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
  const links = await linksOf(a.page);
  const viewPath = new URL(links.view).pathname;

  // The server's HTML alone shows the document, rendered, and nothing to edit.
  const html = await request.get(viewPath);
  expect(html.status()).toBe(200);
  const body = await html.text();
  expect(body).toContain('Launch plan');
  expect(body).toContain('<h1>Plan</h1>');
  expect(body).toContain('first line');
  expect(body).toContain('data-testid="view-only"');
  expect(body).not.toContain('<textarea');

  // A second person opens the view link. Every frame their page sends is kept: the sync
  // messages among them may only ask (sync step 1), never carry a change.
  const v = await open(browser, viewPath);
  const syncSent: number[] = [];
  v.page.on('websocket', (socket) =>
    socket.on('framesent', ({ payload }) => {
      if (typeof payload !== 'string' && payload[0] === 0) syncSent.push(payload[1]);
    }),
  );
  await setIdentityOnViewer(v.page, 'Vic');
  await expect(v.page.getByTestId('view-only')).toBeVisible();
  await expect(v.page.getByTestId('view-title')).toHaveText('Launch plan');
  await expect(v.page.getByTestId('preview').locator('h1')).toHaveText('Plan');
  await expect(v.page.locator('textarea, input:not([type=checkbox]), [contenteditable]:not([contenteditable=false])')).toHaveCount(0);
  // Each sees the other, and the viewer is marked as one on both pages.
  await expect(peer(v.page, 'Ada')).toHaveAttribute('data-viewer', 'false');
  await expect(peer(a.page, 'Vic')).toHaveAttribute('data-viewer', 'true');
  await expect(peer(v.page, 'Vic')).toHaveAttribute('data-viewer', 'true');
  await expect(peer(a.page, 'Ada')).toHaveAttribute('data-viewer', 'false');
  // The view page ran the viewer's split-off code, and never fetched the editor's.
  const wasm = await v.page.evaluate(() =>
    performance
      .getEntriesByType('resource')
      .map((entry) => new URL(entry.name).pathname)
      .filter((path) => path.endsWith('.wasm')),
  );
  expect(wasm.some((path) => path.includes('viewer_route')), wasm.join(' ')).toBe(true);
  expect(wasm.some((path) => path.includes('editor_route')), wasm.join(' ')).toBe(false);

  // The viewer watches the editor type.
  await typeAt(a.page, '# Plan\n\nfirst line'.length, ' and more');
  await expect(v.page.getByTestId('preview')).toContainText('first line and more');
  await a.page.getByTestId('title').fill('Launch plan, v2');
  await expect(v.page.getByTestId('view-title')).toHaveText('Launch plan, v2');

  // Typing on the view page changes nothing, there or for the editor.
  await v.page.getByTestId('preview').click();
  await v.page.keyboard.type('typed by the viewer');
  await v.page.keyboard.press('Enter');
  await v.page.keyboard.press('Control+A');
  await v.page.keyboard.press('Backspace');
  // Something the editor writes afterwards arrives: whatever the viewer sent came before it.
  await typeAt(a.page, 0, 'Marker. ');
  await expect(v.page.getByTestId('preview')).toContainText('Marker.');
  const expected = 'Marker. # Plan\n\nfirst line and more\n';
  await expect(source(a.page)).toHaveValue(expected);
  await expect(v.page.getByTestId('preview')).not.toContainText('typed by the viewer');
  expect(syncSent.length).toBeGreaterThan(0);
  expect(syncSent.every((kind) => kind === 0)).toBe(true);
  expect(await a.page.getByTestId('source').inputValue()).not.toContain('viewer');

  // The editor resets the view link: the viewer is told, and the old link opens nothing.
  const dialog = await openShare(a.page);
  await dialog.getByTestId('reset-view').check();
  await dialog.getByTestId('reset-links').click();
  await expect(dialog.getByTestId('view-link')).not.toHaveValue(links.view);
  const newView = await dialog.getByTestId('view-link').inputValue();
  expect(newView).toMatch(LINK);
  await expect(dialog.getByTestId('edit-link')).toHaveValue(links.edit);
  await expect(v.page.getByTestId('link-invalid')).toBeVisible();
  await expect(v.page.getByTestId('link-invalid')).toContainText('no longer valid');
  await expect(v.page.getByTestId('status')).toHaveAttribute('data-status', 'ended');
  expect((await request.get(viewPath)).status()).toBe(404);
  expect((await request.get(new URL(newView).pathname)).status()).toBe(200);
  // The editor was not touched: it is still live, and the viewer has left its list.
  await expect(a.page.getByTestId('status')).toHaveAttribute('data-status', 'live');
  await expect(peer(a.page, 'Vic')).toHaveCount(0);

  // A reader of the new link, then the editor deletes the document.
  const w = await open(browser, new URL(newView).pathname);
  await dialog.getByTestId('delete-document').click();
  await expect(dialog.getByTestId('confirm-delete')).toBeVisible();
  await dialog.getByTestId('confirm-delete').click();
  await expect(a.page.getByTestId('gone')).toBeVisible();
  await expect(a.page.getByTestId('share-dialog')).toBeHidden();
  await expect(w.page.getByTestId('gone')).toBeVisible();
  await expect(w.page.getByTestId('status')).toHaveAttribute('data-status', 'ended');
  // The old view page heard nothing more: it still says its link was reset.
  await expect(v.page.getByTestId('link-invalid')).toBeVisible();

  // Both links now show the "deleted" page, with 410 Gone.
  for (const link of [links.edit, newView]) {
    const path = new URL(link).pathname;
    const answer = await request.get(path);
    expect(answer.status()).toBe(410);
    expect(await answer.text()).toContain('data-testid="gone"');
    const response = await w.page.goto(path);
    expect(response?.status()).toBe(410);
    await expect(w.page.getByTestId('gone')).toContainText('deleted');
  }
  for (const x of [a, v, w]) await x.context.close();
});

test('resetting the edit link moves the page to the new one and disconnects the old', async ({
  browser,
  request,
}) => {
  const id = await newDocId();
  const a = await open(browser, `/d/${id}`);
  const b = await open(browser, `/d/${id}`);
  await typeAt(a.page, 0, 'kept across the reset');
  await expect(source(b.page)).toHaveValue('kept across the reset');

  const dialog = await openShare(a.page);
  await dialog.getByTestId('reset-edit').check();
  await dialog.getByTestId('reset-links').click();
  await expect(a.page).not.toHaveURL(new RegExp(`/d/${id}$`));
  await expect(a.page).toHaveURL(/\/d\/[A-Za-z0-9_-]{22}$/);
  await expectLive(a.page);
  await expect(source(a.page)).toHaveValue('kept across the reset');

  // The other editor came by the old link: it is told, and stops.
  await expect(b.page.getByTestId('link-invalid')).toBeVisible();
  await expect(b.page.getByTestId('status')).toHaveAttribute('data-status', 'ended');
  await expect(source(b.page)).toHaveAttribute('readonly', '');
  expect((await request.get(`/d/${id}`)).status()).toBe(404);
  await a.context.close();
  await b.context.close();
});

/**
 * Names the viewer: the view page has no profile menu, so the name is put where the page reads
 * it (local storage), then the page is reloaded.
 */
async function setIdentityOnViewer(page: Page, name: string) {
  await page.evaluate((name) => {
    localStorage.setItem('tandem.identity', JSON.stringify({ name, color: '#30a46c' }));
  }, name);
  await page.reload();
  await expectLive(page);
}

test('a view address that opens nothing, or an edit link under /v/, says it is not found', async ({ page }) => {
  const id = await newDocId();
  for (const path of ['/v/AAAAAAAAAAAAAAAAAAAAAA', `/v/${id}`]) {
    const response = await page.goto(path);
    expect(response?.status(), path).toBe(404);
    await expect(page.getByTestId('not-found')).toBeVisible();
    await expect(page.getByTestId('view-only')).toHaveCount(0);
  }
});

test('a page away while its link is reset finds out when it is back, and stops', async ({ browser }) => {
  const id = await newDocId();
  const editor = await open(browser, `/d/${id}`);
  const { view } = await linksOf(editor.page);

  // The reader's connection goes through a line the test holds: what the server says on it
  // (the reset's close) never reaches the page, as when a laptop sleeps through it.
  const readerContext = await browser.newContext();
  const reader = await readerContext.newPage();
  let line: import('@playwright/test').WebSocketRoute | undefined;
  let down = false;
  await reader.routeWebSocket(/\/ws\//, (ws) => {
    if (down) {
      // The way back is not there yet: the attempt fails before the page is live.
      ws.close({ code: 1013, reason: 'no route' });
      return;
    }
    const server = ws.connectToServer();
    server.onClose(() => {});
    line = ws;
  });
  await reader.goto(view);
  await expectLive(reader);

  const dialog = await openShare(editor.page);
  await dialog.getByTestId('reset-view').check();
  await dialog.getByTestId('reset-links').click();
  await expect(dialog.getByTestId('view-link')).not.toHaveValue(view);
  expect((await reader.request.get(view)).status()).toBe(404);
  // Still showing live: it heard nothing.
  await expect(reader.getByTestId('link-invalid')).toHaveCount(0);

  // Back: the line drops, and the page's next attempts fail before it is live (as a refused
  // upgrade does, whose status the browser hides); the page asks what its link is and stops.
  down = true;
  await line!.close({ code: 1001, reason: 'line dropped' });
  await expect(reader.getByTestId('link-invalid')).toBeVisible({ timeout: 20_000 });
  // Ended: no retry is scheduled.
  await expect(reader.getByTestId('status')).toHaveAttribute('data-status', 'ended');
  await readerContext.close();
  await editor.context.close();
});
