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
  liveCamera();

  // Live mode on the camera (_try_files.html, only for a target that answers a class): a frame
  // goes to the model when both half a second has passed and the previous answer is back, so a
  // slow server is never sent a queue of stale frames; "Add to training" uploads the frame shown.
  function liveCamera() {
    const box = q("#cam-live"), cam = q("#camera"), video = q("#camera-video");
    if (!box || !cam || !video) return;
    const toggle = q("#cam-live-toggle"), out = q("#cam-live-answer"), capMsg = q("#cam-capture-msg");
    const stats = (window.dyntrain.liveCam = { sent: 0, answered: 0, gaps: [], captured: 0 }); // tests read these
    const PERIOD_MS = 500, SIDE = 320; // live frames are scaled down: the model sees 224 px anyway
    let running = false, inflight = null;

    function frame(maxSide, quality) {
      const w = video.videoWidth, h = video.videoHeight;
      if (!w || !h) return Promise.resolve(null);
      const k = maxSide ? Math.min(1, maxSide / Math.max(w, h)) : 1;
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(w * k);
      canvas.height = Math.round(h * k);
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
    }

    async function loop() {
      let last = 0;
      while (running && !cam.hidden) {
        const wait = last + PERIOD_MS - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (!running || cam.hidden) break;
        const blob = await frame(SIDE, 0.85);
        if (!blob) { await new Promise((r) => setTimeout(r, 100)); continue; } // the camera is warming up
        if (last) stats.gaps.push(performance.now() - last);
        last = performance.now();
        const form = new FormData();
        form.append("files", blob, "live.jpg");
        inflight = new AbortController();
        stats.sent += 1;
        try {
          // not explained: explain.js wraps api for the photos sent one by one, and gives the plain one
          const send = window.dyntrain.api.plain || api;
          const res = await send("POST", `/projects/${enc(name)}/predict`, form, inflight.signal);
          const p = res.predictions[0];
          stats.answered += 1;
          if (!running) break;
          out.textContent = p.error ? p.error
            : p.label === null ? "Not sure: no class reaches the confidence threshold."
            : `${p.label} (${pct(p.confidence)} sure)`;
        } catch (e) {
          if (e.name === "AbortError") break;
          out.textContent = errorText(e);
          await new Promise((r) => setTimeout(r, 2000)); // the server is unhappy: ask less often
        }
      }
      inflight = null;
    }

    function setLive(on) {
      running = on && !cam.hidden;
      toggle.checked = running;
      if (running) { out.textContent = "Looking…"; loop(); }
      else if (inflight) inflight.abort();
    }

    toggle.addEventListener("change", () => setLive(toggle.checked));
    // the camera helper (app.js) shows and hides #camera: live mode follows it
    new MutationObserver(() => {
      box.hidden = cam.hidden;
      if (cam.hidden) { setLive(false); out.textContent = ""; }
    }).observe(cam, { attributes: true, attributeFilter: ["hidden"] });
    document.addEventListener("visibilitychange", () => { if (document.hidden) setLive(false); });

    q("#cam-capture").addEventListener("click", async (ev) => {
      const btn = ev.currentTarget, label = q("#cam-capture-class").value;
      if (!label) { showMsg(capMsg, "Add a class on the Data page first.", "error"); return; }
      btn.disabled = true;
      try {
        const blob = await frame(0, 0.92); // the full frame, like a photo taken
        if (!blob) throw new Error("The camera gave no picture yet: try again.");
        const form = new FormData();
        form.append("files", blob, "camera.jpg");
        form.append("label", label);
        const r = await api("POST", `/projects/${enc(name)}/samples`, form);
        stats.captured += 1;
        const auto = q("#live").dataset.autoTrain === "true";
        showMsg(capMsg, `Added to ${label}` + (r.version ? ` (data version ${r.version.number}). ` : ". ") +
                (auto ? "The model will retrain by itself." : "Press “Train now” to retrain."), "ok");
      } catch (e) {
        showMsg(capMsg, errorText(e), "error");
      } finally {
        btn.disabled = false;
      }
    });
  }
})();
