import { test, expect } from '@playwright/test';
import { newDocId, openDoc, typeAt } from './support';

test('Download .md gives the text as written and .html the rendered page, named after the title', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  await a.page.getByTestId('title').fill('Plans: <b>2027</b>');
  await typeAt(a.page, 0, '# Plans\n\n- [ ] <script>x</script>\n');
  await expect(a.page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
  const downloading = a.page.waitForEvent('download');
  await a.page.getByTestId('download-md').click();
  const download = await downloading;
  expect(download.suggestedFilename()).toBe('Plans- -b-2027-b.md');
  const path = await download.path();
  const text = (await import('node:fs')).readFileSync(path!, 'utf8');
  expect(text).toBe('# Plans\n\n- [ ] <script>x</script>\n');

  // The standalone page: rendered, styled, and without a single script.
  const downloadingHtml = a.page.waitForEvent('download');
  await a.page.getByTestId('download-html').click();
  const html = await downloadingHtml;
  expect(html.suggestedFilename()).toBe('Plans- -b-2027-b.html');
  const page = (await import('node:fs')).readFileSync((await html.path())!, 'utf8');
  expect(page).toContain('<h1>Plans</h1>');
  expect(page).not.toContain('<script');
  await a.context.close();
});
