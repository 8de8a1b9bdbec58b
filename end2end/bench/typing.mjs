// Measures the editor as people feel it, at three document sizes (10 KB, 200 KB, 1 MB): a
// keystroke to the painted frame that shows it, another person's keystroke to the frame that
// shows it on this screen, and the first load (bytes on the wire, time until live). Prints
// figures; judges nothing.
//
//   node end2end/bench/typing.mjs [target/release/tandem] [port] [keystrokes]
//
// The executable serves a fresh data directory on 127.0.0.1 (port 3191 unless given), and each
// document is imported into it with `tandem import`. Two pages in Debian's Chromium
// open it: the typist types `keystrokes` characters (40 unless given) at the end, one every
// 150 ms. A keystroke's latency runs from the key event's time stamp to a task queued by the
// first animation frame after it: the frame that shows it has been painted by then. The other
// page's runs from the typist's key event to the same point after the text field there took
// the change (both pages share the machine's clock).
import { chromium } from '@playwright/test';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const bin = path.resolve(process.argv[2] ?? path.join(repo, 'target/release/tandem'));
const port = Number(process.argv[3] ?? 3191);
const keystrokes = Number(process.argv[4] ?? 40);
const url = `http://127.0.0.1:${port}`;
// TYPING_WATCHER=reading leaves the other page's field without the focus, as someone who only
// reads; by default they have the caret in it, as someone writing along.
const watching = process.env.TYPING_WATCHER ?? 'writing';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Markdown of about `bytes` bytes: headings, paragraphs, lists, emphasis, code; the same every run. */
function markdown(bytes) {
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
  const words = ['tandem', 'editor', 'writes', 'together', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'markdown', 'server', 'browser', 'durable', 'change', 'caret', 'preview', 'history', 'link'];
  const sentence = (n) => Array.from({ length: n }, () => words[next() % words.length]).join(' ');
  const out = [];
  let size = 0;
  let section = 0;
  while (size < bytes) {
    let block;
    switch (next() % 6) {
      case 0: block = `## Section ${++section}: ${sentence(3)}`; break;
      case 1: block = Array.from({ length: 4 }, () => `- ${sentence(6)} **${sentence(2)}**`).join('\n'); break;
      case 2: block = '```\n' + sentence(8) + '\n' + sentence(5) + '\n```'; break;
      default: block = `${sentence(40)}. *${sentence(4)}* and [a link](https://example.com/${section}).`;
    }
    out.push(block);
    size += block.length + 2;
  }
  return out.join('\n\n') + '\n';
}

async function serve(dir) {
  const taken = await fetch(`${url}/healthz`).then(() => true, () => false);
  if (taken) throw new Error(`port ${port} is already served by another process`);
  const child = spawn(bin, ['--addr', `127.0.0.1:${port}`, '--data-dir', dir], { stdio: 'ignore' });
  for (let tries = 0; tries < 2_000; tries++) {
    if (child.exitCode !== null) throw new Error('the server exited');
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) return child;
    await sleep(10);
  }
  child.kill('SIGKILL');
  throw new Error('the server did not become ready within 20 s');
}

/** Opens `address` in a fresh context until live; the bytes on the wire and the time it took. */
async function firstLoad(browser, address) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  let bytes = 0;
  cdp.on('Network.loadingFinished', ({ encodedDataLength }) => (bytes += encodedDataLength));
  const began = performance.now();
  await page.goto(address);
  await page.locator('[data-testid="status"][data-status="live"]').waitFor({ timeout: 60_000 });
  const live = performance.now() - began;
  await context.close();
  return { bytes, live };
}

/** Records, in the page, when each frame after a key event or after the field took a remote change was painted. */
function instrument() {
  window.__keys = [];
  window.__shown = [];
  const now = () => performance.timeOrigin + performance.now();
  const painted = (list, since) => {
    const handled = now();
    requestAnimationFrame(() => setTimeout(() => list.push({ since, handled, at: now() })));
  };
  document.addEventListener('keydown', (e) => painted(window.__keys, performance.timeOrigin + e.timeStamp), { capture: true });
  // The binding writes a remote change into a focused field as an edit, which fires `input`
  // (nobody types on the watching page), and into any other through the value setter.
  document.addEventListener('input', (e) => {
    if (e.target.dataset?.testid === 'source') painted(window.__shown, 0);
  }, { capture: true });
  const setter = Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, 'value');
  Object.defineProperty(HTMLTextAreaElement.prototype, 'value', {
    configurable: true,
    get() { return setter.get.call(this); },
    set(v) {
      setter.set.call(this, v);
      if (this.dataset.testid === 'source') painted(window.__shown, 0);
    },
  });
}

async function open(context, address) {
  const page = await context.newPage();
  await page.addInitScript(instrument);
  await page.goto(address);
  await page.locator('[data-testid="status"][data-status="live"]').waitFor({ timeout: 60_000 });
  return page;
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
const summary = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return `p50 ${percentile(sorted, 0.5).toFixed(1)} ms, p90 ${percentile(sorted, 0.9).toFixed(1)} ms, max ${sorted[sorted.length - 1].toFixed(1)} ms`;
};

async function measure(browser, size) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tandem-bench-typing-'));
  const file = path.join(dir, 'doc.md');
  writeFileSync(file, markdown(size));
  // The server makes the store; `import` writes into it beside the running server.
  const child = await serve(dir);
  try {
    const printed = execFileSync(bin, ['--data-dir', dir, 'import', file], { encoding: 'utf8' });
    const token = printed.trim().split('/').pop();
    const address = `${url}/d/${token}`;
    const load = await firstLoad(browser, address);
    // A context each: each page is then the shown tab of its own window, so neither has its
    // frames held back as a hidden tab's are.
    const contexts = [await browser.newContext(), await browser.newContext()];
    const typist = await open(contexts[0], address);
    const watcher = await open(contexts[1], address);
    if (watching === 'writing') {
      // Someone writing at the start while the typist writes at the end.
      await watcher.getByTestId('source').click();
      await watcher.getByTestId('source').evaluate((e) => e.setSelectionRange(0, 0));
    }
    const source = typist.getByTestId('source');
    await source.click();
    await source.evaluate((e) => e.setSelectionRange(e.value.length, e.value.length));
    const local = [];
    const remote = [];
    const waited = [];
    // TYPING_TRACE=DIR writes a Chromium trace of the typist's page per size, for DevTools.
    const trace = process.env.TYPING_TRACE && path.join(process.env.TYPING_TRACE, `typing-${size}.json`);
    if (trace) {
      await browser.startTracing(typist, {
        path: trace,
        categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'blink', 'v8.execute'],
      });
    }
    for (let i = 0; i < keystrokes; i++) {
      const shownBefore = await watcher.evaluate(() => window.__shown.length);
      await typist.keyboard.press(String.fromCharCode(97 + (i % 26)));
      await typist.waitForFunction((n) => window.__keys.length > n, i, { timeout: 10_000 });
      const key = await typist.evaluate((n) => window.__keys[n], i);
      local.push(key.at - key.since);
      waited.push(key.handled - key.since);
      await watcher.waitForFunction((n) => window.__shown.length > n, shownBefore, { timeout: 10_000 });
      const shown = await watcher.evaluate((n) => window.__shown[n].at, shownBefore);
      remote.push(shown - key.since);
      await sleep(150);
    }
    if (trace) await browser.stopTracing();
    for (const context of contexts) await context.close();
    return { load, local, remote, waited };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
});
console.log(`executable: ${bin}; ${keystrokes} keystrokes at the end of each document, one every 150 ms; the other person is ${watching}`);
// TYPING_SIZES=200000,1000000 measures only those sizes (in bytes).
const sizes = (process.env.TYPING_SIZES ?? '10000,200000,1000000').split(',').map(Number);
const label = (size) => (size >= 1_000_000 ? `${size / 1_000_000} MB` : `${size / 1_000} KB`);
for (const size of sizes) {
  const name = label(size);
  const { load, local, remote, waited } = await measure(browser, size);
  console.log(`${name}:`);
  console.log(`  first load: ${(load.bytes / 1024).toFixed(0)} KiB on the wire, live after ${load.live.toFixed(0)} ms`);
  console.log(`  keystroke to painted frame: ${summary(local)}`);
  console.log(`    of which the key event waited for the page: ${summary(waited)}`);
  console.log(`  keystroke to painted frame on the other screen: ${summary(remote)}`);
}
await browser.close();
