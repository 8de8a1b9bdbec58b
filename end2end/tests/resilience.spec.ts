import { test, expect, type Browser } from '@playwright/test';
import { newDocId, source, placeCaret, OwnServer } from './support';

const port = Number(process.env.TANDEM_E2E_PORT ?? 3100) + 20;

async function open(browser: Browser, server: OwnServer, id: string) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/d/${id}`);
  await expect(page.getByTestId('status')).toHaveAttribute('data-status', 'live');
  return { context, page };
}

let server: OwnServer;
test.beforeEach(async () => {
  server = new OwnServer(port);
  await server.start();
});
test.afterEach(async () => {
  await server.dispose();
});

test('both writers ride through a server restart and lose nothing', async ({ browser }) => {
  const id = await newDocId(server.url);
  const a = await open(browser, server, id);
  const b = await open(browser, server, id);
  await placeCaret(a.page, 0);
  await a.page.keyboard.type('top\n\nbottom');
  await expect(source(b.page)).toHaveValue('top\n\nbottom');

  await server.stop();
  for (const x of [a, b]) {
    await expect(x.page.getByTestId('status')).toHaveAttribute('data-status', 'offline');
    await expect(x.page.getByTestId('status')).toContainText('kept on this device');
  }
  // Both keep writing while the server is away.
  await placeCaret(a.page, 3);
  await a.page.keyboard.type(' (A, offline)');
  await placeCaret(b.page, (await source(b.page).inputValue()).length);
  await b.page.keyboard.type(' (B, offline)');

  await server.start();
  for (const x of [a, b]) {
    await expect(x.page.getByTestId('status')).toHaveAttribute('data-status', 'live', { timeout: 20_000 });
  }
  const expected = 'top (A, offline)\n\nbottom (B, offline)';
  await expect(source(a.page)).toHaveValue(expected);
  await expect(source(b.page)).toHaveValue(expected);
  await a.context.close();
  await b.context.close();
});

test('text typed while the browser is offline reaches the other person', async ({ browser }) => {
  const id = await newDocId(server.url);
  const a = await open(browser, server, id);
  const b = await open(browser, server, id);
  await a.context.setOffline(true);
  await placeCaret(a.page, 0);
  await a.page.keyboard.type('written on a train');
  await a.page.waitForTimeout(300);
  await a.context.setOffline(false);
  await expect(source(b.page)).toHaveValue('written on a train', { timeout: 20_000 });
  await a.context.close();
  await b.context.close();
});

test('offline text survives a closed tab and reaches the other person later', async ({ browser }) => {
  const id = await newDocId(server.url);
  const a = await open(browser, server, id);
  const b = await open(browser, server, id);
  await placeCaret(a.page, 0);
  await a.page.keyboard.type('shared start. ');
  await expect(source(b.page)).toHaveValue('shared start. ');

  await server.stop();
  await expect(a.page.getByTestId('status')).toHaveAttribute('data-status', 'offline');
  await placeCaret(a.page, 'shared start. '.length);
  await a.page.keyboard.type('typed with the server down');
  await a.page.close(); // the tab is closed before the server returns

  await server.start();
  const again = await a.context.newPage();
  await again.goto(`${server.url}/d/${id}`);
  await expect(source(again)).toHaveValue('shared start. typed with the server down');
  await expect(again.getByTestId('status')).toHaveAttribute('data-status', 'live');
  await expect(source(b.page)).toHaveValue('shared start. typed with the server down', { timeout: 20_000 });
  await a.context.close();
  await b.context.close();
});

test('a silent, dead connection is noticed within 45 seconds even when alone', async ({ browser }) => {
  test.setTimeout(120_000);
  const id = await newDocId(server.url);
  const a = await open(browser, server, id);
  await placeCaret(a.page, 0);
  await a.page.keyboard.type('alone here');
  await expect(a.page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');

  // The server stops answering without closing anything: only the page's heartbeat can tell.
  server.freeze();
  const frozenAt = Date.now();
  await expect(a.page.getByTestId('status')).toHaveAttribute('data-status', 'offline', { timeout: 60_000 });
  expect(Date.now() - frozenAt).toBeLessThan(50_000);
  await a.page.keyboard.type(', still writing');

  server.thaw();
  await expect(a.page.getByTestId('status')).toHaveAttribute('data-status', 'live', { timeout: 30_000 });
  const b = await open(browser, server, id);
  await expect(source(b.page)).toHaveValue('alone here, still writing');
  await a.context.close();
  await b.context.close();
});
