// Data grid (class cards of images and texts): search and filters (file name, source, day added),
// paging past the first 300 of a class, selecting many (click, shift-click for a range, "select
// all matching"), moving or deleting them with ONE request (= one dataset version), and a sample
// enlarged with its details and its prediction history.
// The server filters and pages (web/data_grid.py): this script only keeps the page's choices in
// the fragment URL it refreshes from, and the selection across refreshes.
"use strict";

(function () {
  const { api, q, qa, enc, showMsg, errorText, refreshFragment } = window.dyntrain;
  const box = q("#data");
  if (!box || !box.dataset.fragment) return;
  const name = box.dataset.project;
  const msg = q("#data-msg");
  const base = box.dataset.fragment.split("?")[0];
  const PAGE = 300;
  const state = { q: "", source: "", since: "", before: "", only: null, show: {} };
  const picked = new Set();
  let last = null; // the checkbox clicked last: shift-click selects from it

  // -- the fragment URL holds the filters; the page's own URL too, so a reload keeps them --
  (function readUrl() {
    const p = new URLSearchParams(location.search);
    state.q = p.get("q") || "";
    state.source = p.get("source") || "";
    state.since = p.get("since") || "";
    state.before = p.get("before") || "";
    if (p.has("only")) state.only = p.get("only").split(",").filter(Boolean);
    p.forEach((v, k) => { if (k.startsWith("show.")) state.show[k.slice(5)] = Number(v); });
  })();

  function params() {
    const p = new URLSearchParams();
    if (state.q) p.set("q", state.q);
    if (state.source) p.set("source", state.source);
    if (state.since) p.set("since", state.since);
    if (state.before) p.set("before", state.before);
    if (state.only) p.set("only", state.only.join(","));
    Object.entries(state.show).forEach(([label, n]) => p.set(`show.${label}`, String(n)));
    return p.toString();
  }

  function apply() {
    const query = params();
    box.dataset.fragment = base + (query ? "?" + query : "");
    history.replaceState(null, "", location.pathname + (query ? "?" + query : "") + location.hash);
    refreshFragment(box, 0);
  }
  if (params()) box.dataset.fragment = base + "?" + params();

  // -- search and filters --
  // Typing searches as it goes: the refreshed grid brings a new search box, which gets the
  // focus and whatever was typed while the answer was on its way.
  let typing = null, typed = null, fromTyping = false;
  box.addEventListener("input", (ev) => {
    if (ev.target.id !== "grid-q") return;
    typed = ev.target.value;
    clearTimeout(typing);
    typing = setTimeout(() => { typing = null; fromTyping = true; state.q = typed.trim(); apply(); }, 300);
  });
  box.addEventListener("submit", (ev) => {
    if (ev.target.id !== "grid-tools") return;
    ev.preventDefault();
    clearTimeout(typing);
    state.q = q("#grid-q", box).value.trim();
    apply();
  });
  box.addEventListener("change", (ev) => {
    if (ev.target.id === "grid-source") { state.source = ev.target.value; apply(); }
    // a date input's value is "" until the date is whole, so a half-typed date filters nothing
    if (ev.target.id === "grid-since" || ev.target.id === "grid-before") {
      state[ev.target.name] = ev.target.value;
      apply();
    }
    if (ev.target.id === "grid-flagged") { state.only = ev.target.checked ? flaggedIds() : null; apply(); }
  });

  // The data check runs in data.js (GET /health); its flagged samples become a filter here.
  function flaggedIds() {
    const report = window.dyntrain.health;
    const ids = new Set();
    ((report && report.findings) || []).forEach((f) => (f.sample_ids || []).forEach((id) => ids.add(String(id))));
    return Array.from(ids);
  }
  function showFlaggedFilter() {
    const label = q("#grid-flagged-label", box);
    if (!label) return;
    const ids = flaggedIds();
    label.hidden = !ids.length && !state.only;
    if (state.only && ids.length && ids.join(",") !== state.only.join(",")) { state.only = ids; apply(); }
  }
  box.addEventListener("dyntrain:health", showFlaggedFilter);

  // -- paging: a class shows 300 more each time --
  box.addEventListener("click", (ev) => {
    const more = ev.target.closest("[data-more]");
    if (!more) return;
    state.show[more.dataset.more] = Number(more.dataset.shown) + PAGE;
    apply();
  });

  // -- selection --
  const boxes = () => qa("input[data-pick]", box);
  function render() {
    boxes().forEach((c) => {
      c.checked = picked.has(c.dataset.pick);
      const item = c.closest("[data-sample]");
      if (item) item.classList.toggle("picked", c.checked);
    });
    const bar = q("#bulk-bar", box);
    if (!bar) return;
    bar.hidden = picked.size === 0;
    q("#bulk-count", bar).textContent = `${picked.size} selected`;
  }
  box.addEventListener("click", (ev) => {
    const c = ev.target.closest("input[data-pick]");
    if (!c) return;
    const all = boxes(), at = all.indexOf(c);
    if (ev.shiftKey && last !== null && all[last]) {
      const [from, to] = [Math.min(last, at), Math.max(last, at)];
      all.slice(from, to + 1).forEach((b) => (c.checked ? picked.add(b.dataset.pick) : picked.delete(b.dataset.pick)));
    } else if (c.checked) picked.add(c.dataset.pick);
    else picked.delete(c.dataset.pick);
    last = at;
    render();
  });
  box.addEventListener("click", (ev) => {
    if (ev.target.id === "select-matching") {
      JSON.parse(q("#grid-ids", box).textContent).forEach((id) => picked.add(String(id)));
      render();
      showMsg(msg, `Selected ${picked.size} example${picked.size === 1 ? "" : "s"}.`, "info");
    } else if (ev.target.id === "bulk-clear") {
      picked.clear();
      last = null;
      render();
    } else if (ev.target.id === "bulk-move" || ev.target.id === "bulk-delete") {
      bulk(ev.target.id === "bulk-delete", ev.target);
    }
  });

  async function bulk(remove, button) {
    const ids = Array.from(picked, Number), n = ids.length;
    const label = q("#bulk-label", box).value;
    const what = `${n} example${n === 1 ? "" : "s"}`;
    if (remove && !confirm(`Delete ${what}? (An older data version can be restored through the API.)`)) return;
    button.disabled = true;
    if (remove) {
      // what is going away fades, and a photo not loaded yet is not asked for any more (it would be gone)
      qa("[data-sample]", box).filter((el) => picked.has(el.dataset.sample)).forEach((el) => {
        el.classList.add("removing");
        const img = q("img", el);
        if (img && !img.complete) img.removeAttribute("src");
      });
    }
    try {
      await api("POST", `/projects/${enc(name)}/samples/bulk`,
                remove ? { sample_ids: ids, delete: true } : { sample_ids: ids, label });
      picked.clear();
      last = null;
      showMsg(msg, remove ? `Deleted ${what}.` : `Moved ${what} to ${label}.`, "ok");
    } catch (e) {
      showMsg(msg, "Nothing was changed: " + errorText(e), "error");
      button.disabled = false;
    }
    refreshFragment(box, 0);
  }

  // -- a sample enlarged, with its details --
  function fact(dl, term, value) {
    if (value === undefined || value === null || value === "") return;
    const div = document.createElement("div"), dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    div.append(dt, dd);
    dl.appendChild(div);
  }
  async function open(id, opener) {
    const dialog = q("#sample-dialog", box), item = q(`[data-sample="${id}"]`, box);
    if (!dialog || !item) return;
    const title = item.dataset.name || "Example";
    q("#sample-dialog-h", dialog).textContent = title.charAt(0).toUpperCase() + title.slice(1);
    const big = q("#sample-big", dialog), facts = q("#sample-facts", dialog), found = q("#sample-findings", dialog);
    big.textContent = "";
    facts.textContent = "";
    found.textContent = "";
    const history = q("#sample-predictions", dialog);
    history.hidden = true; // the last sample's, until this one's arrive
    history.dataset.sample = id;
    dialog.returnFocus = opener;
    dialog.showModal();
    let sample;
    try {
      sample = await api("GET", `/projects/${enc(name)}/samples/${id}`);
    } catch (e) {
      big.textContent = errorText(e);
      return;
    }
    const url = `/api/v1/projects/${enc(name)}/samples/${id}/image`;
    if (item.classList.contains("text-sample")) {
      const text = document.createElement("blockquote");
      text.className = "sample-text";
      text.textContent = "…";
      big.appendChild(text);
      fetch(url).then((r) => r.text()).then((t) => { text.textContent = t; }).catch(() => { text.textContent = "(not available)"; });
    } else {
      const img = document.createElement("img");
      img.src = url;
      img.alt = title;
      big.appendChild(img);
    }
    const meta = sample.meta || {};
    fact(facts, "Class", sample.label);
    fact(facts, "File", meta.filename);
    if (meta.width) fact(facts, "Size", `${meta.width} × ${meta.height} pixels`);
    if (meta.chars) fact(facts, "Length", `${meta.chars} characters`);
    fact(facts, "Source", item.dataset.source);
    fact(facts, "Added", new Date(sample.created_at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }));
    api("GET", `/projects/${enc(name)}/samples/${id}/versions`).then((list) => {
      if (!list.length) return;
      const moved = list.some((v) => v.label !== sample.label);
      const numbers = list.map((v) => v.number);
      fact(facts, "In data versions", list.length > 6 ? `${numbers.slice(0, 5).join(", ")} … ${numbers[numbers.length - 1]} (${list.length})`
                                                      : numbers.join(", "));
      if (moved) {
        const first = list[list.length - 1];
        fact(facts, "Label history", list.slice().reverse().filter((v, i, a) => !i || v.label !== a[i - 1].label)
          .map((v) => `${v.label} (version ${v.number})`).join(" → ") || first.label);
      }
    }).catch(() => { /* the details stand without it */ });
    predictions(id, q("#sample-predictions", dialog));
    const report = window.dyntrain.health;
    ((report && report.findings) || []).filter((f) => (f.sample_ids || []).map(String).includes(String(id)))
      .forEach((f) => {
        const li = document.createElement("li");
        li.className = `finding ${f.severity}`;
        li.textContent = `Data check: ${f.message} ${f.advice || ""}`.trim();
        found.appendChild(li);
      });
  }
  // The predictions linked to a sample (serving/sample_history.py): the one it was added from
  // and those made on the very same content, newest first, in words.
  function said(p) {
    const when = new Date(p.created_at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    const answer = p.value !== null && p.value !== undefined ? `predicted ${Number(p.value).toLocaleString()}`
      : `said ${p.label === null ? "not sure" : p.label}, ${Math.round(p.confidence * 100)}% sure`;
    const feedback = !p.feedback_label ? "" : p.feedback_label === p.label ? "; confirmed as right"
      : `; corrected to ${p.feedback_label}`;
    return `${when}: model version ${p.model_version} ${answer}${feedback}${p.origin ? " (added to training from this)" : ""}`;
  }
  async function predictions(id, section) {
    const list = q("#sample-predictions-list", section), note = q("#sample-predictions-note", section);
    list.textContent = "";
    note.textContent = "";
    section.hidden = true;
    section.dataset.sample = id;
    let found;
    try {
      found = await api("GET", `/projects/${enc(name)}/samples/${id}/predictions`);
    } catch (e) {
      return; // the details stand without it
    }
    if (section.dataset.sample !== String(id)) return; // another sample was opened meanwhile
    found.items.forEach((p) => {
      const li = document.createElement("li"), link = document.createElement("a");
      link.href = `/projects/${enc(name)}/predictions/${p.id}`;
      link.textContent = said(p);
      li.appendChild(link);
      list.appendChild(li);
    });
    note.textContent = !found.total ? "No recorded prediction was made on this example."
      : found.total > found.items.length ? `The newest ${found.items.length} of ${found.total} predictions made on it.`
      : `${found.total} prediction${found.total === 1 ? "" : "s"} made on it.`;
    section.hidden = false;
  }

  box.addEventListener("click", (ev) => {
    const opener = ev.target.closest("[data-open-sample]");
    if (opener) { ev.preventDefault(); open(opener.dataset.openSample, opener); return; }
    const close = ev.target.closest("[data-close-dialog]");
    if (close) close.closest("dialog").close();
  });
  box.addEventListener("close", (ev) => {
    if (ev.target.returnFocus && document.contains(ev.target.returnFocus)) ev.target.returnFocus.focus();
  }, true);

  // -- after every refresh: the inputs show the filters, the selection stays, typing goes on --
  box.addEventListener("dyntrain:refreshed", () => {
    const input = q("#grid-q", box);
    if (input && typed !== null) input.value = typed;
    if (input && fromTyping && (document.activeElement === document.body || !document.activeElement)) {
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
    }
    fromTyping = false;
    render();
    showFlaggedFilter();
  });
  render();
})();
