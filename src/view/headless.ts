// Debian's chromium, headless, driven by playwright-core: how the viewer's
// browser tests and `casl bench view` open the page. No browser download:
// playwright-core drives the system binary (.ci/run installs it).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

// Headless without a GPU, a sandbox (CI runs as root) or any of chromium's
// own network traffic (updates, sync, QUIC probes).
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

/** A fresh profile (new empty user-data-dir) at 1400 × 1000, its first page, and `close` (browser and profile). */
export async function launchChromium(): Promise<{ context: BrowserContext; page: Page; close(): Promise<void> }> {
  const profile = mkdtempSync(path.join(tmpdir(), 'casl-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1400, height: 1000 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, close };
}

/** Moves the δ slider as a user does (an input event) and waits for the counts at that δ. */
export async function setDelta(page: Page, delta: number): Promise<void> {
  await page.evaluate((d) => {
    const el = document.getElementById('delta') as HTMLInputElement;
    el.value = String(d);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, delta);
  await page.waitForSelector(`#counts[data-delta="${delta}"]`);
}

/** Resolves when every tile of the grid that shows an image has it loaded and drawn. */
export async function gridDrawn(page: Page, timeout = 60_000): Promise<void> {
  await page.waitForFunction(() => {
    const tiles = document.querySelectorAll('.tile:not(.error)');
    return tiles.length > 0 && document.querySelectorAll('.tile[data-loaded]').length === tiles.length;
  }, undefined, { timeout, polling: 10 });
}
