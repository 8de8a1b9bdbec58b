import { test, expect } from '@playwright/test';
import { newDocId, openDoc, source, typeAt } from './support';

test('formatting with shortcuts and the toolbar, by keyboard alone, reaches the other person', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  await typeAt(a.page, 0, 'word');
  await source(a.page).evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(0, 4));
  await a.page.keyboard.press('Control+b');
  await expect(source(b.page)).toHaveValue('**word**');

  // The toolbar's List button, reached and pressed with the keyboard.
  await a.page.getByTestId('format-list').focus();
  await a.page.keyboard.press('Enter');
  await expect(source(b.page)).toHaveValue('- **word**');
  // The focus is back in the source: typing goes on there.
  await a.page.keyboard.press('End');
  await a.page.keyboard.type('\nsecond');
  await expect(source(b.page)).toHaveValue('- **word**\nsecond');

  // Tab indents a list item; outside a list it moves the focus on and types nothing.
  await source(a.page).evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(3, 3));
  await a.page.keyboard.press('Tab');
  await expect(source(b.page)).toHaveValue('  - **word**\nsecond');
  await a.page.keyboard.press('Shift+Tab');
  await expect(source(b.page)).toHaveValue('- **word**\nsecond');
  await source(a.page).evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(14, 14));
  await a.page.keyboard.press('Tab');
  await expect(source(a.page)).not.toBeFocused();
  await expect(source(a.page)).toHaveValue('- **word**\nsecond');

  // Undo takes each formatting command back as a step of its own.
  await source(a.page).focus();
  await a.page.keyboard.press('Control+z');
  await expect(source(b.page)).toHaveValue('  - **word**\nsecond');
  await a.page.keyboard.press('Control+z');
  await expect(source(b.page)).toHaveValue('- **word**\nsecond');
  await a.page.keyboard.press('Control+z');
  await expect(source(b.page)).toHaveValue('- **word**');
  await expect(a.page.getByTestId('counts')).toHaveText('2 words · 10 characters');
  await a.context.close();
  await b.context.close();
});

test('the toolbar is one Tab stop: arrows, Home and End move along it, and Tab comes back to the last button used', async ({ browser }) => {
  const a = await openDoc(browser, await newDocId());
  const focused = () => a.page.evaluate(() => document.activeElement?.getAttribute('data-testid'));
  // From the source, Shift+Tab lands on the toolbar's one stop: its first button.
  await source(a.page).focus();
  await a.page.keyboard.press('Shift+Tab');
  expect(await focused()).toBe('format-bold');
  await a.page.keyboard.press('ArrowRight');
  expect(await focused()).toBe('format-italic');
  await a.page.keyboard.press('ArrowLeft');
  await a.page.keyboard.press('ArrowLeft');
  expect(await focused()).toBe('view-preview');
  await a.page.keyboard.press('Home');
  expect(await focused()).toBe('format-bold');
  await a.page.keyboard.press('End');
  await a.page.keyboard.press('ArrowLeft');
  expect(await focused()).toBe('view-split');
  // Tab leaves the toolbar at once: none of the other buttons is a stop of its own.
  await a.page.keyboard.press('Tab');
  expect(await focused()).not.toMatch(/^(format|view)-/);
  // And coming back lands on the button last used.
  await a.page.keyboard.press('Shift+Tab');
  expect(await focused()).toBe('view-split');
  // In Preview the formatting buttons are hidden: the stop stays on a button that is shown.
  await a.page.keyboard.press('ArrowRight');
  await a.page.keyboard.press('Enter');
  await expect(a.page.getByTestId('view-preview')).toHaveAttribute('aria-pressed', 'true');
  await a.page.keyboard.press('Home');
  expect(await focused()).toBe('view-edit');
  await a.context.close();
});

test('view modes switch by keyboard and are remembered by the browser', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  await typeAt(a.page, 0, '# Shown');
  await expect(a.page.getByTestId('view-split')).toHaveAttribute('aria-pressed', 'true');
  await a.page.getByTestId('view-preview').focus();
  await a.page.keyboard.press('Enter');
  await expect(source(a.page)).toBeHidden();
  await expect(a.page.getByTestId('preview').locator('h1')).toHaveText('Shown');
  // Nothing to format while the source is hidden.
  await expect(a.page.getByTestId('format-bold')).toBeHidden();
  await expect(a.page.getByTestId('view-preview')).toHaveAttribute('aria-pressed', 'true');

  // Remembered: another document in the same browser opens in Preview.
  await a.page.goto(`/d/${await newDocId()}`);
  await expect(a.page.getByTestId('view-preview')).toHaveAttribute('aria-pressed', 'true');
  await expect(source(a.page)).toBeHidden();
  await a.page.getByTestId('view-edit').click();
  await expect(source(a.page)).toBeVisible();
  await expect(a.page.getByTestId('preview')).toBeHidden();
  await a.context.close();
});

test('on a 390 x 844 phone screen nothing scrolls sideways, and every control is on it and big enough to tap', async ({ browser }) => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  await page.goto(`/d/${await newDocId()}`);
  await expect(page.getByTestId('status')).toHaveAttribute('data-status', 'live');
  await typeAt(page, 0, '# A long title that goes on\n\n' + 'word '.repeat(200));
  const overflow = () =>
    page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  for (const mode of ['split', 'edit', 'preview']) {
    await page.getByTestId(`view-${mode}`).click();
    expect(await overflow(), `horizontal overflow in ${mode}`).toBeLessThanOrEqual(0);
  }
  // Every control is on the screen and reachable, in the mode that shows the toolbar.
  await page.getByTestId('view-edit').click();
  const controls = page.locator(
    '[data-testid^="format-"], [data-testid^="view-"]:not([data-testid="view-link"]), [data-testid^="download-"], [data-testid="history-button"], [data-testid="share-button"]',
  );
  expect(await controls.count()).toBeGreaterThanOrEqual(14);
  for (const control of await controls.all()) {
    const name = await control.getAttribute('data-testid');
    await expect(control, `${name} is shown`).toBeVisible();
    await control.scrollIntoViewIfNeeded();
    const box = (await control.boundingBox())!;
    expect(box.x, `${name} starts on the screen`).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width, `${name} ends on the screen`).toBeLessThanOrEqual(390);
    expect(Math.min(box.width, box.height), `${name} is big enough to tap`).toBeGreaterThanOrEqual(24);
  }
  // The History panel fits too, opened from the keyboard.
  await page.getByTestId('history-button').focus();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('history')).toBeVisible();
  expect(await overflow(), 'horizontal overflow with History open').toBeLessThanOrEqual(0);
  await context.close();
});

test('the preview follows the source as it scrolls', async ({ browser }) => {
  const a = await openDoc(browser, await newDocId());
  const lines = Array.from({ length: 150 }, (_, i) => `Line ${i}`).join('\n\n');
  await source(a.page).focus();
  await a.page.keyboard.insertText(lines);
  const preview = a.page.getByTestId('preview');
  await expect(preview.locator('p')).toHaveCount(150);
  await source(a.page).evaluate((el: HTMLTextAreaElement) => { el.scrollTop = 0; });
  await expect.poll(() => preview.evaluate((el) => el.scrollTop)).toBe(0);
  await source(a.page).evaluate((el: HTMLTextAreaElement) => { el.scrollTop = el.scrollHeight; });
  await expect
    .poll(() => preview.evaluate((el) => el.scrollHeight - el.clientHeight - el.scrollTop))
    .toBeLessThanOrEqual(2);
  await a.context.close();
});

test("ticking a task in one person's preview ticks it in everyone's source", async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  await typeAt(a.page, 0, '- [ ] milk\n- [ ] 😀 bread');
  await expect(source(b.page)).toHaveValue('- [ ] milk\n- [ ] 😀 bread');
  const boxes = b.page.getByTestId('preview').locator('input.task');
  await expect(boxes).toHaveCount(2);
  await boxes.nth(1).click();
  await expect(source(a.page)).toHaveValue('- [ ] milk\n- [x] 😀 bread');
  await expect(a.page.getByTestId('preview').locator('input.task').nth(1)).toBeChecked();
  // By keyboard: Space on a focused box.
  await boxes.nth(0).focus();
  await b.page.keyboard.press('Space');
  await expect(source(a.page)).toHaveValue('- [x] milk\n- [x] 😀 bread');
  await a.context.close();
  await b.context.close();
});

test("formatting someone else's text adds markers only: their text stays theirs to undo", async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  await typeAt(a.page, 0, 'hello world');
  await expect(source(b.page)).toHaveValue('hello world');
  await source(b.page).focus();
  await source(b.page).evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(0, 11));
  await b.page.keyboard.press('Control+b');
  await expect(source(a.page)).toHaveValue('**hello world**');
  // A's undo takes back A's words; B's markers stay.
  await source(a.page).focus();
  await a.page.keyboard.press('Control+z');
  await expect(source(a.page)).toHaveValue('****');
  await expect(source(b.page)).toHaveValue('****');
  await a.context.close();
  await b.context.close();
});
