// The labelling queue: one item at a time in teaching order, the model's suggestion beside it;
// keys 1–9 pick a class, Enter accepts the suggestion, arrows move, S skips, Delete removes;
// picks are kept here until "Confirm labels" sends them as ONE batch (one new data version).
"use strict";

(function () {
  const { api, q, enc, toast, showMsg, errorText, pct } = window.dyntrain;
  const root = q("#queue");
  if (!root) return;
  const name = root.dataset.project, format = root.dataset.format, noun = root.dataset.noun;
  const base = `/projects/${enc(name)}/unlabelled`;
  const itemEl = q("#queue-item"), countEl = q("#queue-count"), suggestionEl = q("#queue-suggestion");
  const classesEl = q("#queue-classes"), pickedEl = q("#queue-picked"), confirmBtn = q("#queue-confirm");
  const msg = q("#queue-msg");
  let classes = [];
  try { classes = JSON.parse(root.dataset.classes || "[]"); } catch (e) { classes = []; }
  let items = [], index = 0, total = 0, busy = false;
  const picks = new Map(); // item id -> label
  const qs = (window.dyntrain.queue = { picks, get items() { return items; }, get index() { return index; } }); // tests read it

  async function load() {
    try {
      const page = await api("GET", `${base}?limit=500`);
      items = page.items;
      total = page.total;
      qs.strategy = page.strategy;
      for (const id of Array.from(picks.keys())) if (!items.some((x) => x.id === id)) picks.delete(id);
      index = Math.min(index, Math.max(0, items.length - 1));
      render();
    } catch (e) {
      countEl.textContent = "";
      itemEl.textContent = errorText(e);
    }
  }

  function current() { return items[index] || null; }

  function render() {
    const left = total - picks.size;
    countEl.textContent = total ? `${left} left to label` + (picks.size ? ` · ${picks.size} picked` : "")
                                : "Nothing waiting";
    const item = current();
    itemEl.textContent = "";
    itemEl.classList.toggle("picked", !!(item && picks.has(item.id)));
    if (!item) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = `No ${noun}s are waiting for a label. Add some below, or with "dyntrain import --unlabelled".`;
      itemEl.appendChild(p);
    } else if (format === "files") {
      const img = document.createElement("img");
      img.src = `/api/v1${base}/${item.id}/image`;
      img.alt = `${noun} ${item.position} of ${total}` + (item.filename ? ` (${item.filename})` : "");
      itemEl.appendChild(img);
    } else {
      const quote = document.createElement("blockquote");
      quote.textContent = item.preview || "";
      itemEl.appendChild(quote);
    }
    if (item) {
      const where = document.createElement("p");
      where.className = "queue-where muted";
      where.textContent = `${item.position} of ${total}` + (item.filename && format === "files" ? ` · ${item.filename}` : "")
        + (item.skipped ? " · skipped before" : "");
      itemEl.appendChild(where);
    }
    const s = item && item.suggestion;
    const picked = item && picks.get(item.id);
    suggestionEl.textContent = !item ? "" : picked ? `Your label: ${picked}.`
      : s ? `Suggestion: ${s.label} (${pct(s.confidence)} sure). Enter accepts it.`
      : "No suggestion yet: there is no model in service. Pick the class.";
    renderClasses(item);
    pickedEl.textContent = picks.size
      ? `${picks.size} label${picks.size === 1 ? "" : "s"} picked: confirm to add ${picks.size === 1 ? "it" : "them"} to the training data.`
      : "No labels picked yet.";
    confirmBtn.disabled = !picks.size || busy;
    confirmBtn.textContent = picks.size ? `Confirm ${picks.size} label${picks.size === 1 ? "" : "s"}` : "Confirm labels";
    for (const id of ["#queue-prev", "#queue-next", "#queue-skip", "#queue-delete"]) q(id).disabled = !item || busy;
  }

  function renderClasses(item) {
    classesEl.textContent = "";
    const s = item && item.suggestion;
    classes.forEach((label, k) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn small" + (s && s.label === label ? " suggested" : "");
      b.dataset.label = label;
      b.setAttribute("aria-pressed", String(!!(item && picks.get(item.id) === label)));
      if (k < 9) {
        const kbd = document.createElement("kbd");
        kbd.textContent = String(k + 1);
        b.setAttribute("aria-keyshortcuts", String(k + 1));
        b.append(kbd, " ");
      }
      b.append(label);
      b.disabled = !item;
      classesEl.appendChild(b);
    });
    if (!classes.length) {
      const p = document.createElement("p");
      p.className = "muted small";
      p.textContent = "No classes yet: type one under “Another class”.";
      classesEl.appendChild(p);
    }
  }

  function pick(label) {
    const item = current();
    if (!item || !label) return;
    picks.set(item.id, label);
    if (!classes.includes(label)) classes.push(label);
    // on to the next item still without a pick (or stay at the end)
    let next = index + 1;
    while (next < items.length && picks.has(items[next].id)) next++;
    if (next < items.length) index = next;
    render();
  }

  function move(step) {
    index = Math.max(0, Math.min(items.length - 1, index + step));
    render();
  }

  async function confirm() {
    if (!picks.size || busy) return;
    busy = true;
    render();
    const batch = Array.from(picks, ([id, label]) => ({ id, label }));
    try {
      const r = await api("POST", `${base}/confirm`, { items: batch });
      picks.clear();
      index = 0;
      const v = r.version ? `: data version ${r.version.number}` : "";
      showMsg(msg, `Added ${batch.length} labelled ${batch.length === 1 ? noun : noun + "s"} to the training data${v}.`, "ok");
      await load();
    } catch (e) {
      showMsg(msg, errorText(e), "error");
    } finally {
      busy = false;
      render();
      itemEl.focus();
    }
  }

  async function act(method, path, done) {
    const item = current();
    if (!item || busy) return;
    busy = true;
    try {
      await api(method, `${base}/${item.id}${path}`);
      picks.delete(item.id);
      toast(done, "info", { ms: 4000 });
      await load();
    } catch (e) {
      showMsg(msg, errorText(e), "error");
    } finally {
      busy = false;
      render();
    }
  }

  classesEl.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-label]");
    if (b) { pick(b.dataset.label); itemEl.focus(); }
  });
  q("#queue-other").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = q("#queue-other-label");
    const label = input.value.trim();
    if (!label) return;
    pick(label);
    input.value = "";
    itemEl.focus();
  });
  q("#queue-prev").addEventListener("click", () => move(-1));
  q("#queue-next").addEventListener("click", () => move(1));
  q("#queue-skip").addEventListener("click", () => act("POST", "/skip", "Skipped: it waits at the end of the queue."));
  q("#queue-delete").addEventListener("click", () => act("DELETE", "", `Removed the ${noun} from the queue.`));
  confirmBtn.addEventListener("click", confirm);

  document.addEventListener("keydown", (ev) => {
    if (ev.defaultPrevented || ev.altKey || ev.metaKey) return;
    const t = ev.target;
    const typing = t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
    if (ev.key === "Enter" && ev.ctrlKey) { ev.preventDefault(); confirm(); return; }
    if (typing || ev.ctrlKey) return;
    // Enter and Space keep their meaning on a focused button or link
    if ((ev.key === "Enter" || ev.key === " ") && t && ["BUTTON", "A", "SUMMARY"].includes(t.tagName)) return;
    const item = current();
    if (/^[1-9]$/.test(ev.key)) {
      const label = classes[Number(ev.key) - 1];
      if (label) { ev.preventDefault(); pick(label); }
    } else if (ev.key === "Enter") {
      if (item && item.suggestion) { ev.preventDefault(); pick(item.suggestion.label); }
    } else if (ev.key === "ArrowRight") { ev.preventDefault(); move(1); }
    else if (ev.key === "ArrowLeft") { ev.preventDefault(); move(-1); }
    else if (ev.key === "s" || ev.key === "S") { ev.preventDefault(); q("#queue-skip").click(); }
    else if (ev.key === "Delete") { ev.preventDefault(); q("#queue-delete").click(); }
  });

  q("#queue-upload").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target, out = q("#queue-upload-msg");
    try {
      let r;
      if (format === "files") {
        const fd = new FormData();
        Array.from(form.elements.files.files).forEach((f) => fd.append("files", f));
        r = await api("POST", base, fd);
      } else if (format === "texts") {
        const texts = form.elements.texts.value.split("\n").map((x) => x.trim()).filter(Boolean);
        r = await api("POST", `${base}/texts`, { texts });
      } else {
        const fd = new FormData();
        if (form.elements.file.files[0]) fd.append("file", form.elements.file.files[0]);
        r = await api("POST", `${base}/csv`, fd);
      }
      form.reset();
      const dup = r.duplicates.length ? ` (${r.duplicates.length} left out: already in the project)` : "";
      showMsg(out, `Added ${r.added.length} to the queue${dup}.`, "ok");
      await load();
    } catch (e) {
      showMsg(out, errorText(e), "error");
    }
  });

  load().then(() => itemEl.focus());
})();
