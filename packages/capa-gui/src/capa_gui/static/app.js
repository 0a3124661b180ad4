/* capa operator console: vanilla JS, no build step. Live data arrives as server-sent
 * events (one frame per ~100 ms); plots are uPlot charts redrawn at most once per
 * animation frame from fixed-size ring buffers, so memory stays bounded however long
 * the run. */
"use strict";

const RING = 12000;         // points kept per channel for the live plots
const EVENTS_SHOWN = 300;   // event rows kept in the DOM
const $ = (sel) => document.querySelector(sel);

const state = {
  meta: null,
  channels: new Map(),  // name -> {meta, ring, latestRow}
  groups: new Map(),    // group -> {names, plot, el, dirty}
  status: null,
  windowS: 120,
  promptShownFor: null,
  stats: { frames: 0, draws: 0, rafs: 0, drawMs: 0, ingestMs: 0, lastFrameAt: 0 },
};
window.__capa = state;  // for tests and curious operators

// ------------------------------------------------------------------ helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function fmtNum(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  return v.toPrecision(6).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

function fmtDur(s) {
  if (s === null || s === undefined) return "–";
  s = Math.max(0, s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  const mm = String(m).padStart(2, "0"), ss = String(sec).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const res = await fetch(path, opts);
  let data = {};
  try { data = await res.json(); } catch (e) { data = { error: `HTTP ${res.status}` }; }
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

function message(text, kind = "") {
  const p = $("#run-message");
  if (!text) { p.hidden = true; return; }
  p.textContent = text;
  p.className = `message ${kind}`;
  p.hidden = false;
}

function confirmDialog(text) {
  return new Promise((resolve) => {
    const d = $("#confirm-dialog");
    $("#confirm-text").textContent = text;
    d.returnValue = "";
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
  });
}

// ------------------------------------------------------------------ ring buffers
class Ring {
  constructor(n) { this.t = new Float64Array(n); this.v = new Float64Array(n); this.n = 0; this.head = 0; }
  push(t, v) {
    const cap = this.t.length;
    this.t[this.head] = t; this.v[this.head] = v;
    this.head = (this.head + 1) % cap;
    if (this.n < cap) this.n++;
  }
  clear() { this.n = 0; this.head = 0; }
  last() { return this.n ? this.t[(this.head - 1 + this.t.length) % this.t.length] : null; }
  // Ordered copies of the points with t >= from.
  since(from) {
    const cap = this.t.length, start = (this.head - this.n + cap) % cap;
    const ts = [], vs = [];
    for (let i = 0; i < this.n; i++) {
      const j = (start + i) % cap;
      if (this.t[j] >= from) { ts.push(this.t[j]); vs.push(this.v[j]); }
    }
    return [ts, vs];
  }
}

// ------------------------------------------------------------------ pages
function showPage(name) {
  for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== `page-${name}`;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.page === name);
  if (name === "review") loadRuns();
  if (name === "run") for (const g of state.groups.values()) g.dirty = true;
}

// ------------------------------------------------------------------ meta (channels, plots)
function applyMeta(meta) {
  state.meta = meta;
  $("#rig-name").textContent = meta.rig ? `${meta.rig} · ${meta.procedure}` : "";
  if (meta.read_only) {
    for (const id of ["#start-btn", "#quit-btn", "#tab-setup"]) $(id).hidden = true;
    $("#manual").hidden = true;
  }
  buildLive(meta.channels);
  renderSetup(meta);
}

function buildLive(channels) {
  for (const g of state.groups.values()) if (g.plot) g.plot.destroy();
  state.channels.clear(); state.groups.clear();
  const plots = $("#plots"); plots.replaceChildren();
  const tbody = $("#numbers tbody"); tbody.replaceChildren();
  for (const ch of channels) {
    const row = el("tr", { "data-channel": ch.name },
      el("td", { text: ch.name }), el("td", { class: "value", text: "–" }),
      el("td", { text: ch.unit }), el("td", { class: "status", text: "" }));
    tbody.append(row);
    state.channels.set(ch.name, { meta: ch, ring: new Ring(RING), row });
    if (!state.groups.has(ch.group)) state.groups.set(ch.group, { names: [], plot: null, el: null, dirty: true });
    state.groups.get(ch.group).names.push(ch.name);
  }
  const palette = ["#1d4ed8", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"];
  for (const [group, g] of state.groups) {
    const units = [...new Set(g.names.map((n) => state.channels.get(n).meta.unit))].join(", ");
    const box = el("div", { class: "plot", "data-group": group }, el("h4", { text: `${group} (${units})` }));
    plots.append(box);
    const series = [{ label: "t (s)" }].concat(g.names.map((n, i) => ({
      label: `${n} [${state.channels.get(n).meta.unit}]`, stroke: palette[i % palette.length], width: 1.25,
      spanGaps: true, points: { show: false },
    })));
    const width = Math.max(300, (plots.clientWidth || 800) - 12);
    g.plot = new uPlot({
      width, height: 220, series,
      scales: { x: { time: false } },
      axes: [{ label: "run time (s)" }, { label: units, size: 60 }],
      legend: { live: false },
    }, [[], ...g.names.map(() => [])], box);
    g.el = box;
  }
}

window.addEventListener("resize", () => {
  const w = Math.max(300, ($("#plots").clientWidth || 800) - 12);
  for (const g of state.groups.values()) if (g.plot) { g.plot.setSize({ width: w, height: 220 }); g.dirty = true; }
});

// ------------------------------------------------------------------ frames
function ingest(frame) {
  for (const [name, [ts, vs]] of Object.entries(frame.series || {})) {
    const ch = state.channels.get(name);
    if (!ch) continue;
    for (let i = 0; i < ts.length; i++) ch.ring.push(ts[i], vs[i]);
    state.groups.get(ch.meta.group).dirty = true;
  }
  for (const [name, [t, v, status]] of Object.entries(frame.latest || {})) {
    const ch = state.channels.get(name);
    if (!ch) continue;
    ch.row.children[1].textContent = fmtNum(v);
    const st = ch.row.children[3];
    st.textContent = status === "ok" ? "ok" : status;
    st.className = status === "ok" ? "status status-ok" : "status status-warn";
  }
  addEvents(frame.events || [], $("#events"));
  if (frame.status) applyStatus(frame.status);
}

function addEvents(events, list) {
  for (const ev of events) {
    const t = ev.t_s === null || ev.t_s === undefined ? (ev.t_utc || "").slice(11, 19) : `${ev.t_s.toFixed(1)} s`;
    list.prepend(el("li", { class: `sev-${ev.severity}`, title: ev.source },
      el("span", { class: "t", text: t }), el("span", { class: "k", text: ev.kind }), ev.message));
  }
  while (list.children.length > EVENTS_SHOWN) list.lastChild.remove();
}

function draw() {
  state.stats.rafs++;
  const t0 = performance.now();
  let newest = 0;
  for (const ch of state.channels.values()) newest = Math.max(newest, ch.ring.last() || 0);
  const from = state.windowS > 0 ? newest - state.windowS : -Infinity;
  let drew = false;
  for (const g of state.groups.values()) {
    if (!g.dirty || !g.plot || g.el.offsetParent === null) continue;
    g.dirty = false;
    const tables = g.names.map((n) => state.channels.get(n).ring.since(from));
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    g.plot.setData(data);
    drew = true;
  }
  if (drew) { state.stats.draws++; state.stats.drawMs += performance.now() - t0; }
  requestAnimationFrame(draw);
}

// ------------------------------------------------------------------ status
function applyStatus(s) {
  state.status = s;
  const badge = $("#state-badge");
  badge.dataset.state = s.state;
  badge.textContent = s.state.replace("_", " ");
  $("#run-id").textContent = s.run_id || "";
  $("#elapsed").textContent = s.elapsed_s === null || s.elapsed_s === undefined ? "–" : fmtDur(s.elapsed_s);
  $("#rows").textContent = s.rows === null || s.rows === undefined ? "–" : s.rows.toLocaleString();
  $("#step").textContent = s.step || "–";
  const info = s.step_info, prog = $("#step-progress");
  if (info && info.duration_s && info.in_step_s !== null) {
    prog.hidden = false; prog.max = info.duration_s; prog.value = Math.min(info.in_step_s, info.duration_s);
    $("#step-left").textContent = `${fmtDur(info.left_s)} left`;
  } else {
    prog.hidden = true;
    $("#step-left").textContent = info && info.in_step_s !== null ? `${fmtDur(info.in_step_s)} in step` : "";
  }
  const readOnly = state.meta && state.meta.read_only;
  $("#start-btn").disabled = s.busy || !(state.meta && state.meta.procedure) || readOnly;
  $("#stop-btn").disabled = !(s.busy || (readOnly && !["sealed", "failed"].includes(s.state)));
  $("#force-btn").hidden = !s.force_available || readOnly;
  $("#connect-btn").disabled = s.busy || s.pool_open || !(state.meta && state.meta.procedure);
  $("#disconnect-btn").disabled = s.busy || !s.pool_open;
  $("#handshake-btn").disabled = s.busy || s.pool_open || !(state.meta && state.meta.devices.length);
  const h = s.health || {};
  $("#h-saturation").textContent = `${h.saturation_pct ?? 0} %`;
  $("#h-loop-lag").textContent = `${h.loop_lag_ms ?? 0} ms (max ${h.loop_lag_max_ms ?? 0})`;
  $("#h-queue").textContent = `${h.queue_depth ?? 0} / ${h.queue_capacity ?? 0} (high ${h.queue_high_water ?? 0})`;
  $("#h-dropped").textContent = String(h.dropped_rows ?? 0);
  $("#h-device-errors").textContent = String(h.device_errors ?? 0);
  $("#h-reconnects").textContent = String(h.reconnects ?? 0);
  $("#h-display").textContent = `${h.display_dropped ?? 0} batches, ${h.display_events_dropped ?? 0} events, ${h.frames_dropped ?? 0} frames`;
  $("#h-bundle").textContent = s.bundle || "–";
  for (const li of document.querySelectorAll("#steps li")) {
    li.classList.toggle("current", !!info && Number(li.dataset.index) === info.index && s.busy);
  }
  if (s.result && !s.busy && state.lastResult !== s.result.run_id + s.result.run_status) {
    state.lastResult = s.result.run_id + s.result.run_status;
    const r = s.result;
    const kind = r.exit_code === 0 ? "ok" : r.exit_code === 1 ? "" : "err";
    message(`run ${r.run_id || "(none)"}: ${r.run_status}, bundle ${r.bundle_status}, integrity ${r.integrity_status}` +
      (r.exit_reason ? ` — ${r.exit_reason}` : ""), kind);
  }
  if (s.last_error) message(s.last_error, "err");
  handlePrompt(s.prompt);
}

function handlePrompt(p) {
  const d = $("#prompt-dialog");
  if (!p) {
    $("#prompt-reopen").hidden = true;
    if (d.open) d.close("gone");
    state.promptShownFor = null;
    return;
  }
  const key = `${p.run_id}:${p.step}`;
  $("#prompt-reopen").hidden = d.open;
  if (state.promptShownFor === key) return;  // already shown (or put off with "Later")
  state.promptShownFor = key;
  state.prompt = p;
  $("#prompt-title").textContent = p.title;
  $("#prompt-message").textContent = p.message;
  $("#prompt-cmd").textContent = p.ack_command;
  $("#prompt-error").textContent = "";
  if (!d.open) d.showModal();
  $("#prompt-reopen").hidden = true;
}
$("#prompt-reopen").addEventListener("click", () => {
  const d = $("#prompt-dialog");
  if (!d.open) d.showModal();
  $("#prompt-reopen").hidden = true;
});

// ------------------------------------------------------------------ stream
function connect() {
  const es = new EventSource("/api/stream");
  es.onopen = () => $("#conn").classList.add("live");
  es.onerror = () => $("#conn").classList.remove("live");  // EventSource reconnects itself
  es.onmessage = (e) => {
    const t0 = performance.now();
    const msg = JSON.parse(e.data);
    state.stats.frames++;
    state.stats.lastFrameAt = performance.now();
    if (msg.type === "snapshot") {
      applyMeta(msg.meta);
      ingest(msg);
    } else if (msg.type === "frame") {
      ingest(msg);
    } else if (msg.type === "error") {
      message(`console: ${msg.error}`, "err");
    }
    state.stats.ingestMs += performance.now() - t0;
  };
  state.es = es;
}

// ------------------------------------------------------------------ run actions
$("#start-btn").addEventListener("click", async () => {
  try {
    message("");
    state.lastResult = null;
    for (const ch of state.channels.values()) ch.ring.clear();
    $("#events").replaceChildren();
    await api("/api/run/start", {});
  } catch (e) { message(e.message, "err"); }
});
$("#stop-btn").addEventListener("click", async () => {
  try { await api("/api/run/stop", {}); message("stop requested: the run drains and seals its bundle"); }
  catch (e) { message(e.message, "err"); }
});
$("#force-btn").addEventListener("click", async () => {
  const ok = await confirmDialog("Force stop: cancel the run now instead of waiting for it to wind down. " +
    "What reached disk is sealed as aborted. Continue?");
  if (!ok) return;
  try { await api("/api/run/force", { confirm: true }); message("force stop requested", "err"); }
  catch (e) { message(e.message, "err"); }
});
$("#window").addEventListener("change", (e) => {
  state.windowS = Number(e.target.value);
  for (const g of state.groups.values()) g.dirty = true;
});
$("#quit-btn").addEventListener("click", async () => {
  const busy = state.status && state.status.busy;
  const ok = await confirmDialog(busy ? "Quit the console? The run in progress is stopped and sealed first." : "Quit the console?");
  if (!ok) return;
  try { await api("/api/quit", {}); if (state.es) state.es.close(); document.body.replaceChildren(el("p", { class: "card", text: "The console was closed. You can close this tab." })); }
  catch (e) { message(e.message, "err"); }
});

$("#prompt-form").addEventListener("submit", async (e) => {
  const submitter = e.submitter;
  if (!submitter || submitter.value !== "ack") return;  // "Later": the dialog just closes
  e.preventDefault();
  const p = state.prompt;
  try {
    await api("/api/prompt/ack", { step: p.step, by: $("#prompt-by").value });
    $("#prompt-dialog").close("ack");
  } catch (err) { $("#prompt-error").textContent = err.message; }
});

// ------------------------------------------------------------------ manual commands
$("#manual-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const device = $("#manual-device").value, command = $("#manual-command").value.trim();
  let args;
  try { args = JSON.parse($("#manual-args").value || "{}"); }
  catch (err) { $("#manual-result").textContent = `args: not JSON (${err.message})`; return; }
  const by = $("#manual-by").value.trim();
  const route = state.status && state.status.busy ? "through the run (recorded as an event)" : "directly to the device (between runs)";
  const ok = await confirmDialog(`Send ${command} ${JSON.stringify(args)} to ${device} ${route}, confirmed by ${by || "?"}?`);
  if (!ok) return;
  try {
    const r = await api("/api/command", { device, command, args, confirmed_by: by, confirm: true });
    $("#manual-result").textContent = `${r.accepted ? "accepted" : "refused"} via ${r.via}${r.detail ? ": " + r.detail : ""}`;
  } catch (err) { $("#manual-result").textContent = err.message; }
});

// ------------------------------------------------------------------ setup
function renderSetup(meta) {
  if (meta.config) $("#config-path").value = meta.config;
  const errors = meta.problems.filter((p) => p.severity === "error").length;
  $("#config-summary").textContent = meta.config
    ? `${meta.config}: ${errors ? errors + " error(s)" : "valid"}${meta.rig ? ` — rig ${meta.rig}, ${meta.channels.length} channels, procedure ${meta.procedure}` : ""}${meta.production ? " (production mode)" : ""}`
    : "No experiment open.";
  $("#problems").replaceChildren(...meta.problems.map((p) => el("li", { class: p.severity, text: p.text })));
  $("#devices tbody").replaceChildren(...meta.devices.map((d) => el("tr", { "data-device": d.name },
    el("td", { text: d.name }), el("td", { text: d.adapter }), el("td", { text: d.resource_id }),
    el("td", { class: "handshake", text: "" }))));
  $("#steps").replaceChildren(...meta.steps.map((s) => el("li", { "data-index": String(s.index) },
    `${s.kind} `, el("span", { class: "muted", text: summarizeStep(s) }))));
  const dev = $("#manual-device");
  dev.replaceChildren(...meta.devices.map((d) => el("option", { value: d.name, text: d.name })));
  const cmds = new Set(["write"]);
  for (const d of meta.devices) {
    if (d.capabilities.includes("has_tare")) { cmds.add("tare"); cmds.add("zero"); }
    if (d.capabilities.includes("has_setpoint")) cmds.add("set_setpoint");
  }
  $("#manual-commands").replaceChildren(...[...cmds].map((c) => el("option", { value: c })));
}

function summarizeStep(s) {
  const c = s.config || {};
  const parts = [];
  for (const k of ["title", "target", "value", "end_value", "rate_per_second", "duration_s", "timeout_s"]) {
    if (c[k] !== undefined && c[k] !== null) parts.push(`${k}=${typeof c[k] === "object" ? JSON.stringify(c[k]) : c[k]}`);
  }
  if (c.end_condition) parts.push(`until ${c.end_condition.channel} ${c.end_condition.op} ${c.end_condition.value}`);
  return parts.join(" ");
}

$("#config-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const r = await api("/api/config", { path: $("#config-path").value });
    applyMeta(r.meta);
  } catch (err) { $("#config-summary").textContent = err.message; }
});
$("#handshake-btn").addEventListener("click", async () => {
  $("#handshake-btn").disabled = true;
  for (const td of document.querySelectorAll("#devices td.handshake")) td.textContent = "…";
  try {
    const r = await api("/api/handshake", {});
    for (const d of r.devices) {
      const td = document.querySelector(`#devices tr[data-device="${CSS.escape(d.device)}"] td.handshake`);
      if (!td) continue;
      const ident = Object.entries(d.identity).map(([k, v]) => `${k}=${v}`).join(" ");
      td.textContent = d.ok ? `ok ${ident || d.detail}` : `error: ${d.detail}`;
      td.className = `handshake ${d.ok ? "status-ok" : "status-err"}`;
    }
  } catch (err) { $("#config-summary").textContent = err.message; }
  finally { $("#handshake-btn").disabled = false; }
});
$("#connect-btn").addEventListener("click", async () => {
  try { await api("/api/connect", {}); } catch (err) { $("#config-summary").textContent = err.message; }
});
$("#disconnect-btn").addEventListener("click", async () => {
  try { await api("/api/disconnect", {}); } catch (err) { $("#config-summary").textContent = err.message; }
});

// ------------------------------------------------------------------ review
async function loadRuns() {
  const q = new URLSearchParams({
    status: $("#f-status").value, operator: $("#f-operator").value, sample: $("#f-sample").value,
    tag: $("#f-tag").value, since: $("#f-since").value,
  });
  try {
    const r = await api(`/api/review/runs?${q}`);
    $("#runs-table tbody").replaceChildren(...r.runs.map((run) => {
      const tr = el("tr", { "data-run": run.run_id },
        el("td", { text: run.run_id }), el("td", { text: (run.started_utc || "").slice(0, 19) }),
        el("td", { text: run.run_status }), el("td", { text: run.bundle_status }),
        el("td", { text: run.integrity_status }), el("td", { text: run.operator || "" }),
        el("td", { text: run.sample || "" }), el("td", { text: run.procedure_id || "" }));
      tr.addEventListener("click", () => openRun(run.run_id).catch((err) => {
        $("#detail-title").textContent = `${run.run_id}: ${err.message}`;
      }));
      return tr;
    }));
  } catch (err) { $("#runs-table tbody").replaceChildren(el("tr", {}, el("td", { text: err.message }))); }
}
$("#review-filters").addEventListener("submit", (e) => { e.preventDefault(); loadRuns(); });

async function openRun(runId) {
  const box = $("#run-detail");
  box.hidden = false;
  box.dataset.run = runId;
  $("#detail-title").textContent = runId;
  $("#verify-result").textContent = "";
  const d = await api(`/api/review/run/${encodeURIComponent(runId)}`);
  const m = d.manifest;
  const rows = [
    ["run status", m.run_status], ["bundle status", m.bundle_status],
    ["integrity", m.integrity ? m.integrity.status : ""], ["exit reason", m.exit_reason || ""],
    ["started", m.started_utc], ["ended", m.ended_utc || ""],
    ["operator", m.operator ? m.operator.id : ""], ["sample", m.sample ? m.sample.id : ""],
    ["procedure", m.procedure ? `${m.procedure.id} ${m.procedure.version || ""}` : ""],
    ["tags", (m.tags || []).join(", ")], ["bundle", d.bundle],
  ];
  $("#run-summary").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v ?? "") })]));
  const end = d.events.reduce((m, e) => Math.max(m, e.t_s), 1e-9);
  $("#timeline").replaceChildren(...d.timeline.map((s) => {
    const left = (100 * s.start_s) / end, width = Math.max(0.5, (100 * ((s.end_s ?? end) - s.start_s)) / end);
    return el("div", { class: "bar" }, el("span", {
      class: s.outcome, style: `left:${left}%;width:${width}%`, title: `${s.label} (${s.outcome})`,
      text: `${s.label}`,
    }));
  }));
  $("#video").replaceChildren(...(d.video.length ? d.video.map((v) => el("p", {
    text: `${v.camera}: ${v.frames} frames, ${fmtNum(v.first_s)}–${fmtNum(v.last_s)} s, files ${v.files.join(", ")}; ` +
      `index: ${v.index.slice(0, 12).map(([i, t]) => `#${i}@${t.toFixed(2)}s`).join(" ")}${v.index.length > 12 ? " …" : ""}`,
  })) : [el("p", { class: "muted", text: "no video recorded" })]));
  const list = $("#review-events"); list.replaceChildren();
  addEvents(d.events, list);
  const data = await api(`/api/review/run/${encodeURIComponent(runId)}/data`);
  const plots = $("#review-plots");
  if (state.reviewPlots) for (const p of state.reviewPlots) p.destroy();
  state.reviewPlots = [];
  plots.replaceChildren();
  for (const [name, s] of Object.entries(data.series)) {
    const box = el("div", { class: "plot", "data-channel": name }, el("h4", { text: `${name} [${s.unit}] — ${s.rows} rows` }));
    plots.append(box);
    state.reviewPlots.push(new uPlot({
      width: 420, height: 180, scales: { x: { time: false } },
      series: [{ label: "t (s)" }, { label: name, stroke: "#1d4ed8", width: 1, points: { show: false } }],
      axes: [{}, { label: s.unit, size: 55 }], legend: { live: false },
    }, [s.t, s.v], box));
  }
}
$("#verify-btn").addEventListener("click", async () => {
  const runId = $("#run-detail").dataset.run;
  $("#verify-result").textContent = "verifying…";
  try {
    const r = await api("/api/review/verify", { run_id: runId });
    $("#verify-result").textContent = r.ok ? `ok (${r.checked} files)` : r.describe;
    $("#verify-result").className = r.ok ? "status-ok" : "status-err";
  } catch (err) { $("#verify-result").textContent = err.message; }
});

// ------------------------------------------------------------------ start
for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showPage(b.dataset.page));
connect();
requestAnimationFrame(draw);
