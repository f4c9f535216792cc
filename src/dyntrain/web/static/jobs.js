// History page: the training jobs that wait or run, each with "Cancel" (POST …/jobs/{id}/cancel).
// A waiting job is cancelled at once; a running one is asked to stop at its next step, and the
// list (like the live panel) says so until the job's "cancelled" event arrives.
"use strict";
(function () {
  const { api, q, enc, toast, errorText } = window.dyntrain;
  const box = q("#jobs");
  if (!box) return;
  const name = box.dataset.project;
  const list = q("#jobs-list", box);
  const WAIT = { delayed: "waiting for more changes", queued: "queued", running: "running" };

  async function load() {
    let jobs = [];
    try {
      jobs = await api("GET", `/projects/${enc(name)}/jobs?limit=10`);
    } catch (e) {
      return; // the runs below still show; the next event tries again
    }
    const open = jobs.filter((j) => WAIT[j.status]);
    list.textContent = "";
    box.hidden = !open.length;
    open.forEach((j) => {
      const li = document.createElement("li");
      li.className = "job-row";
      li.id = `job-${j.id}`;
      const span = document.createElement("span");
      const trigger = j.trigger === "auto" ? "automatic" : "asked for by hand";
      span.textContent = `Job ${j.id} (${trigger}, data version ${j.dataset_version || "newest"}): ` +
        (j.cancel_requested ? "cancelling, it stops at its next step" : WAIT[j.status]);
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "btn danger small";
      btn.textContent = `Cancel job ${j.id}`;
      btn.disabled = j.cancel_requested;
      btn.addEventListener("click", async () => {
        btn.disabled = true;
        try {
          await api("POST", `/projects/${enc(name)}/jobs/${j.id}/cancel`);
        } catch (e) {
          toast(errorText(e), "error");
        }
        load();
      });
      li.append(span, " ", btn);
      list.append(li);
    });
  }
  document.addEventListener("dyntrain:event", (ev) => {
    if (ev.detail.type.startsWith("job.") && ev.detail.type !== "job.progress") load();
  });
  load();
})();
