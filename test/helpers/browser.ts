// Launches the system Chromium (Debian package `chromium`) headless through playwright-core, for
// tests of the status page. Never downloads a browser: when /usr/bin/chromium is missing it
// returns null and says why, so the caller can skip. playwright's launch() gives every browser
// a fresh temporary profile directory and removes it on close, so no user data dir is passed.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox', // we run as root in CI, where Chromium refuses its sandbox
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  // No traffic off 127.0.0.0/8: no update checks, component downloads or sync.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why Chromium cannot be used here, or undefined when it can. */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM_PATH) ? undefined : `${CHROMIUM_PATH} not found (install it: apt-get install -y chromium)`;
}

/** A headless Chromium, or null (reason printed) when it is not installed. Close it in teardown. */
export async function launchChromium(): Promise<Browser | null> {
  const missing = chromiumMissing();
  if (missing) {
    console.error(`# ${missing}`);
    return null;
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}
