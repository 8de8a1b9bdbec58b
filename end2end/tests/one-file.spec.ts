import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { expectLive, newDocId, OwnServer, source } from './support';

/**
 * The release executable is the whole product: copied alone into an empty directory, with no
 * `target/site` and no `LEPTOS_*` settings, it serves its pages and everything they load from
 * memory. `scripts/build-release.sh` builds it (the test command does so before these tests).
 */
const root = path.resolve(__dirname, '..', '..');
const releaseBin = process.env.TANDEM_RELEASE_BIN ?? path.join(root, 'target/release/tandem');

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A GET that hands back the bytes as sent: no decompression, unlike fetch. */
function rawGet(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
      );
      response.on('error', reject);
    });
    request.on('error', reject);
  });
}

/** The body as the client reads it, whatever encoding the server chose. */
function decoded(answer: Answer): Buffer {
  switch (answer.headers['content-encoding']) {
    case 'br':
      return zlib.brotliDecompressSync(answer.body);
    case 'gzip':
      return zlib.gunzipSync(answer.body);
    case undefined:
      return answer.body;
    default:
      throw new Error(`unexpected encoding ${answer.headers['content-encoding']}`);
  }
}

test.describe('the release executable copied alone into an empty directory', () => {
  let dir: string;
  let server: OwnServer;

  test.beforeAll(async () => {
    if (!existsSync(releaseBin)) {
      throw new Error(`${releaseBin} is missing: build it with scripts/build-release.sh`);
    }
    // The executable this checkout builds, not one left from another.
    const version = execFileSync(releaseBin, ['--version']).toString();
    expect(version).toContain('site embedded');
    const commit = execFileSync('git', ['rev-parse', '--short=7', 'HEAD'], { cwd: root }).toString().trim();
    expect(version).toContain(commit);
    dir = mkdtempSync(path.join(os.tmpdir(), 'tandem-e2e-alone-'));
    const bin = path.join(dir, 'tandem');
    copyFileSync(releaseBin, bin);
    chmodSync(bin, 0o755);
    expect(readdirSync(dir)).toEqual(['tandem']);
    const port = Number(process.env.TANDEM_E2E_PORT ?? 3100) + 40;
    server = new OwnServer(port, [], { bin, cwd: dir, bareEnvironment: true });
    await server.start();
  });

  test.afterAll(async () => {
    await server?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('serves its script, wasm, stylesheet and icon from memory, compressed as the client accepts', async () => {
    const page = await rawGet(`${server.url}/d/${await newDocId(server.url)}`);
    expect(page.status).toBe(200);
    const html = page.body.toString();
    const versioned = html.match(/href="(\/site\/[0-9a-f]{16})\/pkg\/tandem\.css"/);
    expect(versioned, 'the page links its stylesheet under a versioned root').not.toBeNull();
    const base = versioned![1];
    expect(html).toContain(`href="${base}/pkg/tandem.js"`);
    expect(html).toContain(`href="${base}/pkg/tandem.wasm"`);
    expect(html).toContain(`href="${base}/favicon.svg"`);

    const assets = [
      { file: '/pkg/tandem.js', type: 'text/javascript', starts: null },
      { file: '/pkg/tandem.wasm', type: 'application/wasm', starts: Buffer.from([0, 0x61, 0x73, 0x6d]) },
      { file: '/pkg/tandem.css', type: 'text/css', starts: null },
      { file: '/favicon.svg', type: 'image/svg+xml', starts: Buffer.from('<svg') },
    ];
    for (const asset of assets) {
      const url = `${server.url}${base}${asset.file}`;
      const plain = await rawGet(url, { 'accept-encoding': 'identity' });
      expect(plain.status, asset.file).toBe(200);
      expect(plain.headers['content-type'], asset.file).toContain(asset.type);
      expect(plain.headers['content-encoding'], asset.file).toBeUndefined();
      expect(plain.headers['cache-control'], asset.file).toContain('immutable');
      expect(plain.body.length, asset.file).toBeGreaterThan(100);
      if (asset.starts) expect(plain.body.subarray(0, asset.starts.length), asset.file).toEqual(asset.starts);

      for (const encoding of ['br', 'gzip']) {
        const packed = await rawGet(url, { 'accept-encoding': encoding });
        expect(packed.headers['content-encoding'], `${asset.file} ${encoding}`).toBe(encoding);
        expect(packed.body.length, `${asset.file} ${encoding}`).toBeLessThan(plain.body.length);
        expect(decoded(packed).equals(plain.body), `${asset.file} ${encoding}`).toBe(true);
      }
      // A browser that takes both gets brotli, the smaller.
      const chosen = await rawGet(url, { 'accept-encoding': 'gzip, deflate, br, zstd' });
      expect(chosen.headers['content-encoding'], asset.file).toBe('br');

      // The plain address serves the same bytes, revalidated on every use.
      const unversioned = await rawGet(`${server.url}${asset.file}`, { 'accept-encoding': 'identity' });
      expect(unversioned.status, asset.file).toBe(200);
      expect(unversioned.headers['cache-control'], asset.file).toBe('no-cache');
      expect(unversioned.body.equals(plain.body), asset.file).toBe(true);
      const etag = unversioned.headers['etag'];
      expect(etag, asset.file).toBeTruthy();
      const again = await rawGet(`${server.url}${asset.file}`, { 'if-none-match': etag! });
      expect(again.status, asset.file).toBe(304);
      expect(again.body.length, asset.file).toBe(0);
      const kept = await rawGet(url, { 'if-none-match': etag! });
      expect(kept.status, asset.file).toBe(304);
      expect(kept.headers['cache-control'], asset.file).toContain('immutable');
    }

    // The editor's code is split off the main wasm: the document page links its chunks (and
    // the script that loads them) for preloading, under the same versioned root; the home page
    // links none of them.
    const chunks = [...html.matchAll(/<link rel="preload" href="([^"]+\.wasm)" as="fetch" type="application\/wasm" crossorigin="anonymous">/g)].map((m) => m[1]);
    expect(chunks.length, html).toBeGreaterThanOrEqual(1);
    expect(chunks.some((chunk) => chunk.includes('editor_route'))).toBe(true);
    expect(html).toContain(`<link rel="modulepreload" href="${base}/pkg/__wasm_split.______________________.js">`);
    for (const chunk of chunks) {
      expect(chunk.startsWith(`${base}/pkg/`), chunk).toBe(true);
      const answer = await rawGet(`${server.url}${chunk}`, { 'accept-encoding': 'identity' });
      expect(answer.status, chunk).toBe(200);
      expect(answer.headers['content-type'], chunk).toContain('application/wasm');
      expect(answer.headers['cache-control'], chunk).toContain('immutable');
      expect(answer.body.subarray(0, 4), chunk).toEqual(Buffer.from([0, 0x61, 0x73, 0x6d]));
    }
    const home = (await rawGet(`${server.url}/`)).body.toString();
    expect(home).toContain(`href="${base}/pkg/tandem.wasm"`);
    expect(home).not.toContain('__wasm_split');
    expect(home).not.toMatch(/chunk_\d+\.wasm|split___/);

    // A page of another build asks under its version: it gets the current files, never cached.
    // The script as a module that re-exports the current one from its own address (the chunk
    // loader imports it from there: one copy of it runs), the rest by a redirect.
    const shim = await rawGet(`${server.url}/site/0123456789abcdef/pkg/tandem.js`, { 'accept-encoding': 'identity' });
    expect(shim.status).toBe(200);
    expect(shim.headers['content-type']).toContain('text/javascript');
    expect(shim.headers['cache-control']).toBe('no-store');
    expect(shim.body.toString()).toContain(`export * from "${base}/pkg/tandem.js";`);
    expect(shim.body.toString()).toContain(`export { default } from "${base}/pkg/tandem.js";`);
    for (const file of ['pkg/tandem.wasm', 'pkg/tandem.css', 'favicon.svg']) {
      const moved = await rawGet(`${server.url}/site/0123456789abcdef/${file}`);
      expect(moved.status, file).toBe(307);
      expect(moved.headers['location'], file).toBe(`${base}/${file}`);
      expect(moved.headers['cache-control'], file).toBe('no-store');
    }
    // Not a chunk, though: it only fits the main wasm of its own build.
    for (const chunk of chunks) {
      const other = chunk.replace(base, '/site/0123456789abcdef');
      const answer = await rawGet(`${server.url}${other}`);
      expect(answer.status, other).toBe(404);
      expect(answer.headers['cache-control'], other).toBe('no-store');
    }

    // A file the build does not have is not found, and no cache may keep that answer.
    for (const missing of [
      `${base}/pkg/other.js`,
      `${base}/pkg/tandem.d.ts`,
      '/site/0123456789abcdef/pkg/other.js',
      '/site/0123456789abcdef/pkg/%74andem.js',
      '/site/0123456789abcdef//pkg/tandem.js',
      '/site/0123456789abcdef/PKG/tandem.js',
    ]) {
      const answer = await rawGet(`${server.url}${missing}`);
      const final = answer.status === 307 ? await rawGet(`${server.url}${answer.headers['location']}`) : answer;
      expect(final.status, missing).toBe(404);
      expect(final.headers['cache-control'], missing).toBe('no-store');
    }
    // Nor is anything read from disk, even a site left where a server that reads one looks.
    mkdirSync(path.join(dir, 'target/site/pkg'), { recursive: true });
    writeFileSync(path.join(dir, 'target/site/pkg/stray.js'), 'alert(1)');
    for (const missing of ['/pkg/stray.js', `${base}/pkg/stray.js`]) {
      expect((await rawGet(`${server.url}${missing}`)).status, missing).toBe(404);
    }
  });

  test('a page another build rendered goes live on this one and saves what is typed', async ({ playwright, launchOptions }) => {
    // As after a redeploy: the page's HTML names its files under the old build's version. The
    // test hands the page that HTML itself, which Chromium counts as coming from the public
    // internet, so its Local Network Access checks would refuse the page's socket to
    // loopback; a page this server sends never meets them.
    const browser = await playwright.chromium.launch({
      ...launchOptions,
      args: [...(launchOptions.args ?? []), '--disable-features=LocalNetworkAccessChecks'],
    });
    const id = await newDocId(server.url);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.route(`${server.url}/d/${id}`, async (route) => {
        const response = await route.fetch();
        const html = (await response.text()).replace(/\/site\/[0-9a-f]{16}\//g, '/site/0123456789abcdef/');
        expect(html).toContain('/site/0123456789abcdef/pkg/tandem.js');
        await route.fulfill({ response, body: html });
      });
      await page.goto(`${server.url}/d/${id}`);
      await expectLive(page);
      await source(page).click();
      await page.keyboard.type('written across a redeploy');
      await expect(page.getByTestId('saved')).toHaveAttribute('data-saved', 'saved');
      await expect
        .poll(async () => (await rawGet(`${server.url}/d/${id}/raw`)).body.toString())
        .toBe('written across a redeploy');
    } finally {
      await context.close();
      await browser.close();
    }
  });

  test('a document page from it hydrates, goes live, and two people write together', async ({ browser }) => {
    const id = await newDocId(server.url);
    const contexts = await Promise.all([browser.newContext(), browser.newContext()]);
    try {
      const [ana, ben] = await Promise.all(contexts.map((context) => context.newPage()));
      const failed: string[] = [];
      const wasmFetches = new Map<string, number>();
      for (const page of [ana, ben]) {
        page.on('response', (response) => {
          if (response.status() >= 400) failed.push(`${response.status()} ${response.url()}`);
        });
      }
      // Each of the page's wasm files is fetched once: a chunk's preload is the answer its
      // loader uses, not a second download.
      ana.on('request', (request) => {
        if (request.url().endsWith('.wasm')) wasmFetches.set(request.url(), (wasmFetches.get(request.url()) ?? 0) + 1);
      });
      await ana.goto(`${server.url}/d/${id}`);
      await expectLive(ana);
      await source(ana).click();
      await ana.keyboard.type('# From one file\n\nWritten on a server with nothing beside it.');
      await ben.goto(`${server.url}/d/${id}`);
      await expectLive(ben);
      await expect(source(ben)).toHaveValue('# From one file\n\nWritten on a server with nothing beside it.');
      await expect(ben.getByTestId('preview').locator('h1')).toHaveText('From one file');
      await source(ben).press('Control+End');
      await ben.keyboard.type(' Ben agrees.');
      await expect(source(ana)).toHaveValue(/Ben agrees\.$/);
      // The stylesheet arrived and holds the rules the page is laid out by.
      const rules = await ana.evaluate(() =>
        [...document.styleSheets]
          .filter((sheet) => sheet.href?.endsWith('/pkg/tandem.css'))
          .map((sheet) => sheet.cssRules.length),
      );
      expect(rules).toHaveLength(1);
      expect(rules[0]).toBeGreaterThan(20);
      expect(await ana.getByTestId('status').evaluate((el) => getComputedStyle(el).whiteSpace)).toBe('nowrap');
      expect(failed).toEqual([]);
      expect([...wasmFetches.keys()].some((url) => url.includes('editor_route')), [...wasmFetches.keys()].join(' ')).toBe(true);
      for (const [url, times] of wasmFetches) expect(times, url).toBe(1);
    } finally {
      await Promise.all(contexts.map((context) => context.close()));
    }
  });
});
