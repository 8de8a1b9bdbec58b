import { test, expect, type Page, type BrowserContext } from '@playwright/test';
import { newDocId, source, placeCaret, openDoc, expectLive } from './support';

/**
 * A page that can be put to sleep the way a phone sleeps, as far as headless Chromium allows:
 * its WebSockets pass through the test, so the sleep can kill them as a phone's network does
 * (the connection stays open on both ends and nothing more gets through, either way; connections
 * made after waking pass normally); its clock stops (no timer runs while asleep, and on waking
 * the time jumps ahead and overdue timers fire once); and it is hidden, then shown again, as the
 * browser tells a page whose screen went off and on. (Chromium will not freeze a visible page,
 * and headless pages are always visible, so the page's clock and visibility are played here.)
 */
async function sleepyPage(context: BrowserContext) {
  const page = await context.newPage();
  const connections: { dead: boolean }[] = [];
  await page.routeWebSocket(/\/ws\//, (ws) => {
    const server = ws.connectToServer();
    const connection = { dead: false };
    connections.push(connection);
    ws.onMessage((message) => {
      if (!connection.dead) server.send(message);
    });
    server.onMessage((message) => {
      if (!connection.dead) ws.send(message);
    });
  });
  await page.clock.install();
  await page.addInitScript(() => {
    const w = window as unknown as { tandemHidden?: boolean };
    Object.defineProperty(document, 'visibilityState', {
      configurable: true,
      get: () => (w.tandemHidden ? 'hidden' : 'visible'),
    });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => !!w.tandemHidden });
  });
  const show = (hidden: boolean) =>
    page.evaluate((hidden) => {
      (window as unknown as { tandemHidden?: boolean }).tandemHidden = hidden;
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
  return {
    page,
    connections,
    async sleep() {
      await show(true);
      // From the page's own clock, which may run a little ahead of this process's: a time
      // already past cannot be paused at.
      const now = await page.evaluate(() => Date.now());
      await page.clock.pauseAt(now + 200);
      for (const connection of connections) connection.dead = true;
    },
    async wake(asleepMs: number) {
      await page.clock.fastForward(asleepMs);
      await page.clock.resume();
      await show(false);
    },
  };
}

async function openSleepy(context: BrowserContext, id: string) {
  const sleepy = await sleepyPage(context);
  await sleepy.page.goto(`/d/${id}`);
  await expectLive(sleepy.page);
  return sleepy;
}

async function writeWhileAsleep(page: Page, at: number, text: string) {
  await placeCaret(page, at);
  await page.keyboard.type(text);
  await expect(page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
}

// The heartbeat alone would notice the dead line only 45 s after the last word from the server;
// these wait far less than that, so only the page's reaction to waking can pass them.
for (const [name, asleepMs] of [
  ['a short nap: the page pings on waking and replaces the line that does not answer', 5_000],
  ['a long sleep: the page replaces a line silent for longer than a heartbeat at once', 25_000],
] as const) {
  test(name, async ({ browser }) => {
    test.setTimeout(90_000);
    const id = await newDocId();
    const aContext = await browser.newContext();
    const a = await openSleepy(aContext, id);
    const b = await openDoc(browser, id);
    await placeCaret(a.page, 0);
    await a.page.keyboard.type('before sleep.');
    await expect(source(b.page)).toHaveValue('before sleep.');

    await a.sleep();
    await writeWhileAsleep(b.page, 'before sleep.'.length, ' Written while A slept.');
    await b.page.waitForTimeout(asleepMs);
    const wokeAt = Date.now();
    await a.wake(asleepMs);
    await expect(source(a.page)).toHaveValue('before sleep. Written while A slept.', { timeout: 8_000 });
    console.log(`wake after ${asleepMs / 1000} s asleep: resynced ${Date.now() - wokeAt} ms after waking`);
    await expectLive(a.page);
    await expect(a.page.getByTestId('error')).toHaveCount(0);
    expect(a.connections.length).toBe(2);

    // The new line carries A's writing too.
    await placeCaret(a.page, 0);
    await a.page.keyboard.type('Awake. ');
    await expect(source(b.page)).toHaveValue('Awake. before sleep. Written while A slept.');
    await aContext.close();
    await b.context.close();
  });
}
