// Measures the one file to deploy: time from start to ready, and what a document page costs a
// browser to load from it. Prints figures; judges nothing.
//
//   node end2end/bench/one-file.mjs [target/release/tandem] [port]
//
// The executable is copied alone into an empty temporary directory and started there on
// 127.0.0.1 (port 3190 unless given). Start to ready is the time from spawning it to the first
// 200 from /readyz, polled every 2 ms, over 7 starts. The first load is a document page opened
// in a fresh Chromium profile, counted with the DevTools protocol (bytes on the wire, headers
// included), until the page is live; then the same page again with the cache it filled; then
// the home page in another fresh profile, until the network is idle.
import { chromium } from '@playwright/test';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const source = path.resolve(process.argv[2] ?? path.join(repo, 'target/release/tandem'));
const port = Number(process.argv[3] ?? 3190);
const url = `http://127.0.0.1:${port}`;
const dir = mkdtempSync(path.join(os.tmpdir(), 'tandem-bench-alone-'));
const bin = path.join(dir, 'tandem');
copyFileSync(source, bin);
chmodSync(bin, 0o755);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function start() {
  const taken = await fetch(`${url}/healthz`).then(() => true, () => false);
  if (taken) throw new Error(`port ${port} is already served by another process`);
  const began = performance.now();
  const child = spawn(bin, ['--addr', `127.0.0.1:${port}`], { cwd: dir, stdio: 'ignore', env: { PATH: process.env.PATH } });
  for (let tries = 0; tries < 10_000; tries++) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('the server exited');
    try {
      if ((await fetch(`${url}/readyz`)).ok) return { child, ms: performance.now() - began };
    } catch {}
    await sleep(2);
  }
  child.kill('SIGKILL');
  throw new Error('the server did not become ready within 20 s');
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/**
 * Loads `address` until live (a document page) or until the network is idle (the home page,
 * which has no socket); the bytes each kind of response took on the wire.
 */
async function load(context, address, { live: untilLive = true } = {}) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const kinds = new Map();
  const bytes = new Map();
  cdp.on('Network.responseReceived', ({ requestId, response, type }) => {
    const fromCache = response.fromDiskCache || response.fromMemoryCache;
    kinds.set(requestId, fromCache ? 'cache' : `${type} ${new URL(response.url).pathname.split('/').pop() || '/'}`);
  });
  cdp.on('Network.loadingFinished', ({ requestId, encodedDataLength }) => {
    const kind = kinds.get(requestId);
    if (kind && kind !== 'cache') bytes.set(kind, (bytes.get(kind) ?? 0) + encodedDataLength);
  });
  const began = performance.now();
  if (untilLive) {
    await page.goto(address);
    await page.locator('[data-testid="status"][data-status="live"]').waitFor({ timeout: 30_000 });
  } else {
    await page.goto(address, { waitUntil: 'networkidle' });
  }
  const live = performance.now() - began;
  await page.close();
  return { live, bytes };
}

const sizes = statSync(bin).size;
const starts = [];
for (let i = 0; i < 7; i++) {
  const { child, ms } = await start();
  starts.push(ms);
  await stop(child);
}
starts.sort((a, b) => a - b);

const { child } = await start();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
});
const context = await browser.newContext();
// A document made as a browser makes one: only links the server made open anything.
const made = await fetch(`${url}/new`, { redirect: 'manual' });
const address = `${url}${made.headers.get('location')}`;
const first = await load(context, address);
const again = await load(context, address);
const home = await load(await browser.newContext(), `${url}/`, { live: false });
await browser.close();
await stop(child);
rmSync(dir, { recursive: true, force: true });

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
const total = (map) => [...map.values()].reduce((a, b) => a + b, 0);
console.log(`executable: ${source} (${(sizes / 1e6).toFixed(1)} MB)`);
console.log(`start to ready: median ${starts[3].toFixed(0)} ms, fastest ${starts[0].toFixed(0)} ms, slowest ${starts[6].toFixed(0)} ms (7 starts)`);
console.log('first load of a document page, bytes on the wire:');
for (const [kind, n] of [...first.bytes].sort((a, b) => b[1] - a[1])) console.log(`  ${kind.padEnd(28)} ${kib(n)}`);
console.log(`  ${'total'.padEnd(28)} ${kib(total(first.bytes))}, live after ${first.live.toFixed(0)} ms`);
const wasm = (map) => [...map].filter(([kind]) => kind.endsWith('.wasm')).reduce((a, [, n]) => a + n, 0);
console.log(`  ${'of which wasm'.padEnd(28)} ${kib(wasm(first.bytes))}`);
console.log(`first load of the home page: ${kib(total(home.bytes))} on the wire, of which wasm ${kib(wasm(home.bytes))} (${[...home.bytes.keys()].filter((k) => k.endsWith('.wasm')).join(', ')})`);
console.log(`same page again, with the cache: ${kib(total(again.bytes))} on the wire (${[...again.bytes.keys()].join(', ')}), live after ${again.live.toFixed(0)} ms`);
