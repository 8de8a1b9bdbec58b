import { test, expect } from '@playwright/test';
import { newDocId, openDoc, source, typeAt } from './support';

test('a version is kept, text is deleted, and restoring the version brings it back for everyone', async ({ browser }) => {
  const id = newDocId();
  // One person writes and leaves: the room keeps a version when its last editor goes.
  const first = await openDoc(browser, id);
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

  // The History lists the version; selected, it shows rendered, with what changed since.
  await a.page.getByTestId('history-button').click();
  const versions = a.page.getByTestId('version');
  await expect(versions).toHaveCount(1);
  await versions.first().click();
  await expect(a.page.getByTestId('version-preview').locator('h1')).toHaveText('Plan');
  await expect(a.page.getByTestId('changes').locator('del')).toHaveText(['# Plan', '', 'keep this text']);

  // Restore: one change, on both screens.
  await a.page.getByTestId('restore').click();
  await expect(source(a.page)).toHaveValue('# Plan\n\nkeep this text');
  await expect(source(b.page)).toHaveValue('# Plan\n\nkeep this text');
  await expect(a.page.getByTestId('history')).toHaveCount(0);

  // A restore is a change like any other: its author can undo it.
  await source(a.page).focus();
  await a.page.keyboard.press('Control+z');
  await expect(source(b.page)).toHaveValue('');
  await a.context.close();
  await b.context.close();
});
