import { test, expect } from '@playwright/test';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import WebSocket from 'ws';
import { newDocId, openDoc, source, typeAt, placeCaret } from './support';
import { baseURL } from '../playwright.config';

/** A stock Yjs client (yjs + y-websocket, as any Yjs app uses them) edits with a browser user. */
test('a stock y-websocket client and a browser edit together and converge', async ({ browser }) => {
  const id = await newDocId();
  const { context, page } = await openDoc(browser, id);
  await typeAt(page, 0, 'from the browser\n');

  const doc = new Y.Doc();
  const provider = new WebsocketProvider(baseURL.replace('http', 'ws') + '/ws', id, doc, {
    WebSocketPolyfill: WebSocket as any,
    disableBc: true,
  });
  try {
    await new Promise<void>((resolve) => provider.once('sync', (synced: boolean) => synced && resolve()));
    const text = doc.getText('content');
    await expect.poll(() => text.toString()).toBe('from the browser\n');

    text.insert(0, 'from node\n');
    doc.getText('title').insert(0, 'Shared');
    await expect(source(page)).toHaveValue('from node\nfrom the browser\n');
    await expect(page.getByTestId('title')).toHaveValue('Shared');

    await typeAt(page, 'from node\nfrom the browser\n'.length, 'browser again');
    await expect.poll(() => text.toString()).toBe('from node\nfrom the browser\nbrowser again');
    expect(await source(page).inputValue()).toBe(text.toString());
  } finally {
    provider.destroy();
    doc.destroy();
    await context.close();
  }
});

/** Carets travel as Yjs relative positions: a stock client's caret shows in Tandem, and ours in theirs. */
test('carets cross between a stock Yjs client and a browser', async ({ browser }) => {
  const id = await newDocId();
  const { context, page } = await openDoc(browser, id);
  await typeAt(page, 0, 'abcdefghij');

  const doc = new Y.Doc();
  const provider = new WebsocketProvider(baseURL.replace('http', 'ws') + '/ws', id, doc, {
    WebSocketPolyfill: WebSocket as any,
    disableBc: true,
  });
  try {
    await new Promise<void>((resolve) => provider.once('sync', (synced: boolean) => synced && resolve()));
    const text = doc.getText('content');
    await expect.poll(() => text.toString()).toBe('abcdefghij');
    provider.awareness.setLocalStateField('user', { name: 'Node Editor', color: '#0090ff' });
    provider.awareness.setLocalStateField('cursor', {
      anchor: Y.createRelativePositionFromTypeIndex(text, 2),
      head: Y.createRelativePositionFromTypeIndex(text, 5),
    });
    await expect(page.locator('.carets .rcaret[data-name="Node Editor"]')).toHaveAttribute('data-offset', '5');
    await expect(page.locator('.carets .rsel[data-name="Node Editor"]')).toHaveText('cde');
    await expect(page.locator('[data-testid=peer][data-name="Node Editor"]')).toHaveCount(1);

    // The browser's caret, read back by the stock client.
    await placeCaret(page, 7);
    await source(page).dispatchEvent('select');
    const browserHead = async () => {
      for (const [client, state] of provider.awareness.getStates()) {
        if (client === doc.clientID || !state.cursor) continue;
        const head = Y.createAbsolutePositionFromRelativePosition(Y.createRelativePositionFromJSON(state.cursor.head), doc);
        return head?.index;
      }
      return undefined;
    };
    await expect.poll(browserHead).toBe(7);
  } finally {
    provider.destroy();
    doc.destroy();
    await context.close();
  }
});
