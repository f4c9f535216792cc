// Data versions page: compare two versions (GET …/dataset-versions/{n}/diff), restore an older
// one or undo the last change (POST …/dataset-versions/{n}/restore). A restore makes a NEW
// version equal to the chosen one and retrains, so the confirm says so before anything changes.
"use strict";
(function () {
  const { api, q, qa, enc, showMsg, errorText } = window.dyntrain;
  const root = q("#versions");
  if (!root) return;
  const name = root.dataset.project;
  const head = Number(root.dataset.head) || 0;
  const msg = q("#versions-msg");
  const state = (window.dyntrain.versions = { restored: [] }); // tests read what was restored
  // what happens after a restore: retrained by itself, or on "Train now" when automatic training is off
  const live = q("#live");
  const retrain = () => (live && live.dataset.autoTrain === "false"
    ? "automatic training is off: press “Train now” to retrain on it."
    : "the model is retrained on it.");

  async function restore(number, question) {
    if (!window.confirm(question)) return;
    qa("button.restore, #undo-last").forEach((b) => { b.disabled = true; });
    try {
      const r = await api("POST", `/projects/${enc(name)}/dataset-versions/${number}/restore`);
      state.restored.push(number);
      if (!r.version) {
        showMsg(msg, `Nothing changed: the data already equals version ${number}.`, "info");
      } else {
        showMsg(msg, `Version ${r.version.number} now has the same examples as version ${number}.`, "ok");
        setTimeout(() => window.location.reload(), 900); // the table shows the new version
      }
    } catch (e) {
      showMsg(msg, errorText(e), "error");
    } finally {
      qa("button.restore, #undo-last").forEach((b) => { b.disabled = false; });
    }
  }

  qa("button.restore", root).forEach((btn) => btn.addEventListener("click", () => {
    const n = Number(btn.dataset.version);
    restore(n, `Restore version ${n}?\n\nThis makes a new version (${head + 1}) with the same examples as version ${n}; ` +
               `nothing is deleted for good, and ${retrain()}`);
  }));
  const undo = q("#undo-last");
  if (undo) undo.addEventListener("click", () => {
    const n = Number(undo.dataset.to);
    const what = undo.dataset.what ? ` (${undo.dataset.what})` : "";
    restore(n, `Undo the last change${what}?\n\nThis makes a new version (${head + 1}) equal to version ${n}; ` +
               retrain().replace(/^./, (c) => c.toUpperCase()));
  });

  // -- compare ---------------------------------------------------------------------------
  const form = q("#compare-form");
  const out = q("#compare-result");
  if (!form || !out) return;
  const plural = out.dataset.plural;

  // words only: an example removed since has no thumbnail left to show (its row is gone)
  function item(x, text) {
    const li = document.createElement("li");
    li.className = "diff-item";
    const span = document.createElement("span");
    span.textContent = text;
    li.append(span);
    return li;
  }

  function group(title, list, words) {
    const sec = document.createElement("div");
    const h = document.createElement("h3");
    h.textContent = `${title}: ${list.length}`;
    sec.append(h);
    if (!list.length) return sec;
    const ul = document.createElement("ul");
    ul.className = "diff-list";
    list.slice(0, 200).forEach((x) => ul.append(item(x, words(x))));
    sec.append(ul);
    if (list.length > 200) {
      const p = document.createElement("p");
      p.className = "muted small";
      p.textContent = `and ${list.length - 200} more`;
      sec.append(p);
    }
    return sec;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const from = Number(q("#compare-from").value), to = Number(q("#compare-to").value);
    out.textContent = "";
    if (from === to) {
      out.textContent = "Choose two different versions.";
      return;
    }
    // the diff reads from the older to the newer version, whichever order they were picked in
    const [older, newer] = from < to ? [from, to] : [to, from];
    try {
      const d = await api("GET", `/projects/${enc(name)}/dataset-versions/${newer}/diff?against=${older}`);
      const p = document.createElement("p");
      p.id = "compare-summary";
      p.textContent = `From version ${older} to version ${newer}: ${d.added.length} ${plural} added, ` +
                      `${d.removed.length} removed, ${d.relabelled.length} relabelled.`;
      const label = (x) => (x.label ? `“${x.label}”` : "(no class)");
      out.append(p,
        group("Added", d.added, (x) => `${label(x)} (example ${x.sample_id})`),
        group("Removed", d.removed, (x) => `${label(x)} (example ${x.sample_id})`),
        group("Relabelled", d.relabelled, (x) => `from ${label({ label: x.from })} to ${label({ label: x.to })} (example ${x.sample_id})`));
    } catch (e) {
      out.textContent = errorText(e);
    }
  });
})();
