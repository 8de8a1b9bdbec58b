import { defineConfig } from '@playwright/test';
import path from 'node:path';
import os from 'node:os';
import { mkdtempSync } from 'node:fs';

/** The server under test: the debug build that `cargo leptos build` leaves in target/. */
const root = path.resolve(__dirname, '..');
const port = Number(process.env.TANDEM_E2E_PORT ?? 3100);
export const baseURL = `http://127.0.0.1:${port}`;
/**
 * A fresh store for every run, away from the repository's own ./data, removed by
 * `global-teardown.ts`. Made once in the main process and handed to the workers (which load
 * this file again) through the environment.
 */
// Every test makes its documents through GET /new, far more a minute than a person would:
// the servers the tests start (here, and in support.ts and cluster-support.ts, which pass this
// environment on) allow that. tests/http.rs checks the limit at its default.
process.env.TANDEM_MAX_NEW_DOCUMENTS_PER_MINUTE ??= '100000';
process.env.TANDEM_E2E_DATA ??= mkdtempSync(path.join(os.tmpdir(), `tandem-e2e-${port}-`));
const dataDir = process.env.TANDEM_E2E_DATA;

export default defineConfig({
  testDir: './tests',
  globalTeardown: './global-teardown.ts',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL,
    trace: 'retain-on-failure',
    launchOptions: {
      // Debian's Chromium: Playwright cannot download its own browser here.
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
  },
  webServer: {
    command: `${process.env.TANDEM_BIN ?? path.join(root, 'target/debug/tandem')} --addr 127.0.0.1:${port} --data-dir ${dataDir}`,
    cwd: root,
    url: `${baseURL}/healthz`,
    // TANDEM_E2E_REUSE=1 runs the tests against a server you started yourself.
    reuseExistingServer: process.env.TANDEM_E2E_REUSE === '1',
    timeout: 60_000,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      RUST_LOG: process.env.RUST_LOG ?? 'info',
      TANDEM_MAX_NEW_DOCUMENTS_PER_MINUTE: process.env.TANDEM_MAX_NEW_DOCUMENTS_PER_MINUTE,
    },
  },
});
