import { test, expect } from '@playwright/test';
import { newDocId, openDoc, source, typeAt, placeCaret, expectLive } from './support';

test('the home page creates a new document and remembers it', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Tandem' })).toBeVisible();
  await page.getByTestId('new-document').click();
  await expect(page).toHaveURL(/\/d\/[A-Za-z0-9_-]{22}$/);
  await expectLive(page);
  await page.getByTestId('title').fill('Meeting notes');
  await page.goto('/');
  await expect(page.locator('.recent-list')).toContainText('Meeting notes');
});

test('a malformed link is refused with a 400 page', async ({ page }) => {
  const response = await page.goto('/d/not-an-id');
  expect(response?.status()).toBe(400);
  await expect(page.getByRole('heading')).toContainText('not a document link');
});

test('typing in one browser appears in the other, preview included', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);

  await typeAt(a.page, 0, '# Shopping\n\n- milk\n');
  await expect(source(b.page)).toHaveValue('# Shopping\n\n- milk\n');
  await expect(b.page.getByTestId('preview').locator('h1')).toHaveText('Shopping');
  await expect(b.page.getByTestId('preview').locator('li')).toHaveText('milk');

  await b.page.getByTestId('title').fill('Groceries');
  await expect(a.page.getByTestId('title')).toHaveValue('Groceries');
  await expect(a.page).toHaveTitle(/Groceries/);

  await a.context.close();
  await b.context.close();
});

test('two people typing at once in different places converge', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  await typeAt(a.page, 0, 'top\n\nbottom');
  await expect(source(b.page)).toHaveValue('top\n\nbottom');

  await placeCaret(a.page, 3);
  await placeCaret(b.page, 'top\n\nbottom'.length);
  await Promise.all([
    a.page.keyboard.type(' written by A', { delay: 15 }),
    b.page.keyboard.type(' written by B', { delay: 15 }),
  ]);
  const expected = 'top written by A\n\nbottom written by B';
  await expect(source(a.page)).toHaveValue(expected);
  await expect(source(b.page)).toHaveValue(expected);

  // A third person arriving later sees everything.
  const c = await openDoc(browser, id);
  await expect(source(c.page)).toHaveValue(expected);
  for (const x of [a, b, c]) await x.context.close();
});

test('the server-rendered page shows the text with JavaScript off', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  await typeAt(a.page, 0, '# Rendered on the server\n\nplain *words*');
  await a.page.getByTestId('title').fill('No script here');
  // Another live replica proves the server has both.
  const b = await openDoc(browser, id);
  await expect(source(b.page)).toHaveValue('# Rendered on the server\n\nplain *words*');
  await expect(b.page.getByTestId('title')).toHaveValue('No script here');

  const noJs = await browser.newContext({ javaScriptEnabled: false });
  const page = await noJs.newPage();
  await page.goto(`/d/${id}`);
  await expect(page.getByTestId('source')).toHaveValue('# Rendered on the server\n\nplain *words*');
  await expect(page.getByTestId('preview').locator('h1')).toHaveText('Rendered on the server');
  await expect(page.getByTestId('preview').locator('em')).toHaveText('words');
  await expect(page.getByTestId('title')).toHaveValue('No script here');
  await expect(page).toHaveTitle(/No script here/);
  for (const x of [noJs, a.context, b.context]) await x.close();
});

test("a user's caret stays put when another user inserts text before it", async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  await typeAt(a.page, 0, 'world');
  await expect(source(b.page)).toHaveValue('world');

  await placeCaret(b.page, 2); // wo|rld
  await typeAt(a.page, 0, 'hello ');
  await expect(source(b.page)).toHaveValue('hello world');
  const caret = await source(b.page).evaluate((el: HTMLTextAreaElement) => [el.selectionStart, el.selectionEnd]);
  expect(caret).toEqual([8, 8]); // hello wo|rld

  // And B's next keystroke lands there, for both.
  await b.page.keyboard.type('X');
  await expect(source(a.page)).toHaveValue('hello woXrld');

  // A selection keeps covering the same word.
  await source(b.page).evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(6, 12)); // "woXrld"
  await typeAt(a.page, 0, '>> ');
  await expect(source(b.page)).toHaveValue('>> hello woXrld');
  const selected = await source(b.page).evaluate((el: HTMLTextAreaElement) => el.value.slice(el.selectionStart, el.selectionEnd));
  expect(selected).toBe('woXrld');
  await a.context.close();
  await b.context.close();
});

test('deleting, pasting and undo keep both replicas identical', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  await typeAt(a.page, 0, 'one two three');
  await expect(source(b.page)).toHaveValue('one two three');

  // Select "two " and replace it by typing; delete with Backspace.
  await source(a.page).evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(4, 8));
  await a.page.keyboard.type('2 ');
  await a.page.keyboard.press('End');
  await a.page.keyboard.press('Backspace');
  await expect(source(b.page)).toHaveValue('one 2 thre');

  // Paste, as the browser does it (an insertFromPaste input event).
  await a.page.keyboard.insertText(' pasted 😀 text');
  await expect(source(b.page)).toHaveValue('one 2 thre pasted 😀 text');

  // The browser's own undo changes the field; the shared text follows it exactly.
  await a.page.keyboard.press('Control+z');
  const afterUndo = await source(a.page).inputValue();
  await expect(source(b.page)).toHaveValue(afterUndo);
  await a.context.close();
  await b.context.close();
});

test('a <script> typed into the document does not run', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  const evil = '<script>window.__pwned = 1</script>\n\n<img src=x onerror="window.__pwned = 2">\n\n[click](javascript:window.__pwned=3)\n';
  await typeAt(a.page, 0, evil);
  await expect(source(b.page)).toHaveValue(evil);
  await expect(b.page.getByTestId('preview')).toContainText('<script>window.__pwned = 1</script>');

  const c = await openDoc(browser, id); // server-rendered with the script in it
  await expect(source(c.page)).toHaveValue(evil);
  for (const x of [a, b, c]) {
    expect(await x.page.evaluate(() => (window as any).__pwned)).toBeUndefined();
    await expect(x.page.getByTestId('preview').locator('script, img')).toHaveCount(0);
    await expect(x.page.getByTestId('preview').locator('a')).toHaveAttribute('href', '#');
  }
  for (const x of [a, b, c]) await x.context.close();
});
