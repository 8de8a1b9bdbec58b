import { test, expect, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { newDocId, expectLive, source } from './support';

/** A title and a text written to break out of every place the page shows them. */
const TITLE = '</title><script>alert(document.domain)</script>';
const MARKDOWN = [
  '# Hostile',
  '<img src=x onerror=alert(1)>',
  '<script>alert(2)</script>',
  '[click me](javascript:alert(3)) and [a site](https://example.com/)',
  '</textarea><img src=x onerror=alert(4)>',
  '<!-- </script><script>alert(5)</script> -->',
  '</title><svg onload=alert(6)></svg>',
  '<iframe src="javascript:alert(7)"></iframe>',
  '<a href="javascript:alert(8)">raw link</a>',
  '<style>body { display: none }</style>',
  '"\'><img src=x onerror=alert(9)>',
].join('\n\n');

/** What a page did that it should not have: dialogs, policy violations, script errors. */
interface Incidents {
  dialogs: string[];
  console: string[];
  errors: string[];
}

/** A fresh browser context whose pages record every CSP violation they see. */
async function watchedContext(browser: Browser): Promise<BrowserContext> {
  const context = await browser.newContext();
  // Runs before any of the page's own scripts, and is not itself subject to the policy.
  await context.addInitScript(() => {
    const w = window as unknown as { __violations: string[] };
    w.__violations = [];
    document.addEventListener(
      'securitypolicyviolation',
      (e) => w.__violations.push(`${e.effectiveDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`),
      true,
    );
  });
  return context;
}

function watch(page: Page): Incidents {
  const incidents: Incidents = { dialogs: [], console: [], errors: [] };
  page.on('dialog', async (dialog) => {
    incidents.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on('console', (message) => {
    if (/content security policy/i.test(message.text())) incidents.console.push(message.text());
  });
  page.on('pageerror', (error) => incidents.errors.push(error.message));
  return incidents;
}

async function violations(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __violations: string[] }).__violations);
}

/** Everything that must not be on the page if nothing the document says became markup. */
async function injectedElements(page: Page): Promise<number> {
  return page
    .locator('img[src="x"], svg, iframe, [onerror], [onload], style, a[href^="javascript"]')
    .count();
}

async function expectNothingHappened(page: Page, incidents: Incidents) {
  expect(incidents.dialogs, 'dialogs').toEqual([]);
  expect(incidents.console, 'CSP console messages').toEqual([]);
  expect(incidents.errors, 'script errors').toEqual([]);
  expect(await violations(page), 'securitypolicyviolation events').toEqual([]);
}

test('a hostile title and text stay text for everyone who opens the link', async ({ browser }) => {
  const id = await newDocId();

  // Person A writes the hostile document through the page.
  const a = await watchedContext(browser);
  const pageA = await a.newPage();
  const incidentsA = watch(pageA);
  await pageA.goto(`/d/${id}`);
  await expectLive(pageA);
  await pageA.getByTestId('title').fill(TITLE);
  await source(pageA).fill(MARKDOWN);
  await expect(pageA.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
  await expect(pageA).toHaveTitle(`${TITLE} · Tandem`);

  // A benign page, for the scripts Tandem itself ships.
  const c = await watchedContext(browser);
  const benign = await c.newPage();
  const incidentsBenign = watch(benign);
  await benign.goto(`/d/${await newDocId()}`);
  await expectLive(benign);
  const shippedScripts = await benign.locator('script').count();

  // Person B opens the link in a fresh context.
  const b = await watchedContext(browser);
  const pageB = await b.newPage();
  const incidentsB = watch(pageB);
  const response = await pageB.goto(`/d/${id}`);
  const policy = response?.headers()['content-security-policy'] ?? '';
  expect(policy).toContain("script-src 'self' 'nonce-");
  expect(response?.headers()['referrer-policy']).toBe('no-referrer');
  await expectLive(pageB);

  // The title, literally: in the tab, in the field; the text, literally, in the editor.
  await expect(pageB).toHaveTitle(`${TITLE} · Tandem`);
  await expect(pageB.getByTestId('title')).toHaveValue(TITLE);
  await expect(source(pageB)).toHaveValue(MARKDOWN);

  // The preview shows the raw HTML as text, and links only where Markdown made them.
  const preview = pageB.getByTestId('preview');
  await expect(preview.locator('h1')).toHaveText('Hostile');
  for (const raw of ['<img src=x onerror=alert(1)>', '<script>alert(2)</script>', '</title><svg onload=alert(6)></svg>']) {
    await expect(preview).toContainText(raw);
  }
  const links = preview.locator('a');
  await expect(links).toHaveCount(2);
  await expect(links.first()).toHaveAttribute('href', '#');
  for (const link of await links.all()) {
    await expect(link).toHaveAttribute('rel', 'noopener noreferrer nofollow ugc');
  }

  // No element the document asked for, no script Tandem did not ship, each script nonced.
  expect(await injectedElements(pageB)).toBe(0);
  expect(await pageB.locator('script').count()).toBe(shippedScripts);
  const unnonced = await pageB.locator('script').evaluateAll((scripts) =>
    scripts.filter((s) => !(s as HTMLScriptElement).nonce).map((s) => s.outerHTML.slice(0, 120)),
  );
  expect(unnonced).toEqual([]);

  // Let A see B arrive (carets and badges are drawn with style attributes), then check that
  // nobody's page ran anything or broke its policy.
  await expect(pageA.getByTestId('peer')).toHaveCount(2);
  await expect(pageB.getByTestId('peer')).toHaveCount(2);
  await expectNothingHappened(pageB, incidentsB);
  await expectNothingHappened(benign, incidentsBenign);
  await expectNothingHappened(pageA, incidentsA);
  expect(await injectedElements(pageA)).toBe(0);

  for (const context of [a, b, c]) await context.close();
});

test('every page carries a strict policy and the protective headers', async ({ page }) => {
  const response = await page.goto(`/d/${await newDocId()}`);
  const policy = response?.headers()['content-security-policy'] ?? '';
  for (const directive of [
    "default-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "style-src-elem 'self'",
    "style-src-attr 'unsafe-inline'",
    "'wasm-unsafe-eval'",
  ]) {
    expect(policy).toContain(directive);
  }
  expect(policy).not.toMatch(/script-src[^;]*'unsafe-inline'/);
  expect(response?.headers()['x-frame-options']).toBe('DENY');
  expect(response?.headers()['x-content-type-options']).toBe('nosniff');
});
