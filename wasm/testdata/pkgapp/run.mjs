// Opens the bundled app in headless Chromium and prints window.__outcome as
// JSON (TestPackage in wasm/e2e_test.go). Run from web/test (playwright-core).
import { createRequire } from "node:module";

// playwright-core is installed in web/test, the working directory.
const { chromium } = createRequire(process.cwd() + "/")("playwright-core");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-timer-throttling"],
});
const page = await browser.newPage();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error" && !/Failed to load resource/.test(m.text())) errors.push(m.text()); });
await page.goto(process.env.APP_URL);
await page.waitForFunction(() => window.__outcome !== undefined, null, { timeout: 120000 });
const outcome = await page.evaluate(() => window.__outcome);
await browser.close();
console.log(JSON.stringify({ outcome, errors }));
