// Run detail: put a model version into service, or roll back.
"use strict";

(function () {
  const { api, q, enc, showMsg, errorText } = window.dyntrain;
  const live = q("#live");
  if (!live) return;
  const name = live.dataset.project;
  const msg = q(".outcome .form-msg");

  async function go(btn, call, text) {
    btn.disabled = true;
    try {
      const r = await call();
      showMsg(msg, text(r), "ok");
      setTimeout(() => location.reload(), 900);
    } catch (e) {
      showMsg(msg, errorText(e), "error");
      btn.disabled = false;
    }
  }

  const promote = q("[data-promote]");
  if (promote) promote.addEventListener("click", () => {
    const v = promote.dataset.promote;
    go(promote, () => api("POST", `/projects/${enc(name)}/models/${v}/promote`), () => `Version ${v} is now in service.`);
  });
  const rollback = q("[data-rollback]");
  if (rollback) rollback.addEventListener("click", () => {
    if (!confirm(`Serve version ${rollback.dataset.rollback} again?`)) return;
    go(rollback, () => api("POST", `/projects/${enc(name)}/rollback`), (r) => `Version ${r.production} is in service again.`);
  });
  // A run still in progress when the page was opened: show its results as soon as it ends.
  const head = q("#run-head");
  if (head && ["running", "queued"].includes(head.dataset.status)) {
    const runId = Number(head.dataset.runId), jobId = Number(head.dataset.jobId) || null;
    document.addEventListener("dyntrain:event", (ev) => {
      const e = ev.detail, d = e.data || {};
      if (!["job.finished", "job.failed", "job.cancelled"].includes(e.type)) return;
      if (d.run_id === runId || (jobId && d.job_id === jobId)) location.reload();
    });
  }
  // Open the examples of a selected confusion-matrix square in view.
  if (location.hash === "#examples") {
    const panel = q("#examples");
    if (panel) panel.focus({ preventScroll: false });
  }
})();

// Per-class view: the threshold slider shows the figures the server computed for each step
// (web/run_classes.py), and saves the chosen one as the project's confidence_threshold.
(function () {
  const { api, q, qa, enc, showMsg, errorText } = window.dyntrain;
  const box = q("#per-class"), data = q("#threshold-data"), live = q("#live");
  if (!box || !data || !live) return;
  const table = JSON.parse(data.textContent);
  const slider = q("#threshold", box), out = q("#threshold-value", box), words = q("#threshold-words", box);
  const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`);
  function show() {
    const k = Number(slider.value), step = table.steps[k];
    out.textContent = `${k}%`;
    words.textContent = step.words;
    qa("#per-class-table tbody tr", box).forEach((tr, i) => {
      const c = step.classes[i];
      q('[data-col="answered"]', tr).textContent = String(c.answered);
      ["precision", "recall", "f1"].forEach((col) => { q(`[data-col="${col}"]`, tr).textContent = pct(c[col]); });
    });
  }
  slider.addEventListener("input", show);
  const save = q("#save-threshold", box), msg = q("#threshold-msg", box), now = q("#threshold-now", box);
  save.addEventListener("click", async () => {
    const value = Number(slider.value) / 100;
    save.disabled = true;
    try {
      await api("PATCH", `/projects/${enc(live.dataset.project)}`, { settings: { confidence_threshold: value } });
      now.textContent = value ? `The project answers “not sure” below ${pct(value)} now.`
                              : "The project answers “not sure” below 0% now (it always answers).";
      showMsg(msg, `Saved: predictions less than ${pct(value)} sure now answer “not sure”.`, "ok");
    } catch (e) {
      showMsg(msg, "Not saved: " + errorText(e), "error");
    } finally {
      save.disabled = false;
    }
  });
})();
