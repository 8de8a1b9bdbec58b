import { test, expect, type Page } from '@playwright/test';
import { newDocId, source } from './support';

/** What the page's offline store (IndexedDB `tandem`) says it keeps: id → bytes. */
async function keptCopies(page: Page): Promise<Record<string, number>> {
  return page.evaluate(async () => {
    const db: IDBDatabase = await new Promise((resolve, reject) => {
      const open = indexedDB.open('tandem', 1);
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
    const tx = db.transaction('kept', 'readonly');
    const store = tx.objectStore('kept');
    const [keys, values]: [IDBValidKey[], unknown[]] = await Promise.all([
      new Promise<IDBValidKey[]>((resolve) => {
        const r = store.getAllKeys();
        r.onsuccess = () => resolve(r.result);
      }),
      new Promise<unknown[]>((resolve) => {
        const r = store.getAll();
        r.onsuccess = () => resolve(r.result);
      }),
    ]);
    db.close();
    const kept: Record<string, number> = {};
    keys.forEach((key, i) => {
      try {
        kept[String(key)] = JSON.parse(String(values[i])).bytes;
      } catch {
        kept[String(key)] = -1;
      }
    });
    return kept;
  });
}

/** How many copies the store holds (records with or without a readable description). */
async function copyCount(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const db: IDBDatabase = await new Promise((resolve, reject) => {
      const open = indexedDB.open('tandem', 1);
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
    const count: number = await new Promise((resolve) => {
      const r = db.transaction('copies', 'readonly').objectStore('copies').count();
      r.onsuccess = () => resolve(r.result);
    });
    db.close();
    return count;
  });
}

/**
 * Puts records straight into the page's offline store (creating it as the page would), as a
 * damaged store or an older version might have left them: `copies` maps ids to bytes, `kept`
 * ids to the text of their description.
 */
async function seedStore(page: Page, copies: [string, number[]][], kept: [string, string][]) {
  await page.evaluate(
    async ([copies, kept]) => {
      const db: IDBDatabase = await new Promise((resolve, reject) => {
        const open = indexedDB.open('tandem', 1);
        open.onupgradeneeded = () => {
          open.result.createObjectStore('copies');
          open.result.createObjectStore('kept');
        };
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
      });
      const tx = db.transaction(['copies', 'kept'], 'readwrite');
      for (const [key, bytes] of copies) tx.objectStore('copies').put(new Uint8Array(bytes), key);
      for (const [key, text] of kept) tx.objectStore('kept').put(text, key);
      await new Promise((resolve) => (tx.oncomplete = resolve));
      db.close();
    },
    [copies, kept] as const,
  );
}

test('a document over 1 MiB written without the server survives a closed tab and reaches everyone later', async ({ browser }) => {
  test.setTimeout(120_000);
  const id = await newDocId();
  const context = await browser.newContext();
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const page = await context.newPage();
  // This page never reaches the server: its WebSocket is answered by nobody.
  await page.routeWebSocket(/\/ws\//, () => {});
  await page.goto(`/d/${id}`);
  await expect(page.getByTestId('status')).not.toHaveAttribute('data-status', 'live');

  // 1.2 MiB of Markdown, different on every line so nothing compresses it away.
  const lines: string[] = [];
  for (let i = 0; lines.join('\n').length < 1.2 * 1024 * 1024; i++) {
    lines.push(`- line ${i}: ${'written on a long flight '.repeat(3)}${i * 7919}`);
  }
  const big = lines.join('\n');
  // Pasted, as people bring a long text in.
  await page.evaluate((text) => navigator.clipboard.writeText(text), big);
  await source(page).focus();
  await page.keyboard.press('Control+V');
  await expect.poll(() => source(page).evaluate((el: HTMLTextAreaElement) => el.value.length)).toBe(big.length);
  await expect
    .poll(async () => (await keptCopies(page))[id] ?? 0, { timeout: 30_000 })
    .toBeGreaterThan(1024 * 1024);
  await page.close();

  // The same browser, the server reachable now: the copy is merged and sent.
  const again = await context.newPage();
  await again.goto(`/d/${id}`);
  await expect(again.getByTestId('status')).toHaveAttribute('data-status', 'live', { timeout: 30_000 });
  await expect.poll(() => source(again).evaluate((el: HTMLTextAreaElement) => el.value.length)).toBe(big.length);
  await expect(again.getByTestId('saved')).toHaveAttribute('data-saved', 'saved', { timeout: 30_000 });

  // Someone else, with no copy of their own, gets it from the server.
  const other = await browser.newContext();
  const reader = await other.newPage();
  await reader.goto(`/d/${id}`);
  await expect(reader.getByTestId('status')).toHaveAttribute('data-status', 'live');
  const received = await source(reader).evaluate((el: HTMLTextAreaElement) => el.value);
  expect(received.length).toBe(big.length);
  expect(received === big).toBe(true);
  await context.close();
  await other.close();
});

test('offline copies stay within their bounds: the oldest goes first, and damaged records are cleared', async ({ browser }) => {
  const id = await newDocId();
  const context = await browser.newContext();
  const page = await context.newPage();
  // Any page of the site gives the origin; the store is filled before the document opens.
  await page.goto('/');
  const now = Date.now();
  const copies: [string, number[]][] = [];
  const kept: [string, string][] = [];
  // Fifty other documents, the store's whole count, saved a minute apart an hour ago.
  for (let i = 0; i < 50; i++) {
    const other = `older-${String(i).padStart(2, '0')}`;
    copies.push([other, [0, 0]]);
    kept.push([other, JSON.stringify({ id: other, bytes: 2, saved_at: now - 3_600_000 + i * 60_000 })]);
  }
  // Damage: a record that is not JSON, one naming another id, a copy with no record, and a
  // copy of this very document that is not a Yjs update at all.
  copies.push(['not-json', [1]]);
  kept.push(['not-json', '{ not json']);
  kept.push(['liar', JSON.stringify({ id: 'someone-else', bytes: 1, saved_at: now })]);
  // One claiming to be newest for ever, which would push every other copy out first.
  copies.push(['future', [1]]);
  kept.push(['future', JSON.stringify({ id: 'future', bytes: 1, saved_at: 1e300 })]);
  copies.push(['orphan', new Array(1000).fill(7)]);
  copies.push([id, [255, 255, 255, 255, 1, 2, 3]]);
  kept.push([id, JSON.stringify({ id, bytes: 7, saved_at: now })]);
  await seedStore(page, copies, kept);

  // The damaged copy of this document is ignored: the page goes live and takes edits.
  await page.goto(`/d/${id}`);
  await expect(page.getByTestId('status')).toHaveAttribute('data-status', 'live');
  await source(page).focus();
  await page.keyboard.type('kept offline');
  await expect(page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
  await expect.poll(async () => (await keptCopies(page))[id] ?? 0, { timeout: 20_000 }).toBeGreaterThan(7);

  const ids = Object.keys(await keptCopies(page));
  expect(ids).toHaveLength(50);
  expect(ids).not.toContain('older-00');
  expect(ids).toContain('older-01');
  expect(ids).toContain('older-49');
  for (const damaged of ['not-json', 'liar', 'orphan', 'future']) expect(ids).not.toContain(damaged);
  expect(await copyCount(page)).toBe(50);

  // Another reader sees the text: the damaged copy did not reach the server either.
  const other = await browser.newContext();
  const reader = await other.newPage();
  await reader.goto(`/d/${id}`);
  await expect(source(reader)).toHaveValue('kept offline');
  await context.close();
  await other.close();
});

/** A page of document `id` whose WebSocket nobody answers: as far as the server knows, offline. */
async function unreachablePage(context: import('@playwright/test').BrowserContext, id: string) {
  const page = await context.newPage();
  await page.routeWebSocket(/\/ws\//, () => {});
  await page.goto(`/d/${id}`);
  await expect(page.getByTestId('status')).not.toHaveAttribute('data-status', 'live');
  return page;
}

test('words typed offline just before the tab closes are there when it opens again', async ({ browser }) => {
  const id = await newDocId();
  const context = await browser.newContext();
  const page = await unreachablePage(context, id);
  await source(page).focus();
  await page.keyboard.type('last words');
  // Closed at once: no time for the copy's usual write a second later.
  await page.close({ runBeforeUnload: true });

  const again = await context.newPage();
  await again.goto(`/d/${id}`);
  await expect(source(again)).toHaveValue('last words');
  await expect(again.getByTestId('status')).toHaveAttribute('data-status', 'live');
  await expect(again.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
  const other = await browser.newContext();
  const reader = await other.newPage();
  await reader.goto(`/d/${id}`);
  await expect(source(reader)).toHaveValue('last words');
  await context.close();
  await other.close();
});

test('two offline tabs of one document both keep their words', async ({ browser }) => {
  const id = await newDocId();
  const context = await browser.newContext();
  const a = await unreachablePage(context, id);
  const b = await unreachablePage(context, id);
  await source(a).focus();
  await a.keyboard.type('from A. ');
  await expect.poll(async () => (await keptCopies(a))[id] ?? 0, { timeout: 20_000 }).toBeGreaterThan(0);
  const afterA = (await keptCopies(a))[id];
  await source(b).focus();
  await b.keyboard.type('from B.');
  // B's write is the later one: it must not replace A's.
  await expect.poll(async () => (await keptCopies(b))[id], { timeout: 20_000 }).not.toBe(afterA);
  await a.close();
  await b.close();

  const again = await context.newPage();
  await again.goto(`/d/${id}`);
  await expect(again.getByTestId('status')).toHaveAttribute('data-status', 'live');
  const text = await source(again).inputValue();
  expect(text).toContain('from A.');
  expect(text).toContain('from B.');
  await context.close();
});

test('two offline tabs closed at once, before either could write its copy, both keep their words', async ({ browser }) => {
  const id = await newDocId();
  const context = await browser.newContext();
  const a = await unreachablePage(context, id);
  const b = await unreachablePage(context, id);
  await source(a).focus();
  await a.keyboard.type('first tab. ');
  await source(b).focus();
  await b.keyboard.type('second tab.');
  await Promise.all([a.close({ runBeforeUnload: true }), b.close({ runBeforeUnload: true })]);

  const again = await context.newPage();
  await again.goto(`/d/${id}`);
  await expect(again.getByTestId('status')).toHaveAttribute('data-status', 'live');
  await expect(source(again)).toHaveValue(/first tab\./);
  await expect(source(again)).toHaveValue(/second tab\./);
  await context.close();
});

test('a copy whose merge stopped the page on two loads is dropped on the third', async ({ browser }) => {
  const id = await newDocId();
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto('/');
  await seedStore(page, [[id, [1, 2, 3]]], [[id, JSON.stringify({ id, bytes: 3, saved_at: Date.now() - 120_000 })]]);
  // Left by two loads that never finished merging it, a minute ago.
  await page.evaluate(
    (id) => localStorage.setItem(`tandem.merging.${id}`, JSON.stringify({ at: Date.now() - 60_000, tries: 2 })),
    id,
  );
  await page.goto(`/d/${id}`);
  await expect(page.getByTestId('status')).toHaveAttribute('data-status', 'live');
  await expect.poll(async () => (await keptCopies(page))[id]).toBeUndefined();
  expect(await page.evaluate((id) => localStorage.getItem(`tandem.merging.${id}`), id)).toBeNull();
  // The document itself is untouched and takes edits.
  await source(page).focus();
  await page.keyboard.type('fresh start');
  await expect(page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
  await context.close();
});
