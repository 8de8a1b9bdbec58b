import { rmSync } from 'node:fs';

/** Removes the run's data directory (see `playwright.config.ts`). */
export default async function globalTeardown() {
  const dataDir = process.env.TANDEM_E2E_DATA;
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}
