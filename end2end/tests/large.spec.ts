import { test, expect, Page } from '@playwright/test';
import { expectLive, newDocId, openDoc, placeCaret, source } from './support';

/** About a megabyte of Markdown: headings, paragraphs, lists and tasks, different on every line. */
function bigMarkdown(): string {
  const blocks: string[] = [];
  for (let i = 0; blocks.join('\n\n').length < 1024 * 1024; i++) {
    switch (i % 4) {
      case 0: blocks.push(`## Section ${i}`); break;
      case 1: blocks.push(`- [ ] task ${i}\n- item ${i} with *emphasis*`); break;
      default: blocks.push(`Paragraph ${i}: ${'words written together on one page '.repeat(6)}${i * 7919}.`);
    }
  }
  return blocks.join('\n\n') + '\n';
}

/** Marks every child node of the element matching `selector` as seen, in the page. */
async function markChildren(page: Page, selector: string) {
  await page.evaluate((selector) => {
    const seen = ((window as any).__seen ??= new WeakSet());
    document.querySelector(selector)!.childNodes.forEach((node) => seen.add(node));
  }, selector);
}

/** How many child nodes of the element matching `selector` are new since they were marked, and how many it has. */
async function freshChildren(page: Page, selector: string): Promise<{ fresh: number; total: number }> {
  return page.evaluate((selector) => {
    const seen: WeakSet<Node> = (window as any).__seen;
    const nodes = [...document.querySelector(selector)!.childNodes];
    return { fresh: nodes.filter((node) => !seen.has(node)).length, total: nodes.length };
  }, selector);
}

test('in a 1 MB document a keystroke replaces only what it changed, in the preview, the caret layer and the other field', async ({ browser }) => {
  test.setTimeout(120_000);
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const big = bigMarkdown();
  await a.context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await a.page.evaluate((text) => navigator.clipboard.writeText(text), big);
  await source(a.page).focus();
  await a.page.keyboard.press('Control+V');
  await expect.poll(() => source(a.page).evaluate((el: HTMLTextAreaElement) => el.value.length)).toBe(big.length);
  await expect(a.page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved', { timeout: 30_000 });

  // Bo opens it and writes near the start: Ada sees Bo's caret there.
  const b = await openDoc(browser, id);
  await expect.poll(() => source(b.page).evaluate((el: HTMLTextAreaElement) => el.value.length)).toBe(big.length);
  await placeCaret(b.page, 3);
  await expect(a.page.locator('.carets .rcaret')).toHaveCount(1);
  const middle = big.indexOf('Paragraph ', 500_000);
  const label = big.slice(middle, big.indexOf(':', middle) + 1);
  const zebra = label.replace('Paragraph', 'Paragraph zebra');
  await expect(b.page.getByTestId('preview')).toContainText(label);
  await expect(a.page.getByTestId('preview')).toContainText(label);
  // Each page has taken its preview as blocks: Ada's built it after the paste, Bo's took the
  // server's rendering as it was.
  for (const page of [a.page, b.page]) {
    await expect(page.getByTestId('preview')).toHaveAttribute('data-blocks', 'patched', { timeout: 20_000 });
  }
  await expect(a.page.locator('.carets')).toHaveAttribute('data-blocks', 'patched');

  await markChildren(a.page, '[data-testid=preview]');
  await markChildren(a.page, '.carets');
  await markChildren(b.page, '[data-testid=preview]');
  await b.page.evaluate(() => {
    (window as any).__inputs = 0;
    document.querySelector('[data-testid=source]')!.addEventListener('input', () => (window as any).__inputs++);
  });
  const bScroll = await source(b.page).evaluate((el: HTMLTextAreaElement) => el.scrollTop);

  // Ada types a word into a paragraph in the middle.
  await placeCaret(a.page, middle + 'Paragraph'.length);
  await a.page.keyboard.type(' zebra');
  const edited = big.slice(0, middle + 9) + ' zebra' + big.slice(middle + 9);
  await expect.poll(() => source(b.page).evaluate((el: HTMLTextAreaElement) => el.value.length)).toBe(edited.length);
  await expect(b.page.getByTestId('preview')).toContainText(zebra);
  await expect(a.page.getByTestId('preview')).toContainText(zebra);

  // The previews replaced the piece that holds the paragraph (a few blocks of the 6,000).
  for (const page of [a.page, b.page]) {
    const { fresh, total } = await freshChildren(page, '[data-testid=preview]');
    expect(fresh, `fresh preview nodes of ${total}`).toBeLessThanOrEqual(100);
    expect(fresh).toBeGreaterThan(0);
    expect(total).toBeGreaterThan(4000);
  }
  // Ada's caret layer replaced the chunk she typed in, and lines up with her field line for line.
  const layer = await freshChildren(a.page, '.carets');
  expect(layer.fresh, `fresh chunks of ${layer.total}`).toBeLessThanOrEqual(1);
  expect(layer.total).toBeGreaterThan(100);
  const heights = await a.page.evaluate(() => [
    document.querySelector('.carets')!.scrollHeight,
    document.querySelector('[data-testid=source]')!.scrollHeight,
  ]);
  expect(heights[0]).toBe(heights[1]);

  // Bo's field took the change as an edit, with his caret and his scroll where they were.
  expect(await b.page.evaluate(() => (window as any).__inputs)).toBeGreaterThan(0);
  expect(await source(b.page).evaluate((el: HTMLTextAreaElement, edited) => el.value === edited, edited)).toBe(true);
  expect(await source(b.page).evaluate((el: HTMLTextAreaElement) => [el.selectionStart, el.selectionEnd])).toEqual([3, 3]);
  expect(await source(b.page).evaluate((el: HTMLTextAreaElement) => el.scrollTop)).toBe(bScroll);

  // Blocks merged, split and added at the start: the patched preview is what a fresh page renders.
  await placeCaret(a.page, 0);
  await a.page.keyboard.type('# New title\n\n');
  const blankAt = await source(a.page).evaluate((el: HTMLTextAreaElement) => el.value.indexOf('\n\n', 200_000));
  await source(a.page).evaluate((el: HTMLTextAreaElement, at) => el.setSelectionRange(at, at + 2), blankAt);
  await a.page.keyboard.press('Backspace');
  await a.page.keyboard.type(' [^n]\n\n[^n]: a footnote');
  await expect(a.page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved', { timeout: 30_000 });
  const fresh = await openDoc(browser, id);
  const rendered = await fresh.page.getByTestId('preview').innerHTML();
  for (const page of [a.page, b.page]) {
    await expect.poll(() => page.getByTestId('preview').innerHTML(), { timeout: 10_000 }).toBe(rendered);
  }
  // Ticking a task in the patched preview ticks the right one.
  await a.page.getByTestId('preview').locator('input.task').nth(2).click();
  await expect.poll(() => source(fresh.page).evaluate((el: HTMLTextAreaElement) => el.value.includes('- [x] task 9\n'))).toBe(true);
  await expect(source(fresh.page)).toHaveValue(/- \[ \] task 5\n/);
  await expectLive(fresh.page);
  for (const person of [a, b, fresh]) await person.context.close();
});
