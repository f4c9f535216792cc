// Recommendation pages. Data page: the interactions' counts and newest rows, a file imported
// with its columns named (read here to offer them; sent with upload progress), one added by hand,
// a person forgotten after a confirmation. Try page: a person's history next to their top 10 (a
// "chosen" sends the choice back as feedback, which trains the next model), the cold-start list
// for a stranger, and the items most like one. Every action is a call to the REST API.
"use strict";

(function () {
  const dyntrain = window.dyntrain;
  const { api, q, qa, enc, showMsg, errorText, localTimes, fmtNumber } = dyntrain;
  // What the pages last received (the UI tests read it).
  const state = (dyntrain.recommend = { recommendation: null, similar: null, chosen: null, imported: null, steps: [] });
  const host = q("#rc-add") || q("#rc-try");
  if (!host) return;
  const name = host.dataset.project;
  const P = `/projects/${enc(name)}`;
  const N = 10;

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === null || v === undefined || v === false) return;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role") node.setAttribute(k, v);
      else node[k] = v;
    });
    kids.flat().forEach((kid) => kid !== null && kid !== undefined && node.append(kid));
    return node;
  }

  function plural(n, one, many) { return `${fmtNumber(n)} ${n === 1 ? one : many || one + "s"}`; }

  function time(iso) { // in the reader's time zone, as everywhere in the UI
    const wrap = el("span", {}, el("time", { dateTime: iso, text: iso }));
    localTimes(wrap);
    return wrap.firstChild;
  }

  // The server's refusal in words, with the rows it names ("row 3: rating must be a number").
  function problem(e) {
    const rows = (e.details || []).filter((d) => d.row !== undefined).slice(0, 5)
      .map((d) => `row ${d.row}: ${d.reason}`);
    if (!rows.length) return errorText(e);
    const more = e.details.length > rows.length ? ` (and ${e.details.length - rows.length} more)` : "";
    return `${e.message}\n${rows.join("\n")}${more}`;
  }

  function autoTrains() {
    const live = q("#live");
    return !live || live.dataset.autoTrain === "true";
  }

  function trainsWords(version) {
    return autoTrains() ? `data version ${version}: training starts by itself`
                        : `data version ${version}: press “Train now” to train on it`;
  }

  // -- type-ahead: inputs with data-suggest="people|items" offer the known ids that start with
  // what was typed (through their <datalist>), newest answer wins.
  const asked = new WeakMap();
  let suggestTimer = null;
  document.addEventListener("input", (ev) => {
    const input = ev.target.closest && ev.target.closest("input[data-suggest]");
    if (!input || !input.list) return;
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(async () => {
      const seq = (asked.get(input) || 0) + 1;
      asked.set(input, seq);
      const prefix = input.value.trim();
      try {
        const page = await api("GET", `${P}/${input.dataset.suggest}?limit=20` + (prefix ? `&prefix=${enc(prefix)}` : ""));
        if (asked.get(input) !== seq) return;
        input.list.replaceChildren(...page.items.map((k) =>
          el("option", { value: k.id, label: `${plural(k.interactions, "interaction")}` })));
      } catch (e) { /* suggestions are a help, not a step */ }
    }, 150);
  });

  function dialog(d) {
    qa("[data-close]", d).forEach((b) => b.addEventListener("click", () => d.close()));
    return d;
  }

  // ============================================================================ data page
  function dataPage() {
    const msg = q("#data-msg");

    async function load() {
      const counts = q("#rc-counts");
      if (!counts) return;
      try {
        const [s, latest, cat] = await Promise.all([api("GET", `${P}/interactions/summary`),
                                                    api("GET", `${P}/interactions?limit=20`),
                                                    api("GET", `${P}/catalogue?limit=1`).catch(() => null)]);
        showSummary(s);
        showLatest(latest.items);
        showCatalogue(cat && cat.summary);
      } catch (e) {
        counts.textContent = "The interactions could not be read: " + errorText(e);
      }
    }

    function showSummary(s) {
      const counts = q("#rc-counts"), kind = q("#rc-kind");
      const strong = (n) => el("strong", { text: fmtNumber(n) });
      counts.replaceChildren(strong(s.interactions), ` interaction${s.interactions === 1 ? "" : "s"} of `,
                             strong(s.people), ` ${s.people === 1 ? "person" : "people"} with `, strong(s.items),
                             ` item${s.items === 1 ? "" : "s"}`, s.version ? ` · data version ${s.version}` : "");
      const bits = [];
      if (s.feedback === "explicit") {
        bits.push(`Explicit feedback: every interaction has a rating (${fmtNumber(s.rating_min)} to ${fmtNumber(s.rating_max)}).`);
      } else if (s.feedback === "implicit") {
        bits.push("Implicit feedback: who chose what (no ratings); each choice counts by its weight.");
      } else if (s.feedback === "mixed") {
        bits.push(`Mixed: ${plural(s.rated, "interaction")} of ${fmtNumber(s.interactions)} ` +
                  `${s.rated === 1 ? "has" : "have"} a rating, so all are ` +
                  "trained as implicit feedback (who chose what).");
      }
      const words = { import: "imported", api: "added through the API or by hand", feedback: "chosen from recommendations",
                      ingest: "from the message broker" };
      const from = Object.entries(s.sources || {}).sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${fmtNumber(n)} ${words[k] || k}`);
      if (from.length) bits.push(`Where they came from: ${from.join(", ")}.`);
      kind.textContent = bits.join(" ");
      if (s.first_at) {
        kind.append(" Between ", time(s.first_at), " and ", time(s.last_at), ".");
      }
      const empty = !s.interactions;
      counts.hidden = empty; // the empty state says it
      q("#rc-empty").hidden = !empty;
      q("#rc-latest-section").hidden = empty;
      q("#rc-forget-section").hidden = empty;
    }

    function showCatalogue(c) {
      const box = q("#rc-catalogue");
      if (!box) return;
      state.catalogue = c;
      box.hidden = !(c && c.items);
      if (box.hidden) return;
      const cats = Object.keys(c.categories || {});
      box.replaceChildren("Catalogue: ", el("strong", { text: fmtNumber(c.items) }), ` item${c.items === 1 ? "" : "s"}` +
        (cats.length ? ` in ${plural(cats.length, "category", "categories")} (${cats.slice(0, 5).join(", ")}` +
                       `${cats.length > 5 ? ", …" : ""})` : "") +
        `; ${fmtNumber(c.with_text)} with a text, ${fmtNumber(c.with_image)} with a picture` +
        (c.attributes && c.attributes.length ? `; attributes ${c.attributes.slice(0, 6).join(", ")}` : "") + ".");
    }

    function showLatest(items) {
      const tbody = q("#rc-latest");
      const source = { import: "import", api: "added", feedback: "chosen from a recommendation", ingest: "broker" };
      tbody.replaceChildren(...items.map((r) => el("tr", {},
        el("td", {}, time(r.at)),
        el("td", {}, el("a", { class: "rc-id", href: `/projects/${enc(name)}/try?user=${enc(r.user)}`, text: r.user,
                               title: `See ${r.user}'s recommendations` })),
        el("td", {}, el("span", { class: "rc-id", text: r.item })),
        el("td", { class: "mono", text: r.rating === null || r.rating === undefined ? "—" : fmtNumber(r.rating) }),
        el("td", {}, el("span", { class: "badge rc-source" + (r.source === "feedback" ? " ok" : ""),
                                  text: source[r.source] || r.source })))));
    }

    // -- import a file, its columns named
    const importDialog = dialog(q("#rc-import"));
    const form = q("#rc-import-form"), fileInput = q("#rc-file"), go = q("#rc-import-go");
    const importMsg = q("#rc-import-msg");
    const selects = Object.fromEntries(qa("select[data-column]", form).map((s) => [s.dataset.column, s]));
    const GUESS = {
      user: /^(user|users?_?id|userid|customer(_?id)?|person|visitor(_?id)?|member(_?id)?|client(_?id)?|uid)$/i,
      item: /^(item|items?_?id|itemid|product(_?id)?|sku|movie(_?id)?|movieid|song|track|article(_?id)?|book(_?id)?|iid)$/i,
      rating: /^(rating|ratings|stars?|score|grade)$/i,
      time: /^(time|timestamp|ts|date|datetime|at|when|created(_?at)?|event_?time)$/i,
      weight: /^(weight|count|quantity|qty|plays|clicks|times)$/i,
    };
    let sample = { format: "csv", columns: [], rows: [] };

    q("#rc-import-open").addEventListener("click", () => {
      form.reset();
      q("#rc-columns").hidden = true;
      q("#rc-progress-wrap").hidden = true;
      showMsg(importMsg, "");
      go.disabled = true;
      importDialog.showModal();
    });

    fileInput.addEventListener("change", async () => {
      showMsg(importMsg, "");
      const file = fileInput.files[0];
      q("#rc-columns").hidden = true;
      go.disabled = true;
      if (!file) return;
      try {
        sample = readStart(await file.slice(0, 256 * 1024).text(), file.name);
      } catch (e) {
        showMsg(importMsg, `${file.name} could not be read here (${e.message}); it must be a CSV file whose first ` +
                           "line names the columns, or JSON Lines.", "error");
        return;
      }
      if (!sample.columns.length) {
        showMsg(importMsg, `${file.name} has no column names: its first line must name the columns (user,item,…).`, "error");
        return;
      }
      Object.entries(selects).forEach(([key, select]) => {
        const required = select.required;
        select.replaceChildren(...(required ? [el("option", { value: "", text: "— choose a column —" })]
                                            : [el("option", { value: "", text: "— none —" })]),
                               ...sample.columns.map((c) => el("option", { value: c, text: c })));
        select.value = sample.columns.find((c) => GUESS[key].test(c.trim())) || "";
      });
      q("#rc-file-info").textContent = `${file.name}: ${sample.format === "jsonl" ? "JSON Lines" : "CSV"}, ` +
        `${(file.size / 1024).toFixed(file.size < 10240 ? 1 : 0)} KB, columns ${sample.columns.join(", ")}.`;
      q("#rc-columns").hidden = false;
      preview();
    });
    Object.values(selects).forEach((s) => s.addEventListener("change", preview));

    function preview() {
      const pick = Object.fromEntries(Object.entries(selects).map(([k, s]) => [k, s.value]));
      q("#rc-preview").replaceChildren(...sample.rows.slice(0, 5).map((row) => el("tr", {},
        ...["user", "item", "rating", "time", "weight"].map((k) => {
          const v = pick[k] ? row[pick[k]] : undefined;
          const missing = (k === "user" || k === "item") && (v === undefined || v === null || String(v).trim() === "");
          return el("td", { class: missing ? "rc-missing" : "", text: missing ? "(empty)" : v === undefined ? "—" : String(v) });
        }))));
      go.disabled = !(pick.user && pick.item && pick.user !== pick.item);
    }

    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const file = fileInput.files[0];
      if (!file || go.disabled) return;
      const body = new FormData();
      body.append("file", file, file.name);
      body.append("format", sample.format);
      Object.entries(selects).forEach(([k, s]) => { if (s.value) body.append(k, s.value); });
      upload(body, file);
    });

    // XMLHttpRequest, not fetch: it reports how much of the file has been sent.
    function upload(body, file) {
      const wrap = q("#rc-progress-wrap"), bar = q("#rc-progress"), text = q("#rc-progress-text");
      wrap.hidden = false;
      bar.value = 0;
      text.textContent = "Sending the file…";
      state.steps = ["sending"];
      showMsg(importMsg, "");
      go.disabled = true;
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `/api/v1${P}/interactions/import`);
      xhr.setRequestHeader("Accept", "application/json");
      const csrf = q('meta[name="csrf-token"]');
      if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf.content);
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        bar.value = Math.round((e.loaded / e.total) * 100);
        text.textContent = `Sending the file: ${Math.round((e.loaded / e.total) * 100)}%`;
      });
      xhr.upload.addEventListener("load", () => {
        bar.removeAttribute("value"); // indeterminate: the server reads and checks every row now
        text.textContent = "Sent. The server is checking and storing every row…";
        state.steps.push("checking");
      });
      xhr.addEventListener("load", () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        wrap.hidden = true;
        state.steps.push(xhr.status);
        if (xhr.status === 201 && data) {
          state.imported = data;
          importDialog.close();
          showMsg(msg, `Imported ${plural(data.added, "interaction")} from ${file.name} as ${trainsWords(data.version)}.`, "ok");
          load();
          return;
        }
        const err = (data && data.error) || {};
        const e = new Error(err.message || `The server answered ${xhr.status}`);
        e.details = err.details || [];
        showMsg(importMsg, "Nothing was imported: " + problem(e), "error");
        go.disabled = false;
      });
      xhr.addEventListener("error", () => {
        wrap.hidden = true;
        showMsg(importMsg, "Nothing was imported: the server could not be reached. Is it running?", "error");
        go.disabled = false;
      });
      xhr.send(body);
    }

    // -- the item catalogue: a CSV / JSON Lines list or a .zip with pictures, its columns named
    const catDialog = dialog(q("#rc-cat"));
    const catForm = q("#rc-cat-form"), catFile = q("#rc-cat-file"), catGo = q("#rc-cat-go"), catMsg = q("#rc-cat-msg");
    const catInputs = Object.fromEntries(qa("[data-catalogue-column]", catForm).map((i) => [i.dataset.catalogueColumn, i]));
    const CAT_GUESS = {
      item: GUESS.item,
      category: /^(category|categories|genre|genres|type|kind|department|section)$/i,
      text: /^(text|title|name|description|desc|summary)$/i,
      image: /^(image|picture|photo|img|image_?file|file)$/i,
    };
    const catReady = () => { catGo.disabled = !(catFile.files[0] && catInputs.item.value.trim()); };
    q("#rc-cat-open").addEventListener("click", () => {
      catForm.reset();
      q("#rc-cat-info").textContent = "";
      showMsg(catMsg, "");
      catGo.disabled = true;
      catDialog.showModal();
    });
    catFile.addEventListener("change", async () => {
      showMsg(catMsg, "");
      const file = catFile.files[0];
      if (!file) { catReady(); return; }
      if (/\.zip$/i.test(file.name)) {
        q("#rc-cat-info").textContent = `${file.name}: an archive; the server reads the list and pictures in it.`;
      } else {
        try {
          const head = readStart(await file.slice(0, 256 * 1024).text(), file.name);
          q("#rc-cat-names").replaceChildren(...head.columns.map((c) => el("option", { value: c })));
          Object.entries(catInputs).forEach(([key, input]) => {
            const found = head.columns.find((c) => c === key) || head.columns.find((c) => CAT_GUESS[key].test(c.trim()));
            input.value = found || (key === "item" ? "" : input.value);
          });
          q("#rc-cat-info").textContent = `${file.name}: columns ${head.columns.join(", ")}. Other columns become ` +
                                          "attributes.";
        } catch (e) {
          showMsg(catMsg, `${file.name} could not be read here (${e.message}).`, "error");
        }
      }
      catReady();
    });
    Object.values(catInputs).forEach((i) => i.addEventListener("input", catReady));
    catForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const file = catFile.files[0];
      if (!file || catGo.disabled) return;
      const body = new FormData();
      body.append("file", file, file.name);
      Object.entries(catInputs).forEach(([k, i]) => body.append(k, i.value.trim()));
      catGo.disabled = true;
      showMsg(catMsg, "Sending and checking every item…", "info");
      try {
        const r = await api("POST", `${P}/catalogue/import`, body);
        state.catalogueImported = r;
        catDialog.close();
        showMsg(msg, r.added ? `Catalogue: ${plural(r.added, "item")} described from ${file.name} as ${trainsWords(r.version)}` +
                               `${r.unchanged ? ` (${fmtNumber(r.unchanged)} unchanged)` : ""}.`
                             : `Catalogue: nothing changed (${plural(r.unchanged, "item")} as before).`, "ok");
        load();
      } catch (e) {
        showMsg(catMsg, "Nothing was imported: " + problem(e), "error");
        catGo.disabled = false;
      }
    });

    // -- one interaction by hand
    const oneDialog = dialog(q("#rc-one"));
    const oneForm = q("#rc-one-form"), oneMsg = q("#rc-one-msg");
    q("#rc-one-open").addEventListener("click", () => {
      oneForm.reset();
      showMsg(oneMsg, "");
      oneDialog.showModal();
    });
    oneForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const user = q("#rc-one-user").value.trim(), item = q("#rc-one-item").value.trim();
      const rating = q("#rc-one-rating").value.trim(), when = q("#rc-one-time").value;
      if (!user || !item) {
        showMsg(oneMsg, `Give ${!user ? "the person" : "the item"}.`, "error");
        (!user ? q("#rc-one-user") : q("#rc-one-item")).focus();
        return;
      }
      const body = { user, item };
      if (rating) body.rating = Number(rating);
      if (when) body.time = new Date(when).toISOString(); // the browser's local time, sent in UTC
      try {
        const r = await api("POST", `${P}/interactions`, body);
        oneDialog.close();
        showMsg(msg, `Added: ${user} chose ${item}${rating ? ` (rated ${rating})` : ""}, ${trainsWords(r.version)}.`, "ok");
        load();
      } catch (e) {
        showMsg(oneMsg, "Not added: " + problem(e), "error");
      }
    });

    // -- forget a person (the form is in the data view, which is re-rendered when data changes)
    const confirmDialog = q("#rc-confirm");
    let forgetting = null, draft = "";
    document.addEventListener("submit", async (ev) => {
      if (ev.target.id !== "rc-forget-form") return;
      ev.preventDefault();
      const user = q("#rc-forget-user").value.trim();
      if (!user) { q("#rc-forget-user").focus(); return; }
      try {
        const known = (await api("GET", `${P}/people?limit=1&prefix=${enc(user)}`)).items[0];
        if (!known || known.id !== user) {
          showMsg(msg, `There are no interactions of “${user}”: nothing to delete (ids are case-sensitive).`, "error");
          return;
        }
        forgetting = known;
        q("#rc-confirm-h").textContent = `Forget “${user}”?`;
        q("#rc-confirm-text").textContent = `All ${plural(known.interactions, "interaction")} of “${user}” will be ` +
          "deleted, as a new data version without them. The next model will not know them; older data versions " +
          "that held them can no longer be restored exactly. This cannot be undone.";
        q("#rc-confirm-yes").textContent = `Delete ${plural(known.interactions, "interaction")}`;
        confirmDialog.returnValue = "";
        confirmDialog.showModal();
      } catch (e) {
        showMsg(msg, errorText(e), "error");
      }
    });
    confirmDialog.addEventListener("close", async () => {
      if (confirmDialog.returnValue !== "delete" || !forgetting) return;
      const user = forgetting.id;
      forgetting = null;
      try {
        const r = await api("DELETE", `${P}/interactions?user=${enc(user)}`);
        draft = "";
        if (q("#rc-forget-user")) q("#rc-forget-user").value = "";
        showMsg(msg, `Deleted ${plural(r.deleted, "interaction")} of ${user}: ${trainsWords(r.version)}.`, "ok");
        load();
      } catch (e) {
        showMsg(msg, "Nothing was deleted: " + errorText(e), "error");
      }
    });

    // The data view is re-rendered from the server when the data changes: fill it again, and
    // keep what was typed into the forget form.
    document.addEventListener("input", (ev) => { if (ev.target.id === "rc-forget-user") draft = ev.target.value; });
    document.addEventListener("dyntrain:refreshed", (ev) => {
      if (ev.target.id !== "data") return;
      const input = q("#rc-forget-user");
      if (input && draft) input.value = draft;
      load();
    });
    load();
  }

  // The start of a file: its format, column names and first rows (a preview; the server reads it
  // whole). CSV fields may be quoted ("a,b" and "" for a quote).
  function readStart(text, filename) {
    const jsonl = /\.(jsonl|ndjson|json)$/i.test(filename);
    const lines = text.replace(/^\ufeff/, "").split(/\r?\n/);
    if (text.length >= 256 * 1024) lines.pop(); // cut in the middle
    if (jsonl) {
      const rows = lines.filter((l) => l.trim()).slice(0, 20).map((l, i) => {
        try { return JSON.parse(l); } catch (e) { throw new Error(`line ${i + 1} is not JSON`); }
      });
      const columns = [];
      rows.forEach((r) => Object.keys(r || {}).forEach((k) => { if (!columns.includes(k)) columns.push(k); }));
      return { format: "jsonl", columns, rows };
    }
    const header = splitCsv(lines[0] || "");
    const rows = lines.slice(1).filter((l) => l.trim()).slice(0, 20).map((l) => {
      const cells = splitCsv(l);
      return Object.fromEntries(header.map((h, i) => [h, cells[i]]));
    });
    return { format: "csv", columns: header.filter((h) => h !== ""), rows };
  }

  function splitCsv(line) {
    const out = [];
    let cell = "", quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') { cell += '"'; i++; }
        else if (c === '"') quoted = false;
        else cell += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") { out.push(cell); cell = ""; }
      else cell += c;
    }
    out.push(cell);
    return out;
  }

  // ============================================================================ try page
  function tryPage(root) {
    const personForm = q("#rc-person-form"), personInput = q("#rc-person"), exclude = q("#rc-exclude");
    const note = q("#rc-person-note"), view = q("#rc-person-view"), chosenMsg = q("#rc-chosen-msg");
    const itemForm = q("#rc-item-form"), itemInput = q("#rc-item");
    let person = null;

    function say(box, text, kind) {
      box.hidden = !text;
      box.textContent = text || "";
      box.className = "alert " + (kind || "info");
    }

    function scoreBar(score, top) {
      const m = el("meter", { min: 0, max: 1, value: top > 0 ? Math.max(0, score) / top : 0 });
      m.setAttribute("aria-hidden", "true");
      return m;
    }

    function similarButton(item) {
      return el("button", { type: "button", class: "btn small", text: "Similar", "data-similar": item,
                            "aria-label": `Items like ${item}` });
    }

    // The catalogue's picture, text and category beside each listed item (when it has a catalogue).
    async function describe(list) {
      const lis = qa("li[data-item]", list);
      if (!lis.length) return;
      let entries;
      try {
        entries = (await api("GET", `${P}/catalogue?items=${lis.map((li) => enc(li.dataset.item)).join(",")}`)).items;
      } catch (e) {
        return; // ids alone still say what was answered
      }
      const by = Object.fromEntries(entries.map((e) => [e.item, e]));
      lis.forEach((li) => {
        const e = by[li.dataset.item];
        if (!e || li.classList.contains("rc-described")) return;
        li.classList.add("rc-described");
        const thumb = e.image
          ? el("img", { class: "rc-thumb", src: `/api/v1${P}/catalogue/${enc(e.item)}/image`, alt: e.text || e.item })
          : el("span", { class: "rc-thumb none", text: "no picture", "aria-hidden": "true" });
        li.insertBefore(thumb, li.querySelector(".rc-name"));
        const name = li.querySelector(".rc-name");
        if (e.category) name.append(" ", el("span", { class: "badge rc-cat", text: e.category }));
        if (e.text) name.append(el("span", { class: "rc-text", text: e.text }));
      });
    }

    async function categories() {
      try {
        const c = (await api("GET", `${P}/catalogue?limit=1`)).summary;
        const names = Object.keys(c.categories || {});
        if (!names.length) return;
        q("#rc-category").append(...names.map((n) => el("option", { value: n, text: n })));
        q("#rc-category-wrap").hidden = false;
      } catch (e) { /* no catalogue: no filter */ }
    }

    const NO_MODEL = "No model is in service yet, so there is nothing to ask. Import interactions on the " +
                     "Data & training tab; once training finishes (the panel above follows it), ask again.";
    const hasModel = () => root.dataset.hasModel === "true";

    async function showPerson(user) {
      person = user;
      personInput.value = user;
      history.replaceState(null, "", `?user=${enc(user)}`);
      if (!hasModel()) {
        view.hidden = true;
        say(note, NO_MODEL, "error");
        return;
      }
      say(note, "Asking the model…", "info");
      showMsg(chosenMsg, "");
      const [past, recs] = await Promise.allSettled([
        api("GET", `${P}/interactions?user=${enc(user)}&limit=50`),
        api("GET", `${P}/recommend?user=${enc(user)}&n=${N}&exclude_seen=${exclude.checked}` +
                   (q("#rc-category").value ? `&category=${enc(q("#rc-category").value)}` : ""))]);
      if (person !== user) return; // another person was asked for meanwhile
      if (recs.status === "rejected") {
        view.hidden = true;
        say(note, "No recommendations: " + errorText(recs.reason), "error");
        return;
      }
      showHistory(user, past.status === "fulfilled" ? past.value.items : null);
      showRecommendations(recs.value);
      view.hidden = false;
    }

    function showHistory(user, items) {
      const list = q("#rc-history"), meta = q("#rc-history-meta");
      if (items === null) {
        list.replaceChildren();
        meta.textContent = "Their history could not be read.";
        return;
      }
      meta.textContent = items.length
        ? (items.length >= 50 ? "Their newest 50 interactions, newest first." : `${plural(items.length, "interaction")}, newest first.`)
        : `No interactions of “${user}” yet.`;
      const source = { feedback: "chosen from a recommendation", import: "imported", api: "added", ingest: "from the broker" };
      list.replaceChildren(...items.map((h) => el("li", { "data-item": h.item },
        el("span", { class: "rc-name", text: h.item }),
        el("span", { class: "rc-tools" }, similarButton(h.item)),
        el("span", { class: "rc-sub" }, time(h.at),
           h.rating !== null && h.rating !== undefined ? el("span", { text: `rated ${fmtNumber(h.rating)}` }) : null,
           el("span", { class: "badge" + (h.source === "feedback" ? " ok" : ""), text: source[h.source] || h.source })))));
      describe(list);
    }

    function showRecommendations(r) {
      state.recommendation = r;
      const list = q("#rc-recs"), top = Math.max(0, ...r.scores);
      q("#rc-recs-meta").textContent = `From model version ${r.model_version}` +
        (exclude.checked ? ", leaving out what they already have" : "") + `; answer #${r.prediction_id}.`;
      if (r.source === "popular") {
        say(note, `The model does not know “${r.user}” yet, so these are the most popular items: the list every ` +
                  "newcomer gets. Once they choose something, the next model learns their taste.", "warn");
      } else {
        say(note, "");
      }
      if (!r.items.length) {
        list.replaceChildren(el("li", { class: "empty", text: "Nothing left to recommend: they have every item." }));
        return;
      }
      list.replaceChildren(...r.items.map((item, i) => el("li", { "data-item": item },
        el("span", { class: "rc-name", text: item }),
        el("span", { class: "rc-tools" },
           el("button", { type: "button", class: "btn small primary", text: "Chosen", "data-chosen": item,
                          "aria-label": `${r.user} chose ${item}` }),
           similarButton(item)),
        el("span", { class: "rc-sub" }, scoreBar(r.scores[i], top), `score ${fmtNumber(r.scores[i])}`))));
      describe(list);
    }

    async function choose(button) {
      const r = state.recommendation, item = button.dataset.chosen;
      const buttons = qa("#rc-recs [data-chosen]");
      buttons.forEach((b) => { b.disabled = true; });
      try {
        const c = await api("POST", `${P}/recommend/${r.prediction_id}/chosen`, { item });
        state.chosen = c;
        button.closest("li").classList.add("rc-picked");
        button.textContent = "Chosen ✓";
        showMsg(chosenMsg, `Recorded: ${c.user} chose ${c.item}. It is now in the data (version ${c.version}) and ` +
                           "will teach the next model.", "ok");
        const past = await api("GET", `${P}/interactions?user=${enc(c.user)}&limit=50`);
        if (person === c.user) showHistory(c.user, past.items);
      } catch (e) {
        showMsg(chosenMsg, "Not recorded: " + errorText(e), "error");
        if (e.status !== 409) buttons.forEach((b) => { b.disabled = false; });
      }
    }

    async function showSimilar(item) {
      itemInput.value = item;
      const box = q("#rc-similar-view"), meta = q("#rc-similar-meta"), list = q("#rc-similar");
      box.hidden = false;
      list.replaceChildren();
      if (!hasModel()) {
        meta.textContent = NO_MODEL;
        return;
      }
      meta.textContent = "Asking the model…";
      try {
        const s = await api("GET", `${P}/similar?item=${enc(item)}&n=${N}`);
        state.similar = s;
        const top = Math.max(0, ...s.scores);
        meta.textContent = s.source === "popular"
          ? `The model has never seen “${s.item}”, so these are the most popular items instead.`
          : s.source === "category"
          ? `“${s.item}” joined the catalogue after this model was trained, so these are the most popular items of ` +
            "its category; the next model will know it."
          : `The ${plural(s.items.length, "item")} most like “${s.item}”` +
            (s.source === "content" ? " by what they are (no one has chosen it yet)" : ", by who chose them") +
            `; model version ${s.model_version}.`;
        list.replaceChildren(...s.items.map((other, i) => el("li", { "data-item": other },
          el("span", { class: "rc-name", text: other }),
          el("span", { class: "rc-tools" }, similarButton(other)),
          el("span", { class: "rc-sub" }, scoreBar(s.scores[i], top), `similarity ${fmtNumber(s.scores[i])}`))));
        if (!s.items.length) list.replaceChildren(el("li", { class: "empty", text: "No other items yet." }));
        // the asked item itself first, described, so its likeness to the list can be seen
        const self = q("#rc-similar-self");
        self.replaceChildren(el("li", { "data-item": s.item }, el("span", { class: "rc-name", text: s.item })));
        describe(self);
        describe(list);
      } catch (e) {
        meta.textContent = "No similar items: " + errorText(e);
      }
    }

    personForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const user = personInput.value.trim();
      if (!user) { personInput.focus(); return; }
      showPerson(user);
    });
    exclude.addEventListener("change", () => { if (person) showPerson(person); });
    q("#rc-category").addEventListener("change", () => { if (person) showPerson(person); });
    categories();
    itemForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const item = itemInput.value.trim();
      if (!item) { itemInput.focus(); return; }
      showSimilar(item);
    });
    root.addEventListener("click", (ev) => {
      const chosen = ev.target.closest("[data-chosen]");
      if (chosen) { choose(chosen); return; }
      const like = ev.target.closest("[data-similar]");
      if (like) {
        showSimilar(like.dataset.similar);
        q("#rc-similar-h").scrollIntoView({ block: "start", behavior: "smooth" });
      }
    });
    // A new model in service: say so where the answers are (they came from the old one).
    document.addEventListener("dyntrain:event", (ev) => {
      if (ev.detail.type !== "model.promoted") return;
      const none = q("#no-model");
      if (none) none.hidden = true;
      root.dataset.hasModel = "true";
      if (person && !view.hidden) {
        say(note, `Version ${ev.detail.data.version} is now in service: press “Show recommendations” to ask it.`, "info");
      }
    });
    const params = new URLSearchParams(location.search);
    if (params.get("user")) showPerson(params.get("user"));
    if (params.get("item")) showSimilar(params.get("item"));
  }

  if (q("#rc-add")) dataPage();
  if (q("#rc-try")) tryPage(q("#rc-try"));
})();
