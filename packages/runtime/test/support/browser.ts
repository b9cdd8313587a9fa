/// <reference lib="dom" />
/**
 * A real browser for tests: Debian's `chromium` driven by `playwright-core`
 * (no browser download), headless, on a fresh profile. Each page records its
 * console errors and uncaught exceptions, so a test can require that a page
 * logged none; `screenshot` saves a page under `test-artifacts/admin-ui/`
 * (gitignored) for people to look at.
 *
 * The DOM types (the reference above) are for the functions these tests run
 * inside the page (`page.evaluate`, `waitForFunction`).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"
import { repoRoot } from "./process.ts"

/** Where Debian installs chromium (`apt-get install chromium`; scripts/install-test-tools.sh does). */
export const executablePath = "/usr/bin/chromium"

/** Screenshots of the admin UI tests. */
export const artifacts = Path.join(repoRoot, "test-artifacts/admin-ui")

/**
 * Launches headless chromium; fails naming the package when it is missing.
 * playwright-core gives each launch a fresh profile of its own (its own
 * `--user-data-dir` in a temporary directory, removed on close), and each
 * `open` a fresh context, so no cookie or storage survives between tests
 * that do not share a page.
 */
export const launch = async (): Promise<{ readonly browser: Browser; readonly close: () => Promise<void> }> => {
  if (!Fs.existsSync(executablePath)) {
    throw new Error(
      `${executablePath} is missing: install Debian's chromium (apt-get install chromium, or run scripts/install-test-tools.sh)`
    )
  }
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })
  return {
    browser,
    close: () => browser.close()
  }
}

/** A page that keeps what went wrong in it: console errors and uncaught exceptions, in order. */
export interface WatchedPage {
  readonly page: Page
  readonly context: BrowserContext
  /** Console errors and page errors since the page opened (or since `clear`). */
  readonly problems: Array<string>
}

/** A new context (own cookies and storage) and page at `viewport`, watched for console errors. */
export const open = async (browser: Browser, viewport = { width: 1280, height: 800 }): Promise<WatchedPage> => {
  const context = await browser.newContext({ viewport })
  const page = await context.newPage()
  const problems: Array<string> = []
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()} (${m.location().url})`)
  })
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`))
  return { page, context, problems }
}

/** Saves a full-page screenshot as `test-artifacts/admin-ui/<name>.png`; returns its path. */
export const screenshot = async (page: Page, name: string): Promise<string> => {
  Fs.mkdirSync(artifacts, { recursive: true })
  const path = Path.join(artifacts, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  return path
}

/**
 * Form controls on the page that have no accessible name (no label, no
 * aria-label): every control must be labelled.
 */
export const unlabelledControls = (page: Page): Promise<Array<string>> =>
  page.evaluate(() =>
    Array.from(document.querySelectorAll("input, select, textarea, button"))
      .filter((el) => {
        const control = el as HTMLInputElement
        if (control.type === "hidden") return false
        const named = (control.labels?.length ?? 0) > 0 || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")
        return !named && (el.tagName !== "BUTTON" || (el.textContent ?? "").trim() === "")
      })
      .map((el) => el.outerHTML.slice(0, 120))
  )
