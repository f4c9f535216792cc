// Masks for semantic segmentation: a dependency-free mask editor over a photo (brush, eraser,
// polygon, flood fill, undo/redo, class picker with colours, opacity, zoom; mouse, touch and
// keyboard), read-only mask overlays, and the data and try pages of segmentation projects (which
// talk to the REST API through app.js).
//
// The mask is a Uint8Array of class ids at the photo's own resolution, 255 for unlabelled pixels.
// Every tool writes whole ids into it (a pixel is in or out by its centre), so nothing is ever
// blended: saving turns the ids into an RGB PNG whose every pixel is exactly a class colour (or
// the unlabelled colour), which the server decodes with the class table sent beside it.
"use strict";

(function () {
  const ns = (window.dyntrain = window.dyntrain || {});

  const UNLABELLED = 255;
  const UNLABELLED_COLOR = [224, 224, 192]; // Pascal VOC's "void": codecs.masks.UNLABELLED_COLOR
  const MAX_HISTORY = 100; // undo steps kept (each holds only the rectangle it changed)
  const CLOSE_PX = 10; // a polygon click this close (screen pixels) to its first point closes it
  const ZOOMS = [1, 1.5, 2, 3, 4, 6, 8]; // × the fitted size
  const THUMB_SIDE = 320; // longest side of a card's mask canvas (its thumbnail's size)

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
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    return e;
  }
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many || one + "s"}`;
  const pctOf = (x) => (x > 0 && x < 0.005 ? "under 1%" : `${Math.round(x * 100)}%`);

  // -- classes and colours -------------------------------------------------------------------

  // The Pascal VOC colour map, as codecs.masks.default_colors: the bits of the class id spread
  // over the three channels, class 0 black.
  function vocColour(i) {
    let r = 0, g = 0, b = 0, c = i;
    for (let j = 0; j < 8; j++) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    return [r, g, b];
  }
  // The project's class colours the page was rendered with (data-mk-colors: its class_colors
  // setting, filled from the VOC map as codecs.masks.class_colors fills it), or none.
  function pageColours() {
    const holder = document.querySelector("[data-mk-colors]");
    try { return (holder && JSON.parse(holder.dataset.mkColors)) || {}; } catch (e) { return {}; }
  }
  // {name: [r, g, b]} for a class list: given colours win, then the project's; any other class takes
  // the VOC colour of its place unless a class has it already, then the next VOC colour nobody has
  // (as codecs.masks.class_colors does), so no two classes ever share a colour.
  function colourTable(classes, given) {
    const fixed = Object.assign({}, pageColours(), given || {}), out = {};
    const key = (c) => c.join(",");
    const used = new Set(classes.filter((n) => fixed[n]).map((n) => key(fixed[n])));
    let next = 1;
    classes.forEach((name, i) => {
      if (fixed[name]) { out[name] = fixed[name]; return; }
      let c = vocColour(i);
      if (used.has(key(c))) {
        while (used.has(key(vocColour(next))) || key(vocColour(next)) === UNLABELLED_COLOR.join(",")) next++;
        c = vocColour(next);
      }
      used.add(key(c));
      out[name] = c;
    });
    return out;
  }
  const css = (rgb) => `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;

  // -- PNG masks in ----------------------------------------------------------------------------

  // The class ids of an indexed (palette or grey) PNG: the stored value *is* the id (255
  // unlabelled), whatever colours its palette gives them, so it is read here rather than drawn
  // through a canvas (which would give colours). Returns {width, height, ids}.
  async function decodeIndexedPng(buffer) {
    const bytes = new Uint8Array(buffer);
    const sig = [137, 80, 78, 71, 13, 10, 26, 10];
    if (bytes.length < 8 || sig.some((v, i) => bytes[i] !== v)) throw new Error("the mask is not a PNG file");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let pos = 8, W = 0, H = 0, depth = 0, type = -1, interlace = 0;
    const idat = [];
    while (pos + 8 <= bytes.length) {
      const len = view.getUint32(pos), kind = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
      const data = bytes.subarray(pos + 8, pos + 8 + len);
      if (kind === "IHDR") {
        W = view.getUint32(pos + 8); H = view.getUint32(pos + 12);
        depth = data[8]; type = data[9]; interlace = data[12];
      } else if (kind === "IDAT") idat.push(data);
      else if (kind === "IEND") break;
      pos += 12 + len;
    }
    if ((type !== 3 && type !== 0) || depth > 8) throw new Error("the mask is not an indexed PNG");
    if (interlace) throw new Error("interlaced PNG masks are not supported here");
    const stream = new Blob(idat).stream().pipeThrough(new DecompressionStream("deflate"));
    const raw = new Uint8Array(await new Response(stream).arrayBuffer());
    const stride = Math.ceil((W * depth) / 8);
    if (raw.length < H * (stride + 1)) throw new Error("the mask PNG is truncated");
    const rows = new Uint8Array(H * stride);
    for (let y = 0; y < H; y++) { // undo the per-row filters (1 byte per pixel at ≤ 8 bits)
      const f = raw[y * (stride + 1)], src = y * (stride + 1) + 1, out = y * stride, up = out - stride;
      for (let i = 0; i < stride; i++) {
        const a = i > 0 ? rows[out + i - 1] : 0, b = y > 0 ? rows[up + i] : 0, c = i > 0 && y > 0 ? rows[up + i - 1] : 0;
        let p = raw[src + i];
        if (f === 1) p += a;
        else if (f === 2) p += b;
        else if (f === 3) p += (a + b) >> 1;
        else if (f === 4) {
          const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
          p += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
        }
        rows[out + i] = p & 255;
      }
    }
    if (depth === 8) return { width: W, height: H, ids: rows };
    const ids = new Uint8Array(W * H), per = 8 / depth, maskBits = (1 << depth) - 1;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const byte = rows[y * stride + Math.floor(x / per)];
        ids[y * W + x] = (byte >> (8 - depth * (1 + (x % per)))) & maskBits;
      }
    }
    return { width: W, height: H, ids };
  }
  async function fetchMask(url) {
    const res = await fetch(url, { headers: { Accept: "image/png" } });
    if (!res.ok) throw new Error(`the mask could not be loaded (${res.status})`);
    return decodeIndexedPng(await res.arrayBuffer());
  }
  function base64Bytes(text) {
    const b64 = String(text).replace(/^data:[^,]*,/, "");
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  // A mask whose ids index ``from`` (names by id), renumbered to index ``to`` (names unknown to
  // ``to`` are appended to it, so nothing painted is lost; a deleted class, null, is unpainted).
  function remap(ids, from, to) {
    const lut = new Uint8Array(256).fill(UNLABELLED);
    from.forEach((name, i) => {
      if (name === null || name === undefined) return;
      let j = to.indexOf(name);
      if (j < 0) { to.push(name); j = to.length - 1; }
      lut[i] = j;
    });
    const out = new Uint8Array(ids.length);
    for (let i = 0; i < ids.length; i++) out[i] = lut[ids[i]];
    return out;
  }

  // -- painting: each writes whole ids and returns the rectangle it touched (or null) -----------

  function rect(x0, y0, x1, y1, W, H) { // pixel bounds, clipped; null when empty
    const l = Math.max(0, Math.floor(x0)), t = Math.max(0, Math.floor(y0));
    const r = Math.min(W, Math.ceil(x1)), b = Math.min(H, Math.ceil(y1));
    return r > l && b > t ? { x: l, y: t, w: r - l, h: b - t } : null;
  }
  function union(a, b) {
    if (!a) return b;
    if (!b) return a;
    const x = Math.min(a.x, b.x), y = Math.min(a.y, b.y);
    return { x, y, w: Math.max(a.x + a.w, b.x + b.w) - x, h: Math.max(a.y + a.h, b.y + b.h) - y };
  }
  // A stroke of diameter ``size`` from (x0, y0) to (x1, y1): every pixel whose centre lies within
  // size/2 of the segment (a single click paints a disc; size 1 paints the pixel under it).
  function paintStroke(ids, W, H, x0, y0, x1, y1, size, value) {
    const r = Math.max(0.5, size / 2), r2 = r * r;
    const box = rect(Math.min(x0, x1) - r, Math.min(y0, y1) - r, Math.max(x0, x1) + r, Math.max(y0, y1) + r, W, H);
    if (!box) return null;
    const dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (let y = box.y; y < box.y + box.h; y++) {
      const cy = y + 0.5;
      for (let x = box.x; x < box.x + box.w; x++) {
        const cx = x + 0.5;
        let t = len2 ? ((cx - x0) * dx + (cy - y0) * dy) / len2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const ex = cx - (x0 + t * dx), ey = cy - (y0 + t * dy);
        if (ex * ex + ey * ey <= r2) ids[y * W + x] = value;
      }
    }
    return box;
  }
  // The polygon's inside (even-odd, by pixel centres).
  function fillPolygon(ids, W, H, pts, value) {
    if (pts.length < 3) return null;
    const ys = pts.map((p) => p.y), xs = pts.map((p) => p.x);
    const box = rect(Math.min(...xs), Math.min(...ys), Math.max(...xs) + 1, Math.max(...ys) + 1, W, H);
    if (!box) return null;
    let touched = null;
    for (let y = box.y; y < box.y + box.h; y++) {
      const cy = y + 0.5, cuts = [];
      for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
        const a = pts[i], b = pts[j];
        if ((a.y <= cy) !== (b.y <= cy)) cuts.push(a.x + ((cy - a.y) / (b.y - a.y)) * (b.x - a.x));
      }
      cuts.sort((p, q) => p - q);
      for (let k = 0; k + 1 < cuts.length; k += 2) {
        const from = Math.max(0, Math.ceil(cuts[k] - 0.5)), to = Math.min(W, Math.ceil(cuts[k + 1] - 0.5));
        for (let x = from; x < to; x++) ids[y * W + x] = value;
        if (to > from) touched = union(touched, { x: from, y, w: to - from, h: 1 });
      }
    }
    return touched;
  }
  // The 4-connected region of the clicked pixel's id, repainted (a scanline fill: no recursion).
  function floodFill(ids, W, H, x, y, value) {
    x = Math.floor(x); y = Math.floor(y);
    if (x < 0 || y < 0 || x >= W || y >= H) return null;
    const target = ids[y * W + x];
    if (target === value) return null;
    let l = x, r = x, t = y, b = y;
    const stack = [x, y];
    while (stack.length) {
      const sy = stack.pop(), sx = stack.pop();
      let x0 = sx;
      while (x0 > 0 && ids[sy * W + x0 - 1] === target) x0--;
      let x1 = sx;
      while (x1 < W && ids[sy * W + x1] === target) ids[sy * W + x1++] = value;
      for (let k = x0; k < sx; k++) ids[sy * W + k] = value;
      l = Math.min(l, x0); r = Math.max(r, x1 - 1); t = Math.min(t, sy); b = Math.max(b, sy);
      for (const ny of [sy - 1, sy + 1]) {
        if (ny < 0 || ny >= H) continue;
        let inRun = false;
        for (let k = x0; k < x1; k++) {
          const same = ids[ny * W + k] === target;
          if (same && !inRun) stack.push(k, ny);
          inRun = same;
        }
      }
    }
    return { x: l, y: t, w: r - l + 1, h: b - t + 1 };
  }

  // -- drawing ids as colours ------------------------------------------------------------------

  // RGBA per id: class colours (background clear when ``skipBackground``), unlabelled clear.
  function lookup(classes, colours, skipBackground) {
    const lut = new Uint8ClampedArray(256 * 4);
    classes.forEach((name, i) => {
      if (skipBackground && i === 0) return;
      const c = colours[name] || vocColour(i);
      lut.set([c[0], c[1], c[2], 255], i * 4);
    });
    return lut;
  }
  function paintInto(image, ids, W, lut, area) {
    const px = image.data;
    for (let y = area.y; y < area.y + area.h; y++) {
      for (let x = area.x, i = y * W + area.x; x < area.x + area.w; x++, i++) {
        const o = ids[i] * 4, d = i * 4;
        px[d] = lut[o]; px[d + 1] = lut[o + 1]; px[d + 2] = lut[o + 2]; px[d + 3] = lut[o + 3];
      }
    }
  }
  // Draw ``ids`` (W × H) onto ``canvas`` at the mask's own resolution (CSS scales it over the photo).
  function drawMask(canvas, ids, W, H, classes, colours, opts) {
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(W, H);
    paintInto(image, ids, W, lookup(classes, colours, opts && opts.skipBackground), { x: 0, y: 0, w: W, h: H });
    ctx.putImageData(image, 0, 0);
    return image;
  }

  // -- masks out ---------------------------------------------------------------------------------

  // The RGB PNG of the ids, exact: each pixel its class colour, unlabelled pixels the unlabelled
  // colour, alpha 255 everywhere (so no premultiplication can shift a colour). A data: URL.
  function encodeMask(ids, W, H, classes, colours) {
    const canvas = el("canvas", { width: String(W), height: String(H) });
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(W, H);
    const lut = new Uint8ClampedArray(256 * 4);
    for (let i = 0; i < 256; i++) lut.set([...UNLABELLED_COLOR, 255], i * 4);
    classes.forEach((name, i) => { const c = colours[name]; lut.set([c[0], c[1], c[2], 255], i * 4); });
    paintInto(image, ids, W, lut, { x: 0, y: 0, w: W, h: H });
    ctx.putImageData(image, 0, 0);
    return new Promise((resolve, reject) => canvas.toBlob((blob) => {
      if (!blob) { reject(new Error("the browser could not encode the mask")); return; }
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error("the browser could not read the encoded mask"));
      reader.readAsDataURL(blob);
    }, "image/png"));
  }
  // The label the API takes: the PNG and the colour of every class in it.
  async function maskLabel(ids, W, H, classes, colours) {
    const present = new Uint8Array(256);
    for (let i = 0; i < ids.length; i++) present[ids[i]] = 1;
    const used = {};
    classes.forEach((name, i) => { if (present[i]) used[name] = colours[name]; });
    return { mask: await encodeMask(ids, W, H, classes, colours), colors: used };
  }
  // {class: fraction of the labelled pixels} of a mask.
  function areas(ids, classes) {
    const counts = new Array(256).fill(0);
    for (let i = 0; i < ids.length; i++) counts[ids[i]]++;
    const labelled = ids.length - counts[UNLABELLED];
    const out = {};
    classes.forEach((name, i) => { if (counts[i]) out[name] = counts[i] / labelled; });
    return { fractions: out, labelled: labelled / (ids.length || 1) };
  }

  // -- the editor --------------------------------------------------------------------------------

  /**
   * A mask editor in ``host``.
   * opts: src (the photo's URL, at its own size: the mask has its pixels), classes (names by id;
   * 1–9 pick them), colors ({name: [r, g, b]}; the others get the VOC colour of their place), mask
   * ({ids, width, height, classes} to start from: a stored or a predicted mask), title, saveText,
   * onSave(label, editor) (may return a promise; its rejection's message is shown),
   * onCancel(), onChange().
   * Returns {root, ready, value (the ids), label, classes, colours, setTool, setClass, setSize,
   * setOpacity, addClass, load, undo, redo, save, cancel, changed, focus, destroy, size}.
   */
  function createEditor(host, opts) {
    opts = Object.assign({ classes: [], colors: {}, title: "the photo", saveText: "Save mask" }, opts);
    const uid = `mk${++createEditor.count}`;
    const classes = opts.classes.slice();
    if (!classes.length) classes.push("background");
    let colours = colourTable(classes, opts.colors);
    let W = 0, H = 0, ids = null, image = null, lut = null;
    let tool = "brush", current = Math.min(1, classes.length - 1), size = 0, opacity = 0.6, zoom = 0; // 0: fit
    const past = [], future = [];
    let stroke = null, poly = [], busy = false, initial = "";

    // -- DOM
    const toolBtn = (name, text, key) => el("button", { type: "button", class: "btn small mk-tool", "data-tool": name,
                                                          "aria-pressed": "false", "aria-keyshortcuts": key, text,
                                                          onclick: () => { setTool(name); stage.focus(); } });
    const tools = el("div", { class: "mk-tools", role: "group", "aria-label": "Tool" },
                     toolBtn("brush", "Brush", "B"), toolBtn("eraser", "Eraser", "E"),
                     toolBtn("polygon", "Polygon", "P"), toolBtn("fill", "Fill", "F"));
    const sizeIn = el("input", { type: "range", id: `${uid}-size`, min: "1", max: "100", value: "10" });
    const sizeOut = el("output", { for: `${uid}-size`, class: "mono small" });
    const opacityIn = el("input", { type: "range", id: `${uid}-opacity`, min: "0", max: "100", value: "60" });
    const undoBtn = el("button", { type: "button", class: "btn small", text: "Undo", "aria-keyshortcuts": "Control+Z",
                                   onclick: () => { undo(); stage.focus(); } });
    const redoBtn = el("button", { type: "button", class: "btn small", text: "Redo", "aria-keyshortcuts": "Control+Shift+Z",
                                   onclick: () => { redo(); stage.focus(); } });
    const restBtn = el("button", { type: "button", class: "btn small", text: "Unpainted → background",
                                   title: "Give every pixel nobody painted the class background",
                                   onclick: () => { fillUnlabelled(); stage.focus(); } });
    const clearBtn = el("button", { type: "button", class: "btn small danger", text: "Clear",
                                    title: "Unpaint everything (undo brings it back)",
                                    onclick: () => { clearAll(); stage.focus(); } });
    const zoomOut = el("button", { type: "button", class: "btn small", text: "−", "aria-label": "Zoom out", title: "Zoom out (-)",
                                   onclick: () => { setZoom(-1); stage.focus(); } });
    const zoomIn = el("button", { type: "button", class: "btn small", text: "+", "aria-label": "Zoom in", title: "Zoom in (+)",
                                  onclick: () => { setZoom(1); stage.focus(); } });
    const zoomFit = el("button", { type: "button", class: "btn small", text: "Fit", title: "Fit the photo (0)",
                                   onclick: () => { setZoom(0); stage.focus(); } });
    const swatches = el("div", { class: "mk-classes", role: "group", "aria-label": "Class to paint" });
    const newName = el("input", { id: `${uid}-new`, class: "mk-new-name", autocomplete: "off", maxlength: "100", placeholder: "e.g. cup" });
    const newForm = el("div", { class: "mk-new inline-form" },
                       el("label", { for: `${uid}-new`, text: "New class" }), newName,
                       el("button", { type: "button", class: "btn small", text: "Add class", onclick: () => addNewClass() }));
    const img = el("img", { alt: "", draggable: "false" });
    const canvas = el("canvas", { class: "mk-mask", "aria-hidden": "true" });
    const guide = svg("svg", { class: "mk-guide", "aria-hidden": "true", preserveAspectRatio: "none" });
    const cursor = svg("circle", { class: "mk-cursor", r: "0", cx: "-100", cy: "-100" });
    const path = svg("polyline", { class: "mk-path", points: "" });
    const start = svg("circle", { class: "mk-start", r: "0" });
    const cross = svg("path", { class: "mk-kb", d: "" }); // the keyboard's cursor
    guide.append(path, start, cursor, cross);
    const stage = el("div", { class: "mk-stage", tabindex: "0", role: "application", "aria-roledescription": "mask editor",
                              "aria-label": `Mask of ${opts.title}`, "aria-describedby": `${uid}-help` }, img, canvas, guide);
    const wrap = el("div", { class: "mk-stage-wrap" }, stage);
    const status = el("p", { class: "mk-status small", role: "status", "aria-live": "polite" });
    const legend = el("ul", { class: "mk-legend small", "aria-label": "How much of the photo each class covers" });
    const saveBtn = el("button", { type: "button", class: "btn primary mk-save", text: opts.saveText, onclick: () => save() });
    const cancelBtn = el("button", { type: "button", class: "btn mk-cancel", text: "Cancel", onclick: () => cancel() });
    const help = el("div", { id: `${uid}-help`, class: "mk-help small muted" },
      el("p", { text: "Paint the pixels of each class with the brush, or click around an object with the polygon and close it " +
                      "on its first point; Fill repaints a whole connected area. Pixels left unpainted are ignored in training." }),
      el("details", {}, el("summary", { text: "Keyboard shortcuts" }),
         el("ul", {}, ...[
           ["B / E / P / F", "brush / eraser / polygon / fill"], ["1–9", "paint with that class"],
           ["Arrows", "move the cursor (Alt: by one pixel)"], ["Shift+Arrows", "paint (or erase) along the way"],
           ["Space", "a dab of the brush, a polygon point, or fill, at the cursor"],
           ["[ and ]", "smaller / bigger brush"], ["+ / − / 0", "zoom in / out / fit"],
           ["Enter", "close the polygon, or save"], ["Backspace", "take back the polygon's last point"],
           ["Ctrl+Z / Ctrl+Shift+Z", "undo / redo"], ["Esc", "drop the polygon, or cancel"]]
           .map(([k, v]) => el("li", {}, el("kbd", { text: k }), ` ${v}`)))));
    const root = el("div", { class: "mk-editor" },
      el("div", { class: "mk-toolbar" }, tools,
         el("label", { for: `${uid}-size`, class: "mk-slider" }, "Size ", sizeIn, sizeOut),
         el("label", { for: `${uid}-opacity`, class: "mk-slider" }, "Mask opacity ", opacityIn),
         el("span", { class: "mk-zoom", role: "group", "aria-label": "Zoom" }, zoomOut, zoomFit, zoomIn),
         undoBtn, redoBtn, restBtn, clearBtn),
      swatches, newForm, wrap, status, legend, help,
      el("div", { class: "actions mk-actions" }, saveBtn, cancelBtn));
    host.textContent = "";
    host.append(root);

    // -- image and starting mask
    const ready = new Promise((resolve, reject) => {
      img.addEventListener("load", () => {
        W = img.naturalWidth; H = img.naturalHeight;
        ids = new Uint8Array(W * H).fill(UNLABELLED);
        if (opts.mask && opts.mask.ids) {
          if (opts.mask.width !== W || opts.mask.height !== H) {
            say(`The mask is ${opts.mask.width}×${opts.mask.height} but the photo ${W}×${H}: starting from an empty mask.`);
          } else {
            ids = remap(opts.mask.ids, opts.mask.classes || classes, classes);
            colours = colourTable(classes, Object.assign({}, opts.colors, colours));
          }
        }
        initial = digest();
        guide.setAttribute("viewBox", `0 0 ${W} ${H}`);
        const longest = Math.max(W, H);
        sizeIn.max = String(Math.max(16, Math.round(longest / 6)));
        setSize(Math.max(2, Math.round(longest / 40)));
        setZoom(0, true);
        image = drawMask(canvas, ids, W, H, classes, colours);
        render();
        resolve();
      });
      img.addEventListener("error", () => {
        say("The photo could not be shown, so its mask cannot be painted here.");
        reject(new Error("image failed to load"));
      });
    });
    ready.catch(() => {});
    img.src = opts.src;

    // -- state
    function say(text) { status.textContent = text; }
    function digest() { // a cheap fingerprint of the ids, to tell "changed" from "painted back"
      let h = 2166136261;
      for (let i = 0; i < ids.length; i++) h = Math.imul(h ^ ids[i], 16777619);
      return `${ids.length}:${h >>> 0}`;
    }
    function redraw(area) {
      if (!area) return;
      paintInto(image, ids, W, lut || (lut = lookup(classes, colours)), area);
      canvas.getContext("2d").putImageData(image, 0, 0, area.x, area.y, area.w, area.h);
    }
    // One undoable step: ``paint`` changes ids (and returns the rectangle it touched); the step
    // keeps that rectangle before and after.
    function step(paint, words) {
      const before = ids.slice();
      const area = paint();
      if (!area) return false;
      commit(before, area, words);
      return true;
    }
    function commit(before, area, words) {
      const cut = (src) => {
        const out = new Uint8Array(area.w * area.h);
        for (let y = 0; y < area.h; y++) out.set(src.subarray((area.y + y) * W + area.x, (area.y + y) * W + area.x + area.w), y * area.w);
        return out;
      };
      past.push({ area, before: cut(before), after: cut(ids) });
      if (past.length > MAX_HISTORY) past.shift();
      future.length = 0;
      redraw(area);
      changed(words);
    }
    function put(area, data) {
      for (let y = 0; y < area.h; y++) ids.set(data.subarray(y * area.w, (y + 1) * area.w), (area.y + y) * W + area.x);
      redraw(area);
    }
    function undo() {
      const s = past.pop();
      if (!s) { say("Nothing to undo."); return; }
      future.push(s); put(s.area, s.before); changed("Undone.");
    }
    function redo() {
      const s = future.pop();
      if (!s) { say("Nothing to redo."); return; }
      past.push(s); put(s.area, s.after); changed("Redone.");
    }
    function changed(words) {
      render();
      if (words) say(words);
      if (opts.onChange) opts.onChange();
    }
    function fillUnlabelled() {
      step(() => {
        let area = null;
        for (let i = 0; i < ids.length; i++) if (ids[i] === UNLABELLED) { ids[i] = 0; area = true; }
        return area && { x: 0, y: 0, w: W, h: H };
      }, `Every unpainted pixel is now ${classes[0]}.`) || say("Every pixel is painted already.");
    }
    function clearAll() {
      step(() => {
        let any = false;
        for (let i = 0; i < ids.length; i++) if (ids[i] !== UNLABELLED) { ids[i] = UNLABELLED; any = true; }
        return any && { x: 0, y: 0, w: W, h: H };
      }, "Cleared: nothing is painted.") || say("Nothing is painted yet.");
    }

    // -- settings
    function setTool(name) {
      if (name !== "polygon") dropPolygon();
      tool = name;
      render();
      say({ brush: `Brush: paint ${classes[current]} (size ${size} px).`, eraser: `Eraser: unpaint (size ${size} px).`,
            polygon: `Polygon: click around the ${classes[current]}; click the first point (or press Enter) to fill it.`,
            fill: `Fill: click an area to paint all of it ${classes[current]}.` }[name]);
    }
    function setClass(i) {
      if (typeof i === "string") i = classes.indexOf(i);
      if (i < 0 || i >= classes.length) { say(`There is no class ${i + 1}: there ${classes.length === 1 ? "is" : "are"} ${classes.length}.`); return; }
      current = i;
      if (tool === "eraser") tool = "brush";
      render();
      say(`Painting ${classes[i]}.`);
    }
    function setSize(v) {
      size = clamp(Math.round(Number(v) || 1), 1, Number(sizeIn.max));
      sizeIn.value = String(size);
      sizeOut.value = `${size} px`;
    }
    function setOpacity(v) {
      opacity = clamp(Number(v), 0, 1);
      opacityIn.value = String(Math.round(opacity * 100));
      canvas.style.opacity = String(opacity);
    }
    setOpacity(opacity);
    function setZoom(dir, quiet) {
      const i = ZOOMS.indexOf(zoom || 1);
      zoom = dir === 0 ? 0 : ZOOMS[clamp(i + dir, 0, ZOOMS.length - 1)];
      if (zoom <= 1 && dir < 0) zoom = 0;
      if (!W) return;
      if (!zoom) { stage.classList.remove("mk-zoomed"); stage.style.width = ""; }
      else {
        // the fitted width, times the zoom: the pointer maps through the drawn size, so painting
        // lands on the same pixels at any zoom
        stage.classList.remove("mk-zoomed");
        stage.style.width = "";
        const fitted = img.getBoundingClientRect().width || W;
        stage.classList.add("mk-zoomed");
        stage.style.width = `${Math.round(fitted * zoom)}px`;
      }
      zoomFit.setAttribute("aria-pressed", String(!zoom));
      if (!quiet) say(zoom ? `Zoom ${zoom}×.` : "Fitted to the window.");
    }
    function addClass(name) {
      name = String(name || "").trim();
      if (!name) return false;
      if (name.includes("/")) { say("A class name cannot hold “/”: choose another."); return false; }
      if (!classes.includes(name)) {
        if (classes.length >= 255) { say("255 classes is the most a mask can hold."); return false; }
        classes.push(name);
        colours = colourTable(classes, colours);
        lut = null;
      }
      setClass(classes.indexOf(name));
      return true;
    }
    function addNewClass() {
      if (addClass(newName.value)) { newName.value = ""; stage.focus(); } else newName.focus();
    }
    newName.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); addNewClass(); }
    });
    sizeIn.addEventListener("input", () => setSize(sizeIn.value));
    opacityIn.addEventListener("input", () => setOpacity(Number(opacityIn.value) / 100));

    // -- rendering the controls
    function render() {
      tools.querySelectorAll("[data-tool]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.tool === tool)));
      stage.dataset.tool = tool;
      undoBtn.disabled = !past.length;
      redoBtn.disabled = !future.length;
      swatches.textContent = "";
      classes.forEach((name, i) => {
        const on = i === current && tool !== "eraser";
        swatches.append(el("button", { type: "button", class: "mk-class", "data-class": name, "aria-pressed": String(on),
                                       "aria-keyshortcuts": i < 9 ? String(i + 1) : null,
                                       onclick: () => { setClass(i); stage.focus(); } },
                           swatch(colours[name]), i < 9 ? el("kbd", { text: String(i + 1) }) : null, ` ${name}`));
      });
      if (!W) return;
      const a = areas(ids, classes);
      legend.textContent = "";
      const shown = Object.entries(a.fractions).sort((p, q) => q[1] - p[1]);
      shown.forEach(([name, f]) => legend.append(el("li", {}, swatch(colours[name]), ` ${name} ${pctOf(f * a.labelled)}`)));
      legend.append(el("li", { class: "muted", text: a.labelled >= 1 ? "every pixel is painted"
                                                                   : `${pctOf(1 - a.labelled)} unpainted (ignored in training)` }));
      root.dataset.painted = String(Math.round(a.labelled * ids.length));
    }
    function swatch(rgb) {
      const s = el("span", { class: "mk-swatch", "aria-hidden": "true" });
      s.style.background = css(rgb);
      return s;
    }

    // -- pointer: mouse, pen and touch (touch-action: none in masks.css keeps a finger's stroke
    // from scrolling the page)
    function at(ev) {
      const r = canvas.getBoundingClientRect();
      return { x: ((ev.clientX - r.left) / r.width) * W, y: ((ev.clientY - r.top) / r.height) * H,
               sx: ev.clientX, sy: ev.clientY, scale: W / r.width };
    }
    function showCursor(p) {
      if (!p || (tool !== "brush" && tool !== "eraser")) { cursor.setAttribute("r", "0"); return; }
      cursor.setAttribute("cx", String(p.x)); cursor.setAttribute("cy", String(p.y));
      cursor.setAttribute("r", String(Math.max(0.5, size / 2)));
    }
    stage.addEventListener("pointerdown", (ev) => {
      if (!W || (ev.pointerType === "mouse" && ev.button !== 0) || stroke || busy) return;
      ev.preventDefault();
      stage.focus({ preventScroll: true });
      if (kb) { kb = null; showKb(); }
      const p = at(ev);
      if (tool === "fill") {
        const value = current;
        if (!step(() => floodFill(ids, W, H, p.x, p.y, value), `Filled an area with ${classes[value]}.`)) {
          say(p.x < 0 || p.y < 0 || p.x >= W || p.y >= H ? "Click on the photo." : `That area is ${classes[value]} already.`);
        }
        return;
      }
      if (tool === "polygon") { addPoint(p); return; }
      const value = tool === "eraser" ? UNLABELLED : current;
      stroke = { pointer: ev.pointerId, last: p, before: ids.slice(), area: null, value };
      stroke.area = union(stroke.area, paintStroke(ids, W, H, p.x, p.y, p.x, p.y, size, value));
      redraw(stroke.area);
      try { stage.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic events */ }
    });
    stage.addEventListener("pointermove", (ev) => {
      const p = at(ev);
      showCursor(ev.pointerType === "touch" ? null : p);
      if (tool === "polygon") drawPolygon(p);
      if (!stroke || ev.pointerId !== stroke.pointer) return;
      ev.preventDefault();
      // coalesced events: every sample a fast stroke went through, not only the last one
      const samples = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [];
      (samples.length ? samples : [ev]).forEach((e) => {
        const q2 = at(e);
        const area = paintStroke(ids, W, H, stroke.last.x, stroke.last.y, q2.x, q2.y, size, stroke.value);
        stroke.area = union(stroke.area, area);
        stroke.last = q2;
        redraw(area);
      });
    });
    stage.addEventListener("pointerleave", () => showCursor(null));
    function endStroke(keep) {
      const s = stroke;
      stroke = null;
      if (!s) return;
      try { stage.releasePointerCapture(s.pointer); } catch (e) { /* already released */ }
      if (!s.area) return;
      if (!keep) { ids.set(s.before); redraw(s.area); say("Stroke cancelled."); return; }
      commit(s.before, s.area, s.value === UNLABELLED ? "Erased." : `Painted ${classes[s.value]}.`);
    }
    stage.addEventListener("pointerup", (ev) => { if (stroke && ev.pointerId === stroke.pointer) endStroke(true); });
    stage.addEventListener("pointercancel", (ev) => { if (stroke && ev.pointerId === stroke.pointer) endStroke(false); });
    stage.addEventListener("lostpointercapture", (ev) => { if (stroke && ev.pointerId === stroke.pointer) endStroke(true); });

    // -- polygon
    function addPoint(p) {
      if (poly.length >= 3) {
        const first = poly[0];
        if (Math.hypot((p.x - first.x) / p.scale, (p.y - first.y) / p.scale) <= CLOSE_PX) { closePolygon(); return; }
      }
      poly.push({ x: clamp(p.x, 0, W), y: clamp(p.y, 0, H) });
      drawPolygon(null);
      say(poly.length < 3 ? `Point ${poly.length}: keep clicking around the ${classes[current]}.`
                          : `Point ${poly.length}: click the first point or press Enter to fill it with ${classes[current]}.`);
    }
    function drawPolygon(hover) {
      const pts = poly.concat(hover && poly.length ? [hover] : []);
      path.setAttribute("points", pts.map((p) => `${p.x},${p.y}`).join(" "));
      const first = poly[0];
      start.setAttribute("r", first ? String(CLOSE_PX * (W / (canvas.getBoundingClientRect().width || W))) : "0");
      if (first) { start.setAttribute("cx", String(first.x)); start.setAttribute("cy", String(first.y)); }
    }
    function closePolygon() {
      if (poly.length < 3) { say("A polygon needs at least 3 points."); return; }
      const pts = poly, value = current;
      poly = [];
      drawPolygon(null);
      if (!step(() => fillPolygon(ids, W, H, pts, value), `Filled the polygon with ${classes[value]}.`)) say("The polygon covers no pixel's centre.");
    }
    function dropPolygon() { if (poly.length) { poly = []; drawPolygon(null); say("Polygon dropped."); } }

    // -- the keyboard's cursor: arrows move it (Alt: by one pixel), Shift+arrows paint or erase
    // along the way, Space acts where it is (a dab of the brush, a polygon point, a fill); the
    // status line says where it is and what is painted there
    let kb = null; // {x, y}: the centre of a photo pixel
    function showKb() {
      if (!kb) { cross.setAttribute("d", ""); showCursor(null); return; }
      const r = Math.max(4, (W / (canvas.getBoundingClientRect().width || W)) * 8);
      cross.setAttribute("d", `M${kb.x - r} ${kb.y}H${kb.x + r}M${kb.x} ${kb.y - r}V${kb.y + r}`);
      showCursor(kb);
    }
    function moveKb(dx, dy, paint, fine) {
      if (!W) return;
      const sx = fine ? 1 : Math.max(1, Math.round(W / 100)), sy = fine ? 1 : Math.max(1, Math.round(H / 100));
      const from = kb || { x: Math.floor(W / 2) + 0.5, y: Math.floor(H / 2) + 0.5 };
      const to = kb ? { x: clamp(from.x + dx * sx, 0.5, W - 0.5), y: clamp(from.y + dy * sy, 0.5, H - 0.5) } : from;
      kb = to;
      showKb();
      if (tool === "polygon") drawPolygon(kb);
      let words = "";
      if (paint && (tool === "brush" || tool === "eraser")) {
        const value = tool === "eraser" ? UNLABELLED : current;
        step(() => paintStroke(ids, W, H, from.x, from.y, to.x, to.y, size, value), "");
        words = value === UNLABELLED ? "erased to " : `painted ${classes[value]} to `;
      }
      const here = ids[Math.floor(kb.y) * W + Math.floor(kb.x)];
      say(`${sentenceCase(words)}${Math.floor(kb.x)}, ${Math.floor(kb.y)}: ${here === UNLABELLED ? "unpainted" : classes[here]}.`);
    }
    function actKb() {
      if (!kb) { moveKb(0, 0, false, false); return; } // the first Space shows the cursor, in the middle
      const p = { x: kb.x, y: kb.y, scale: W / (canvas.getBoundingClientRect().width || W) };
      if (tool === "polygon") { addPoint(p); return; }
      const value = tool === "eraser" ? UNLABELLED : current;
      if (tool === "fill") {
        if (!step(() => floodFill(ids, W, H, p.x, p.y, value), `Filled an area with ${classes[value]}.`)) say(`That area is ${classes[value]} already.`);
        return;
      }
      step(() => paintStroke(ids, W, H, p.x, p.y, p.x, p.y, size, value), value === UNLABELLED ? "Erased." : `Painted ${classes[value]}.`);
    }
    const sentenceCase = (t) => t.charAt(0).toUpperCase() + t.slice(1);

    // -- keyboard
    stage.addEventListener("keydown", (ev) => {
      if (ev.target !== stage) return;
      const k = ev.key, mod = ev.ctrlKey || ev.metaKey;
      let done = true;
      if (mod && (k === "z" || k === "Z")) ev.shiftKey ? redo() : undo();
      else if (mod && (k === "y" || k === "Y")) redo();
      else if (mod || (ev.altKey && !k.startsWith("Arrow"))) done = false; // the browser's and the system's shortcuts
      else if (k.startsWith("Arrow")) {
        const d = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[k];
        if (d) moveKb(d[0], d[1], ev.shiftKey, ev.altKey); else done = false;
      }
      else if (k === " ") actKb();
      else if (k === "Escape") { if (poly.length) dropPolygon(); else cancel(); }
      else if (k === "Enter") { if (poly.length) closePolygon(); else save(); }
      else if (k === "Backspace" && poly.length) { poly.pop(); drawPolygon(null); say(`${plural(poly.length, "point")} left.`); }
      else if (/^[1-9]$/.test(k)) setClass(Number(k) - 1);
      else if (k === "b" || k === "B") setTool("brush");
      else if (k === "e" || k === "E") setTool("eraser");
      else if (k === "p" || k === "P") setTool("polygon");
      else if (k === "f" || k === "F") setTool("fill");
      else if (k === "[") { setSize(size > 8 ? Math.round(size / 1.25) : size - 1); say(`Size ${size} px.`); }
      else if (k === "]") { setSize(size >= 8 ? Math.round(size * 1.25) : size + 1); say(`Size ${size} px.`); }
      else if (k === "+" || k === "=") setZoom(1);
      else if (k === "-") setZoom(-1);
      else if (k === "0") setZoom(0);
      else done = false;
      if (done) { ev.preventDefault(); ev.stopPropagation(); }
    });

    // -- save and cancel
    async function label() { return maskLabel(ids, W, H, classes, colours); }
    async function save() {
      if (busy || !W) return;
      if (stroke) endStroke(true);
      busy = true;
      saveBtn.disabled = true;
      say("Saving…");
      try {
        const value = await label();
        if (opts.onSave) await opts.onSave(value, self);
        say("Saved.");
      } catch (e) {
        say(`Not saved: ${(ns.errorText ? ns.errorText(e) : e.message) || e}`);
        root.dataset.refused = String(e.status || "");
      } finally {
        busy = false;
        saveBtn.disabled = false;
      }
    }
    function cancel() {
      if (stroke) { endStroke(false); return; }
      if (opts.onCancel) opts.onCancel();
    }

    // Start from ``mask`` ({ids, width, height, classes}), e.g. the model's: one undoable step.
    function load(mask, words) {
      if (!W || mask.width !== W || mask.height !== H) return false;
      const next = remap(mask.ids, mask.classes || classes, classes);
      colours = colourTable(classes, colours);
      lut = null;
      render();
      return step(() => { ids.set(next); return { x: 0, y: 0, w: W, h: H }; }, words);
    }

    const self = {
      root, ready, label, undo, redo, save, cancel, setTool, setClass, setSize, setOpacity, addClass, load,
      value: () => ids, classes: () => classes.slice(), colours: () => Object.assign({}, colours),
      changed: () => !!ids && digest() !== initial,
      focus: () => stage.focus(),
      destroy() { createEditor.live.delete(self); host.textContent = ""; },
      size: () => ({ width: W, height: H }),
    };
    createEditor.live.add(self);
    render();
    setTool("brush");
    return self;
  }
  createEditor.count = 0;
  createEditor.live = new Set(); // open editors, for tests and for pages that close them

  // A read-only mask on ``canvas`` (laid over its photo by CSS): the mask's colours in the order of
  // ``classes`` (so every view colours a class alike), background and unlabelled pixels clear.
  // ``maxSide`` (optional) draws it smaller, nearest pixel (a thumbnail needs no 12-megapixel canvas).
  function drawOverlay(canvas, mask, classes, colours, maxSide) {
    const names = classes.slice();
    let ids = remap(mask.ids, mask.classes || names, names), W = mask.width, H = mask.height;
    const scale = maxSide ? Math.min(1, maxSide / Math.max(W, H)) : 1;
    if (scale < 1) {
      const w = Math.max(1, Math.round(W * scale)), h = Math.max(1, Math.round(H * scale));
      const small = new Uint8Array(w * h);
      for (let y = 0; y < h; y++) {
        const row = Math.min(H - 1, Math.floor(((y + 0.5) * H) / h)) * W;
        for (let x = 0; x < w; x++) small[y * w + x] = ids[row + Math.min(W - 1, Math.floor(((x + 0.5) * W) / w))];
      }
      ids = small; W = w; H = h;
    }
    drawMask(canvas, ids, W, H, names, colourTable(names, colours), { skipBackground: true });
    return canvas;
  }
  // The same over the <img> inside ``frame`` (the canvas is added to it once).
  function overlay(frame, mask, classes, colours) {
    frame.classList.add("mk-frame");
    let canvas = frame.querySelector(":scope > canvas.mk-overlay");
    if (!canvas) frame.append(canvas = el("canvas", { class: "mk-overlay", "aria-hidden": "true" }));
    return drawOverlay(canvas, mask, classes, colours);
  }

  ns.masks = { createEditor, overlay, drawOverlay, decodeIndexedPng, fetchMask, base64Bytes, encodeMask, maskLabel, areas,
               colourTable, vocColour, remap, paintStroke, fillPolygon, floodFill, UNLABELLED, UNLABELLED_COLOR };

  // -- a recorded prediction's page: the mask the model painted, kept with the photo, over it ------
  const recorded = document.getElementById("prediction-mask");
  if (recorded) {
    const parse = (key) => { try { return JSON.parse(recorded.dataset[key]) || []; } catch (e) { return []; } };
    const names = parse("classes"), frame = document.getElementById("prediction-mask-frame");
    const state = document.getElementById("prediction-mask-state");
    const slider = document.getElementById("prediction-opacity");
    const table = colourTable(names);
    document.querySelectorAll("#prediction-areas [data-mk-class]").forEach((s) => {
      const c = table[s.dataset.mkClass];
      if (c) s.style.background = css(c);
    });
    fetchMask(recorded.dataset.maskUrl).then((mask) => {
      mask.classes = parse("maskClasses");
      const canvas = overlay(frame, mask, names);
      const fade = () => { canvas.style.opacity = String(Number(slider.value) / 100); };
      slider.addEventListener("input", fade);
      fade();
      recorded.dataset.drawn = "yes";
    }, (e) => {
      recorded.dataset.drawn = "failed";
      if (state) state.textContent = e.message;
    });
  }

  // -- pages of segmentation projects (need app.js) ---------------------------------------------
  if (!ns.api) return;
  const { api, q, qa, enc, showMsg, errorText } = ns;

  // The editor in a modal dialog (one per page, built here); closing it (Esc, ✕, Cancel) calls
  // opts.onClose.
  let dialog = null, open = null; // open: {editor, onClose}
  function openEditor(heading, opts) {
    if (!dialog) {
      dialog = el("dialog", { class: "mk-dialog", id: "mk-dialog", "aria-labelledby": "mk-dialog-h" },
        el("div", { class: "mk-dialog-head" }, el("h2", { id: "mk-dialog-h" }),
           el("button", { type: "button", class: "icon-btn", "aria-label": "Close without saving", title: "Close without saving",
                          text: "✕", onclick: () => closeEditor(true) })),
        el("p", { id: "mk-dialog-note", class: "mk-dialog-note muted small", role: "status", "aria-live": "polite" }),
        el("div", { id: "mk-dialog-editor" }));
      dialog.addEventListener("cancel", (ev) => { ev.preventDefault(); closeEditor(true); });
      document.body.append(dialog);
    }
    closeEditor(false);
    q("#mk-dialog-h").textContent = heading;
    note(opts.note || "");
    const editor = createEditor(q("#mk-dialog-editor"), Object.assign({}, opts, { onCancel: () => closeEditor(true) }));
    (opts.extra || []).forEach((b) => editor.root.querySelector(".mk-actions").append(b));
    open = { editor, onClose: opts.onClose };
    if (!dialog.open) dialog.showModal();
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
  function note(text) { const n = q("#mk-dialog-note"); if (n) n.textContent = text; }
  const isOpen = (editor) => open && open.editor === editor;
  ns.masks.openEditor = openEditor;
  ns.masks.closeEditor = closeEditor;

  function listOf(holder, key) {
    try { return JSON.parse(holder.dataset[key]) || []; } catch (e) { return []; }
  }

  // What the model in service paints on ``file``: {mask: {ids, width, height, classes}, answer}.
  async function predictMask(project, file) {
    const form = new FormData();
    form.append("files", file, file.name || "photo.png");
    const res = await api("POST", `/projects/${enc(project)}/predict`, form);
    const p = res.predictions[0];
    if (p.error) throw new Error(p.error);
    const mask = await decodeIndexedPng(base64Bytes(p.mask));
    mask.classes = p.classes;
    return { mask, answer: p };
  }
  // "sky covers 42% of the photo, tree 13%, …" (background last: it is what is left).
  function areaWords(fractions) {
    const painted = Object.entries(fractions || {}).filter(([, f]) => f > 0).sort((a, b) => b[1] - a[1]);
    const things = painted.filter(([name]) => name !== "background");
    if (!things.length) return "Nothing but background.";
    const [first, ...rest] = things;
    return `${first[0]} covers ${pctOf(first[1])} of the photo` +
           rest.map(([name, f]) => `, ${name} ${pctOf(f)}`).join("") + ".";
  }
  ns.masks.areaWords = areaWords;

  // -- data page: masks over the thumbnails; edit a sample's mask; add photos, painting them first
  const adder = q("#mk-add");
  if (adder) {
    const name = adder.dataset.project;
    const msg = q("#data-msg");
    const refresh = () => ns.refreshFragment(q("#data"), 0);
    const pageClasses = () => { const h = q("[data-mk-classes]"); return h ? listOf(h, "mkClasses") : ["background"]; };

    // each card's mask (its indexed PNG, fetched once the card comes into
    // view), again after a refresh
    function drawCard(canvas) {
      if (canvas.dataset.drawn) return;
      canvas.dataset.drawn = "pending";
      fetchMask(canvas.dataset.maskUrl).then((mask) => {
        mask.classes = listOf(canvas, "maskClasses");
        drawOverlay(canvas, mask, pageClasses(), null, THUMB_SIDE);
        canvas.dataset.drawn = "yes";
      }, () => { canvas.dataset.drawn = "failed"; });
    }
    const seen = "IntersectionObserver" in window ? new IntersectionObserver((entries) => entries.forEach((en) => {
      if (en.isIntersecting) { seen.unobserve(en.target); drawCard(en.target); }
    }), { rootMargin: "300px" }) : null;
    function paintCards() {
      qa("canvas.mk-overlay[data-mask-url]:not([data-drawn])").forEach((c) => (seen ? seen.observe(c) : drawCard(c)));
    }
    paintCards();
    document.addEventListener("dyntrain:refreshed", paintCards);

    // A class's colour changed beside its name: the project's class_colors (every class's current
    // colour, pinned), then every mask on the page redrawn in it; a refusal (two classes alike)
    // puts the input back.
    document.addEventListener("change", async (ev) => {
      const input = ev.target.closest("input[data-set-colour]");
      if (!input) return;
      const cls = input.dataset.setColour, hex = input.value;
      const rgb = [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
      const colors = Object.assign(colourTable(pageClasses()), { [cls]: rgb });
      try {
        await api("PATCH", `/projects/${enc(name)}`, { settings: { class_colors: colors } });
        showMsg(msg, `${cls} is now drawn in its new colour.`, "ok");
        refresh();
      } catch (e) {
        const was = colourTable(pageClasses())[cls];
        input.value = "#" + was.map((v) => v.toString(16).padStart(2, "0")).join("");
        showMsg(msg, errorText(e), "error");
      }
    });

    document.addEventListener("click", async (ev) => {
      const btn = ev.target.closest("[data-edit-mask]");
      if (!btn) return;
      const id = btn.dataset.editMask, what = btn.dataset.name || "the photo";
      const base = `/api/v1/projects/${enc(name)}/samples/${id}`;
      let sample, mask = null;
      try {
        sample = await api("GET", `/projects/${enc(name)}/samples/${id}`);
        const a = sample.annotation || {};
        if (a.mask) {
          mask = await fetchMask(`${base}/blobs/${a.mask}`);
          mask.classes = a.classes;
        }
      } catch (e) {
        showMsg(msg, errorText(e), "error");
        return;
      }
      const editor = openEditor(`Mask of ${what}`, {
        src: `${base}/image`, title: what, classes: pageClasses(), mask,
        onSave: async (label) => {
          if (!editor.changed()) { // no new data version for nothing
            closeEditor(false);
            showMsg(msg, `Nothing changed on ${what}.`, "info");
            return;
          }
          await api("PATCH", `/projects/${enc(name)}/samples/${id}`, { label });
          closeEditor(false);
          showMsg(msg, `Saved the mask of ${what}.`, "ok");
          refresh();
        },
      });
    });

    // New photos: each opens in the editor (starting from the model's mask when one is in
    // service) and is uploaded with its mask; several go through one upload batch = one data
    // version.
    const input = q("#mk-files");
    let queue = [], total = 0, added = 0, batch = null, staged = 0;
    async function finish() {
      if (batch) {
        const id = batch;
        batch = null;
        try {
          if (staged) await api("POST", `/projects/${enc(name)}/batches/${enc(id)}/commit`);
          else await api("DELETE", `/projects/${enc(name)}/batches/${enc(id)}`);
        } catch (e) {
          showMsg(msg, "The photos were not added: " + errorText(e), "error");
          return;
        }
      }
      if (added) { showMsg(msg, `Added ${plural(added, "photo")} with their masks.`, "ok"); refresh(); }
      queue = [];
    }
    function next() {
      const file = queue.shift();
      if (!file) { closeEditor(false); finish(); return; }
      const n = total - queue.length;
      const url = URL.createObjectURL(file);
      const skip = el("button", { type: "button", class: "btn", text: "Skip this photo",
                                  onclick: () => { URL.revokeObjectURL(url); next(); } });
      const model = adder.dataset.hasModel === "true";
      const editor = openEditor(total > 1 ? `Photo ${n} of ${total}: ${file.name}` : `Mask of ${file.name}`, {
        src: url, title: file.name, classes: pageClasses(), extra: total > 1 ? [skip] : [],
        saveText: total > 1 && n < total ? "Add and go to the next photo" : "Add photo",
        note: model ? "Asking the model in service for its mask…" : "Paint the classes; unpainted pixels are ignored.",
        onSave: async (label) => {
          const form = new FormData();
          form.append("files", file, file.name || "photo.png");
          form.append("label", JSON.stringify(label));
          await api("POST", `/projects/${enc(name)}/samples${batch ? "?batch=" + enc(batch) : ""}`, form);
          if (batch) staged++;
          added++;
          URL.revokeObjectURL(url);
          next();
        },
        onClose: () => { URL.revokeObjectURL(url); finish(); },
      });
      if (model) { // pre-annotation: the model's mask is where the user starts
        Promise.all([predictMask(name, file), editor.ready]).then(([{ mask, answer }]) => {
          if (!isOpen(editor)) return; // the user moved on
          if (editor.changed()) { note(`Model version ${answer.model_version} answered after you started painting: its mask was left out.`); return; }
          editor.load(mask, "The model's mask: correct what is wrong, then add the photo.");
          note(`Model version ${answer.model_version} painted this: ${areaWords(answer.areas)} Accept it or correct it (Undo takes it away).`);
        }, (e) => { if (isOpen(editor)) note(`No mask from the model: ${errorText(e)}`); });
      }
    }
    async function start(files) {
      const photos = Array.from(files).filter((f) => !f.type || f.type.startsWith("image/"));
      if (!photos.length) { showMsg(msg, "Those were not images: nothing was added.", "error"); return; }
      queue = photos; total = photos.length; added = 0; staged = 0; batch = null;
      if (photos.length > 1) {
        try { batch = (await api("POST", `/projects/${enc(name)}/batches`)).id; } catch (e) { batch = null; }
      }
      next();
    }
    input.addEventListener("change", () => { if (input.files.length) start(input.files); input.value = ""; });
    ns.masks.addPhotos = start; // tests and drop targets hand files here
  }

  // -- try page: predict, lay the mask over the photo, confirm or correct it into training
  const tryRoot = q("#try-masks");
  if (tryRoot) {
    const name = tryRoot.dataset.project;
    const answer = q("#try-answer"), empty = q("#try-empty"), msg = q("#try-msg");
    const frame = q("#try-frame"), preview = q("#try-preview"), areasList = q("#try-areas"), opacityIn = q("#try-opacity");
    const classes = () => listOf(tryRoot, "classes");
    let current = null, url = null;

    function fail(text) {
      answer.hidden = true;
      empty.hidden = false;
      empty.textContent = text;
      empty.className = "alert error";
    }
    async function predict(file, filename) {
      if (!file) return;
      if (file.type && !file.type.startsWith("image/")) { fail("That is not an image."); return; }
      const blob = new File([file], filename || file.name || "photo.png", { type: file.type || "image/png" });
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(blob);
      empty.hidden = false;
      empty.className = "muted";
      empty.textContent = "Asking the model…";
      answer.hidden = true;
      try {
        const p = await predictMask(name, blob);
        await new Promise((resolve, reject) => { preview.onload = resolve; preview.onerror = reject; preview.src = url; });
        show(p);
      } catch (e) {
        fail(e instanceof Event ? "The browser cannot show that image." : errorText(e));
      }
    }
    function show(p) {
      current = p;
      ns.lastPrediction = p.answer;
      const names = classes();
      p.mask.classes.forEach((c) => { if (!names.includes(c)) names.push(c); });
      const canvas = overlay(frame, p.mask, names);
      canvas.style.opacity = String(Number(opacityIn.value) / 100);
      empty.hidden = true;
      answer.hidden = false;
      q("#try-label").textContent = areaWords(p.answer.areas);
      q("#try-meta").textContent = `Answered by model version ${p.answer.model_version}.`;
      areasList.textContent = "";
      Object.entries(p.answer.areas || {}).sort((a, b) => b[1] - a[1]).forEach(([cls, f]) => {
        const sw = el("span", { class: "mk-swatch", "aria-hidden": "true" });
        sw.style.background = cls === "background" ? "transparent" : css(colourTable(names)[cls]);
        areasList.append(el("li", {}, sw, el("span", { class: "score-name", text: cls }),
                            el("meter", { min: "0", max: "1", value: String(f), "aria-label": `${cls}: ${pctOf(f)} of the photo` }),
                            el("span", { class: "score-val mono", text: pctOf(f) })));
      });
      showMsg(msg, "");
      q("#try-correct").hidden = p.answer.prediction_id === undefined || p.answer.prediction_id === null;
    }
    opacityIn.addEventListener("input", () => {
      const c = frame.querySelector("canvas.mk-overlay");
      if (c) c.style.opacity = String(Number(opacityIn.value) / 100);
    });
    async function feedback(label) {
      await api("POST", `/projects/${enc(name)}/predictions/${current.answer.prediction_id}/feedback`,
                { label, add_to_training: true });
      const live = q("#live");
      const auto = live && live.dataset.autoTrain === "true";
      showMsg(msg, "Thanks: the photo and its mask are added to the training examples. " +
              (auto ? "The model will retrain by itself." : "Press “Train now” to retrain."), "ok");
    }
    q("#try-confirm").addEventListener("click", async () => {
      if (!current) return;
      try {
        await feedback({ mask: current.answer.mask, classes: current.answer.classes });
      } catch (e) { showMsg(msg, errorText(e), "error"); }
    });
    q("#try-fix").addEventListener("click", () => {
      if (!current) return;
      const p = current;
      const names = classes();
      openEditor("Correct the mask", {
        src: url, title: "the photo you sent", classes: names, mask: p.mask, saveText: "Add to training with this mask",
        note: "The model's mask is the starting point: repaint what it got wrong, then add the photo to training.",
        onSave: async (label) => {
          await feedback(label);
          closeEditor(false);
        },
      });
    });

    ns.photoIntake(predict);
    ns.masks.predict = predict;
    ns.camera(predict, fail);
  }

  // -- a recorded prediction's page: confirm the kept mask, or correct it, into training ------------
  const review = q("#prediction-correct"), said = document.getElementById("prediction-mask");
  if (review && said) {
    const project = said.dataset.project, id = said.dataset.prediction, msg = q("#prediction-msg");
    const names = () => listOf(said, "classes"), recordedClasses = () => listOf(said, "maskClasses");
    async function feedback(label) {
      await api("POST", `/projects/${enc(project)}/predictions/${id}/feedback`, { label, add_to_training: true });
      showMsg(msg, "Thanks: the photo and its mask are added to the training examples.", "ok");
    }
    // the kept mask's PNG as it was answered (the server stores its canonical form, as for any mask)
    q("#prediction-confirm").addEventListener("click", async () => {
      try {
        const res = await fetch(said.dataset.maskUrl, { headers: { Accept: "image/png" } });
        if (!res.ok) throw new Error(`the mask could not be loaded (${res.status})`);
        const bytes = new Uint8Array(await res.arrayBuffer());
        let bin = "";
        for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode(...bytes.subarray(i, i + 8192));
        await feedback({ mask: btoa(bin), classes: recordedClasses() });
      } catch (e) { showMsg(msg, errorText(e), "error"); }
    });
    q("#prediction-fix").addEventListener("click", async () => {
      let mask;
      try {
        mask = await fetchMask(said.dataset.maskUrl);
        mask.classes = recordedClasses();
      } catch (e) { showMsg(msg, errorText(e), "error"); return; }
      const all = names();
      mask.classes.forEach((c) => { if (!all.includes(c)) all.push(c); });
      openEditor("Correct the mask", {
        src: said.dataset.inputUrl, title: "the photo sent", classes: all, mask, saveText: "Add to training with this mask",
        note: "The model's mask is the starting point: repaint what it got wrong, then add the photo to training.",
        onSave: async (label) => {
          await feedback(label);
          closeEditor(false);
        },
      });
    });
  }
})();
