// The web console in a real browser: Debian's chromium driven by playwright-core. Run by
// tests/python/test_web_console.py, which starts the appliances and passes what it expects in a JSON file
// (argv[2]). Prints one line per check; exits 1 on the first failure. Screenshots go to `screenshots`.
//
// Expectations: {console, status_url, screenshots, topic, record: {partition, offset, time_iso},
//   search: {path, count}, idle_group, active_group, dead_letters?: {console, rid}}
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const x = JSON.parse(readFileSync(process.argv[2], "utf8"));
const TIMEOUT = 30_000;
mkdirSync(x.screenshots, { recursive: true });

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const errors = [];
let failed = false;

async function newPage(viewport) {
  const context = await browser.newContext({ viewport });
  await context.grantPermissions(["clipboard-read", "clipboard-write"]).catch(() => {});
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("console", (m) => { if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  return page;
}

async function check(name, body) {
  if (failed) return;
  try {
    await body();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

async function open(page, base, hash) {
  await page.goto(`${base}/#${hash}`);
  await page.locator("main h1").first().waitFor();
  await page.waitForFunction(() => !document.querySelector("main").textContent.startsWith("Loading"));
}

// Text whose colour against its background (the nearest opaque ancestor's) is below WCAG AA's 4.5:1.
function lowContrast() {
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll("body *:not(svg):not(svg *)")) {
    const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!text || !el.getClientRects().length || el.closest(".skip")) continue;
    const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) out.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return out;
}

async function status(base) {
  const r = await fetch(`${base}/status`);
  assert.equal(r.status, 200);
  return r.json();
}

const PAGES = ["pipeline", "topics", `topics/${x.topic}`, "groups", `groups/${x.active_group}`, "dead-letters", "indices", "search"];
const desktop = await newPage({ width: 1280, height: 800 });
const phone = await newPage({ width: 390, height: 844 });

await check("every page loads without console errors, at 1280×800 and 390×844, text contrast ≥ 4.5:1", async () => {
  for (const hash of PAGES) {
    const file = hash.replace(/[^a-z0-9]+/gi, "-");
    await open(desktop, x.console, hash);
    await desktop.screenshot({ path: `${x.screenshots}/${file}-1280x800.png`, fullPage: true });
    await open(phone, x.console, hash);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `#${hash} is ${overflow}px wider than a phone screen`);
    await phone.screenshot({ path: `${x.screenshots}/${file}-390x844.png`, fullPage: true });
    const low = await desktop.evaluate(lowContrast);
    assert.deepEqual(low, [], `#${hash}: text below 4.5:1 contrast`);
  }
  assert.deepEqual(errors, []);
});

await check("the pipeline page's numbers match /status", async () => {
  await open(desktop, x.console, "pipeline");
  const s = await status(x.console);
  const shown = async (k) => Number((await desktop.locator(`[data-k="${k}"]`).first().textContent()).replace(/[^0-9-]/g, ""));
  const sum = (a, f) => a.reduce((t, v) => t + f(v), 0);
  const want = {
    lines_read: sum(s.files, (f) => f.lines_read),
    events_acked: sum(s.files, (f) => f.events_acked),
    rotations: sum(s.files, (f) => f.rotations),
    indexed: sum(s.indexer.indices, (i) => i.indexed),
    dead_lettered: sum(s.indexer.indices, (i) => i.dead_lettered),
    lag: sum(s.groups, (g) => g.lag),
    topic_end: sum(s.topics, (t) => sum(t.partitions, (p) => p.log_end_offset)),
  };
  // The page refreshes every 2 s: wait for a refresh after /status was read (the pipeline is drained, so
  // the numbers no longer change).
  await desktop.waitForFunction((w) => [...Object.entries(w)].every(([k, v]) =>
    Number(document.querySelector(`[data-k="${k}"]`).textContent.replace(/[^0-9-]/g, "")) === v), want);
  for (const [k, v] of Object.entries(want)) assert.equal(await shown(k), v, k);
  assert.equal(await shown("ledger_in_flight"), want.events_acked - want.indexed - want.dead_lettered);
  const indexRows = await desktop.locator("#ledger-indices tbody tr").count();
  assert.equal(indexRows, s.indexer.indices.length);
});

await check("pages refresh on their own and are keyboard-navigable", async () => {
  await open(desktop, x.console, "pipeline");
  const stamp = await desktop.locator("#updated").textContent();
  const navigations = [];
  desktop.on("framenavigated", (f) => navigations.push(f.url()));
  await desktop.waitForFunction((s) => document.getElementById("updated").textContent !== s, stamp);
  assert.deepEqual(navigations, [], "refreshed without reloading");
  // A view moves focus to its content: the next Tab lands inside <main>.
  await desktop.keyboard.press("Tab");
  assert.ok(await desktop.evaluate(() => document.querySelector("main").contains(document.activeElement)));
  // From the header: the navigation, with the skip link before it; Enter on a link opens its view.
  await desktop.locator("header .brand").click();
  const focused = () => desktop.evaluate(() => document.activeElement.textContent);
  await desktop.keyboard.press("Tab");
  assert.equal(await focused(), "Pipeline");
  await desktop.keyboard.press("Shift+Tab");
  assert.equal(await focused(), "Skip to content");
  await desktop.keyboard.press("Tab");
  await desktop.keyboard.press("Tab");
  assert.equal(await focused(), "Topics");
  await desktop.keyboard.press("Enter");
  await desktop.waitForFunction(() => location.hash === "#topics");
  await desktop.locator("#topics").waitFor();
});

await check("the indices page lists the indexed documents per daily index", async () => {
  await open(desktop, x.console, "indices");
  const s = await status(x.console);
  const rows = await desktop.locator("#indices tbody tr").evaluateAll((rs) => rs.map((r) => [r.cells[0].textContent, Number(r.cells[1].textContent.replace(/,/g, ""))]));
  const want = s.indexer.indices.map((i) => [i.index, i.indexed]).sort();
  assert.deepEqual(rows.sort(), want);
});

await check("the message browser finds a record by timestamp", async () => {
  await open(desktop, x.console, `topics/${x.topic}`);
  const form = desktop.locator("#browse");
  await form.getByLabel("Partition").selectOption(String(x.record.partition));
  await form.getByLabel("Seek by").selectOption("time");
  await form.getByLabel("Offset or time").fill(x.record.time_iso);
  await form.getByLabel("Per page").fill("5");
  await form.getByRole("button", { name: "Show records" }).click();
  const first = desktop.locator("#record-list li").first();
  await first.waitFor();
  assert.equal(Number(await first.getAttribute("data-offset")), x.record.offset);
  // Next page continues where this one ended.
  await desktop.getByRole("button", { name: "Next ▶" }).click();
  await desktop.waitForFunction((o) => document.querySelector("#record-list li")?.dataset.offset === String(o), x.record.offset + 5);
  // A filter keeps only matching records.
  await form.getByLabel("Seek by").selectOption("offset");
  await form.getByLabel("Offset or time").fill("0");
  await form.getByLabel("Filter").fill(x.record.needle);
  await form.getByRole("button", { name: "Show records" }).click();
  await desktop.waitForFunction((o) => document.querySelector("#record-list li")?.dataset.offset === String(o), x.record.offset);
  assert.equal(await desktop.locator("#record-list li").count(), 1);
  await desktop.screenshot({ path: `${x.screenshots}/message-browser-1280x800.png`, fullPage: true });
});

await check("a reset from the groups page is refused while a member is active", async () => {
  await open(desktop, x.console, `groups/${x.active_group}`);
  await desktop.locator("#reset-form").getByLabel("Move to").selectOption("earliest");
  await desktop.getByRole("button", { name: "Dry run" }).click();
  const alert = desktop.locator("#reset-result [role=alert]");
  await alert.waitFor();
  assert.match(await alert.textContent(), /active member/);
  // Chromium logs the refused request (409 Conflict) as a console error: that one is expected here.
  const expected = errors.findIndex((e) => /status of 409/.test(e));
  assert.ok(expected >= 0, "the refusal came as 409 Conflict");
  errors.splice(expected, 1);
  await desktop.screenshot({ path: `${x.screenshots}/group-reset-refused-1280x800.png`, fullPage: true });
});

await check("a reset from the groups page works: dry run, then execute", async () => {
  // The active group's page is still open and refreshes every 2 s. One of its refreshes is held until the
  // idle group's page is drawn, then let go: finishing late, it must not take over the idle group's form.
  const stale = `/api/groups/${encodeURIComponent(x.active_group)}`;
  let hold;
  const held = new Promise((resolve) => { hold = resolve; });
  await desktop.route((url) => url.pathname === stale, (route) => {
    if (!hold) return route.continue();
    hold(route);
    hold = null;
  });
  const late = await held;
  await open(desktop, x.console, `groups/${x.idle_group}`);
  await desktop.locator("#reset-form").waitFor();
  const answered = desktop.waitForResponse((r) => new URL(r.url()).pathname === stale);
  await late.continue();
  await (await answered).finished();
  assert.equal(await desktop.locator("#reset-form").count(), 1, "the late refresh took the reset form off the page");
  await desktop.locator("#reset-form").getByLabel("Move to").selectOption("latest");
  await desktop.getByRole("button", { name: "Dry run" }).click();
  await desktop.locator("#reset-plan").waitFor();
  const s = await status(x.console);
  const ends = Object.fromEntries(s.topics.find((t) => t.name === x.topic).partitions.map((p) => [p.partition, p.log_end_offset]));
  const planned = await desktop.locator("#reset-plan tbody tr").evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  assert.equal(planned.length, Object.keys(ends).length);
  for (const [topic, partition, offset] of planned) {
    assert.equal(topic, x.topic);
    assert.equal(Number(offset.replace(/,/g, "")), ends[partition]);
  }
  // The dry run changed nothing.
  const before = (await status(x.console)).groups.find((g) => g.group_id === x.idle_group);
  assert.ok(before.lag > 0, "the idle group starts behind");
  await desktop.screenshot({ path: `${x.screenshots}/group-reset-dry-run-1280x800.png`, fullPage: true });
  await desktop.getByRole("button", { name: "Execute this reset" }).click();
  await desktop.locator("#reset-done").waitFor();
  const after = (await status(x.console)).groups.find((g) => g.group_id === x.idle_group);
  assert.equal(after.lag, 0);
  for (const p of after.partitions) assert.equal(p.committed, ends[p.partition]);
});

await check("a search for a generated request path returns the generator's count", async () => {
  await open(desktop, x.console, "search");
  await desktop.getByLabel("Query").fill(`url.path:"${x.search.path}"`);
  await desktop.getByLabel("Time").selectOption("all");
  await desktop.getByRole("button", { name: "Search" }).click();
  await desktop.locator("#total").waitFor();
  assert.equal(Number((await desktop.locator("#total").textContent()).replace(/,/g, "")), x.search.count);
  const shown = await desktop.locator("#hits > li").count();
  assert.equal(shown, Math.min(50, x.search.count));
  await desktop.locator("#hits summary").first().click();
  assert.match(await desktop.locator("#hits pre").first().textContent(), new RegExp(x.search.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  await desktop.screenshot({ path: `${x.screenshots}/search-results-1280x800.png`, fullPage: true });
});

if (x.dead_letters) {
  await check("a dead letter re-sent from the page is produced back to its topic", async () => {
    const d = x.dead_letters;
    await open(desktop, d.console, "dead-letters");
    const row = desktop.locator("#dead-letters tbody tr", { hasText: `rid=${d.rid}` }).first();
    await row.waitFor();
    await desktop.screenshot({ path: `${x.screenshots}/dead-letters-with-items-1280x800.png`, fullPage: true });
    await row.getByRole("button", { name: "Re-send" }).click();
    await desktop.locator("#resend-result [role=status]").waitFor();
    assert.match(await desktop.locator("#resend-result").textContent(), /Re-sent .* to /);
  });
}

await check("no console errors during the checks", async () => assert.deepEqual(errors, []));
await browser.close();
console.log(`screenshots in ${x.screenshots}`);
process.exit(failed ? 1 : 0);
