import { test, expect } from '@playwright/test';
import { newDocId, openDoc, source, typeAt, placeCaret, setIdentity, peer } from './support';

test('three people see each other, their selections and carets, names and departures', async ({ browser }) => {
  const id = await newDocId();
  const a = await openDoc(browser, id);
  const b = await openDoc(browser, id);
  const c = await openDoc(browser, id);
  await setIdentity(a.page, 'Ada Lovelace', '#e5484d');
  await setIdentity(b.page, 'Bea Hart', '#46a758');
  await setIdentity(c.page, 'Cy Young', '#0090ff');

  // Everyone sees the other two, with their names and colours, and themselves marked.
  for (const [x, others] of [[a, ['Bea Hart', 'Cy Young']], [b, ['Ada Lovelace', 'Cy Young']], [c, ['Ada Lovelace', 'Bea Hart']]] as const) {
    for (const name of others) await expect(peer(x.page, name)).toHaveCount(1);
    await expect(x.page.locator('[data-testid=peer][data-me=true]')).toHaveCount(1);
  }
  await expect(peer(a.page, 'Bea Hart')).toHaveAttribute('data-color', '#46a758');
  await expect(peer(a.page, 'Cy Young')).toHaveAttribute('data-color', '#0090ff');
  await expect(peer(a.page, 'Bea Hart')).toHaveText('BH');
  await expect(peer(a.page, 'Ada Lovelace')).toHaveAttribute('data-me', 'true');

  await typeAt(a.page, 0, 'hello brave new world');
  await expect(source(b.page)).toHaveValue('hello brave new world');
  await expect(source(c.page)).toHaveValue('hello brave new world');

  // B selects "brave": A sees B's selection over exactly that word, in B's colour.
  await source(b.page).focus();
  await source(b.page).evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(6, 11));
  await source(b.page).dispatchEvent('select');
  const selection = a.page.locator('.carets .rsel[data-name="Bea Hart"]');
  await expect(selection).toHaveText('brave');
  await expect(selection).toHaveAttribute('style', /--caret:#46a758/);

  // B's caret before "new"; C types before it; as A sees it, B's caret stays before "new".
  await placeCaret(b.page, 12);
  await source(b.page).dispatchEvent('select');
  const caret = a.page.locator('.carets .rcaret[data-name="Bea Hart"]');
  await expect(caret).toHaveAttribute('data-offset', '12');
  await typeAt(c.page, 0, 'oh, ');
  await expect(source(a.page)).toHaveValue('oh, hello brave new world');
  await expect(caret).toHaveAttribute('data-offset', '16');
  expect((await source(a.page).inputValue()).slice(16, 19)).toBe('new');
  await expect(caret.locator('.rlabel')).toHaveText('Bea Hart');

  // B renames: A sees the new name.
  await b.page.getByTestId('profile').locator('summary').click();
  await b.page.getByTestId('my-name').fill('Beatrix');
  await expect(peer(a.page, 'Beatrix')).toHaveCount(1);
  await expect(peer(a.page, 'Bea Hart')).toHaveCount(0);

  // B's tab closes: within a second, A and C no longer see B, nor B's caret.
  await b.page.close();
  await expect(peer(a.page, 'Beatrix')).toHaveCount(0, { timeout: 1000 });
  await expect(peer(c.page, 'Beatrix')).toHaveCount(0, { timeout: 1000 });
  await expect(a.page.locator('.carets [data-name="Beatrix"]')).toHaveCount(0);

  // No ghosts: everyone leaves, one comes back and sees only themselves.
  await a.context.close();
  await b.context.close();
  await c.context.close();
  const again = await openDoc(browser, id);
  await expect(again.page.locator('[data-testid=peer][data-me=true]')).toHaveCount(1);
  await again.page.waitForTimeout(500);
  await expect(again.page.locator('[data-testid=peer]')).toHaveCount(1);
  await again.context.close();
});

test('a name and colour are remembered by the browser for every document', async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`/d/${await newDocId()}`);
  const me = page.locator('[data-testid=peer][data-me=true]');
  await expect(me).toHaveCount(1);
  // A newcomer gets a generated two-word name.
  expect(await me.getAttribute('data-name')).toMatch(/^[A-Z][a-z]+ [A-Z][a-z]+$/);
  await setIdentity(page, 'Remembered Me', '#8e4ec6');
  await page.goto(`/d/${await newDocId()}`);
  await expect(page.locator('[data-testid=peer][data-me=true]')).toHaveAttribute('data-name', 'Remembered Me');
  await expect(page.locator('[data-testid=peer][data-me=true]')).toHaveAttribute('data-color', '#8e4ec6');
  await context.close();
});
