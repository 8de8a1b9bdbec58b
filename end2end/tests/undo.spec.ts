import { test, expect } from '@playwright/test';
import { newDocId, openDoc, source, typeAt } from './support';

test('undo takes back only my own text, after someone else typed, and redo brings it back', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  await typeAt(a.page, 0, 'mine ');
  await expect(source(b.page)).toHaveValue('mine ');
  await typeAt(b.page, 5, 'theirs');
  await expect(source(a.page)).toHaveValue('mine theirs');

  // A undoes: A's words go on both screens, B's stay.
  await source(a.page).focus();
  await a.page.keyboard.press('Control+z');
  await expect(source(a.page)).toHaveValue('theirs');
  await expect(source(b.page)).toHaveValue('theirs');
  // The caret is put back where the change was.
  expect(await source(a.page).evaluate((el: HTMLTextAreaElement) => el.selectionStart)).toBe(0);
  // Nothing more of A's to undo: B's text is not A's to take back.
  await a.page.keyboard.press('Control+z');
  await expect(source(b.page)).toHaveValue('theirs');

  // Ctrl+Shift+Z and Ctrl+Y redo.
  await a.page.keyboard.press('Control+Shift+z');
  await expect(source(a.page)).toHaveValue('mine theirs');
  await expect(source(b.page)).toHaveValue('mine theirs');
  expect(await source(a.page).evaluate((el: HTMLTextAreaElement) => el.selectionStart)).toBe(5);
  await a.page.keyboard.press('Control+z');
  await expect(source(b.page)).toHaveValue('theirs');
  await a.page.keyboard.press('Control+y');
  await expect(source(b.page)).toHaveValue('mine theirs');

  // B's undo takes back B's text only.
  await source(b.page).focus();
  await b.page.keyboard.press('Control+z');
  await expect(source(a.page)).toHaveValue('mine ');
  await expect(source(b.page)).toHaveValue('mine ');
  await a.context.close();
  await b.context.close();
});

test('typing is undone in steps, and the title is undone too', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  await typeAt(a.page, 0, 'first');
  // A pause ends a step.
  await a.page.waitForTimeout(800);
  await a.page.keyboard.type(' second');
  await expect(source(b.page)).toHaveValue('first second');
  await a.page.keyboard.press('Control+z');
  await expect(source(b.page)).toHaveValue('first');
  await a.page.keyboard.press('Control+z');
  await expect(source(b.page)).toHaveValue('');

  const title = a.page.getByTestId('title');
  await title.focus();
  await a.page.keyboard.type('Plans');
  await expect(b.page.getByTestId('title')).toHaveValue('Plans');
  await a.page.keyboard.press('Control+z');
  await expect(title).toHaveValue('');
  await expect(b.page.getByTestId('title')).toHaveValue('');
  await a.context.close();
  await b.context.close();
});
