import { test, expect, type Page } from '@playwright/test';
import { newDocId, source, OwnServer } from './support';

/**
 * A real session at the real default timings (heartbeat every 15 s, presence renewed every
 * 15 s, the server's 60 s silence limit): two people keep a document open for over two minutes,
 * writing now and then and idling in between. Each page stays on the one WebSocket it opened,
 * live, and never shows an error.
 */
test('two pages left open for over two minutes stay on one WebSocket each, live, with no error', async ({ browser }) => {
  test.setTimeout(5 * 60_000);
  const id = await newDocId();
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

/**
 * The same at a heartbeat sixty times faster (`--heartbeat-ms 250`): a page left open for two
 * minutes sends hundreds of heartbeats, each answered, and still stays on the one WebSocket it
 * opened, live, with no error. Its sibling above keeps the real default.
 */
test('at a 250 ms heartbeat, a page left open for two minutes keeps one WebSocket and every ping is answered', async ({ browser }) => {
  test.setTimeout(5 * 60_000);
  const port = Number(process.env.TANDEM_E2E_PORT ?? 3100) + 30;
  const server = new OwnServer(port, ['--heartbeat-ms', '250']);
  await server.start();
  try {
    const id = await newDocId(server.url);
    const context = await browser.newContext();
    const page = await context.newPage();
    const seen = { sockets: 0, closed: 0, pings: 0, pongs: 0 };
    const firstByte = (payload: string | Buffer) =>
      typeof payload === 'string' ? payload.charCodeAt(0) : payload[0];
    page.on('websocket', (ws) => {
      seen.sockets++;
      ws.on('close', () => seen.closed++);
      ws.on('framesent', ({ payload }) => {
        if (firstByte(payload) === 101) seen.pings++;
      });
      ws.on('framereceived', ({ payload }) => {
        if (firstByte(payload) === 102) seen.pongs++;
      });
    });
    await page.goto(`${server.url}/d/${id}`);
    await expect(page.getByTestId('status')).toHaveAttribute('data-status', 'live');
    const viewer = await browser.newContext();
    const other = await viewer.newPage();
    await other.goto(`${server.url}/d/${id}`);
    await expect(other.getByTestId('status')).toHaveAttribute('data-status', 'live');

    const started = Date.now();
    let expected = '';
    // Eight rounds of 15 s: a line is written, then the page idles.
    for (let round = 0; round < 8; round++) {
      await source(page).focus();
      await source(page).evaluate((el: HTMLTextAreaElement) => {
        el.setSelectionRange(el.value.length, el.value.length);
      });
      const line = `beat ${round}\n`;
      await page.keyboard.type(line);
      expected += line;
      await expect(source(other)).toHaveValue(expected);
      await page.waitForTimeout(15_000);
      await expect(page.getByTestId('error')).toHaveCount(0);
      await expect(page.getByTestId('status')).toHaveAttribute('data-status', 'live');
    }
    const seconds = (Date.now() - started) / 1000;
    expect(seen.sockets, 'WebSockets the page opened').toBe(1);
    expect(seen.closed).toBe(0);
    // One ping per 250 ms, give or take the page's timer: at least three in four.
    expect(seen.pings).toBeGreaterThanOrEqual(Math.floor((seconds * 4 * 3) / 4));
    expect(seen.pongs).toBeGreaterThanOrEqual(seen.pings - 2);
    await expect(page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
    console.log(
      `session at 250 ms: ${(seconds / 60).toFixed(1)} minutes, ${seen.pings} pings, ${seen.pongs} pongs, one WebSocket`,
    );
    await context.close();
    await viewer.close();
  } finally {
    await server.dispose();
  }
});
