// Settings form: PATCH /api/v1/projects/{name} with typed values; field errors shown in place.
"use strict";

(function () {
  const { api, q, qa, enc, showMsg, errorText } = window.dyntrain;
  const form = q("#settings");
  if (!form) return;
  const name = form.dataset.project;
  const msg = q("#settings-msg");

  function value(input) {
    switch (input.dataset.kind) {
      case "boolean": return input.checked;
      case "integer": return input.value === "" ? null : parseInt(input.value, 10);
      case "number": return input.value === "" ? null : Number(input.value);
      case "string": return input.value === "" && "nullable" in input.dataset ? null : input.value;
      case "json": {
        if (input.value.trim() === "") return "nullable" in input.dataset ? null : {};
        try { return JSON.parse(input.value); } catch (e) {
          throw Object.assign(new Error("not valid JSON"), { field: input.name });
        }
      }
      case "list": {
        const items = input.value.split(",").map((x) => x.trim()).filter(Boolean);
        return !items.length && "nullable" in input.dataset ? null : items;
      }
      default: return input.value;
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    qa(".field-error", form).forEach((e) => { e.hidden = true; e.textContent = ""; });
    qa("[aria-invalid]", form).forEach((i) => i.removeAttribute("aria-invalid"));
    const settings = {};
    try {
      qa("[data-kind]", form).forEach((i) => { settings[i.name] = value(i); });
    } catch (e) {
      const err = q(`#e-${e.field}`);
      if (err) { err.hidden = false; err.textContent = e.message; }
      const input = q(`#s-${e.field}`);
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
      showMsg(msg, "Not saved: " + e.field + " is " + e.message + ".", "error");
      return;
    }
    // Checkbox lists: all ticked means "all" (null), so kinds added later are tried too.
    const arrays = {};
    qa("[data-array]", form).forEach((i) => { (arrays[i.dataset.array] = arrays[i.dataset.array] || []).push(i); });
    Object.entries(arrays).forEach(([key, boxes]) => {
      const on = boxes.filter((b) => b.checked).map((b) => b.value);
      settings[key] = on.length === boxes.length ? null : on;
    });
    const description = q("[data-description]", form).value;
    const btn = q("button[type=submit]", form);
    btn.disabled = true;
    try {
      await api("PATCH", `/projects/${enc(name)}`, { description, settings });
      showMsg(msg, "Saved.", "ok");
      q("#live").dataset.autoTrain = String(settings.auto_train);
    } catch (e) {
      (e.details || []).forEach((d) => {
        const field = (d.field || "").split(".").pop();
        const err = q(`#e-${field}`), input = q(`#s-${field}`) || q(`[data-array="${field}"]`);
        if (err) { err.hidden = false; err.textContent = d.reason; }
        if (input) input.setAttribute("aria-invalid", "true");
      });
      showMsg(msg, "Not saved: " + e.message, "error");
    } finally {
      btn.disabled = false;
    }
  });

  // Augmentation preview: each chosen photo beside three varied copies at the strength picked
  // in the select (saved or not; "custom" shows the saved custom strengths), drawn by the API.
  const preview = q("#aug-preview");
  if (preview) {
    const labels = JSON.parse(preview.dataset.labels);
    q("#aug-preview-btn", preview).addEventListener("click", () => {
      const choice = q("#s-augmentation").value, grid = q("#aug-preview-grid", preview);
      const words = q("#s-augmentation").selectedOptions[0].textContent.trim();
      grid.textContent = "";
      const ids = preview.dataset.samples.split(",");
      let waiting = ids.length;
      const note = q("#aug-preview-note", preview);
      note.textContent = `Drawing ${ids.length} photo${ids.length === 1 ? "" : "s"} with “${words}”…`;
      const done = () => {
        if (--waiting !== 0) return;
        // "auto" chooses by cross-validation at training time; the API draws its strongest choice
        note.textContent = `Each photo (top left) with three varied copies, as “${words}” makes them` +
          (choice === "auto" ? " (shown at medium strength, the strongest it tries)." : ".");
      };
      ids.forEach((id, i) => {
        const fig = document.createElement("figure"), img = document.createElement("img"), cap = document.createElement("figcaption");
        img.alt = `A photo of ${labels[i]} and three varied copies of it`;
        img.addEventListener("load", done);
        img.addEventListener("error", () => { cap.textContent = `${labels[i]}: the preview could not be drawn`; done(); });
        img.src = `/api/v1/projects/${enc(name)}/augmentation-preview?sample=${id}&n=3&preset=${enc(choice)}`;
        cap.textContent = labels[i];
        fig.append(img, cap);
        grid.appendChild(fig);
      });
    });
  }

  q("#delete-project").addEventListener("click", async () => {
    if (!confirm(`Delete the project ${name} with all its examples, runs and models?`)) return;
    try {
      await api("DELETE", `/projects/${enc(name)}`);
      location.href = "/";
    } catch (e) {
      showMsg(msg, errorText(e), "error");
    }
  });
})();
