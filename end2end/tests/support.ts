import { expect, type Page, type Browser, type BrowserContext } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { baseURL } from '../playwright.config';

/**
 * A fresh document's edit link (its token, 22 characters of base64url), made by the server at
 * `origin` as a browser makes one: `GET /new`, and the link it redirects to. Only links the
 * server made open anything.
 */
export async function newDocId(origin: string = baseURL): Promise<string> {
  const response = await fetch(`${origin}/new`, { redirect: 'manual' });
  const location = response.headers.get('location') ?? '';
  const token = /^\/d\/([A-Za-z0-9_-]{22})$/.exec(location)?.[1];
  if (!token) throw new Error(`GET ${origin}/new answered ${response.status}, not an edit link: ${location}`);
  return token;
}

/** Opens a document in a new browser context and waits until it is live. */
export async function openDoc(browser: Browser, id: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`/d/${id}`);
  await expectLive(page);
  return { context, page };
}

export async function expectLive(page: Page) {
  await expect(page.getByTestId('status')).toHaveAttribute('data-status', 'live');
}

export function source(page: Page) {
  return page.getByTestId('source');
}

/** Puts the caret at `offset` (UTF-16 units) in the source editor. */
export async function placeCaret(page: Page, offset: number) {
  await source(page).focus();
  await source(page).evaluate((el: HTMLTextAreaElement, at) => el.setSelectionRange(at, at), offset);
}

export async function typeAt(page: Page, offset: number, text: string, delay = 0) {
  await placeCaret(page, offset);
  await page.keyboard.type(text, { delay });
}

/** Names this page's person and picks their colour, as they would in the profile menu. */
export async function setIdentity(page: Page, name: string, color: string) {
  await page.getByTestId('profile').locator('summary').click();
  await page.getByTestId('my-name').fill(name);
  await page.locator(`[data-testid=swatch][data-color="${color}"]`).click();
  await page.getByTestId('profile').locator('summary').click();
}

/** The entry for the person called `name` in the page's list of who is here. */
export function peer(page: Page, name: string) {
  return page.locator(`[data-testid=peer][data-name="${name}"]`);
}

/** Where an [`OwnServer`] runs from: another executable, and the directory it starts in. */
export interface Launch {
  bin?: string;
  cwd?: string;
  /** Leaves the site settings cargo-leptos may have put in the environment out. */
  bareEnvironment?: boolean;
}

/**
 * A Tandem server of a test's own, so the test can stop and start it, with a data directory of
 * its own that [`dispose`] removes. `args` are extra command-line options.
 */
export class OwnServer {
  private process: import('node:child_process').ChildProcess | null = null;
  readonly url: string;
  readonly dataDir: string;
  constructor(
    readonly port: number,
    private readonly args: string[] = [],
    private readonly launch: Launch = {},
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.dataDir = mkdtempSync(path.join(os.tmpdir(), 'tandem-e2e-own-'));
  }

  async start() {
    const { spawn } = await import('node:child_process');
    const root = path.resolve(__dirname, '..', '..');
    const bin = this.launch.bin ?? process.env.TANDEM_BIN ?? path.join(root, 'target/debug/tandem');
    const args = ['--addr', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, ...this.args];
    const env: NodeJS.ProcessEnv = { ...process.env, RUST_LOG: 'warn' };
    if (this.launch.bareEnvironment) {
      for (const name of Object.keys(env)) if (name.startsWith('LEPTOS_')) delete env[name];
    }
    // Another process on the port would answer for this one.
    const taken = await fetch(`${this.url}/healthz`).then(
      () => true,
      () => false,
    );
    if (taken) throw new Error(`port ${this.port} is already served by another process`);
    const child = spawn(bin, args, { cwd: this.launch.cwd ?? root, stdio: ['ignore', 'ignore', 'pipe'], env });
    this.process = child;
    // The last of what it says, for the error when it does not come up.
    let said = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      said = (said + chunk.toString()).slice(-4000);
    });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const exited = () => child.exitCode !== null || child.signalCode !== null;
      if (exited()) throw new Error(`server exited (${child.exitCode ?? child.signalCode}): ${said}`);
      try {
        if ((await fetch(`${this.url}/healthz`)).ok && !exited()) return;
      } catch {}
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`server did not become healthy: ${said}`);
  }

  /** Freezes the process: its sockets stay open but nothing answers, like a dead line. */
  freeze() {
    this.process?.kill('SIGSTOP');
  }

  thaw() {
    this.process?.kill('SIGCONT');
  }

  async stop() {
    this.thaw();
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    this.process = null;
  }

  /** Stops the server and removes its data directory. */
  async dispose() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
