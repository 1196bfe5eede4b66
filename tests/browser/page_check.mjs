// page_check.mjs URL TOKEN JOBNAME: meshd's status page (GET /) end to end in headless chromium.
//
// Opens URL, waits until the jobs table lists JOBNAME and at least one other job, types TOKEN
// into #token, clicks JOBNAME's "Run now" and waits (at most 15 s) until that row's last run
// is the run the POST answered with; then Pause (the row shows paused, a Resume button appears)
// and Resume.  Throughout: no console error, no uncaught exception, no request to any origin
// but the page's own.  Exit 0 on success; 1 with a message and a screenshot path on failure
// (the screenshot goes to $TMPDIR, else /tmp); 2 on bad usage.
//
// Uses Debian's chromium (CHROMIUM=/path overrides /usr/bin/chromium) driven by playwright-core.
// Runs as root in CI, hence --no-sandbox.

import { chromium } from "playwright-core";
import path from "node:path";

const [url, token, job] = process.argv.slice(2);
if (!url || !token || !job) {
  console.error("usage: node page_check.mjs URL TOKEN JOBNAME");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_MS = 15000;      // each wait below
const TOTAL_MS = 80000;     // the whole check, browser start included

const origin = new URL(url).origin;
const consoleErrors = [];
const foreign = [];
let browser = null, page = null, step = "start";

function log(msg) { console.log(`page_check: ${msg}`); }

// A CSS attribute-selector string: "..." with \ and " escaped.
function cssStr(s) { return '"' + s.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"'; }
const rowSel = `#job-rows tr[data-job=${cssStr(job)}]`;

async function fail(msg) {
  let shot = "(no screenshot)";
  if (page) {
    shot = path.join(process.env.TMPDIR || "/tmp", `meshd-page-check-${process.pid}-${Date.now()}.png`);
    try { await page.screenshot({ path: shot, fullPage: true }); }
    catch (e) { shot = `(screenshot failed: ${e.message})`; }
  }
  console.error(`page_check: FAIL at step "${step}": ${msg}`);
  if (consoleErrors.length) console.error("  console errors:\n    " + consoleErrors.join("\n    "));
  if (foreign.length) console.error("  foreign requests:\n    " + foreign.join("\n    "));
  if (page) {
    try {
      const st = await page.locator("#action-status").textContent({ timeout: 1000 });
      const bn = await page.locator("#banner").textContent({ timeout: 1000 });
      console.error(`  status line: ${JSON.stringify(st)}; banner: ${JSON.stringify(bn)}`);
    } catch { /* the page may be gone */ }
  }
  console.error(`  screenshot: ${shot}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}

const watchdog = setTimeout(() => fail(`the whole check took longer than ${TOTAL_MS / 1000} s`), TOTAL_MS);

function clean(where) {
  if (consoleErrors.length) throw new Error(`console errors ${where}: ${consoleErrors.join(" | ")}`);
  if (foreign.length) throw new Error(`requests to other origins than ${origin}: ${foreign.join(" ")}`);
}

// Waits until the job's row satisfies check(tr, arg).  Each check is a whole function that
// playwright sends to the page as it is (the page's Content-Security-Policy forbids eval and
// new Function, so a check cannot be assembled there from source text).
const CHECKS = {
  listed: ([sel]) => !!document.querySelector(sel),
  ranClicked: ([sel, a]) => {
    const c = document.querySelector(`${sel} [data-field="last_run"]`);
    if (!c || !c.dataset.finishedAt) return false;
    if (a.runId) return c.dataset.runId === a.runId;
    return c.dataset.runId !== a.before && Date.parse(c.dataset.finishedAt) >= a.clickedAt - 1000;
  },
  paused: ([sel, a]) => {
    const c = document.querySelector(`${sel} [data-field="paused"]`);
    return !!c && c.textContent.trim() === (a ? "yes" : "no") &&
      !!document.querySelector(`${sel} button[data-action="${a ? "resume" : "pause"}"]`);
  },
};

async function waitRow(check, arg, what) {
  step = what;
  try {
    await page.waitForFunction(CHECKS[check], [rowSel, arg], { timeout: STEP_MS, polling: 100 });
  } catch (e) {
    throw new Error(`timed out after ${STEP_MS / 1000} s waiting until ${what}`);
  }
}

async function clickAction(action) {
  step = `click ${action}`;
  const btn = page.locator(`${rowSel} button[data-action="${action}"]`);
  const answer = page.waitForResponse(
    (r) => r.request().method() === "POST" && r.url().endsWith(`/${action}`), { timeout: STEP_MS });
  await btn.click({ timeout: STEP_MS });
  const res = await answer;
  let body = await res.text();
  try { body = JSON.parse(body); } catch { /* kept as text */ }
  if (!res.ok()) throw new Error(`POST ${res.url()} answered ${res.status()}: ${JSON.stringify(body)}`);
  // the page shows the answer in its status line
  step = `status line after ${action}`;
  await page.waitForFunction(
    (a) => (document.getElementById("action-status").textContent || "").includes(a),
    `${action} ${job}:`, { timeout: STEP_MS });
  log(`${action}: ${res.status()} ${JSON.stringify(body)}`);
  return body;
}

try {
  step = "launch chromium";
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-background-networking", "--disable-component-update",
           "--disable-quic", "--disable-sync"],
  });
  const ctx = await browser.newContext({ serviceWorkers: "block" });
  page = await ctx.newPage();
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
  page.on("request", (r) => {
    const u = r.url();
    if (u.startsWith("data:") || u.startsWith("blob:") || u === "about:blank") return;
    try { if (new URL(u).origin === origin) return; } catch { /* unparsable: foreign */ }
    foreign.push(u);
  });

  step = `open ${url}`;
  const res = await page.goto(url, { waitUntil: "load", timeout: STEP_MS });
  if (!res || res.status() !== 200) throw new Error(`GET ${url} answered ${res && res.status()}`);

  try {
    await waitRow("listed", null, `the jobs table lists ${job}`);
  } catch (e) {
    const listed = await page.$$eval("#job-rows tr[data-job]", (trs) => trs.map((t) => t.dataset.job));
    throw new Error(`${e.message} (listed: ${listed.length ? listed.join(", ") : "no job"})`);
  }
  step = "a second job";
  await page.waitForFunction(() => document.querySelectorAll("#job-rows tr[data-job]").length >= 2,
    null, { timeout: STEP_MS });
  const names = await page.$$eval("#job-rows tr[data-job]", (trs) => trs.map((t) => t.dataset.job));
  log(`jobs listed: ${names.join(", ")}`);
  clean("after loading");

  // Without a token there is nothing to click.
  step = "no buttons without a token";
  if (await page.locator(`${rowSel} button[data-action="run"]`).isVisible())
    throw new Error("the Run now button is visible before a token was entered");

  step = "type the token";
  await page.fill("#token", token);
  await page.locator(`${rowSel} button[data-action="run"]`).waitFor({ state: "visible", timeout: STEP_MS });

  // Run now: wait for the run the POST started to show up as this row's last run.
  const before = await page.$eval(rowSel, (tr) => tr.querySelector('[data-field="last_run"]').dataset.runId || "");
  const clickedAt = Date.now();
  const ran = await clickAction("run");
  const runId = ran && typeof ran === "object" ? ran.run_id : null;
  await waitRow("ranClicked", { runId, before, clickedAt },
    `${job}'s last run is the run started by the click (${runId || "a new run id"})`);
  const lastRun = await page.$eval(rowSel, (tr) => {
    const c = tr.querySelector('[data-field="last_run"]');
    return `${c.dataset.runId}: ${c.innerText.replace(/\s*\n\s*/g, " · ")}`;
  });
  log(`last run now: ${lastRun}`);

  await clickAction("pause");
  await waitRow("paused", true, `${job} shows paused`);
  await clickAction("resume");
  await waitRow("paused", false, `${job} shows not paused`);

  step = "banner";
  if (await page.locator("#banner").isVisible())
    throw new Error(`the banner is shown: ${await page.locator("#banner").textContent()}`);
  clean("at the end");
  clearTimeout(watchdog);
  await browser.close();
  log("OK");
  process.exit(0);
} catch (e) {
  await fail(e && e.message ? e.message : String(e));
}
