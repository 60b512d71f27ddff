// The review page: one record at a time, keyboard first, every decision saved before moving on.
"use strict";

const TOKEN = document.querySelector('meta[name="review-token"]').content;
const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  reviewer: null,
  record: null,
  progress: null,
  mode: "view",        // view | edit | label
  pending: [],         // decisions not yet confirmed by the server
  busy: false,
  pickerIndex: 0,
};

// -- talking to the server ------------------------------------------------------

async function api(path, body) {
  const options = { headers: { "X-Review-Token": TOKEN } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function viewQuery() {
  const q = new URLSearchParams();
  q.set("reviewer", state.reviewer);
  const order = $("order").value;
  if (order) q.set("order", order);
  if ($("filter-label").value) q.append("label", $("filter-label").value);
  if ($("filter-condition").value) q.append("condition", $("filter-condition").value);
  if ($("filter-decision").value) q.append("decision", $("filter-decision").value);
  if ($("assigned-only").checked) q.set("assigned", "1");
  return q.toString();
}

function pendingKey() {
  return `synthloom-review-pending:${state.info ? state.info.name : ""}:${state.reviewer}`;
}

function savePending() {
  localStorage.setItem(pendingKey(), JSON.stringify(state.pending));
}

function uid() {
  if (crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Send every pending decision, oldest first; keep retrying until the server confirms.
// Returns the reasons of any the server refused for good (those are dropped).
async function flush() {
  const refused = [];
  while (state.pending.length) {
    try {
      await api("/api/decide", state.pending[0]);
    } catch (error) {
      if (error.status === 400) {
        refused.push(error.message);
        state.pending.shift();
        savePending();
        continue;
      }
      showBanner(error.status === 401
        ? "The server does not accept this page's token any more. This page keeps your unsaved decision and sends it once a server with the same --port and --token is back."
        : "Not saved yet: the server cannot be reached. Retrying…", "error");
      await new Promise((r) => setTimeout(r, 1500));
      continue;
    }
    state.pending.shift();
    savePending();
  }
  hideBanner();
  return refused;
}

// -- the record on screen --------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(3).replace(/\.?0+$/, "") || "0";
  return String(value);
}

function render() {
  const record = state.record;
  renderProgress();
  $("empty").hidden = !!record;
  $("record").hidden = !record;
  document.querySelectorAll("#actions .act").forEach((b) => {
    b.disabled = !record && b.dataset.action !== "undo";
  });
  if (!record) return;
  $("rec-id").textContent = record.id;
  $("rec-source").textContent = record.source || "";
  $("rec-source").hidden = !record.source;
  const status = $("rec-status");
  if (record.decision) {
    status.hidden = false;
    status.textContent = describe(record.decision);
    status.className = `pill status ${record.decision.action}`;
  } else {
    status.hidden = true;
  }
  const fields = $("fields");
  fields.replaceChildren();
  const names = Object.keys(record.fields);
  for (const name of names) {
    const block = el("div", { class: "field" });
    if (names.length > 1) block.append(el("div", { class: "field-name", text: name }));
    block.append(el("div", { class: "field-text", text: record.fields[name] ?? "" }));
    fields.append(block);
  }
  $("rec-label").textContent = record.label ?? "no label";
  $("rec-label").classList.toggle("none", record.label == null);
  $("rec-label-desc").textContent = (state.info.label_descriptions || {})[record.label] || "";
  $("rec-confidence").textContent = record.confidence == null ? "" : `confidence ${fmt(record.confidence)}`;
  $("rec-confidence").className = "confidence " + confidenceClass(record.confidence);

  const conditions = $("conditions");
  conditions.replaceChildren();
  for (const [k, v] of Object.entries(record.conditions || {})) {
    conditions.append(el("span", { class: "cond" }, el("span", { class: "k", text: k }), el("span", { class: "v", text: String(v) })));
  }
  renderWhy(record);
  renderQuickLabels(record);
}

function confidenceClass(c) {
  if (c == null) return "";
  return c < 0.5 ? "low" : c < 0.8 ? "mid" : "high";
}

function renderWhy(record) {
  const why = $("why");
  why.replaceChildren();
  const stages = [...new Set([...Object.keys(record.flags || {}), ...Object.keys(record.scores || {})])];
  if (!stages.length) return;
  const table = el("table", { class: "stages" });
  table.append(el("tr", {}, el("th", { text: "curation stage" }), el("th", { text: "decision" }), el("th", { text: "score" }), el("th", { text: "why" })));
  for (const stage of stages) {
    const flag = (record.flags || {})[stage];
    const score = (record.scores || {})[stage];
    const reason = (record.reasons || {})[stage] || "";
    const scoreCell = el("td", { class: "score" });
    if (typeof score === "number" && score >= 0 && score <= 1) {
      const bar = el("span", { class: "mini-bar" }, el("span", { class: "mini-fill " + confidenceClass(score) }));
      bar.firstChild.style.width = `${Math.round(score * 100)}%`;
      scoreCell.append(bar);
    }
    scoreCell.append(el("span", { text: fmt(score) }));
    const row = el("tr", { class: flag && flag !== "keep" ? "flagged" : "" },
      el("td", { class: "stage", text: stage }),
      el("td", {}, flag ? el("span", { class: `flag ${flag}`, text: flag }) : el("span", { class: "muted", text: "–" })),
      scoreCell,
      el("td", { class: "reason", text: reason }));
    table.append(row);
  }
  why.append(table);
}

function renderQuickLabels(record) {
  const box = $("quick-labels");
  box.replaceChildren();
  // Number keys for small label sets; with more labels the searchable list (L) is quicker.
  const labels = state.info.labels.length <= 9 ? state.info.labels : [];
  labels.forEach((label, i) => {
    const b = el("button", { class: "quick" + (label === record.label ? " current" : ""), title: `set label to ${label}` },
      el("kbd", { text: String(i + 1) }), el("span", { text: label }));
    b.addEventListener("click", () => { b.blur(); relabel(label); });
    box.append(b);
  });
}

function renderProgress() {
  const p = state.progress;
  if (!p) return;
  const pct = p.total ? Math.round((100 * p.done) / p.total) : 0;
  $("bar-fill").style.width = `${pct}%`;
  let text = `${p.done} of ${p.total} reviewed · ${p.remaining} left`;
  if (p.skipped) text += ` · ${p.skipped} skipped`;
  $("progress-text").textContent = text;
}

function describe(d) {
  const who = d.reviewer === state.reviewer ? "you" : d.reviewer;
  switch (d.action) {
    case "accept": return `${who} accepted`;
    case "relabel": return `${who} relabelled → ${d.label}`;
    case "edit": return `${who} edited` + (d.label && d.label !== d.original_label ? ` → ${d.label}` : "");
    case "reject": return `${who} rejected`;
    default: return `${who} skipped`;
  }
}

async function loadHistory() {
  const data = await api(`/api/history?reviewer=${encodeURIComponent(state.reviewer)}&limit=30`);
  const list = $("history");
  list.replaceChildren();
  for (const d of data.history) {
    const item = el("li", { class: `h ${d.action}${d.undone_at ? " undone" : ""}`, title: d.at },
      el("span", { class: `flag ${d.action}`, text: d.undone_at ? "undone" : d.action + (d.label && d.label !== d.original_label ? ` → ${d.label}` : "") }),
      el("span", { class: "h-text", text: d.text }));
    item.addEventListener("click", () => openRecord(d.record_id));
    list.append(item);
  }
}

// -- moving through the queue -------------------------------------------------------

async function next() {
  const data = await api(`/api/next?${viewQuery()}`);
  show(data.record, data.progress);
}

async function openRecord(id) {
  const data = await api(`/api/record/${encodeURIComponent(id)}?${viewQuery()}`);
  show(data.record, data.progress);
}

function show(record, progress) {
  state.record = record;
  state.progress = progress;
  closePanels();
  render();
  loadHistory().catch(() => {});
}

async function decide(action, extra = {}) {
  if (!state.record || state.busy) return;
  state.busy = true;
  const decision = { uid: uid(), record_id: state.record.id, reviewer: state.reviewer, action, ...extra };
  state.pending.push(decision);
  savePending();
  try {
    const refused = await flush();
    if (refused.length) {
      showBanner(`Not saved: ${refused.join("; ")}`, "error");
      return;
    }
    toast(`${describe({ ...decision, reviewer: state.reviewer, original_label: state.record.label })} · saved`);
    await next();
  } catch (error) {
    showBanner(error.message, "error");
  } finally {
    state.busy = false;
  }
}

function relabel(label) {
  if (!state.record) return;
  if (label === state.record.label) decide("accept");
  else decide("relabel", { label });
}

async function undo() {
  if (state.busy) return;
  state.busy = true;
  try {
    await flush();
    const data = await api("/api/undo", { reviewer: state.reviewer });
    toast(`undid: ${describe(data.undone)}`);
    await openRecord(data.undone.record_id);
  } catch (error) {
    toast(error.message);
  } finally {
    state.busy = false;
  }
}

// -- panels: edit and label picker ---------------------------------------------------

function closePanels() {
  state.mode = "view";
  $("edit-panel").hidden = true;
  $("label-picker").hidden = true;
}

function openEdit() {
  if (!state.record) return;
  closePanels();
  state.mode = "edit";
  const box = $("edit-fields");
  box.replaceChildren();
  for (const [name, value] of Object.entries(state.record.fields)) {
    if (value !== null && typeof value !== "string") continue;
    const area = el("textarea", { "data-field": name, rows: "4" });
    area.value = value ?? "";
    box.append(el("label", { class: "edit-field" }, el("span", { class: "field-name", text: name }), area));
  }
  const select = $("edit-label");
  select.replaceChildren(...state.info.labels.map((l) => el("option", { value: l, text: l })));
  select.value = state.record.label ?? "";
  $("edit-panel").hidden = false;
  $("edit-panel").scrollIntoView({ block: "nearest" });
  const first = box.querySelector("textarea");
  if (first) { first.focus(); first.setSelectionRange(first.value.length, first.value.length); }
}

function saveEdit() {
  const fields = {};
  document.querySelectorAll("#edit-fields textarea").forEach((a) => { fields[a.dataset.field] = a.value; });
  const label = $("edit-label").value || null;
  decide("edit", { fields, label });
}

function openPicker() {
  if (!state.record) return;
  closePanels();
  state.mode = "label";
  $("label-picker").hidden = false;
  $("label-search").value = "";
  state.pickerIndex = 0;
  renderPicker();
  $("label-picker").scrollIntoView({ block: "nearest" });
  $("label-search").focus();
}

function pickerMatches() {
  const q = $("label-search").value.trim().toLowerCase();
  return state.info.labels.filter((l) => l.toLowerCase().includes(q));
}

function renderPicker() {
  const matches = pickerMatches();
  state.pickerIndex = Math.max(0, Math.min(state.pickerIndex, matches.length - 1));
  const list = $("label-options");
  list.replaceChildren();
  matches.forEach((label, i) => {
    const item = el("li", { class: (i === state.pickerIndex ? "active " : "") + (label === state.record.label ? "current" : "") },
      el("span", { text: label }),
      el("span", { class: "muted small", text: (state.info.label_descriptions || {})[label] || "" }));
    item.addEventListener("click", () => relabel(label));
    list.append(item);
  });
  const active = list.querySelector(".active");
  if (active) active.scrollIntoView({ block: "nearest" });
}

// -- keyboard -----------------------------------------------------------------------

function onKey(event) {
  if (document.querySelector("dialog[open]")) return;
  const inField = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);
  if (state.mode === "edit") {
    if (event.key === "Escape") { event.preventDefault(); closePanels(); }
    else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); saveEdit(); }
    return;
  }
  if (state.mode === "label") {
    const matches = pickerMatches();
    if (event.key === "Escape") { event.preventDefault(); closePanels(); }
    else if (event.key === "ArrowDown") { event.preventDefault(); state.pickerIndex++; renderPicker(); }
    else if (event.key === "ArrowUp") { event.preventDefault(); state.pickerIndex--; renderPicker(); }
    else if (event.key === "Enter") { event.preventDefault(); if (matches.length) relabel(matches[state.pickerIndex]); }
    return;
  }
  if (inField || event.altKey) return;
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") { event.preventDefault(); undo(); return; }
  if (event.ctrlKey || event.metaKey) return;
  const key = event.key;
  const actions = {
    a: () => decide("accept"), Enter: () => decide("accept"),
    r: () => decide("reject"), s: () => decide("skip"), u: () => undo(),
    e: () => openEdit(), l: () => openPicker(), "?": () => $("help-dialog").showModal(),
  };
  const action = actions[key] || actions[key.toLowerCase()];
  if (action) { event.preventDefault(); action(); return; }
  if (/^[1-9]$/.test(key) && state.info.labels.length <= 9) {
    const label = state.info.labels[Number(key) - 1];
    if (label) { event.preventDefault(); relabel(label); }
  }
}

// -- small things -------------------------------------------------------------------

let toastTimer = null;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 1800);
}

function showBanner(text, kind) {
  const b = $("banner");
  b.textContent = text;
  b.className = `banner ${kind || ""}`;
  b.hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

async function showStats() {
  const data = await api("/api/stats");
  const body = $("stats-body");
  body.replaceChildren();
  const counts = el("table", { class: "keys" });
  counts.append(el("tr", {}, ...["reviewer", "accept", "relabel", "edit", "reject"].map((h) => el("th", { text: h }))));
  for (const [who, c] of Object.entries(data.by_reviewer)) {
    counts.append(el("tr", {}, el("td", { text: who }), ...["accept", "relabel", "edit", "reject"].map((a) => el("td", { text: String(c[a] || 0) }))));
  }
  body.append(counts);
  const pairs = data.agreement.pairs;
  if (!pairs.length) {
    body.append(el("p", { class: "muted", text: "Agreement appears once two reviewers have decided the same records." }));
  }
  for (const p of pairs) {
    body.append(el("p", {},
      el("b", { text: `${p.reviewers[0]} & ${p.reviewers[1]}` }),
      el("span", { text: ` on ${p.records} shared records: same outcome ${(100 * p.outcome.agreement).toFixed(1)}% (κ ${p.outcome.kappa ?? "–"}), ` +
        `same accept/not ${(100 * p.accept.agreement).toFixed(1)}% (κ ${p.accept.kappa ?? "–"})` })));
  }
  $("stats-dialog").showModal();
}

function fillSelect(select, options, current) {
  for (const [value, text] of options) select.append(el("option", { value, text }));
  if (current !== undefined) select.value = current;
}

function orderName(order) {
  if (order === "confidence") return "least confident first";
  if (order === "assigned") return "selected for people, best first";
  if (order === "file") return "file order";
  const [kind, stage] = order.split(":");
  if (kind === "score") return `${stage} score, lowest first`;
  if (kind === "-score") return `${stage} score, highest first`;
  return `${stage} flagged first`;
}

function askName() {
  return new Promise((resolve) => {
    const dialog = $("name-dialog");
    $("name-input").value = state.reviewer || "";
    dialog.showModal();
    $("name-form").onsubmit = () => {
      const name = $("name-input").value.trim();
      if (!name) return false;
      localStorage.setItem("synthloom-reviewer", name);
      resolve(name);
      return true;
    };
  });
}

async function start() {
  state.info = await api("/api/info");
  const info = state.info;
  $("dataset").textContent = `${info.name} · ${info.records} records`;
  document.title = `review · ${info.name}`;
  fillSelect($("order"), info.orders.map((o) => [o, orderName(o)]), info.orders[0]);
  fillSelect($("filter-label"), info.labels.map((l) => [l, l]));
  fillSelect($("filter-condition"), Object.entries(info.conditions).flatMap(([k, vs]) => vs.map((v) => [`${k}:${v}`, `${k} = ${v}`])));
  fillSelect($("filter-decision"), Object.entries(info.flags).flatMap(([s, fs]) => fs.map((f) => [`${s}:${f}`, `${s}: ${f}`])));
  if (info.assigned) { $("assigned-wrap").hidden = false; $("assigned-only").checked = true; }

  const fromUrl = new URLSearchParams(location.search).get("reviewer");
  state.reviewer = fromUrl || localStorage.getItem("synthloom-reviewer");
  if (!state.reviewer) state.reviewer = await askName();
  $("reviewer-name").textContent = state.reviewer;
  state.pending = JSON.parse(localStorage.getItem(pendingKey()) || "[]");

  for (const id of ["order", "filter-label", "filter-condition", "filter-decision", "assigned-only"]) {
    $(id).addEventListener("change", () => { $(id).blur(); next(); });
  }
  $("who").addEventListener("click", async () => {
    state.reviewer = await askName();
    $("reviewer-name").textContent = state.reviewer;
    state.pending = JSON.parse(localStorage.getItem(pendingKey()) || "[]");
    next();
  });
  $("help-btn").addEventListener("click", () => $("help-dialog").showModal());
  $("stats-btn").addEventListener("click", () => showStats().catch((e) => toast(e.message)));
  $("edit-panel").addEventListener("submit", (e) => { e.preventDefault(); saveEdit(); });
  $("edit-cancel").addEventListener("click", closePanels);
  $("label-search").addEventListener("input", () => { state.pickerIndex = 0; renderPicker(); });
  document.querySelectorAll("#actions .act").forEach((b) => b.addEventListener("click", () => {
    b.blur();  // keys go to the page, not to the button last clicked
    const a = b.dataset.action;
    if (a === "undo") undo();
    else if (a === "edit") openEdit();
    else if (a === "label") openPicker();
    else decide(a);
  }));
  document.addEventListener("keydown", onKey);
  await flush();
  await next();
}

start().catch((error) => showBanner(`Cannot start: ${error.message}`, "error"));
