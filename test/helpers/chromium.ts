import { existsSync } from 'node:fs'
import type { Test } from 'tap'
import { chromium, type Browser } from 'playwright-core'

// Debian's Chromium, driven by playwright-core (never a downloaded browser): what every browser
// test launches, with the switches that keep a headless run quiet and off the network.
export const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/**
 * Runs `body` when Chromium is installed; otherwise fails `t`. Not a skip: the browser paths
 * must be tested wherever the suite runs.
 */
export async function withChromium (t: Test, body: () => Promise<void>): Promise<void> {
  if (!existsSync(CHROMIUM)) {
    t.fail(`Chromium is not installed at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (.ci/run does)`)
    return
  }
  await body()
}

/** A headless Chromium, closed when `t` ends; `extraArgs` add switches (a fake microphone...). */
export async function launchChromium (t: Test, extraArgs: string[] = []): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, ...extraArgs] })
  t.teardown(() => browser.close())
  return browser
}
