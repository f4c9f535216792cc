// "Try it": send a photo (file, drop, paste or camera) to the model in service, show every
// class score, and let the user correct the answer, which adds the photo to the training data.
"use strict";

(function () {
  const { api, q, enc, showMsg, errorText, pct, renderScores, camera, photoIntake } = window.dyntrain;
  const root = q("#try");
  if (!root) return;
  const name = root.dataset.project;
  const textForm = q("#try-text-form");
  const answer = q("#try-answer"), empty = q("#try-empty"), msg = q("#try-msg");
  let current = null; // {prediction_id, label}
  let previewUrl = null;

  async function predictText(text) {
    empty.hidden = false;
    empty.className = "muted";
    empty.textContent = "Asking the model…";
    answer.hidden = true;
    try {
      const res = await api("POST", `/projects/${enc(name)}/predict/texts`, { texts: [text] });
      const p = res.predictions[0];
      if (p.error) throw new Error(p.error);
      q("#try-sent").textContent = text;
      show(p);
    } catch (e) {
      showResultError(errorText(e));
    }
  }

  async function predict(blob, filename) {
    if (!blob) return;
    if (blob.type && !blob.type.startsWith("image/")) {
      showResultError("That is not an image.");
      return;
    }
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(blob);
    empty.hidden = false;
    empty.className = "muted";
    empty.textContent = "Asking the model…";
    answer.hidden = true;
    const form = new FormData();
    form.append("files", blob, filename || "photo.png");
    try {
      const res = await api("POST", `/projects/${enc(name)}/predict`, form);
      const p = res.predictions[0];
      if (p.error) throw new Error(p.error);
      show(p);
    } catch (e) {
      showResultError(errorText(e));
    }
  }

  function showResultError(text) {
    answer.hidden = true;
    empty.hidden = false;
    empty.textContent = text;
    empty.className = "alert error";
  }

  function show(p) {
    current = p;
    window.dyntrain.lastPrediction = p;
    empty.hidden = true;
    answer.hidden = false;
    if (q("#try-preview")) q("#try-preview").src = previewUrl;
    const label = q("#try-label");
    label.textContent = "";
    if (p.label === null) {
      label.append("Not sure: no class reaches the confidence threshold.");
    } else {
      label.append("It is ");
      const b = document.createElement("strong");
      b.textContent = p.label;
      b.id = "try-predicted";
      label.append(b, ` (${pct(p.confidence)} sure)`);
    }
    q("#try-meta").textContent = `Answered by model version ${p.model_version}.`;
    renderScores(q("#try-scores"), p.scores);
    const sel = q("#try-actual");
    const other = Array.from(sel.options).find((o) => o.value !== p.label);
    if (other) sel.value = other.value;
    showMsg(msg, "");
    q("#try-correct").hidden = p.prediction_id === undefined;
  }

  async function feedback(label) {
    if (!current) return;
    try {
      await api("POST", `/projects/${enc(name)}/predictions/${current.prediction_id}/feedback`,
                { label, add_to_training: true });
      const auto = q("#live").dataset.autoTrain === "true";
      showMsg(msg, `Thanks: added to the training examples as ${label}. ` +
              (auto ? "The model will retrain by itself." : "Press “Train now” to retrain."), "ok");
    } catch (e) {
      showMsg(msg, errorText(e), "error");
    }
  }

  q("#try-confirm").addEventListener("click", () => current && current.label && feedback(current.label));
  q("#try-correct").addEventListener("submit", (ev) => {
    ev.preventDefault();
    feedback(q("#try-actual").value);
  });

  if (textForm) {
    textForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = textForm.elements.text.value.trim();
      if (text) predictText(text);
    });
    return; // no photos, paste or camera for a text project
  }

  photoIntake(predict);

  camera(predict, showResultError);
})();
