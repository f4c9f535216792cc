// Tabular projects: upload a CSV (one data version), change a row's target value, and
// "Try it" with one field per column of the model in service.
"use strict";

(function () {
  const { api, q, qa, enc, showMsg, errorText, pct, refreshFragment, renderScores } = window.dyntrain;

  // -- data page ---------------------------------------------------------------------------
  const upload = q("#csv-upload");
  const box = q("#data");
  const msg = q("#data-msg");
  if (upload && box) {
    const name = upload.dataset.project;
    const key = `dyntrain:target:${name}`;
    const target = q("#csv-target");
    try { target.value = localStorage.getItem(key) || ""; } catch (e) { /* private mode */ }
    upload.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const file = q("#csv-file").files[0];
      const column = target.value.trim();
      if (!file) { q("#csv-file").focus(); return; }
      if (!column) { target.focus(); return; }
      const form = new FormData();
      form.append("file", file, file.name || "rows.csv");
      form.append("target", column);
      const btn = q("button", upload);
      btn.disabled = true;
      showMsg(msg, `Uploading ${file.name}…`, "info");
      try {
        const res = await api("POST", `/projects/${enc(name)}/samples/csv`, form);
        try { localStorage.setItem(key, column); } catch (e) { /* private mode */ }
        const n = res.samples.length;
        showMsg(msg, res.version ? `Added ${n} row${n === 1 ? "" : "s"}: data version ${res.version.number}.`
          : "Those rows are already there: nothing changed.", "ok");
        upload.reset();
        target.value = column;
      } catch (e) {
        showMsg(msg, "Nothing was added: " + errorText(e), "error");
      } finally {
        btn.disabled = false;
        refreshFragment(box, 0);
      }
    });
    // A regression row's target value: edit it in place (one new data version).
    box.addEventListener("change", async (ev) => {
      const input = ev.target.closest("input[data-retarget]");
      if (!input) return;
      const id = input.dataset.retarget;
      try {
        await api("PATCH", `/projects/${enc(name)}/samples/${id}`, { label: input.value.trim() });
        showMsg(msg, `Row ${id} now has the target value ${input.value.trim()}.`, "ok");
      } catch (e) {
        showMsg(msg, errorText(e), "error");
      }
      refreshFragment(box, 0);
    });
  }

  // -- try it ------------------------------------------------------------------------------
  const root = q("#try-row");
  const form = q("#try-row-form");
  if (!root || !form) return;
  const name = root.dataset.project;
  const regression = root.dataset.regression === "true";
  const answer = q("#try-answer"), empty = q("#try-empty"), tmsg = q("#try-msg");
  let current = null;

  function row() {
    const out = {};
    qa("input[data-column]", form).forEach((i) => {
      const v = i.value.trim();
      out[i.dataset.column] = v === "" ? null : v;
    });
    return out;
  }

  function show(p) {
    current = p;
    window.dyntrain.lastPrediction = p;
    empty.hidden = true;
    answer.hidden = false;
    const label = q("#try-label");
    label.textContent = "";
    const b = document.createElement("strong");
    b.id = "try-predicted";
    if (regression) {
      b.textContent = window.dyntrain.fmtNumber(p.value);
      label.append("Predicted value: ", b);
      q("#try-actual").value = "";
    } else if (p.label === null) {
      label.append("Not sure: no class reaches the confidence threshold.");
    } else {
      b.textContent = p.label;
      label.append("It is ", b, ` (${pct(p.confidence)} sure)`);
      renderScores(q("#try-scores"), p.scores);
    }
    q("#try-meta").textContent = `Answered by model version ${p.model_version}.`;
    showMsg(tmsg, "");
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    empty.hidden = false;
    empty.className = "muted";
    empty.textContent = "Asking the model…";
    answer.hidden = true;
    try {
      const res = await api("POST", `/projects/${enc(name)}/predict/rows`, { rows: [row()] });
      const p = res.predictions[0];
      if (p.error) throw new Error(p.error);
      show(p);
    } catch (e) {
      answer.hidden = true;
      empty.textContent = errorText(e);
      empty.className = "alert error";
    }
  });

  q("#try-correct").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!current) return;
    const label = q("#try-actual").value.trim();
    if (!label) { q("#try-actual").focus(); return; }
    try {
      await api("POST", `/projects/${enc(name)}/predictions/${current.prediction_id}/feedback`,
                { label, add_to_training: true });
      const auto = q("#live").dataset.autoTrain === "true";
      showMsg(tmsg, `Thanks: added to the training rows as ${label}. ` +
              (auto ? "The model will retrain by itself." : "Press “Train now” to retrain."), "ok");
    } catch (e) {
      showMsg(tmsg, errorText(e), "error");
    }
  });
})();
