// dyntrain UI: shared helpers and the live training panel (server-sent events).
// Hand-written, no framework. Every action is a call to the REST API under /api/v1.
"use strict";

const dyntrain = (window.dyntrain = window.dyntrain || {});
dyntrain.progress = []; // every percentage received from the event stream (tests read it)
dyntrain.events = []; // every event type received
dyntrain.states = []; // every state the training panel showed
dyntrain.etas = []; // every time left (seconds) the panel showed

const API = "/api/v1";

function q(sel, el) { return (el || document).querySelector(sel); }
function qa(sel, el) { return Array.from((el || document).querySelectorAll(sel)); }
function enc(s) { return encodeURIComponent(s); }

// fetch wrapper: JSON in/out, throws Error with the API's plain message (and rejected files).
// `signal` (an AbortController's) cancels a request nobody waits for any more.
async function api(method, path, body, signal) {
  const opts = { method, headers: { Accept: "application/json" }, signal };
  // Every change carries the page's CSRF token: the server refuses browser changes without it
  // (signed in or not), so other sites cannot make them.
  const csrf = document.querySelector('meta[name="csrf-token"]');
  if (csrf && method !== "GET") opts.headers["X-CSRF-Token"] = csrf.content;
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(API + path, opts);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new Error("Cannot reach the server. Is it running?");
  }
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const e = new Error(err.message || `The server answered ${res.status}`);
    e.details = err.details || [];
    e.status = res.status;
    e.retryAfter = Number(res.headers.get("Retry-After")) || null; // seconds, on a 429 or 503
    throw e;
  }
  return data;
}

function errorText(e) {
  let text = e.message;
  if (e.details && e.details.length) {
    text += ": " + e.details.slice(0, 5).map((d) => `${d.file || d.field || ""} ${d.reason || ""}`.trim()).join("; ");
    if (e.details.length > 5) text += ` (and ${e.details.length - 5} more)`;
  }
  return text;
}

// -- notification centre: pop-ups vanish, so every notice is also kept here (this browser,
// newest first, the last 50); the bell in the top bar shows how many arrived since last opened.
const notices = (() => {
  const KEY = "dyntrain:notices", SEEN = "dyntrain:notices-seen", MAX = 50;
  const read = (k, d) => { try { return JSON.parse(localStorage.getItem(k)) || d; } catch (e) { return d; } };
  const write = (k, v) => { try { localStorage.setItem(k, JSON.stringify(v)); } catch (e) { /* private mode */ } };
  function list() { return read(KEY, []); }
  function render() {
    const btn = q("#notices-btn"), panel = q("#notices-list"), count = q("#notices-count");
    if (!btn) return;
    const items = list(), seen = read(SEEN, "");
    const unread = items.filter((n) => n.at > seen).length;
    count.textContent = unread ? String(unread) : "";
    count.hidden = !unread;
    btn.setAttribute("aria-label", unread ? `Notifications, ${unread} new` : "Notifications");
    panel.textContent = "";
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "Nothing yet: notices about training, new models and your changes appear here.";
      panel.appendChild(li);
    }
    items.forEach((n) => {
      const li = document.createElement("li");
      li.className = "notice " + n.kind;
      const p = document.createElement("p");
      p.textContent = n.text;
      const meta = document.createElement("p");
      meta.className = "small muted";
      const t = document.createElement("time");
      t.dateTime = n.at;
      t.textContent = new Date(n.at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
      meta.append(t);
      if (n.project) meta.append(` · ${n.project}`);
      if (n.href) {
        const a = document.createElement("a");
        a.href = n.href;
        a.textContent = n.link || "Show";
        meta.append(" · ", a);
      }
      li.append(p, meta);
      panel.appendChild(li);
    });
  }
  function add(text, kind, opts) {
    opts = opts || {};
    const items = list();
    if (opts.key && items.some((n) => n.key === opts.key)) return; // the same event seen in another tab
    const live = q("#live");
    items.unshift({ text, kind: kind || "info", href: opts.href || null, link: opts.link || null, key: opts.key || null,
                    at: new Date().toISOString(), project: live ? live.dataset.project : null });
    write(KEY, items.slice(0, MAX));
    render();
  }
  function open(show) {
    const panel = q("#notices-panel"), btn = q("#notices-btn");
    panel.hidden = !show;
    btn.setAttribute("aria-expanded", String(show));
    if (show) { write(SEEN, new Date().toISOString()); render(); q("#notices-panel h2").focus(); }
  }
  function init() {
    const btn = q("#notices-btn");
    if (!btn) return;
    btn.addEventListener("click", () => open(q("#notices-panel").hidden));
    q("#notices-clear").addEventListener("click", () => { write(KEY, []); render(); });
    q("#notices-close").addEventListener("click", () => { open(false); btn.focus(); });
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && !q("#notices-panel").hidden) { open(false); btn.focus(); }
    });
    window.addEventListener("storage", (ev) => { if (ev.key === KEY) render(); }); // other tabs
    render();
  }
  return { add, list, render, init };
})();

function toast(text, kind, opts) {
  notices.add(text, kind, opts);
  const box = q("#toasts");
  if (!box) return;
  const el = document.createElement("div");
  el.className = "toast " + (kind || "info");
  const p = document.createElement("p");
  p.textContent = text;
  el.appendChild(p);
  if (opts && opts.href) {
    const a = document.createElement("a");
    a.href = opts.href;
    a.textContent = opts.link || "Show";
    el.appendChild(a);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "icon-btn";
  close.setAttribute("aria-label", "Dismiss notification");
  close.textContent = "✕";
  close.onclick = () => el.remove();
  el.appendChild(close);
  box.appendChild(el);
  setTimeout(() => el.remove(), (opts && opts.ms) || 12000);
}

// How long a success message stays next to its form (errors stay until the next try); it is
// also kept in the notification centre, so nothing is lost when it goes.
dyntrain.okMessageMs = 8000;
const msgTimers = new WeakMap();
function showMsg(el, text, kind) {
  if (!el) return;
  clearTimeout(msgTimers.get(el));
  el.hidden = !text;
  el.textContent = text || "";
  el.className = el.className.replace(/\b(ok|error|info)\b/g, "").trim() + " " + (kind || "info");
  if (text && kind === "ok") {
    notices.add(text, "ok");
    msgTimers.set(el, setTimeout(() => { if (el.textContent === text) { el.hidden = true; el.textContent = ""; } },
                                 dyntrain.okMessageMs));
  }
}

// Refresh an element from its server-rendered fragment (data-fragment="/url").
// Answers can come back out of order (the grid's refresh after a move, say, and a search made at
// once): one older than the answer on screen is dropped instead of replacing it. None is
// cancelled, so an element refreshed faster than its server answers still shows each new state.
const refreshing = new Map();
const refreshes = new Map(); // element -> {started, shown}: numbers of its refreshes
function refreshFragment(el, delay) {
  if (!el || !el.dataset.fragment) return;
  clearTimeout(refreshing.get(el));
  refreshing.set(el, setTimeout(async () => {
    const count = refreshes.get(el) || { started: 0, shown: 0 };
    refreshes.set(el, count);
    const mine = ++count.started;
    try {
      const res = await fetch(el.dataset.fragment, { headers: { Accept: "text/html" } });
      if (!res.ok) return;
      const html = await res.text();
      if (mine < count.shown) return;
      count.shown = mine;
      el.innerHTML = html;
      localTimes(el);
      keyboardScroll(el);
      el.dispatchEvent(new CustomEvent("dyntrain:refreshed", { bubbles: true }));
    } catch (e) { /* next event will retry */ }
  }, delay === undefined ? 250 : delay));
}

// A box that scrolls sideways (a wide table on a phone) must be reachable by keyboard: it takes
// the focus, as a region named by its table's caption, only while it does scroll (elsewhere it
// would be a useless tab stop).
const SCROLLERS = ".table-wrap, .rows-table-wrap, .matrix-wrap";
function keyboardScroll(root) {
  qa(SCROLLERS, root || document).forEach((el) => {
    const scrolls = el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1;
    if (scrolls && !el.hasAttribute("tabindex")) {
      el.tabIndex = 0;
      el.dataset.scrollFocus = "";
      if (!el.getAttribute("role")) el.setAttribute("role", "region");
      if (!el.getAttribute("aria-label")) {
        const caption = q("caption", el);
        el.setAttribute("aria-label", (caption && caption.textContent.trim()) || "Table (scrolls)");
      }
    } else if (!scrolls && el.dataset.scrollFocus !== undefined) {
      el.removeAttribute("tabindex");
      delete el.dataset.scrollFocus;
    }
  });
}

// <time datetime> in the reader's time zone.
function localTimes(root) {
  qa("time[datetime]", root).forEach((t) => {
    const d = new Date(t.getAttribute("datetime"));
    if (isNaN(d)) return;
    t.title = d.toString();
    t.textContent = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  });
}

function parseTime(s) {
  if (!s) return null;
  // the server sends ISO 8601 with an offset; be tolerant of a missing one (treat as UTC)
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s + "Z");
}

function fmtSeconds(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60), r = s % 60;
  return r ? `${m} min ${r} s` : `${m} min`;
}

// -- live training panel ------------------------------------------------------------------

// Stages, learners and data recipes in words: the server's (views.ui_words), sent with the page.
let WORDS = { stages: {}, learners: {}, recipes: {} };

function learnerWords(candidate) {
  if (!candidate) return "";
  const name = candidate.split("(")[0];
  const words = WORDS.learners[name] || WORDS.recipes[candidate] || WORDS.recipes[name];
  return words ? words.charAt(0).toLowerCase() + words.slice(1) : candidate;
}

function sentence(s) { s = String(s); return s.charAt(0).toUpperCase() + s.slice(1); }

function pct(x) { return x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`; }

// A number for people: about 6 significant digits, grouped, never in scientific notation.
function fmtNumber(x) {
  if (x === null || x === undefined || !isFinite(Number(x))) return "—";
  return new Intl.NumberFormat(undefined, { maximumSignificantDigits: 6 }).format(Number(x));
}

function Live(el) {
  const name = el.dataset.project;
  const autoTrain = () => el.dataset.autoTrain === "true"; // the settings page may change it
  const text = q("#live-text", el), detail = q("#live-detail", el), dot = q("#live-dot", el);
  const bar = q("#live-progress", el), barWrap = q("#live-progress-wrap", el), pctEl = q("#live-percent", el);
  const conn = q("#live-conn", el);
  let state = {};
  try { state = JSON.parse(el.dataset.state || "{}"); } catch (e) { state = { status: "idle" }; }
  try { WORDS = Object.assign(WORDS, JSON.parse(el.dataset.words || "{}")); } catch (e) { /* plain names */ }
  if (state.status === "running" && typeof state.eta_s === "number") state.eta_at = Date.now();
  let timer = null;
  let head = state.head || 0; // newest data version
  const serverNow = parseTime(state.now);
  const skew = serverNow ? serverNow - Date.now() : 0; // server clock minus this browser's clock

  function render() {
    dyntrain.states.push(state.status || "idle");
    clearInterval(timer);
    timer = null;
    el.dataset.status = state.status || "idle";
    dot.className = "dot " + (state.status || "idle");
    barWrap.hidden = state.status !== "running";
    detail.textContent = "";
    const runLink = state.run_id ? ` (run #${state.run_id})` : "";
    switch (state.status) {
      case "delayed": {
        const until = parseTime(state.until);
        const tick = () => {
          const left = until ? (until - skew - Date.now()) / 1000 : 0;
          text.textContent = left > 0.5
            ? `Waiting for more changes — training starts in ${fmtSeconds(left)}`
            : "Starting training…";
        };
        tick();
        timer = setInterval(tick, 250);
        detail.textContent = `Each change restarts the wait, so a burst of edits trains once. Data version ${state.dataset_version || "?"}.`;
        break;
      }
      case "queued":
        text.textContent = "Queued — training starts in a moment";
        detail.textContent = state.dataset_version ? `Data version ${state.dataset_version}.` : "";
        break;
      case "running": {
        const p = state.percent || 0;
        const stage = WORDS.stages[state.stage] || "Starting";
        text.textContent = `Training: ${stage}…`;
        bar.value = p;
        pctEl.textContent = `${Math.round(p)}%`;
        const bits = [];
        if (typeof state.eta_s === "number") {
          bits.push(state.eta_s >= 1 ? `about ${fmtSeconds(state.eta_s)} left` : "almost done");
        }
        if (state.candidate) bits.push(`trying: ${learnerWords(state.candidate)}`);
        if (state.dataset_version) bits.push(`data version ${state.dataset_version}`);
        detail.textContent = bits.join(" · ");
        break;
      }
      case "succeeded": {
        const k = state.kpis || {};
        let s = "Training finished";
        const has = (v) => v !== undefined && v !== null;
        // a score only where the run has one of these (a segmentation or detection run reports
        // its own on its run page, not "right — of the time")
        const score = has(k.accuracy) ? `, right ${pct(k.accuracy)} of the time`
          : has(k.r2) ? `, R² ${Number(k.r2).toFixed(2)}` : state.score ? `, ${state.score}` : "";
        if (state.learner) s += `: ${learnerWords(state.learner)}${score}`;
        text.textContent = s + ".";
        if (state.model_version) {
          detail.textContent = state.promoted
            ? `Version ${state.model_version} went into service${runLink}.`
            : `Version ${state.model_version} was kept back${state.gate_reason ? ": " + String(state.gate_reason).replace(/\.$/, "") : ""}${runLink}.`;
        }
        break;
      }
      case "failed":
        text.textContent = "Training failed.";
        detail.textContent = sentence(state.reason || "no reason was given.");
        break;
      case "cancelled":
        text.textContent = "Training was cancelled.";
        detail.textContent = state.reason ? sentence(state.reason) : "";
        break;
      default:
        text.textContent = autoTrain()
          ? el.dataset.idle // what this project's task needs before it trains (project_base.html)
          : "Automatic training is off: press “Train now” when the data is ready.";
    }
    const settled = ["succeeded", "failed", "cancelled", "idle", undefined].includes(state.status);
    if (settled && head && (!state.dataset_version || head > state.dataset_version) && !autoTrain()) {
      const hint = document.createElement("span");
      hint.className = "untrained";
      hint.textContent = ` Newer examples (data version ${head}) are not trained yet: press “Train now”.`;
      detail.appendChild(hint);
    }
    // Cancel: while a job waits or runs (POST …/jobs/{id}/cancel); a running one stops at its next step.
    const cancelBtn = q("#cancel-job", el);
    if (cancelBtn) cancelBtn.hidden = !(state.job_id && ["delayed", "queued", "running"].includes(state.status));
    if (state.stopping && state.status === "running") detail.prepend("Cancelling: the run stops at its next step. ");
    if (state.run_id && ["running", "succeeded", "failed"].includes(state.status)) {
      const a = document.createElement("a");
      a.href = `/projects/${enc(name)}/runs/${state.run_id}`;
      a.textContent = state.status === "running" ? "Details" : "See the run";
      a.className = "run-link";
      detail.append(" ", a);
    }
  }

  function handle(e) {
    const d = e.data || {};
    dyntrain.events.push(e.type);
    if (e.type === "data.changed" && d.version) head = Math.max(head, d.version);
    const jobEvent = e.type.startsWith("job.");
    // An older job's last words (e.g. "cancelled: superseded") must not hide the newer job
    // (the rest of the page still hears them: a run page of that job shows its end).
    if (jobEvent && state.job_id && d.job_id && d.job_id < state.job_id) {
      document.dispatchEvent(new CustomEvent("dyntrain:event", { detail: e }));
      return;
    }
    switch (e.type) {
      case "job.delayed":
        state = { status: "delayed", job_id: d.job_id, until: d.until, dataset_version: d.dataset_version };
        break;
      case "job.queued":
        state = { status: "queued", job_id: d.job_id, dataset_version: d.dataset_version };
        break;
      case "job.started":
        state = { status: "running", job_id: d.job_id, percent: 0, dataset_version: d.dataset_version };
        break;
      case "job.progress": {
        // Within one job the bar never moves back (a stage such as augmentation reports 0-100%
        // once per recipe it tries) and the time left never grows: it counts down from the
        // smallest estimate so far, so a stage slower than expected shows "almost done".
        const same = state.status === "running" && state.job_id === d.job_id;
        const percent = Math.max(typeof d.percent === "number" ? d.percent : 0, same ? state.percent || 0 : 0);
        dyntrain.progress.push(percent);
        let eta = typeof d.eta_s === "number" ? d.eta_s : null;
        if (same && typeof state.eta_s === "number" && state.eta_at) {
          const counted = Math.max(0, state.eta_s - (Date.now() - state.eta_at) / 1000);
          eta = eta === null ? counted : Math.min(eta, counted);
        }
        if (eta !== null) dyntrain.etas.push(eta);
        state = { status: "running", job_id: d.job_id, dataset_version: d.dataset_version, stage: d.stage,
                  percent, eta_s: eta, eta_at: Date.now(), candidate: d.candidate, run_id: d.run_id,
                  stopping: same && state.stopping }; // a cancel asked for stays shown until it lands
        break;
      }
      case "job.finished":
        state = { status: "succeeded", job_id: d.job_id, dataset_version: d.dataset_version, run_id: d.run_id,
                  learner: d.learner, kpis: d.kpis, score: d.score,
                  model_version: d.model_version, promoted: d.promoted, gate_reason: state.gate_reason };
        break;
      case "job.failed":
        state = { status: "failed", job_id: d.job_id, dataset_version: d.dataset_version, run_id: d.run_id,
                  reason: d.reason };
        toast(`Training failed: ${d.reason || "no reason given"}`, "error", { key: `${name}:${e.id}`,
              href: d.run_id ? `/projects/${enc(name)}/runs/${d.run_id}` : null, link: "See the run" });
        break;
      case "job.cancelled":
        state = { status: "cancelled", job_id: d.job_id, dataset_version: d.dataset_version, reason: d.reason };
        break;
      case "model.promoted":
        toast(d.previous ? `Version ${d.version} is now in service (it replaces version ${d.previous}).`
                         : `Version ${d.version} is now in service: the project's first model.`, "ok",
              { href: `/projects/${enc(name)}/try`, link: "Try it", key: `${name}:${e.id}` });
        updateInService();
        break;
      case "model.kept_back":
        state.gate_reason = d.reason;
        toast(`Version ${d.version} was trained but kept back: ${d.reason}`, "warn",
              { href: `/projects/${enc(name)}/history`, link: "History", key: `${name}:${e.id}` });
        break;
    }
    render();
    document.dispatchEvent(new CustomEvent("dyntrain:event", { detail: e }));
  }

  async function updateInService() {
    try {
      const p = await api("GET", `/projects/${enc(name)}`);
      const prod = p.status && p.status.production;
      const box = q("#in-service");
      if (!box) return;
      box.textContent = "";
      if (!prod) { box.textContent = "No model in service yet"; return; }
      box.append("Model in service: ");
      const b = document.createElement("strong");
      b.textContent = `version ${prod.version}`;
      box.append(b);
      if (prod.accuracy !== null && prod.accuracy !== undefined) {
        box.append(", right ");
        const a = document.createElement("strong");
        a.textContent = pct(prod.accuracy);
        box.append(a, " of the time");
      } else if (prod.r2 !== null && prod.r2 !== undefined) { // a regression model
        box.append(", R² ");
        const a = document.createElement("strong");
        a.textContent = Number(prod.r2).toFixed(2);
        box.append(a);
      }
    } catch (e) { /* keep the old text */ }
  }

  const types = ["job.delayed", "job.queued", "job.started", "job.progress", "job.finished", "job.failed",
                 "job.cancelled", "model.promoted", "model.kept_back", "data.changed"];
  let es = null;
  function connect() {
    // Start after the newest event seen (at first: the one the page was rendered with); on
    // reconnect the browser sends Last-Event-ID, so nothing is missed or repeated.
    if (es) return;
    es = new EventSource(`${API}/projects/${enc(name)}/events?after=${el.dataset.after || 0}`);
    types.forEach((t) => es.addEventListener(t, (ev) => {
      el.dataset.after = ev.lastEventId || el.dataset.after;
      try { handle(Object.assign(JSON.parse(ev.data), { id: ev.lastEventId })); } catch (err) { console.error(err); }
    }));
    es.onopen = () => { conn.textContent = "● live"; conn.className = "conn ok"; };
    es.onerror = () => { conn.textContent = "reconnecting…"; conn.className = "conn warn"; };
    dyntrain.stream = es;
  }
  // Browsers allow only ~6 connections per server: a hidden tab lets go of its stream and
  // catches up (from the last event it saw) when it is shown again.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && es) {
      es.close();
      es = null;
      conn.textContent = "paused";
      conn.className = "conn";
    } else if (!document.hidden) {
      connect();
    }
  });

  q("#train-now", el).addEventListener("click", async (ev) => {
    const btn = ev.currentTarget;
    btn.disabled = true;
    try {
      const r = await api("POST", `/projects/${enc(name)}/train`);
      if (state.status !== "running") {
        state = { status: "queued", job_id: r.job_id };
        render();
      }
    } catch (e) {
      toast(errorText(e), "error");
    } finally {
      btn.disabled = false;
    }
  });

  const cancelBtn = q("#cancel-job", el);
  if (cancelBtn) cancelBtn.addEventListener("click", async () => {
    const id = state.job_id;
    if (!id) return;
    cancelBtn.disabled = true;
    try {
      const job = await api("POST", `/projects/${enc(name)}/jobs/${id}/cancel`);
      if (state.job_id !== id) return; // a newer job took the panel meanwhile
      if (job.status === "cancelled") state = { status: "cancelled", job_id: id, dataset_version: job.dataset_version, reason: job.error };
      else if (job.status === "running") state.stopping = true; // job.cancelled follows when it stops
      render();
    } catch (e) {
      toast(errorText(e), "error");
    } finally {
      cancelBtn.disabled = false;
    }
  });

  render();
  connect();
}

document.addEventListener("DOMContentLoaded", () => {
  notices.init();
  localTimes(document);
  keyboardScroll(document);
  let resized = null;
  window.addEventListener("resize", () => { clearTimeout(resized); resized = setTimeout(() => keyboardScroll(document), 200); });
  // Copy buttons: data-copy="id of the element whose text is copied".
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    const text = (q("#" + btn.dataset.copy) || {}).textContent || "";
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = "Copied";
    } catch (e) {
      const range = document.createRange(); // no clipboard access: select it for Ctrl+C
      range.selectNodeContents(q("#" + btn.dataset.copy));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      btn.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => { btn.textContent = "Copy"; }, 2500);
  });
  const live = q("#live");
  if (live) Live(live);
  // Parts of a page that follow the event stream: data-refresh-on="event.type other.type"
  document.addEventListener("dyntrain:event", (ev) => {
    qa("[data-refresh-on]").forEach((el) => {
      if (el.dataset.refreshOn.split(/\s+/).includes(ev.detail.type)) refreshFragment(el, 400);
    });
  });
});

// A prediction's class scores as labelled meters, most likely first (Try pages).
function renderScores(list, scores) {
  list.textContent = "";
  Object.entries(scores).sort((a, b) => b[1] - a[1]).forEach(([lab, v]) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "score-name";
    name.textContent = lab;
    const meter = document.createElement("meter");
    meter.min = 0; meter.max = 1; meter.value = v;
    meter.setAttribute("aria-label", `${lab}: ${pct(v)}`);
    const val = document.createElement("span");
    val.className = "score-val mono";
    val.textContent = pct(v);
    li.append(name, meter, val);
    list.appendChild(li);
  });
}

// Every other way a try page takes a photo: the file picker (#try-file), a drop on #try-drop (the rest of
// the window ignores drops, so a missed drop does not navigate away) and a paste. take(blob, filename).
function photoIntake(take) {
  const file = q("#try-file"), drop = q("#try-drop");
  file.addEventListener("change", () => { if (file.files[0]) take(file.files[0], file.files[0].name); file.value = ""; });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.add("drag-over"); }));
  drop.addEventListener("dragleave", () => drop.classList.remove("drag-over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("drag-over");
    const f = ev.dataTransfer.files[0];
    if (f) take(f, f.name);
  });
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());
  document.addEventListener("paste", (ev) => {
    const item = Array.from(ev.clipboardData ? ev.clipboardData.items : []).find((i) => i.type.startsWith("image/"));
    if (item) { ev.preventDefault(); take(item.getAsFile(), "pasted.png"); }
  });
}

// The camera on a try page, where the browser allows it (a secure context such as 127.0.0.1 or
// HTTPS): "Use the camera" opens a live preview, "Take photo" hands a JPEG of the current frame
// to onPhoto(blob, "camera.jpg"), "Close camera" stops it (_camera.html holds the markup). One
// helper for every try page, so they all behave alike. onError(text) hears why it cannot open.
function camera(onPhoto, onError, root) {
  const start = q("#camera-start", root), box = q("#camera", root), video = q("#camera-video", root);
  if (!start || !box || !video) return null;
  let stream = null;
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) start.hidden = false;
  start.addEventListener("click", async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
      video.srcObject = stream;
      box.hidden = false;
    } catch (e) {
      onError("The camera is not available: " + e.message);
    }
  });
  function stop() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    video.srcObject = null;
    box.hidden = true;
  }
  q("#camera-stop", box).addEventListener("click", stop);
  q("#camera-snap", box).addEventListener("click", () => {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth || 640;
    canvas.height = video.videoHeight || 480;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => (blob ? onPhoto(blob, "camera.jpg") : onError("The camera gave no picture yet: try again.")),
                  "image/jpeg", 0.92);
  });
  return { stop };
}

Object.assign(dyntrain, { api, q, qa, enc, toast, notices, fmtNumber, showMsg, errorText, refreshFragment, localTimes, keyboardScroll, pct, renderScores, camera, photoIntake });
