// logpipe web console: one page, six views chosen by the URL fragment (#pipeline, #topics/NAME, …).
// Plain JavaScript, no framework, no build step; charts are SVG. Live views refresh every 2 s.
"use strict";

const REFRESH_MS = 2000;
const main = document.getElementById("main");
let timer = null;
let view = null; // {name, refresh}
const previous = { time: 0, totals: null }; // for rates on the pipeline view

// ---------------------------------------------------------------------------------------------
// Helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    throw new Error(`${path}: ${response.status} ${response.statusText}`);
  }
  if (!response.ok) throw new Error(body && body.error ? body.error : `${path}: ${response.status}`);
  return body;
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
const time = (ms) => (ms === null || ms === undefined ? "–" : new Date(ms).toISOString().replace("T", " ").replace("Z", ""));
function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}
const sum = (items, f) => items.reduce((a, x) => a + (f(x) || 0), 0);

function alertBox(message) {
  return h("p", { class: "error", role: "alert" }, message);
}

function table(caption, columns, rows, opts) {
  // columns: [{key, label, num, render}], rows: objects; sortable headers when opts.sort
  opts = opts || {};
  const state = opts.state || {};
  let sorted = rows.slice();
  if (state.key) {
    const col = columns.find((c) => c.key === state.key);
    const val = (r) => (col && col.value ? col.value(r) : r[state.key]);
    sorted.sort((a, b) => {
      const x = val(a), y = val(b);
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return state.desc ? -c : c;
    });
  }
  const head = h("tr", {}, columns.map((c) => {
    const label = opts.sort
      ? h("button", {
          type: "button", class: "sort",
          onclick: () => { state.desc = state.key === c.key ? !state.desc : true; state.key = c.key; opts.onSort && opts.onSort(); },
        }, c.label, state.key === c.key ? (state.desc ? " ▼" : " ▲") : "")
      : c.label;
    const sort = state.key === c.key ? (state.desc ? "descending" : "ascending") : null;
    return h("th", { scope: "col", class: c.num ? "num" : null, "aria-sort": opts.sort ? sort || "none" : null }, label);
  }));
  const body = sorted.map((r) => h("tr", { class: opts.rowClass ? opts.rowClass(r) : null },
    columns.map((c) => h("td", { class: c.num ? "num" : null, "data-k": c.key }, c.render ? c.render(r) : (c.num ? num(r[c.key]) : r[c.key])))));
  return h("div", { class: "scroll" }, h("table", { id: opts.id || null },
    h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, body.length ? body : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "none")))));
}

function lineChart(label, points, opts) {
  // points: [[t, v]]; a polyline over time with min/max labels
  const w = 640, hgt = 160, pad = 32;
  const svg = (tag, attrs, ...kids) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    kids.forEach((k) => el.append(k));
    return el;
  };
  const root = svg("svg", { viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-label": label, class: "chart" });
  root.append(svg("title", {}, label));
  if (!points.length) {
    root.append(svg("text", { x: w / 2, y: hgt / 2, "text-anchor": "middle", class: "muted" }, "no samples yet"));
    return root;
  }
  const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
  const vmax = Math.max(1, ...points.map((p) => p[1]));
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (w - 2 * pad);
  const y = (v) => hgt - pad + 8 - (v / vmax) * (hgt - pad - 8);
  root.append(svg("line", { x1: pad, y1: y(0), x2: w - pad, y2: y(0), class: "axis" }));
  if (opts && opts.bars) {
    const bw = Math.max(1, (w - 2 * pad) / points.length - 1);
    points.forEach(([t, v]) => root.append(svg("rect", { x: x(t), y: y(v), width: bw, height: y(0) - y(v), class: "bar" },
      svg("title", {}, `${time(t)}: ${num(v)}`))));
  } else {
    root.append(svg("polyline", { points: points.map(([t, v]) => `${x(t)},${y(v)}`).join(" "), class: "line" }));
  }
  root.append(svg("text", { x: 2, y: 14, class: "label" }, num(vmax)));
  root.append(svg("text", { x: pad, y: hgt - 4, class: "label" }, time(t0).slice(11, 19)));
  root.append(svg("text", { x: w - pad, y: hgt - 4, "text-anchor": "end", class: "label" }, time(t1).slice(11, 19)));
  return root;
}

function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
}

function copyButton(getText, label) {
  return h("button", {
    type: "button",
    onclick: async (ev) => {
      const text = getText();
      try { await navigator.clipboard.writeText(text); ev.target.textContent = "Copied"; }
      catch (e) { window.prompt("Copy the record:", text); }
    },
  }, label || "Copy as JSON");
}

function setUpdated() {
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

// ---------------------------------------------------------------------------------------------
// Pipeline: files → topics → groups → indices → hosts, and the delivery ledger

async function pipeline(root) {
  const s = await api("/status");
  const files = s.files || [], topics = s.topics || [], groups = s.groups || [];
  const ix = s.indexer || { indices: [], hosts: [], records_dropped: 0 };
  const totals = {
    lines_read: sum(files, (f) => f.lines_read),
    events_acked: sum(files, (f) => f.events_acked),
    bytes_behind: sum(files, (f) => f.bytes_behind),
    rotations: sum(files, (f) => f.rotations || 0),
    topic_end: sum(topics, (t) => sum(t.partitions, (p) => p.log_end_offset)),
    lag: sum(groups, (g) => g.lag),
    committed: sum(groups, (g) => sum(g.partitions, (p) => p.committed)),
    indexed: sum(ix.indices, (i) => i.indexed),
    dead_lettered: sum(ix.indices, (i) => i.dead_lettered),
    retried: sum(ix.indices, (i) => i.retried),
    dropped: ix.records_dropped || 0,
  };
  const rate = (k) => {
    if (!previous.totals || s.time_ms <= previous.time) return null;
    return ((totals[k] - previous.totals[k]) * 1000) / (s.time_ms - previous.time);
  };
  const perSec = (k) => { const r = rate(k); return r === null ? "–" : `${num(Math.round(r))}/s`; };
  const inFlight = totals.events_acked - totals.indexed - totals.dead_lettered - totals.dropped;
  const unhealthy = ix.hosts.filter((x) => !x.healthy);
  const piles = {
    files: totals.bytes_behind > 0 || (s.stalls || []).length > 0,
    groups: totals.lag > 0,
    indices: totals.dead_lettered > 0 || totals.retried > 0,
    hosts: unhealthy.length > 0,
  };
  const stage = (key, title, figures, detail) => h("section", { class: `stage${piles[key] ? " pile" : ""}`, "aria-labelledby": `st-${key}` },
    h("h2", { id: `st-${key}` }, title, piles[key] ? h("span", { class: "badge" }, "piling up") : null),
    h("dl", {}, figures.map(([label, k, value]) => [h("dt", {}, label), h("dd", { "data-k": k }, value)])), detail);

  const flow = h("div", { class: "flow" },
    stage("files", "Files", [["lines read", "lines_read", num(totals.lines_read)], ["acknowledged", "events_acked", num(totals.events_acked)],
      ["bytes behind", "bytes_behind", bytes(totals.bytes_behind)], ["rotations", "rotations", num(totals.rotations)], ["rate", "rate_read", perSec("lines_read")]],
      h("ul", { class: "small" }, files.map((f) => h("li", {}, h("progress", { max: f.size || 1, value: f.acked_offset, "aria-label": `${f.path} acknowledged` }), ` ${f.path} (${bytes(f.acked_offset)} of ${bytes(f.size)})`)))),
    stage("topics", "Topic partitions", [["partitions", "partitions", num(sum(topics, (t) => t.partitions.length))], ["end offsets", "topic_end", num(totals.topic_end)],
      ["size", "topic_bytes", bytes(sum(topics, (t) => t.size_bytes))], ["rate in", "rate_in", perSec("topic_end")]],
      h("ul", { class: "small" }, topics.map((t) => h("li", {}, h("a", { href: `#topics/${encodeURIComponent(t.name)}` }, t.name), ` ${t.partitions.length} partitions, ${bytes(t.size_bytes)}`)))),
    stage("groups", "Consumer groups", [["groups", "groups", num(groups.length)], ["lag", "lag", num(totals.lag)], ["committed", "committed", num(totals.committed)], ["rate out", "rate_out", perSec("committed")]],
      h("ul", { class: "small" }, groups.map((g) => h("li", {}, h("a", { href: `#groups/${encodeURIComponent(g.group_id)}` }, g.group_id), ` ${g.state}, lag ${num(g.lag)}`)))),
    stage("indices", "Indices", [["indexed", "indexed", num(totals.indexed)], ["dead-lettered", "dead_lettered", num(totals.dead_lettered)], ["retried", "retried", num(totals.retried)], ["rate", "rate_indexed", perSec("indexed")]],
      h("ul", { class: "small" }, ix.indices.map((i) => h("li", {}, `${i.index}: ${num(i.indexed)}`)))),
    stage("hosts", "Elasticsearch hosts", [["hosts", "hosts", num(ix.hosts.length)], ["unhealthy", "unhealthy", num(unhealthy.length)]],
      h("ul", { class: "small" }, ix.hosts.length ? ix.hosts.map((x) => h("li", { class: x.healthy ? "ok" : "bad" }, `${x.healthy ? "✔" : "✖"} ${x.url}${x.last_error ? `: ${x.last_error}` : ""}`)) : h("li", { class: "muted" }, "file output (no hosts)"))));

  const ledgerOk = inFlight === 0 && totals.lines_read === totals.events_acked;
  const ledger = h("section", { "aria-labelledby": "ledger-h", class: "ledger" },
    h("h2", { id: "ledger-h" }, "Delivery ledger"),
    h("p", { class: ledgerOk ? "ok" : "warn", id: "ledger" },
      h("span", { "data-k": "ledger_read" }, num(totals.lines_read)), " lines read = ",
      h("span", { "data-k": "ledger_acked" }, num(totals.events_acked)), " acknowledged = ",
      h("span", { "data-k": "ledger_indexed" }, num(totals.indexed)), " indexed + ",
      h("span", { "data-k": "ledger_dead" }, num(totals.dead_lettered)), " dead-lettered + ",
      h("span", { "data-k": "ledger_dropped" }, num(totals.dropped)), " dropped + ",
      h("span", { "data-k": "ledger_in_flight" }, num(inFlight)), " in flight"),
    h("p", { class: "muted small" }, "Counts since this process started. Records that reached the topic from elsewhere (or before a restart) count as indexed without having been read here, so “in flight” can go below zero."),
    table("Per file", [{ key: "path", label: "File" }, { key: "lines_read", label: "Lines read", num: true }, { key: "events_acked", label: "Acknowledged", num: true },
      { key: "bytes_behind", label: "Bytes behind", num: true, render: (f) => bytes(f.bytes_behind) },
      { key: "rotations", label: "Rotations", num: true, render: (f) => num(f.rotations || 0) }], files, { id: "ledger-files", rowClass: (f) => (f.bytes_behind > 0 ? "pile" : null) }),
    table("Per index", [{ key: "index", label: "Index" }, { key: "indexed", label: "Indexed", num: true }, { key: "dead_lettered", label: "Dead-lettered", num: true },
      { key: "retried", label: "Retried", num: true }], ix.indices, { id: "ledger-indices", rowClass: (i) => (i.dead_lettered > 0 ? "pile" : null) }));
  const stalls = (s.stalls || []).map((x) => alertBox(`${x.kind} ${x.key}: ${x.reason}`));
  root.replaceChildren(h("h1", {}, "Pipeline"), ...stalls, flow, ledger);
  previous.time = s.time_ms;
  previous.totals = totals;
}

// ---------------------------------------------------------------------------------------------
// Topics and the message browser

const browser = { topic: null, partition: 0, mode: "offset", at: "0", filter: "", limit: 20, page: null, error: null };

async function topics(root, name) {
  const s = await api("/status");
  if (!name) {
    root.replaceChildren(h("h1", {}, "Topics"), table("Topics of this broker", [
      { key: "name", label: "Topic", render: (t) => h("a", { href: `#topics/${encodeURIComponent(t.name)}` }, t.name) },
      { key: "partitions", label: "Partitions", num: true, value: (t) => t.partitions.length, render: (t) => num(t.partitions.length) },
      { key: "messages", label: "Records", num: true, value: (t) => sum(t.partitions, (p) => p.log_end_offset - p.log_start_offset), render: (t) => num(sum(t.partitions, (p) => p.log_end_offset - p.log_start_offset)) },
      { key: "size_bytes", label: "Size", num: true, render: (t) => bytes(t.size_bytes) }], s.topics || [], { id: "topics" }));
    return;
  }
  if (!root.isConnected) return; // the user moved on while this refresh waited: leave the browser's state alone
  const topic = (s.topics || []).find((t) => t.name === name);
  if (browser.topic !== name) Object.assign(browser, { topic: name, partition: 0, mode: "offset", at: "0", filter: "", page: null, error: null, configs: null });
  let part = root.querySelector("#partitions");
  const partitions = table(`Partitions of ${name}`, [{ key: "partition", label: "Partition", num: true }, { key: "log_start_offset", label: "Start offset", num: true },
    { key: "log_end_offset", label: "End offset", num: true }, { key: "size_bytes", label: "Size", num: true, render: (p) => bytes(p.size_bytes) }],
    topic ? topic.partitions : [], { id: "partitions" });
  if (part) { part.parentElement.replaceWith(partitions); return; } // refresh only the numbers
  if (!browser.configs) {
    api(`/api/topics/${encodeURIComponent(name)}/configs`).then((c) => { browser.configs = c; renderConfigs(); }).catch((e) => { browser.configs = []; renderConfigs(e.message); });
  }
  root.replaceChildren(h("h1", {}, h("a", { href: "#topics" }, "Topics"), " / ", name), partitions,
    h("details", { id: "configs", open: true }, h("summary", {}, "Configs")), browserForm(topic), h("div", { id: "records" }));
  renderConfigs();
  renderRecords();
}

function renderConfigs(err) {
  const box = document.getElementById("configs");
  if (!box) return;
  const all = browser.configs || [];
  const retention = all.filter((c) => c.name.startsWith("retention.") || c.name === "cleanup.policy");
  const rows = all.filter((c) => !c.is_default && !retention.includes(c));
  box.replaceChildren(h("summary", {}, `Configs (${rows.length} set, others default)`), err ? alertBox(err) : null,
    table("Retention", [{ key: "name", label: "Name" }, { key: "value", label: "Value" }, { key: "is_default", label: "Default", render: (c) => (c.is_default ? "yes" : "no") }], retention, { id: "retention" }),
    table("Other non-default configs", [{ key: "name", label: "Name" }, { key: "value", label: "Value" }], rows));
}

function browserForm(topic) {
  const ids = topic ? topic.partitions.map((p) => p.partition) : [0];
  const form = h("form", { class: "row", id: "browse", onsubmit: (ev) => { ev.preventDefault(); readForm(form); browse(); } },
    h("label", {}, "Partition ", h("select", { name: "partition" }, ids.map((p) => h("option", { value: p, selected: p === browser.partition }, p)))),
    h("label", {}, "Seek by ", h("select", { name: "mode" }, h("option", { value: "offset", selected: browser.mode === "offset" }, "offset"), h("option", { value: "time", selected: browser.mode === "time" }, "timestamp"))),
    h("label", {}, "Offset or time ", h("input", { name: "at", value: browser.at, size: 26, placeholder: "42 or 2026-12-04T10:00:00Z" })),
    h("label", {}, "Filter ", h("input", { name: "filter", value: browser.filter, placeholder: "substring" })),
    h("label", {}, "Per page ", h("input", { name: "limit", type: "number", min: 1, max: 500, value: browser.limit, size: 4 })),
    h("button", { type: "submit" }, "Show records"));
  return h("section", { "aria-labelledby": "browser-h" }, h("h2", { id: "browser-h" }, "Message browser"), form);
}

function readForm(form) {
  const f = new FormData(form);
  browser.partition = Number(f.get("partition"));
  browser.mode = f.get("mode");
  browser.at = String(f.get("at")).trim();
  browser.filter = String(f.get("filter"));
  browser.limit = Number(f.get("limit")) || 20;
}

async function browse(offset) {
  const q = new URLSearchParams({ partition: browser.partition, limit: browser.limit, filter: browser.filter });
  if (offset !== undefined) q.set("offset", offset);
  else if (browser.mode === "time") q.set("time", browser.at);
  else q.set("offset", browser.at || "0");
  try {
    browser.page = await api(`/api/topics/${encodeURIComponent(browser.topic)}/messages?${q}`);
    browser.error = null;
  } catch (e) {
    browser.error = e.message;
  }
  renderRecords();
}

function renderRecords() {
  const box = document.getElementById("records");
  if (!box) return;
  const p = browser.page;
  if (browser.error) { box.replaceChildren(alertBox(browser.error)); return; }
  if (!p) { box.replaceChildren(h("p", { class: "muted" }, "Pick a partition and an offset or a time.")); return; }
  const nav = h("div", { class: "row" },
    h("button", { type: "button", disabled: p.start_offset <= p.log_start_offset, onclick: () => browse(Math.max(p.log_start_offset, p.start_offset - browser.limit)) }, "◀ Previous"),
    h("span", { id: "page-info" }, `offsets ${num(p.start_offset)}–${num(p.next_offset - 1)} of ${num(p.log_start_offset)}–${num(p.log_end_offset - 1)}; ${p.records.length} shown of ${p.scanned} read`),
    h("button", { type: "button", disabled: p.next_offset >= p.log_end_offset, onclick: () => browse(p.next_offset) }, "Next ▶"));
  const list = h("ol", { class: "records", id: "record-list" }, p.records.map((r) => h("li", { "data-offset": r.offset },
    h("div", { class: "row" }, h("strong", {}, `#${r.offset}`), h("span", { class: "muted" }, time(r.timestamp_ms)), r.key ? h("code", {}, `key ${r.key}`) : null,
      copyButton(() => JSON.stringify({ topic: browser.topic, partition: r.partition, offset: r.offset, timestamp_ms: r.timestamp_ms, key: r.key, value: tryParse(r.value) }, null, 2))),
    h("pre", { tabindex: 0 }, pretty(r.value)))));
  box.replaceChildren(nav, p.records.length ? list : h("p", { class: "muted" }, "No records here."));
}

function tryParse(text) { try { return JSON.parse(text); } catch (e) { return text; } }

// ---------------------------------------------------------------------------------------------
// Consumer groups

const groupSort = { key: "lag", desc: true };
const partSort = { key: "lag", desc: true };

async function groups(root, id) {
  const s = await api("/status");
  if (!id) {
    const draw = () => root.replaceChildren(h("h1", {}, "Consumer groups"), table("Groups, sortable", [
      { key: "group_id", label: "Group", render: (g) => h("a", { href: `#groups/${encodeURIComponent(g.group_id)}` }, g.group_id) },
      { key: "state", label: "State" }, { key: "members", label: "Members", num: true }, { key: "lag", label: "Lag", num: true }],
      s.groups || [], { id: "groups", sort: true, state: groupSort, onSort: () => draw(), rowClass: (g) => (g.lag > 0 ? "pile" : null) }));
    draw();
    return;
  }
  const g = (s.groups || []).find((x) => x.group_id === id) || { group_id: id, state: "unknown", members: 0, lag: 0, partitions: [] };
  const detail = await api(`/api/groups/${encodeURIComponent(id)}`);
  const d = detail.describe || {};
  const partsTable = () => table("Lag per partition, sortable", [{ key: "topic", label: "Topic" }, { key: "partition", label: "Partition", num: true },
    { key: "committed", label: "Committed", num: true }, { key: "log_end_offset", label: "End offset", num: true }, { key: "lag", label: "Lag", num: true }],
    g.partitions, { id: "group-partitions", sort: true, state: partSort, onSort: () => document.getElementById("group-partitions").parentElement.replaceWith(partsTable()), rowClass: (p) => (p.lag > 0 ? "pile" : null) });
  const members = d.error ? alertBox(d.error) : table("Members", [{ key: "client_id", label: "Client" }, { key: "host", label: "Host" }, { key: "id", label: "Member id" },
    { key: "assignment", label: "Assignment", render: (m) => m.assignment.map((a) => `${a.topic}:${a.partition}`).join(", ") }], d.members || [], { id: "members" });
  const chart = lineChart(`Lag of ${id} over the last hour`, detail.lag_history || []);
  const existing = root.querySelector("#reset"); // kept across refreshes, with what the user typed
  root.replaceChildren(h("h1", {}, h("a", { href: "#groups" }, "Consumer groups"), " / ", id),
    h("p", {}, "State ", h("strong", { id: "group-state" }, d.state || g.state), `, ${num(g.members)} members, lag `, h("strong", { id: "group-lag" }, num(g.lag))),
    h("section", { "aria-labelledby": "hist-h" }, h("h2", { id: "hist-h" }, "Lag, last hour"), chart),
    partsTable(), members, existing || resetSection(g, id));
}

// The section, its form and its handlers belong to one group's page: a refresh of another group's page
// that finishes late cannot redirect them.
function resetSection(g, group) {
  const topicsOf = [...new Set(g.partitions.map((p) => p.topic))];
  const result = h("div", { id: "reset-result", "aria-live": "polite" });
  const form = h("form", { class: "row", id: "reset-form", onsubmit: (ev) => { ev.preventDefault(); dryRun(group, resetRequest(form), result); } },
    h("fieldset", {}, h("legend", {}, "Topics"), topicsOf.map((t) => h("label", {}, h("input", { type: "checkbox", name: "topic", value: t, checked: true }), ` ${t}`))),
    h("label", {}, "Move to ", h("select", { name: "to" }, ["earliest", "latest", "offset", "time"].map((v) => h("option", { value: v }, v)))),
    h("label", {}, "Offset or time ", h("input", { name: "value", placeholder: "for offset / time" })),
    h("button", { type: "submit" }, "Dry run"));
  return h("section", { id: "reset", "aria-labelledby": "reset-h" }, h("h2", { id: "reset-h" }, "Reset offsets"),
    h("p", { class: "muted small" }, "A dry run shows the new offsets; then Execute commits them. Refused while the group has active members: stop its consumers first."),
    form, result);
}

function resetRequest(form) {
  const f = new FormData(form);
  return { topics: f.getAll("topic"), to: f.get("to"), value: String(f.get("value") || "").trim() || null, execute: false };
}

const resetUrl = (group) => `/api/groups/${encodeURIComponent(group)}/reset`;

async function dryRun(group, request, box) {
  try {
    const answer = await post(resetUrl(group), request);
    box.replaceChildren(table("Dry run: new offsets", [{ key: "topic", label: "Topic" }, { key: "partition", label: "Partition", num: true }, { key: "offset", label: "New offset", num: true }], answer.plan, { id: "reset-plan" }),
      h("button", { type: "button", id: "reset-execute", onclick: () => execute(group, request, box) }, "Execute this reset"));
  } catch (e) {
    box.replaceChildren(alertBox(`Refused: ${e.message}`));
  }
}

async function execute(group, request, box) {
  try {
    const answer = await post(resetUrl(group), { ...request, execute: true });
    box.replaceChildren(h("p", { class: "ok", role: "status", id: "reset-done" }, `Committed ${answer.plan.length} offsets: `,
      answer.plan.map((p) => `${p.topic}:${p.partition}→${p.offset}`).join(", ")));
  } catch (e) {
    box.replaceChildren(alertBox(`Refused: ${e.message}`));
  }
}

// ---------------------------------------------------------------------------------------------
// Dead letters

async function deadLetters(root) {
  const answer = await api("/api/dead-letters");
  const items = answer.items || [];
  const resent = root.querySelector("#resend-result");
  root.replaceChildren(h("h1", {}, "Dead letters"),
    h("p", { class: "muted" }, answer.topics.length ? `Recent records of ${answer.topics.join(", ")}: documents Elasticsearch refused, with its reason.` : "No dead-letter topic: the file output never refuses a document."),
    resent || h("div", { id: "resend-result", "aria-live": "polite" }),
    table("Dead letters, newest first", [{ key: "timestamp_ms", label: "Time", render: (d) => time(d.timestamp_ms) }, { key: "index", label: "Index" },
      { key: "reason", label: "Reason", render: (d) => h("span", { class: "reason" }, d.reason) },
      { key: "event", label: "Event", render: (d) => h("details", {}, h("summary", {}, `${d.dlq_topic}:${d.partition}@${d.offset}`), h("pre", { tabindex: 0 }, JSON.stringify(d.event, null, 2))) },
      { key: "resend", label: "Action", render: (d) => h("button", { type: "button", class: "resend", "data-offset": d.offset, onclick: () => resend(d) }, "Re-send") }],
      items, { id: "dead-letters" }));
}

async function resend(d) {
  const box = document.getElementById("resend-result");
  try {
    const r = await post("/api/dead-letters/resend", { dlq_topic: d.dlq_topic, partition: d.partition, offset: d.offset });
    box.replaceChildren(h("p", { class: "ok", role: "status" }, `Re-sent ${d.dlq_topic}@${d.offset} to ${r.topic} partition ${r.partition} offset ${r.offset}.`));
  } catch (e) {
    box.replaceChildren(alertBox(e.message));
  }
}

// ---------------------------------------------------------------------------------------------
// Indices

async function indices(root) {
  const a = await api("/api/indices");
  root.replaceChildren(h("h1", {}, "Indices"),
    h("p", { class: "muted" }, `Store: ${a.store}. Retention: ${a.retention_s ? `deleted ${age(a.retention_s)} after their day ends` : "none configured ([indexer.retention])"}.`),
    table("Daily indices, newest first", [{ key: "index", label: "Index" }, { key: "docs", label: "Documents", num: true },
      { key: "bytes", label: "Size", num: true, render: (r) => bytes(r.bytes) }, { key: "day_start_ms", label: "Day", render: (r) => (r.day_start_ms ? time(r.day_start_ms).slice(0, 10) : "–") },
      { key: "age_s", label: "Age", num: true, render: (r) => age(r.age_s) },
      { key: "deleted_at_ms", label: "Retention", render: (r) => (r.expired ? "expired" : r.deleted_at_ms ? `until ${time(r.deleted_at_ms).slice(0, 16)}` : "kept") }],
      a.indices, { id: "indices" }));
}

// ---------------------------------------------------------------------------------------------
// Search

const searchState = { q: "", range: "24h", from: "", to: "", answer: null, error: null };
const RANGES = { "15m": 9e5, "1h": 3.6e6, "24h": 8.64e7, "7d": 6.048e8, "30d": 2.592e9, all: null, custom: null };

async function search(root) {
  if (root.querySelector("#search-form")) return; // results stay until the next search
  const form = h("form", { id: "search-form", role: "search", onsubmit: (ev) => { ev.preventDefault(); runSearch(form); } },
    h("div", { class: "row" },
      h("label", { class: "grow" }, "Query ", h("input", { name: "q", id: "q", value: searchState.q, class: "grow", placeholder: 'url.path:/api/users AND http.response.status_code:[500 TO 599] NOT "healthcheck"' })),
      h("label", {}, "Time ", h("select", { name: "range" }, Object.keys(RANGES).map((k) => h("option", { value: k, selected: k === searchState.range }, k === "all" ? "all time" : k === "custom" ? "custom…" : `last ${k}`)))),
      h("label", {}, "From ", h("input", { name: "from", type: "datetime-local", value: searchState.from })),
      h("label", {}, "To ", h("input", { name: "to", type: "datetime-local", value: searchState.to })),
      h("button", { type: "submit" }, "Search")),
    h("p", { class: "muted small" }, "field:value (* wildcards), \"phrases\", AND / OR / NOT, ranges [a TO b] and >=n on numbers and dates. Case-sensitive. From/To apply with “custom…” (UTC)."));
  root.replaceChildren(h("h1", {}, "Search"), form, h("div", { id: "results", "aria-live": "polite" }));
  renderResults();
}

async function runSearch(form) {
  const f = new FormData(form);
  Object.assign(searchState, { q: f.get("q"), range: f.get("range"), from: f.get("from"), to: f.get("to") });
  const q = new URLSearchParams({ q: searchState.q, size: 50 });
  const span = RANGES[searchState.range];
  if (span) { const now = Date.now(); q.set("from", now - span); q.set("to", now + 1); }
  if (searchState.range === "custom") {
    if (searchState.from) q.set("from", Date.parse(searchState.from + "Z"));
    if (searchState.to) q.set("to", Date.parse(searchState.to + "Z"));
  }
  document.getElementById("results").replaceChildren(h("p", { class: "muted" }, "Searching…"));
  try { searchState.answer = await api(`/api/search?${q}`); searchState.error = null; }
  catch (e) { searchState.error = e.message; }
  renderResults();
}

function renderResults() {
  const box = document.getElementById("results");
  if (!box) return;
  if (searchState.error) { box.replaceChildren(alertBox(searchState.error)); return; }
  const a = searchState.answer;
  if (!a) { box.replaceChildren(); return; }
  box.replaceChildren(
    h("p", {}, h("strong", { id: "total" }, num(a.total)), ` hits (${a.files} files, ${bytes(a.bytes)} read in ${num(a.took_ms)} ms); newest ${a.hits.length} below.`),
    lineChart("Hits over time", a.histogram, { bars: true }),
    h("ol", { class: "hits", id: "hits" }, a.hits.map((hit) => {
      const doc = tryParse(hit.source);
      const line = typeof doc === "object" && doc ? doc.message || hit.source : hit.source;
      return h("li", {}, h("details", {}, h("summary", {}, h("span", { class: "muted" }, time(hit.time_ms)), " ", h("code", {}, hit.index), " ", String(line).slice(0, 200)),
        h("div", { class: "row" }, copyButton(() => JSON.stringify(doc, null, 2))), h("pre", { tabindex: 0 }, JSON.stringify(doc, null, 2))));
    })));
}

// ---------------------------------------------------------------------------------------------
// Router

const VIEWS = { pipeline, topics, groups, "dead-letters": deadLetters, indices, search };
const LIVE = new Set(["pipeline", "topics", "groups", "dead-letters", "indices"]);

// Each visit of a view renders into its own container: a refresh that finishes after the user moved on
// draws into a detached container, never over the next view.
async function refresh() {
  const v = view;
  if (!v) return;
  try {
    await VIEWS[v.name](v.root, v.arg);
    v.root.querySelectorAll(".error.refresh").forEach((n) => n.remove());
    setUpdated();
  } catch (e) {
    v.root.querySelectorAll(".error.refresh").forEach((n) => n.remove());
    v.root.prepend(h("p", { class: "error refresh", role: "alert" }, e.message));
  }
}

function route() {
  const [name, ...rest] = (location.hash.slice(1) || "pipeline").split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  const root = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  view = { name: VIEWS[name] ? name : "pipeline", arg, root };
  document.querySelectorAll("nav a").forEach((a) => a.setAttribute("aria-current", a.getAttribute("href") === `#${view.name}` ? "page" : "false"));
  main.replaceChildren(root);
  clearInterval(timer);
  refresh().then(() => main.focus({ preventScroll: true }));
  if (LIVE.has(view.name)) timer = setInterval(refresh, REFRESH_MS);
}

window.addEventListener("hashchange", route);
route();
