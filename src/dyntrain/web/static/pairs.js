// Image-to-image projects (learned filters): add a photo with its output image as one pair, and on
// the try page show the model's output beside the photo and send the right one back into training.
// Talks to the REST API through app.js (api, showMsg, errorText); the data view itself is
// server-rendered and refreshes on data.changed.
"use strict";

(function () {
  const q = (sel) => document.querySelector(sel);

  function readAsDataUrl(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error("the browser could not read that file"));
      reader.readAsDataURL(file);
    });
  }

  // -- data page: one pair from two file pickers
  const add = q("#pr-add");
  if (add) {
    const name = add.dataset.project, msg = q("#data-msg");
    add.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const photo = q("#pr-input").files[0], output = q("#pr-output").files[0];
      if (!photo || !output) { showMsg(msg, "Choose a photo and its output image (PNG) first.", "error"); return; }
      try {
        const form = new FormData();
        form.append("files", photo, photo.name);
        form.append("label", JSON.stringify({ image: await readAsDataUrl(output) }));
        await api("POST", `/projects/${enc(name)}/samples`, form);
        showMsg(msg, `Added ${photo.name} with its output image.`, "ok");
        add.reset();
      } catch (e) { showMsg(msg, errorText(e), "error"); }
    });
  }

  // -- try page: predict, show the output beside the photo, confirm or correct it into training
  const tryRoot = q("#try-pairs");
  if (tryRoot) {
    const name = tryRoot.dataset.project;
    const answer = q("#try-answer"), empty = q("#try-empty"), msg = q("#try-msg");
    let current = null, url = null;

    function fail(text) { answer.hidden = true; empty.hidden = false; empty.textContent = text; empty.className = "alert error"; }
    async function feedback(label, words) {
      try {
        await api("POST", `/projects/${enc(name)}/predictions/${current.prediction_id}/feedback`, { label, add_to_training: true });
        showMsg(msg, words + " The model retrains by itself.", "ok");
      } catch (e) { showMsg(msg, errorText(e), "error"); }
    }
    q("#try-file").addEventListener("change", async (ev) => {
      const file = ev.target.files[0];
      if (!file) return;
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(file);
      empty.hidden = false; empty.className = "muted"; empty.textContent = "Asking the model…"; answer.hidden = true;
      try {
        const form = new FormData();
        form.append("files", file, file.name || "photo.png");
        current = (await api("POST", `/projects/${enc(name)}/predict`, form)).predictions[0];
        if (current.error) throw new Error(current.error.message || String(current.error));
        q("#try-photo").src = url;
        q("#try-output").src = "data:image/png;base64," + current.image;
        q("#try-meta").textContent = `A ${current.mode === "L" ? "greyscale" : "colour"} ${current.width}×${current.height} image from model version ${current.model_version}.`;
        empty.hidden = true; answer.hidden = false; showMsg(msg, "");
      } catch (e) { fail(errorText(e)); }
    });
    q("#try-confirm").addEventListener("click", () => {
      if (current) feedback({ image: current.image }, "Thanks: the photo and this output are added to the training examples.");
    });
    q("#try-fix").addEventListener("change", async (ev) => {
      const file = ev.target.files[0];
      if (!file || !current) return;
      feedback({ image: await readAsDataUrl(file) }, "Thanks: the photo and your output are added to the training examples.");
      ev.target.value = "";
    });
  }
})();
