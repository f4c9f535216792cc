// Explanations: a heatmap laid over the photo with an opacity slider, or the words that moved the
// score highlighted, and a summary saying in words which part mattered.
// On the Try page every prediction made asks for one (`explain=auto` for photos: the exact class
// activation map where the model has one, else occlusion; `explain=words` for texts): this script
// wraps dyntrain.api, the one fetch helper the page's scripts share, so it loads before try.js.
// A page showing a recorded prediction names its explanation's API path in #explain's data-source
// instead; it is fetched on load (asked again while the server says it is still being computed).
"use strict";

(function () {
  const d = window.dyntrain;
  const box = d.q("#explain");
  if (!box) return;
  const method = box.dataset.method;
  const summary = d.q("#explain-summary");
  const slider = d.q("#explain-opacity");
  const key = d.q(".explain-key", box); // what the word colours mean: shown with highlighted words only

  if (box.dataset.source) {
    load(box.dataset.source, 0);
  } else {
    const call = d.api;
    d.api = function (verb, path, body) {
      const predicting = verb === "POST" && /\/predict(\/texts)?$/.test(path);
      if (!predicting) return call(verb, path, body);
      return call(verb, `${path}?explain=${method}`, body).then((res) => {
        const p = res && res.predictions && res.predictions[0];
        setTimeout(() => render(p && p.explanation), 0); // after try.js has shown the prediction (and set the photo)
        return res;
      });
    };
  }

  async function load(source, attempt) {
    box.hidden = false;
    summary.textContent = "Working out which part mattered…";
    if (slider) slider.parentElement.hidden = true;
    if (key) key.hidden = true;
    try {
      const e = await d.api("GET", `${source}?method=${method}`);
      if (e.status === "pending" && attempt < 30) { setTimeout(() => load(source, attempt + 1), 2000); return; }
      render(e);
    } catch (err) { // 409 input not kept, 410 model deleted, 429 asked too often: the server says what to do
      d.explanation = null;
      summary.textContent = `No explanation: ${d.errorText(err)}`;
    }
  }

  function render(e) {
    d.explanation = e || null; // tests read it
    const overlay = d.q("#explain-overlay");
    if (!e) { box.hidden = true; if (overlay) overlay.hidden = true; return; }
    box.hidden = false;
    if (e.status !== "ready") {
      summary.textContent = `No explanation this time: ${e.reason}`;
      if (overlay) overlay.hidden = true;
      if (slider) slider.parentElement.hidden = true;
      if (key) key.hidden = true;
      return;
    }
    summary.textContent = sentence(e.summary) + (e.method === "cam" ? " (class activation map)" :
      e.method === "occlusion" ? " (covering each part in turn)" : "");
    if (key) key.hidden = !e.spans;
    if (e.spans) words(e); else heat(e);
  }

  function sentence(s) { return s.charAt(0).toUpperCase() + s.slice(1) + "."; }

  function heat(e) {
    const img = d.q(box.dataset.photo);
    if (!img) return;
    let frame = img.parentElement;
    if (!frame.classList.contains("explain-frame")) {
      frame = document.createElement("span");
      frame.className = "explain-frame";
      img.replaceWith(frame);
      frame.append(img);
    }
    let overlay = d.q("#explain-overlay");
    if (!overlay) {
      overlay = document.createElement("img");
      overlay.id = "explain-overlay";
      overlay.alt = "Heatmap of the parts of the photo that mattered";
      frame.append(overlay);
    }
    overlay.src = e.overlay;
    overlay.hidden = false;
    slider.parentElement.hidden = false;
    overlay.style.opacity = String(slider.value / 100);
    const place = () => { // over the photo as object-fit: contain shows it, not the whole box
      const bw = frame.clientWidth, bh = frame.clientHeight;
      const w = img.naturalWidth || bw, h = img.naturalHeight || bh;
      const s = Math.min(bw / w, bh / h);
      Object.assign(overlay.style, { width: `${w * s}px`, height: `${h * s}px`,
        left: `${(bw - w * s) / 2}px`, top: `${(bh - h * s) / 2}px` });
    };
    if (img.complete && img.naturalWidth) place(); else img.addEventListener("load", place, { once: true });
  }

  function words(e) {
    const sent = d.q(box.dataset.text);
    if (!sent) return;
    const text = sent.textContent;
    const top = Math.max(1e-9, ...e.spans.map((s) => Math.abs(s.weight)));
    sent.textContent = "";
    let at = 0;
    for (const s of e.spans) {
      if (s.end > text.length) break; // a long text is shown cut: the spans past its end stay in the summary
      sent.append(text.slice(at, s.start));
      const strength = Math.abs(s.weight) / top;
      if (strength < 0.05) {
        sent.append(text.slice(s.start, s.end));
      } else {
        const m = document.createElement("mark");
        m.className = s.weight > 0 ? "moved-for" : "moved-against";
        m.style.setProperty("--w", (0.15 + 0.6 * strength).toFixed(2));
        m.title = `${s.weight > 0 ? "supported" : "argued against"} ${e.label} (${s.weight.toFixed(3)})`;
        m.textContent = text.slice(s.start, s.end);
        sent.append(m);
      }
      at = s.end;
    }
    sent.append(text.slice(at));
  }

  if (slider) slider.addEventListener("input", () => {
    const overlay = d.q("#explain-overlay");
    if (overlay) overlay.style.opacity = String(slider.value / 100);
  });
})();
