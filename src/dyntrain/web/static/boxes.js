// Boxes for object detection: a dependency-free annotation editor over an <img> (draw, select,
// move, resize, delete, pick the class, undo; mouse, touch and keyboard), read-only box overlays,
// and the data and try pages of detection projects (which talk to the REST API through app.js).
//
// Boxes are {label, x, y, w, h} in pixels of the original image (x, y: top-left corner). On
// screen they are placed in percentages of the image, so they follow any displayed size.
"use strict";

(function () {
  const ns = (window.dyntrain = window.dyntrain || {});

  // -- small helpers -------------------------------------------------------------------------
  const HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];
  const COLOURS = 10; // .bx-c0 … .bx-c9 in boxes.css; the same class gets the same colour everywhere
  const NEW_CLASS = "\u0000new"; // the class picker's "New class…" entry (no class can be named so)
  const CLICK_PX = 5; // a drag shorter than this (screen pixels) is a click, not a box

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === null || v === undefined || v === false) return;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    });
    kids.forEach((k) => { if (k !== null && k !== undefined) e.append(k); });
    return e;
  }
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const pctOf = (x) => `${Math.round(x * 100)}%`;
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many || one + "s"}`;

  function colourIndex(label, classes) {
    const i = classes.indexOf(label);
    if (i >= 0) return i % COLOURS;
    let h = 0; // a class the list does not know yet: a stable colour from its name
    for (const ch of String(label)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % COLOURS;
  }

  // The box from two corners, clamped to the image and rounded to whole pixels.
  function span(x0, y0, x1, y1, W, H) {
    const l = Math.round(clamp(Math.min(x0, x1), 0, W)), r = Math.round(clamp(Math.max(x0, x1), 0, W));
    const t = Math.round(clamp(Math.min(y0, y1), 0, H)), b = Math.round(clamp(Math.max(y0, y1), 0, H));
    return { x: l, y: t, w: r - l, h: b - t };
  }

  const px = (v) => String(Math.round(v));
  function describe(b) {
    return `${b.label || "no class"}, ${px(b.w)} × ${px(b.h)} pixels at ${px(b.x)}, ${px(b.y)}`;
  }

  // The stylesheet, once, next to this script (pages that include the partials already link it).
  const SCRIPT = document.currentScript;
  function ensureStyles() {
    if (document.querySelector("link[data-boxes-css]")) return;
    const src = SCRIPT && SCRIPT.src ? SCRIPT.src.replace(/boxes\.js(\?|$)/, "boxes.css$1") : "/static/boxes.css";
    document.head.append(el("link", { rel: "stylesheet", href: src, "data-boxes-css": true }));
  }

  // -- read-only overlay ---------------------------------------------------------------------

  // Draw ``boxes`` over the image inside ``frame`` (an element holding the <img>, positioned
  // relative by .bx-frame): one outlined, labelled box each, "label 87%" when it has a confidence.
  function overlay(frame, boxes, opts) {
    opts = opts || {};
    const W = opts.width, H = opts.height, classes = opts.classes || [];
    frame.classList.add("bx-frame");
    let layer = frame.querySelector(":scope > .bx-layer");
    if (layer) layer.textContent = "";
    else frame.append(layer = el("div", { class: "bx-layer", "aria-hidden": "true" }));
    (boxes || []).forEach((b) => {
      const box = el("span", { class: `bx-box bx-c${colourIndex(b.label, classes)}${b.y < H * 0.06 ? " bx-top" : ""}` },
                     el("span", { class: "bx-tag", text: b.confidence === undefined ? b.label : `${b.label} ${pctOf(b.confidence)}` }));
      place(box, b, W, H);
      layer.append(box);
    });
    return layer;
  }

  function place(node, b, W, H) {
    node.style.left = `${(b.x / W) * 100}%`;
    node.style.top = `${(b.y / H) * 100}%`;
    node.style.width = `${(b.w / W) * 100}%`;
    node.style.height = `${(b.h / H) * 100}%`;
  }

  // -- the editor ----------------------------------------------------------------------------

  /**
   * An annotation editor in ``host``.
   * opts: src (image URL), fallback (URL tried when src does not load), width/height (the
   * original's size; default the image's natural size), boxes, suggestions (with confidence),
   * classes (names; 1–9 pick them), title (what the image is, for screen readers), saveText,
   * onSave(boxes) (may return a promise; a rejection's message is shown), onCancel(), onChange(boxes).
   * Returns {value, suggestions, setSuggestions, addClass, select, save, cancel, undo, redo,
   * changed, focus, destroy, root, ready (a promise: the image loaded)}.
   */
  function createEditor(host, opts) {
    ensureStyles();
    opts = Object.assign({ boxes: [], suggestions: [], classes: [], title: "the image", saveText: "Save boxes" }, opts);
    const uid = `bx${++createEditor.count}`;
    let W = opts.width || 0, H = opts.height || 0;
    let nextId = 1;
    // Boxes keep the numbers they came with (the server stores 2 decimals) until they are edited,
    // so opening and saving an image changes nothing; edits snap to whole pixels.
    const fresh = (b, suggested) => ({ id: nextId++, label: String(b.label || ""), x: Number(b.x), y: Number(b.y),
                                       w: Number(b.w), h: Number(b.h), suggested: !!suggested,
                                       confidence: suggested ? Number(b.confidence) || 0 : undefined });
    let items = opts.boxes.map((b) => fresh(b, false)).concat(opts.suggestions.map((b) => fresh(b, true)));
    const classes = [];
    opts.classes.concat(items.map((b) => b.label)).forEach((c) => { if (c && !classes.includes(c)) classes.push(c); });
    let current = classes[0] || ""; // the class new boxes get
    let selected = null; // id
    let drag = null;
    const past = [], future = [];
    const initial = JSON.stringify(value());
    let busy = false;

    // -- DOM
    const picker = el("select", { id: `${uid}-class`, class: "bx-class" });
    const newName = el("input", { id: `${uid}-new`, class: "bx-new-name", autocomplete: "off", maxlength: "100",
                                  placeholder: "e.g. cup" });
    const newRow = el("div", { class: "bx-new inline-form", hidden: true },
                      el("label", { for: `${uid}-new`, text: "New class" }), newName,
                      el("button", { type: "button", class: "btn small", text: "Add class", onclick: () => addNewClass() }),
                      el("button", { type: "button", class: "btn small", text: "Cancel", onclick: () => closeNew(true) }));
    const undoBtn = el("button", { type: "button", class: "btn small", text: "Undo", "aria-keyshortcuts": "Control+Z",
                                   onclick: () => { undo(); stage.focus(); } });
    const addBtn = el("button", { type: "button", class: "btn small", text: "Add box", "aria-keyshortcuts": "N",
                                  onclick: () => { addCentred(); stage.focus(); } });
    const delBtn = el("button", { type: "button", class: "btn small danger", text: "Delete box", "aria-keyshortcuts": "Delete",
                                  onclick: () => { removeSelected(); stage.focus(); } });
    const acceptAllBtn = el("button", { type: "button", class: "btn small", text: "Accept all suggestions",
                                        "aria-keyshortcuts": "Shift+A", onclick: () => acceptAll() });
    const img = el("img", { alt: "", draggable: "false" });
    const layer = el("div", { class: "bx-layer" });
    const stage = el("div", { class: "bx-stage", tabindex: "0", role: "application",
                              "aria-roledescription": "box editor", "aria-label": `Boxes on ${opts.title}`,
                              "aria-describedby": `${uid}-help` }, img, layer);
    const status = el("p", { class: "bx-status small", role: "status", "aria-live": "polite" });
    const list = el("ol", { class: "bx-list", "aria-label": `Boxes on ${opts.title}` });
    const saveBtn = el("button", { type: "button", class: "btn primary bx-save", text: opts.saveText, onclick: () => save() });
    const cancelBtn = el("button", { type: "button", class: "btn bx-cancel", text: "Cancel", onclick: () => cancel() });
    const actions = el("div", { class: "actions bx-actions" }, saveBtn, cancelBtn);
    const help = el("div", { id: `${uid}-help`, class: "bx-help small muted" },
      el("p", { text: "Drag on the image to draw a box around each object; drag a box to move it, its corners to resize it. " +
                      "Dashed boxes are the model's suggestions: accept or reject them (suggestions still pending when you save are left out)." }),
      el("details", {}, el("summary", { text: "Keyboard shortcuts" }),
         el("ul", {}, ...[
           ["N", "add a box in the middle"], ["Tab / Shift+Tab", "next / previous box"],
           ["Arrows", "move the box (Alt: by one pixel)"], ["Shift+Arrows", "resize it (Alt: by one pixel)"],
           ["1–9", "give it the class with that number"], ["A / Shift+A", "accept the suggestion / all suggestions"],
           ["Delete or Backspace", "delete the box or reject the suggestion"], ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"],
           ["Enter", "save"], ["Esc", "cancel"]].map(([k, v]) => el("li", {}, el("kbd", { text: k }), ` ${v}`)))));
    const root = el("div", { class: "bx-editor" },
      el("div", { class: "bx-toolbar" }, el("label", { for: `${uid}-class`, text: "Class" }), picker, addBtn, delBtn, undoBtn, acceptAllBtn),
      newRow,
      el("div", { class: "bx-stage-wrap" }, stage),
      status, list, help, actions);
    host.textContent = "";
    host.append(root);

    // -- image
    const ready = new Promise((resolve, reject) => {
      let triedFallback = false;
      img.addEventListener("load", () => {
        if (!W || !H) { W = img.naturalWidth; H = img.naturalHeight; }
        // A small image is drawn bigger, or boxes on it would be too fiddly to place.
        if (img.naturalWidth < 480) img.style.width = "480px";
        render();
        resolve();
      });
      img.addEventListener("error", () => {
        if (opts.fallback && !triedFallback) { triedFallback = true; img.src = opts.fallback; return; }
        say("The image could not be shown, so its boxes cannot be edited here.");
        reject(new Error("image failed to load"));
      });
    });
    ready.catch(() => {}); // reported in the status line; callers may still await it
    img.src = opts.src;

    // -- state
    function value() {
      return items.filter((b) => !b.suggested).map((b) => ({ label: b.label, x: b.x, y: b.y, w: b.w, h: b.h }));
    }
    function snapshot() { return JSON.stringify({ items, selected, classes, current }); }
    function remember() { past.push(snapshot()); if (past.length > 200) past.shift(); future.length = 0; }
    function restore(s) {
      const o = JSON.parse(s);
      items = o.items; selected = o.selected; current = o.current;
      classes.length = 0; classes.push(...o.classes);
    }
    function undo() {
      if (!past.length) { say("Nothing to undo."); return; }
      future.push(snapshot()); restore(past.pop()); changed("Undone.");
    }
    function redo() {
      if (!future.length) { say("Nothing to redo."); return; }
      past.push(snapshot()); restore(future.pop()); changed("Redone.");
    }
    const find = (id) => items.find((b) => b.id === id);
    function say(text) { status.textContent = text; }
    function changed(text) {
      render();
      if (text) say(text);
      if (opts.onChange) opts.onChange(value());
    }
    function select(id, announce) {
      selected = id;
      const b = find(id);
      if (b && b.label && !b.suggested) current = b.label;
      render();
      if (b && announce) {
        const n = items.indexOf(b) + 1;
        say(`${b.suggested ? "Suggestion" : "Box"} ${n} of ${items.length}: ${describe(b)}` +
            (b.suggested ? `, ${pctOf(b.confidence)} sure. A accepts it, Delete rejects it.` : "."));
      }
    }
    function accept(b) {
      if (!b || !b.suggested) return;
      b.suggested = false;
      b.confidence = undefined;
      if (b.label && !classes.includes(b.label)) classes.push(b.label);
    }
    function acceptAll() {
      const pending = items.filter((b) => b.suggested);
      if (!pending.length) return;
      remember();
      pending.forEach(accept);
      changed(`Accepted ${plural(pending.length, "suggestion")}.`);
    }
    function removeSelected() {
      const b = find(selected);
      if (!b) { say("Select a box first (click it, or press Tab)."); return; }
      remember();
      const i = items.indexOf(b);
      items.splice(i, 1);
      const next = items[Math.min(i, items.length - 1)];
      selected = next ? next.id : null;
      changed(`${b.suggested ? "Rejected the suggestion" : "Deleted the box"} ${describe(b)}.` +
              (items.length ? "" : " No boxes left."));
    }
    function setLabel(label) {
      current = label;
      const b = find(selected);
      if (b && b.label !== label) {
        remember();
        accept(b);
        b.label = label;
        changed(`Box ${items.indexOf(b) + 1} is now ${label}.`);
      } else {
        render();
        say(`New boxes get the class ${label}.`);
      }
    }
    function addClass(name) {
      name = String(name || "").trim();
      if (!name) return false;
      if (!classes.includes(name)) classes.push(name);
      setLabel(name);
      return true;
    }
    function addCentred() {
      if (!W || !H) return;
      remember();
      const w = Math.max(2, Math.round(W / 4)), h = Math.max(2, Math.round(H / 4));
      const b = fresh({ label: current, x: Math.round((W - w) / 2), y: Math.round((H - h) / 2), w, h }, false);
      items.push(b);
      selected = b.id;
      changed(`Added box ${items.length}: ${describe(b)}. Arrows move it, Shift+Arrows resize it.`);
      if (!current) openNew();
    }
    function cycle(step) {
      if (!items.length) return false;
      const i = items.findIndex((b) => b.id === selected);
      const j = i < 0 ? (step > 0 ? 0 : -1) : i + step;
      if (j < 0 || j >= items.length) { // past either end: let the focus leave the image
        if (i >= 0) { selected = null; render(); }
        return false;
      }
      select(items[j].id, true);
      return true;
    }
    function nudge(dx, dy, resize, fine) {
      const b = find(selected);
      if (!b) { say("Select a box first (click it, or press Tab)."); return; }
      const sx = fine ? 1 : Math.max(1, Math.round(W / 100)), sy = fine ? 1 : Math.max(1, Math.round(H / 100));
      remember();
      accept(b);
      if (resize) {
        b.w = clamp(Math.round(b.w + dx * sx), 1, Math.floor(W - b.x));
        b.h = clamp(Math.round(b.h + dy * sy), 1, Math.floor(H - b.y));
      } else {
        b.x = clamp(Math.round(b.x + dx * sx), 0, Math.floor(W - b.w));
        b.y = clamp(Math.round(b.y + dy * sy), 0, Math.floor(H - b.h));
      }
      changed(describe(b));
    }
    function problems() {
      const unnamed = items.filter((b) => !b.suggested && !b.label).map((b) => items.indexOf(b) + 1);
      return unnamed.length ? `Give every box a class first (box ${unnamed.join(", ")} has none): pick one above.` : "";
    }
    async function save() {
      if (busy) return;
      const bad = problems();
      if (bad) { say(bad); picker.focus(); return; }
      const left = items.filter((b) => b.suggested).length;
      busy = true;
      saveBtn.disabled = true;
      say("Saving…");
      try {
        if (opts.onSave) await opts.onSave(value());
        say(`Saved ${plural(value().length, "box", "boxes")}` + (left ? ` (${plural(left, "suggestion")} left out).` : "."));
      } catch (e) {
        say(`Not saved: ${(ns.errorText ? ns.errorText(e) : e.message) || e}`);
      } finally {
        busy = false;
        saveBtn.disabled = false;
      }
    }
    function cancel() {
      if (drag) { endDrag(false); return; }
      if (opts.onCancel) opts.onCancel();
    }

    // -- class picker
    function openNew() {
      newRow.hidden = false;
      newName.value = "";
      newName.focus();
    }
    function closeNew(back) {
      newRow.hidden = true;
      picker.value = current;
      if (back) stage.focus();
    }
    function addNewClass() {
      const name = newName.value.trim();
      if (!name) { newName.focus(); return; }
      if (name.includes("/")) { say("A class name cannot hold “/”: choose another."); newName.focus(); return; }
      addClass(name);
      closeNew(true);
    }
    picker.addEventListener("change", () => {
      if (picker.value === NEW_CLASS) openNew();
      else setLabel(picker.value);
    });
    newName.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); addNewClass(); }
      else if (ev.key === "Escape") { ev.preventDefault(); ev.stopPropagation(); closeNew(true); }
    });

    // -- drawing
    function render() {
      picker.textContent = "";
      if (!current) picker.append(el("option", { value: "", text: "(no class yet)" }));
      classes.forEach((c, i) => picker.append(el("option", { value: c, text: i < 9 ? `${i + 1}. ${c}` : c })));
      picker.append(el("option", { value: NEW_CLASS, text: "New class…" }));
      picker.value = current;
      const sel = find(selected);
      delBtn.disabled = !sel;
      delBtn.textContent = sel && sel.suggested ? "Reject suggestion" : "Delete box";
      undoBtn.disabled = !past.length;
      const pending = items.filter((b) => b.suggested).length;
      acceptAllBtn.hidden = !pending;
      acceptAllBtn.textContent = `Accept all ${plural(pending, "suggestion")}`;
      root.dataset.count = String(items.filter((b) => !b.suggested).length);
      if (!W || !H) return;
      layer.textContent = "";
      list.textContent = "";
      items.forEach((b, i) => {
        const cls = `bx-c${colourIndex(b.label, classes)}`;
        const node = el("div", { class: `bx-box ${cls}${b.suggested ? " bx-suggested" : ""}${b.id === selected ? " bx-selected" : ""}` +
                                          `${b.y < H * 0.06 ? " bx-top" : ""}${b.label ? "" : " bx-unnamed"}`,
                                 "data-id": String(b.id) },
                        el("span", { class: "bx-tag", text: `${b.label || "no class"}${b.suggested ? " " + pctOf(b.confidence) : ""}` }));
        place(node, b, W, H);
        if (b.id === selected && !b.suggested) HANDLES.forEach((h) => node.append(el("span", { class: `bx-handle bx-h-${h}`, "data-handle": h })));
        layer.append(node);
        const words = `${i + 1}. ${describe(b)}${b.suggested ? ` (suggested, ${pctOf(b.confidence)} sure)` : ""}`;
        const li = el("li", { class: `${b.id === selected ? "bx-selected " : ""}${b.suggested ? "bx-suggested" : ""}`, "data-id": String(b.id) },
          el("span", { class: `bx-swatch ${cls}`, "aria-hidden": "true" }),
          el("button", { type: "button", class: "linkish bx-pick", text: words, "aria-pressed": String(b.id === selected),
                         onclick: () => { select(b.id, true); stage.focus(); } }));
        if (b.suggested) {
          li.append(el("button", { type: "button", class: "btn small", text: "Accept", "aria-label": `Accept suggestion ${i + 1} (${b.label})`,
                                   onclick: () => { remember(); accept(b); changed(`Accepted ${describe(b)}.`); } }),
                    el("button", { type: "button", class: "btn small", text: "Reject", "aria-label": `Reject suggestion ${i + 1} (${b.label})`,
                                   onclick: () => { selected = b.id; removeSelected(); } }));
        } else {
          li.append(el("button", { type: "button", class: "icon-btn", text: "✕", title: "Delete",
                                   "aria-label": `Delete box ${i + 1} (${b.label || "no class"})`,
                                   onclick: () => { selected = b.id; removeSelected(); } }));
        }
        list.append(li);
      });
      if (!items.length) list.append(el("li", { class: "muted", text: "No boxes yet." }));
    }

    // Pointer events cover mouse, pen and touch; touch-action: none (boxes.css) keeps a finger's
    // drag on the image from scrolling the page.
    function at(ev) {
      const r = img.getBoundingClientRect();
      return { x: ((ev.clientX - r.left) / r.width) * W, y: ((ev.clientY - r.top) / r.height) * H,
               sx: ev.clientX, sy: ev.clientY };
    }
    stage.addEventListener("pointerdown", (ev) => {
      if (!W || !H || (ev.pointerType === "mouse" && ev.button !== 0) || drag) return;
      ev.preventDefault();
      stage.focus({ preventScroll: true });
      const p = at(ev);
      const handle = ev.target.closest("[data-handle]");
      const node = ev.target.closest(".bx-box");
      const b = node && find(Number(node.dataset.id));
      const before = snapshot();
      if (b && handle) drag = { mode: handle.dataset.handle, id: b.id, p, orig: { ...b }, before };
      else if (b) {
        if (selected !== b.id) select(b.id, true);
        drag = { mode: "move", id: b.id, p, orig: { ...b }, before };
      } else drag = { mode: "draw", id: null, p, before };
      drag.pointer = ev.pointerId;
      try { stage.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic events */ }
    });
    stage.addEventListener("pointermove", (ev) => {
      if (!drag || ev.pointerId !== drag.pointer) return;
      ev.preventDefault();
      const p = at(ev);
      const far = Math.hypot(p.sx - drag.p.sx, p.sy - drag.p.sy) >= CLICK_PX;
      if (!drag.moved && !far) return;
      drag.moved = true;
      if (drag.mode === "draw") {
        if (drag.id === null) {
          const b = fresh({ label: current, x: 0, y: 0, w: 0, h: 0 }, false);
          items.push(b);
          drag.id = b.id;
          selected = b.id;
        }
        Object.assign(find(drag.id), span(drag.p.x, drag.p.y, p.x, p.y, W, H));
      } else {
        const b = find(drag.id), o = drag.orig;
        if (!b) return;
        accept(b);
        const dx = p.x - drag.p.x, dy = p.y - drag.p.y;
        if (drag.mode === "move") {
          b.x = clamp(Math.round(o.x + dx), 0, Math.floor(W - o.w));
          b.y = clamp(Math.round(o.y + dy), 0, Math.floor(H - o.h));
        } else {
          let l = o.x, t = o.y, r = o.x + o.w, btm = o.y + o.h;
          if (drag.mode.includes("w")) l += dx;
          if (drag.mode.includes("e")) r += dx;
          if (drag.mode.includes("n")) t += dy;
          if (drag.mode.includes("s")) btm += dy;
          Object.assign(b, span(l, t, r, btm, W, H));
        }
      }
      render();
    });
    function endDrag(keep) {
      const d = drag;
      drag = null;
      if (!d) return;
      try { stage.releasePointerCapture(d.pointer); } catch (e) { /* already released */ }
      if (!d.moved) {
        if (d.mode === "draw") { selected = null; render(); say(""); }
        return;
      }
      const b = find(d.id);
      if (!keep) { restore(d.before); changed("Cancelled."); return; }
      if (b && (b.w < 2 || b.h < 2)) { // too thin to be an object: a slip, not a box
        restore(d.before);
        changed("Too small for a box: drag further.");
        return;
      }
      past.push(d.before);
      future.length = 0;
      if (d.mode === "draw") {
        changed(`Drew box ${items.length}: ${describe(b)}.`);
        if (!current) { say(`Drew a box: name its class.`); openNew(); }
      } else changed(describe(b));
    }
    stage.addEventListener("pointerup", (ev) => { if (drag && ev.pointerId === drag.pointer) endDrag(true); });
    stage.addEventListener("pointercancel", (ev) => { if (drag && ev.pointerId === drag.pointer) endDrag(false); });
    stage.addEventListener("lostpointercapture", (ev) => { if (drag && ev.pointerId === drag.pointer) endDrag(true); });

    stage.addEventListener("keydown", (ev) => {
      if (ev.target !== stage) return;
      const k = ev.key, mod = ev.ctrlKey || ev.metaKey;
      let done = true;
      if (mod && (k === "z" || k === "Z")) ev.shiftKey ? redo() : undo();
      else if (mod && (k === "y" || k === "Y")) redo();
      else if (mod || (ev.altKey && !k.startsWith("Arrow"))) done = false; // the browser's and the system's shortcuts
      else if (k === "Escape") cancel();
      else if (k === "Enter") save();
      else if (k === "Tab") done = cycle(ev.shiftKey ? -1 : 1);
      else if (k === "Delete" || k === "Backspace") removeSelected();
      else if (/^[1-9]$/.test(k)) {
        const c = classes[Number(k) - 1];
        if (c) setLabel(c); else say(`There is no class ${k}: there ${classes.length === 1 ? "is" : "are"} ${classes.length}.`);
      } else if (k === "n" || k === "N" || k === "Insert") addCentred();
      else if (k === "a" || k === "A") {
        if (ev.shiftKey) acceptAll();
        else {
          const b = find(selected);
          if (b && b.suggested) { remember(); accept(b); changed(`Accepted ${describe(b)}.`); } else say("Select a suggestion first (Tab).");
        }
      } else if (k.startsWith("Arrow")) {
        const d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[k];
        if (d) nudge(d[0], d[1], ev.shiftKey, ev.altKey); else done = false;
      } else done = false;
      if (done) { ev.preventDefault(); ev.stopPropagation(); }
    });

    const self = {
      root, ready, value, undo, redo, save, cancel, addClass,
      suggestions: () => items.filter((b) => b.suggested).map((b) => ({ label: b.label, confidence: b.confidence, x: b.x, y: b.y, w: b.w, h: b.h })),
      setSuggestions(list2) {
        items = items.filter((b) => !b.suggested).concat((list2 || []).map((b) => fresh(b, true)));
        (list2 || []).forEach((b) => { if (b.label && !classes.includes(b.label)) classes.push(b.label); });
        if (!current && classes.length) current = classes[0];
        render();
        if (list2 && list2.length) say(`The model suggests ${plural(list2.length, "box", "boxes")} (dashed): accept, move or reject them.`);
      },
      select(i) { const b = items[i]; if (b) select(b.id, true); },
      changed: () => JSON.stringify(value()) !== initial,
      focus: () => stage.focus(),
      destroy() { createEditor.live.delete(self); host.textContent = ""; },
      size: () => ({ width: W, height: H }),
    };
    createEditor.live.add(self);
    render();
    if (!classes.length) say("Draw a box, then name its class.");
    return self;
  }
  createEditor.count = 0;
  createEditor.live = new Set(); // open editors, for tests and for pages that close them

  ns.boxes = { createEditor, overlay, colourIndex };

  // -- pages of detection projects (need app.js) ---------------------------------------------
  if (!ns.api) return;
  const { api, q, enc, showMsg, errorText } = ns;

  // The box editor in the page's dialog (#bx-dialog). Returns the editor; closing the dialog
  // (Esc, ✕, Cancel) calls opts.onClose.
  const dialog = q("#bx-dialog");
  let open = null; // {editor, onClose}
  function openEditor(heading, opts) {
    if (!dialog) return null;
    closeEditor(false);
    q("#bx-dialog-h").textContent = heading;
    const note = q("#bx-dialog-note");
    note.textContent = opts.note || "";
    const editor = createEditor(q("#bx-dialog-editor"), Object.assign({}, opts, {
      onCancel: () => closeEditor(true),
    }));
    (opts.extra || []).forEach((b) => editor.root.querySelector(".bx-actions").append(b));
    open = { editor, onClose: opts.onClose };
    if (!dialog.open) dialog.showModal();
    editor.ready.then(() => editor.focus(), () => {});
    editor.focus();
    return editor;
  }
  function closeEditor(notify) {
    if (!open) return;
    const o = open;
    open = null;
    o.editor.destroy();
    if (dialog.open) dialog.close();
    if (notify && o.onClose) o.onClose();
  }
  if (dialog) {
    dialog.addEventListener("cancel", (ev) => { ev.preventDefault(); closeEditor(true); });
    q("#bx-dialog-close").addEventListener("click", () => closeEditor(true));
  }
  ns.boxes.openEditor = openEditor;
  ns.boxes.closeEditor = closeEditor;

  function pageClasses() {
    const holder = q("[data-bx-classes]");
    try { return JSON.parse(holder.dataset.bxClasses) || []; } catch (e) { return []; }
  }

  // What the model in service sees in ``file``: its boxes, or [] with the reason in ``note``.
  async function suggest(project, file) {
    const form = new FormData();
    form.append("files", file, file.name || "image.png");
    const res = await api("POST", `/projects/${enc(project)}/predict`, form);
    const p = res.predictions[0];
    if (p.error) throw new Error(p.error);
    return p;
  }

  // -- data page: edit a sample's boxes; add images, drawing their boxes first
  const adder = q("#bx-add");
  if (adder) {
    const name = adder.dataset.project;
    const msg = q("#data-msg");
    const refresh = () => ns.refreshFragment(q("#data"), 0);

    document.addEventListener("click", async (ev) => {
      const btn = ev.target.closest("[data-edit-boxes]");
      if (!btn) return;
      const id = btn.dataset.editBoxes, what = btn.dataset.name || "the image";
      let sample;
      try {
        sample = await api("GET", `/projects/${enc(name)}/samples/${id}`);
      } catch (e) {
        showMsg(msg, errorText(e), "error");
        return;
      }
      const base = `/api/v1/projects/${enc(name)}/samples/${id}`;
      const editor = openEditor(`Boxes of ${what}`, {
        src: `${base}/image`, fallback: `${base}/thumbnail?size=512`, title: what,
        width: sample.meta.width, height: sample.meta.height, boxes: sample.annotation || [], classes: pageClasses(),
        onSave: async (boxes) => {
          if (!editor.changed()) { // no new data version for nothing
            closeEditor(false);
            showMsg(msg, `Nothing changed on ${what}.`, "info");
            return;
          }
          await api("PATCH", `/projects/${enc(name)}/samples/${id}`, { label: boxes });
          closeEditor(false);
          showMsg(msg, `Saved ${plural(boxes.length, "box", "boxes")} on ${what}.`, "ok");
          refresh();
        },
      });
    });

    // New images: each opens in the editor (with the model's suggestions when one is in service)
    // and is uploaded with its boxes; several go through one upload batch = one data version.
    const input = q("#bx-files");
    let queue = [], total = 0, added = 0, batch = null, staged = 0;
    async function finish() {
      if (batch) {
        const id = batch;
        batch = null;
        try {
          if (staged) await api("POST", `/projects/${enc(name)}/batches/${enc(id)}/commit`);
          else await api("DELETE", `/projects/${enc(name)}/batches/${enc(id)}`);
        } catch (e) {
          showMsg(msg, "The images were not added: " + errorText(e), "error");
          return;
        }
      }
      if (added) showMsg(msg, `Added ${plural(added, "image")} with their boxes.`, "ok");
      if (added) refresh();
      queue = [];
    }
    function next() {
      const file = queue.shift();
      if (!file) { closeEditor(false); finish(); return; }
      const n = total - queue.length;
      const url = URL.createObjectURL(file);
      const skip = el("button", { type: "button", class: "btn", text: "Skip this image",
                                  onclick: () => { URL.revokeObjectURL(url); next(); } });
      const editor = openEditor(total > 1 ? `Image ${n} of ${total}: ${file.name}` : `Boxes of ${file.name}`, {
        src: url, title: file.name, classes: pageClasses(), extra: total > 1 ? [skip] : [],
        saveText: total > 1 && n < total ? "Add and go to the next image" : "Add image",
        note: adder.dataset.hasModel === "true" ? "Asking the model in service for suggestions…" : "",
        onSave: async (boxes) => {
          const form = new FormData();
          form.append("files", file, file.name || "image.png");
          form.append("label", JSON.stringify(boxes));
          await api("POST", `/projects/${enc(name)}/samples${batch ? "?batch=" + enc(batch) : ""}`, form);
          if (batch) staged++;
          added++;
          URL.revokeObjectURL(url);
          next();
        },
        onClose: () => { URL.revokeObjectURL(url); finish(); },
      });
      if (adder.dataset.hasModel === "true") {
        suggest(name, file).then((p) => {
          if (!open || open.editor !== editor) return; // the user moved on
          editor.setSuggestions(p.boxes || []);
          q("#bx-dialog-note").textContent = (p.boxes || []).length
            ? `Model version ${p.model_version} suggests ${plural(p.boxes.length, "box", "boxes")} (dashed).`
            : `Model version ${p.model_version} finds nothing here: draw the boxes yourself.`;
        }, (e) => {
          if (open && open.editor === editor) q("#bx-dialog-note").textContent = `No suggestions: ${errorText(e)}`;
        });
      }
    }
    async function start(files) {
      const images = Array.from(files).filter((f) => !f.type || f.type.startsWith("image/"));
      if (!images.length) { showMsg(msg, "Those were not images: nothing was added.", "error"); return; }
      queue = images; total = images.length; added = 0; staged = 0; batch = null;
      if (images.length > 1) {
        try { batch = (await api("POST", `/projects/${enc(name)}/batches`)).id; } catch (e) { batch = null; }
      }
      next();
    }
    input.addEventListener("change", () => { if (input.files.length) start(input.files); input.value = ""; });
    ns.boxes.addImages = start; // tests and drop targets hand files here
  }

  // -- try page: predict, draw the boxes, confirm or correct them into training
  const tryRoot = q("#try-boxes");
  if (tryRoot) {
    const name = tryRoot.dataset.project;
    const answer = q("#try-answer"), empty = q("#try-empty"), msg = q("#try-msg");
    const frame = q("#try-frame"), preview = q("#try-preview"), found = q("#try-found");
    let current = null, blob = null, url = null;
    const classes = () => { try { return JSON.parse(tryRoot.dataset.classes) || []; } catch (e) { return []; } };

    function fail(text) {
      answer.hidden = true;
      empty.hidden = false;
      empty.textContent = text;
      empty.className = "alert error";
    }
    async function predict(file, filename) {
      if (!file) return;
      if (file.type && !file.type.startsWith("image/")) { fail("That is not an image."); return; }
      blob = new File([file], filename || file.name || "photo.png", { type: file.type || "image/png" });
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(blob);
      empty.hidden = false;
      empty.className = "muted";
      empty.textContent = "Asking the model…";
      answer.hidden = true;
      try {
        const p = await suggest(name, blob);
        await new Promise((resolve, reject) => { preview.onload = resolve; preview.onerror = reject; preview.src = url; });
        show(p);
      } catch (e) {
        fail(e instanceof Event ? "The browser cannot show that image." : errorText(e));
      }
    }
    function show(p) {
      current = p;
      ns.lastPrediction = p;
      const boxes = p.boxes || [];
      overlay(frame, boxes, { width: preview.naturalWidth, height: preview.naturalHeight, classes: classes() });
      empty.hidden = true;
      answer.hidden = false;
      q("#try-label").textContent = boxes.length
        ? `Found ${plural(boxes.length, "object")}.`
        : "Found nothing: no object reaches the confidence threshold.";
      q("#try-meta").textContent = `Answered by model version ${p.model_version}.`;
      found.textContent = "";
      boxes.forEach((b) => {
        const cls = `bx-swatch bx-c${colourIndex(b.label, classes())}`;
        found.append(el("li", {}, el("span", { class: cls, "aria-hidden": "true" }),
                        el("span", { class: "score-name", text: b.label }),
                        el("meter", { min: "0", max: "1", value: String(b.confidence), "aria-label": `${b.label}: ${pctOf(b.confidence)} sure` }),
                        el("span", { class: "score-val mono", text: pctOf(b.confidence) }),
                        el("span", { class: "muted small bx-where", text: `${px(b.w)} × ${px(b.h)} pixels at ${px(b.x)}, ${px(b.y)}` })));
      });
      showMsg(msg, "");
      q("#try-correct").hidden = p.prediction_id === undefined || p.prediction_id === null;
    }
    async function feedback(boxes) {
      await api("POST", `/projects/${enc(name)}/predictions/${current.prediction_id}/feedback`,
                { label: boxes, add_to_training: true });
      const live = q("#live");
      const auto = live && live.dataset.autoTrain === "true";
      showMsg(msg, `Thanks: added to the training examples with ${plural(boxes.length, "box", "boxes")}. ` +
              (auto ? "The model will retrain by itself." : "Press “Train now” to retrain."), "ok");
    }
    q("#try-confirm").addEventListener("click", async () => {
      if (!current) return;
      try {
        await feedback((current.boxes || []).map((b) => ({ label: b.label, x: b.x, y: b.y, w: b.w, h: b.h })));
      } catch (e) { showMsg(msg, errorText(e), "error"); }
    });
    q("#try-fix").addEventListener("click", () => {
      if (!current) return;
      const p = current;
      openEditor("Correct the boxes", {
        src: url, title: "the photo you sent", width: preview.naturalWidth, height: preview.naturalHeight,
        suggestions: p.boxes || [], classes: classes(), saveText: "Add to training with these boxes",
        note: "The model's boxes are dashed: accept the right ones, move or resize the near misses, reject the wrong ones and draw what it missed.",
        onSave: async (boxes) => {
          await feedback(boxes);
          closeEditor(false);
        },
      });
    });

    ns.photoIntake(predict);
    ns.boxes.predict = predict;

    ns.camera(predict, fail);
  }
})();
