import { test, expect, type Page } from '@playwright/test';
import { newDocId, source } from './support';

/**
 * A real session at the real default timings (heartbeat every 15 s, presence renewed every
 * 15 s, the server's 60 s silence limit): two people keep a document open for over two minutes,
 * writing now and then and idling in between. Each page stays on the one WebSocket it opened,
 * live, and never shows an error.
 */
test('two pages left open for over two minutes stay on one WebSocket each, live, with no error', async ({ browser }) => {
  test.setTimeout(5 * 60_000);
  const id = newDocId();
  const pages: { page: Page; sockets: string[]; closed: number }[] = [];
  for (let i = 0; i < 2; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const watch = { page, sockets: [] as string[], closed: 0 };
    page.on('websocket', (ws) => {
      watch.sockets.push(ws.url());
      ws.on('close', () => watch.closed++);
    });
    await page.goto(`/d/${id}`);
    await expect(page.getByTestId('status')).toHaveAttribute('data-status', 'live');
    pages.push(watch);
  }
  const [a, b] = pages;

  const started = Date.now();
  let expected = '';
  // Eight rounds of about 16 s: one person writes, then both idle past a heartbeat.
  for (let round = 0; round < 8; round++) {
    const writer = round % 2 === 0 ? a : b;
    const reader = round % 2 === 0 ? b : a;
    await source(writer.page).focus();
    await source(writer.page).evaluate((el: HTMLTextAreaElement) => {
      el.setSelectionRange(el.value.length, el.value.length);
    });
    const line = `round ${round}\n`;
    await writer.page.keyboard.type(line);
    expected += line;
    await expect(source(reader.page)).toHaveValue(expected);
    await writer.page.waitForTimeout(16_000);
    for (const { page } of pages) {
      await expect(page.getByTestId('error')).toHaveCount(0);
      await expect(page.getByTestId('status')).toHaveAttribute('data-status', 'live');
    }
  }
  const minutes = (Date.now() - started) / 60_000;
  for (const { page, sockets, closed } of pages) {
    expect(sockets, 'WebSockets this page opened').toHaveLength(1);
    expect(closed).toBe(0);
    await expect(page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
    await page.context().close();
  }
  console.log(`session: ${minutes.toFixed(1)} minutes, one WebSocket per page`);
});
