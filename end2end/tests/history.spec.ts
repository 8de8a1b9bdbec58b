import { test, expect } from '@playwright/test';
import { newDocId, openDoc, source, typeAt } from './support';

test('a version is kept, text is deleted, and restoring the version brings it back for everyone', async ({ browser }) => {
  const id = await newDocId();
  // One person writes and leaves: the room keeps a version when its last editor goes.
  const first = await openDoc(browser, id);
  await first.page.getByTestId('title').fill('Plan A');
  await typeAt(first.page, 0, '# Plan\n\nkeep this text');
  await expect(first.page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
  await first.context.close();

  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  await expect(source(a.page)).toHaveValue('# Plan\n\nkeep this text');
  // Everything is deleted.
  await source(a.page).focus();
  await a.page.keyboard.press('Control+a');
  await a.page.keyboard.press('Backspace');
  await expect(source(b.page)).toHaveValue('');
  await a.page.getByTestId('title').fill('Other');
  await expect(b.page.getByTestId('title')).toHaveValue('Other');

  // The History lists the version; selected, it shows rendered, with what changed since.
  await a.page.getByTestId('history-button').click();
  const versions = a.page.getByTestId('version');
  await expect(versions).toHaveCount(1);
  await versions.first().click();
  await expect(a.page.getByTestId('version-preview').locator('h1')).toHaveText('Plan');
  await expect(a.page.getByTestId('changes').locator('del')).toHaveText(['# Plan', '', 'keep this text']);
  await expect(a.page.getByTestId('version-title')).toHaveText('Title: Plan A');

  // Restore: one change, on both screens.
  await a.page.getByTestId('restore').click();
  await expect(source(a.page)).toHaveValue('# Plan\n\nkeep this text');
  await expect(source(b.page)).toHaveValue('# Plan\n\nkeep this text');
  await expect(b.page.getByTestId('title')).toHaveValue('Plan A');
  await expect(a.page.getByTestId('history')).toHaveCount(0);

  // A restore is one change like any other: its author undoes it, title and text, in one step.
  await source(a.page).focus();
  await a.page.keyboard.press('Control+z');
  await expect(source(b.page)).toHaveValue('');
  await expect(b.page.getByTestId('title')).toHaveValue('Other');
  await a.context.close();
  await b.context.close();
});
