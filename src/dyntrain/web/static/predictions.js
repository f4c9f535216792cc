// Predictions list: "this is actually …" adds the image to the training data.
"use strict";

(function () {
  const { api, q, enc, showMsg, errorText } = window.dyntrain;
  const root = q("#predictions");
  if (!root) return;
  const name = root.dataset.project;
  root.addEventListener("submit", async (ev) => {
    const form = ev.target.closest("form[data-feedback]");
    if (!form) return;
    ev.preventDefault();
    const id = form.dataset.feedback;
    const label = form.elements.label.value;
    const msg = q(".form-msg", form.closest(".pred"));
    const btn = q("button", form);
    btn.disabled = true;
    try {
      await api("POST", `/projects/${enc(name)}/predictions/${id}/feedback`, { label, add_to_training: true });
      showMsg(msg, `Added to the training examples as ${label}.`, "ok");
      form.closest(".pred").classList.add("done");
    } catch (e) {
      showMsg(msg, errorText(e), "error");
    } finally {
      btn.disabled = false;
    }
  });
  // Filters apply as soon as they change.
  root.querySelectorAll(".filters select").forEach((s) => s.addEventListener("change", () => s.form.requestSubmit()));
})();
