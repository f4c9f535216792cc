// Explanations: a heatmap laid over the photo with an opacity slider, or the words that moved the
// score highlighted, and a summary saying in words which part mattered.
// Every explanation is fetched one way: `GET …/predictions/{id}/explanation?method=…` (202 while it
// is computed: ask again; 429: ask again after Retry-After; 409 input not kept, 410 model deleted:
// the server says why). A page showing a recorded prediction names that path in #explain's
// data-source. On the Try page this script wraps dyntrain.api, the one fetch helper the page's
// scripts share (so it loads before try.js): each prediction is sent plain, its answer shown at
// once, and then its explanation asked for by the prediction id the answer carries (`auto` for
// photos: the exact class activation map where the model has one, else occlusion; `words` for
// texts). Occlusion and words queue behind other explanations; the answer never waits for them.
"use strict";

(function () {
  const d = window.dyntrain;
  const box = d.q("#explain");
  if (!box) return;
  const method = box.dataset.method;
  const summary = d.q("#explain-summary");
  const slider = d.q("#explain-opacity");
  const key = d.q(".explain-key", box); // what the word colours mean: shown with highlighted words only
  const PATIENCE_MS = 5 * 60 * 1000; // a queue this far behind means asking again later by hand
  let asked = 0; // the newest prediction's number: an older one's explanation is never drawn over it
  // The newest prediction's explanation request in flight: cancelled when the next photo or text is
  // sent, so a tab never holds more than one of the browser's six connections per host with them.
  let inFlight = null;

  if (box.dataset.source) {
    load(box.dataset.source, 0, Date.now());
  } else {
    const call = d.api;
    d.api = function (verb, path, body, signal) {
      const predicting = verb === "POST" && /\/predict(\/texts)?$/.test(path);
      if (!predicting) return call(verb, path, body, signal);
      const mine = ++asked;
      clear();
      return call(verb, path, body).then((res) => {
        const p = res && res.predictions && res.predictions[0];
        if (p && !p.error) {
          // after try.js has shown the prediction (and set the photo or text it is drawn over)
          setTimeout(() => follow(path, p, mine), 0);
        }
        return res;
      });
    };
    // unexplained predictions (try.js's live camera mode: a frame every half second would queue
    // explanations faster than they are made)
    d.api.plain = call;
  }

  function follow(predictPath, p, mine) {
    if (p.prediction_id === undefined || p.prediction_id === null) {
      render({ status: "unavailable", reason: "this answer was not recorded, so it cannot be explained" });
      return;
    }
    const source = predictPath.replace(/\/predict(\/texts)?$/, `/predictions/${p.prediction_id}/explanation`);
    load(source, mine, Date.now());
  }

  function clear() { // a new prediction: the previous one's explanation goes with its answer
    d.explanation = null;
    d.explanationState = "asking";
    if (inFlight) inFlight.abort();
    inFlight = null;
    box.hidden = true;
    const overlay = d.q("#explain-overlay");
    if (overlay) overlay.hidden = true;
  }

  async function load(source, mine, since) {
    if (mine !== asked) return; // a newer prediction was sent meanwhile
    box.hidden = false;
    d.explanationState = "pending"; // tests read it
    summary.textContent = "Working out which part mattered…";
    if (slider) slider.parentElement.hidden = true;
    if (key) key.hidden = true;
    const again = (ms) => {
      if (Date.now() - since > PATIENCE_MS) {
        finish(null, "the explanation is taking too long; open this prediction from the Predictions tab to ask again");
        return;
      }
      setTimeout(() => load(source, mine, since), ms);
    };
    let e;
    const ask = (inFlight = new AbortController());
    try {
      e = await d.api("GET", `${source}?method=${method}`, undefined, ask.signal);
    } catch (err) {
      if (mine !== asked || err.name === "AbortError") return;
      if (err.status === 429) { again(1000 * (err.retryAfter || 5)); return; } // asked too often: wait as told
      // 409 input not kept, 410 model deleted, anything else: the server says what happened
      finish(null, err.status === 409 && !box.dataset.source ? notKept() : d.errorText(err));
      return;
    }
    if (mine !== asked) return;
    if (e && e.status === "pending") { again(500); return; } // the server already waited up to 2 s
    render(e);
  }

  function notKept() { // the Try page's own prediction: its input was not kept because the project keeps none
    return "this project does not keep what it is sent (store_prediction_inputs is off in Settings), " +
      "so the answer cannot be explained; turn it on to see why the model answers as it does";
  }

  function finish(e, reason) {
    d.explanation = e;
    d.explanationState = "failed";
    summary.textContent = `No explanation: ${reason}`;
  }

  function render(e) {
    d.explanation = e || null; // tests read it
    d.explanationState = e ? e.status : "none";
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
