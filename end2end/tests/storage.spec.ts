import { test, expect } from '@playwright/test';
import { newDocId, openDoc, source, typeAt, expectLive } from './support';

test('typed text is saved: Saving… then Saved, and it is there after a reload', async ({ browser }) => {
  const id = await newDocId();
  const { context, page } = await openDoc(browser, id);
  const saved = page.getByTestId('saved');
  await expect(saved).toHaveAttribute('data-saved', 'saved');

  // Record every state the indicator passes through, however briefly.
  await page.evaluate(() => {
    const el = document.querySelector('[data-testid=saved]')!;
    const states: string[] = [];
    (window as any).__saveStates = states;
    new MutationObserver(() => states.push(el.getAttribute('data-saved') ?? '')).observe(el, {
      attributes: true,
      attributeFilter: ['data-saved'],
    });
  });
  await typeAt(page, 0, 'kept across reloads');
  await expect(saved).toHaveAttribute('data-saved', 'saved');
  await expect(saved).toHaveText('Saved');
  const states: string[] = await page.evaluate(() => (window as any).__saveStates);
  expect(states).toContain('saving');
  expect(states.indexOf('saving')).toBeLessThan(states.lastIndexOf('saved'));

  await page.reload();
  await expectLive(page);
  await expect(source(page)).toHaveValue('kept across reloads');
  await context.close();
});
