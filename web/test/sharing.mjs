// sharing.mjs: the dashboard's Sharing tab in headless Chromium, through the
// visible UI only (roles and labels): the owner shares a database with
// another user, sees them in the list, changes their role and removes them;
// the other user, in their own browser, sees the database with their role
// and loses it after the removal. Any page error or unexpected console error
// fails it. web/sharing_test.go starts bitd and a static origin and sets:
//   BITKIT_ENDPOINT, SITE_URL, ARTIFACTS, CHROMIUM,
//   OWNER_USER, OWNER_KEY, FRIEND_USER, FRIEND_KEY
// It prints one line per step and "ALL PASSED" at the end, or exits 1.
import { chromium } from "playwright-core";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const env = process.env;
// Refusals the steps provoke on purpose (404 of an unknown user, 400 of
// sharing with yourself): the browser logs them itself.
const EXPECTED_CONSOLE = /Failed to load resource: the server responded with a status of (400|404)/;
// What a person must never read in the dashboard.
const JARGON = /HTTP|status code|\b(400|403|404|500)\b|PUT|DELETE|collaborators\/|core\.|\bnil\b|Go /;

function assert(cond, msg) { if (!cond) throw new Error(msg); }
function eq(got, want, what) { if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`); }

for (const f of readdirSync(env.ARTIFACTS)) if (/^sharing-.*\.png$/.test(f)) rmSync(join(env.ARTIFACTS, f));

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-background-timer-throttling", "--disable-renderer-backgrounding"],
});
const problems = [];
let shots = 0;

async function open(who) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, colorScheme: "light" });
  context.setDefaultTimeout(Number(env.STEP_TIMEOUT_MS || 60000));
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error" && !EXPECTED_CONSOLE.test(m.text())) problems.push(`${who}: console error: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`${who}: page error: ${e.message}`));
  return page;
}
async function signIn(page, user, key) {
  await page.goto(`${env.SITE_URL}/index.html?endpoint=${encodeURIComponent(env.BITKIT_ENDPOINT)}`);
  await page.waitForFunction(() => window.dashboardReady === true);
  await page.getByRole("textbox", { name: "API key" }).fill(key);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("heading", { name: "Databases" }).waitFor();
  assert((await page.locator("#who").innerText()).startsWith(user), `${user} is signed in`);
}
const shot = (page, what) => page.screenshot({ path: join(env.ARTIFACTS, `sharing-${String(++shots).padStart(2, "0")}-${what}.png`), fullPage: true });
async function step(name, fn) {
  const t0 = Date.now();
  await fn();
  if (problems.length) throw new Error(problems.join("\n"));
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
}

const owner = env.OWNER_USER, friend = env.FRIEND_USER;
const db = "teamdata";
const full = `${owner}/${db}`;
let exitCode = 0;
try {
  const op = await open("owner");
  const panel = op.getByRole("tabpanel", { name: "Sharing" });
  const status = panel.getByRole("status");
  const alert = panel.getByRole("alert");
  const people = panel.getByRole("table", { name: "People with access" });
  const share = async (user, role) => {
    await panel.getByLabel("Share with").fill(user);
    const labels = { Reader: "Reader: can read", Writer: "Writer: can also change data" };
    await panel.getByLabel("Role", { exact: true }).selectOption({ label: labels[role] });
    await panel.getByRole("button", { name: "Share", exact: true }).click();
  };

  await step("owner signs in, creates a database, opens Sharing", async () => {
    await signIn(op, owner, env.OWNER_KEY);
    await op.getByLabel("New database").fill(db);
    await op.getByRole("button", { name: "Create", exact: true }).click();
    await op.getByRole("heading", { name: full }).waitFor();
    await op.getByRole("tab", { name: "Sharing" }).click();
    await panel.getByText("Not shared with anyone yet.").waitFor();
    assert(/readers can read/.test(await panel.locator("#share-intro").innerText()), "the intro explains the roles");
  });

  await step("refusals read as sentences", async () => {
    await share("nobody_by_that_name", "Reader");
    await alert.waitFor();
    const unknown = await alert.innerText();
    assert(/nobody_by_that_name/.test(unknown) && /not found/.test(unknown), `unknown user: ${unknown}`);
    assert(!JARGON.test(unknown), `jargon in: ${unknown}`);
    await share(owner, "Reader");
    await op.waitForFunction(() => /yourself/.test(document.querySelector("#share-error").textContent));
    const self = await alert.innerText();
    assert(!JARGON.test(self), `jargon in: ${self}`);
    await shot(op, "refused");
    await share("", "Reader");
    assert(/Enter the user name/.test(await alert.innerText()), "an empty name is caught before sending");
  });

  await step("share as writer; the person is listed", async () => {
    await share(friend, "Writer");
    await op.waitForFunction((f) => document.querySelector("#share-status").textContent.includes(`shared with ${f}`), friend);
    eq(await alert.isVisible(), false, "the old error is gone");
    const row = people.getByRole("row", { name: new RegExp(friend) });
    await row.waitFor();
    eq(await people.getByRole("combobox", { name: `Role of ${friend}` }).inputValue(), "WRITER", "listed role");
    await shot(op, "shared-writer");
  });

  const fp = await open("friend");
  await step("the other user sees the database with their role", async () => {
    await signIn(fp, friend, env.FRIEND_KEY);
    await fp.getByRole("button", { name: full, exact: true }).waitFor();
    const item = fp.getByRole("listitem").filter({ has: fp.getByRole("button", { name: full, exact: true }) });
    assert(/writer/.test(await item.innerText()), `the list shows the role: ${await item.innerText()}`);
    await fp.getByRole("button", { name: full, exact: true }).click();
    await fp.getByRole("heading", { name: full }).waitFor();
    await fp.getByRole("tab", { name: "Sharing" }).click();
    const intro = await fp.getByRole("tabpanel", { name: "Sharing" }).locator("#share-intro").innerText();
    assert(/You are a writer/.test(intro), `a writer's Sharing tab: ${intro}`);
    eq(await fp.getByRole("button", { name: "Share", exact: true }).isVisible(), false, "a writer cannot share");
    eq(await fp.getByRole("button", { name: "Delete", exact: true }).isVisible(), false, "a writer gets no Delete button");
    await shot(fp, "friend-writer-view");
  });

  await step("change the role to reader", async () => {
    await people.getByRole("combobox", { name: `Role of ${friend}` }).selectOption({ label: "Reader" });
    await op.waitForFunction((f) => document.querySelector("#share-status").textContent.includes(`${f} is now a reader`), friend);
    eq(await people.getByRole("combobox", { name: `Role of ${friend}` }).inputValue(), "READER", "role after the change");
    await shot(op, "role-reader");
  });

  await step("the Sharing tab fits a phone", async () => {
    await op.setViewportSize({ width: 390, height: 844 });
    await people.getByRole("button", { name: `Remove ${friend}` }).waitFor();
    const [sw, iw] = await op.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert(sw <= iw, `the page is ${sw} px wide in a ${iw} px window`);
    await shot(op, "phone");
    await op.setViewportSize({ width: 1400, height: 900 });
  });

  await step("remove them; the list is empty again and their dashboard loses the database", async () => {
    await people.getByRole("button", { name: `Remove ${friend}` }).click();
    await op.waitForFunction((f) => document.querySelector("#share-status").textContent.includes(`${f} no longer has access`), friend);
    await panel.getByText("Not shared with anyone yet.").waitFor();
    await shot(op, "removed");
    await fp.reload();
    await fp.waitForFunction(() => window.dashboardReady === true);
    await fp.getByRole("heading", { name: "Databases" }).waitFor();
    await fp.getByText("No databases yet.").waitFor();
    eq(await fp.getByRole("button", { name: full, exact: true }).count(), 0, "the removed user's list");
    await shot(fp, "friend-after-removal");
  });
  console.log("ALL PASSED");
} catch (err) {
  console.log(`FAIL ${err.stack || err}`);
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
