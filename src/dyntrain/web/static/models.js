// Models page: upload a model trained elsewhere (POST …/models: the ONNX file, its class labels in
// output order, a description). The file's kind is checked here first so a wrong file gets a
// plain answer at once; the server checks it again (and runs it) and its message is shown as is.
"use strict";
(function () {
  const { api, q, enc, showMsg, errorText } = window.dyntrain;
  // "Put in service" (POST …/models/{v}/promote): the only way to serve an uploaded model from the UI
  const { qa } = window.dyntrain;
  qa("button.promote").forEach((btn) => btn.addEventListener("click", async () => {
    const v = Number(btn.dataset.version);
    const section = q("#models-h").closest("section");
    const project = q("#upload-model").dataset.project;
    if (!window.confirm(`Put version ${v} in service?\n\nIt answers every prediction from now on; ` +
                        "the history page can roll back to the one serving now.")) return;
    btn.disabled = true;
    try {
      await api("POST", `/projects/${enc(project)}/models/${v}/promote`);
      showMsg(q("#models-msg", section), `Version ${v} is now in service.`, "ok");
      setTimeout(() => window.location.reload(), 900);
    } catch (e) {
      showMsg(q("#models-msg", section), errorText(e), "error");
      btn.disabled = false;
    }
  }));

  const form = q("#upload-model");
  if (!form) return;
  const name = form.dataset.project;
  const msg = q("#upload-msg");

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const file = q("#model-file").files[0];
    const labels = q("#model-labels").value.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
    if (!file) { showMsg(msg, "Choose an ONNX file first.", "error"); return; }
    if (!/\.onnx$/i.test(file.name)) {
      showMsg(msg, `“${file.name}” is not an ONNX file (.onnx). Export the model to ONNX first; pickles and checkpoints are refused because loading them can run code.`, "error");
      return;
    }
    if (labels.length < 2) { showMsg(msg, "Give at least two class names, in the order of the model's outputs.", "error"); return; }
    const body = new FormData();
    body.append("file", file);
    labels.forEach((l) => body.append("labels", l));
    body.append("description", q("#model-description").value);
    const btn = q("#upload-model-btn");
    btn.disabled = true;
    showMsg(msg, "Uploading and scoring the model…", "info");
    try {
      const m = await api("POST", `/projects/${enc(name)}/models`, body);
      showMsg(msg, `Added as version ${m.version}. It is not in service: compare it, then promote it if it is better.`, "ok");
      setTimeout(() => window.location.reload(), 1200); // the list shows the new version
    } catch (e) {
      showMsg(msg, `The model was not added: ${errorText(e)}`, "error");
    } finally {
      btn.disabled = false;
    }
  });
})();
