import { test, expect, type Page } from '@playwright/test';
import { newDocId, source, typeAt, placeCaret, setIdentity, peer } from './support';
import { Cluster, StockClient, SwitchableProxy, clusterPorts, openDocAt } from './cluster-support';

/**
 * Two Tandem instances on one PostgreSQL and one Redis, every server real and on loopback:
 * whoever is on either instance writes with whoever is on the other, sees them, and loses
 * nothing when one instance is killed.
 */
test.describe('two instances on one PostgreSQL and one Redis', () => {
  let cluster: Cluster;

  test.beforeAll(async () => {
    test.setTimeout(120_000);
    cluster = await Cluster.start();
  });

  test.afterAll(async () => {
    await cluster?.dispose();
  });

  test.beforeEach(async () => {
    await cluster.restoreInstances();
  });

  test.afterEach(async ({}, testInfo) => {
    const troubles = cluster.takeTroubles();
    if (testInfo.status !== testInfo.expectedStatus || troubles.length > 0) {
      await testInfo.attach('cluster logs', { body: cluster.logs(), contentType: 'text/plain' });
    }
    cluster.assertRunning();
    expect(troubles.slice(0, 10), 'what the instances logged as going wrong').toEqual([]);
  });

  test('stock Yjs clients typing at once on A and on B converge, and later joiners see the same', async () => {
    const id = await newDocId(cluster.a.url);
    const onA = await StockClient.join(cluster.a.url, id);
    const onB = await StockClient.join(cluster.b.url, id);
    const clients = [onA, onB];
    try {
      // Each insert goes at a boundary between words, wherever its writer sees one, so no word
      // is ever split and each can be found in the result whatever the interleaving.
      const words = (prefix: string) => Array.from({ length: 50 }, (_, i) => `${prefix}${i};`);
      const aWords = words('a');
      const bWords = words('b');
      const insertAtABoundary = (client: StockClient, word: string, i: number) => {
        const text = client.text.toString();
        const boundaries = [0, ...[...text].flatMap((c, at) => (c === ';' ? [at + 1] : []))];
        client.text.insert(boundaries[(i * 7) % boundaries.length], word);
      };
      for (let i = 0; i < 50; i++) {
        insertAtABoundary(onA, aWords[i], i);
        insertAtABoundary(onB, bWords[i], i);
        // Lets the other side's changes arrive between inserts, so they interleave on the wire.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }

      const missing = (client: StockClient) => {
        const text = client.text.toString();
        return [...aWords, ...bWords].filter((word) => !text.includes(word));
      };
      await expect.poll(() => missing(onA), { message: 'every word on A', timeout: 15_000 }).toEqual([]);
      await expect.poll(() => missing(onB), { message: 'every word on B', timeout: 15_000 }).toEqual([]);
      await expect.poll(() => onB.text.toString()).toBe(onA.text.toString());
      const converged = onA.text.toString();
      expect(converged).toHaveLength([...aWords, ...bWords].join('').length);

      // Joining later on either instance, a client reads the same text.
      for (const instance of [cluster.a, cluster.b]) {
        const late = await StockClient.join(instance.url, id);
        clients.push(late);
        await expect.poll(() => late.text.toString(), { message: `late joiner on ${instance.name}` }).toBe(converged);
      }
    } finally {
      for (const client of clients) client.destroy();
    }
  });

  test('a person on A and a person on B see each other’s text, preview, caret and presence', async ({ browser }) => {
    const id = await newDocId(cluster.a.url);
    const ada = await openDocAt(browser, cluster.a.url, id);
    const bo = await openDocAt(browser, cluster.b.url, id);
    try {
      await setIdentity(ada.page, 'Ada on A', '#e5484d');
      await setIdentity(bo.page, 'Bo on B', '#46a758');
      await expect(peer(ada.page, 'Bo on B')).toHaveCount(1);
      await expect(peer(ada.page, 'Bo on B')).toHaveAttribute('data-color', '#46a758');
      await expect(peer(bo.page, 'Ada on A')).toHaveCount(1);
      await expect(peer(bo.page, 'Ada on A')).toHaveAttribute('data-color', '#e5484d');

      await typeAt(ada.page, 0, '# Notes from A\n\n');
      await expect(source(bo.page)).toHaveValue('# Notes from A\n\n');
      await expect(bo.page.getByTestId('preview').locator('h1')).toHaveText('Notes from A');

      await typeAt(bo.page, '# Notes from A\n\n'.length, 'Bo writes *here* on B.');
      const both = '# Notes from A\n\nBo writes *here* on B.';
      await expect(source(ada.page)).toHaveValue(both);
      await expect(ada.page.getByTestId('preview').locator('em')).toHaveText('here');

      // Each sees the other's caret, named, where the other put it.
      const offsetOfHere = both.indexOf('*here*');
      await placeCaret(bo.page, offsetOfHere);
      await source(bo.page).dispatchEvent('select');
      const bosCaret = ada.page.locator('.carets .rcaret[data-name="Bo on B"]');
      await expect(bosCaret).toHaveAttribute('data-offset', String(offsetOfHere));
      await expect(bosCaret.locator('.rlabel')).toHaveText('Bo on B');
      await placeCaret(ada.page, 2);
      await source(ada.page).dispatchEvent('select');
      const adasCaret = bo.page.locator('.carets .rcaret[data-name="Ada on A"]');
      await expect(adasCaret).toHaveAttribute('data-offset', '2');
      await expect(adasCaret.locator('.rlabel')).toHaveText('Ada on A');

      // Text Ada adds before it moves Bo's caret, as Ada sees it, with the words it stood by.
      await typeAt(ada.page, 0, 'Draft. ');
      await expect(source(bo.page)).toHaveValue(`Draft. ${both}`);
      await expect(bosCaret).toHaveAttribute('data-offset', String(offsetOfHere + 'Draft. '.length));

      // Ada leaves: B's person no longer sees her, nor her caret.
      await ada.page.close();
      await expect(peer(bo.page, 'Ada on A')).toHaveCount(0);
      await expect(bo.page.locator('.carets [data-name="Ada on A"]')).toHaveCount(0);
    } finally {
      await ada.context.close();
      await bo.context.close();
    }
  });

  test('kill -9 of the instance a person writes on while both type: they go on on B and nothing is lost', async ({
    browser,
  }) => {
    test.setTimeout(120_000);
    const id = await newDocId(cluster.a.url);
    // Ada reaches A through a proxy that will send her to B once A is dead; Bo is on B.
    const proxy = new SwitchableProxy(clusterPorts.proxy, cluster.a.port);
    await proxy.listen();
    const ada = await openDocAt(browser, proxy.url, id);
    const bo = await openDocAt(browser, cluster.b.url, id);
    const status = (page: Page) => page.getByTestId('status');
    let reader: StockClient | undefined;
    try {
      await setIdentity(ada.page, 'Ada via the proxy', '#e5484d');
      await setIdentity(bo.page, 'Bo on B', '#46a758');
      await typeAt(ada.page, 0, 'Ada:\nBo:');
      await expect(source(bo.page)).toHaveValue('Ada:\nBo:');

      // Each writes at the end of their own line, so the final text is known exactly. Both
      // carets are placed before either starts: from then on they move with the other's text.
      const adaTyped = ' alpha bravo charlie delta echo foxtrot golf hotel india juliet';
      const boTyped = ' one two three four five six seven eight nine ten eleven twelve';
      await placeCaret(ada.page, 'Ada:'.length);
      await placeCaret(bo.page, 'Ada:\nBo:'.length);
      const adaTyping = ada.page.keyboard.type(adaTyped, { delay: 40 });
      const boTyping = bo.page.keyboard.type(boTyped, { delay: 40 });
      // A dies once some of Ada's typing has reached Bo through it, while both are still typing.
      await expect(source(bo.page)).toHaveValue(/Ada: alpha bravo/);
      await cluster.a.kill();
      await Promise.all([adaTyping, boTyping]);

      // Ada's page knows it lost A, and she writes on with A dead and the proxy still on it.
      await expect(status(ada.page)).toHaveAttribute('data-status', 'offline');
      const typedWhileDown = ' (written while A was down)';
      await typeAt(ada.page, `Ada:${adaTyped}`.length, typedWhileDown);
      await expect(status(ada.page)).not.toHaveAttribute('data-status', 'live');

      // The proxy now sends her to B; her page reconnects on its own.
      proxy.switchTo(cluster.b.port);
      await expect(status(ada.page)).toHaveAttribute('data-status', 'live', { timeout: 30_000 });

      const expected = `Ada:${adaTyped}${typedWhileDown}\nBo:${boTyped}`;
      await expect(source(ada.page)).toHaveValue(expected, { timeout: 30_000 });
      await expect(source(bo.page)).toHaveValue(expected, { timeout: 30_000 });
      reader = await StockClient.join(cluster.b.url, id);
      await expect.poll(() => reader!.text.toString(), { message: 'a fresh client on B' }).toBe(expected);

      // Ada's caret reaches Bo from B now.
      await placeCaret(ada.page, 3);
      await source(ada.page).dispatchEvent('select');
      const adasCaret = bo.page.locator('.carets .rcaret[data-name="Ada via the proxy"]');
      await expect(adasCaret.and(bo.page.locator('[data-offset="3"]'))).toHaveCount(1);
      await expect(peer(ada.page, 'Bo on B')).toHaveCount(1);
      // Her page took a fresh presence id for its new connection; the one she had on A was A's
      // to renew or remove, and A is dead: B drops it with everything A relayed once A has been
      // silent for 12 s (A renewed its claims every 5 s), well before its own 30 s timeout.
      await expect(peer(bo.page, 'Ada via the proxy')).toHaveCount(1, { timeout: 25_000 });
      await expect(adasCaret).toHaveCount(1);
      await expect(adasCaret).toHaveAttribute('data-offset', '3');
    } finally {
      reader?.destroy();
      await ada.context.close();
      await bo.context.close();
      await proxy.close();
    }
  });
});
