// Sluice dashboard: polls the job's REST API every second and draws it.
// Hand-written, no dependencies. The page keeps only what the API does not:
// the consumer lag history per partition, for its chart.
"use strict";

(function () {
  const POLL_MS = 1000;
  const LAG_WINDOW_MS = 5 * 60 * 1000; // lag chart: the last five minutes
  const LAG_SAMPLES = 600;
  const CHART_CHECKPOINTS = 32;
  const RATE_SAMPLES = 60;
  const TOKEN_KEY = "sluice.token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2f5fd0", "#d0602f", "#2e9d5b", "#7b45c9", "#c8312f", "#0f8b8d", "#b38600", "#d04f9a", "#5a6b8c", "#6aa92a"];

  const state = {
    jobId: null,
    job: null,
    checkpoints: null,
    lag: new Map(), // split key → {label, color, samples: [{t, lag}]}
    rates: new Map(), // vertex id → [{in, out}], the last RATE_SAMPLES polls
    selectedCheckpoint: null,
    selectedStatus: null,
    busy: false,
    running: false,
    pending: null, // the action waiting for a token
    stopArmedUntil: 0,
  };

  // ---------- small helpers ----------

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function sv(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function setAttrs(e, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "class") e.setAttribute("class", v);
      else e.setAttribute(k, String(v));
    }
  }

  function append(e, children) {
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
  }

  function replaceChildren(e, ...children) {
    while (e.firstChild) e.removeChild(e.firstChild);
    append(e, children);
  }

  // first returns the first of o's keys that is set.
  function first(o, ...keys) {
    if (!o) return undefined;
    for (const k of keys) {
      if (o[k] !== undefined && o[k] !== null) return o[k];
    }
    return undefined;
  }

  const num = (v) => (typeof v === "number" && isFinite(v) ? v : undefined);

  function fmtInt(v) {
    v = num(v);
    return v === undefined ? "–" : Math.round(v).toLocaleString("en-US");
  }

  function fmtRate(v) {
    v = num(v);
    if (v === undefined) return "–";
    if (v < 10) return v.toFixed(1);
    return Math.round(v).toLocaleString("en-US");
  }

  function fmtPct(r) {
    r = num(r);
    return r === undefined ? "–" : (r * 100).toFixed(r >= 0.995 || r === 0 ? 0 : 1) + " %";
  }

  function fmtBytes(v) {
    v = num(v);
    if (v === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)) + " " + units[i];
  }

  function fmtMs(ms) {
    ms = num(ms);
    if (ms === undefined) return "–";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
    return fmtLong(ms);
  }

  function fmtLong(ms) {
    ms = num(ms);
    if (ms === undefined) return "–";
    let s = Math.floor(ms / 1000);
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const p = (n) => String(n).padStart(2, "0");
    if (h > 0) return `${h}h ${p(m)}m ${p(s)}s`;
    if (m > 0) return `${m}m ${p(s)}s`;
    return `${s}s`;
  }

  // MAX_DATE_MS is the largest time a JavaScript Date holds; a watermark
  // beyond it (the engine's "none yet", math.MinInt64) is shown as none.
  const MAX_DATE_MS = 8.64e15;

  // toMs reads a time: unix milliseconds or an RFC 3339 string.
  function toMs(v) {
    let t;
    if (typeof v === "number") t = v;
    else if (typeof v === "string" && v !== "") t = Date.parse(v);
    return typeof t === "number" && isFinite(t) && Math.abs(t) <= MAX_DATE_MS ? t : undefined;
  }

  function fmtTime(v) {
    const t = toMs(v);
    if (t === undefined || t <= 0) return "–";
    return new Date(t).toISOString().slice(11, 19) + "Z";
  }

  function fmtWatermark(v) {
    if (typeof v === "number" && v >= MAX_DATE_MS) return "final"; // watermark.Final: the input ended
    const t = toMs(v);
    if (t === undefined || t <= 0) return "–";
    return new Date(t).toISOString().slice(11, 23) + "Z";
  }

  function fullTime(v) {
    const t = toMs(v);
    return t === undefined || t <= 0 ? "" : new Date(t).toISOString();
  }

  // durMs reads a duration field: NAMEMs (the API's convention) or NAME in
  // Go's nanoseconds.
  function durMs(o, ...names) {
    for (const n of names) {
      const ms = num(first(o, n + "Ms"));
      if (ms !== undefined) return ms;
    }
    for (const n of names) {
      const ns = num(first(o, n));
      if (ns !== undefined) return ns / 1e6;
    }
    return undefined;
  }

  function truncate(s, n) {
    s = String(s || "");
    return s.length > n ? s.slice(0, n - 1) + "…" : s;
  }

  // truncateLeft keeps the end of a long name (a Kafka split's partition).
  function truncateLeft(s, n) {
    s = String(s || "");
    return s.length > n ? "…" + s.slice(s.length - n + 1) : s;
  }

  function levelOf(v) {
    const l = first(v, "backpressureLevel");
    if (l === "OK" || l === "LOW" || l === "HIGH") return l;
    const r = num(first(v, "backpressuredRatio")) || 0;
    return r >= 0.3 ? "HIGH" : r >= 0.1 ? "LOW" : "OK";
  }

  // ---------- API ----------

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body, timeoutMs) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs || 5000);
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token && method !== "GET") headers["Authorization"] = "Bearer " + token;
    try {
      const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: ctl.signal, cache: "no-store" });
      const text = await resp.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
      if (!resp.ok) throw new APIError(resp.status, (data && data.error) || text.trim() || resp.statusText);
      return data;
    } finally {
      clearTimeout(timer);
    }
  }

  const jobPath = (suffix) => "/api/v1/jobs/" + encodeURIComponent(state.jobId) + (suffix || "");

  async function pickJob() {
    const list = await api("GET", "/api/v1/jobs");
    const jobs = (list && list.jobs) || [];
    const want = new URLSearchParams(location.search).get("job");
    let j = jobs.find((x) => x.id === want);
    if (!j) j = jobs.find((x) => x.status === "RUNNING") || jobs[0];
    if (!j) return null;
    if (j.id !== state.jobId) {
      state.lag.clear();
      state.rates.clear();
      state.selectedCheckpoint = null;
    }
    return j.id;
  }

  async function poll() {
    try {
      if (!state.jobId) state.jobId = await pickJob();
      if (!state.jobId) {
        setConn("error", "no job");
      } else {
        const [job, ck, ex] = await Promise.all([
          api("GET", jobPath()),
          api("GET", jobPath("/checkpoints")).catch(() => null),
          api("GET", jobPath("/exceptions")).catch(() => null),
        ]);
        state.job = job;
        state.checkpoints = ck;
        const failed = render(job, ck, ex);
        setConn(failed.length ? "error" : "live", failed.length ? "could not draw " + failed.join(", ") : "live");
        $("updated").textContent = "Updated " + new Date().toISOString().slice(11, 19) + "Z.";
      }
    } catch (e) {
      if (e instanceof APIError && e.status === 404) state.jobId = null; // the job is gone: look again
      setConn("error", "API unreachable: " + (e.message || e));
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  function setConn(s, text) {
    const c = $("conn");
    c.dataset.state = s;
    c.textContent = text;
  }

  // ---------- rendering ----------

  // render draws every part; a part that fails (an answer the page does
  // not expect) is logged and leaves the others drawn.
  function render(job, ck, ex) {
    const vertices = job.vertices || [];
    const parts = [
      ["summary", () => renderSummary(job, ck)],
      ["graph", () => renderGraph(vertices, job.edges || [])],
      ["tasks", () => renderTasks(vertices)],
      ["checkpoints", () => renderCheckpoints(ck)],
      ["lag", () => renderLag(job.sources || [])],
      ["exceptions", () => renderExceptions(ex, job)],
    ];
    const failed = [];
    for (const [name, draw] of parts) {
      try {
        draw();
      } catch (e) {
        failed.push(name);
        console.error("dashboard: drawing " + name + ": " + (e && e.stack ? e.stack : e));
      }
    }
    return failed;
  }

  function renderSummary(job, ck) {
    $("job-name").textContent = first(job, "name") || state.jobId;
    const st = $("job-status");
    st.textContent = first(job, "status") || "?";
    st.dataset.status = first(job, "status") || "";
    // Savepoints and stops are for a running job only.
    state.running = first(job, "status") === "RUNNING";
    enableButtons();
    let up = num(first(job, "uptimeMs"));
    if (up === undefined && toMs(job.startedAt)) up = Date.now() - toMs(job.startedAt);
    $("uptime").textContent = fmtLong(up);
    $("restarts").textContent = fmtInt(first(job, "restarts"));
    const by = first(job, "restartsByCause") || {};
    $("restarts-by-cause").textContent = Object.entries(by).filter(([, n]) => n > 0).map(([c, n]) => `${c} ${n}`).join(", ");
    const rec = durMs(job, "lastRecovery");
    $("last-recovery").textContent = rec ? fmtMs(rec) : "–";
    const counts = countsOf(job, ck);
    $("checkpoints-completed").textContent = fmtInt(counts.completed);
    $("checkpoints-failed").textContent = fmtInt(counts.failed);
    $("checkpoints-in-progress").textContent = fmtInt(counts.inProgress);
    const lags = (job.sources || []).map((s) => num(first(s, "recordsLagMax"))).filter((x) => x !== undefined && x >= 0);
    $("lag-max").textContent = lags.length ? fmtInt(Math.max(...lags)) : "–";
  }

  function countsOf(job, ck) {
    const c = Object.assign({}, (ck && (ck.counts || ck)) || {});
    const jc = first(job, "checkpoints", "checkpointCounts") || {};
    const pickN = (...ks) => num(first(c, ...ks)) ?? num(first(jc, ...ks)) ?? num(first(job, ...ks.map((k) => "checkpoints" + k[0].toUpperCase() + k.slice(1))));
    return {
      completed: pickN("completed"),
      failed: pickN("failed"),
      inProgress: pickN("inProgress"),
    };
  }

  // layout places the vertices in columns by their depth from the sources
  // (longest path over the edges) and, within a column, in plan order.
  function layout(vertices, edges) {
    const idx = new Map(vertices.map((v, i) => [v.id, i]));
    const depth = vertices.map(() => 0);
    for (let round = 0; round < vertices.length; round++) {
      let changed = false;
      for (const e of edges) {
        const a = idx.get(e.from), b = idx.get(e.to);
        if (a === undefined || b === undefined || a === b) continue;
        if (depth[b] < depth[a] + 1 && depth[a] + 1 < vertices.length) { depth[b] = depth[a] + 1; changed = true; }
      }
      if (!changed) break;
    }
    const rows = new Map();
    return vertices.map((v, i) => {
      const col = depth[i];
      const row = rows.get(col) || 0;
      rows.set(col, row + 1);
      return { col, row };
    });
  }

  const BOX_W = 230, BOX_H = 112, GAP_X = 120, GAP_Y = 26, PAD = 14;

  function renderGraph(vertices, edges) {
    const svg = $("graph-svg");
    const pos = layout(vertices, edges);
    const cols = Math.max(1, ...pos.map((p) => p.col + 1));
    const rows = Math.max(1, ...pos.map((p) => p.row + 1));
    const w = PAD * 2 + cols * BOX_W + (cols - 1) * GAP_X;
    const h = PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y;
    svg.setAttribute("width", w);
    svg.setAttribute("height", h);
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    const at = (i) => ({ x: PAD + pos[i].col * (BOX_W + GAP_X), y: PAD + pos[i].row * (BOX_H + GAP_Y) });
    const idx = new Map(vertices.map((v, i) => [v.id, i]));

    const defs = sv("defs", null,
      sv("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        sv("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8891a5" })));
    const edgeEls = [];
    edges.forEach((e, n) => {
      const a = idx.get(e.from), b = idx.get(e.to);
      if (a === undefined || b === undefined) return;
      const p = at(a), q = at(b);
      const x1 = p.x + BOX_W, y1 = p.y + BOX_H / 2, x2 = q.x - 2, y2 = q.y + BOX_H / 2;
      const mx = (x1 + x2) / 2;
      const fill = num(first(e, "queueFill"));
      const label = (first(e, "partitioning") || "") + (fill !== undefined ? " " + Math.round(fill * 100) + "%" : "");
      edgeEls.push(sv("g", { class: "edge", "data-from": e.from, "data-to": e.to, "data-partitioning": first(e, "partitioning") || "" },
        sv("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }),
        sv("text", { x: mx, y: (y1 + y2) / 2 - 6, "text-anchor": "middle", text: label },
          sv("title", { text: `${e.from} → ${e.to}: ${first(e, "partitioning") || "?"}, queue fill ${fmtPct(fill)}` }))));
    });

    const boxes = vertices.map((v, i) => {
      const { x, y } = at(i);
      const level = levelOf(v);
      const bp = num(first(v, "backpressuredRatio")) || 0;
      const ops = first(v, "operators") || [];
      const inRate = num(first(v, "recordsInRate"));
      const outRate = num(first(v, "recordsOutRate"));
      const wm = first(v, "watermark");
      return sv("g", {
        class: "vertex", id: "vertex-" + i, transform: `translate(${x},${y})`,
        "data-vertex-id": v.id, "data-name": v.name, "data-level": level,
        "data-backpressured": bp, "data-in-rate": inRate ?? "", "data-out-rate": outRate ?? "",
      },
      sv("title", { text: `${v.name} (${v.id})\n${ops.join(" → ")}\nbusy ${fmtPct(v.busyRatio)}, backpressured ${fmtPct(bp)}, idle ${fmtPct(v.idleRatio)}` }),
      sv("rect", { class: "box", x: 0, y: 0, width: BOX_W, height: BOX_H, rx: 6 }),
      sv("text", { class: "title", x: 10, y: 18, text: truncate(v.name, 28) }),
      sv("text", { class: "ops", x: 10, y: 33, text: truncate(ops.length > 1 ? ops.join(" → ") : "parallelism " + fmtInt(v.parallelism), 36) }),
      sv("text", { x: 10, y: 52, "data-field": "rates", text: `in ${fmtRate(inRate)}/s  out ${fmtRate(outRate)}/s` }),
      sv("text", { class: "small", x: 10, y: 68, text: `busy ${fmtPct(v.busyRatio)} · idle ${fmtPct(v.idleRatio)}` + (ops.length > 1 ? ` · p${fmtInt(v.parallelism)}` : "") }),
      sv("text", { class: "small", x: 10, y: 83, text: fmtWatermark(wm) !== "–" ? "watermark " + fmtWatermark(wm) : "no watermark" }),
      sv("rect", { class: "bp-track", x: 10, y: 92, width: 120, height: 9, rx: 2 }),
      sv("rect", { class: "bp-bar", x: 10, y: 92, width: Math.max(0, Math.min(1, bp)) * 120, height: 9, rx: 2 }),
      sv("text", { class: "lvl", x: 138, y: 101, "data-field": "level", text: `${level} ${fmtPct(bp)}` }));
    });
    replaceChildren(svg, defs, edgeEls, boxes);
  }

  // sparkline draws the recent records in (blue) and out (grey) per second
  // of a task, kept by the page since it was opened.
  function sparkline(samples) {
    const W = 90, H = 18;
    const max = Math.max(1, ...samples.map((p) => Math.max(p.in, p.out)));
    const line = (k) => samples.map((p, i) => `${(W - (samples.length - 1 - i) * (W / (RATE_SAMPLES - 1))).toFixed(1)},${(H - 1 - (p[k] / max) * (H - 2)).toFixed(1)}`).join(" ");
    return sv("svg", { class: "spark", width: W, height: H, viewBox: `0 0 ${W} ${H}` },
      sv("polyline", { class: "spark-out", points: line("out") }),
      sv("polyline", { class: "spark-in", points: line("in") }));
  }

  function renderTasks(vertices) {
    const tb = $("tasks-table").tBodies[0];
    const seen = new Set();
    for (const v of vertices) {
      seen.add(v.id);
      const h = state.rates.get(v.id) || [];
      h.push({ in: num(v.recordsInRate) || 0, out: num(v.recordsOutRate) || 0 });
      while (h.length > RATE_SAMPLES) h.shift();
      state.rates.set(v.id, h);
    }
    for (const k of [...state.rates.keys()]) if (!seen.has(k)) state.rates.delete(k);
    replaceChildren(tb, vertices.map((v) => {
      const level = levelOf(v);
      return el("tr", { "data-vertex-id": v.id, "data-level": level },
        el("td", { title: (v.operators || []).join(" → "), text: v.name }),
        el("td", { text: fmtInt(v.parallelism) }),
        el("td", { "data-field": "in-rate", text: fmtRate(v.recordsInRate) }),
        el("td", { "data-field": "out-rate", text: fmtRate(v.recordsOutRate) }),
        el("td", { class: "trend" }, sparkline(state.rates.get(v.id) || [])),
        el("td", { "data-field": "in-total", text: fmtInt(v.recordsInTotal) }),
        el("td", { "data-field": "out-total", text: fmtInt(v.recordsOutTotal) }),
        el("td", { text: fmtPct(v.busyRatio) }),
        el("td", { "data-field": "backpressured", text: fmtPct(v.backpressuredRatio) }),
        el("td", { text: fmtPct(v.idleRatio) }),
        el("td", { class: "lvl-" + level, "data-field": "level", text: level }),
        el("td", { text: fmtPct(v.inputQueueFill) }),
        el("td", { text: fmtPct(v.outputQueueFill) }),
        el("td", { "data-field": "watermark", "data-ms": v.watermark ?? "", title: fullTime(v.watermark), text: fmtWatermark(v.watermark) }),
        el("td", { text: fmtInt(first(v, "lateRecords")) }),
        el("td", { text: fmtBytes(v.stateBytes) }));
    }));
  }

  function history(ck) {
    const h = (ck && (ck.history || ck.checkpoints)) || [];
    return h.slice().sort((a, b) => a.id - b.id);
  }

  function ckSize(c) {
    return num(first(c, "fullBytes")) || num(first(c, "bytes", "stateSize"));
  }

  function renderCheckpoints(ck) {
    const hist = history(ck);
    renderCheckpointChart(hist.slice(-CHART_CHECKPOINTS));
    const tb = $("checkpoint-table").tBodies[0];
    replaceChildren(tb, hist.slice().reverse().map((c) => {
      const kind = first(c, "kind") || "checkpoint";
      const sync = durMs(c, "maxSync", "maxSyncDuration", "sync");
      const async = durMs(c, "maxAsync", "maxAsyncDuration", "async");
      const tr = el("tr", { "data-checkpoint-id": c.id, "data-kind": kind, "data-status": c.status, class: c.id === state.selectedCheckpoint ? "selected" : null,
        title: first(c, "failureReason") || "" },
      el("td", { text: c.id }),
      el("td", { class: "kind", title: c.stop ? kind + " that stopped the job" : kind, text: kind }, c.stop ? el("span", { class: "stop-mark", text: "stop" }) : null),
      el("td", { class: "status", text: c.status }),
      el("td", { title: fullTime(c.triggeredAt), text: fmtTime(c.triggeredAt) }),
      el("td", { "data-field": "duration", text: fmtMs(durMs(c, "duration")) }),
      el("td", { text: fmtBytes(ckSize(c)) }),
      el("td", { text: fmtBytes(num(first(c, "incrementalBytes"))) }),
      el("td", { text: fmtMs(durMs(c, "maxAlignment", "alignment")) }),
      el("td", { text: fmtMs(sync) + " / " + fmtMs(async) }),
      el("td", { text: (first(c, "acked") ?? "?") + "/" + (first(c, "total") ?? "?") }));
      return tr;
    }));
    if (state.selectedCheckpoint !== null) {
      const sel = hist.find((c) => c.id === state.selectedCheckpoint);
      if (sel && sel.status !== state.selectedStatus) loadCheckpointDetail(sel.id);
    }
  }

  function renderCheckpointChart(hist) {
    const svg = $("checkpoint-chart");
    const W = Math.max(svg.clientWidth || 560, 200), H = 170;
    const left = 48, right = 8, top = 10, bottom = 22;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const durs = hist.map((c) => durMs(c, "duration") || 0);
    const max = niceMax(Math.max(1, ...durs));
    const plotW = W - left - right, plotH = H - top - bottom;
    const slot = plotW / Math.max(hist.length, 8);
    const els = [];
    for (let g = 0; g <= 4; g++) {
      const y = top + plotH - (plotH * g) / 4;
      els.push(sv("line", { class: "grid-line", x1: left, x2: W - right, y1: y, y2: y }));
      els.push(sv("text", { x: left - 4, y: y + 3, "text-anchor": "end", text: fmtMs((max * g) / 4) }));
    }
    els.push(sv("line", { class: "axis", x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }));
    const labelEvery = Math.ceil(hist.length / 12);
    hist.forEach((c, i) => {
      const d = durs[i];
      const bh = Math.max(1, (d / max) * plotH);
      const x = left + i * slot + slot * 0.15;
      const kind = first(c, "kind") || "checkpoint";
      els.push(sv("rect", {
        class: "bar" + (c.id === state.selectedCheckpoint ? " selected" : ""), x, y: top + plotH - bh, width: slot * 0.7, height: bh,
        "data-checkpoint-id": c.id, "data-status": c.status, "data-kind": kind,
      }, sv("title", { text: `${kind} ${c.id}: ${c.status}, ${fmtMs(d)}, ${fmtBytes(ckSize(c))}` })));
      if (i % labelEvery === 0) els.push(sv("text", { x: x + slot * 0.35, y: H - 8, "text-anchor": "middle", text: c.id }));
    });
    if (!hist.length) els.push(sv("text", { x: W / 2, y: H / 2, "text-anchor": "middle", text: "no checkpoint yet" }));
    replaceChildren(svg, els);
  }

  // niceMax is the top of a chart's scale for values up to v: four grid
  // steps of 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    const raw = v / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (raw <= m * p) return 4 * m * p;
    return 40 * p;
  }

  async function loadCheckpointDetail(cid) {
    state.selectedCheckpoint = cid;
    const box = $("checkpoint-detail");
    box.hidden = false;
    box.dataset.checkpointId = cid;
    try {
      const d = await api("GET", jobPath("/checkpoints/" + cid));
      const c = d.checkpoint || d;
      state.selectedStatus = c.status;
      const kind = first(c, "kind") || "checkpoint";
      $("checkpoint-detail-title").textContent = `${kind} ${cid}: ${c.status}, ${fmtMs(durMs(c, "duration"))}, ${fmtBytes(ckSize(c))}` +
        (first(c, "path", "externalPath") ? " — " + first(c, "path", "externalPath") : "") +
        (c.failureReason ? " — " + c.failureReason : "");
      const tasks = first(c, "tasks", "subtasks") || [];
      const names = new Map(((state.job && state.job.vertices) || []).map((v) => [v.id, v.name]));
      replaceChildren($("checkpoint-detail-table").tBodies[0], tasks.map((t) => {
        const vid = first(t, "vertex", "vertexId");
        return el("tr", { "data-vertex-id": vid, "data-subtask": t.subtask },
          el("td", { title: vid, text: names.get(vid) || vid }),
          el("td", { text: t.subtask }),
          el("td", { text: fmtMs(durMs(t, "duration")) }),
          el("td", { text: fmtBytes(num(first(t, "bytes", "stateSize"))) }),
          el("td", { text: fmtMs(durMs(t, "alignment")) }),
          el("td", { text: fmtMs(durMs(t, "sync", "syncDuration")) }),
          el("td", { text: fmtMs(durMs(t, "async", "asyncDuration")) }),
          el("td", { title: fullTime(t.ackedAt), text: fmtTime(t.ackedAt) }));
      }));
      if (!tasks.length) replaceChildren($("checkpoint-detail-table").tBodies[0], el("tr", null, el("td", { colspan: 8, class: "muted", text: "no subtask acked yet" })));
      box.dataset.loaded = "true";
    } catch (e) {
      $("checkpoint-detail-title").textContent = `checkpoint ${cid}: ${e.message}`;
      replaceChildren($("checkpoint-detail-table").tBodies[0]);
      state.selectedStatus = null;
    }
    for (const tr of $("checkpoint-table").tBodies[0].rows) tr.classList.toggle("selected", Number(tr.dataset.checkpointId) === cid);
  }

  function splitKey(src, sp) {
    const name = first(sp, "split") || `${first(sp, "topic")}/${first(sp, "partition")}`;
    return (first(src, "id", "vertex") || src.name) + "|" + name;
  }

  function renderLag(sources) {
    const now = Date.now();
    const rows = [];
    for (const src of sources) {
      for (const sp of src.splits || []) {
        const key = splitKey(src, sp);
        let s = state.lag.get(key);
        if (!s) {
          s = { label: first(sp, "split") || `${sp.topic}/${sp.partition}`, color: PALETTE[state.lag.size % PALETTE.length], samples: [] };
          state.lag.set(key, s);
        }
        const lag = num(sp.lag);
        if (lag !== undefined && lag >= 0) s.samples.push({ t: now, lag });
        while (s.samples.length > LAG_SAMPLES || (s.samples.length && s.samples[0].t < now - LAG_WINDOW_MS)) s.samples.shift();
        rows.push(el("tr", { "data-split": s.label, "data-source": src.name, "data-lag": lag ?? "" },
          el("td", null, swatch(s.color)),
          el("td", { text: src.name }),
          el("td", { title: s.label, text: truncateLeft(s.label, 28) }),
          el("td", { text: sp.subtask ?? "–" }),
          el("td", { text: fmtInt(sp.next) }),
          el("td", { text: num(sp.end) >= 0 ? fmtInt(sp.end) : "?" }),
          el("td", { "data-field": "lag", text: lag >= 0 ? fmtInt(lag) : "?" }),
          el("td", { title: fullTime(sp.watermark), text: fmtWatermark(sp.watermark) }),
          el("td", { text: sp.idle ? "idle" : "" })));
      }
    }
    replaceChildren($("lag-table").tBodies[0], rows);
    $("lag-empty").hidden = rows.length > 0;
    renderLagChart(now);
  }

  // swatch is set through the CSSOM: the page's policy refuses inline style
  // attributes.
  function swatch(color) {
    const e = el("span", { class: "swatch" });
    e.style.background = color;
    return e;
  }

  function renderLagChart(now) {
    const svg = $("lag-chart");
    const W = Math.max(svg.clientWidth || 560, 200), H = 170;
    const left = 56, right = 8, top = 10, bottom = 22;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const series = [...state.lag.values()].filter((s) => s.samples.length);
    let t0 = now;
    for (const s of series) t0 = Math.min(t0, s.samples[0].t);
    const span = Math.max(now - t0, 30000);
    const max = niceMax(Math.max(10, ...series.flatMap((s) => s.samples.map((p) => p.lag))));
    const plotW = W - left - right, plotH = H - top - bottom;
    const X = (t) => left + plotW * (1 - (now - t) / span);
    const Y = (v) => top + plotH - (v / max) * plotH;
    const els = [];
    for (let g = 0; g <= 4; g++) {
      const y = Y((max * g) / 4);
      els.push(sv("line", { class: "grid-line", x1: left, x2: W - right, y1: y, y2: y }));
      els.push(sv("text", { x: left - 4, y: y + 3, "text-anchor": "end", text: fmtInt((max * g) / 4) }));
    }
    els.push(sv("line", { class: "axis", x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }));
    els.push(sv("text", { x: left, y: H - 6, text: "-" + fmtLong(span) }));
    els.push(sv("text", { x: W - right, y: H - 6, "text-anchor": "end", text: "now" }));
    for (const s of series) {
      const pts = s.samples.map((p) => `${X(p.t).toFixed(1)},${Y(p.lag).toFixed(1)}`).join(" ");
      els.push(sv("polyline", { points: pts, stroke: s.color, "data-split": s.label }, sv("title", { text: `${s.label}: lag ${fmtInt(s.samples[s.samples.length - 1].lag)}` })));
    }
    if (!series.length) els.push(sv("text", { x: W / 2, y: H / 2, "text-anchor": "middle", text: "no lag reported" }));
    replaceChildren(svg, els);
  }

  function renderExceptions(ex, job) {
    const failure = (ex && ex.failure) || null;
    const restore = (ex && ex.restore) || null;
    const fBox = $("last-exception");
    fBox.dataset.present = failure ? "true" : "false";
    if (failure) {
      const where = first(failure, "vertex") ? `${failure.vertex}` + (num(failure.subtask) >= 0 ? ` #${failure.subtask}` : "") : "the job";
      replaceChildren(fBox, el("h3", { text: "Last failure" }),
        el("dl", { class: "kv" },
          el("dt", { text: "at" }), el("dd", { title: fullTime(failure.at), text: fullTime(failure.at) || "–" }),
          el("dt", { text: "where" }), el("dd", { text: where }),
          el("dt", { text: "cause" }), el("dd", { text: first(failure, "cause") || "–" }),
          el("dt", { text: "restarts" }), el("dd", { text: fmtInt(first(job, "restarts")) })),
        el("pre", { id: "last-exception-error", text: first(failure, "error", "message") || "" }));
    } else {
      replaceChildren(fBox, el("h3", { text: "Last failure" }), el("p", { class: "muted", text: "none" }));
    }
    const rBox = $("last-restore");
    rBox.dataset.present = restore ? "true" : "false";
    if (restore) {
      replaceChildren(rBox, el("h3", { text: "Last restore" }),
        el("dl", { class: "kv" },
          el("dt", { text: "at" }), el("dd", { text: fullTime(restore.at) || "–" }),
          el("dt", { text: "from" }), el("dd", { text: `${first(restore, "kind") || "checkpoint"} ${first(restore, "checkpointId", "checkpointID") ?? ""}` }),
          el("dt", { text: "path" }), el("dd", { text: first(restore, "path") || "–" }),
          el("dt", { text: "took" }), el("dd", { text: fmtMs(durMs(restore, "duration")) })));
    } else {
      replaceChildren(rBox, el("h3", { text: "Last restore" }), el("p", { class: "muted", text: "none" }));
    }
  }

  // ---------- actions ----------

  function showResult(ok, text) {
    const r = $("action-result");
    r.hidden = false;
    r.dataset.ok = ok ? "true" : "false";
    r.textContent = text;
  }

  async function act(kind) {
    if (state.busy || !state.jobId) return;
    state.busy = true;
    enableButtons();
    const drain = $("stop-drain").checked;
    const what = kind === "savepoint" ? "savepoint" : "stop with savepoint" + (drain ? " (drain)" : "");
    showResult(true, what + " in progress…");
    $("action-result").dataset.state = "pending";
    try {
      const resp = kind === "savepoint"
        ? await api("POST", jobPath("/savepoints"), {}, 10 * 60 * 1000)
        : await api("POST", jobPath("/stop"), { savepoint: true, drain }, 10 * 60 * 1000);
      showResult(true, (kind === "savepoint" ? "savepoint written: " : "stopped with savepoint: ") + ((resp && resp.path) || "?"));
      $("action-result").dataset.state = "done";
      $("action-result").dataset.path = (resp && resp.path) || "";
    } catch (e) {
      if (e instanceof APIError && (e.status === 401 || e.status === 403)) {
        if (e.status === 403) sessionStorage.removeItem(TOKEN_KEY);
        askToken(kind, e.status === 401 ? "The API needs a bearer token for this call." : "The API refused the token: " + e.message);
        showResult(false, what + ": " + e.message);
      } else {
        showResult(false, what + " failed: " + (e.message || e));
      }
      $("action-result").dataset.state = "error";
    } finally {
      state.busy = false;
      enableButtons();
    }
  }

  function enableButtons() {
    const off = state.busy || !state.running;
    for (const b of [$("btn-savepoint"), $("btn-stop")]) b.disabled = off;
  }

  function askToken(kind, reason) {
    state.pending = kind;
    $("token-reason").textContent = reason;
    $("token-form").hidden = false;
    $("token-input").value = "";
    $("token-input").focus();
  }

  function init() {
    $("btn-savepoint").addEventListener("click", () => act("savepoint"));
    $("btn-stop").addEventListener("click", () => {
      // Two clicks: stopping ends the job.
      const b = $("btn-stop");
      if (Date.now() > state.stopArmedUntil) {
        state.stopArmedUntil = Date.now() + 5000;
        b.textContent = "Click again to stop";
        b.dataset.armed = "true";
        setTimeout(() => { if (Date.now() >= state.stopArmedUntil) { b.textContent = "Stop with savepoint"; b.dataset.armed = "false"; } }, 5100);
        return;
      }
      state.stopArmedUntil = 0;
      b.textContent = "Stop with savepoint";
      b.dataset.armed = "false";
      act("stop");
    });
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token-input").value.trim();
      $("token-form").hidden = true;
      if (!t) return;
      sessionStorage.setItem(TOKEN_KEY, t);
      const kind = state.pending;
      state.pending = null;
      if (kind) act(kind);
    });
    $("token-cancel").addEventListener("click", () => { $("token-form").hidden = true; state.pending = null; });
    $("checkpoint-table").tBodies[0].addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr[data-checkpoint-id]");
      if (tr) { state.selectedStatus = null; loadCheckpointDetail(Number(tr.dataset.checkpointId)); }
    });
    $("checkpoint-chart").addEventListener("click", (ev) => {
      const r = ev.target.closest("rect[data-checkpoint-id]");
      if (r) { state.selectedStatus = null; loadCheckpointDetail(Number(r.dataset.checkpointId)); }
    });
    poll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
