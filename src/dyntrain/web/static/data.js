// Data page: classes, drag-and-drop upload, relabel (select or drag), delete.
"use strict";

(function () {
  const dyntrain = window.dyntrain;
  const { api, q, qa, enc, toast, showMsg, errorText, refreshFragment } = dyntrain;
  const box = q("#data");
  if (!box) return;
  const name = box.dataset.project;
  const msg = q("#data-msg");
  const CHUNK = 100; // files per request; bigger uploads go through one batch = one dataset version
  let busy = 0;

  function refresh() { refreshFragment(box, 0); }

  async function upload(label, fileList, section) {
    const files = Array.from(fileList);
    const images = files.filter((f) => !f.type || f.type.startsWith("image/"));
    const skipped = files.length - images.length;
    const status = section && q("[data-upload-status]", section);
    if (!images.length) {
      showMsg(msg, "Those were not images: nothing was added.", "error");
      return;
    }
    busy++;
    if (section) section.classList.add("uploading");
    showMsg(status, `Uploading ${images.length} image${images.length === 1 ? "" : "s"} to ${label}…`, "info");
    try {
      const chunks = [];
      for (let i = 0; i < images.length; i += CHUNK) chunks.push(images.slice(i, i + CHUNK));
      let batch = null;
      if (chunks.length > 1) batch = (await api("POST", `/projects/${enc(name)}/batches`)).id;
      let done = 0;
      try {
        for (const chunk of chunks) {
          const form = new FormData();
          chunk.forEach((f) => form.append("files", f, f.name || "pasted.png"));
          form.append("label", label);
          await api("POST", `/projects/${enc(name)}/samples${batch ? "?batch=" + enc(batch) : ""}`, form);
          done += chunk.length;
          if (batch) showMsg(status, `Uploaded ${done} of ${images.length}…`, "info");
        }
        if (batch) await api("POST", `/projects/${enc(name)}/batches/${enc(batch)}/commit`);
      } catch (e) {
        if (batch) api("DELETE", `/projects/${enc(name)}/batches/${enc(batch)}`).catch(() => {});
        throw e;
      }
      let text = `Added ${images.length} image${images.length === 1 ? "" : "s"} to ${label}.`;
      if (skipped) text += ` Skipped ${skipped} file${skipped === 1 ? "" : "s"} that ${skipped === 1 ? "was" : "were"} not an image.`;
      showMsg(msg, text, "ok");
    } catch (e) {
      showMsg(msg, "Nothing was added: " + errorText(e), "error");
    } finally {
      busy--;
      if (section) section.classList.remove("uploading");
      refresh();
    }
  }

  async function act(promise, okText) {
    try {
      await promise;
      if (okText) showMsg(msg, okText, "ok");
    } catch (e) {
      showMsg(msg, errorText(e), "error");
    }
    refresh();
  }

  // New class
  const newClass = q("#new-class"); // absent in tabular projects: classes come from the target column
  if (newClass) newClass.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = q("#new-class-name");
    const label = input.value.trim();
    if (!label) { input.focus(); return; }
    act(api("POST", `/projects/${enc(name)}/classes`, { label }).then(() => { input.value = ""; }),
        `Class ${label} created: now drop its images onto it.`);
  });

  // Add texts (text projects): one per line, one request = one dataset version
  box.addEventListener("submit", (ev) => {
    const form = ev.target.closest("form[data-add-texts]");
    if (!form) return;
    ev.preventDefault();
    const label = form.dataset.addTexts;
    const items = form.elements.texts.value.split("\n").map((t) => t.trim()).filter(Boolean).map((text) => ({ text, label }));
    if (!items.length) return;
    act(api("POST", `/projects/${enc(name)}/samples/texts`, { items }),
        `Added ${items.length} text${items.length === 1 ? "" : "s"} to ${label}.`);
  });

  // Rename class
  box.addEventListener("submit", (ev) => {
    const form = ev.target.closest("form[data-rename]");
    if (!form) return;
    ev.preventDefault();
    const old = form.dataset.rename;
    const label = form.elements.label.value.trim();
    if (!label || label === old) return;
    act(api("PATCH", `/projects/${enc(name)}/classes/${enc(old)}`, { label }), `Renamed ${old} to ${label}.`);
  });

  box.addEventListener("click", (ev) => {
    const delClass = ev.target.closest("[data-delete-class]");
    if (delClass) {
      const label = delClass.dataset.deleteClass;
      const n = delClass.dataset.count;
      // a task whose examples outlive their class (a mask's pixels, a photo's boxes) says so itself
      const ask = delClass.dataset.confirm || `Delete the class ${label} and its ${n} example(s)?`;
      if (!confirm(`${ask} (An older data version can be restored through the API.)`)) return;
      act(api("DELETE", `/projects/${enc(name)}/classes/${enc(label)}`), `Deleted class ${label}.`);
      return;
    }
    const delSample = ev.target.closest("[data-delete-sample]");
    if (delSample) {
      const id = delSample.dataset.deleteSample;
      const li = delSample.closest("li[data-sample]");
      if (li) li.classList.add("removing");
      act(api("DELETE", `/projects/${enc(name)}/samples/${id}`), `Deleted ${delSample.dataset.name || "it"}.`);
    }
  });

  // Relabel by select
  box.addEventListener("change", (ev) => {
    const sel = ev.target.closest("select[data-relabel]");
    if (sel) {
      act(api("PATCH", `/projects/${enc(name)}/samples/${sel.dataset.relabel}`, { label: sel.value }),
          `Moved ${sel.dataset.name || "it"} to ${sel.value}.`);
      return;
    }
    const input = ev.target.closest("input[type=file][data-upload-label]");
    if (input && input.files.length) {
      upload(input.dataset.uploadLabel, input.files, input.closest("[data-dropzone]"));
      input.value = "";
    }
  });

  // Relabel by dragging a thumbnail onto another class
  let dragged = "it"; // its name, for the message
  box.addEventListener("dragstart", (ev) => {
    const img = ev.target.closest && ev.target.closest("[data-drag-sample]");
    if (!img) return;
    ev.dataTransfer.setData("application/x-dyntrain-sample", img.dataset.dragSample);
    dragged = img.dataset.name || "it";
    ev.dataTransfer.effectAllowed = "move";
  });

  // Drop files (or a dragged thumbnail) onto a class
  function zoneOf(ev) { return ev.target.closest && ev.target.closest("[data-dropzone]"); }
  ["dragenter", "dragover"].forEach((type) => box.addEventListener(type, (ev) => {
    const zone = zoneOf(ev);
    if (!zone) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = ev.dataTransfer.types.includes("application/x-dyntrain-sample") ? "move" : "copy";
    qa(".drag-over", box).forEach((z) => z !== zone && z.classList.remove("drag-over"));
    zone.classList.add("drag-over");
  }));
  box.addEventListener("dragleave", (ev) => {
    const zone = zoneOf(ev);
    if (zone && !zone.contains(ev.relatedTarget)) zone.classList.remove("drag-over");
  });
  box.addEventListener("drop", (ev) => {
    const zone = zoneOf(ev);
    if (!zone) return;
    ev.preventDefault();
    zone.classList.remove("drag-over");
    const label = zone.dataset.label;
    const sample = ev.dataTransfer.getData("application/x-dyntrain-sample");
    if (sample) {
      act(api("PATCH", `/projects/${enc(name)}/samples/${sample}`, { label }), `Moved ${dragged} to ${label}.`);
      return;
    }
    if (ev.dataTransfer.files && ev.dataTransfer.files.length) upload(label, ev.dataTransfer.files, zone);
  });
  // A file dropped outside a class must not make the browser navigate away to it.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => {
    if (!zoneOf(ev)) {
      ev.preventDefault();
      if (ev.dataTransfer.files && ev.dataTransfer.files.length) toast("Drop images onto one of the classes.", "warn");
    }
  });

  // -- data check: the platform's findings (GET /health), shown in words and on the photos --
  const TAGS = { exact_duplicate: "duplicate", near_duplicate: "near duplicate", conflicting_labels: "two labels",
                 likely_mislabelled: "check label", tiny_image: "tiny", corrupt_image: "unreadable" };
  const CLASS_KINDS = ["too_few_examples", "imbalance"];
  const health = q("#health"), healthList = q("#health-list"), healthSummary = q("#health-summary");
  let healthToken = 0;

  function highlight(ids) {
    qa(".flagged", box).forEach((t) => t.classList.remove("flagged"));
    const thumbs = ids.map((id) => q(`li[data-sample="${id}"]`, box)).filter(Boolean);
    thumbs.forEach((t) => t.classList.add("flagged"));
    if (thumbs[0]) thumbs[0].scrollIntoView({ behavior: "smooth", block: "center" });
  }

  async function loadHealth() {
    const token = ++healthToken;
    healthSummary.textContent = "Checking your data…";
    let report;
    try {
      report = await api("GET", `/projects/${enc(name)}/health`);
    } catch (e) {
      if (token !== healthToken) return;
      health.hidden = false;
      healthList.textContent = "";
      healthSummary.textContent = "The data check is not available: " + errorText(e);
      return;
    }
    if (token !== healthToken) return; // a newer check is on its way
    const findings = report.findings || [];
    health.hidden = report.samples === 0;
    health.dataset.count = String(findings.length);
    healthSummary.textContent = findings.length
      ? `${findings.length} thing${findings.length === 1 ? "" : "s"} worth a look.`
      : "No problems found." + (report.checked_mislabelling ? "" : " (Labels were not cross-checked.)");
    healthList.textContent = "";
    qa(".class-findings", box).forEach((c) => { c.textContent = ""; });
    qa("li[data-sample] .tag", box).forEach((t) => t.remove());
    findings.forEach((f) => {
      const li = document.createElement("li");
      li.className = `finding ${f.severity}`;
      li.dataset.kind = f.kind;
      const m = document.createElement("p");
      m.className = "finding-msg";
      m.textContent = f.message;
      const a = document.createElement("p");
      a.className = "small muted";
      a.textContent = f.advice;
      li.append(m, a);
      if (f.sample_ids && f.sample_ids.length) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "btn small";
        b.textContent = `Show ${f.sample_ids.length === 1 ? "it" : "them"}`;
        // the visible words start the spoken name (WCAG's "label in name": speech users say them)
        b.setAttribute("aria-label", `${b.textContent}: the photos of ${f.message}`);
        b.onclick = () => highlight(f.sample_ids);
        li.appendChild(b);
      }
      healthList.appendChild(li);
      if (CLASS_KINDS.includes(f.kind) && f.labels && f.labels.length) {
        const where = qa(".class-findings", box).find((c) => c.dataset.findingsFor === f.labels[0]);
        if (where) {
          const p = document.createElement("p");
          p.className = `alert small ${f.severity === "error" ? "error" : "warn"}`;
          p.dataset.kind = f.kind;
          p.textContent = f.message;
          where.appendChild(p);
        }
      }
      if (TAGS[f.kind]) {
        (f.sample_ids || []).forEach((id) => {
          const t = q(`li[data-sample="${id}"]`, box);
          if (!t) return;
          const tag = document.createElement("span");
          tag.className = "tag warn";
          tag.textContent = TAGS[f.kind];
          tag.title = f.message;
          t.appendChild(tag);
        });
      }
    });
    dyntrain.health = report;
    box.dispatchEvent(new CustomEvent("dyntrain:health", { bubbles: true })); // grid.js: the flagged filter
  }
  // Only modalities with a data check have its panel (texts and table rows have none).
  if (health) {
    box.addEventListener("dyntrain:refreshed", loadHealth);
    loadHealth();
  }

  // Changes made elsewhere (another tab, the API, the CLI) arrive as data.changed events:
  // app.js refreshes #data through data-refresh-on; skip while an upload is running.
  const origRefreshOn = box.dataset.refreshOn;
  document.addEventListener("dyntrain:event", () => {
    box.dataset.refreshOn = busy ? "" : origRefreshOn;
  }, true);
})();
