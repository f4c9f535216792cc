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
